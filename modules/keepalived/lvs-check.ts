/**
 * `keepalived.lvs_check`: seed 004's "负载均衡和故障隔离" as a task. From a client (the task's host,
 * the jumphost), requests to the VIP are counted per real server (the page names it); on the
 * director that holds the VIP, `ipvsadm -Ln` must list every real server; optionally one real
 * server's web server is stopped, the health checker must take it out of the table, and put it
 * back once it runs again. It restores what it stops, so a pass is `changed: false`.
 */
import { performance } from 'node:perf_hooks'
import { z } from 'zod'
import { ipAddress } from '../../engine/values.ts'
import type { Connection } from '../../engine/connection/types.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import { actionScript, parseProbe, probeScript } from '../host/lib/init-system.ts'
import { parseKv, sleep, tail } from '../host/lib/remote.ts'
import { bars } from './lib/draw.ts'
import { parseHttp, probeUrl, spreadScript } from './lib/http-probe.ts'
import { ipvsadmScript, parseIpvsadm, type IpvsReal } from './lib/ipvs.ts'
import { execOn, probeHolders, requireHosts, vipAddress } from './lib/vip.ts'

const params = z.strictObject({
  vip: ipAddress.describe('The virtual server’s address (the VIP)'),
  port: z.number().int().min(1).max(65535).default(80).describe('The virtual server’s port'),
  path: z.string().startsWith('/').default('/').describe('URL path the client fetches'),
  client_address: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Address the client fetches instead of the VIP: a floating IP on the VIP’s port, checked from outside the tenant network (seed 002)',
    ),
  directors: z
    .array(z.string().min(1))
    .min(1)
    .describe('Inventory names of the directors (the one holding the VIP is read)'),
  real_servers: z
    .array(z.strictObject({ name: z.string().min(1), address: z.string().min(1) }))
    .min(1)
    .describe('The real servers: inventory name (what its page contains) and address'),
  requests: z.number().int().min(1).max(1000).default(30).describe('Requests for the spread'),
  min_servers: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      'Real servers that must answer (default all; 1 for a scheduler that keeps a client on one, e.g. lblc or sh)',
    ),
  ipvs: z
    .boolean()
    .default(true)
    .describe('Check that `ipvsadm -Ln` on the director holding the VIP lists every real server'),
  health: z
    .strictObject({
      server: z.string().min(1).describe('The real server whose service is stopped'),
      service: z
        .string()
        .regex(/^[A-Za-z0-9@._:-]+$/)
        .describe('Its web server’s service'),
      timeout: z
        .number()
        .positive()
        .default(60)
        .describe('Seconds for the checker to take it out, and to put it back'),
    })
    .optional()
    .describe(
      'Stop this real server’s service: the checker must remove it from the IPVS table, and re-add it after a start',
    ),
  timeout: z.number().positive().default(2).describe('Seconds per request'),
})

/** keepalived.lvs_check's parameters. */
export type LvsCheckParams = z.infer<typeof params>

/** What the check measured; register gets it, failed or not. */
export interface LvsMeasurements {
  url: string
  scheduler: string | null
  director: string | null
  requests: number
  answered: number
  /** Answers per real server name, and `other` for bodies that name none. */
  spread: Record<string, number>
  /** The real servers the director's IPVS table lists (`address:port`). */
  ipvs_reals: string[]
  health?: {
    server: string
    /** From the service stop until the table no longer listed it (poll every 500 ms). */
    removed_ms: number | null
    /** From the service start until the table listed it again. */
    readded_ms: number | null
    /** The spread while it was out. */
    spread_without: Record<string, number>
  }
  passed: boolean
}

function countSpread(p: LvsCheckParams, bodies: Record<string, number>): Record<string, number> {
  const spread: Record<string, number> = Object.fromEntries(p.real_servers.map((r) => [r.name, 0]))
  for (const [body, n] of Object.entries(bodies)) {
    const rs = p.real_servers.find((r) => body.includes(r.name))
    const key = rs ? rs.name : 'other'
    spread[key] = (spread[key] ?? 0) + n
  }
  return spread
}

async function spread(
  ctx: ModuleContext,
  p: LvsCheckParams,
  url: string,
): Promise<{ answered: number; spread: Record<string, number> }> {
  const r = await execOn(ctx, await ctx.conn(), spreadScript(url, p.requests, p.timeout))
  if (r.rc !== 0) throw new RunbookError('E_COMMAND', `${ctx.host}: ${tail(r.stderr || r.stdout)}`)
  const s = parseHttp(r.stdout, Number.POSITIVE_INFINITY)
  return { answered: s.ok, spread: countSpread(p, s.servedBy) }
}

async function ipvsTable(
  ctx: ModuleContext,
  director: string,
  p: LvsCheckParams,
  vip: string,
): Promise<{ scheduler: string | null; reals: IpvsReal[] }> {
  const conn = await ctx.connectTo(director)
  const r = await execOn(ctx, conn, ipvsadmScript(vip, p.port), { idempotent: true })
  if (r.rc === 127 || /Permission denied|must be root/i.test(r.stderr))
    throw new RunbookError(
      'E_COMMAND',
      `${director}: ipvsadm -Ln failed (rc ${r.rc}): ${tail(r.stderr || r.stdout)}`,
      { hint: ctx.become ? undefined : 'ipvsadm needs root: add `become: true`' },
    )
  // "Service not defined" (rc 255) is an empty table, not an error.
  const svc = r.rc === 0 ? parseIpvsadm(r.stdout)[0] : undefined
  return { scheduler: svc?.scheduler ?? null, reals: svc?.reals ?? [] }
}

const listed = (reals: readonly IpvsReal[], address: string): boolean =>
  reals.some((x) => x.address === address && x.weight > 0)

async function serviceAction(
  ctx: ModuleContext,
  conn: Connection,
  name: string,
  action: 'start' | 'stop',
): Promise<void> {
  const probe = await execOn(ctx, conn, probeScript(name, undefined), { idempotent: true })
  const s = parseProbe(parseKv(probe.stdout))
  const r = await execOn(ctx, conn, actionScript(s.init, name, action))
  if (r.rc !== 0)
    throw new RunbookError(
      'E_COMMAND',
      `${conn.host}: ${action} ${name} failed (rc ${r.rc}): ${tail(r.stdout + r.stderr)}`,
    )
}

/** Polls the director's table until `want(reals)` holds; the ms it took, or null on timeout. */
async function waitTable(
  ctx: ModuleContext,
  w: { director: string; p: LvsCheckParams; vip: string; timeoutMs: number },
  want: (reals: IpvsReal[]) => boolean,
): Promise<number | null> {
  const start = performance.now()
  for (;;) {
    if (want((await ipvsTable(ctx, w.director, w.p, w.vip)).reals))
      return Math.round(performance.now() - start)
    if (performance.now() - start > w.timeoutMs) return null
    await sleep(500, ctx.signal)
  }
}

/** The check itself; fills `m` and returns why it failed, if it did. */
async function runCheck(
  ctx: ModuleContext,
  p: LvsCheckParams,
  m: LvsMeasurements,
): Promise<string | undefined> {
  const vip = vipAddress(p.vip)
  const holders = (await probeHolders(ctx, p.directors, vip, undefined))
    .filter((x) => x.interface !== null)
    .map((x) => x.node)
  if (holders.length !== 1)
    return `the VIP ${vip} is on ${holders.length ? holders.join(' and ') : 'no director'}: expected exactly one`
  const director = holders[0] ?? ''
  m.director = director
  ctx.progress(`${p.requests} requests to ${m.url}`)
  Object.assign(m, await spread(ctx, p, m.url))
  const need = p.min_servers ?? p.real_servers.length
  const answering = p.real_servers.filter((r) => (m.spread[r.name] ?? 0) > 0).map((r) => r.name)
  if (m.answered < p.requests)
    return `${p.requests - m.answered} of ${p.requests} requests to ${m.url} were not answered`
  if (answering.length < need)
    return `only ${answering.length} real server(s) answered (${answering.join(', ') || 'none'}); expected ${need}`
  if (p.ipvs) {
    const t = await ipvsTable(ctx, director, p, vip)
    m.scheduler = t.scheduler
    m.ipvs_reals = t.reals.map((x) => `${x.address}:${x.port}`)
    const missing = p.real_servers.filter((r) => !listed(t.reals, r.address))
    if (missing.length)
      return `ipvsadm -Ln on ${director} does not list ${missing.map((r) => `${r.name} (${r.address})`).join(', ')}`
  }
  if (!p.health) return undefined
  const h = p.health
  const rs = p.real_servers.find((r) => r.name === h.server)
  if (!rs) return `health.server '${h.server}' is not one of real_servers`
  const conn = await ctx.connectTo(rs.name)
  const w = { director, p, vip, timeoutMs: h.timeout * 1000 }
  m.health = { server: rs.name, removed_ms: null, readded_ms: null, spread_without: {} }
  ctx.progress(`stopping ${h.service} on ${rs.name}; waiting for the checker to take it out`)
  await serviceAction(ctx, conn, h.service, 'stop')
  try {
    m.health.removed_ms = await waitTable(ctx, w, (reals) => !listed(reals, rs.address))
    if (m.health.removed_ms === null)
      return `${rs.name} still in ${director}'s IPVS table ${h.timeout} s after ${h.service} stopped`
    m.health.spread_without = (await spread(ctx, p, m.url)).spread
    if ((m.health.spread_without[rs.name] ?? 0) > 0)
      return `${rs.name} still answered through the VIP after the checker took it out`
  } finally {
    ctx.progress(`starting ${h.service} on ${rs.name}; waiting for the checker to put it back`)
    await serviceAction(ctx, conn, h.service, 'start')
  }
  m.health.readded_ms = await waitTable(ctx, w, (reals) => listed(reals, rs.address))
  if (m.health.readded_ms === null)
    return `${rs.name} not back in ${director}'s IPVS table ${h.timeout} s after ${h.service} started`
  return undefined
}

/** The one-line summary and the bar chart. */
export function lvsDisplay(m: LvsMeasurements): string {
  const n = Object.keys(m.spread).filter((k) => k !== 'other').length
  const served = Object.entries(m.spread).filter(([k, v]) => k !== 'other' && v > 0).length
  const head = `LVS ${m.url} via ${m.director ?? '?'}${m.scheduler ? ` (${m.scheduler})` : ''}: ${m.answered}/${m.requests} answered by ${served}/${n} real servers; IPVS lists ${m.ipvs_reals.length}`
  const lines = [head, bars(m.spread)]
  if (m.health)
    lines.push(
      `health check: ${m.health.server} out of the table after ${m.health.removed_ms ?? '-'} ms, back ${m.health.readded_ms ?? '-'} ms after its start`,
    )
  return lines.join('\n')
}

/**
 * Counts which real server answers requests to the VIP, reads the active director's IPVS table,
 * and optionally proves the health check takes a stopped real server out and puts it back.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keepalivedLvsCheck = defineModule<LvsCheckParams, null>({
  name: 'keepalived.lvs_check',
  summary:
    'Verify an LVS virtual server from a client: spread over real servers, the IPVS table, health-check removal and return',
  example: [
    '- keepalived.lvs_check:',
    '    vip: 192.0.2.200',
    '    directors: [lvs-director-1, lvs-director-2]',
    '    real_servers: [{ name: lvs-real-1, address: 192.0.2.51 }, { name: lvs-real-2, address: 192.0.2.52 }]',
    '    health: { server: lvs-real-1, service: lighttpd }',
  ].join('\n'),
  params,
  verifies: true,
  async gather(ctx, p) {
    vipAddress(p.vip)
    requireHosts(ctx, 'keepalived.lvs_check', [
      ...p.directors,
      ...p.real_servers.map((r) => r.name),
    ])
    return null
  },
  plan(p) {
    const url = probeUrl(p.client_address ?? vipAddress(p.vip), p.port, p.path)
    return [
      {
        action: 'run',
        target: `LVS check of ${url}`,
        after: { requests: p.requests, real_servers: p.real_servers.map((r) => r.name) },
        note: `${p.requests} requests from this host${p.ipvs ? ', ipvsadm -Ln on the director holding the VIP' : ''}${p.health ? `, ${p.health.service} stopped and started on ${p.health.server}` : ''}`,
      },
    ]
  },
  async apply(ctx, p) {
    const m: LvsMeasurements = {
      url: probeUrl(p.client_address ?? vipAddress(p.vip), p.port, p.path),
      scheduler: null,
      director: null,
      requests: p.requests,
      answered: 0,
      spread: {},
      ipvs_reals: [],
      passed: false,
    }
    const why = await runCheck(ctx, p, m)
    m.passed = why === undefined
    const output = { ...m } as unknown as Record<string, unknown>
    if (why) return { failed: true, msg: `keepalived.lvs_check: ${why}\n${lvsDisplay(m)}`, output }
    return { changed: false, output }
  },
  output: (p) => ({
    url: probeUrl(p.client_address ?? vipAddress(p.vip), p.port, p.path),
    passed: unknown('passed'),
    spread: unknown('spread'),
    answered: unknown('answered'),
  }),
  // a plan's output has the figures unknown: nothing to draw yet
  display: (o) =>
    typeof o.url === 'string' && Array.isArray(o.ipvs_reals)
      ? lvsDisplay(o as unknown as LvsMeasurements)
      : undefined,
})
