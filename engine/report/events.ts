/**
 * What a run tells the outside world, as events. Renderers (live view, plain lines, --json, the
 * plan printer) consume them; secrets are redacted before any event leaves the executor.
 */
import type { Change, PlanCounts } from '../plan/change.ts'
import type { TaskTimings } from '../timings.ts'

/** How a task ended on one host. */
export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable'

/** Per-host recap counts. */
export interface HostCounts {
  ok: number
  changed: number
  failed: number
  skipped: number
  unreachable: number
  rescued: number
  ignored: number
}

/** Every event of a run. */
export type RunEvent =
  | {
      type: 'run_start'
      runbook: string
      mode: 'plan' | 'apply' | 'check' | 'destroy'
      time: string
    }
  | { type: 'play_start'; play: string; hosts: string[] }
  | { type: 'task_start'; play: string; task: string; host: string; handler?: boolean }
  | { type: 'task_progress'; task: string; host: string; message: string }
  | {
      type: 'task_end'
      play: string
      task: string
      host: string
      status: TaskStatus
      changes: Change[]
      msg?: string | undefined
      item?: string | undefined
      duration_ms: number
      pos?: string | undefined
      handler?: boolean
      ignored?: boolean
      deferred?: boolean
      /** What the module wants shown (debug's message). */
      display?: string | undefined
      /** Why a task in sync needed nothing (shown with --verbose). */
      noop?: string | undefined
      /** Where the task's time went on this host (SSH wait, commands, API requests, local). */
      timings?: TaskTimings | undefined
      /** The task's result as data (what `register` keeps), for --json consumers; not with no_log. */
      result?: unknown
    }
  | { type: 'warning'; message: string; host?: string | undefined; task?: string | undefined }
  | { type: 'play_end'; play: string }
  | {
      type: 'summary'
      ok: boolean
      mode: string
      hosts: Record<string, HostCounts>
      plan: PlanCounts
      duration_ms: number
      changed: number
      failed: number
      unreachable: number
      /** Requests made to cloud APIs during the run (every attempt counts). */
      api_requests?: number | undefined
      /** The run's totals: SSH wait, commands and API requests over all tasks and hosts. */
      timings?: TaskTimings | undefined
    }

/** A consumer of events. */
export type EventSink = (e: RunEvent) => void

/** Zero counts. */
export function emptyCounts(): HostCounts {
  return { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 }
}
