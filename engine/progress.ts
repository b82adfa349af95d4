/**
 * Progress of the task the caller runs for, found by async context (AsyncLocalStorage): a shared
 * helper (one API client per cloud, used by every task of a run) reports what it waits for — a
 * retry, a backoff — on the live line of the task that is waiting, without being handed its context.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

/** Where a task's progress lines go (its live-view line). */
export type ProgressSink = (message: string) => void

const store = new AsyncLocalStorage<ProgressSink>()

/**
 * Runs `fn` with `sink` as the current task's progress.
 * @example await withProgress(ctx.progress, () => module.apply(ctx, p, changes, current))
 */
export function withProgress<T>(sink: ProgressSink, fn: () => Promise<T>): Promise<T> {
  return store.run(sink, fn)
}

/**
 * Tells the current task's live line `message`; nothing when no task is running (a library call).
 * @example reportProgress('Neutron GET /v2.0/ports: retrying (2/5) after 503 in 0.3 s')
 */
export function reportProgress(message: string): void {
  store.getStore()?.(message)
}

/** A command or request awaited this long is said on the live line (what, and where). */
export const SLOW_NOTICE_MS = 3000

/**
 * A command as a live line shows it: its first line, spaces folded, at most 60 characters.
 * @example commandBrief('apt-get install -y keepalived\n...') // 'apt-get install -y keepalived …'
 */
export function commandBrief(command: string): string {
  const lines = command.trim().split('\n')
  const first = (lines[0] ?? '').replace(/\s+/g, ' ')
  return first.length > 60 || lines.length > 1 ? `${first.slice(0, 60)} …` : first
}

/**
 * Awaits `fn`; if it takes longer than `ms`, tells the current task's live line `waiting for
 * <what>`, so no wait of several seconds is silent (a command, a transfer).
 * @example await whileSlow(`\`apt-get install\` on kld-vm-1`, () => conn.exec(cmd))
 */
export async function whileSlow<T>(
  what: string,
  fn: () => Promise<T>,
  ms = SLOW_NOTICE_MS,
): Promise<T> {
  const sink = store.getStore()
  if (sink === undefined) return fn()
  const t = setTimeout(() => sink(`waiting for ${what}`), ms)
  try {
    return await fn()
  } finally {
    clearTimeout(t)
  }
}
