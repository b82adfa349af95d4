/**
 * The official `openstack` CLI (Debian's python3-openstackclient) against the lab, with the seed's
 * commands as written: reserve the VIP with a port (and fail the duplicate), create three VMs,
 * find a VM's port by server and fixed IP, allow the VIP on it, give the jumphost a floating IP,
 * read its console, stop/start/delete. With real hosts (root, lab/hosts present; set
 * RUNBOOK_LAB_E2E_HOSTS=0 to force the API-only mode) it also logs in through the floating IP
 * with host keys pinned from the console log. Prints each command's latency.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { labDown, labStatus, labUp } from '../../lab/index.ts'
import type { LabUpResult } from '../../lab/index.ts'
import { labLeftovers, makeSshKit, parseConsoleKeys } from './lab-hosts/fixture.ts'
import type { SshKit } from './lab-hosts/fixture.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'

const HOSTS = process.env['RUNBOOK_LAB_E2E_HOSTS'] !== '0' && process.getuid?.() === 0
const VIP = '192.0.2.254'

interface Run {
  code: number
  stdout: string
  stderr: string
  ms: number
}

describe(`lab with the openstack CLI (hosts ${HOSTS ? 'on' : 'off'})`, () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-cli-'))
  const stateDir = join(work, 'state')
  const timings: [string, number][] = []
  let lab: LabUpResult
  let started = false
  let kit: SshKit | null = null
  let fip = ''
  const ips: Record<string, string> = {}

  const os = (...args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      const t0 = Date.now()
      execFile(
        'openstack',
        args,
        {
          env: { ...process.env, OS_CLIENT_CONFIG_FILE: lab.cloudsYaml, OS_CLOUD: 'lab' },
          timeout: 120_000,
        },
        (err, stdout, stderr) => {
          const ms = Date.now() - t0
          timings.push([
            `openstack ${args
              .filter((a) => !a.startsWith('-') || a.startsWith('--'))
              .slice(0, 4)
              .join(' ')}`,
            ms,
          ])
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
          resolve({ code, stdout, stderr, ms })
        },
      )
    })
  const ok = async (...args: string[]): Promise<string> => {
    const r = await os(...args)
    if (r.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r.stdout.trim()
  }
  const waitStatus = async (name: string, want: string, ms = 150_000): Promise<void> => {
    const deadline = Date.now() + ms
    for (;;) {
      const status = await ok('server', 'show', name, '-f', 'value', '-c', 'status')
      if (status === want) return
      if (status === 'ERROR' || Date.now() > deadline)
        throw new Error(
          `${name} is ${status}, not ${want}: ${await ok('server', 'show', name, '-f', 'json')}`,
        )
      await new Promise((r) => setTimeout(r, 300))
    }
  }

  beforeAll(async () => {
    if (HOSTS) await assertNoLiveLab()
    started = true
    const t0 = Date.now()
    lab = await labUp({ stateDir, port: 0, withHosts: HOSTS, log: () => undefined })
    timings.push(['labUp', Date.now() - t0])
  })

  afterAll(async () => {
    // A lab that never started (another one was up) has nothing to take down.
    if (!started) return rmSync(work, { recursive: true, force: true })
    const t0 = Date.now()
    await labDown({ stateDir, withHosts: HOSTS, log: () => undefined })
    timings.push(['labDown', Date.now() - t0])
    const width = Math.max(...timings.map(([k]) => k.length))
    console.log(
      `latencies (hosts ${HOSTS ? 'on' : 'off'}):\n${timings.map(([k, ms]) => `  ${k.padEnd(width)}  ${ms} ms`).join('\n')}`,
    )
    if (HOSTS) expect(await labLeftovers(stateDir)).toEqual([])
    rmSync(work, { recursive: true, force: true })
  })

  it('reserves the VIP with a port; the same address again fails with IpAddressAlreadyAllocated', async () => {
    await ok(
      'port',
      'create',
      'kld-vip',
      '--network',
      'mynetwork',
      '--fixed-ip',
      `subnet=mysubnet,ip-address=${VIP}`,
    )
    const dup = await os(
      'port',
      'create',
      'kld-vip-2',
      '--network',
      'mynetwork',
      '--fixed-ip',
      `subnet=mysubnet,ip-address=${VIP}`,
      '--debug',
    )
    expect(dup.code).not.toBe(0)
    expect(dup.stderr).toContain(`IP address ${VIP} already allocated in subnet`)
    expect(dup.stderr).toMatch(/"type": ?"IpAddressAlreadyAllocated"/)
  })

  it('creates the three VMs of the seed and they become ACTIVE', async () => {
    kit = await makeSshKit(work, '198.51.100.10', 'debian')
    await ok('keypair', 'create', '--public-key', join(work, 'id_ed25519.pub'), 'lab-key')
    const common = [
      '--image',
      'Debian 12',
      '--flavor',
      'm1.small',
      '--network',
      'mynetwork',
      '--key-name',
      'lab-key',
    ]
    await ok('server', 'create', ...common, '--security-group', 'default', 'kld-vm-1')
    await ok('server', 'create', ...common, '--security-group', 'default', 'kld-vm-2')
    await ok(
      'server',
      'create',
      ...common,
      '--security-group',
      'default',
      '--security-group',
      'ssh',
      'kld-jumphost-vm',
    )
    for (const name of ['kld-vm-1', 'kld-vm-2', 'kld-jumphost-vm']) {
      await waitStatus(name, 'ACTIVE')
      const addresses = await ok('server', 'show', name, '-f', 'value', '-c', 'addresses')
      const ip = /192\.0\.2\.\d+/.exec(addresses)?.[0]
      expect(ip).toBeDefined()
      ips[name] = ip ?? ''
    }
    const list = await ok('server', 'list', '-f', 'value', '-c', 'Name', '-c', 'Status')
    expect(list.split('\n').sort()).toEqual([
      'kld-jumphost-vm ACTIVE',
      'kld-vm-1 ACTIVE',
      'kld-vm-2 ACTIVE',
    ])
  })

  it("finds a VM's port by server and fixed IP, and allows the VIP on it", async () => {
    const ip = ips['kld-vm-1'] ?? ''
    const table = await ok(
      'port',
      'list',
      '-c',
      'ID',
      '--server',
      'kld-vm-1',
      '--fixed-ip',
      `ip-address=${ip}`,
    )
    const ids = [...table.matchAll(/[0-9a-f]{8}-[0-9a-f-]{27}/g)].map((m) => m[0])
    expect(ids).toHaveLength(1)
    await ok('port', 'set', ids[0] ?? '', '--allowed-address', `ip-address=${VIP}/24`)
    const pairs = await ok(
      'port',
      'show',
      ids[0] ?? '',
      '-f',
      'value',
      '-c',
      'allowed_address_pairs',
    )
    expect(pairs).toMatch(new RegExp(`ip_address'?[:=] ?'${VIP}/24'`))
    const other = await ok(
      'port',
      'list',
      '-f',
      'value',
      '-c',
      'ID',
      '--server',
      'kld-vm-2',
      '--fixed-ip',
      `ip-address=${ips['kld-vm-2'] ?? ''}`,
    )
    await ok('port', 'set', other, '--allowed-address', `ip-address=${VIP}/24`)
  })

  it('gives the jumphost a floating IP from public', async () => {
    fip = await ok('floating', 'ip', 'create', 'public', '-f', 'value', '-c', 'floating_ip_address')
    expect(fip).toBe('198.51.100.10')
    await ok('server', 'add', 'floating', 'ip', 'kld-jumphost-vm', fip)
    expect(
      await ok('server', 'show', 'kld-jumphost-vm', '-f', 'value', '-c', 'addresses'),
    ).toContain(fip)
    const spare = await ok('floating', 'ip', 'create', 'public', '-f', 'value', '-c', 'id')
    const vm1Port = await ok('port', 'list', '-f', 'value', '-c', 'ID', '--server', 'kld-vm-1')
    await ok('floating', 'ip', 'set', '--port', vm1Port, spare)
    expect(await ok('floating', 'ip', 'show', spare, '-f', 'value', '-c', 'fixed_ip_address')).toBe(
      ips['kld-vm-1'],
    )
    await ok('floating', 'ip', 'unset', '--port', spare)
    await ok('floating', 'ip', 'delete', spare)
  })

  it('shows the console log, with the host key fingerprints when hosts are on', async () => {
    const log = await ok('console', 'log', 'show', 'kld-jumphost-vm')
    if (!HOSTS) {
      expect(log).toContain('hosts are disabled')
      return
    }
    expect(log).toContain('-----BEGIN SSH HOST KEY FINGERPRINTS-----')
    kit?.trust(fip, parseConsoleKeys(log).keys)
    for (const name of ['kld-vm-1', 'kld-vm-2'])
      kit?.trust(ips[name] ?? '', parseConsoleKeys(await ok('console', 'log', 'show', name)).keys)
  })

  it.skipIf(!HOSTS)(
    'reaches the jumphost through its floating IP and the VMs through the jumphost',
    async () => {
      if (kit === null) throw new Error('no ssh kit')
      const jump = await kit.run(fip, 'hostname')
      expect(jump.code, jump.stderr).toBe(0)
      expect(jump.stdout.trim()).toBe('kld-jumphost-vm')
      const vm1 = await kit.run(ips['kld-vm-1'] ?? '', 'hostname; ip route | grep default')
      expect(vm1.code, vm1.stderr).toBe(0)
      expect(vm1.stdout).toContain('kld-vm-1')
      expect(vm1.stdout).toMatch(/default via 192\.0\.2\.1 dev ens3/)
    },
  )

  it('stops and starts a server', async () => {
    await ok('server', 'stop', 'kld-vm-2')
    await waitStatus('kld-vm-2', 'SHUTOFF')
    await ok('server', 'start', 'kld-vm-2')
    await waitStatus('kld-vm-2', 'ACTIVE')
  })

  it('reports the lab and its servers in status', async () => {
    const lines: string[] = []
    const st = await labStatus({ stateDir, log: (l) => lines.push(l) })
    expect(st.running).toBe(true)
    expect(st.servers.map((s) => s.name).sort()).toEqual([
      'kld-jumphost-vm',
      'kld-vm-1',
      'kld-vm-2',
    ])
    expect(lines.join('\n')).toContain('kld-jumphost-vm')
  })

  it('deletes the servers, their ports and the floating IP', async () => {
    await ok('server', 'delete', '--wait', 'kld-vm-1', 'kld-vm-2', 'kld-jumphost-vm')
    expect(await ok('server', 'list', '-f', 'value', '-c', 'Name')).toBe('')
    expect(
      await ok('port', 'list', '-f', 'value', '-c', 'Name', '--device-owner', 'compute:nova'),
    ).toBe('')
    await ok('floating', 'ip', 'delete', fip)
    expect(await ok('floating', 'ip', 'list', '-f', 'value')).toBe('')
  })
})
