/**
 * The composition root of the executable: the engine's CLI with the project's modules,
 * connections and lab plugged in, each loaded on first use (the SSH stack when a run first
 * connects, the modules when a command first reads a runbook, the lab for `runbook lab`).
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ConnectionFactory } from '../engine/connection/factory.ts'
import type { PersistOptions } from '../engine/connection/persist.ts'
import type { CliDeps, ConnectionContext, LabCommands } from '../engine/cli/deps.ts'
import { main } from '../engine/cli/main.ts'

type LabModule = typeof import('../lab/index.ts')

/** The hidden command that runs the connection keeper (see engine/connection/keeper.ts). */
const KEEPER_COMMAND = '__keeper'

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
        ...(o.hosts === false ? { withHosts: false } : {}),
        ...(o.mirror === false
          ? { mirror: false as const }
          : o.mirrorPackages !== undefined
            ? { mirror: { packages: o.mirrorPackages } }
            : {}),
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

/** How runs reach the connection keeper: this executable, started as `runbook __keeper`. */
async function persistOptions(root: string): Promise<PersistOptions> {
  const { keeperDir, persistSecondsFromEnv } = await import('../engine/connection/persist.ts')
  return {
    seconds: persistSecondsFromEnv(process.env),
    dir: keeperDir(process.env),
    command: [process.execPath, path.join(root, 'cli', 'runbook.cjs'), KEEPER_COMMAND],
  }
}

/** Closes every connection the keeper holds; how many there were. */
async function disconnect(root: string): Promise<number> {
  const { KeeperLink } = await import('../engine/connection/keeper-client.ts')
  const options = await persistOptions(root)
  // no directory, no keeper (and none is made for asking)
  if (!existsSync(options.dir)) return 0
  const link = new KeeperLink(options)
  if (link.problem()) return 0
  const reply = await link.request({ op: 'disconnect' }, false).catch(() => ({ held: [] }))
  return reply.held?.length ?? 0
}

/** SSH connections; the SSH stack (ssh2) is loaded when the run first asks for a host. */
function connections(ctx: ConnectionContext, root: string): ConnectionFactory {
  let factory: Promise<ConnectionFactory> | undefined
  const load = async (): Promise<ConnectionFactory> => {
    const persist = await persistOptions(root)
    const { sshConnectionFactory } = await import('../engine/connection/ssh-factory.ts')
    return sshConnectionFactory({
      persist,
      defaults: { projectKnownHosts: path.join(ctx.stateRoot, 'known_hosts') },
      passphrase: async (keyFile) => {
        if (!ctx.prompt) {
          const { RunbookError } = await import('../engine/errors.ts')
          throw new RunbookError(
            'E_CONNECTION',
            `key ${keyFile} is encrypted and there is no terminal to ask for its passphrase`,
            { hint: 'load it into ssh-agent' },
          )
        }
        const value = await ctx.prompt(`Passphrase for ${keyFile}`)
        ctx.redactor.add(value)
        return value
      },
    })
  }
  return {
    get: async (host, varsOf) => (await (factory ??= load())).get(host, varsOf),
    drop: async (host) => {
      if (factory) await (await factory).drop(host)
    },
    closeAll: async () => {
      if (factory) await (await factory).closeAll()
    },
  }
}

/**
 * Initialises every module family, before the launcher writes a code cache: the cache holds
 * what the run compiled, and a run that loaded families on demand may have loaded none.
 */
export async function warm(): Promise<void> {
  await import('../modules/index.ts')
}

/** Everything the CLI is built from, each part loaded when a command first needs it. */
export function cliDeps(root: string): CliDeps {
  return {
    registry: async (all) => {
      const r = (await import('../modules/catalog.ts')).moduleRegistry()
      if (all) await r.load()
      return r
    },
    lab: labCommands(root),
    exec: async (o) => (await import('../engine/cli/exec.ts')).execCommand(o),
    connections: (ctx) => connections(ctx, root),
    disconnect: () => disconnect(root),
    env: process.env,
  }
}

/** Runs the CLI; resolves to the exit code. `root` is the repository (for the lab's sources). */
export async function run(argv: string[], opts: { root?: string } = {}): Promise<number> {
  const root = opts.root ?? fileURLToPath(new URL('..', import.meta.url))
  if (argv[0] === KEEPER_COMMAND && argv.length === 1) {
    const { runKeeper } = await import('../engine/connection/keeper.ts')
    const { keeperDir } = await import('../engine/connection/persist.ts')
    await runKeeper(keeperDir(process.env))
    return 0
  }
  return main(argv, cliDeps(root))
}
