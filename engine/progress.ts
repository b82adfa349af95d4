/**
 * Progress of a task: what it waits for, said on its live line. The sink is handed down
 * explicitly (a module's context, a connection or API client made for the task), never found by
 * async context: AsyncLocalStorage turns on node's promise hooks for the whole process, about
 * 30 ms of CPU in a 10-host run.
 */

/** Where a task's progress lines go (its live-view line). */
export type ProgressSink = (message: string) => void

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
 * Awaits `fn`; if it takes longer than `ms`, tells `sink` `waiting for <what>`, so no wait of
 * several seconds is silent (a command, a transfer). Without a sink it only awaits. `what` may be
 * a function, called only if the wait is slow (a command's brief costs its whole text).
 * @example await whileSlow(ctx.progress, `\`apt-get install\` on kld-vm-1`, () => conn.exec(cmd))
 */
export async function whileSlow<T>(
  sink: ProgressSink | undefined,
  what: string | (() => string),
  fn: () => Promise<T>,
  ms = SLOW_NOTICE_MS,
): Promise<T> {
  if (sink === undefined) return fn()
  const t = setTimeout(() => sink(`waiting for ${typeof what === 'function' ? what() : what}`), ms)
  try {
    return await fn()
  } finally {
    clearTimeout(t)
  }
}
