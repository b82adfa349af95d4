/**
 * Shared by the host module tests: the data-driven plan runner (pyinfra's `{args, facts} ->
 * commands`, here `{params, current} -> changes`), a connection that counts round trips, and
 * `converge`, which applies a task and proves the second plan is empty.
 */
import { expect, it } from 'vitest'
import type {
  Connection,
  ExecOptions,
  ExecResult,
  WriteFileOptions,
  BecomeOptions,
} from '../../../engine/connection/types.ts'
import type { ApplyResult, Module, ModuleContext } from '../../../engine/module.ts'
import type { Change } from '../../../engine/plan/change.ts'

/** One row of a module's plan table. */
export interface PlanCase<S> {
  name: string
  params: Record<string, unknown>
  current: S
  /** The changes plan must return ([] for in sync). */
  expected?: Change[]
  /** Or the error it must throw. */
  throws?: RegExp
}

/**
 * One `it` per row: parses the params with the module's schema (defaults applied), then plans.
 * @example describe('plan', () => planTable(sysctl, cases))
 */
export function planTable<P, S>(mod: Module<P, S>, cases: PlanCase<S>[]): void {
  it.each(cases)('$name', (c) => {
    const p = mod.params.parse(c.params)
    if (c.throws) expect(() => mod.plan(p, c.current)).toThrow(c.throws)
    else expect(mod.plan(p, c.current)).toEqual(c.expected)
  })
}

/** Wraps a connection and counts its round trips. */
export class CountingConnection implements Connection {
  trips = 0
  readonly kind: 'local' | 'ssh'
  readonly host: string
  constructor(private readonly inner: Connection) {
    this.kind = inner.kind
    this.host = inner.host
  }
  exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    this.trips++
    return this.inner.exec(command, opts)
  }
  readFile(path: string, opts?: { become?: BecomeOptions | undefined }): Promise<Buffer | null> {
    this.trips++
    return this.inner.readFile(path, opts)
  }
  writeFile(path: string, data: string | Buffer, opts?: WriteFileOptions): Promise<void> {
    this.trips++
    return this.inner.writeFile(path, data, opts)
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}

/** What one converge did. */
export interface Converged {
  first: Change[]
  result: ApplyResult | undefined
  second: Change[]
  /** Round trips of the first gather. */
  gatherTrips: number
}

/**
 * gather -> plan -> apply -> gather -> plan, as the executor does; the second plan must be [].
 * @example const r = await converge(sysctl, ctx, conn, { name: 'net.ipv4.ip_forward', value: 1 })
 */
export async function converge<P, S>(
  mod: Module<P, S>,
  ctx: ModuleContext,
  conn: CountingConnection,
  raw: Record<string, unknown>,
): Promise<Converged> {
  const p = mod.params.parse(raw)
  const before = conn.trips
  const current = await mod.gather(ctx, p)
  const gatherTrips = conn.trips - before
  const first = mod.plan(p, current)
  const result = first.length ? await mod.apply(ctx, p, first, current) : undefined
  const second = mod.plan(p, await mod.gather(ctx, p))
  return { first, result, second, gatherTrips }
}
