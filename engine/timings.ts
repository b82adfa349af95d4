/**
 * Where a run's time goes (`--timings`, and `timings` in `--json`): per task and host, the time
 * spent waiting for an SSH connection, in remote commands and in API requests, and the rest
 * (local work). Counting follows the async context (AsyncLocalStorage), so a connection or an
 * API client adds to the task that is waiting for it without being handed anything; a task's
 * counters also add to the run's, whose totals go into the summary.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { ConnectionFactory } from './connection/factory.ts'
import type { Connection } from './connection/types.ts'
import { commandBrief, whileSlow } from './progress.ts'

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

  constructor(
    readonly level: 'run' | 'task',
    private readonly parent?: Timings,
  ) {}

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

const store = new AsyncLocalStorage<Timings>()

/** The counters of the scope the caller runs in, if any. */
export function currentTimings(): Timings | undefined {
  return store.getStore()
}

/** Runs `fn` in a new timing scope nested in the current one. */
export function withTimings<T>(level: 'run' | 'task', fn: () => Promise<T>): Promise<T> {
  return store.run(new Timings(level, store.getStore()), fn)
}

/** Awaits `fn`, adding the time it took to the current scope. */
export async function measure<T>(
  kind: 'ssh' | 'command' | 'api',
  fn: () => Promise<T>,
): Promise<T> {
  const t = store.getStore()
  if (!t) return fn()
  const start = performance.now()
  try {
    return await fn()
  } finally {
    t.add(kind, performance.now() - start)
  }
}

const timedConns = new WeakMap<Connection, Connection>()

/** A connection whose commands and file transfers count in the scope that awaits them. */
function timedConnection(c: Connection): Connection {
  let t = timedConns.get(c)
  if (!t) {
    t = {
      get host() {
        return c.host
      },
      get kind() {
        return c.kind
      },
      exec: (command, opts) =>
        measure('command', () =>
          whileSlow(`\`${commandBrief(command)}\` on ${c.host}`, () => c.exec(command, opts)),
        ),
      readFile: (p, opts) =>
        measure('command', () =>
          whileSlow(`reading ${p} from ${c.host}`, () => c.readFile(p, opts)),
        ),
      writeFile: (p, data, opts) =>
        measure('command', () =>
          whileSlow(`writing ${p} (${data.length} bytes) to ${c.host}`, () =>
            c.writeFile(p, data, opts),
          ),
        ),
      close: () => c.close(),
    }
    timedConns.set(c, t)
  }
  return t
}

/** A factory whose connections are timed: the wait for one, then each command on it. */
export function timedConnections(f: ConnectionFactory): ConnectionFactory {
  return {
    get: async (host, varsOf) => timedConnection(await measure('ssh', () => f.get(host, varsOf))),
    drop: (host) => f.drop(host),
    closeAll: () => f.closeAll(),
  }
}
