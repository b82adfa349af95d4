/**
 * The composition root of the executable: the engine's CLI with the project's modules,
 * connections and lab plugged in.
 */
import { localOnlyFactory } from '../connection/factory.ts'
import { registry } from '../../modules/index.ts'
import { main, type LabCommands } from './main.ts'

/** The lab, loaded only when a `lab` command runs. */
const lab: LabCommands = {
  async up(o) {
    const { labUp } = await import('../../lab/index.ts')
    await labUp({ ...(o.port !== undefined ? { port: o.port } : {}), ...(o.stateDir ? { stateDir: o.stateDir } : {}) })
    return 0
  },
  async status(o) {
    const { labStatus } = await import('../../lab/index.ts')
    return (await labStatus(o.stateDir ? { stateDir: o.stateDir } : {})).running ? 0 : 3
  },
  async down(o) {
    const { labDown } = await import('../../lab/index.ts')
    await labDown({ ...(o.stateDir ? { stateDir: o.stateDir } : {}), keepState: o.keepState === true })
    return 0
  },
}

/** Runs the CLI; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  return main(argv, { registry, connections: () => localOnlyFactory(), lab })
}
