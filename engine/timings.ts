/**
 * Where a run's time goes (`--timings`, and `timings` in `--json`): per task and host, the time
 * spent waiting for an SSH connection, in remote commands and in API requests, and the rest
 * (local work). A task's counters are handed down with its context (engine/progress.ts says why
 * not by async context): its connections and its view of an API client add to them, and they add
 * to the run's, whose totals go into the summary.
 */
import type { Connection } from './connection/types.ts'
import { commandBrief, whileSlow, type ProgressSink } from './progress.ts'

/** What one task on one host, or a whole run, spent its time on. */
export interface TimingTotals {
  /** Waiting for the host's SSH connection (connect, authentication, jumphost). */
  ssh_wait_ms: number
  /** Remote commands and file transfers on the connection. */
  commands: number
  commands_ms: number
  /** Requests to a cloud API (every attempt counts). */
  api_requests: number
  api_ms: number
}

/** A task's timings as events carry them: the totals and what is left of the wall time. */
export interface TaskTimings extends TimingTotals {
  /** Wall time not spent waiting on SSH, commands or the API: the engine's own work. */
  local_ms: number
}

/** Counters of one scope (a run, or a task on a host), adding to the enclosing one. */
export class Timings implements TimingTotals {
  ssh_wait_ms = 0
  commands = 0
  commands_ms = 0
  api_requests = 0
  api_ms = 0

  /** `parent`: the scope this one adds to (a task's, the run's). */
  constructor(private readonly parent?: Timings) {}

  /** Adds one measured wait to this scope and every enclosing one. */
  add(kind: 'ssh' | 'command' | 'api', ms: number): void {
    if (kind === 'ssh') this.ssh_wait_ms += ms
    else if (kind === 'command') {
      this.commands++
      this.commands_ms += ms
    } else {
      this.api_requests++
      this.api_ms += ms
    }
    this.parent?.add(kind, ms)
  }

  /** The totals, rounded to milliseconds; `wallMs` gives the local remainder. */
  totals(wallMs?: number): TaskTimings {
    const r = (n: number): number => Math.round(n)
    const waited = this.ssh_wait_ms + this.commands_ms + this.api_ms
    return {
      ssh_wait_ms: r(this.ssh_wait_ms),
      commands: this.commands,
      commands_ms: r(this.commands_ms),
      api_requests: this.api_requests,
      api_ms: r(this.api_ms),
      // Waits inside one task may overlap (parallel requests): never below zero.
      local_ms: wallMs === undefined ? 0 : Math.max(0, r(wallMs - waited)),
    }
  }
}

/** Where one task's waits go: its counters (`--timings`) and its live line. */
export interface WaitScope {
  readonly timings?: Timings | undefined
  readonly progress?: ProgressSink | undefined
}

/** Awaits `fn`, adding the time it took to `t` (and the scopes around it). */
export async function measure<T>(
  t: Timings | undefined,
  kind: 'ssh' | 'command' | 'api',
  fn: () => Promise<T>,
): Promise<T> {
  if (!t) return fn()
  const start = performance.now()
  try {
    return await fn()
  } finally {
    t.add(kind, performance.now() - start)
  }
}

/**
 * A connection as one task uses it: each command and file transfer is said on the task's live
 * line when slow and, unless `count` is false (the controller's own shell, which is no remote
 * command), counted in its timings.
 * @example const c = taskConnection(await pool.get('web1', varsOf), { timings, progress })
 */
export function taskConnection(c: Connection, scope: WaitScope, count = true): Connection {
  const t = count ? scope.timings : undefined
  const wait = <T>(what: () => string, fn: () => Promise<T>): Promise<T> =>
    measure(t, 'command', () => whileSlow(scope.progress, what, fn))
  return {
    get host() {
      return c.host
    },
    get kind() {
      return c.kind
    },
    exec: (command, opts) =>
      wait(
        () => `\`${commandBrief(command)}\` on ${c.host}`,
        () => c.exec(command, opts),
      ),
    readFile: (p, opts) =>
      wait(
        () => `reading ${p} from ${c.host}`,
        () => c.readFile(p, opts),
      ),
    writeFile: (p, data, opts) =>
      wait(
        () => `writing ${p} (${data.length} bytes) to ${c.host}`,
        () => c.writeFile(p, data, opts),
      ),
    close: () => c.close(),
  }
}
