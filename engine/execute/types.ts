/**
 * Shared types of the executor: options of a run, per-host state that lives across plays, the
 * frame a step runs in, what the task runner needs from its run, and the result of a run.
 */
import type { ConnectionFactory } from '../connection/factory.ts'
import type { RunbookError } from '../errors.ts'
import type { Inventory } from '../inventory/inventory.ts'
import type { Journal } from '../journal/journal.ts'
import type { ModuleRegistry } from '../module.ts'
import type { PlanCounts, PlannedChange } from '../plan/change.ts'
import type { EventSink, HostCounts, RunEvent } from '../report/events.ts'
import type { SourceSet } from '../runbook/source.ts'
import type { Play, Runbook, Task } from '../runbook/types.ts'
import type { Redactor } from '../vars/secrets.ts'
import type { Layer } from './scope.ts'
import type { Timings } from '../timings.ts'

/** Everything a run needs. */
export interface RunOptions {
  runbook: Runbook
  inventory: Inventory
  registry: ModuleRegistry
  /** `plan`: gather and plan only (also `--check`); `apply`: converge. */
  mode: 'plan' | 'apply'
  /** Variables from --var / --var-file: the highest precedence. */
  extraVars: Record<string, unknown>
  /** Resolved secret variables (already added to the redactor). */
  secretVars: Record<string, string>
  redactor: Redactor
  journal?: Journal | undefined
  connections: ConnectionFactory
  /** Leave the connections open at the end: the caller runs again on them (then closes them). */
  keepConnections?: boolean | undefined
  forks: number
  limit?: string | undefined
  tags?: string[] | undefined
  skipTags?: string[] | undefined
  forceHandlers?: boolean | undefined
  emit: EventSink
  /** The run's counters (`--timings`): each task's add to them; the summary shows their totals. */
  timings?: Timings | undefined
  sources: SourceSet
  baseDir: string
  /** The runbook's state directory (journal, lock): `state_dir` in templates, for keys and the like. */
  stateDir?: string | undefined
  signal?: AbortSignal | undefined
  /** The environment modules see (ModuleContext.env): the CLI passes its own; none by default. */
  env?: Readonly<Record<string, string | undefined>> | undefined
}

/** Per-host state that outlives a play: facts, registered results, notifications, counts. */
export interface HostState {
  name: string
  /** set_fact, facts and registered results. */
  facts: Record<string, unknown>
  notified: Set<string>
  counts: HostCounts
  failed: boolean
  unreachable: boolean
  cache: Map<string, unknown>
}

/** A task's or block's `become`, as it stands after the enclosing ones. */
export type Become = { become: boolean; user?: string | undefined } | undefined

/**
 * Where a step runs: one host in one play, inside the blocks around it. The executor narrows it
 * on the way down (a block adds its vars, tags and become), the task runner reads it.
 * @example { play, host: 'lvs-1', hosts: ['lvs-1', 'lvs-2'], vars: [], tags: [], become: undefined, handler: false }
 */
export interface HostFrame {
  readonly play: Play
  readonly host: string
  /** The play's hosts: `run_once` runs on the first. */
  readonly hosts: readonly string[]
  /** Variables of the enclosing blocks, outermost first. */
  readonly vars: readonly Record<string, unknown>[]
  /** Tags of the play and the enclosing blocks. */
  readonly tags: readonly string[]
  readonly become: Become
  /** Handlers run at the end of a play, once per host. */
  readonly handler: boolean
}

/** What the task runner needs from the run it works for, and no more. */
export interface RunState {
  readonly opts: Pick<
    RunOptions,
    | 'mode'
    | 'registry'
    | 'timings'
    | 'redactor'
    | 'sources'
    | 'tags'
    | 'skipTags'
    | 'journal'
    | 'inventory'
    | 'connections'
    | 'baseDir'
    | 'signal'
    | 'env'
  >
  /** A host's state, made on first use. */
  host(name: string): HostState
  /** The scope layers of a host in a play, with the enclosing blocks' and the task's vars. */
  layers(host: string, play: Play | undefined, frames: readonly Record<string, unknown>[]): Layer[]
  /** Any host's variables without play context (connection settings). */
  varsOf(host: string): Record<string, unknown>
  /** A task's source position, `file:line:col`. */
  position(task: Pick<Task, 'file' | 'path'>): string | undefined
  /** Sends an event (redacted). */
  emit(e: RunEvent): void
  /** Adds a change to the run's plan. */
  plan(change: PlannedChange): void
  /** `run_once` tasks by key: the first host's outcome, which the others wait for. */
  readonly runOnce: Map<string, Promise<unknown>>
  /** The run's singletons (ModuleContext.shared). */
  readonly shared: Map<string, unknown>
  /** Hosts add_host added in this run: VMs just (re)created, whose connect may be retried. */
  readonly addedHosts: Set<string>
}

/** The outcome of a run. */
export interface RunResult {
  ok: boolean
  hosts: Record<string, HostCounts>
  plan: PlanCounts
  /** Checks that will run on apply (not counted in `plan`). */
  checks: number
  changes: PlannedChange[]
  errors: RunbookError[]
  durationMs: number
}
