/**
 * The OpenStack modules through the real CLI against the real lab (API daemon + namespace VMs):
 * the cloud half of seeds/001 — reserve the VIP with a port, two VMs and a jumphost with a
 * floating IP (groups default + ssh, a VRRP group), each VM's port found by its fixed IP, the VIP
 * allowed on both ports — then SSH to the VMs through the jumphost with host keys pinned from the
 * console logs. A second apply changes nothing, `plan --detailed-exitcode` exits 0, `destroy`
 * removes everything (checked through the API), and a plan of the fresh cloud shows every resource
 * as `+` with `(known after apply)`.
 *
 * Run alone, holding the lab lock: flock /tmp/runbook-lab-tests.lock npx vitest run test/e2e/openstack-modules.test.ts
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { labDown, labUp } from '../../lab/index.ts'
import { OpenStackClient } from '../../modules/openstack/client/client.ts'
import { resolveCloud } from '../../modules/openstack/client/config.ts'
import { Neutron } from '../../modules/openstack/client/neutron.ts'
import { Nova } from '../../modules/openstack/client/nova.ts'

const isRoot = process.getuid?.() === 0
const BIN = path.resolve('cli/runbook.js')

const runbook = (keyFile: string): string => `
name: The cloud half of the fault-tolerant VIP (seeds/001)
vars:
  openstack_cloud: lab
  network: mynetwork
  subnet: mysubnet
  vip: 192.0.2.254
  prefix: 24
  nodes: [kld-vm-1, kld-vm-2]
  stop_vm: ""
plays:
  - name: Reserve the VIP, create the machines, allow the VIP on their ports
    hosts: localhost
    tasks:
      - name: The operator's key on the VMs
        openstack.keypair: { name: kld-key, public_key_file: id_ed25519.pub }
      - name: VRRP between the keepalived VMs, ping of the VIP
        openstack.security_group:
          name: kld-vrrp
          rules:
            - { protocol: vrrp, remote_group: self }
            - { protocol: icmp }
      - name: Reserve the VIP address with a port nobody uses
        openstack.port:
          name: kld-vip
          network: "{{network}}"
          fixed_ips: [{ subnet: "{{subnet}}", ip_address: "{{vip}}" }]
      - name: The keepalived VMs
        openstack.server:
          name: "{{item}}"
          image: Debian 12
          flavor: m1.small
          network: "{{network}}"
          security_groups: [default, kld-vrrp]
          key_name: kld-key
        loop: "{{nodes}}"
        register: vms
      - name: The jumphost
        openstack.server:
          name: kld-jumphost-vm
          image: Debian 12
          flavor: m1.small
          network: "{{network}}"
          security_groups: [default, ssh]
          key_name: kld-key
        register: jump
      - name: The jumphost's floating IP
        openstack.floating_ip: { network: public, server: kld-jumphost-vm }
        register: jump_fip
      - name: Each VM's port by its fixed IP (openstack port list --server --fixed-ip)
        openstack.port_info: { server: "{{item.name}}", fixed_ip: "{{item.ip}}" }
        loop: "{{vms.results}}"
        register: vm_ports
      - name: The VMs may send from the VIP (IP source guard)
        openstack.port:
          id: "{{item.id}}"
          allowed_address_pairs: [{ ip_address: "{{vip}}/{{prefix}}" }]
        loop: "{{vm_ports.results}}"
      - name: The jumphost joins the inventory, its host keys pinned from its console
        add_host:
          name: kld-jumphost-vm
          address: "{{jump_fip.address}}"
          user: debian
          vars: { private_key: ${keyFile}, pinned_host_keys: "{{jump.host_keys}}" }
      - name: The VMs join the group kld, reached through the jumphost
        add_host:
          name: "{{item.name}}"
          groups: [kld]
          address: "{{item.ip}}"
          user: debian
          via: kld-jumphost-vm
          vars: { private_key: ${keyFile}, pinned_host_keys: "{{item.host_keys}}" }
        loop: "{{vms.results}}"
  - name: Stop a VM on request (-e stop_vm=NAME), as an operator or a fault would between plays
    hosts: localhost
    tasks:
      - name: Stop it
        openstack.server: { name: "{{stop_vm}}", state: stopped, host_keys: false }
        when: stop_vm != ''
  - name: The VMs answer through the jumphost
    hosts: kld
    tasks:
      - name: Interface and address, as the seed reads them
        command: ip -4 -o route show default
        register: route
        changed_when: false
`

describe.skipIf(!isRoot)('OpenStack modules through the CLI against the lab', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rbt-os-e2e-'))
  const stateDir = path.join(work, 'lab')
  let cloudsYaml = ''
  let up = false
  const env = (): Record<string, string> => ({
    ...(process.env as Record<string, string>),
    NO_COLOR: '1',
    OS_CLIENT_CONFIG_FILE: cloudsYaml,
  })
  /** API requests the lab has served so far (its log has one line per request). */
  const served = (): string[] =>
    readFileSync(path.join(stateDir, 'lab.log'), 'utf8')
      .split('\n')
      .filter((l) => / (GET|POST|PUT|DELETE|HEAD) \/\S* \d{3} /.test(` ${l}`))
  const cli = (
    args: string[],
  ): { code: number; out: string; err: string; ms: number; requests: string[] } => {
    const started = Date.now()
    const before = served().length
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: env(),
      encoding: 'utf8',
      timeout: 300_000,
    })
    return {
      code: r.status ?? -1,
      out: r.stdout,
      err: r.stderr,
      ms: Date.now() - started,
      requests: served().slice(before),
    }
  }
  const api = (): { neutron: Neutron; nova: Nova } => {
    const c = new OpenStackClient(
      resolveCloud({ cloud: 'lab', env: { OS_CLIENT_CONFIG_FILE: cloudsYaml } }),
    )
    return { neutron: new Neutron(c), nova: new Nova(c) }
  }

  beforeAll(async () => {
    const lab = await labUp({
      withHosts: true,
      stateDir,
      port: 0,
      mirror: false,
      log: () => undefined,
    })
    up = true
    cloudsYaml = lab.cloudsYaml
    const keygen = spawnSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'rbt-os-e2e',
      '-f',
      path.join(work, 'id_ed25519'),
    ])
    if (keygen.status !== 0) throw new Error(`ssh-keygen: ${keygen.stderr.toString()}`)
    writeFileSync(path.join(work, 'vip.yaml'), runbook(path.join(work, 'id_ed25519')))
  }, 180_000)

  afterAll(async () => {
    try {
      // Also after an `up` that failed half way: its daemon may be running already.
      if (up || existsSync(path.join(stateDir, 'launch.json')))
        await labDown({ stateDir, log: () => undefined })
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 120_000)

  const freshPlan = (): void => {
    const plan = cli(['plan', 'vip.yaml', '--detailed-exitcode'])
    expect(plan.err).toBe('')
    expect(plan.code).toBe(2)
    for (const line of [
      '+ keypair kld-key',
      '+ security group kld-vrrp',
      '+ port kld-vip',
      '+ server kld-vm-1',
      '+ server kld-vm-2',
      '+ server kld-jumphost-vm',
      '+ floating IP on server kld-jumphost-vm',
    ]) {
      expect(plan.out).toContain(line)
    }
    expect(plan.out).toMatch(/id\s+= \(known after apply\)/)
    expect(plan.out).toMatch(/floating_ip_address\s+= \(known after apply\)/)
    expect(plan.out).toMatch(/~ port \(known after apply\)/)
    expect(plan.out).toMatch(/Plan: 7 to create/)
  }

  it('plans the fresh cloud: every resource +, ids known after apply', () => {
    freshPlan()
  }, 120_000)

  it('creates everything, reaches the VMs through the jumphost with pinned keys; a second apply changes nothing', async () => {
    const first = cli(['apply', 'vip.yaml'])
    console.log(
      `apply (create) through the CLI: ${first.ms} ms, ${first.requests.length} API requests`,
    )
    expect(first.err).toBe('')
    expect(first.code).toBe(0)
    expect(first.out).toMatch(/kld-vm-1\s+ok=1\s+changed=0\s+failed=0/)
    expect(first.out).toMatch(/kld-vm-2\s+ok=1\s+changed=0\s+failed=0/)

    const { neutron, nova } = api()
    const vip = (await neutron.ports({ name: 'kld-vip' }))[0]
    expect(vip?.fixed_ips.map((f) => f.ip_address)).toEqual(['192.0.2.254'])
    for (const name of ['kld-vm-1', 'kld-vm-2']) {
      const [s] = await nova.serversNamed(name)
      expect(s?.status).toBe('ACTIVE')
      const ports = await neutron.ports({ device_id: s?.id ?? '' })
      expect(ports).toHaveLength(1)
      expect(ports[0]?.allowed_address_pairs).toEqual([
        { ip_address: '192.0.2.254/24', mac_address: ports[0]?.mac_address },
      ])
    }
    const [jump] = await nova.serversNamed('kld-jumphost-vm')
    const [jumpPort] = await neutron.ports({ device_id: jump?.id ?? '' })
    const fips = await neutron.floatingIps({ port_id: jumpPort?.id ?? '' })
    expect(fips).toHaveLength(1)
    expect(fips[0]?.floating_ip_address).toMatch(/^198\.51\.100\.\d+$/)

    const second = cli(['apply', 'vip.yaml'])
    console.log(
      `apply (nothing to change): ${second.ms} ms, ${second.requests.length} API requests (${second.requests.filter((l) => l.includes('/v3/auth/tokens')).length} token)`,
    )
    expect(second.code).toBe(0)
    expect(second.out).toMatch(/localhost\s+ok=\d+\s+changed=0\s+failed=0/)
    expect(second.out).toMatch(/kld-vm-1\s+ok=1\s+changed=0/)
    const plan = cli(['plan', 'vip.yaml', '--detailed-exitcode'])
    console.log(`plan (in sync): ${plan.ms} ms, ${plan.requests.length} API requests`)
    expect(plan.code).toBe(0)
    expect(plan.out).toMatch(/No changes/)
    // Reads only: a plan never writes to the cloud.
    expect(
      plan.requests.filter(
        (l) =>
          /(POST|PUT|DELETE) /.test(l) && !l.includes('/auth/tokens') && !l.includes('/action'),
      ),
    ).toEqual([])
  }, 300_000)

  it('the allowed address pair is what lets the VIP answer: without it the ping fails, plan sees the drift, apply puts it back', async () => {
    const { neutron, nova } = api()
    const [jump] = await nova.serversNamed('kld-jumphost-vm')
    const [vm1] = await nova.serversNamed('kld-vm-1')
    const [jumpPort] = await neutron.ports({ device_id: jump?.id ?? '' })
    const [vm1Port] = await neutron.ports({ device_id: vm1?.id ?? '' })
    const [fip] = await neutron.floatingIps({ port_id: jumpPort?.id ?? '' })
    const consoles = {
      jump: await nova.consoleLog(jump?.id ?? ''),
      vm1: await nova.consoleLog(vm1?.id ?? ''),
    }
    writeFileSync(
      path.join(work, 'inventory.yaml'),
      [
        'all:',
        `  vars: { user: debian, private_key: ${path.join(work, 'id_ed25519')} }`,
        '  hosts:',
        `    jump: { address: ${fip?.floating_ip_address ?? ''}, pinned_host_keys: ${JSON.stringify(consoles.jump)} }`,
        `    vm1: { address: ${vm1Port?.fixed_ips[0]?.ip_address ?? ''}, via: jump, pinned_host_keys: ${JSON.stringify(consoles.vm1)} }`,
        '',
      ].join('\n'),
    )
    const exec = (host: string, ...command: string[]): ReturnType<typeof cli> =>
      cli(['exec', 'inventory.yaml', host, ...command])
    expect(
      exec('vm1', '-b', '--', 'ip', 'addr', 'replace', '192.0.2.254/24', 'dev', 'ens3').code,
    ).toBe(0)
    expect(exec('jump', '--', 'ping', '-c', '2', '-W', '2', '192.0.2.254').code).toBe(0)

    await neutron.c.put(
      'network',
      `/ports/${vm1Port?.id ?? ''}`,
      { port: { allowed_address_pairs: [] } },
      z.unknown(),
    )
    expect(exec('jump', '--', 'ping', '-c', '2', '-W', '2', '192.0.2.254').code).toBe(2)
    const drift = cli(['plan', 'vip.yaml', '--detailed-exitcode'])
    expect(drift.code).toBe(2)
    expect(drift.out).toContain(`~ port ${vm1Port?.id ?? ''}`)
    expect(drift.out).toMatch(/Plan: 0 to create, 1 to change, 0 to destroy/)
    const fix = cli(['apply', 'vip.yaml'])
    expect(fix.code).toBe(0)
    expect(fix.out).toMatch(/localhost\s+ok=\d+\s+changed=1\s/)
    expect(exec('jump', '--', 'ping', '-c', '2', '-W', '2', '192.0.2.254').code).toBe(0)
  }, 120_000)

  it('a VM stopped mid-run is named as such, not a channel timeout; the next apply starts it (a change), then changes nothing', async () => {
    const stop = cli(['apply', 'vip.yaml', '-e', 'stop_vm=kld-vm-2'])
    console.log(`apply that stops kld-vm-2 between plays: ${stop.ms} ms`)
    expect(stop.code).not.toBe(0)
    expect(stop.out).toMatch(/kld-vm-2\s+ok=0\s+changed=0\s+failed=0\s+skipped=0\s+unreachable=1/)
    expect(stop.out).toMatch(/server kld-vm-2 is SHUTOFF/)
    expect(`${stop.out}${stop.err}`).toMatch(/openstack server start kld-vm-2/)
    expect(stop.out).toMatch(/kld-vm-1\s+ok=1\s/)
    // said at once: not after the retries a just-added host gets (60 s)
    expect(stop.ms).toBeLessThan(45_000)
    const [vm2] = await api().nova.serversNamed('kld-vm-2')
    expect(vm2?.status).toBe('SHUTOFF')

    const plan = cli(['plan', 'vip.yaml', '--detailed-exitcode'])
    expect(plan.code).toBe(2)
    expect(plan.out).toContain(`~ server kld-vm-2 (${vm2?.id ?? ''})`)
    expect(plan.out).toContain('start (SHUTOFF -> ACTIVE)')
    const start = cli(['apply', 'vip.yaml'])
    expect(start.code).toBe(0)
    expect(start.out).toMatch(/localhost\s+ok=\d+\s+changed=1\s/)
    expect(start.out).toMatch(/kld-vm-2\s+ok=1\s+changed=0\s+failed=0/)
    expect((await api().nova.server(vm2?.id ?? ''))?.status).toBe('ACTIVE')
    const again = cli(['apply', 'vip.yaml'])
    expect(again.code).toBe(0)
    expect(again.out).toMatch(/localhost\s+ok=\d+\s+changed=0\s/)
  }, 300_000)

  it('destroys everything it created (checked through the API); then the fresh cloud plans every resource again', async () => {
    const destroy = cli(['destroy', 'vip.yaml', '--auto-approve'])
    console.log(
      `destroy through the CLI: ${destroy.ms} ms, ${destroy.requests.length} API requests`,
    )
    expect(destroy.err).toBe('')
    expect(destroy.code).toBe(0)
    const { neutron, nova } = api()
    for (const name of ['kld-vm-1', 'kld-vm-2', 'kld-jumphost-vm'])
      expect(await nova.serversNamed(name)).toEqual([])
    expect(await neutron.ports({ name: 'kld-vip' })).toEqual([])
    expect((await neutron.ports({ device_owner: 'compute:nova' })).length).toBe(0)
    expect(await neutron.floatingIps({})).toEqual([])
    expect(await neutron.securityGroups({ name: 'kld-vrrp' })).toEqual([])
    expect(await nova.keypair('kld-key')).toBeUndefined()
    freshPlan()
  }, 300_000)
})
