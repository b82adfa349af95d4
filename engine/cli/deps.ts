/**
 * What the CLI is built from: one `deps` value handed in by the composition root (cli/entry.ts),
 * so the engine's CLI knows no module family, no SSH library and no lab. Everything heavy behind
 * it is loaded on first use: `runbook --version` loads none of it.
 */
import type { ConnectionFactory } from '../connection/factory.ts'
import type { ModuleRegistry } from '../module.ts'
import type { Redactor } from '../vars/secrets.ts'

/** `runbook lab up`'s options. */
export interface LabUpOptions {
  port?: number | undefined
  stateDir?: string | undefined
  /** false: the API only, no real hosts (`--no-hosts`). */
  hosts?: boolean | undefined
  /** false: no package mirror for the VMs (`--no-mirror`). */
  mirror?: boolean | undefined
  /** The mirror's packages instead of the default set (`--mirror-packages a,b`). */
  mirrorPackages?: string[] | undefined
}

/** The lab's commands, provided by lab/ (the CLI only forwards). */
export interface LabCommands {
  up(opts: LabUpOptions): Promise<number>
  status(opts: { stateDir?: string | undefined }): Promise<number>
  down(opts: { stateDir?: string | undefined; keepState?: boolean | undefined }): Promise<number>
  /** Builds the lab's images ahead (they are otherwise built on first use). */
  buildImages(): Promise<number>
}

/** An ad-hoc command runner over an inventory (`runbook exec`). */
export type ExecCommand = (o: {
  inventory: string
  pattern: string
  command: string
  forks: number
  become: boolean
  json: boolean
  out: NodeJS.WritableStream
  err: NodeJS.WritableStream
}) => Promise<number>

/** What a run tells the connection factory: where project state lives, how to ask the user. */
export interface ConnectionContext {
  /** The project's `.runbook` directory (its known_hosts lives there). */
  stateRoot: string
  /** Asks on the terminal without echo; absent when there is none. */
  prompt?: ((question: string) => Promise<string>) | undefined
  /** Secrets typed at a prompt (key passphrases) are hidden like declared ones. */
  redactor: Redactor
}

/** What the CLI is built from. */
export interface CliDeps {
  /**
   * The modules, loaded when a command first needs them (not for `--version` or `--help`). The
   * CLI's loads some families only when a runbook names them (ExpandableRegistry); `all` loads
   * every one (`runbook modules`, `runbook schema`).
   */
  registry(all?: boolean): Promise<ModuleRegistry>
  /** A connection factory per run. */
  connections: (ctx: ConnectionContext) => ConnectionFactory
  /**
   * Closes the SSH connections the keeper holds (`runbook disconnect`, after destroy and lab down);
   * resolves to how many it held. Absent: no keeper.
   */
  disconnect?: (() => Promise<number>) | undefined
  lab?: LabCommands | undefined
  /** The environment modules see (OS_CLOUD and the like); the composition root passes its own. */
  env?: Readonly<Record<string, string | undefined>> | undefined
  exec?: ExecCommand | undefined
  out?: NodeJS.WriteStream
  err?: NodeJS.WriteStream
}
