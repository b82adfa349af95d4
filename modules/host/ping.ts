/**
 * `ping`: an assertion that an address is (or is not) reachable from the host, e.g. the VIP
 * checked from the jumphost. Read-only: gather pings, plan reports a failing expectation as a
 * `run` change, apply fails the task if it still does not hold.
 */
import { z } from 'zod'
import { hostAddress } from '../../engine/values.ts'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { run, tail } from './lib/remote.ts'

const params = z.strictObject({
  address: hostAddress.describe('Address (or name) to ping from the host'),
  count: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(3)
    .describe(
      'Echo requests to send when expecting unreachable; expecting reachable stops at the first reply (one request per interval until the timeout)',
    ),
  timeout: z.number().positive().default(5).describe('Seconds the whole check may take (ping -w)'),
  interval: z.number().min(0.2).default(0.2).describe('Seconds between requests'),
  expect: z
    .enum(['reachable', 'unreachable'])
    .default('reachable')
    .describe('reachable: at least one reply; unreachable: no reply at all'),
})

/** ping's parameters. */
export type PingParams = z.infer<typeof params>

/** What one ping run saw. */
export interface PingState {
  transmitted: number
  received: number
  /** Average round trip in ms, when there were replies. */
  rttAvg?: number
  /** ping's own complaint when it could not run (unknown host, no route). */
  error?: string
}

/**
 * Reads ping's summary lines.
 * @example parsePing('3 packets transmitted, 3 received, 0% packet loss\nrtt min/avg/max/mdev = 0.1/0.2/0.3/0.0 ms') // { transmitted: 3, received: 3, rttAvg: 0.2 }
 */
export function parsePing(stdout: string): PingState {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(stdout)
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(stdout)
  const s: PingState = { transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) }
  if (rtt?.[1]) s.rttAvg = Number(rtt[1])
  return s
}

function holds(p: PingParams, s: PingState): boolean {
  return p.expect === 'reachable' ? s.received > 0 : s.received === 0 && s.error === undefined
}

function summary(p: PingParams, s: PingState): string {
  return `${p.address} ${p.expect === 'reachable' ? 'unreachable' : 'reachable'}: ${s.received}/${s.transmitted} replies${s.error ? ` (${s.error})` : ''}`
}

async function pingOnce(ctx: ModuleContext, p: PingParams): Promise<PingState> {
  // With -w, -c counts replies: `-c 1` returns at the first one instead of after `count` intervals.
  const count = p.expect === 'reachable' ? 1 : p.count
  const cmd = `ping -n -c ${count} -i ${p.interval} -W 1 -w ${Math.ceil(p.timeout)} ${quote(p.address)}`
  const r = await run(ctx, `LC_ALL=C ${cmd}`, { idempotent: true })
  const s = parsePing(r.stdout)
  // rc 1: no reply (a result); rc 2: ping could not run (unknown host, bad address).
  if (r.rc > 1 || (s.transmitted === 0 && r.rc !== 0))
    s.error = tail(r.stderr || r.stdout, 3) || `ping rc ${r.rc}`
  return s
}

/**
 * Asserts that an address answers (or does not answer) pings from the host.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const ping = defineModule<PingParams, PingState>({
  name: 'ping',
  summary: 'Asserts that an address is (or is not) reachable by ICMP echo from the host',
  example: `- name: The VIP answers from the jumphost\n  ping: { address: 192.0.2.254, count: 3, expect: reachable }\n  delegate_to: jumphost`,
  params,
  verifies: true,
  gather: pingOnce,
  plan: (p, s) =>
    holds(p, s)
      ? []
      : [
          {
            action: 'run',
            target: `ping ${p.address}`,
            note: `expected ${p.expect}, but now ${summary(p, s)}`,
          },
        ],
  // Pings once more: the plan's answer may be minutes old (a VIP that was still moving).
  async apply(ctx, p) {
    const s = await pingOnce(ctx, p)
    if (!holds(p, s))
      throw new RunbookError(
        'E_ASSERT',
        `ping: expected ${p.address} ${p.expect}, but ${summary(p, s)}`,
      )
    return { changed: false, output: outputOf(p, s) }
  },
  output: (p, s) => outputOf(p, s),
})

function outputOf(p: PingParams, s: PingState | undefined): Record<string, unknown> {
  return {
    address: p.address,
    expect: p.expect,
    transmitted: s?.transmitted,
    received: s?.received,
    ...(s?.rttAvg !== undefined ? { rtt_avg_ms: s.rttAvg } : {}),
  }
}
