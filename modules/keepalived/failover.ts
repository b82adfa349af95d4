/**
 * `keepalived.failover`: the seed's last step as a task — "the VIP answers and survives the loss
 * of its master". It runs on the observer (the jumphost, where the clients' view is), pings the VIP
 * there the whole time, and acts on the nodes through ctx.connectTo: checks the VIP is on the
 * master, makes the master fail (keepalived stopped, or its link taken down), waits until exactly
 * one backup holds the VIP, restores the master, waits for the failback, and judges the ping
 * record. It leaves the world as it found it, so a pass is `changed: false`.
 */
import { performance } from 'node:perf_hooks'
import { z } from 'zod'
import { addressMaybeCidr } from '../../engine/values.ts'
import { quote } from '../../engine/connection/shell.ts'
import type { Connection } from '../../engine/connection/types.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import {
  actionScript,
  parseProbe,
  probeScript,
  type ServiceState,
} from '../host/lib/init-system.ts'
import { parseKv, sleep, tail } from '../host/lib/remote.ts'
import { whySilent } from './lib/silence.ts'
import {
  parsePing,
  pingReadScript,
  pingStartScript,
  pingStopScript,
  type PingStats,
} from './lib/ping.ts'
import { execOn, probeHolders, requireHosts, vipAddress, type HolderProbe } from './lib/vip.ts'
import { drawTimeline, type HolderSample } from './lib/draw.ts'
import {
  httpReadScript,
  httpStartScript,
  httpStopScript,
  parseHttp,
  probeUrl,
  type HttpStats,
} from './lib/http-probe.ts'

const ifname = z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'an interface name')

const params = z
  .strictObject({
    vip: addressMaybeCidr.describe('The virtual IP (`192.0.2.254` or `192.0.2.254/24`)'),
    master: z
      .string()
      .min(1)
      .describe('Inventory name of the node that holds the VIP now and is made to fail'),
    backups: z
      .array(z.string().min(1))
      .min(1)
      .describe('Inventory names of the nodes that may take the VIP over'),
    interface: ifname
      .optional()
      .describe(
        'Interface the VIP lives on (default: any on the nodes; for link-down, the one carrying the VIP on the master)',
      ),
    how: z
      .enum(['stop', 'link-down'])
      .default('stop')
      .describe(
        '`stop`: stop the service on the master, as the seed does; `link-down`: take its interface down for `down_seconds` (a crash: no goodbye advert)',
      ),
    service: z
      .string()
      .regex(/^[A-Za-z0-9@._:-]+$/)
      .default('keepalived')
      .describe('Service stopped and started again by `how: stop`'),
    down_seconds: z
      .number()
      .positive()
      .max(300)
      .default(6)
      .describe(
        'link-down: seconds the link stays down (longer than about 3 × advert_int + 1, or no backup notices)',
      ),
    max_gap_ms: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Longest allowed silence between two ping replies, in ms (default 3000 for stop, 6000 for link-down)',
      ),
    restore: z
      .boolean()
      .default(true)
      .describe('stop: start the service again afterwards (link-down always brings the link back)'),
    failback: z
      .boolean()
      .default(true)
      .describe(
        'After the restore, wait until the VIP is back on the master (false with nopreempt: any single holder will do)',
      ),
    timeout: z
      .number()
      .positive()
      .default(20)
      .describe('Seconds each phase may take (VIP answering, failover, failback)'),
    ping_interval: z
      .number()
      .min(0.01)
      .max(5)
      .default(0.2)
      .describe('Seconds between pings (below 0.2 needs become on the observer)'),
    settle: z
      .number()
      .min(0)
      .default(1)
      .describe(
        'Seconds of pinging after the last phase, so the failback’s own gap is measured too',
      ),
    http: z
      .strictObject({
        port: z.number().int().min(1).max(65535).default(80).describe('Service port on the VIP'),
        path: z.string().startsWith('/').default('/').describe('URL path fetched'),
        interval: z.number().min(0.05).max(5).default(0.1).describe('Seconds between requests'),
        timeout: z.number().positive().max(10).default(0.5).describe('Seconds per request'),
        max_gap_ms: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Longest allowed time without an answer (default: the ping limit)'),
      })
      .optional()
      .describe(
        'Also fetch http://VIP:port/path from the observer the whole time (curl), and judge the service’s own gap, not only ping’s',
      ),
  })
  .superRefine((p, ctx) => {
    if (p.backups.includes(p.master))
      ctx.addIssue({
        code: 'custom',
        path: ['backups'],
        message: `${p.master} is the master; it cannot be a backup too`,
      })
    if (new Set(p.backups).size !== p.backups.length)
      ctx.addIssue({ code: 'custom', path: ['backups'], message: 'a backup is listed twice' })
  })

/** keepalived.failover's parameters. */
export type FailoverParams = z.infer<typeof params>

/** A continuous silence of the VIP this long, seen on two holders at once, is split brain. */
export const SPLIT_BRAIN_MS = 1500
/** How long a phase's outcome must hold before it counts (one poll later, at least this long). */
export const CONFIRM_MS = 1000
const POLL_MS = 100

/** What a run of the test measured; register gets it, failed or not. */
export interface FailoverMeasurements {
  vip: string
  how: 'stop' | 'link-down'
  observer: string
  holder_before: string[]
  holder_during: string[]
  holder_after: string[]
  /** From the failure to the first poll that saw a single backup holding the VIP (controller clock). */
  failover_ms: number | null
  /** From the restore to the first poll that saw the VIP back on the master alone. */
  failback_ms: number | null
  sent: number
  received: number
  lost: number
  duplicates: number
  /** Longest silence between two replies, on the observer's clock. */
  max_gap_ms: number
  gaps_ms: number[]
  max_gap_limit_ms: number
  /** The HTTP prober's figures, when `http` was given. */
  http?: {
    url: string
    sent: number
    ok: number
    max_gap_ms: number
    gaps_ms: number[]
    max_gap_limit_ms: number
    /** Answers per page body (the real server that served them). */
    served_by: Record<string, number>
    /** Observer time (epoch ms) of every answer: the timeline's data. */
    ok_at: number[]
  }
  /** Observer time (epoch ms) of every ping reply, and the interval they were sent at. */
  ping_at: number[]
  ping_interval_ms: number
  /** Who held the VIP, at each change seen by the polls (controller clock, epoch ms). */
  holder_samples: HolderSample[]
  /** The nodes in the order the timeline numbers them (master first). */
  nodes: string[]
  started_at: number
  ended_at: number
  passed: boolean
}

/** The default gap limit: a graceful stop costs under a second, a lost link about 3 adverts more. */
export function gapLimit(p: Pick<FailoverParams, 'max_gap_ms' | 'how'>): number {
  return p.max_gap_ms ?? (p.how === 'stop' ? 3000 : 6000)
}

/**
 * The detached script that takes `iface` down for `seconds` and brings it back with the routes
 * the kernel dropped with it (the default route a DHCP client would restore). It waits half a
 * second first, so the answer to the command that started it leaves before the link goes.
 */
export function linkDownScript(iface: string, seconds: number): string {
  const i = quote(iface)
  const body = [
    'sleep 0.5',
    `r=$(ip -4 route show dev ${i} | grep -v "proto kernel" | sed "s/ linkdown//")`,
    `ip link set dev ${i} down`,
    `sleep ${seconds}`,
    `ip link set dev ${i} up`,
    `for n in 1 2 3; do printf "%s\\n" "$r" | while read -r l; do [ -n "$l" ] && ip route replace $l dev ${i}; done; sleep 0.2; done`,
  ].join('; ')
  return `setsid -f /bin/sh -c ${quote(body)} >/dev/null 2>&1 </dev/null`
}

function fmtS(ms: number | null): string {
  return ms === null ? '-' : `${(ms / 1000).toFixed(2)} s`
}

/** The timelines (ping, and http when measured) under the summary. */
export function drawings(m: FailoverMeasurements): string {
  const common = {
    samples: m.holder_samples,
    nodes: m.nodes,
    from: m.started_at,
    to: m.ended_at,
  }
  const lines = [
    drawTimeline({
      ...common,
      label: 'ping',
      replies: m.ping_at,
      gapAfterMs: m.ping_interval_ms * 2.5,
      maxGapMs: m.max_gap_ms,
    }),
  ]
  if (m.http)
    lines.push(
      drawTimeline({
        ...common,
        label: 'http',
        replies: m.http.ok_at,
        gapAfterMs: HTTP_GAP_AFTER_MS,
        maxGapMs: m.http.max_gap_ms,
      }),
    )
  return lines.join('\n')
}

/** An HTTP silence longer than this is a gap (a request every 100 ms plus its own time). */
export const HTTP_GAP_AFTER_MS = 500

/** One line with the measurements, for messages and the run's output. */
export function summary(m: FailoverMeasurements): string {
  const path = [m.holder_before, m.holder_during, m.holder_after]
    .map((h) => (h.length ? h.join('+') : 'nobody'))
    .join(' -> ')
  return `VIP ${m.vip} (${m.how}): ${path}; failover ${fmtS(m.failover_ms)}, failback ${fmtS(m.failback_ms)}; longest gap ${m.max_gap_ms} ms (limit ${m.max_gap_limit_ms}); ${m.received}/${m.sent} replies${m.duplicates ? `, ${m.duplicates} duplicates` : ''}${m.http ? `; http longest gap ${m.http.max_gap_ms} ms (limit ${m.http.max_gap_limit_ms}), ${m.http.ok}/${m.http.sent} answered` : ''}`
}

interface Watch {
  ok: boolean
  holders: string[]
  probes: HolderProbe[]
  /** performance.now() of the first poll of the run of polls that satisfied the wish. */
  at: number
  splitMs: number
}

/**
 * Holder polls recorded for the timeline, per running test. A side table rather than one more
 * parameter of watchHolders, whose positional signature issue 13 replaces.
 */
const recorders = new WeakMap<ModuleContext, HolderSample[]>()

function record(ctx: ModuleContext, holders: string[]): void {
  const r = recorders.get(ctx)
  const last = r?.[r.length - 1]
  if (r && (!last || last.holders.join() !== holders.join()))
    r.push({ at: Date.now(), holders: [...holders] })
}

/** What `watchHolders` watches for: which nodes, the VIP on which interface, the wish, how long. */
interface Watched {
  nodes: readonly string[]
  vip: string
  iface: string | undefined
  wish: (h: string[]) => boolean
  timeoutMs: number
}

/** Polls who holds the VIP until `wish` holds for CONFIRM_MS, split brain lasts, or time runs out. */
async function watchHolders(
  ctx: ModuleContext,
  { nodes, vip, iface, wish, timeoutMs }: Watched,
): Promise<Watch> {
  const start = performance.now()
  let okSince: number | null = null
  let multiSince: number | null = null
  let splitMs = 0
  for (;;) {
    const probes = await probeHolders(ctx, nodes, vip, iface)
    const now = performance.now()
    const holders = probes.filter((x) => x.interface !== null).map((x) => x.node)
    record(ctx, holders)
    if (holders.length > 1) {
      multiSince ??= now
      splitMs = Math.max(splitMs, now - multiSince)
    } else multiSince = null
    if (wish(holders)) {
      okSince ??= now
      if (now - okSince >= CONFIRM_MS) return { ok: true, holders, probes, at: okSince, splitMs }
    } else okSince = null
    if (splitMs > SPLIT_BRAIN_MS || (okSince === null && now - start > timeoutMs))
      return { ok: false, holders, probes, at: now, splitMs }
    await sleep(POLL_MS, ctx.signal)
  }
}

/** The service on a node, as `service` sees it. */
async function serviceState(
  ctx: ModuleContext,
  conn: Connection,
  name: string,
): Promise<ServiceState> {
  const r = await execOn(ctx, conn, probeScript(name, undefined), { idempotent: true })
  if (r.rc !== 0)
    throw new RunbookError(
      'E_COMMAND',
      `${conn.host}: cannot read the state of ${name}: ${tail(r.stderr || r.stdout)}`,
    )
  return parseProbe(parseKv(r.stdout))
}

/** Starts the service on the master and waits until it runs. */
async function startService(
  ctx: ModuleContext,
  conn: Connection,
  name: string,
  timeoutMs: number,
): Promise<void> {
  const s = await serviceState(ctx, conn, name)
  const r = await execOn(ctx, conn, actionScript(s.init, name, 'start'))
  const until = performance.now() + timeoutMs
  while (!(await serviceState(ctx, conn, name)).running) {
    if (performance.now() > until)
      throw new RunbookError(
        'E_MODULE',
        `${conn.host}: ${name} is not running after start (rc ${r.rc}): ${tail(r.stdout + r.stderr, 5)}`,
      )
    await sleep(200, ctx.signal)
  }
}

/** The observer's pinger: started, read while it runs, stopped and parsed. */
class Pinger {
  private constructor(
    private readonly ctx: ModuleContext,
    private readonly conn: Connection,
    private readonly pid: number,
    private readonly file: string,
    private readonly intervalMs: number,
  ) {}

  static async start(
    ctx: ModuleContext,
    vip: string,
    intervalS: number,
    deadlineS: number,
  ): Promise<Pinger> {
    const conn = await ctx.conn()
    const r = await execOn(ctx, conn, pingStartScript(vip, intervalS, deadlineS))
    const kv = parseKv(r.stdout)
    if (r.rc !== 0 || !kv.pid || !kv.file)
      throw new RunbookError(
        'E_COMMAND',
        `${ctx.host}: cannot start ping ${vip} (rc ${r.rc}): ${tail(r.stderr || r.stdout)}`,
      )
    return new Pinger(ctx, conn, Number(kv.pid), kv.file, intervalS * 1000)
  }

  async read(): Promise<PingStats> {
    const r = await execOn(this.ctx, this.conn, pingReadScript(this.file), { idempotent: true })
    return parsePing(r.stdout, this.intervalMs)
  }

  async stop(): Promise<PingStats> {
    const r = await execOn(this.ctx, this.conn, pingStopScript(this.pid, this.file))
    return parsePing(r.stdout, this.intervalMs)
  }
}

/** The observer's HTTP prober: started, read while it runs, stopped and parsed. */
class HttpProber {
  private constructor(
    private readonly ctx: ModuleContext,
    private readonly conn: Connection,
    private readonly pid: number,
    private readonly file: string,
  ) {}

  static async start(ctx: ModuleContext, url: string, o: HttpOptions, deadlineS: number) {
    const conn = await ctx.conn()
    const r = await execOn(
      ctx,
      conn,
      httpStartScript({ url, intervalS: o.interval, timeoutS: o.timeout, deadlineS }),
    )
    const kv = parseKv(r.stdout)
    if (r.rc !== 0 || !kv.pid || !kv.file)
      throw new RunbookError(
        'E_COMMAND',
        `${ctx.host}: cannot start fetching ${url} (rc ${r.rc}): ${tail(r.stderr || r.stdout)}`,
      )
    return new HttpProber(ctx, conn, Number(kv.pid), kv.file)
  }

  async read(): Promise<HttpStats> {
    const r = await execOn(this.ctx, this.conn, httpReadScript(this.file), { idempotent: true })
    return parseHttp(r.stdout, HTTP_GAP_AFTER_MS)
  }

  async stop(): Promise<HttpStats> {
    const r = await execOn(this.ctx, this.conn, httpStopScript(this.pid, this.file))
    return parseHttp(r.stdout, HTTP_GAP_AFTER_MS)
  }
}

type HttpOptions = NonNullable<FailoverParams['http']>

/** Replies the pinger must have before the master is failed: a baseline, not a lucky first echo. */
export const BASELINE_REPLIES = 3

/** Waits until the VIP has answered the observer's pings (and requests) a few times. */
async function baseline(
  ctx: ModuleContext,
  probers: { pinger: Pinger; http?: HttpProber | undefined },
  timeoutMs: number,
): Promise<boolean> {
  const until = performance.now() + timeoutMs
  for (;;) {
    if (
      (await probers.pinger.read()).received >= BASELINE_REPLIES &&
      (!probers.http || (await probers.http.read()).ok >= BASELINE_REPLIES)
    )
      return true
    if (performance.now() > until) return false
    await sleep(200, ctx.signal)
  }
}

/** The test itself; fills `m` as it goes and returns why it failed, if it did. */
async function runTest(
  ctx: ModuleContext,
  p: FailoverParams,
  m: FailoverMeasurements,
  probers: { pinger: Pinger; http?: HttpProber | undefined },
  restoreOnError: { pending?: (() => Promise<void>) | undefined },
): Promise<string | undefined> {
  const vip = m.vip
  const timeoutMs = p.timeout * 1000
  const nodes = [p.master, ...p.backups]
  ctx.progress(`waiting for ${vip} to be on ${p.master} alone`)
  const before = await watchHolders(ctx, {
    nodes,
    vip,
    iface: p.interface,
    wish: (h) => h.length === 1 && h[0] === p.master,
    timeoutMs,
  })
  m.holder_before = before.holders
  if (!before.ok) {
    const where = before.holders.length === 0 ? 'on no node' : `on ${before.holders.join(' and ')}`
    return verdictOf(
      before,
      `${vip} is ${where}, not on the master ${p.master} alone, after ${p.timeout} s: nothing to fail over`,
    )
  }
  ctx.progress(
    `waiting for ${vip} to answer ${probers.http ? 'pings and requests' : 'pings'} from ${ctx.host}`,
  )
  if (!(await baseline(ctx, probers, timeoutMs))) {
    const silent = `${vip} does not answer ${probers.http ? `pings and ${m.http?.url ?? 'requests'}` : 'pings'} from ${ctx.host} within ${p.timeout} s`
    // the holder's own address tells a port that may not send from the VIP from a closed path
    const why = await whySilent(ctx, vip, nodes).catch(() => undefined)
    return why === undefined ? `${silent}, although ${p.master} holds it` : `${silent}: ${why}`
  }
  const iface =
    p.interface ?? before.probes.find((x) => x.node === p.master)?.interface ?? undefined
  const master = await ctx.connectTo(p.master)

  let failedAt: number
  let restoredAt: number
  if (p.how === 'stop') {
    ctx.progress(`stopping ${p.service} on ${p.master}`)
    const s = await serviceState(ctx, master, p.service)
    // From here on, whatever happens, the service is started again (starting a running one is harmless).
    restoreOnError.pending = p.restore
      ? () => startService(ctx, master, p.service, timeoutMs)
      : undefined
    failedAt = performance.now()
    const r = await execOn(ctx, master, actionScript(s.init, p.service, 'stop'))
    if (r.rc !== 0)
      throw new RunbookError(
        'E_COMMAND',
        `${p.master}: stopping ${p.service} failed (rc ${r.rc}): ${tail(r.stdout + r.stderr)}`,
      )
    // Init scripts report success even when they could not signal the daemon (no root): check.
    const stopBy = performance.now() + 5000
    while ((await serviceState(ctx, master, p.service)).running) {
      if (performance.now() > stopBy) {
        throw new RunbookError(
          'E_COMMAND',
          `${p.master}: ${p.service} is still running after \`stop\` (rc ${r.rc})${ctx.become ? '' : ': stopping a service needs root'}: ${tail(r.stdout + r.stderr)}`,
          { hint: ctx.become ? undefined : 'add `become: true` to the task or play' },
        )
      }
      await new Promise((res) => setTimeout(res, 200))
    }
    ctx.progress(`waiting for a backup to take ${vip}`)
    const during = await watchHolders(ctx, {
      nodes,
      vip,
      iface: p.interface,
      wish: (h) => h.length === 1 && h[0] !== p.master,
      timeoutMs,
    })
    m.holder_during = during.holders
    if (during.ok) m.failover_ms = Math.round(during.at - failedAt)
    if (!during.ok)
      return verdictOf(
        during,
        `no backup (${p.backups.join(', ')}) took ${vip} within ${p.timeout} s after ${p.service} stopped on ${p.master}`,
      )
    if (!p.restore) return undefined
    ctx.progress(`starting ${p.service} on ${p.master}`)
    restoredAt = performance.now()
    await startService(ctx, master, p.service, timeoutMs)
    restoreOnError.pending = undefined
  } else {
    if (!iface) return `cannot tell which interface of ${p.master} carries ${vip}; give interface`
    ctx.progress(`taking ${iface} down on ${p.master} for ${p.down_seconds} s`)
    const sent = performance.now()
    const r = await execOn(ctx, master, linkDownScript(iface, p.down_seconds))
    if (r.rc !== 0)
      throw new RunbookError(
        'E_COMMAND',
        `${p.master}: cannot take ${iface} down (rc ${r.rc}): ${tail(r.stdout + r.stderr)}`,
      )
    // The detached script waits 0.5 s after it started, about half a round trip after `sent`.
    failedAt = (sent + performance.now()) / 2 + 500
    const upAt = failedAt + p.down_seconds * 1000
    restoredAt = upAt
    ctx.progress(`waiting for a backup to take ${vip} (${p.master} is unreachable meanwhile)`)
    // The master cannot be asked while its link is down (its SSH session stalls): backups only.
    const during = await watchHolders(ctx, {
      nodes: p.backups,
      vip,
      iface: p.interface,
      wish: (h) => h.length === 1,
      timeoutMs: Math.min(timeoutMs, upAt - performance.now() - CONFIRM_MS),
    })
    m.holder_during = during.holders
    if (during.ok) m.failover_ms = Math.round(during.at - failedAt)
    if (!during.ok) {
      await sleep(Math.max(0, upAt - performance.now()) + 500, ctx.signal)
      return verdictOf(
        during,
        `no backup (${p.backups.join(', ')}) took ${vip} while ${p.master}'s ${iface} was down (${p.down_seconds} s; a backup needs about 3 × advert_int + 1 s to notice)`,
      )
    }
    ctx.progress(`waiting for ${iface} on ${p.master} to come back`)
    await sleep(Math.max(0, upAt - performance.now()) + 300, ctx.signal)
  }

  const wantMaster = p.failback
  ctx.progress(
    wantMaster
      ? `waiting for ${vip} to return to ${p.master}`
      : `waiting for ${vip} to settle on one node`,
  )
  const after = await watchHolders(ctx, {
    nodes,
    vip,
    iface: p.interface,
    wish: (h) => (wantMaster ? h.length === 1 && h[0] === p.master : h.length === 1),
    timeoutMs,
  })
  m.holder_after = after.holders
  if (after.ok && wantMaster) m.failback_ms = Math.max(0, Math.round(after.at - restoredAt))
  if (!after.ok)
    return verdictOf(
      after,
      wantMaster
        ? `${vip} did not return to ${p.master} within ${p.timeout} s after the restore (nopreempt? then set failback: false)`
        : `${vip} did not settle on one node within ${p.timeout} s after the restore`,
    )
  return undefined
}

function verdictOf(w: Watch, otherwise: string): string {
  if (w.splitMs > SPLIT_BRAIN_MS)
    return `split brain: ${w.holders.join(' and ')} held the VIP at the same time for ${(w.splitMs / 1000).toFixed(1)} s`
  return `${otherwise}; holders at the end: ${w.holders.length ? w.holders.join(', ') : 'none'}`
}

/**
 * Pings the VIP from this host while its master fails and comes back; fails with the
 * measurements when the VIP did not move, moved to two nodes, or the gap was too long.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keepalivedFailover = defineModule<FailoverParams, null>({
  name: 'keepalived.failover',
  summary:
    'Verify from an observer host that a VIP keeps answering while its master fails (service stop or link down) and comes back',
  example: [
    '- name: The VIP survives the loss of its master',
    '  keepalived.failover:',
    '    vip: 192.0.2.254',
    '    master: kld-vm-1',
    '    backups: [kld-vm-2]',
    '    how: stop                 # or link-down: a crash, no goodbye advert',
    '    max_gap_ms: 3000',
    '  register: failover',
  ].join('\n'),
  params,
  verifies: true,
  async gather(ctx, p) {
    vipAddress(p.vip)
    // A node pinging a VIP it may hold itself measures nothing a client would see.
    if (p.master === ctx.host || p.backups.includes(ctx.host))
      throw new RunbookError(
        'E_PARAM',
        `keepalived.failover: run it from a host outside the cluster (the jumphost), not from ${ctx.host}`,
      )
    requireHosts(ctx, 'keepalived.failover', [p.master, ...p.backups])
    return null
  },
  plan(p) {
    const act =
      p.how === 'stop'
        ? `stop ${p.service} on ${p.master}${p.restore ? ', then start it again' : ' (left stopped)'}`
        : `take ${p.interface ?? 'the VIP’s interface'} on ${p.master} down for ${p.down_seconds} s`
    return [
      {
        action: 'run',
        target: `failover test of ${vipAddress(p.vip)}`,
        after: { how: p.how, master: p.master, backups: p.backups, max_gap_ms: gapLimit(p) },
        note: `ping it from this host, ${act}, expect one backup to take it within ${p.timeout} s`,
      },
    ]
  },
  async apply(ctx, p) {
    const m: FailoverMeasurements = {
      vip: vipAddress(p.vip),
      how: p.how,
      observer: ctx.host,
      holder_before: [],
      holder_during: [],
      holder_after: [],
      failover_ms: null,
      failback_ms: null,
      sent: 0,
      received: 0,
      lost: 0,
      duplicates: 0,
      max_gap_ms: 0,
      gaps_ms: [],
      max_gap_limit_ms: gapLimit(p),
      ping_at: [],
      ping_interval_ms: Math.round(p.ping_interval * 1000),
      holder_samples: [],
      nodes: [p.master, ...p.backups],
      started_at: Date.now(),
      ended_at: 0,
      passed: false,
    }
    const url = p.http ? probeUrl(m.vip, p.http.port, p.http.path) : undefined
    if (p.http && url)
      m.http = {
        url,
        sent: 0,
        ok: 0,
        max_gap_ms: 0,
        gaps_ms: [],
        max_gap_limit_ms: p.http.max_gap_ms ?? gapLimit(p),
        served_by: {},
        ok_at: [],
      }
    recorders.set(ctx, m.holder_samples)
    // ping's own deadline: it stops by itself even if this process dies mid-test.
    const deadline = 4 * p.timeout + p.down_seconds + p.settle + 60
    const pinger = await Pinger.start(ctx, m.vip, p.ping_interval, deadline)
    const http =
      p.http && url
        ? await HttpProber.start(ctx, url, p.http, deadline).catch(async (e: unknown) => {
            await pinger.stop().catch(() => undefined)
            throw e
          })
        : undefined
    const restoreOnError: { pending?: (() => Promise<void>) | undefined } = {}
    let why: string | undefined
    let stats: PingStats | undefined
    let httpStats: HttpStats | undefined
    try {
      why = await runTest(ctx, p, m, { pinger, http }, restoreOnError)
      if (!why && p.settle > 0) await sleep(p.settle * 1000, ctx.signal)
    } finally {
      // Leave the world as found even when the test failed half-way: the service runs again.
      const pending = restoreOnError.pending
      if (pending) await pending().catch(() => undefined)
      stats = await pinger.stop().catch(() => undefined)
      httpStats = await http?.stop().catch(() => undefined)
      m.ended_at = Date.now()
      recorders.delete(ctx)
    }
    if (httpStats && m.http)
      Object.assign(m.http, {
        sent: httpStats.sent,
        ok: httpStats.ok,
        max_gap_ms: httpStats.maxGapMs,
        gaps_ms: httpStats.gapsMs,
        served_by: httpStats.servedBy,
        ok_at: httpStats.okAt,
      })
    if (stats)
      Object.assign(m, {
        sent: stats.sent,
        received: stats.received,
        lost: Math.max(0, stats.sent - stats.received),
        duplicates: stats.duplicates,
        max_gap_ms: stats.maxGapMs,
        gaps_ms: stats.gapsMs,
        ping_at: stats.replyAt,
      })
    if (!why && m.max_gap_ms > m.max_gap_limit_ms)
      why = `the VIP was silent for ${m.max_gap_ms} ms, more than max_gap_ms ${m.max_gap_limit_ms}`
    if (!why && m.http && m.http.max_gap_ms > m.http.max_gap_limit_ms)
      why = `${m.http.url} went unanswered for ${m.http.max_gap_ms} ms, more than http.max_gap_ms ${m.http.max_gap_limit_ms}`
    m.passed = why === undefined
    const output = { ...m }
    const changed = p.how === 'stop' && !p.restore
    if (why)
      return {
        failed: true,
        changed,
        msg: `keepalived.failover: ${why}\n${summary(m)}\n${drawings(m)}`,
        output,
      }
    return { changed, output }
  },
  output: (p, _s) => ({
    vip: vipAddress(p.vip),
    how: p.how,
    passed: unknown('passed'),
    failover_ms: unknown('failover_ms'),
    failback_ms: unknown('failback_ms'),
    max_gap_ms: unknown('max_gap_ms'),
    sent: unknown('sent'),
    received: unknown('received'),
  }),
  display: (o) => {
    if (typeof o.vip !== 'string' || !Array.isArray(o.holder_before)) return undefined
    const m = o as unknown as FailoverMeasurements
    if (!Array.isArray(m.ping_at) || !m.started_at) return summary(m)
    return `${summary(m)}\n${drawings(m)}`
  },
})
