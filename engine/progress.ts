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
