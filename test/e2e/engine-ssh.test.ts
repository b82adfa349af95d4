/**
 * The engine over SSH against real hosts: lab VMs (namespaces with their own root filesystem and
 * sshd) reached only through a jumphost's floating IP, with host keys pinned from their console
 * logs. Checks issue 4's promises: convergence then changed=0, a failing `validate` leaves the old
 * file and the running service alone, a changed host key is refused before any command runs, one
 * TCP connection per host, a dropped connection, and the speed of a no-change run.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MirrorServer } from '../../lab/mirror/server.ts'
import { sshConnectionFactory } from '../../engine/connection/ssh-factory.ts'
import { execute } from '../../engine/execute/executor.ts'
import { prepare } from '../../engine/prepare.ts'
import type { HostDriver, LabPort } from '../../lab/driver.ts'
import { checkHostPrerequisites, createNamespaceDriver } from '../../lab/hosts/index.ts'
import { registry } from '../../modules/index.ts'
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
const VMS = 10

describe.skipIf(!isRoot)('engine over SSH through a jumphost, against lab VMs', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rb-engine-ssh-'))
  const stateDir = path.join(work, 'lab')
  const jump = makePort(40, [SG_DEFAULT, SG_SSH])
  const vms: LabPort[] = Array.from({ length: VMS }, (_, i) => makePort(41 + i, [SG_DEFAULT]))
  const fips = [
    {
      id: 'f1a70000-0000-4000-8000-0000000000e1',
      floatingIp: FIP,
      fixedIp: '192.0.2.40',
      portId: jump.id,
    },
  ]
  const snapshot = () => makeSnapshot([jump, ...vms], fips)
  const consoles: Record<string, string> = {}
  let driver: HostDriver | undefined
  let kit: SshKit
  let inventory = ''

  const vmName = (i: number): string => `vm${i + 1}`
  const cli = (
    args: string[],
    env: Record<string, string> = {},
  ): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1', ...env },
      encoding: 'utf8',
      timeout: 120_000,
    })
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
  }
  const writeInventory = (pins: Record<string, string>): void => {
    const lines = [
      'all:',
      '  vars:',
      '    user: ubuntu',
      `    private_key: ${path.join(work, 'id_ed25519')}`,
      '  hosts:',
      `    jump: { address: ${FIP}, pinned_host_keys: ${JSON.stringify(pins.jump)} }`,
      '  children:',
      '    cluster:',
      '      vars: { via: jump }',
      '      hosts:',
    ]
    vms.forEach((p, i) =>
      lines.push(
        `        ${vmName(i)}: { address: ${p.fixedIps[0]}, pinned_host_keys: ${JSON.stringify(pins[vmName(i)])} }`,
      ),
    )
    inventory = path.join(work, 'inventory.yaml')
    writeFileSync(inventory, `${lines.join('\n')}\n`)
  }

  let mirror: MirrorServer | undefined

  beforeAll(async () => {
    await checkHostPrerequisites()
    kit = await makeSshKit(work, FIP)
    driver = createNamespaceDriver({ stateDir, aptMirror: TEST_MIRROR_URL })
    await driver.init(snapshot())
    mirror = await startTestMirror(work)
    const specs = [
      makeSpec('jump', jump, kit.publicKey),
      ...vms.map((p, i) => makeSpec(vmName(i), p, kit.publicKey)),
    ]
    const boots = await Promise.all(specs.map((s) => driver!.createVm(s, snapshot())))
    specs.forEach((s, i) => {
      consoles[s.name] = boots[i]?.consoleLog ?? ''
      kit.trust(s.port.fixedIps[0] ?? '', parseConsoleKeys(consoles[s.name] ?? '').keys)
    })
    kit.trust(FIP, parseConsoleKeys(consoles.jump ?? '').keys)
    writeInventory(consoles)
  }, 240_000)

  afterAll(async () => {
    try {
      await mirror?.close()
      await (driver ?? createNamespaceDriver({ stateDir })).teardown()
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 120_000)

  it('converges keepalived with apt, a validated template, a service and sysctls; then changed=0 and an empty plan', () => {
    writeFileSync(
      path.join(work, 'converge.yaml'),
      `
plays:
  - name: keepalived on two VMs behind the jumphost
    hosts: vm1:vm2
    become: true
    tasks:
      - facts: {}
      - name: keepalived is installed
        apt: { name: keepalived, state: present, update_cache: true, cache_valid_time: 3600 }
      - name: keepalived.conf
        template:
          dest: /etc/keepalived/keepalived.conf
          validate: keepalived -t -f %s
          content: |
            vrrp_instance VI_1 {
              state {{#if (eq inventory_hostname "vm1")}}MASTER{{else}}BACKUP{{/if}}
              interface {{facts.default_ipv4.interface}}
              virtual_router_id 51
              priority {{#if (eq inventory_hostname "vm1")}}120{{else}}90{{/if}}
              advert_int 1
              virtual_ipaddress { 192.0.2.254/24 }
            }
        notify: restart keepalived
      - name: keepalived runs
        service: { name: keepalived, state: started, enabled: true }
      - name: ARP for DR real servers
        sysctl: { name: net.ipv4.conf.all.arp_ignore, value: "1" }
    handlers:
      - name: restart keepalived
        service: { name: keepalived, state: restarted }
`,
    )
    const first = cli(['apply', 'converge.yaml', '-i', inventory])
    expect(first.err).toBe('')
    expect(first.code).toBe(0)
    expect(first.out).toMatch(/vm1\s+ok=\d+\s+changed=[1-9]/)
    const second = cli(['apply', 'converge.yaml', '-i', inventory])
    expect(second.code).toBe(0)
    expect(second.out).toMatch(/vm1\s+ok=5\s+changed=0\s+failed=0/)
    expect(second.out).toMatch(/vm2\s+ok=5\s+changed=0\s+failed=0/)
    const plan = cli(['plan', 'converge.yaml', '-i', inventory, '--detailed-exitcode'])
    expect(plan.code).toBe(0)
    expect(plan.out).toMatch(/No changes/)
  }, 180_000)

  it('leaves the old file and the running service alone when validate fails', async () => {
    writeFileSync(
      path.join(work, 'broken.yaml'),
      `
plays:
  - hosts: vm1
    become: true
    tasks:
      - name: a broken keepalived.conf
        template:
          dest: /etc/keepalived/keepalived.conf
          validate: keepalived -t -f %s
          content: "vrrp_instance VI_1 { state NONSENSE interface nope0 }\\n"
        notify: restart keepalived
    handlers:
      - name: restart keepalived
        service: { name: keepalived, state: restarted }
`,
    )
    const before = await kit.run(
      '192.0.2.41',
      'sudo cat /etc/keepalived/keepalived.conf; pidof keepalived',
    )
    const r = cli(['apply', 'broken.yaml', '-i', inventory])
    expect(r.code).toBe(1)
    expect(r.out + r.err).toMatch(
      /validation of \/etc\/keepalived\/keepalived.conf failed, the old file is untouched/,
    )
    const after = await kit.run(
      '192.0.2.41',
      'sudo cat /etc/keepalived/keepalived.conf; pidof keepalived',
    )
    expect(after.stdout).toBe(before.stdout)
    expect(after.stdout).toMatch(/\d+\s*$/)
  }, 120_000)

  it('refuses a host whose key changed, naming both fingerprints, before any command runs', async () => {
    const pins = { ...consoles, vm3: consoles.vm4 ?? '' }
    writeInventory(pins)
    try {
      writeFileSync(
        path.join(work, 'touch.yaml'),
        'plays:\n  - hosts: vm3\n    tasks:\n      - shell: touch /tmp/ran-on-vm3\n',
      )
      const r = cli(['apply', 'touch.yaml', '-i', inventory])
      expect(r.code).toBe(1)
      expect(r.out + r.err).toMatch(/vm3/)
      expect(r.out + r.err).toMatch(/SHA256:\S+.*SHA256:\S+/s)
      expect(r.out).toMatch(/unreachable=1/)
      expect((await kit.run('192.0.2.43', 'ls /tmp/ran-on-vm3')).code).not.toBe(0)
    } finally {
      writeInventory(consoles)
    }
  }, 60_000)

  it('runs 20 tasks on 10 hosts over one connection per host, and a no-change run is fast', async () => {
    const tasks = Array.from(
      { length: 19 },
      (_, i) =>
        `      - name: check ${i}\n        shell: test -d /etc\n        changed_when: false`,
    ).join('\n')
    writeFileSync(
      path.join(work, 'many.yaml'),
      `plays:\n  - hosts: cluster\n    tasks:\n${tasks}\n      - name: count ssh connections\n        shell: ss -Htn state established '( sport = :22 )' | wc -l\n        register: conns\n        changed_when: false\n      - assert: { that: "conns.stdout | int == 1" }\n`,
    )
    const run = async (): Promise<{ ms: number; ok: boolean; changed: number }> => {
      const p = await prepare({
        runbookFile: path.join(work, 'many.yaml'),
        inventoryFile: inventory,
        registry,
        stateRoot: path.join(work, '.runbook'),
      })
      const started = Date.now()
      const result = await execute({
        runbook: p.runbook,
        inventory: p.inventory,
        registry,
        mode: 'apply',
        extraVars: {},
        secretVars: {},
        redactor: p.redactor,
        connections: sshConnectionFactory({
          defaults: { projectKnownHosts: path.join(work, '.runbook', 'known_hosts') },
        }),
        forks: 10,
        emit: () => undefined,
        sources: p.sources,
        baseDir: p.baseDir,
      })
      return {
        ms: Date.now() - started,
        ok: result.ok,
        changed: Object.values(result.hosts).reduce((n, h) => n + h.changed, 0),
      }
    }
    const warm = await run()
    expect(warm.ok).toBe(true)
    const timed = await run()
    expect(timed.ok).toBe(true)
    expect(timed.changed).toBe(0)
    console.log(
      `no-change run, 21 tasks x ${VMS} hosts behind one jumphost: ${timed.ms} ms (first run ${warm.ms} ms)`,
    )
    expect(timed.ms).toBeLessThan(2000)
    const jumpConns = await kit.run(FIP, "ss -Htn state established '( sport = :22 )' | wc -l")
    expect(Number(jumpConns.stdout.trim())).toBe(1)
  }, 120_000)

  it('fails clearly when the connection is killed mid-run, and a re-run converges', async () => {
    writeFileSync(
      path.join(work, 'slow.yaml'),
      'plays:\n  - hosts: vm5\n    tasks:\n      - name: slow step\n        shell: sleep {{pause}}; touch /tmp/slow-done\n      - name: after\n        shell: touch /tmp/after-done\n',
    )
    const ns = `rbl-vm-${makeSpec('vm5', vms[4] as LabPort, '').id.slice(0, 8)}`
    // Processes of this VM only: `ip netns exec` shares the machine's PID namespace, so select by netns.
    const vmPids = (pattern: RegExp): number[] =>
      spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
        .stdout.split('\n')
        .map(Number)
        .filter(
          (pid) =>
            pid > 0 &&
            pattern.test(
              spawnSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' }).stdout.replace(
                /\0/g,
                ' ',
              ),
            ),
        )
    const child = spawn(
      process.execPath,
      [BIN, 'apply', 'slow.yaml', '-i', inventory, '-e', 'pause=60'],
      { cwd: work, env: { ...process.env, NO_COLOR: '1' } },
    )
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    const exited = new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)))
    // wait until the slow step runs on the VM, then kill that VM's SSH session
    for (let i = 0; i < 300 && vmPids(/^sleep 60/).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100))
    const sessions = vmPids(/^sshd: ubuntu/)
    expect(sessions.length).toBeGreaterThan(0)
    for (const pid of sessions) process.kill(pid, 'SIGKILL')
    const code = await exited
    expect(code).toBe(1)
    expect(out).toMatch(/slow step/)
    expect(out).toMatch(/may or may not have run/i)
    for (const pid of vmPids(/^sleep 60/)) process.kill(pid, 'SIGKILL')
    const again = cli(['apply', 'slow.yaml', '-i', inventory, '-e', 'pause=0'])
    expect(again.code).toBe(0)
    const done = await kit.run('192.0.2.45', 'ls /tmp/after-done')
    expect(done.code).toBe(0)
  }, 120_000)

  it('runs ad-hoc commands on many hosts with runbook exec', () => {
    const r = cli(['exec', inventory, 'cluster', '--', 'hostname'])
    expect(r.code).toBe(0)
    for (let i = 0; i < VMS; i++)
      expect(r.out).toMatch(
        new RegExp(`^${vmName(i)} \\| CHANGED \\| rc=0 >>\\n${vmName(i)}$`, 'm'),
      )
  }, 60_000)
})
