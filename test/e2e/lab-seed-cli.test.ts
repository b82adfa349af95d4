/**
 * Issue 8's "How it will be checked", typed with the official `openstack` CLI (Debian's
 * python3-openstackclient) on a fresh lab: servers from the image list on m1.small (jumphost,
 * kld-vm-1) and k1.small (kld-vm-2, its own kernel in QEMU); over SSH through the jumphost,
 * keepalived is absent until `apt install` brings it from the lab mirror; on the k1 VM ip_vs loads
 * and an IPVS virtual server can be configured; the IP source guard blocks the VIP until the port's
 * allowed address pairs say so; floating IPs hairpin through the router as on Neutron; a server
 * (re-)created on an address its neighbours knew with another MAC is reachable at once (gratuitous
 * ARP at boot); `lab down` leaves no process, tap, namespace, mount or qemu behind.
 * Needs root and lab/hosts; prints each step's time.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { labDown, labStatus, labUp, type LabUpResult } from '../../lab/index.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'
import { eventually, labLeftovers, makeSshKit, parseConsoleKeys } from './lab-hosts/fixture.ts'
import type { SshKit } from './lab-hosts/fixture.ts'

const HOSTS = process.getuid?.() === 0
const VIP = '192.0.2.254'
const VM1 = '192.0.2.11'
const VM2 = '192.0.2.12'
/** The MAC an earlier server had on kld-vm-2's address, as far as the jumphost knows. */
const EARLIER_MAC = 'fa:16:3e:de:ad:01'

describe.skipIf(!HOSTS)('the seed on m1 and k1 servers, with the openstack CLI', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-seed-'))
  const stateDir = join(work, 'state')
  const timings: string[] = []
  let lab: LabUpResult
  let started = false
  let kit: SshKit
  let jumpFip = ''

  const os = (args: string[], timeoutMs = 120_000) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'openstack',
        args,
        {
          env: { ...process.env, OS_CLIENT_CONFIG_FILE: lab.cloudsYaml, OS_CLOUD: 'lab' },
          timeout: timeoutMs,
        },
        (err, stdout, stderr) =>
          resolve({
            code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1,
            stdout,
            stderr,
          }),
      )
    })
  const ok = async (...args: string[]): Promise<string> => {
    const r = await os(args, 600_000)
    if (r.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return r.stdout.trim()
  }
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now()
    const load = loadavg()[0]?.toFixed(1) ?? '?'
    const r = await f()
    timings.push(`${what}: ${Date.now() - t0} ms (load ${load})`)
    return r
  }
  /** Pins a server's host keys from `openstack console log show`. */
  const trustConsole = async (server: string, address: string) =>
    kit.trust(address, parseConsoleKeys(await ok('console', 'log', 'show', server)).keys)
  const serverArgs = (name: string, flavor: string, ip: string, groups: string[]) => [
    'server',
    'create',
    ...['--image', 'Debian 12', '--flavor', flavor, '--key-name', 'seed-key'],
    ...['--nic', `net-id=mynetwork,v4-fixed-ip=${ip}`],
    ...groups.flatMap((g) => ['--security-group', g]),
    '--wait',
    name,
  ]
  const jumpPings = async (ip: string) =>
    (await kit.run(jumpFip, `ping -c 1 -W 1 ${ip}`, 10_000)).code === 0

  beforeAll(async () => {
    await assertNoLiveLab()
    started = true
    lab = await timed('lab up', () => labUp({ stateDir, port: 0, log: () => undefined }))
    kit = await makeSshKit(work, '198.51.100.10', 'debian')
  }, 600_000)

  afterAll(async () => {
    try {
      if (started) {
        await timed('lab down', () => labDown({ stateDir, log: () => undefined }))
        expect(await labLeftovers(stateDir)).toEqual([])
      }
    } finally {
      console.log(`seed with the openstack CLI:\n  ${timings.join('\n  ')}`)
      rmSync(work, { recursive: true, force: true })
    }
  }, 180_000)

  it('offers the image and both flavor families', async () => {
    expect(await ok('image', 'list', '-f', 'value', '-c', 'Name')).toBe('Debian 12')
    const flavors = (await ok('flavor', 'list', '-f', 'value', '-c', 'Name')).split('\n')
    expect(flavors).toEqual(expect.arrayContaining(['m1.small', 'k1.small']))
    await ok(
      'port',
      'create',
      'kld-vip',
      '--network',
      'mynetwork',
      '--fixed-ip',
      `ip-address=${VIP}`,
    )
  })

  it('boots the jumphost (m1.small) and gives it a floating IP', async () => {
    await ok('keypair', 'create', '--public-key', join(work, 'id_ed25519.pub'), 'seed-key')
    await timed('jumphost (m1.small) create --wait', () =>
      ok(...serverArgs('kld-jumphost-vm', 'm1.small', '192.0.2.13', ['default', 'ssh'])),
    )
    jumpFip = await ok(
      'floating',
      'ip',
      'create',
      'public',
      '-f',
      'value',
      '-c',
      'floating_ip_address',
    )
    await ok('server', 'add', 'floating', 'ip', 'kld-jumphost-vm', jumpFip)
    await trustConsole('kld-jumphost-vm', jumpFip)
    expect((await kit.run(jumpFip, 'hostname')).stdout.trim()).toBe('kld-jumphost-vm')
  })

  it('reaches a new k1 server through the jumphost at the first attempt, though the jumphost knew its address with another MAC', async () => {
    // what a deleted server leaves in its neighbours: a valid entry with the old MAC
    const stale = await kit.run(
      jumpFip,
      `sudo ip neigh replace ${VM2} lladdr ${EARLIER_MAC} dev ens3 nud reachable && ip neigh show ${VM2}`,
    )
    expect(stale.stdout).toContain(EARLIER_MAC)
    await Promise.all([
      timed('kld-vm-1 (m1.small) create --wait', () =>
        ok(...serverArgs('kld-vm-1', 'm1.small', VM1, ['default'])),
      ),
      timed('kld-vm-2 (k1.small) create --wait', () =>
        ok(...serverArgs('kld-vm-2', 'k1.small', VM2, ['default', 'ssh'])),
      ),
    ])
    await trustConsole('kld-vm-1', VM1)
    await trustConsole('kld-vm-2', VM2)
    const r = await timed('first ssh into kld-vm-2', () =>
      kit.run(VM2, 'uname -r; hostname; cat /sys/class/net/ens3/address', 60_000),
    )
    expect(r.code, r.stderr).toBe(0)
    const [kernel, host, mac] = r.stdout.trim().split('\n')
    expect(kernel).toMatch(/^6\.1\.0-\d+-amd64$/)
    expect(kernel).not.toBe(release())
    expect(host).toBe('kld-vm-2')
    expect((await kit.run(jumpFip, `ip neigh show ${VM2}`)).stdout).toContain(mac ?? 'x')
  }, 600_000)

  it('has no keepalived until apt installs it from the lab mirror', async () => {
    const has = (ip: string) => kit.run(ip, 'dpkg -s keepalived >/dev/null 2>&1', 60_000)
    expect((await has(VM1)).code).not.toBe(0)
    expect((await has(VM2)).code).not.toBe(0)
    const install = (ip: string, packages: string) =>
      kit.run(
        ip,
        `sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${packages}`,
        600_000,
      )
    const [a, b] = await Promise.all([
      timed('m1: apt install keepalived', () => install(VM1, 'keepalived')),
      timed('k1: apt install keepalived ipvsadm', () => install(VM2, 'keepalived ipvsadm')),
    ])
    for (const r of [a, b]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/Get:\d+ http:\/\/198\.51\.100\.1:8781\/debian \.\/ keepalived/)
    }
    expect((await has(VM1)).code).toBe(0)
    expect((await has(VM2)).code).toBe(0)
  }, 900_000)

  it('loads ip_vs on the k1 server and configures an IPVS virtual server', async () => {
    const r = await kit.run(
      VM2,
      `sudo modprobe ip_vs && sudo ipvsadm -A -t ${VIP}:80 -s rr && sudo ipvsadm -a -t ${VIP}:80 -r ${VM1}:80 -g && sudo ipvsadm -Ln && lsmod`,
      60_000,
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/TCP {2}192\.0\.2\.254:80 rr/)
    expect(r.stdout).toMatch(/-> 192\.0\.2\.11:80 +Route/)
    expect(r.stdout).toMatch(/^ip_vs /m)
  })

  it('blocks the VIP by the IP source guard until the port allows it', async () => {
    expect((await kit.run(VM2, `sudo ip addr add ${VIP}/24 dev ens3`, 60_000)).code).toBe(0)
    expect(await jumpPings(VIP)).toBe(false)
    const port = await ok(
      'port',
      'list',
      '-f',
      'value',
      '-c',
      'ID',
      '--server',
      'kld-vm-2',
      '--fixed-ip',
      `ip-address=${VM2}`,
    )
    await ok('port', 'set', port, '--allowed-address', `ip-address=${VIP}`)
    expect(await eventually(() => jumpPings(VIP), 20_000, 500)).toBe(true)
  })

  it('hairpins floating IPs through the router: the k1 server reaches its own and the jumphost’s', async () => {
    const own = await ok(
      'floating',
      'ip',
      'create',
      'public',
      '-f',
      'value',
      '-c',
      'floating_ip_address',
    )
    await ok('server', 'add', 'floating', 'ip', 'kld-vm-2', own)
    const banner = (ip: string) =>
      `timeout 10 bash -c 'exec 3<>/dev/tcp/${ip}/22; head -c 7 <&3'; echo`
    const r = await kit.run(VM2, `${banner(own)}; ${banner(jumpFip)}`, 60_000)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().split('\n')).toEqual(['SSH-2.0', 'SSH-2.0'])
  })

  it('re-creates kld-vm-1 on the same fixed IP: the first SSH attempt through the jumphost succeeds', async () => {
    const before = (await kit.run(jumpFip, `ip neigh show ${VM1}`)).stdout
    await timed('kld-vm-1 delete --wait', () => ok('server', 'delete', '--wait', 'kld-vm-1'))
    await timed('kld-vm-1 re-create --wait', () =>
      ok(...serverArgs('kld-vm-1', 'm1.small', VM1, ['default'])),
    )
    await trustConsole('kld-vm-1', VM1)
    const r = await timed('first ssh into the re-created kld-vm-1', () =>
      kit.run(VM1, 'cat /sys/class/net/ens3/address', 10_000),
    )
    expect(r.code, r.stderr).toBe(0)
    const mac = r.stdout.trim()
    expect(before).not.toContain(mac)
    expect((await kit.run(jumpFip, `ip neigh show ${VM1}`)).stdout).toContain(mac)
  })

  it('shows KVM or TCG for kernel VMs in `lab status`', async () => {
    const lines: string[] = []
    const st = await labStatus({ stateDir, log: (l) => lines.push(l) })
    expect(st.kernelVms?.accel).toMatch(/^(kvm|tcg)$/)
    expect(lines.join('\n')).toMatch(/^kernel VMs \(k1\.\*\): (KVM|TCG \(software emulation\)): /m)
    // and the lab's log, at start (cached) or at the first k1 server (probed)
    expect(readFileSync(join(stateDir, 'lab.log'), 'utf8')).toMatch(
      /kernel VMs \(k1\.\*\): (KVM|TCG \(software emulation\)): /,
    )
    expect(st.servers.map((s) => s.name).sort()).toEqual([
      'kld-jumphost-vm',
      'kld-vm-1',
      'kld-vm-2',
    ])
  })
})
