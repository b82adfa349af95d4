/**
 * The composition root of the executable: the engine's CLI with the project's modules,
 * connections and lab plugged in.
 */
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import { sshConnectionFactory } from '../connection/ssh-factory.ts'
import { registry } from '../../modules/index.ts'
import { execCommand } from './exec.ts'
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
  return main(argv, {
    registry,
    lab,
    exec: execCommand,
    connections: (ctx) =>
      sshConnectionFactory({
        defaults: { projectKnownHosts: path.join(ctx.stateRoot, 'known_hosts') },
        passphrase: async (keyFile) => {
          if (!ctx.prompt) throw new RunbookError('E_CONNECTION', `key ${keyFile} is encrypted and there is no terminal to ask for its passphrase`, { hint: 'load it into ssh-agent' })
          const value = await ctx.prompt(`Passphrase for ${keyFile}`)
          ctx.redactor.add(value)
          return value
        },
      }),
  })
}
