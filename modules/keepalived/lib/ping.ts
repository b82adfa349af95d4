/**
 * The observer's pinger: `ping -D -O` runs detached on the observer into a temp file, and its
 * output is read back here. -D stamps every reply with the observer's clock, so the longest
 * silence between two replies is measured where the client sits, not where the engine runs.
 */
import { quote } from '../../../engine/connection/shell.ts'

/** What a ping run measured. */
export interface PingStats {
  /** Echo requests sent (ping's own count when it printed its summary). */
  sent: number
  /** Distinct requests answered. */
  received: number
  /** Extra answers to an already answered request: two hosts answering for one address. */
  duplicates: number
  /** Longest time between two consecutive replies, or from the last reply to the end of the run. */
  maxGapMs: number
  /** Every silence longer than 2.5 intervals, in order, in ms. */
  gapsMs: number[]
  /** Observer time (epoch ms) of the first and the last reply; null without replies. */
  firstReplyAt: number | null
  lastReplyAt: number | null
  /** Observer time (epoch ms) of every answered request, in order: a timeline's data. */
  replyAt: number[]
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/
const STAMP = /^\[(\d+\.\d+)\]/
const SEQ = /icmp_seq=(\d+)/
const SUMMARY = /^(\d+) packets transmitted, (\d+) (?:packets )?received/

/**
 * Reads `ping -D -O` output.
 * @example parsePing('[1.000] 64 bytes from 192.0.2.254: icmp_seq=1 ttl=64 time=0.1 ms\n', 200).received // 1
 */
export function parsePing(text: string, intervalMs: number): PingStats {
  const replies = new Map<number, number>()
  let duplicates = 0
  let maxSeq = 0
  let lastStamp = 0
  let summarySent: number | null = null
  for (const line of text.split('\n')) {
    const stamp = STAMP.exec(line)
    if (stamp) lastStamp = Math.max(lastStamp, Math.round(Number(stamp[1]) * 1000))
    const seq = SEQ.exec(line)
    if (seq) maxSeq = Math.max(maxSeq, Number(seq[1]))
    const r = REPLY.exec(line)
    if (r) {
      const n = Number(r[2])
      if (replies.has(n)) duplicates++
      else replies.set(n, Math.round(Number(r[1]) * 1000))
      continue
    }
    const s = SUMMARY.exec(line)
    if (s) summarySent = Number(s[1])
  }
  const times = [...replies.values()].sort((a, b) => a - b)
  const gaps: number[] = []
  for (let i = 1; i < times.length; i++) gaps.push((times[i] ?? 0) - (times[i - 1] ?? 0))
  const last = times[times.length - 1]
  // Silence at the end (the VIP never came back) counts too: up to the last line ping stamped.
  if (last !== undefined && lastStamp > last) gaps.push(lastStamp - last)
  return {
    sent: summarySent ?? maxSeq,
    received: replies.size,
    duplicates,
    maxGapMs: gaps.length ? Math.max(...gaps) : 0,
    gapsMs: gaps.filter((g) => g > intervalMs * 2.5),
    firstReplyAt: times[0] ?? null,
    lastReplyAt: last ?? null,
    replyAt: times,
  }
}

/**
 * Starts ping in its own session (so neither sudo's pty nor the shell's end stops it), writing
 * into a temp file; prints `pid=` and `file=`. `deadline` bounds it if the engine never stops it.
 * @example pingStartScript('192.0.2.254', 0.2, 300)
 */
export function pingStartScript(vip: string, intervalS: number, deadlineS: number): string {
  return [
    'command -v ping >/dev/null 2>&1 || { echo "ping is not installed on this host (iputils-ping)" >&2; exit 127; }',
    'f=$(mktemp /tmp/rb-failover.XXXXXX) || exit 1',
    `setsid ping -D -O -n -i ${intervalS} -w ${Math.ceil(deadlineS)} ${quote(vip)} >"$f" 2>&1 </dev/null &`,
    'p=$!',
    'echo "pid=$p"; echo "file=$f"',
    // ping refuses some intervals for non-root users at once; say so instead of measuring nothing.
    'sleep 0.3',
    'if ! kill -0 "$p" 2>/dev/null; then cat "$f" >&2; rm -f "$f"; exit 2; fi',
  ].join('\n')
}

/** Prints the pinger's output so far. */
export function pingReadScript(file: string): string {
  return `cat ${quote(file)}`
}

/** Stops the pinger (SIGINT, so it prints its summary), prints its output and removes the file. */
export function pingStopScript(pid: number, file: string): string {
  return [
    `kill -INT ${pid} 2>/dev/null`,
    `i=0; while kill -0 ${pid} 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done`,
    `if kill -0 ${pid} 2>/dev/null; then kill -KILL ${pid}; fi`,
    `cat ${quote(file)}; rm -f ${quote(file)}`,
  ].join('\n')
}
