/**
 * The LVS/DR runbooks against the embedded lab, through the real CLI: the VIP runbook with a web
 * server behind the VIP and the failover measured over HTTP (m1 servers: runs on any lab), then
 * runbooks/lvs-dr.yaml (seed 004) end to end — fresh plan, apply with its checks, the load
 * balancer looked at independently over SSH through the jumphost (spread, IPVS table, a real
 * server out and back, failover), apply again with nothing to change, plan in sync, destroy
 * leaving nothing — and as seed 002 (TCP_CHECK on 143, lblc, the VIP's floating IP fetched from
 * this machine). The directors need `k1` servers (their own kernel, for IPVS).
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
// Opt-in (RUNBOOK_E2E_LVS=1) for its time: the two variants take ~13 min together in the lab
// (seed 004 ~460 s: apply 286 s, the independent checks 83 s, apply + plan again 80 s, destroy
// 14 s; seed 002 ~300 s: apply 222 s, again 63 s, destroy 16 s), on a 2-core machine shared with
// other work. Most of it is the two QEMU (TCG) directors booting and installing keepalived
// (100-120 s of apt each). Beside a CI of ~14 min that makes ~27 min: not well under 30.
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
      timeout: 580_000,
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

  // The real servers and directors of lvs-dr.yaml, as its vars name them.
  const VIP = '192.0.2.200'
  const REALS = [
    { name: 'lvs-real-1', address: '192.0.2.51' },
    { name: 'lvs-real-2', address: '192.0.2.52' },
    { name: 'lvs-real-3', address: '192.0.2.53' },
  ]
  const DIRECTORS = [
    { name: 'lvs-director-1', address: '192.0.2.41' },
    { name: 'lvs-director-2', address: '192.0.2.42' },
  ]
  const SEED002 = [
    ...['service_port=143', 'check_type=TCP_CHECK', 'lb_algo=lblc', 'spread_min=1'],
    'public_vip=true',
  ].flatMap((v) => ['-e', v])

  /**
   * The test's own way in, not the engine's: OpenSSH with the runbook's key, through the jumphost's
   * floating IP (ProxyCommand, so the key is used for both hops). Host keys are not checked here:
   * the runbook pins them from the consoles, this client only looks.
   */
  const sshClient = (): ((host: string | null, cmd: string) => { code: number; out: string }) => {
    const dir = readdirSync(path.join(work, '.runbook')).find((d) => d.startsWith('lvs-dr-')) ?? ''
    const key = path.join(work, '.runbook', dir, 'id_ed25519')
    const fip = /198\.51\.100\.\d+/.exec(
      openstack('server', 'show', 'lvs-jumphost-vm', '-f', 'value', '-c', 'addresses'),
    )?.[0]
    expect(fip, 'the jumphost’s floating IP').toBeDefined()
    const base = [
      ...['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'],
      ...['-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30'],
    ]
    return (host, cmd) => {
      const via = host ? ['-o', `ProxyCommand=ssh ${base.join(' ')} -W %h:%p debian@${fip}`] : []
      const r = spawnSync('ssh', [...base, ...via, `debian@${host ?? fip}`, cmd], {
        encoding: 'utf8',
        timeout: 120_000,
      })
      return { code: r.status ?? -1, out: r.stdout + r.stderr }
    }
  }
  type Ssh = ReturnType<typeof sshClient>
  const pause = (s: number): void => void spawnSync('sleep', [String(s)])
  /** Polls `probe` every second until it holds; the seconds it took, or null after `limit`. */
  const until = (limit: number, probe: () => boolean): number | null => {
    const t0 = Date.now()
    while (Date.now() - t0 < limit * 1000) {
      if (probe()) return (Date.now() - t0) / 1000
      pause(1)
    }
    return null
  }
  /** The director holding the VIP, by its interfaces' addresses. */
  const holders = (ssh: Ssh): string[] =>
    DIRECTORS.filter((d) => ssh(d.address, 'ip -4 -o addr show').out.includes(` ${VIP}/`)).map(
      (d) => d.address,
    )
  /** The real servers' addresses `ipvsadm -Ln` lists under the virtual server. */
  const ipvsReals = (ssh: Ssh, director: string, port: number): string[] => {
    const r = ssh(director, 'sudo ipvsadm -Ln')
    expect(r.code, r.out).toBe(0)
    expect(r.out).toContain(`TCP  ${VIP}:${port}`)
    return [...r.out.matchAll(new RegExp(`-> (192\\.0\\.2\\.\\d+):${port} `, 'g'))].map(
      (m) => m[1] ?? '',
    )
  }
  /** The pages answered to `n` requests from the jumphost, counted per real server. */
  const spread = (ssh: Ssh, n: number): Record<string, number> => {
    const r = ssh(null, `for i in $(seq ${n}); do curl -s -m 2 http://${VIP}/; echo; done`)
    const count: Record<string, number> = {}
    for (const l of r.out.split('\n').filter(Boolean)) count[l] = (count[l] ?? 0) + 1
    return count
  }
  const service = (ssh: Ssh, host: string, name: string, verb: 'start' | 'stop'): void => {
    const r = ssh(host, `sudo service ${name} ${verb}`)
    expect(r.code, `${verb} ${name} on ${host}: ${r.out}`).toBe(0)
  }

  let k1 = false
  beforeAll(() => {
    k1 =
      LVS_OPT_IN &&
      openstack('flavor', 'list', '-f', 'value', '-c', 'Name').split('\n').includes('k1.small')
  })

  describe('runbooks/lvs-dr.yaml (seed 004)', () => {
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
        '+ server lvs-real-2',
        '+ server lvs-real-3',
        '+ server lvs-jumphost-vm',
        '! LVS check of http://192.0.2.200/',
        // who is stopped is read on apply (the VIP's holder), so the plan cannot say more
        '~ keepalived.failover  (parameters known after apply)',
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
    }, 600_000)

    it('works, seen from outside the runbook: spread, IPVS table, a real server out and back, failover', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const ssh = sshClient()
      const seen = spread(ssh, 30)
      expect(Object.keys(seen).sort(), JSON.stringify(seen)).toEqual(REALS.map((x) => x.name))
      const [active, ...others] = holders(ssh)
      expect(others, 'one director holds the VIP').toEqual([])
      if (!active) throw new Error('no director holds the VIP')
      expect(ipvsReals(ssh, active, 80).sort()).toEqual(REALS.map((x) => x.address))

      // a real server's web server stops: the checker takes it out, and puts it back after a start
      const victim = REALS[1] ?? REALS[0]!
      service(ssh, victim.address, 'nginx', 'stop')
      const out = until(60, () => !ipvsReals(ssh, active, 80).includes(victim.address))
      expect(out, `${victim.name} still listed 60 s after nginx stopped`).not.toBeNull()
      expect(Object.keys(spread(ssh, 10))).not.toContain(victim.name)
      service(ssh, victim.address, 'nginx', 'start')
      const back = until(60, () => ipvsReals(ssh, active, 80).includes(victim.address))
      expect(back, `${victim.name} not listed 60 s after nginx started`).not.toBeNull()

      // the active director's keepalived stops: the other takes the VIP, the service goes on
      const probe = [
        'end=$(($(date +%s) + 25)); while [ $(date +%s) -lt $end ]; do',
        `if b=$(curl -s -m 1 http://${VIP}/); then echo "$(date +%s%3N) ok $b"; else echo "$(date +%s%3N) fail"; fi;`,
        'sleep 0.1; done',
      ].join(' ')
      const bg = ssh(null, `nohup sh -c '${probe}' >/tmp/rbt-lvs-probe.log 2>&1 </dev/null &`)
      expect(bg.code, bg.out).toBe(0)
      pause(4)
      const stoppedAt = Date.now()
      service(ssh, active, 'keepalived', 'stop')
      const moved = until(
        15,
        () => holders(ssh).join() === DIRECTORS.find((d) => d.address !== active)?.address,
      )
      expect(moved, 'the other director holds the VIP').not.toBeNull()
      pause(Math.max(0, 27 - (Date.now() - stoppedAt) / 1000 - 4))
      const log = ssh(null, 'cat /tmp/rbt-lvs-probe.log; rm -f /tmp/rbt-lvs-probe.log').out
      const ok = [...log.matchAll(/^(\d+) ok (\S+)/gm)].map((m) => Number(m[1]))
      const gap = Math.max(...ok.slice(1).map((t, i) => t - (ok[i] ?? t)))
      expect(ok.length, log).toBeGreaterThan(20)
      expect(gap, log).toBeLessThan(5000)
      service(ssh, active, 'keepalived', 'start') // as it was: the second apply must change nothing
      console.log(
        `seen from outside: spread ${JSON.stringify(seen)}; ${victim.name} out of the table in ${out} s, back in ${back} s; VIP moved in ${moved} s, longest HTTP gap ${gap} ms, ${ok.length} answers`,
      )
    }, 400_000)

    it('changes nothing on a second apply, and plans nothing', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const t0 = Date.now()
      const again = cli(['apply', LVS, ...vars()])
      expect(again.code, again.out + again.err).toBe(0)
      expect(again.out).toMatch(/apply finished in [\d.]+s: ok, changed=0/)
      const plan = cli(['plan', LVS, ...vars(), '--detailed-exitcode'])
      expect(plan.code, plan.out + plan.err).toBe(0)
      console.log(`lvs-dr second apply and plan ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }, 600_000)

    it('destroys what it created', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const d = cli(['destroy', LVS, ...vars(), '--auto-approve'])
      expect(d.code, d.out + d.err).toBe(0)
      expect(journalOf('lvs-dr-').resources).toEqual([])
      expect(openstack('server', 'list', '-f', 'value', '-c', 'Name').trim()).toBe('')
      expect(openstack('port', 'list', '-f', 'value', '-c', 'Name')).not.toContain('lvs-')
      expect(openstack('floating', 'ip', 'list', '-f', 'value').trim()).toBe('')
      expect(openstack('security', 'group', 'list', '-f', 'value', '-c', 'Name')).not.toContain(
        'lvs-',
      )
      expect(openstack('keypair', 'list', '-f', 'value')).not.toContain('lvs-key')
    }, 300_000)
  })

  describe('runbooks/lvs-dr.yaml as seed 002 (TCP_CHECK on 143, lblc, a public VIP)', () => {
    // failover is the same VRRP as seed 004's, proven above; here the TCP check and the public VIP
    const skip = ['--skip-tags', 'failover']

    it('applies, and the service answers from this machine through the VIP’s floating IP', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const t0 = Date.now()
      const r = cli(['apply', LVS, ...vars(), ...SEED002, ...skip])
      expect(r.code, r.out + r.err).toBe(0)
      expect(r.out).toMatch(
        /LVS http:\/\/192\.0\.2\.200:143\/ via lvs-director-\d \(lblc\): 30\/30 answered/,
      )
      expect(r.out).toMatch(/health check: lvs-real-1 out of the table after \d+ ms, back \d+ ms/)
      const fip = /^(\S+) 192\.0\.2\.200$/m.exec(
        openstack(
          'floating',
          'ip',
          'list',
          '-f',
          'value',
          '-c',
          'Floating IP Address',
          '-c',
          'Fixed IP Address',
        ),
      )?.[1]
      expect(fip, 'a floating IP on the VIP’s port').toMatch(/^198\.51\.100\./)
      const names: string[] = []
      // curl, not fetch: fetch refuses 143 (IMAP) as one of the web's "bad ports"
      for (let i = 0; i < 10; i++) {
        const res = spawnSync('curl', ['-sS', '-m', '5', `http://${fip ?? ''}:143/`], {
          encoding: 'utf8',
        })
        expect(res.status, res.stderr).toBe(0)
        names.push(res.stdout.trim())
      }
      // lblc keeps one client on one real server
      expect(new Set(names).size, names.join()).toBe(1)
      expect(REALS.map((x) => x.name)).toContain(names[0])
      const ssh = sshClient()
      const [active] = holders(ssh)
      if (!active) throw new Error('no director holds the VIP')
      const table = ssh(active, 'sudo ipvsadm -Ln').out
      expect(table).toMatch(new RegExp(`TCP  ${VIP.replaceAll('.', '\\.')}:143 lblc`))
      expect(ipvsReals(ssh, active, 143).sort()).toEqual(REALS.map((x) => x.address))
      const conf = ssh(active, 'sudo cat /etc/keepalived/keepalived.conf').out
      expect(conf.match(/TCP_CHECK \{/g)).toHaveLength(3)
      console.log(
        `lvs-dr seed 002 apply ${((Date.now() - t0) / 1000).toFixed(1)} s; ${fip} answered by ${names[0]}`,
      )
    }, 600_000)

    it('changes nothing on a second apply, and plans nothing', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const again = cli(['apply', LVS, ...vars(), ...SEED002, ...skip])
      expect(again.code, again.out + again.err).toBe(0)
      expect(again.out).toMatch(/apply finished in [\d.]+s: ok, changed=0/)
      const plan = cli(['plan', LVS, ...vars(), ...SEED002, '--detailed-exitcode'])
      expect(plan.code, plan.out + plan.err).toBe(0)
    }, 600_000)

    it('destroys what it created, the floating IPs too', (ctx) => {
      if (!k1) ctx.skip(NO_K1)
      const d = cli(['destroy', LVS, ...vars(), ...SEED002, '--auto-approve'])
      expect(d.code, d.out + d.err).toBe(0)
      expect(journalOf('lvs-dr-').resources).toEqual([])
      expect(openstack('server', 'list', '-f', 'value', '-c', 'Name').trim()).toBe('')
      expect(openstack('floating', 'ip', 'list', '-f', 'value').trim()).toBe('')
    }, 300_000)
  })
})
