/**
 * The LVS/DR runbooks against the embedded lab, through the real CLI: the VIP runbook with a web
 * server behind the VIP and the failover measured over HTTP (m1 servers: runs on any lab), then
 * runbooks/lvs-dr.yaml (seed 004) end to end — fresh plan, apply with its checks, apply again
 * with nothing to change, plan in sync, destroy leaving nothing. The directors need `k1` servers
 * (their own kernel, for IPVS); on a lab without them that part is skipped, saying so.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { labDown, labUp } from '../../lab/index.ts'

const isRoot = process.getuid?.() === 0
const BIN = path.resolve('cli/runbook.js')
const VIP_HTTP = path.resolve('test/e2e/fixtures/vip-http.yaml')
const LVS = path.resolve('runbooks/lvs-dr.yaml')
const PACKAGES = ['keepalived', 'ipvsadm', 'nginx-light', 'hello']
const NO_K1 =
  'set RUNBOOK_E2E_LVS=1 on a lab with k1 flavors (servers with their own kernel, issue 8)'
// lvs-dr.yaml end to end takes minutes (apply alone 259 s in the lab: two QEMU directors); its
// first apply and checks passed, the second apply was not seen to finish: opt-in
// (RUNBOOK_E2E_LVS=1) until it has passed whole and fits the CI budget.
const LVS_OPT_IN = process.env.RUNBOOK_E2E_LVS === '1'

describe.skipIf(!isRoot)('LVS/DR runbooks against the lab', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rbt-lvs-'))
  const stateDir = path.join(work, 'lab')
  let clouds = ''
  let up = false
  const cli = (args: string[]): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 400_000,
    })
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
  }
  const vars = (): string[] => ['-e', `openstack_clouds_yaml=${clouds}`]
  const openstack = (...args: string[]): string =>
    spawnSync('openstack', args, {
      env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: 'lab' },
      encoding: 'utf8',
    }).stdout
  const journalOf = (prefix: string): { resources: unknown[] } => {
    const dir = readdirSync(path.join(work, '.runbook')).find((d) => d.startsWith(prefix)) ?? ''
    return JSON.parse(readFileSync(path.join(work, '.runbook', dir, 'journal.json'), 'utf8')) as {
      resources: unknown[]
    }
  }

  beforeAll(async () => {
    const lab = await labUp({
      withHosts: true,
      stateDir,
      port: 0,
      log: () => undefined,
      mirror: { packages: PACKAGES },
    })
    up = true
    clouds = lab.cloudsYaml
  }, 300_000)

  afterAll(async () => {
    try {
      if (up || existsSync(path.join(stateDir, 'launch.json')))
        await labDown({ stateDir, log: () => undefined })
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 120_000)

  it('the VIP runbook behind a web server: HTTP keeps answering while the master fails', () => {
    const r = cli(['apply', VIP_HTTP, ...vars(), '--skip-tags', 'failover'])
    expect(r.code, r.out + r.err).toBe(0)
    const line =
      /VIP 192\.0\.2\.254 \(stop\): kld-vm-1 -> kld-vm-2 -> kld-vm-1;.*; http longest gap (\d+) ms \(limit 3000\), (\d+)\/(\d+) answered/.exec(
        r.out,
      )
    expect(line, r.out).not.toBeNull()
    const [, gap, ok, sent] = line ?? []
    expect(Number(gap)).toBeLessThan(3000)
    expect(Number(ok)).toBeGreaterThan(10)
    expect(Number(ok)).toBeLessThanOrEqual(Number(sent))
    // the drawings: one line per probe, the VIP on 1 then 2 then 1 again
    expect(r.out).toMatch(/\n\s+ping 1+[^\n]*2+[^\n]*1+ +longest gap \d+ ms {2}\(1 char = 100 ms;/)
    expect(r.out).toMatch(/\n\s+http 1+[^\n]*2+[^\n]*1+ +longest gap \d+ ms/)
    // the figures and drawings, for the record (docs/modules-keepalived.md)
    console.log(
      r.out
        .split('\n')
        .filter((l) => /VIP 192|^\s+(ping|http) /.test(l))
        .join('\n'),
    )
    const d = cli(['destroy', VIP_HTTP, ...vars(), '--auto-approve'])
    expect(d.code, d.out + d.err).toBe(0)
    expect(journalOf('vip-http-').resources).toEqual([])
  }, 400_000)

  describe('runbooks/lvs-dr.yaml (seed 004)', () => {
    let k1 = false
    beforeAll(() => {
      k1 =
        LVS_OPT_IN &&
        openstack('flavor', 'list', '-f', 'value', '-c', 'Name').split('\n').includes('k1.small')
    })

    it('plans every step on a fresh cloud', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const plan = cli(['plan', LVS, ...vars(), '--detailed-exitcode'])
      expect(plan.err).toBe('')
      expect(plan.code, plan.out).toBe(2)
      for (const l of [
        '+ security group lvs-directors',
        '+ security group lvs-real-servers',
        '+ port lvs-vip',
        '+ server lvs-director-1',
        '+ server lvs-director-2',
        '+ server lvs-real-1',
        '+ server lvs-real-3',
        '+ server lvs-jumphost-vm',
        '! LVS check of http://192.0.2.200/',
        '! failover test of 192.0.2.200',
      ])
        expect(plan.out).toContain(l)
    })

    it('applies: spread over every real server, IPVS lists them, health checks, failover over HTTP', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const started = Date.now()
      const r = cli(['apply', LVS, ...vars()])
      expect(r.code, r.out + r.err).toBe(0)
      expect(r.out).toMatch(
        /LVS http:\/\/192\.0\.2\.200\/ via lvs-director-\d \(rr\): 30\/30 answered by 3\/3 real servers; IPVS lists 3/,
      )
      for (const n of [1, 2, 3])
        expect(r.out).toMatch(new RegExp(`lvs-real-${n} █+ +\\d+ \\(\\d+%\\)`))
      expect(r.out).toMatch(/health check: lvs-real-1 out of the table after \d+ ms, back \d+ ms/)
      const fo = /VIP 192\.0\.2\.200 \(stop\): .*http longest gap (\d+) ms \(limit 3000\)/.exec(
        r.out,
      )
      expect(fo, r.out).not.toBeNull()
      console.log(`lvs-dr apply ${((Date.now() - started) / 1000).toFixed(1)} s; ${fo?.[0] ?? ''}`)
    }, 400_000)

    it('changes nothing on a second apply, and plans nothing', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const again = cli(['apply', LVS, ...vars()])
      expect(again.code, again.out + again.err).toBe(0)
      expect(again.out).toMatch(/apply finished in [\d.]+s: ok, changed=0/)
      const plan = cli(['plan', LVS, ...vars(), '--detailed-exitcode'])
      expect(plan.code, plan.out + plan.err).toBe(0)
    }, 400_000)

    it('destroys what it created', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const d = cli(['destroy', LVS, ...vars(), '--auto-approve'])
      expect(d.code, d.out + d.err).toBe(0)
      expect(journalOf('lvs-dr-').resources).toEqual([])
      expect(openstack('server', 'list', '-f', 'value', '-c', 'Name').trim()).toBe('')
      expect(openstack('port', 'list', '-f', 'value', '-c', 'Name')).not.toContain('lvs-')
    }, 300_000)
  })
})
