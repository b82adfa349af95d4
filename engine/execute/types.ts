/**
 * Shared types of the executor: options of a run, per-host state that lives across plays, and
 * the result of a run.
 */
import type { ConnectionFactory } from '../connection/factory.ts'
import type { RunbookError } from '../errors.ts'
import type { Inventory } from '../inventory/inventory.ts'
import type { Journal } from '../journal/journal.ts'
import type { ModuleRegistry } from '../module.ts'
import type { PlanCounts, PlannedChange } from '../plan/change.ts'
import type { EventSink, HostCounts } from '../report/events.ts'
import type { SourceSet } from '../runbook/source.ts'
import type { Runbook } from '../runbook/types.ts'
import type { Redactor } from '../vars/secrets.ts'

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
  sources: SourceSet
  baseDir: string
  /** The runbook's state directory (journal, lock): `state_dir` in templates, for keys and the like. */
  stateDir?: string | undefined
  signal?: AbortSignal | undefined
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
