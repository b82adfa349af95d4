/**
 * The composition root of the executable: the engine's CLI with the project's modules,
 * connections and lab plugged in.
 */
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { RunbookError } from '../errors.ts'
import { sshConnectionFactory } from '../connection/ssh-factory.ts'
import { registry } from '../../modules/index.ts'
import { execCommand } from './exec.ts'
import { main, type LabCommands } from './main.ts'

type LabModule = typeof import('../../lab/index.ts')

/** The lab, loaded from the source tree only when a `lab` command runs (it is not bundled). */
function labCommands(root: string): LabCommands {
  const load = (): Promise<LabModule> =>
    import(pathToFileURL(path.join(root, 'lab', 'index.ts')).href) as Promise<LabModule>
  return {
    async up(o) {
      const { labUp } = await load()
      await labUp({
        ...(o.port !== undefined ? { port: o.port } : {}),
        ...(o.stateDir ? { stateDir: o.stateDir } : {}),
      })
      return 0
    },
    async status(o) {
      const { labStatus } = await load()
      return (await labStatus(o.stateDir ? { stateDir: o.stateDir } : {})).running ? 0 : 3
    },
    async down(o) {
      const { labDown } = await load()
      await labDown({
        ...(o.stateDir ? { stateDir: o.stateDir } : {}),
        keepState: o.keepState === true,
      })
      return 0
    },
    async buildImages() {
      const { buildLabImages } = await load()
      await buildLabImages()
      return 0
    },
  }
}

/** Runs the CLI; resolves to the exit code. `root` is the repository (for the lab's sources). */
export async function run(argv: string[], opts: { root?: string } = {}): Promise<number> {
  const root = opts.root ?? fileURLToPath(new URL('../..', import.meta.url))
  return main(argv, {
    registry,
    lab: labCommands(root),
    exec: execCommand,
    connections: (ctx) =>
      sshConnectionFactory({
        defaults: { projectKnownHosts: path.join(ctx.stateRoot, 'known_hosts') },
        passphrase: async (keyFile) => {
          if (!ctx.prompt)
            throw new RunbookError(
              'E_CONNECTION',
              `key ${keyFile} is encrypted and there is no terminal to ask for its passphrase`,
              { hint: 'load it into ssh-agent' },
            )
          const value = await ctx.prompt(`Passphrase for ${keyFile}`)
          ctx.redactor.add(value)
          return value
        },
      }),
  })
}
