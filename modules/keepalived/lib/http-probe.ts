/**
 * The observer's HTTP prober: the client's view of a service behind a VIP, beside ping's view of
 * the address. A detached shell loop on the observer fetches the URL with curl every `interval`
 * seconds and writes one stamped line per attempt (observer clock); the file is read back and
 * parsed here. A load balancer can answer pings and still drop connections (or the reverse), so
 * service continuity is measured on the service.
 */
import { quote } from '../../../engine/connection/shell.ts'

/** What the prober measured. */
export interface HttpStats {
  /** Requests made (finished, answered or not). */
  sent: number
  /** Requests answered with a 2xx. */
  ok: number
  /** Longest time between two answers, or from the last answer to the end of the run. */
  maxGapMs: number
  /** Every silence longer than `gapAfterMs`, in order, in ms. */
  gapsMs: number[]
  /** Observer time (epoch ms) of each answer, in order. */
  okAt: number[]
  /** Answers per body (the page names the real server that served it). */
  servedBy: Record<string, number>
  /** Observer time of the last line (the end of the run as the observer saw it). */
  lastAt: number | null
}

const LINE = /^(\d+(?:\.\d+)?) (ok|fail)(?: (.*))?$/

/**
 * Reads the prober's lines (`<epoch s> ok <body>` or `<epoch s> fail`).
 * @example parseHttp('1.000 ok lvs-real-1\n1.100 fail\n', 500).ok // 1
 */
export function parseHttp(text: string, gapAfterMs: number): HttpStats {
  const okAt: number[] = []
  const servedBy: Record<string, number> = {}
  let sent = 0
  let lastAt: number | null = null
  for (const line of text.split('\n')) {
    const m = LINE.exec(line.trim())
    if (!m) continue
    const at = Math.round(Number(m[1]) * 1000)
    sent++
    lastAt = Math.max(lastAt ?? 0, at)
    if (m[2] !== 'ok') continue
    okAt.push(at)
    const body = (m[3] ?? '').trim()
    servedBy[body] = (servedBy[body] ?? 0) + 1
  }
  okAt.sort((a, b) => a - b)
  const gaps: number[] = []
  for (let i = 1; i < okAt.length; i++) gaps.push((okAt[i] ?? 0) - (okAt[i - 1] ?? 0))
  const last = okAt[okAt.length - 1]
  if (last !== undefined && lastAt !== null && lastAt > last) gaps.push(lastAt - last)
  return {
    sent,
    ok: okAt.length,
    maxGapMs: gaps.length ? Math.max(...gaps) : 0,
    gapsMs: gaps.filter((g) => g > gapAfterMs),
    okAt,
    servedBy,
    lastAt,
  }
}

/** The URL the prober fetches. */
export function probeUrl(address: string, port: number, path: string): string {
  return `http://${address}${port === 80 ? '' : `:${port}`}${path}`
}

/**
 * Starts the prober in its own session, writing into a temp file; prints `pid=` and `file=`.
 * It stops by itself after `deadlineS`, so it never outlives a dead engine for long.
 * @example httpStartScript({ url: 'http://192.0.2.200/', intervalS: 0.1, timeoutS: 0.5, deadlineS: 120 })
 */
export function httpStartScript(o: {
  url: string
  intervalS: number
  timeoutS: number
  deadlineS: number
}): string {
  const loop = [
    `end=$(( $(date +%s) + ${Math.ceil(o.deadlineS)} ))`,
    'while [ "$(date +%s)" -lt "$end" ]; do',
    `  if b=$(curl -fsS -m ${o.timeoutS} ${quote(o.url)} 2>/dev/null); then`,
    `    printf '%s ok %s\\n' "$(date +%s.%3N)" "$(printf '%s' "$b" | head -c 120 | tr -d '\\r\\n')"`,
    `  else printf '%s fail\\n' "$(date +%s.%3N)"; fi`,
    `  sleep ${o.intervalS}`,
    'done',
  ].join('\n')
  return [
    'command -v curl >/dev/null 2>&1 || { echo "curl is not installed on this host" >&2; exit 127; }',
    'f=$(mktemp /tmp/rb-http.XXXXXX) || exit 1',
    `setsid sh -c ${quote(loop)} >"$f" 2>&1 </dev/null &`,
    'echo "pid=$!"; echo "file=$f"',
  ].join('\n')
}

/** Prints the prober's output so far. */
export function httpReadScript(file: string): string {
  return `cat ${quote(file)}`
}

/** Stops the prober, prints its output and removes the file. */
export function httpStopScript(pid: number, file: string): string {
  return [
    `kill -TERM ${pid} 2>/dev/null`,
    `i=0; while kill -0 ${pid} 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done`,
    `kill -KILL ${pid} 2>/dev/null`,
    `cat ${quote(file)}; rm -f ${quote(file)}`,
  ].join('\n')
}

/**
 * One round trip of `count` requests, one line per request (`ok <body>` / `fail`): the spread.
 * @example spreadScript('http://192.0.2.200/', 30, 2)
 */
export function spreadScript(url: string, count: number, timeoutS: number): string {
  return [
    'command -v curl >/dev/null 2>&1 || { echo "curl is not installed on this host" >&2; exit 127; }',
    `i=0; while [ $i -lt ${count} ]; do i=$((i+1))`,
    `  if b=$(curl -fsS -m ${timeoutS} ${quote(url)} 2>/dev/null); then printf '0 ok %s\\n' "$(printf '%s' "$b" | head -c 120 | tr -d '\\r\\n')"; else echo '0 fail'; fi`,
    'done',
  ].join('\n')
}
