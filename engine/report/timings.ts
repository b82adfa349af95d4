/**
 * `--timings`: where a run's time went, per task and host, and over the run. The counters come
 * from engine/timings.ts (a task's come on its task_end); here the run's totals and `api_requests`
 * are attached to the summary, so `--json` carries them, and all are printed as a table.
 */
import type { TaskTimings, Timings } from '../timings.ts'
import type { RunEvent } from './events.ts'
import type { Colors } from './format.ts'

/** A summary event with the run's totals (`api_requests`, `timings`); other events as they are. */
export function withRunTotals(e: RunEvent, run: Timings): RunEvent {
  return e.type === 'summary' ? { ...e, api_requests: run.api_requests, timings: run.totals() } : e
}

const COLUMNS = ['wall', 'ssh wait', 'commands', 'API', 'local'] as const

function cells(wall: number, t: TaskTimings): string[] {
  return [
    `${wall} ms`,
    `${t.ssh_wait_ms} ms`,
    `${t.commands} / ${t.commands_ms} ms`,
    `${t.api_requests} / ${t.api_ms} ms`,
    `${t.local_ms} ms`,
  ]
}

/**
 * The timings table: one row per task and host, then the sums over them, then the run's wall
 * time (hosts run in parallel, so the sums exceed it).
 */
export function renderTimings(events: readonly RunEvent[], c: Colors): string {
  const rows: string[][] = []
  const sum: TaskTimings = {
    ssh_wait_ms: 0,
    commands: 0,
    commands_ms: 0,
    api_requests: 0,
    api_ms: 0,
    local_ms: 0,
  }
  let wall = 0
  for (const e of events) {
    if (e.type !== 'task_end' || !e.timings) continue
    rows.push([e.task, e.host, ...cells(e.duration_ms, e.timings)])
    wall += e.duration_ms
    for (const k of Object.keys(sum) as (keyof TaskTimings)[]) sum[k] += e.timings[k]
  }
  const summary = events.find((e) => e.type === 'summary')
  const head = ['task', 'host', ...COLUMNS]
  const all = [head, ...rows, ['sum over tasks', '', ...cells(wall, sum)]]
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string =>
    r.map((x, i) => (i < 2 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join('  ')
  const out = [
    '',
    c.bold('Timings') + c.dim(' (commands and API: count / time; local: the engine itself)'),
    c.dim(line(head)),
    ...rows.map(line),
    c.bold(line(all[all.length - 1] ?? [])),
  ]
  if (summary?.type === 'summary' && summary.timings) {
    const t = summary.timings
    out.push(
      `run: ${summary.duration_ms} ms wall; ${t.commands} commands (${t.commands_ms} ms), ` +
        `${t.api_requests} API requests (${t.api_ms} ms), SSH wait ${t.ssh_wait_ms} ms`,
    )
  }
  return `${out.join('\n')}\n`
}
