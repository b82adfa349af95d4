import { describe, expect, it } from 'vitest'
import type { Connection, ExecOptions, ExecResult } from '../../../engine/connection/types.ts'
import {
  gapLimit,
  keepalivedFailover,
  linkDownScript,
  summary,
  type FailoverMeasurements,
} from '../../../modules/keepalived/failover.ts'
import { parsePing, pingStartScript, pingStopScript } from '../../../modules/keepalived/lib/ping.ts'
import { holderInterface } from '../../../modules/keepalived/lib/vip.ts'
import { holderOutput, keepalivedVipHolder } from '../../../modules/keepalived/vip-holder.ts'
import { testContext } from '../../helpers/context.ts'

const VIP = '192.0.2.254'

describe('ping -D -O output', () => {
  const reply = (t: number, seq: number, dup = false): string =>
    `[${t.toFixed(6)}] 64 bytes from ${VIP}: icmp_seq=${seq} ttl=64 time=0.061 ms${dup ? ' (DUP!)' : ''}`
  const none = (t: number, seq: number): string =>
    `[${t.toFixed(6)}] no answer yet for icmp_seq=${seq}`
  it.each([
    {
      name: 'no loss',
      lines: [reply(100, 1), reply(100.2, 2), reply(100.4, 3)],
      want: { sent: 3, received: 3, duplicates: 0, maxGapMs: 200, gapsMs: [] },
    },
    {
      name: 'a failover: 3 lost, then replies again',
      lines: [
        reply(100, 1),
        none(100.2, 2),
        none(100.4, 3),
        none(100.6, 4),
        reply(100.8, 5),
        reply(101, 6),
        '',
        `--- ${VIP} ping statistics ---`,
        '7 packets transmitted, 3 received, 57.1429% packet loss, time 1201ms',
      ],
      want: { sent: 7, received: 3, duplicates: 0, maxGapMs: 800, gapsMs: [800] },
    },
    {
      name: 'the VIP never came back: the silence at the end counts',
      lines: [reply(100, 1), reply(100.2, 2), none(100.4, 3), none(102.2, 12)],
      want: { sent: 12, received: 2, maxGapMs: 2000, gapsMs: [2000] },
    },
    {
      name: 'two hosts answering: duplicates',
      lines: [reply(100, 1), reply(100.001, 1, true), reply(100.2, 2)],
      want: { sent: 2, received: 2, duplicates: 1, maxGapMs: 200 },
    },
    {
      name: 'unreachable lines are not replies',
      lines: [
        reply(100, 1),
        `[100.400000] From 192.0.2.60 icmp_seq=2 Destination Host Unreachable`,
        reply(100.6, 3),
      ],
      want: { sent: 3, received: 2, maxGapMs: 600 },
    },
    {
      name: 'nothing at all',
      lines: ['PING 192.0.2.254 (192.0.2.254) 56(84) bytes of data.'],
      want: { sent: 0, received: 0, maxGapMs: 0, firstReplyAt: null },
    },
  ])('$name', ({ lines, want }) => {
    expect(parsePing(lines.join('\n'), 200)).toMatchObject(want)
  })

  it('starts ping in its own session with a deadline, and stops it with SIGINT for the summary', () => {
    expect(pingStartScript(VIP, 0.2, 150)).toContain(
      `setsid ping -D -O -n -i 0.2 -w 150 ${VIP} >"$f" 2>&1 </dev/null &`,
    )
    expect(pingStopScript(42, '/tmp/rb-failover.abc')).toMatch(/^kill -INT 42 /)
  })
})

describe('who holds the VIP', () => {
  const out = [
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
    '2: ens3    inet 192.0.2.11/24 brd 192.0.2.255 scope global ens3\\       valid_lft forever preferred_lft forever',
    '2: ens3    inet 192.0.2.254/24 scope global secondary ens3\\       valid_lft forever preferred_lft forever',
  ].join('\n')
  it('finds the VIP and its interface in ip -4 -o addr', () => {
    expect(holderInterface(out, VIP)).toBe('ens3')
    expect(holderInterface(out, '192.0.2.25')).toBeNull()
    expect(holderInterface('5: eth0@if6    inet 192.0.2.254/32 scope global eth0', VIP)).toBe(
      'eth0',
    )
  })
  it('reports one holder, or all of them when there are several', () => {
    expect(
      holderOutput(VIP, [
        { node: 'a', interface: 'ens3' },
        { node: 'b', interface: null },
      ]),
    ).toEqual({
      vip: VIP,
      holder: 'a',
      holders: ['a'],
      others: ['b'],
      interfaces: { a: 'ens3' },
    })
    expect(
      holderOutput(VIP, [
        { node: 'a', interface: 'ens3' },
        { node: 'b', interface: 'ens3' },
      ]),
    ).toMatchObject({ holder: null, holders: ['a', 'b'], others: [] })
    expect(keepalivedVipHolder.display?.({ vip: VIP, holders: ['a', 'b'] })).toBe(
      `${VIP} is on a and b (split brain)`,
    )
    expect(
      keepalivedVipHolder.plan(keepalivedVipHolder.params.parse({ vip: VIP, nodes: ['a'] }), []),
    ).toEqual([])
  })
})

describe('keepalived.failover plan and parameters', () => {
  it('plans one run change that says what it will do', () => {
    const p = keepalivedFailover.params.parse({
      vip: `${VIP}/24`,
      master: 'kld-vm-1',
      backups: ['kld-vm-2'],
    })
    expect(keepalivedFailover.plan(p, null)).toEqual([
      {
        action: 'run',
        target: `failover test of ${VIP}`,
        after: { how: 'stop', master: 'kld-vm-1', backups: ['kld-vm-2'], max_gap_ms: 3000 },
        note: 'ping it from this host, stop keepalived on kld-vm-1, then start it again, expect one backup to take it within 20 s',
      },
    ])
  })
  it('defaults the gap limit by how the master fails', () => {
    expect(gapLimit({ how: 'stop', max_gap_ms: undefined })).toBe(3000)
    expect(gapLimit({ how: 'link-down', max_gap_ms: undefined })).toBe(6000)
    expect(gapLimit({ how: 'link-down', max_gap_ms: 4000 })).toBe(4000)
  })
  it.each([
    [{ vip: VIP, master: 'a', backups: ['a'] }, /a is the master; it cannot be a backup too/],
    [{ vip: VIP, master: 'a', backups: ['b', 'b'] }, /a backup is listed twice/],
    [{ vip: VIP, master: 'a', backups: [] }, />=1 items/],
    [{ vip: VIP, master: 'a', backups: ['b'], how: 'kill' }, /stop|link-down/],
  ])('refuses %j', (params, message) => {
    const r = keepalivedFailover.params.safeParse(params)
    expect(r.error?.issues[0]?.message).toMatch(message)
  })
  it('takes the link down detached, late enough for its own answer to leave, and restores the routes', () => {
    const s = linkDownScript('ens3', 6)
    expect(s).toMatch(/^setsid -f \/bin\/sh -c '.*' >\/dev\/null 2>&1 <\/dev\/null$/s)
    expect(s.indexOf('sleep 0.5')).toBeLessThan(s.indexOf('link set dev'))
    expect(s).toContain('ip route replace $l dev')
  })
  it('summarises the measurements in one line', () => {
    const m: FailoverMeasurements = {
      vip: VIP,
      how: 'stop',
      observer: 'jump',
      holder_before: ['a'],
      holder_during: ['b'],
      holder_after: ['a'],
      failover_ms: 640,
      failback_ms: 1200,
      sent: 60,
      received: 57,
      lost: 3,
      duplicates: 0,
      max_gap_ms: 810,
      gaps_ms: [810],
      max_gap_limit_ms: 3000,
      ping_at: [],
      ping_interval_ms: 200,
      holder_samples: [],
      nodes: ['a', 'b'],
      started_at: 0,
      ended_at: 0,
      passed: true,
    }
    expect(summary(m)).toBe(
      `VIP ${VIP} (stop): a -> b -> a; failover 0.64 s, failback 1.20 s; longest gap 810 ms (limit 3000); 57/60 replies`,
    )
  })
})

/**
 * A pretend cluster behind fake connections: nodes answer `ip addr`, the service probe and its
 * actions; the observer answers the pinger's scripts from the timeline of who held the VIP.
 */
class Sim {
  readonly holders = new Set<string>()
  readonly running = new Map<string, boolean>()
  readonly timeline: { at: number; up: boolean }[] = []
  readonly linkDown = new Map<string, [number, number]>()
  readonly execsAt: { host: string; at: number }[] = []
  pingStart = 0
  constructor(
    readonly master: string,
    readonly backup: string,
    readonly o: {
      takeoverMs: number | null
      failbackMs: number
      splitBrain?: boolean
      startOn?: string
      /** The service stays unanswered this long after the failure (ping does not see it). */
      httpLagMs?: number
    },
  ) {
    this.holders.add(o.startOn ?? master)
    this.running.set(master, true).set(backup, true)
    this.mark()
  }
  private mark(): void {
    this.timeline.push({ at: Date.now(), up: this.holders.size > 0 })
  }
  private set(names: string[], later = 0): void {
    setTimeout(() => {
      this.holders.clear()
      for (const n of names) this.holders.add(n)
      this.mark()
    }, later)
  }
  fail(): void {
    this.httpDownUntil = Date.now() + (this.o.httpLagMs ?? 0)
    if (!this.o.splitBrain) this.set([])
    if (this.o.takeoverMs !== null)
      this.set(this.o.splitBrain ? [this.master, this.backup] : [this.backup], this.o.takeoverMs)
  }
  restore(): void {
    this.set([this.master], this.o.failbackMs)
  }
  /** The HTTP prober: a request every 100 ms from its start, answered while the service is up
   * (the VIP held, or `httpDownMs` after the failure when the service itself lags behind). */
  httpStart = 0
  httpDownUntil = 0
  private readonly httpLines: string[] = []
  http(): string {
    const now = Date.now()
    for (let t = this.httpStart + this.httpLines.length * 100; t <= now; t += 100) {
      const up =
        ([...this.timeline].reverse().find((e) => e.at <= t)?.up ?? false) &&
        t >= this.httpDownUntil
      this.httpLines.push(`${(t / 1000).toFixed(3)} ${up ? 'ok real-1' : 'fail'}`)
    }
    return `${this.httpLines.join('\n')}\n`
  }
  /** The pinger's file only grows: what was written stays written, as with the real one. */
  private readonly pingLines: string[] = []
  ping(final: boolean): string {
    const now = Date.now()
    for (
      let seq = this.pingLines.length + 1, t = this.pingStart + (seq - 1) * 200;
      t <= now;
      seq++, t += 200
    ) {
      const up = [...this.timeline].reverse().find((e) => e.at <= t)?.up ?? false
      this.pingLines.push(
        up
          ? `[${(t / 1000).toFixed(6)}] 64 bytes from ${VIP}: icmp_seq=${seq} ttl=64 time=0.1 ms`
          : `[${(t / 1000).toFixed(6)}] no answer yet for icmp_seq=${seq}`,
      )
    }
    const lines = [...this.pingLines]
    if (final)
      lines.push(
        `${lines.length} packets transmitted, ${lines.filter((l) => l.includes('bytes from')).length} received`,
      )
    return `${lines.join('\n')}\n`
  }
}

class FakeConn implements Connection {
  readonly kind = 'ssh' as const
  constructor(
    readonly host: string,
    private readonly sim: Sim,
  ) {}
  async exec(cmd: string, _opts?: ExecOptions): Promise<ExecResult> {
    const s = this.sim
    s.execsAt.push({ host: this.host, at: Date.now() })
    const ok = (stdout: string): ExecResult => ({ rc: 0, stdout, stderr: '' })
    if (cmd.includes('rb-http.XXXXXX')) {
      s.httpStart = Date.now()
      return ok('pid=4343\nfile=/tmp/rb-http.x\n')
    }
    if (cmd.includes('/tmp/rb-http.x')) return ok(s.http())
    if (cmd.includes('setsid ping')) {
      s.pingStart = Date.now()
      return ok('pid=4242\nfile=/tmp/rb-failover.x\n')
    }
    if (cmd.startsWith('cat ')) return ok(s.ping(false))
    if (cmd.startsWith('kill -INT')) return ok(s.ping(true))
    if (cmd.startsWith('ip -4 -o addr show'))
      return ok(
        s.holders.has(this.host) ? `2: ens3    inet ${VIP}/24 scope global secondary ens3\n` : '',
      )
    if (cmd.includes('echo init='))
      return ok(
        `init=sysv\nexists=1\nrunning=${s.running.get(this.host) ? 1 : 0}\nhow=pidof\npid=7\nenabled=1\n`,
      )
    if (/keepalived'? stop/.test(cmd)) {
      s.running.set(this.host, false)
      s.fail()
      return ok('')
    }
    if (/keepalived'? start/.test(cmd)) {
      s.running.set(this.host, true)
      s.restore()
      return ok('')
    }
    if (cmd.startsWith('setsid -f')) {
      const down = Date.now() + 500
      const seconds = Number(/sleep (\d+(?:\.\d+)?); ip link set dev \S+ up/.exec(cmd)?.[1] ?? 0)
      s.linkDown.set(this.host, [down, down + seconds * 1000])
      setTimeout(() => s.fail(), 500)
      setTimeout(() => s.restore(), 500 + seconds * 1000)
      return ok('')
    }
    throw new Error(`unexpected command on ${this.host}: ${cmd}`)
  }
  async readFile(): Promise<Buffer | null> {
    return null
  }
  async writeFile(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Runs the module against a Sim from the observer `jump`. */
async function runFailover(sim: Sim, params: Record<string, unknown>) {
  const ctx = testContext({
    conn: new FakeConn('jump', sim),
    others: { a: new FakeConn('a', sim), b: new FakeConn('b', sim) },
  })
  const inv = ctx.inventory as { hostVars: (n: string) => Record<string, unknown> | undefined }
  inv.hostVars = (n) => (['a', 'b', 'jump'].includes(n) ? {} : undefined)
  const p = keepalivedFailover.params.parse({
    vip: VIP,
    master: 'a',
    backups: ['b'],
    timeout: 3,
    settle: 0.3,
    ...params,
  })
  await keepalivedFailover.gather(ctx, p)
  const r = await keepalivedFailover.apply(ctx, p, keepalivedFailover.plan(p, null), null)
  return { r, out: r.output as unknown as FailoverMeasurements, ctx }
}

describe('keepalived.failover against a pretend cluster', () => {
  it('passes: the VIP moves to the backup and back, nothing left changed', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 300, failbackMs: 300 })
    const { r, out, ctx } = await runFailover(sim, {})
    expect(r.failed).toBeUndefined()
    expect(r.changed).toBe(false)
    expect(out).toMatchObject({
      passed: true,
      holder_before: ['a'],
      holder_during: ['b'],
      holder_after: ['a'],
      how: 'stop',
      observer: 'jump',
    })
    expect(out.failover_ms).toBeGreaterThanOrEqual(250)
    expect(out.failover_ms).toBeLessThan(1000)
    expect(out.failback_ms).toBeGreaterThanOrEqual(250)
    expect(out.max_gap_ms).toBeGreaterThanOrEqual(200)
    expect(out.max_gap_ms).toBeLessThan(1000)
    expect(out.received).toBeGreaterThan(10)
    expect(out.sent).toBeGreaterThanOrEqual(out.received)
    expect(ctx.messages).toEqual(
      expect.arrayContaining([
        'waiting for 192.0.2.254 to be on a alone',
        'waiting for 192.0.2.254 to answer pings from jump',
        'stopping keepalived on a',
        'waiting for a backup to take 192.0.2.254',
        'starting keepalived on a',
        'waiting for 192.0.2.254 to return to a',
      ]),
    )
    expect(sim.running.get('a')).toBe(true)
  })

  it('fails when no backup takes the VIP, with the measurements, and starts the service again', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: null, failbackMs: 100 })
    const { r, out } = await runFailover(sim, {})
    expect(r.failed).toBe(true)
    expect(r.msg).toMatch(
      /no backup \(b\) took 192.0.2.254 within 3 s after keepalived stopped on a; holders at the end: none\nVIP 192.0.2.254 \(stop\): a -> nobody -> nobody/,
    )
    expect(out.passed).toBe(false)
    expect(out.max_gap_ms).toBeGreaterThan(2500)
    expect(sim.running.get('a')).toBe(true)
  })

  it('fails on split brain: two holders at once', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 100, failbackMs: 100, splitBrain: true })
    const { r } = await runFailover(sim, {})
    expect(r.failed).toBe(true)
    expect(r.msg).toMatch(/split brain: a and b held the VIP at the same time for 1\.\d s/)
  })

  it('fails when the longest silence is over max_gap_ms', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 700, failbackMs: 100 })
    const { r, out } = await runFailover(sim, { max_gap_ms: 400 })
    expect(r.failed).toBe(true)
    expect(r.msg).toMatch(/the VIP was silent for \d+ ms, more than max_gap_ms 400/)
    expect(out.max_gap_ms).toBeGreaterThan(400)
    expect(out.holder_after).toEqual(['a'])
  })

  it('http: measures the service beside ping, and draws both timelines', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 700, failbackMs: 300 })
    const { r, out } = await runFailover(sim, { http: { port: 80 } })
    expect(r.failed).toBeUndefined()
    expect(out.http).toMatchObject({ url: 'http://192.0.2.254/', max_gap_limit_ms: 3000 })
    expect(out.http?.ok).toBeGreaterThan(10)
    expect(out.http?.served_by).toEqual({ 'real-1': out.http?.ok })
    expect(out.http?.max_gap_ms).toBeGreaterThanOrEqual(700)
    expect(out.http?.max_gap_ms).toBeLessThan(1500)
    expect(out.holder_samples.map((x) => x.holders)).toEqual([['a'], [], ['b'], ['a']])
    const shown = keepalivedFailover.display?.(out as unknown as Record<string, unknown>) ?? ''
    const [line, ping, http] = shown.split('\n')
    expect(line).toMatch(/; http longest gap \d+ ms \(limit 3000\), \d+\/\d+ answered$/)
    expect(ping).toMatch(
      /^ping 1+[×·]+2+[×·]*1+ +longest gap \d+ ms {2}\(1 char = 100 ms; VIP on 1=a 2=b; × no reply\)$/,
    )
    expect(http).toMatch(/^http 1+×+2+×*1+ +longest gap \d+ ms/)
  })

  it('http: fails when the service is silent longer than its limit, although ping is fine', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 100, failbackMs: 100, httpLagMs: 1500 })
    const { r, out } = await runFailover(sim, { http: { port: 8080, max_gap_ms: 1000 } })
    expect(r.failed).toBe(true)
    expect(r.msg).toMatch(
      /http:\/\/192\.0\.2\.254:8080\/ went unanswered for \d+ ms, more than http\.max_gap_ms 1000/,
    )
    expect(out.max_gap_ms).toBeLessThan(1000)
    expect(out.http?.max_gap_ms).toBeGreaterThan(1000)
  })

  it('refuses to start when the VIP is not on the master', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 100, failbackMs: 100, startOn: 'b' })
    const { r } = await runFailover(sim, {})
    expect(r.msg).toMatch(
      /192.0.2.254 is on b, not on the master a alone, after 3 s: nothing to fail over/,
    )
    expect(sim.running.get('a')).toBe(true)
  })

  it('link-down: leaves the master alone while its link is down, then sees the failback', async () => {
    const sim = new Sim('a', 'b', { takeoverMs: 400, failbackMs: 300 })
    const { r, out, ctx } = await runFailover(sim, { how: 'link-down', down_seconds: 2.5 })
    expect(r.failed).toBeUndefined()
    expect(r.changed).toBe(false)
    expect(out).toMatchObject({
      how: 'link-down',
      holder_before: ['a'],
      holder_during: ['b'],
      holder_after: ['a'],
    })
    expect(out.failover_ms).toBeGreaterThanOrEqual(300)
    const [down, up] = sim.linkDown.get('a') ?? [0, 0]
    expect(sim.execsAt.filter((e) => e.host === 'a' && e.at > down && e.at < up)).toEqual([])
    expect(ctx.messages).toContain('taking ens3 down on a for 2.5 s')
  })

  it('refuses to observe from a node of the cluster', async () => {
    const ctx = testContext({
      conn: new FakeConn('b', new Sim('a', 'b', { takeoverMs: 1, failbackMs: 1 })),
    })
    await expect(
      keepalivedFailover.gather(
        ctx,
        keepalivedFailover.params.parse({ vip: VIP, master: 'a', backups: ['b'] }),
      ),
    ).rejects.toThrow(/run it from a host outside the cluster \(the jumphost\), not from b/)
  })

  it('refuses hosts that are not in the inventory at plan time', async () => {
    const ctx = testContext({
      conn: new FakeConn('jump', new Sim('a', 'b', { takeoverMs: 1, failbackMs: 1 })),
    })
    await expect(
      keepalivedFailover.gather(
        ctx,
        keepalivedFailover.params.parse({ vip: VIP, master: 'a', backups: ['b'] }),
      ),
    ).rejects.toThrow(/'a' is not a host of the inventory/)
  })
})
