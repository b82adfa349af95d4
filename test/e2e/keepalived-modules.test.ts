/**
 * The keepalived modules against real lab VMs, through the real CLI: a jumphost with a floating IP
 * and two VMs in the `default` group whose ports allow the VIP (allowed address pairs, set in the
 * network snapshot since the OpenStack modules are not used here). Seed 001's procedure: facts,
 * keepalived.config (multicast, then unicast), the service, and keepalived.failover from the
 * jumphost with the master's keepalived stopped and with its link taken down; the measured gaps are
 * printed and checked against the design notes (a graceful stop loses ~0.6 s of pings at
 * advert_int 1; a lost link ~3 adverts more). Run it under the lab lock:
 *   flock /tmp/runbook-lab-tests.lock npx vitest run test/e2e/keepalived-modules.test.ts
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MirrorServer } from '../../lab/mirror/server.ts'
import type { HostDriver, LabPort } from '../../lab/driver.ts'
import { checkHostPrerequisites, createNamespaceDriver } from '../../lab/hosts/index.ts'
import type { FailoverMeasurements } from '../../modules/keepalived/failover.ts'
import {
  SG_DEFAULT,
  SG_SSH,
  makePort,
  makeSnapshot,
  makeSpec,
  makeSshKit,
  startTestMirror,
  TEST_MIRROR_URL,
  parseConsoleKeys,
  type SshKit,
} from './lab-hosts/fixture.ts'

const isRoot = process.getuid?.() === 0
const BIN = path.resolve('engine/cli/runbook.js')
const FIP = '198.51.100.10'
const VIP = '192.0.2.254'
const AUTH = 'Kp4ss-e2'

const RUNBOOK = `
name: Fault-tolerant virtual IP with keepalived (seed 001)
vars:
  vip: ${VIP}
  how: stop
  unicast: false
  max_gap: 3000
  auth_pass: { secret: true, from_env: KEEPALIVED_AUTH_PASS }
  nodes:
    - { name: kld-vm-1, state: MASTER, priority: 120, address: 192.0.2.61 }
    - { name: kld-vm-2, state: BACKUP, priority: 90, address: 192.0.2.62 }
plays:
  - name: Install and configure keepalived
    hosts: keepalived
    become: true
    tasks:
      - name: facts
        facts: {}
        tags: [config]
      - name: keepalived is installed
        apt: { name: keepalived, state: present, update_cache: true, cache_valid_time: 3600 }
      - name: keepalived.conf
        keepalived.config:
          cluster: "{{nodes}}"
          interface: "{{facts.default_ipv4.interface}}"
          virtual_router_id: 254
          auth_pass: "{{auth_pass}}"
          virtual_ipaddresses: ["{{vip}}/24"]
          unicast: "{{unicast}}"
        register: conf
        notify: restart keepalived
        tags: [config]
      - name: keepalived runs
        service: { name: keepalived, state: started, enabled: true }
        tags: [config]
    handlers:
      - name: restart keepalived
        service: { name: keepalived, state: restarted }
  - name: Verify the failover from the jumphost
    hosts: jump
    become: true
    tasks:
      - name: The master holds the VIP
        keepalived.vip_holder: { vip: "{{vip}}", nodes: [kld-vm-1, kld-vm-2] }
        register: holder
        retries: 30
        delay: 1
        until: "holder.holder == 'kld-vm-1'"
      - name: The VIP survives the loss of its master
        keepalived.failover:
          vip: "{{vip}}"
          master: kld-vm-1
          backups: [kld-vm-2]
          how: "{{how}}"
          max_gap_ms: "{{max_gap}}"
        register: failover
      - name: Measurements
        debug: { var: failover }
`

interface RunResult {
  code: number
  out: string
  err: string
  events: Record<string, unknown>[]
}

describe.skipIf(!isRoot)('keepalived modules on lab VMs behind a jumphost', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rb-kld-e2e-'))
  const stateDir = path.join(work, 'lab')
  const withVip = (p: LabPort): LabPort => ({ ...p, allowedAddressPairs: [{ ipAddress: VIP }] })
  const jump = makePort(60, [SG_DEFAULT, SG_SSH])
  const vm1 = withVip(makePort(61, [SG_DEFAULT]))
  const vm2 = withVip(makePort(62, [SG_DEFAULT]))
  const fips = [
    {
      id: 'f1a70000-0000-4000-8000-0000000000f1',
      floatingIp: FIP,
      fixedIp: '192.0.2.60',
      portId: jump.id,
    },
  ]
  const snapshot = () => makeSnapshot([jump, vm1, vm2], fips)
  let driver: HostDriver | undefined
  let kit: SshKit
  let inventory = ''
  const figures: Record<string, FailoverMeasurements> = {}

  const cli = (args: string[]): RunResult => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1', KEEPALIVED_AUTH_PASS: AUTH },
      encoding: 'utf8',
      timeout: 240_000,
    })
    const events = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr, events }
  }
  const apply = (...vars: string[]): RunResult =>
    cli(['apply', 'vip.yaml', '-i', inventory, '--json', ...vars.flatMap((v) => ['-e', v])])
  const measured = (r: RunResult): FailoverMeasurements => {
    const e = r.events.find((x) => x.type === 'task_end' && x.task === 'Measurements')
    return (JSON.parse(String(e?.display)) as { failover: FailoverMeasurements }).failover
  }
  const summaryOf = (r: RunResult) =>
    r.events.find((x) => x.type === 'summary') as
      | {
          changed: number
          failed: number
          hosts: Record<string, { changed: number; failed: number }>
        }
      | undefined
  const failureOf = (r: RunResult): string =>
    String(r.events.find((x) => x.type === 'task_end' && x.status === 'failed')?.msg ?? '')

  let mirror: MirrorServer | undefined

  beforeAll(async () => {
    await checkHostPrerequisites()
    kit = await makeSshKit(work, FIP)
    driver = createNamespaceDriver({ stateDir, aptMirror: TEST_MIRROR_URL })
    await driver.init(snapshot())
    mirror = await startTestMirror(work)
    const specs = [
      makeSpec('jump', jump, kit.publicKey),
      makeSpec('kld-vm-1', vm1, kit.publicKey),
      makeSpec('kld-vm-2', vm2, kit.publicKey),
    ]
    const boots = await Promise.all(specs.map((s) => driver!.createVm(s, snapshot())))
    const consoles: Record<string, string> = {}
    specs.forEach((s, i) => {
      consoles[s.name] = boots[i]?.consoleLog ?? ''
      kit.trust(s.port.fixedIps[0] ?? '', parseConsoleKeys(consoles[s.name] ?? '').keys)
    })
    kit.trust(FIP, parseConsoleKeys(consoles.jump ?? '').keys)
    const host = (name: string, address: string): string =>
      `${name}: { address: ${address}, pinned_host_keys: ${JSON.stringify(consoles[name])} }`
    inventory = path.join(work, 'inventory.yaml')
    writeFileSync(
      inventory,
      [
        'all:',
        '  vars:',
        '    user: ubuntu',
        `    private_key: ${path.join(work, 'id_ed25519')}`,
        '  hosts:',
        `    ${host('jump', FIP)}`,
        '  children:',
        '    keepalived:',
        '      vars: { via: jump }',
        '      hosts:',
        `        ${host('kld-vm-1', '192.0.2.61')}`,
        `        ${host('kld-vm-2', '192.0.2.62')}`,
        '',
      ].join('\n'),
    )
    writeFileSync(path.join(work, 'vip.yaml'), RUNBOOK)
  }, 240_000)

  afterAll(async () => {
    console.log(
      `failover figures:\n${Object.entries(figures)
        .map(
          ([k, m]) =>
            `  ${k}: failover ${m.failover_ms} ms, failback ${m.failback_ms} ms, longest gap ${m.max_gap_ms} ms (gaps ${m.gaps_ms.join(', ')}), ${m.received}/${m.sent} replies`,
        )
        .join('\n')}`,
    )
    try {
      await mirror?.close()
      await (driver ?? createNamespaceDriver({ stateDir })).teardown()
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 120_000)

  it('multicast: converges the seed, survives a stopped master within bounds, and a second run changes nothing', async () => {
    const first = apply()
    expect(first.err).toBe('')
    expect(failureOf(first)).toBe('')
    expect(first.code).toBe(0)
    expect(first.out).not.toContain(AUTH)
    const conf = await kit.run(
      '192.0.2.61',
      'sudo cat /etc/keepalived/keepalived.conf; sudo stat -c %a:%U:%G /etc/keepalived/keepalived.conf',
    )
    expect(conf.stdout).toContain(
      'state MASTER\n  interface ens3\n  virtual_router_id 254\n  priority 120',
    )
    expect(conf.stdout).toContain(`auth_pass ${AUTH}`)
    expect(conf.stdout).toMatch(/^640:root:root$/m)
    const m = measured(first)
    figures['stop, multicast'] = m
    expect(m).toMatchObject({
      passed: true,
      holder_before: ['kld-vm-1'],
      holder_during: ['kld-vm-2'],
      holder_after: ['kld-vm-1'],
    })
    // A graceful stop: the master says goodbye (priority 0), the backup waits its skew time (~0.65 s).
    expect(m.failover_ms).toBeGreaterThan(200)
    expect(m.failover_ms).toBeLessThan(3000)
    expect(m.max_gap_ms).toBeGreaterThan(200)
    expect(m.max_gap_ms).toBeLessThan(3000)
    expect(m.failback_ms).toBeLessThan(15_000)
    expect(m.received).toBeGreaterThan(10)
    expect(m.sent).toBeGreaterThanOrEqual(m.received)

    // The operator's view this time: the recap, and the test's one-line verdict under its task.
    const second = cli(['apply', 'vip.yaml', '-i', inventory])
    expect(second.code).toBe(0)
    for (const h of ['kld-vm-1', 'kld-vm-2', 'jump'])
      expect(second.out).toMatch(new RegExp(`${h}\\s+ok=\\d+\\s+changed=0\\s+failed=0`))
    expect(second.out).toMatch(
      /VIP 192\.0\.2\.254 \(stop\): kld-vm-1 -> kld-vm-2 -> kld-vm-1; failover [\d.]+ s, failback [\d.]+ s; longest gap \d+ ms \(limit 3000\)/,
    )
    expect(second.out).not.toContain(AUTH)
    const plan = cli([
      'plan',
      'vip.yaml',
      '-i',
      inventory,
      '--tags',
      'config',
      '--detailed-exitcode',
    ])
    expect(plan.code).toBe(0)
    expect(plan.out).toMatch(/No changes/)
    // The whole plan: the config in sync; the failover test is a check, listed but not a change.
    const full = cli(['plan', 'vip.yaml', '-i', inventory, '--detailed-exitcode'])
    expect(full.code).toBe(0)
    expect(full.out).toMatch(/\(check\)\n {2}! failover test of 192\.0\.2\.254/)
    expect(full.out).toMatch(
      /No changes\. The infrastructure matches the runbook\. \d checks? will run on apply\./,
    )
    expect(full.out).not.toContain(AUTH)
  }, 300_000)

  it('link-down: a crash costs about three adverts more, and the master gets its link and routes back', async () => {
    const r = apply('how=link-down', 'max_gap=6000')
    expect(failureOf(r)).toBe('')
    expect(r.code).toBe(0)
    const m = measured(r)
    figures['link-down, multicast'] = m
    expect(m).toMatchObject({
      passed: true,
      how: 'link-down',
      holder_before: ['kld-vm-1'],
      holder_during: ['kld-vm-2'],
      holder_after: ['kld-vm-1'],
    })
    // No goodbye advert: the backup notices after 3 × advert_int + skew.
    expect(m.failover_ms).toBeGreaterThan(2500)
    expect(m.failover_ms).toBeLessThan(6000)
    expect(m.max_gap_ms).toBeGreaterThan(2500)
    expect(m.max_gap_ms).toBeLessThan(6000)
    const routes = await kit.run('192.0.2.61', 'ip -4 route show default; ip -br link show ens3')
    expect(routes.stdout).toMatch(
      /^default via 192\.0\.2\.1 dev ens3 proto dhcp src 192\.0\.2\.61 metric 100/m,
    )
    expect(routes.stdout).toMatch(/^ens3\S*\s+UP\s/m)
  }, 300_000)

  it('unicast: reconfigures both nodes with unicast peers, survives a stopped master, then changes nothing', async () => {
    const r = apply('unicast=true')
    expect(failureOf(r)).toBe('')
    expect(r.code).toBe(0)
    const s = summaryOf(r)
    expect(s?.hosts['kld-vm-1']?.changed).toBeGreaterThanOrEqual(1)
    expect(s?.hosts['kld-vm-2']?.changed).toBeGreaterThanOrEqual(1)
    const c1 = await kit.run('192.0.2.61', 'sudo cat /etc/keepalived/keepalived.conf')
    expect(c1.stdout).toContain('unicast_src_ip 192.0.2.61\n  unicast_peer {\n    192.0.2.62\n  }')
    const c2 = await kit.run('192.0.2.62', 'sudo cat /etc/keepalived/keepalived.conf')
    expect(c2.stdout).toContain('unicast_src_ip 192.0.2.62\n  unicast_peer {\n    192.0.2.61\n  }')
    const m = measured(r)
    figures['stop, unicast'] = m
    expect(m).toMatchObject({
      passed: true,
      holder_during: ['kld-vm-2'],
      holder_after: ['kld-vm-1'],
    })
    expect(m.max_gap_ms).toBeLessThan(3000)
    const again = apply('unicast=true')
    expect(summaryOf(again)?.changed).toBe(0)
  }, 300_000)

  it('fails with the measurements when the gap is over the limit, and leaves the master serving', async () => {
    const r = apply('unicast=true', 'max_gap=150')
    expect(r.code).toBe(1)
    const msg = failureOf(r)
    expect(msg).toMatch(
      /keepalived\.failover: the VIP was silent for \d+ ms, more than max_gap_ms 150\nVIP 192\.0\.2\.254 \(stop\): kld-vm-1 -> kld-vm-2 -> kld-vm-1; failover [\d.]+ s, failback [\d.]+ s; longest gap \d+ ms \(limit 150\); \d+\/\d+ replies/,
    )
    const vm1State = await kit.run(
      '192.0.2.61',
      `pidof keepalived >/dev/null && ip -4 -o addr show dev ens3 | grep -c ' ${VIP}/'`,
    )
    expect(vm1State.stdout.trim()).toBe('1')
  }, 300_000)

  it('refuses a broken cluster before touching anything, naming the node', async () => {
    writeFileSync(
      path.join(work, 'broken.yaml'),
      RUNBOOK.replace(
        '{ name: kld-vm-2, state: BACKUP, priority: 90',
        '{ name: kld-vm-2, state: MASTER, priority: 90',
      ),
    )
    const before = await kit.run('192.0.2.62', 'sudo sha256sum /etc/keepalived/keepalived.conf')
    const r = cli(['apply', 'broken.yaml', '-i', inventory, '--tags', 'config'])
    expect(r.code).toBe(1)
    expect(r.out + r.err).toMatch(
      /keepalived\.config: 'cluster\.1\.state': kld-vm-2: a second MASTER \(kld-vm-1 is MASTER too\)/,
    )
    expect(r.out).toMatch(/kld-vm-2\s+ok=1\s+changed=0\s+failed=1/)
    const after = await kit.run('192.0.2.62', 'sudo sha256sum /etc/keepalived/keepalived.conf')
    expect(after.stdout).toBe(before.stdout)
  }, 120_000)

  it('destroy removes the config files the runs created', async () => {
    const r = cli(['destroy', 'vip.yaml', '-i', inventory, '--auto-approve'])
    expect(r.code).toBe(0)
    for (const a of ['192.0.2.61', '192.0.2.62'])
      expect((await kit.run(a, 'sudo test -e /etc/keepalived/keepalived.conf')).code).toBe(1)
  }, 120_000)
})
