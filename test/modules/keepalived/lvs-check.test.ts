import { describe, expect, it } from 'vitest'
import type { Connection, ExecResult } from '../../../engine/connection/types.ts'
import { parseIpvsadm } from '../../../modules/keepalived/lib/ipvs.ts'
import { keepalivedLvsCheck, type LvsMeasurements } from '../../../modules/keepalived/lvs-check.ts'
import { testContext } from '../../helpers/context.ts'

const VIP = '192.0.2.200'
const IPVSADM = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.200:80 rr
  -> 192.0.2.51:80                Route   1      0          0
  -> 192.0.2.52:80                Route   0      0          3
`

describe('parseIpvsadm', () => {
  it('reads services and their real servers, with forwarding and weight', () => {
    expect(parseIpvsadm(IPVSADM)).toEqual([
      {
        protocol: 'TCP',
        address: VIP,
        port: 80,
        scheduler: 'rr',
        reals: [
          { address: '192.0.2.51', port: 80, forward: 'Route', weight: 1 },
          { address: '192.0.2.52', port: 80, forward: 'Route', weight: 0 },
        ],
      },
    ])
  })
})

const REALS = [
  { name: 'r1', address: '192.0.2.51' },
  { name: 'r2', address: '192.0.2.52' },
  { name: 'r3', address: '192.0.2.53' },
]

/** A pretend LVS: d1 holds the VIP, the checker follows each web server after `lagMs`. */
class Lvs {
  readonly web = new Map(REALS.map((r) => [r.name, true]))
  readonly inTable = new Map(REALS.map((r) => [r.name, true]))
  next = 0
  readonly urls: string[] = []
  constructor(readonly o: { lagMs: number; neverReadd?: boolean; silent?: string }) {}
  setWeb(name: string, up: boolean): void {
    this.web.set(name, up)
    if (!up || !this.o.neverReadd) setTimeout(() => this.inTable.set(name, up), this.o.lagMs)
  }
  request(): string {
    const live = REALS.filter((r) => this.inTable.get(r.name))
    const r = live[this.next++ % live.length]
    if (!r || !this.web.get(r.name) || r.name === this.o.silent) return '0 fail'
    return `0 ok ${r.name}`
  }
}

class Fake implements Connection {
  readonly kind = 'ssh' as const
  constructor(
    readonly host: string,
    private readonly lvs: Lvs,
  ) {}
  async exec(cmd: string): Promise<ExecResult> {
    const ok = (stdout: string): ExecResult => ({ rc: 0, stdout, stderr: '' })
    if (cmd.startsWith('ip -4 -o addr show'))
      return ok(this.host === 'd1' ? `2: ens3    inet ${VIP}/32 scope global ens3\n` : '')
    if (cmd.includes('curl -fsS')) {
      this.lvs.urls.push(/'?(http:\/\/[^' ]+)/.exec(cmd)?.[1] ?? '')
      const n = Number(/-lt (\d+)/.exec(cmd)?.[1])
      return ok(`${Array.from({ length: n }, () => this.lvs.request()).join('\n')}\n`)
    }
    if (cmd.includes('ipvsadm -Ln'))
      return ok(
        `TCP  ${VIP}:80 rr\n${REALS.filter((r) => this.lvs.inTable.get(r.name))
          .map((r) => `  -> ${r.address}:80  Route 1 0 0`)
          .join('\n')}\n`,
      )
    if (cmd.includes('echo init='))
      return ok(`init=sysv\nexists=1\nrunning=${this.lvs.web.get(this.host) ? 1 : 0}\nenabled=1\n`)
    if (/lighttpd'? stop/.test(cmd)) return (this.lvs.setWeb(this.host, false), ok(''))
    if (/lighttpd'? start/.test(cmd)) return (this.lvs.setWeb(this.host, true), ok(''))
    throw new Error(`unexpected command on ${this.host}: ${cmd}`)
  }
  async readFile(): Promise<Buffer | null> {
    return null
  }
  async writeFile(): Promise<void> {}
  async close(): Promise<void> {}
}

async function run(lvs: Lvs, params: Record<string, unknown>) {
  const others = Object.fromEntries(
    ['d1', 'd2', 'r1', 'r2', 'r3'].map((h) => [h, new Fake(h, lvs)]),
  )
  const ctx = testContext({ conn: new Fake('jump', lvs), others })
  const inv = ctx.inventory as { hostVars: (n: string) => Record<string, unknown> | undefined }
  inv.hostVars = (n) => (n in others || n === 'jump' ? {} : undefined)
  const p = keepalivedLvsCheck.params.parse({
    vip: VIP,
    directors: ['d1', 'd2'],
    real_servers: REALS,
    requests: 9,
    ...params,
  })
  await keepalivedLvsCheck.gather(ctx, p)
  const r = await keepalivedLvsCheck.apply(ctx, p, keepalivedLvsCheck.plan(p, null), null)
  return { r, m: r.output as unknown as LvsMeasurements, lvs }
}

describe('keepalived.lvs_check against a pretend LVS', () => {
  it('counts the spread, reads the table, and takes a real server out and back', async () => {
    const { r, m, lvs } = await run(new Lvs({ lagMs: 300 }), {
      health: { server: 'r1', service: 'lighttpd', timeout: 3 },
    })
    expect(r.failed, r.msg).toBeUndefined()
    expect(r.changed).toBe(false)
    expect(m).toMatchObject({
      director: 'd1',
      scheduler: 'rr',
      answered: 9,
      spread: { r1: 3, r2: 3, r3: 3 },
      ipvs_reals: ['192.0.2.51:80', '192.0.2.52:80', '192.0.2.53:80'],
      passed: true,
    })
    expect(m.health?.removed_ms).toBeGreaterThanOrEqual(250)
    expect(m.health?.readded_ms).toBeGreaterThanOrEqual(250)
    expect(m.health?.spread_without.r1).toBe(0)
    expect(lvs.web.get('r1')).toBe(true)
    const shown = keepalivedLvsCheck.display?.(m as unknown as Record<string, unknown>) ?? ''
    expect(shown.split('\n')).toEqual([
      'LVS http://192.0.2.200/ via d1 (rr): 9/9 answered by 3/3 real servers; IPVS lists 3',
      expect.stringMatching(/^r1 █{20}\s+3 \(33%\)$/),
      expect.stringMatching(/^r2 █{20}\s+3 \(33%\)$/),
      expect.stringMatching(/^r3 █{20}\s+3 \(33%\)$/),
      expect.stringMatching(
        /^health check: r1 out of the table after \d+ ms, back \d+ ms after its start$/,
      ),
    ])
  })

  it('fails when a real server does not answer, naming how many did', async () => {
    const { r } = await run(new Lvs({ lagMs: 0, silent: 'r2' }), {})
    expect(r.failed).toBe(true)
    expect(r.msg).toMatch(/3 of 9 requests to http:\/\/192\.0\.2\.200\/ were not answered/)
  })

  it('accepts one answering server when min_servers says so (lblc keeps a client on one)', async () => {
    const lvs = new Lvs({ lagMs: 0 })
    lvs.inTable.set('r2', false).set('r3', false)
    const { r, m } = await run(lvs, { min_servers: 1, ipvs: false })
    expect(r.failed).toBeUndefined()
    expect(m.spread).toEqual({ r1: 9, r2: 0, r3: 0 })
  })

  it('fails when the table does not list every real server', async () => {
    const lvs = new Lvs({ lagMs: 0 })
    lvs.inTable.set('r3', false)
    const { r } = await run(lvs, { min_servers: 2 })
    expect(r.msg).toMatch(/ipvsadm -Ln on d1 does not list r3 \(192\.0\.2\.53\)/)
  })

  it('fails when the checker never puts a real server back, and starts its service anyway', async () => {
    const { r, lvs } = await run(new Lvs({ lagMs: 100, neverReadd: true }), {
      health: { server: 'r2', service: 'lighttpd', timeout: 1 },
    })
    expect(r.msg).toMatch(/r2 not back in d1's IPVS table 1 s after lighttpd started/)
    expect(lvs.web.get('r2')).toBe(true)
  })
})

describe('keepalived.lvs_check in a plan', () => {
  it('plans one run change, and draws nothing while its figures are unknown', () => {
    const p = keepalivedLvsCheck.params.parse({
      vip: VIP,
      directors: ['d1', 'd2'],
      real_servers: REALS,
      health: { server: 'r1', service: 'nginx' },
    })
    expect(keepalivedLvsCheck.plan(p, null)).toEqual([
      {
        action: 'run',
        target: 'LVS check of http://192.0.2.200/',
        after: { requests: 30, real_servers: ['r1', 'r2', 'r3'] },
        note: '30 requests from this host, ipvsadm -Ln on the director holding the VIP, nginx stopped and started on r1',
      },
    ])
    const planned = keepalivedLvsCheck.output?.(p, null, []) ?? {}
    expect(keepalivedLvsCheck.display?.(planned)).toBeUndefined()
  })
})

describe('keepalived.lvs_check from outside the tenant network', () => {
  it('fetches the client address (a floating IP) and still reads the VIP’s table', async () => {
    const { r, m, lvs } = await run(new Lvs({ lagMs: 0 }), { client_address: '198.51.100.20' })
    expect(r.failed).toBeUndefined()
    expect(m.url).toBe('http://198.51.100.20/')
    expect(lvs.urls).toEqual(['http://198.51.100.20/'])
    expect(m.ipvs_reals).toHaveLength(3)
  })
})
