/**
 * Servers with their own kernel (k1.* flavors): through the lab's API, a namespace jumphost
 * (m1.small, floating IP) and a QEMU VM (k1.small) booted from the same Debian 12 image with
 * Debian's kernel. On the k1 VM: Debian's `uname -r`, the image's os-release, ipvsadm from the
 * lab mirror, `modprobe ip_vs` and an IPVS virtual server; the IP source guard blocks an extra
 * address until the port's allowed address pairs say so, exactly as for a namespace VM; a reboot
 * through Nova really reboots the kernel and sshd comes back with the same host keys.
 * Emulated (TCG): slow, and slower on a loaded machine; the timings are printed.
 * Needs root; leaves nothing behind (no qemu, tap, namespace or mount).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { labDown, labUp, passwordAuthRequest, type LabUpResult } from '../../lab/index.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'
import { eventually, labLeftovers, makeSshKit, parseConsoleKeys } from './lab-hosts/fixture.ts'
import type { SshKit } from './lab-hosts/fixture.ts'

const HOSTS = process.getuid?.() === 0
const VIP = '192.0.2.250'
type Json = Record<string, unknown>

describe.skipIf(!HOSTS)('kernel VMs (k1.*) in the lab', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-k1-'))
  const stateDir = join(work, 'state')
  const timings: string[] = []
  const ids: Record<string, string> = {}
  const consoles: Record<string, string> = {}
  let lab: LabUpResult
  let started = false
  let token = ''
  let kit: SshKit
  let k1Ip = ''

  const api = async (method: string, path: string, body?: unknown): Promise<Json> => {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (token !== '') headers['X-Auth-Token'] = token
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const res = await fetch(`${lab.url}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    })
    const text = await res.text()
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    if (method === 'POST' && path === '/v3/auth/tokens')
      token = res.headers.get('x-subject-token') ?? ''
    return (text === '' ? {} : JSON.parse(text)) as Json
  }
  const first = (json: Json, key: string): Json => {
    const item = (json[key] as Json[] | undefined)?.[0]
    if (item === undefined) throw new Error(`no ${key}`)
    return item
  }
  const server = async (id: string): Promise<Json> =>
    (await api('GET', `/compute/v2.1/servers/${id}`))['server'] as Json
  /** Waits until the server is ACTIVE with no task running; fails at ERROR. */
  const active = async (id: string, timeoutMs: number): Promise<number> => {
    const t0 = Date.now()
    for (;;) {
      const s = await server(id)
      if (s['status'] === 'ACTIVE' && s['OS-EXT-STS:task_state'] === null) return Date.now() - t0
      if (s['status'] === 'ERROR') throw new Error(`server in ERROR: ${JSON.stringify(s['fault'])}`)
      if (Date.now() - t0 > timeoutMs) throw new Error(`server not ACTIVE within ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  const consoleOf = async (id: string): Promise<string> =>
    String(
      (await api('POST', `/compute/v2.1/servers/${id}/action`, { 'os-getConsoleOutput': {} }))[
        'output'
      ],
    )
  const k1 = (command: string, timeoutMs = 120_000) => kit.run(k1Ip, command, timeoutMs)
  const load = () => loadavg()[0]?.toFixed(1) ?? '?'

  beforeAll(async () => {
    await assertNoLiveLab()
    started = true
    const t0 = Date.now()
    lab = await labUp({ stateDir, port: 0, log: () => undefined })
    timings.push(`labUp ${Date.now() - t0} ms`)
    kit = await makeSshKit(work, '198.51.100.10', 'debian')
    const auth =
      (parse(readFileSync(lab.cloudsYaml, 'utf8')) as { clouds: Record<string, { auth: Json }> })
        .clouds['lab']?.auth ?? {}
    await api('POST', '/v3/auth/tokens', passwordAuthRequest(auth))
    await api('POST', '/compute/v2.1/os-keypairs', {
      keypair: { name: 'k1-key', public_key: kit.publicKey },
    })
    const image = first(await api('GET', '/image/v2/images?name=Debian%2012'), 'images')
    const net = first(await api('GET', '/network/v2.0/networks?name=mynetwork'), 'networks')
    const pub = first(await api('GET', '/network/v2.0/networks?name=public'), 'networks')
    const flavor = async (name: string) =>
      first(
        {
          flavors: ((await api('GET', '/compute/v2.1/flavors'))['flavors'] as Json[]).filter(
            (f) => f['name'] === name,
          ),
        },
        'flavors',
      )['id']
    for (const [name, flavorName] of [
      ['k1-jump', 'm1.small'],
      ['k1-vm', 'k1.small'],
    ] as const) {
      const created = await api('POST', '/compute/v2.1/servers', {
        server: {
          name,
          imageRef: image['id'],
          flavorRef: await flavor(flavorName),
          networks: [{ uuid: net['id'] }],
          key_name: 'k1-key',
          security_groups: [{ name: 'default' }, { name: 'ssh' }],
        },
      })
      ids[name] = String((created['server'] as Json)['id'])
    }
    const load0 = load()
    const [jumpMs, k1Ms] = await Promise.all([
      active(ids['k1-jump'] ?? '', 120_000),
      active(ids['k1-vm'] ?? '', 420_000),
    ])
    timings.push(`ACTIVE: m1 ${jumpMs} ms, k1 ${k1Ms} ms (sshd answering; load ${load0})`)
    const jumpPort = first(
      await api('GET', `/network/v2.0/ports?device_id=${ids['k1-jump']}`),
      'ports',
    )
    const fip = await api('POST', '/network/v2.0/floatingips', {
      floatingip: { floating_network_id: pub['id'], port_id: jumpPort['id'] },
    })
    const fipAddress = String((fip['floatingip'] as Json)['floating_ip_address'])
    expect(fipAddress).toBe('198.51.100.10')
    const k1Port = first(await api('GET', `/network/v2.0/ports?device_id=${ids['k1-vm']}`), 'ports')
    k1Ip = String((k1Port['fixed_ips'] as Json[])[0]?.['ip_address'])
    for (const name of ['k1-jump', 'k1-vm']) consoles[name] = await consoleOf(ids[name] ?? '')
    kit.trust(fipAddress, parseConsoleKeys(consoles['k1-jump'] ?? '').keys)
    kit.trust(k1Ip, parseConsoleKeys(consoles['k1-vm'] ?? '').keys)
  }, 600_000)

  afterAll(async () => {
    try {
      if (started) {
        const t0 = Date.now()
        await labDown({ stateDir, log: () => undefined })
        timings.push(`labDown ${Date.now() - t0} ms`)
        expect(await labLeftovers(stateDir)).toEqual([])
      }
    } finally {
      console.log(`kernel VM timings:\n  ${timings.join('\n  ')}`)
      rmSync(work, { recursive: true, force: true })
    }
  }, 180_000)

  it('prints its own SSH host keys on the serial console, in cloud-init format', () => {
    const k1Keys = parseConsoleKeys(consoles['k1-vm'] ?? '')
    expect(k1Keys.keys).toHaveLength(2)
    expect(k1Keys.fingerprints.join('\n')).toMatch(/root@k1-vm \(ED25519\)/)
    // per VM, generated at first boot: not the image's, not another VM's
    const jumpKeys = parseConsoleKeys(consoles['k1-jump'] ?? '').keys
    for (const k of k1Keys.keys) expect(jumpKeys).not.toContain(k)
    expect(consoles['k1-vm']).toMatch(/Debian GNU\/Linux 12 \(bookworm\) k1-vm ttyS0/)
  })

  it("runs Debian's kernel and the image's userland, named and addressed as Nova and Neutron say", async () => {
    const r = await k1(
      'uname -r; . /etc/os-release; echo "$PRETTY_NAME"; hostname; ip -4 -o addr show dev ens3; ip route show default; dpkg -s keepalived >/dev/null 2>&1; echo "keepalived=$?"',
    )
    expect(r.code, r.stderr).toBe(0)
    const [kernel, os, host, addr, route, keepalived] = r.stdout.trim().split('\n')
    expect(kernel).toMatch(/^6\.1\.0-\d+-amd64$/)
    expect(kernel).not.toBe((await import('node:os')).release())
    expect(os).toBe('Debian GNU/Linux 12 (bookworm)')
    expect(host).toBe('k1-vm')
    expect(addr).toContain(`inet ${k1Ip}/24`)
    expect(route?.trim()).toBe(`default via 192.0.2.1 dev ens3 proto dhcp src ${k1Ip} metric 100`)
    expect(keepalived).toBe('keepalived=1')
  })

  it('installs ipvsadm from the lab mirror, loads ip_vs and configures an IPVS virtual server', async () => {
    const t0 = Date.now()
    const apt = await k1(
      'sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q ipvsadm',
      300_000,
    )
    timings.push(`k1: apt-get update && install ipvsadm ${Date.now() - t0} ms (load ${load()})`)
    expect(apt.code, apt.stderr).toBe(0)
    expect(apt.stdout).toMatch(/Get:\d+ http:\/\/198\.51\.100\.1:8781\/debian \.\/ ipvsadm/)
    const r = await k1(
      `sudo modprobe crc32c_generic && sudo modprobe ip_vs && lsmod | grep -c '^ip_vs ' && sudo ipvsadm -A -t ${VIP}:80 -s rr && sudo ipvsadm -a -t ${VIP}:80 -r 192.0.2.10:80 -g && sudo ipvsadm -Ln`,
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^1$/m)
    expect(r.stdout).toMatch(new RegExp(`TCP  ${VIP.replace(/\./g, '\\.')}:80 rr`))
    expect(r.stdout).toMatch(/-> 192\.0\.2\.10:80 +Route/)
  })

  it('port security: the IP source guard blocks an extra address until allowed address pairs', async () => {
    expect((await k1(`sudo ip addr add ${VIP}/24 dev ens3`)).code).toBe(0)
    const jumpPings = async () =>
      (await kit.run('198.51.100.10', `ping -c 1 -W 1 ${VIP}`, 10_000)).code === 0
    expect(await jumpPings()).toBe(false)
    const port = first(await api('GET', `/network/v2.0/ports?device_id=${ids['k1-vm']}`), 'ports')
    await api('PUT', `/network/v2.0/ports/${String(port['id'])}`, {
      port: { allowed_address_pairs: [{ ip_address: VIP }] },
    })
    expect(await eventually(jumpPings, 20_000, 500)).toBe(true)
    await api('PUT', `/network/v2.0/ports/${String(port['id'])}`, {
      port: { allowed_address_pairs: [] },
    })
    // the neighbour entry may still be valid: ask with a fresh ARP
    await kit.run('198.51.100.10', `sudo ip neigh flush to ${VIP}`, 10_000)
    expect(await jumpPings()).toBe(false)
  })

  it('reboots for real through Nova: a new kernel boot, sshd back with the same host keys', async () => {
    const before = (await k1('cat /proc/sys/kernel/random/boot_id')).stdout.trim()
    expect(before).toMatch(/^[0-9a-f-]{36}$/)
    const t0 = Date.now()
    await api('POST', `/compute/v2.1/servers/${ids['k1-vm']}/action`, { reboot: { type: 'SOFT' } })
    await eventually(
      async () => (await server(ids['k1-vm'] ?? ''))['OS-EXT-STS:task_state'] !== null,
      10_000,
      100,
    )
    await active(ids['k1-vm'] ?? '', 420_000)
    timings.push(`k1: reboot to ACTIVE ${Date.now() - t0} ms (load ${load()})`)
    // StrictHostKeyChecking with the keys pinned at first boot: they did not change
    const after = await k1('cat /proc/sys/kernel/random/boot_id; dpkg -s ipvsadm | grep ^Status')
    expect(after.code, after.stderr).toBe(0)
    const [bootId, status] = after.stdout.trim().split('\n')
    expect(bootId).not.toBe(before)
    expect(status).toBe('Status: install ok installed')
  })
})
