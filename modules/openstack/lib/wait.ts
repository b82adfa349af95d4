/**
 * Waiting for the cloud (a server ACTIVE, gone, its host keys in the console): poll with a growing
 * interval, say what we wait for in the live view, stop on the run's abort signal.
 */
import { RunbookError } from '../../../engine/errors.ts'
import type { ModuleContext } from '../../../engine/module.ts'

/** How to wait. */
export interface WaitOptions {
  /** Shown live: "waiting for server ACTIVE". */
  what: string
  timeoutMs: number
  /** First poll interval; grows by half up to `maxIntervalMs`. */
  intervalMs?: number
  maxIntervalMs?: number
}

/**
 * Polls `check` until it returns a value; fails with E_TIMEOUT after the timeout.
 * @example const s = await waitFor(ctx, { what: 'server ACTIVE', timeoutMs: 600_000 }, async () => ...)
 */
export async function waitFor<T>(
  ctx: ModuleContext,
  o: WaitOptions,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const started = Date.now()
  let interval = o.intervalMs ?? 250
  ctx.progress(`waiting for ${o.what}`)
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (ctx.signal.aborted)
      throw new RunbookError('E_TIMEOUT', `interrupted while waiting for ${o.what}`)
    if (Date.now() - started > o.timeoutMs)
      throw new RunbookError(
        'E_TIMEOUT',
        `gave up waiting for ${o.what} after ${Math.round(o.timeoutMs / 1000)} s`,
      )
    await new Promise((r) => setTimeout(r, interval))
    interval = Math.min(o.maxIntervalMs ?? 3000, Math.round(interval * 1.5))
  }
}
