/**
 * The human view of a run. On a terminal: finished tasks scroll, and below them a live block shows
 * each host's current task, its elapsed time and what it waits for. Elsewhere: plain lines.
 * Ends with a recap per host.
 */
import type { PlanCounts } from '../plan/change.ts'
import { type Colors, formatChange, planSummary } from './format.ts'
import type { EventSink, HostCounts, RunEvent, TaskStatus } from './events.ts'

/** Options of the console reporter. */
export interface ConsoleOptions {
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }
  colors: Colors
  /** Redraw a live block (terminals only). */
  live: boolean
  /** Show unified diffs of file contents. */
  diff: boolean
  /** During a plan, per-task lines are not printed; the plan printer shows the changes. */
  quietTasks?: boolean
  verbose?: boolean
}

/** A reporter: an event sink plus a way to stop its timers. */
export interface Reporter {
  sink: EventSink
  close(): void
}

const STATUS_WIDTH = 9

/**
 * Colours the glyphs of a check's drawings (bars green, no-reply marks red, empty slots dim);
 * with colours off (not a TTY, NO_COLOR) the text is unchanged.
 * @example paintDrawing('ping 11××22', colors)
 */
export function paintDrawing(line: string, c: Colors): string {
  return line
    .replace(/█+/g, (m) => c.green(m))
    .replace(/×+/g, (m) => c.red(m))
    .replace(/·+/g, (m) => c.dim(m))
}

/**
 * Makes the console reporter.
 * @example const r = consoleReporter({ out: process.stdout, colors, live: true, diff: false }); execute({ ..., emit: r.sink })
 */
export function consoleReporter(o: ConsoleOptions): Reporter {
  const c = o.colors
  const active = new Map<string, { task: string; started: number; msg?: string }>()
  let drawn = 0
  const write = (s: string): void => {
    o.out.write(s)
  }
  const clear = (): void => {
    if (drawn > 0) write(`\x1b[${drawn}A\x1b[0J`)
    drawn = 0
  }
  const draw = (): void => {
    if (!o.live) return
    clear()
    const now = Date.now()
    const width = (o.out.columns ?? 100) - 1
    const lines = [...active].map(([host, a]) => {
      const secs = ((now - a.started) / 1000).toFixed(1)
      const line = `  ${c.cyan('…')} ${host}  ${a.task}  ${c.dim(`${secs}s`)}${a.msg ? c.dim(`  ${a.msg}`) : ''}`
      return line.length > width + 20 ? `${line.slice(0, width + 10)}` : line
    })
    if (lines.length) write(`${lines.join('\n')}\n`)
    drawn = lines.length
  }
  const print = (s: string): void => {
    clear()
    write(`${s}\n`)
    draw()
  }
  const timer = o.live ? setInterval(draw, 250) : undefined
  timer?.unref()

  const statusText = (s: TaskStatus, ignored?: boolean): string => {
    const t = (ignored ? 'ignored' : s).padEnd(STATUS_WIDTH)
    switch (s) {
      case 'ok':
        return c.green(t)
      case 'changed':
        return c.yellow(t)
      case 'failed':
        return ignored ? c.dim(t) : c.red(t)
      case 'skipped':
        return c.dim(t)
      case 'unreachable':
        return c.red(t)
    }
  }

  const sink: EventSink = (e: RunEvent) => {
    switch (e.type) {
      case 'play_start':
        if (o.quietTasks) break
        print(`\n${c.bold(`PLAY ${e.play}`)} ${c.dim(`[${e.hosts.join(', ') || 'no hosts'}]`)}`)
        break
      case 'task_start':
        active.set(e.host, { task: e.task, started: Date.now() })
        if (!o.live && o.verbose)
          print(`  ${c.dim('start'.padEnd(STATUS_WIDTH))} ${e.host}  ${e.task}`)
        break
      case 'task_progress': {
        const a = active.get(e.host)
        const repeated = a?.msg === e.message
        if (a) a.msg = e.message
        // on a terminal the live line shows it; -v also keeps every one (each API retry)
        if ((!o.live || o.verbose === true) && !repeated)
          print(`  ${c.dim('waiting'.padEnd(STATUS_WIDTH))} ${e.host}  ${e.task}: ${e.message}`)
        break
      }
      case 'task_end': {
        active.delete(e.host)
        if (o.quietTasks && e.status !== 'failed' && e.status !== 'unreachable') {
          draw()
          break
        }
        if (e.status === 'skipped' && !o.verbose) {
          draw()
          break
        }
        const secs = c.dim(`(${(e.duration_ms / 1000).toFixed(1)}s)`)
        const handler = e.handler ? c.dim(' [handler]') : ''
        let line = `  ${statusText(e.status, e.ignored)} ${e.host}  ${e.task}${handler} ${secs}`
        if (e.msg && (e.status === 'failed' || e.status === 'unreachable'))
          line += `\n      ${c.red(e.msg)}${e.pos ? c.dim(`  at ${e.pos}`) : ''}`
        if (e.noop && o.verbose && e.status === 'ok')
          line += `\n${e.noop
            .split('\n')
            .map((l) => `      ${c.dim(l)}`)
            .join('\n')}`
        if (e.display)
          line += `\n${e.display
            .split('\n')
            .map((l) => `      ${paintDrawing(l, c)}`)
            .join('\n')}`
        const changeLines =
          e.status === 'changed'
            ? e.changes.flatMap((ch) => formatChange(ch, c, { diff: o.diff, indent: '      ' }))
            : []
        print([line, ...changeLines].join('\n'))
        break
      }
      case 'warning':
        print(
          `  ${c.yellow('warning'.padEnd(STATUS_WIDTH))} ${e.host ? `${e.host}  ` : ''}${e.message}`,
        )
        break
      case 'summary':
        clear()
        write(`\n${recap(e.hosts, c)}\n`)
        write(
          `${c.dim(`${e.mode} finished in ${(e.duration_ms / 1000).toFixed(1)}s:`)} ${e.ok ? c.green('ok') : c.red('failed')}, changed=${e.changed}\n`,
        )
        break
      default:
        break
    }
  }
  return { sink, close: () => (timer ? clearInterval(timer) : undefined) }
}

/** The recap table: one line per host. */
export function recap(hosts: Record<string, HostCounts>, c: Colors): string {
  const names = Object.keys(hosts)
  const w = Math.max(4, ...names.map((n) => n.length))
  const lines = [c.bold('RECAP')]
  for (const n of names) {
    const h = hosts[n] as HostCounts
    const color = h.failed || h.unreachable ? c.red : h.changed ? c.yellow : c.green
    lines.push(
      `  ${color(n.padEnd(w))}  ok=${h.ok}  changed=${h.changed}  failed=${h.failed}  skipped=${h.skipped}  unreachable=${h.unreachable}${h.rescued ? `  rescued=${h.rescued}` : ''}${h.ignored ? `  ignored=${h.ignored}` : ''}`,
    )
  }
  return lines.join('\n')
}

/** Prints a plan's summary line. */
export function printPlanSummary(
  out: NodeJS.WritableStream,
  counts: PlanCounts,
  c: Colors,
  deferred: number,
): void {
  out.write(`\n${planSummary(counts, c, deferred)}\n`)
}
