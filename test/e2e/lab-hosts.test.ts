/**
 * The lab's host side (lab/hosts), driven directly with hand-made snapshots: three VMs of
 * namespaces as in the seed (kld-vm-1, kld-vm-2 and a jumphost with a floating IP), reached with
 * the system ssh client through the floating IP, with host keys pinned from the console logs.
 * Needs root; leaves nothing behind (afterAll tears the lab down, also when a test failed).
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MirrorServer } from '../../lab/mirror/server.ts'
import type { HostDriver, LabPort } from '../../lab/driver.ts'
import { checkHostPrerequisites, createNamespaceDriver } from '../../lab/hosts/index.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'
import {
  SG_DEFAULT,
  SG_SSH,
  eventually,
  labLeftovers,
  makePort,
  makeSnapshot,
  makeSpec,
  makeSshKit,
  startTestMirror,
  TEST_MIRROR_URL,
  installKeepalived,
  parseConsoleKeys,
  type SshKit,
} from './lab-hosts/fixture.ts'

const isRoot = process.getuid?.() === 0
const FIP = '198.51.100.10'
const VIP = '192.0.2.254'

/** Counts the ARP frames a VM sends with its MAC and those that come back to it ("sent back"). */
const OWN_ARP_FRAMES = `import socket, subprocess, time
# ETH_P_ALL: only such a socket sees outgoing frames too
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(('ens3', 0))
mac = bytes.fromhex(open('/sys/class/net/ens3/address').read().strip().replace(':', ''))
subprocess.run(['ip', 'neigh', 'flush', 'dev', 'ens3'])
subprocess.run(['ping', '-c', '2', '-W', '1', '192.0.2.12'], stdout=subprocess.DEVNULL)
s.settimeout(0.5)
sent = back = 0
while True:
    try:
        frame, addr = s.recvfrom(2048)
    except socket.timeout:
        break
    if frame[6:12] == mac and frame[12:14] == b'\\x08\\x06':
        if addr[2] == socket.PACKET_OUTGOING:
            sent += 1
        else:
            back += 1
print(sent, back)`

function keepalivedConf(state: 'MASTER' | 'BACKUP', priority: number): string {
  return `vrrp_instance VI_1 {
    state ${state}
    interface ens3
    virtual_router_id 254
    priority ${priority}
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass lab-test
    }
    virtual_ipaddress {
        ${VIP}/24
    }
}
`
}

describe.skipIf(!isRoot)('lab hosts: VMs made of namespaces', () => {
  const work = mkdtempSync(join(tmpdir(), 'rbl-hosts-test-'))
  const stateDir = join(work, 'state')
  const vm1 = makePort(11, [SG_DEFAULT])
  const vm2 = makePort(12, [SG_DEFAULT])
  const jump = makePort(13, [SG_DEFAULT, SG_SSH])
  // the port that reserves the VIP, as in the seed: no device, only an address
  const vipPort = makePort(254, [SG_DEFAULT])
  const ports: LabPort[] = [vm1, vm2, jump, vipPort]
  const fips = [
    {
      id: 'f1a70000-0000-4000-8000-000000000001',
      floatingIp: FIP,
      fixedIp: '192.0.2.13',
      portId: jump.id,
    },
  ]
  const snapshot = () => makeSnapshot(ports, fips)
  let driver: HostDriver | undefined
  let kit: SshKit
  const ids: Record<string, string> = {}
  const consoles: Record<string, string> = {}

  const vipHolder = async (): Promise<string[]> => {
    const out: string[] = []
    for (const [name, ip] of [
      ['kld-vm-1', '192.0.2.11'],
      ['kld-vm-2', '192.0.2.12'],
    ] as const) {
      const r = await kit.run(ip, 'ip -4 -o addr show dev ens3', 8_000)
      if (r.stdout.includes(`inet ${VIP}/`)) out.push(name)
    }
    return out
  }
  const jumpPingsVip = async () => (await kit.run(FIP, `ping -c 1 -W 1 ${VIP}`, 8_000)).code === 0

  let foreignLab = false

  let mirror: MirrorServer | undefined

  beforeAll(async () => {
    foreignLab = true
    await assertNoLiveLab()
    foreignLab = false
    await checkHostPrerequisites()
    kit = await makeSshKit(work, FIP)
    driver = createNamespaceDriver({ stateDir, aptMirror: TEST_MIRROR_URL })
    await driver.init(snapshot())
    mirror = await startTestMirror(work)
    const specs = [
      makeSpec('kld-vm-1', vm1, kit.publicKey),
      makeSpec('kld-vm-2', vm2, kit.publicKey),
      makeSpec('kld-jumphost-vm', jump, kit.publicKey),
    ]
    const boots = await Promise.all(specs.map((s) => driver!.createVm(s, snapshot())))
    specs.forEach((s, i) => {
      ids[s.name] = s.id
      consoles[s.name] = boots[i]?.consoleLog ?? ''
      kit.trust(s.port.fixedIps[0] ?? '', parseConsoleKeys(consoles[s.name] ?? '').keys)
    })
    kit.trust(FIP, parseConsoleKeys(consoles['kld-jumphost-vm'] ?? '').keys)
    // the image has no keepalived: install it from the mirror, as the seed does
    await installKeepalived(kit, ['192.0.2.11', '192.0.2.12'])
  }, 300_000)

  afterAll(async () => {
    try {
      await mirror?.close()
      // never tear down someone else's lab (the driver refuses too, when it knows the owner)
      if (!foreignLab) await (driver ?? createNamespaceDriver({ stateDir })).teardown()
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('prints the SSH host keys in cloud-init format on the console', () => {
    for (const [name, log] of Object.entries(consoles)) {
      expect(log).toMatch(/Cloud-init v\. .* finished at /)
      const { fingerprints, keys } = parseConsoleKeys(log)
      expect(fingerprints.length).toBeGreaterThanOrEqual(2)
      for (const f of fingerprints)
        expect(f).toMatch(
          new RegExp(`^\\d+ SHA256:[A-Za-z0-9+/]{43} root@${name} \\((ECDSA|ED25519|RSA)\\)$`),
        )
      expect(log).toMatch(
        new RegExp(
          `^<14>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d cloud-init: 256 SHA256:\\S+ root@${name} \\(ED25519\\)$`,
          'm',
        ),
      )
      // the fingerprints are those of the announced keys
      const computed = keys.map((k) => {
        const f = join(work, 'k.pub')
        writeFileSync(f, `${k}\n`)
        return execFileSync('ssh-keygen', ['-l', '-f', f], { encoding: 'utf8' }).trim()
      })
      expect(computed).toEqual(fingerprints)
    }
  })

  it('reaches the jumphost through its floating IP and vm1 through the jumphost, keys pinned', async () => {
    const j = await kit.run(FIP, 'hostname')
    expect(j.stderr).toBe('')
    expect(j.stdout.trim()).toBe('kld-jumphost-vm')
    const r = await kit.run('192.0.2.11', 'hostname; ip route | grep default; sudo -n id -u')
    expect(r.code).toBe(0)
    expect(
      r.stdout
        .split('\n')
        .slice(0, 3)
        .map((l) => l.trim()),
    ).toEqual([
      'kld-vm-1',
      'default via 192.0.2.1 dev ens3 proto dhcp src 192.0.2.11 metric 100',
      '0',
    ])
    // the machine's only way into the lab is the floating range: nothing routes the tenant subnet to it
    const viaLab = execFileSync('ip', ['route', 'show', 'table', 'all'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('rbl'))
    expect(viaLab.length).toBeGreaterThan(0)
    for (const l of viaLab)
      expect(l).toMatch(/^(local |broadcast )?198\.51\.100\.(0\/25|1|127) dev rbl-fip0 /)
  })

  it('keeps what one VM writes away from the other VMs and the machine', async () => {
    const w = await kit.run(
      '192.0.2.11',
      'echo vm1 | sudo tee /etc/rbl-isolation-probe >/dev/null && echo x > /tmp/rbl-probe && touch ~/rbl-probe && sudo sh -c "echo 4242 > /run/rbl-probe.pid"',
    )
    expect(w.code).toBe(0)
    const r = await kit.run(
      '192.0.2.12',
      'ls /etc/rbl-isolation-probe /tmp/rbl-probe ~/rbl-probe /run/rbl-probe.pid 2>/dev/null | wc -l; hostname; ps -e --no-headers | wc -l',
    )
    const [files, host, procs] = r.stdout.trim().split('\n')
    expect(files).toBe('0')
    expect(host).toBe('kld-vm-2')
    expect(Number(procs)).toBeLessThan(20)
    expect(existsSync('/etc/rbl-isolation-probe')).toBe(false)
    expect(existsSync('/run/rbl-probe.pid')).toBe(false)
  })

  it('drops spoofed sources and filters ingress by security group, updates at once', async () => {
    // a source address the port does not own: neither ARP nor IP gets through
    const spoof = await kit.run(
      '192.0.2.12',
      'sudo ip addr add 192.0.2.99/24 dev ens3; ping -c 2 -W 1 -I 192.0.2.99 192.0.2.13; rc=$?; sudo ip addr del 192.0.2.99/24 dev ens3; exit $rc',
    )
    expect(spoof.code).not.toBe(0)
    expect((await kit.run('192.0.2.12', 'ping -c 1 -W 1 192.0.2.13')).code).toBe(0)
    // the `ssh` group lets tcp 22 in from anywhere, but nothing else from outside the default group
    expect(spawnSyncCode('ping', ['-c', '1', '-W', '1', FIP])).not.toBe(0)
    const tcp22 = (ip: string) =>
      kit.run(FIP, `timeout 3 bash -c 'echo > /dev/tcp/${ip}/22'`, 8_000)
    expect((await tcp22('192.0.2.12')).code).toBe(0)
    vm2.securityGroupIds = []
    await driver!.syncNetwork(snapshot())
    expect((await tcp22('192.0.2.12')).code).not.toBe(0)
    vm2.securityGroupIds = [SG_DEFAULT]
    await driver!.syncNetwork(snapshot())
    expect((await tcp22('192.0.2.12')).code).toBe(0)
  })

  it('runs keepalived: a master, the VIP only with allowed address pairs, failover', async () => {
    for (const [ip, state, prio] of [
      ['192.0.2.11', 'MASTER', 120],
      ['192.0.2.12', 'BACKUP', 90],
    ] as const) {
      const r = await kit.run(
        ip,
        `echo '${keepalivedConf(state, prio)}' | sudo tee /etc/keepalived/keepalived.conf >/dev/null && sudo service keepalived start`,
      )
      expect(r.code, r.stderr).toBe(0)
    }
    expect(await eventually(async () => (await vipHolder()).join() === 'kld-vm-1', 15_000)).toBe(
      true,
    )
    // VRRP passes, but the port does not own the VIP yet: the jumphost cannot reach it
    expect(await jumpPingsVip()).toBe(false)

    for (const p of [vm1, vm2]) p.allowedAddressPairs = [{ ipAddress: VIP }]
    await driver!.syncNetwork(snapshot())
    expect(await eventually(jumpPingsVip, 8_000)).toBe(true)

    // a graceful stop of the master hands the VIP over
    expect((await kit.run('192.0.2.11', 'sudo service keepalived stop')).code).toBe(0)
    expect(await eventually(async () => (await vipHolder()).join() === 'kld-vm-2', 10_000)).toBe(
      true,
    )
    expect(await eventually(jumpPingsVip, 8_000)).toBe(true)

    // the master comes back and takes the VIP again (it has the higher priority)
    expect((await kit.run('192.0.2.11', 'sudo service keepalived start')).code).toBe(0)
    expect(await eventually(async () => (await vipHolder()).join() === 'kld-vm-1', 15_000)).toBe(
      true,
    )

    // power the master off: the backup takes over
    await driver!.stopVm(ids['kld-vm-1'] ?? '')
    const vm1ns = `rbl-vm-${(ids['kld-vm-1'] ?? '').slice(0, 8)}`
    expect(execFileSync('ip', ['-n', vm1ns, 'link', 'show', 'ens3'], { encoding: 'utf8' })).toMatch(
      /state DOWN/,
    )
    expect(execFileSync('ip', ['netns', 'pids', vm1ns], { encoding: 'utf8' }).trim()).toBe('')
    expect((await kit.run('192.0.2.11', 'true', 8_000)).code).not.toBe(0)
    expect(
      await eventually(
        async () =>
          (await kit.run('192.0.2.12', 'ip -4 -o addr show dev ens3')).stdout.includes(
            `inet ${VIP}/`,
          ),
        10_000,
      ),
    ).toBe(true)
    expect(await eventually(jumpPingsVip, 8_000)).toBe(true)

    // power it on: same host keys (StrictHostKeyChecking), same disk, keepalived starts at boot
    const boot = await driver!.startVm(ids['kld-vm-1'] ?? '')
    expect(boot.consoleLog).toMatch(/finished at/)
    expect(boot.consoleLog).not.toMatch(/BEGIN SSH HOST KEY FINGERPRINTS/)
    expect(await driver!.consoleLog(ids['kld-vm-1'] ?? '')).toContain(
      parseConsoleKeys(consoles['kld-vm-1'] ?? '').fingerprints[0] ?? 'x',
    )
    const back = await kit.run('192.0.2.11', 'cat /etc/rbl-isolation-probe; ls /tmp | wc -l')
    expect(back.stdout.split('\n').slice(0, 2)).toEqual(['vm1', '0'])
    expect(await eventually(async () => (await vipHolder()).join() === 'kld-vm-1', 15_000)).toBe(
      true,
    )

    // taking the pair away again works at once
    for (const p of [vm1, vm2]) p.allowedAddressPairs = []
    await driver!.syncNetwork(snapshot())
    expect(await jumpPingsVip()).toBe(false)
  })

  it('hairpins floating IPs as a Neutron router: a VM reaches its own and another VM reaches it', async () => {
    const banner = `exec 3<>/dev/tcp/${FIP}/22; head -c 7 <&3; echo`
    const peersOfJump = async () =>
      (await kit.run(FIP, "ss -Htn state established '( sport = :22 )'", 8_000)).stdout
    // the jumphost to its own floating IP: DNAT to itself, SNAT to its floating IP (float-snat)
    const own = await kit.run(
      FIP,
      `timeout 5 bash -c '${banner}; sleep 2' & sleep 1; ss -Htn state established '( sport = :22 )'; wait`,
      10_000,
    )
    expect(own.code, own.stderr).toBe(0)
    expect(own.stdout).toMatch(/^SSH-2\.0/m)
    expect(own.stdout).toMatch(
      new RegExp(`192\\.0\\.2\\.13:22\\s+${FIP.replace(/\./g, '\\.')}:\\d+`),
    )
    // vm1 (no floating IP) to the jumphost's floating IP: SNAT to the router's gateway address
    const [other, peers] = await Promise.all([
      kit.run('192.0.2.11', `timeout 6 bash -c '${banner}; sleep 3'`, 12_000),
      new Promise((r) => setTimeout(r, 1_500)).then(peersOfJump),
    ])
    expect(other.code, other.stderr).toBe(0)
    expect(other.stdout).toMatch(/^SSH-2\.0/)
    expect(peers).toMatch(/192\.0\.2\.13:22\s+198\.51\.100\.2:\d+/)
    // nothing else comes back by the port it left by: a VM never receives its own ARP broadcasts
    const arp = await kit.run('192.0.2.11', `sudo python3 - <<'PY'\n${OWN_ARP_FRAMES}\nPY`, 15_000)
    expect(arp.code, arp.stderr).toBe(0)
    const [sent, back] = arp.stdout.trim().split(' ').map(Number)
    expect(sent).toBeGreaterThan(0)
    expect(back).toBe(0)
  })

  it("announces a re-created VM: an earlier VM's neighbours reach the new one at once", async () => {
    const old = makePort(16, [SG_DEFAULT])
    ports.push(old)
    const first = makeSpec('kld-vm-6', old, kit.publicKey)
    const boot1 = await driver!.createVm(first, snapshot())
    kit.trust('192.0.2.16', parseConsoleKeys(boot1.consoleLog).keys)
    // the jumphost has talked to it: its neighbour table holds the first VM's MAC
    expect((await kit.run('192.0.2.16', 'hostname', 15_000)).stdout.trim()).toBe('kld-vm-6')
    expect((await kit.run(FIP, 'ip neigh show 192.0.2.16')).stdout).toContain(old.mac)
    await driver!.deleteVm(first.id)
    ports.pop()
    // a new server and port with the same fixed IP, a new MAC (as Neutron gives)
    const renewed: LabPort = {
      ...makePort(16, [SG_DEFAULT]),
      id: 'be11a000-0000-4000-8000-000000010010',
      mac: 'fa:16:3e:01:00:10',
    }
    ports.push(renewed)
    const second = {
      ...makeSpec('kld-vm-6', renewed, kit.publicKey),
      id: '01000010-7e57-4000-8000-000000000000',
    }
    const boot2 = await driver!.createVm(second, snapshot())
    kit.trust('192.0.2.16', parseConsoleKeys(boot2.consoleLog).keys)
    const t0 = Date.now()
    const r = await kit.run('192.0.2.16', 'cat /sys/class/net/ens3/address', 8_000)
    console.log(`re-created VM reached through the jumphost in ${Date.now() - t0} ms`)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe(renewed.mac)
    expect((await kit.run(FIP, 'ip neigh show 192.0.2.16')).stdout).toContain(renewed.mac)
    await driver!.deleteVm(second.id)
    ports.pop()
  })

  it('deletes a VM completely', async () => {
    const p = makePort(14, [SG_DEFAULT])
    ports.push(p)
    const spec = makeSpec('kld-vm-4', p, kit.publicKey)
    await driver!.createVm(spec, snapshot())
    const short = spec.id.slice(0, 8)
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(`rbl-vm-${short}`)
    await driver!.deleteVm(spec.id)
    ports.pop()
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(
      `rbl-vm-${short}`,
    )
    expect(
      execFileSync('ip', ['-n', 'rbl-router', 'link', 'show'], { encoding: 'utf8' }),
    ).not.toContain(`rblv-${short}`)
    expect(execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })).not.toContain(short)
    expect(existsSync(join(stateDir, 'vms', short))).toBe(false)
    await driver!.deleteVm(spec.id)
    await expect(driver!.startVm(spec.id)).rejects.toThrow(/no VM/)
  })

  it('refuses a second lab, and its teardown leaves this one alone', async () => {
    const other = createNamespaceDriver({ stateDir: join(work, 'other-lab') })
    await expect(other.init(snapshot())).rejects.toThrow(/another lab is up/)
    await expect(other.teardown()).rejects.toThrow(/another lab is up/)
    expect((await kit.run(FIP, 'hostname')).stdout.trim()).toBe('kld-jumphost-vm')
  })

  it('tears everything down after the process holding the driver was SIGKILLed', async () => {
    const p = makePort(15, [SG_DEFAULT])
    const snapFile = join(work, 'snapshot.json')
    const specFile = join(work, 'spec.json')
    writeFileSync(snapFile, JSON.stringify(makeSnapshot([...ports, p], fips)))
    writeFileSync(specFile, JSON.stringify(makeSpec('kld-vm-5', p, kit.publicKey)))
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'lab-hosts', 'holder.ts'),
        stateDir,
        snapFile,
        specFile,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const ready = await new Promise<boolean>((resolve) => {
      let out = ''
      const timer = setTimeout(() => resolve(false), 60_000)
      holder.stdout.on('data', (b: Buffer) => {
        out += b.toString()
        if (out.includes('READY')) {
          clearTimeout(timer)
          resolve(true)
        }
      })
      holder.on('exit', () => resolve(false))
    })
    expect(ready).toBe(true)
    holder.kill('SIGKILL')
    await new Promise((r) => holder.once('close', r))
    expect(await labLeftovers(stateDir)).not.toEqual([])

    await createNamespaceDriver({ stateDir }).teardown()
    expect(await labLeftovers(stateDir)).toEqual([])
    await createNamespaceDriver({ stateDir }).teardown()
    driver = undefined
  })
})

function spawnSyncCode(cmd: string, args: string[]): number {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return 0
  } catch (e) {
    return (e as { status?: number }).status ?? -1
  }
}
