/**
 * The host modules against a real, isolated Debian host (test/fixtures/sandbox-host.ts): real apt
 * and dpkg with a local repository, keepalived's real SysV init script, sysctl and addresses in
 * the sandbox's own network namespace. Addresses: 198.51.100.176/28 (this file's slice).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { LocalConnection } from '../../engine/connection/local.ts'
import type { Module } from '../../engine/module.ts'
import { address } from '../../modules/host/address.ts'
import { apt } from '../../modules/host/apt.ts'
import { facts, type HostFacts } from '../../modules/host/facts.ts'
import { ping } from '../../modules/host/ping.ts'
import { service } from '../../modules/host/service.ts'
import { sysctl } from '../../modules/host/sysctl.ts'
import {
  addUplink,
  localAptRepo,
  startSandbox,
  startSyslog,
  type SandboxHost,
} from '../fixtures/sandbox-host.ts'
import { testContext, type TestContext } from '../helpers/context.ts'
import { converge, CountingConnection } from '../modules/host/harness.ts'

const IP = '198.51.100.178'
const GW = '198.51.100.177'
const VIP = '198.51.100.190'
const KEEPALIVED_CONF = `vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n    ${VIP}/28\n  }\n}\n`

let box: SandboxHost
let conn: CountingConnection
let ctx: TestContext

/** Applies a task and checks what every module test must show: it changed, then plans nothing. */
async function convergeTwice<P, S>(
  mod: Module<P, S>,
  raw: Record<string, unknown>,
): Promise<Awaited<ReturnType<typeof converge<P, S>>>> {
  const r = await converge(mod, ctx, conn, raw)
  expect(r.first.length, `${mod.name}: first plan`).toBeGreaterThan(0)
  expect(r.second, `${mod.name}: second plan`).toEqual([])
  return r
}

beforeAll(async () => {
  box = await startSandbox({ id: 'host', hostname: 'rbt-mod-host' })
  conn = new CountingConnection(box.conn)
  ctx = testContext({ conn })
  await addUplink(box, { address: `${IP}/28`, gateway: GW })
  await startSyslog(box)
  await localAptRepo(box, [
    { name: 'rbt-dep', version: '1.0' },
    { name: 'rbt-dummy', version: '1.0', depends: 'rbt-dep' },
    { name: 'rbt-dummy', version: '2.0', depends: 'rbt-dep' },
  ])
})

afterAll(async () => {
  await box?.destroy()
})

describe('facts', () => {
  it('reads the default route, interfaces, OS and init in one round trip, then from the cache', async () => {
    const p = facts.params.parse({})
    const before = conn.trips
    const f: HostFacts = await facts.gather(ctx, p)
    expect(conn.trips - before).toBe(1)
    expect(f.default_ipv4).toMatchObject({
      interface: 'eth0',
      address: IP,
      gateway: GW,
      prefix: 28,
    })
    expect(f.interfaces.eth0?.ipv4).toEqual([{ address: IP, prefix: 28 }])
    expect(f.interfaces.lo?.mac).toBe('00:00:00:00:00:00')
    expect([f.hostname, f.os.id, f.init, f.pkg_mgr]).toEqual([
      'rbt-mod-host',
      'debian',
      'sysv',
      'apt',
    ])
    expect(facts.plan(p, f)).toEqual([])
    expect(facts.facts?.(p, f)).toEqual({ facts: f })
    await facts.gather(ctx, p)
    expect(conn.trips - before).toBe(1)
  })
})

describe('apt', () => {
  it('keepalived (installed on the machine) is already present: nothing to do, one round trip', async () => {
    const r = await converge(apt, ctx, conn, { name: 'keepalived', state: 'present' })
    expect([r.first, r.gatherTrips]).toEqual([[], 1])
  })

  it('installs a pinned version with its dependency after updating the cache', async () => {
    // a fresh image: no lists, so the plan simulates nothing (one round trip)
    await box.sh('rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp')
    const r = await convergeTwice(apt, {
      name: 'rbt-dummy=1.0',
      update_cache: true,
      cache_valid_time: 3600,
    })
    expect(r.first.map((c) => `${c.action} ${c.target}`)).toEqual([
      'run apt cache',
      'create package rbt-dummy',
    ])
    expect(r.first[1]).toMatchObject({ note: 'known after apt-get update' })
    expect(r.gatherTrips).toBe(1)
    expect(r.result?.output).toMatchObject({
      installed: [
        { name: 'rbt-dep', version: '1.0' },
        { name: 'rbt-dummy', version: '1.0' },
      ],
      cache_updated: true,
    })
    expect(await box.sh("dpkg-query -W -f='${Version}' rbt-dummy")).toBe('1.0')
  })

  it('plans from apt-get -s: the upgrade to the latest version, with versions', async () => {
    const r = await convergeTwice(apt, { name: 'rbt-dummy', state: 'latest' })
    expect(r.first).toEqual([
      {
        action: 'update',
        target: 'package rbt-dummy',
        key: { kind: 'package', name: 'rbt-dummy' },
        before: { version: '1.0' },
        after: { version: '2.0' },
      },
    ])
    expect(r.result?.output).toMatchObject({
      upgraded: [{ name: 'rbt-dummy', from: '1.0', to: '2.0' }],
      installed: [],
      removed: [],
    })
  })

  it('waits for the dpkg lock held by another process, then removes', async () => {
    await box.sh(
      `(setsid python3 -c 'import fcntl,time; f=open("/var/lib/dpkg/lock-frontend","w"); fcntl.lockf(f, fcntl.LOCK_EX); open("/tmp/locked","w").close(); time.sleep(3)' </dev/null >/dev/null 2>&1 &); for i in $(seq 50); do [ -e /tmp/locked ] && exit 0; sleep 0.1; done; exit 1`,
    )
    const r = await convergeTwice(apt, { name: 'rbt-dummy', state: 'absent' })
    expect(r.first).toEqual([
      {
        action: 'delete',
        target: 'package rbt-dummy',
        key: { kind: 'package', name: 'rbt-dummy' },
        before: { version: '2.0' },
      },
    ])
    expect(r.result?.output).toMatchObject({ removed: [{ name: 'rbt-dummy', version: '2.0' }] })
    expect(ctx.messages.some((m) => /^waiting for the dpkg lock \(python3 \d+ holds/.test(m))).toBe(
      true,
    )
    expect(
      await box.sh("dpkg-query -W -f='${db:Status-Abbrev}' rbt-dummy 2>/dev/null || true"),
    ).not.toMatch(/^ii/)
  })

  it('an unknown package fails the plan with apt’s own message', async () => {
    const p = apt.params.parse({ name: 'rbt-no-such-package' })
    await expect(apt.gather(ctx, p).then((s) => apt.plan(p, s))).rejects.toThrow(
      /Unable to locate package rbt-no-such-package/,
    )
  })
})

describe('service (SysV init, no systemd in the sandbox)', () => {
  beforeAll(async () => {
    await box.sh(
      'cat > /etc/keepalived/keepalived.conf && update-rc.d keepalived disable >/dev/null',
      KEEPALIVED_CONF,
    )
  })

  it('starts and enables keepalived, and the process really runs', async () => {
    const r = await convergeTwice(service, { name: 'keepalived', state: 'started', enabled: true })
    expect(r.gatherTrips).toBe(1)
    expect(r.first.map((c) => c.target)).toEqual([
      'service keepalived at boot',
      'service keepalived',
    ])
    expect(r.result?.output).toMatchObject({ state: 'started', enabled: true, init: 'sysv' })
    expect(await box.sh('pidof keepalived')).toMatch(/\d+/)
    expect(await box.sh('ls /etc/rc2.d/')).toMatch(/S\d\dkeepalived/)
  })

  it('restarted is a run every time, and the pid changes', async () => {
    const pid = (await box.sh('cat /run/keepalived.pid')).trim()
    const r = await converge(service, ctx, conn, { name: 'keepalived', state: 'restarted' })
    expect(r.first).toMatchObject([
      { action: 'run', target: 'service keepalived', after: { action: 'restart' } },
    ])
    expect(r.second.map((c) => c.action)).toEqual(['run'])
    expect((await box.sh('cat /run/keepalived.pid')).trim()).not.toBe(pid)
  })

  it('reads a pidfile without its last newline, and is disabled without a start link in every runlevel 2-5', async () => {
    const pid = (await box.sh('cat /run/keepalived.pid')).trim()
    await box.sh(`printf %s ${pid} > /run/keepalived.pid`)
    const p = service.params.parse({ name: 'keepalived', state: 'started', enabled: true })
    expect(await service.gather(ctx, p)).toMatchObject({
      running: true,
      pid: Number(pid),
      detail: 'pidfile',
      enabled: true,
    })
    const link = (await box.sh('ls /etc/rc3.d/ | grep keepalived')).trim()
    await box.sh(`mv /etc/rc3.d/${link} /tmp/${link}`)
    try {
      expect(await service.gather(ctx, p)).toMatchObject({ running: true, enabled: false })
    } finally {
      await box.sh(`mv /tmp/${link} /etc/rc3.d/${link}`)
    }
    expect(await service.gather(ctx, p)).toMatchObject({ enabled: true })
  })

  it('stops it, and the process is gone', async () => {
    await convergeTwice(service, { name: 'keepalived', state: 'stopped' })
    expect((await box.conn.exec('pidof keepalived')).rc).toBe(1)
  })

  it('a config that kills the daemon after "Starting ... done" fails started with its log lines', async () => {
    await box.sh(
      'cat > /etc/keepalived/keepalived.conf',
      'vrrp_instance VI_1 {\n  interface nosuch0\n  virtual_router_id 300\n}\n',
    )
    const p = service.params.parse({ name: 'keepalived', state: 'started', timeout: 3 })
    const s = await service.gather(ctx, p)
    const err = await service.apply(ctx, p, service.plan(p, s), s).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(String(err)).toMatch(/service keepalived is not running after start/)
    expect(String(err)).toMatch(/Starting keepalived/)
    expect(String(err)).toMatch(/Keepalived_vrrp\[\d+\]: .*VRID '300' not valid/)
  })
})

describe('sysctl (in the sandbox’s own network namespace)', () => {
  const machine = new LocalConnection()
  it('sets arp_ignore and arp_announce now and persisted, leaving the machine alone', async () => {
    const machineBefore = (await machine.exec('cat /proc/sys/net/ipv4/conf/all/arp_ignore')).stdout
    const r = await convergeTwice(sysctl, { name: 'net.ipv4.conf.all.arp_ignore', value: 1 })
    expect(r.gatherTrips).toBe(1)
    expect(r.first.map((c) => `${c.action} ${c.target}`)).toEqual([
      'update sysctl net.ipv4.conf.all.arp_ignore',
      'create file /etc/sysctl.d/99-runbook.conf',
    ])
    await convergeTwice(sysctl, { name: 'net.ipv4.conf.all.arp_announce', value: '2' })
    expect(
      await box.sh(
        'cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/all/arp_announce',
      ),
    ).toBe('1\n2\n')
    expect(await box.sh('cat /etc/sysctl.d/99-runbook.conf')).toBe(
      'net.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.all.arp_announce = 2\n',
    )
    expect((await machine.exec('cat /proc/sys/net/ipv4/conf/all/arp_ignore')).stdout).toBe(
      machineBefore,
    )
    expect(readFileSync('/proc/sys/net/ipv4/conf/all/arp_announce', 'utf8')).not.toBe('2\n')
  })

  it('a value changed behind our back is put back, and absent removes the line', async () => {
    await box.sh('echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore')
    const r = await convergeTwice(sysctl, { name: 'net.ipv4.conf.all.arp_ignore', value: 1 })
    expect(r.first).toEqual([
      {
        action: 'update',
        target: 'sysctl net.ipv4.conf.all.arp_ignore',
        key: { kind: 'value', name: 'net.ipv4.conf.all.arp_ignore' },
        before: { value: '0' },
        after: { value: '1' },
      },
    ])
    await convergeTwice(sysctl, { name: 'net.ipv4.conf.all.arp_announce', state: 'absent' })
    expect(await box.sh('cat /etc/sysctl.d/99-runbook.conf')).toBe(
      'net.ipv4.conf.all.arp_ignore = 1\n',
    )
  })
})

describe('address and ping', () => {
  it('puts the VIP /32 on lo, persisted as an ifupdown stanza; ping from the host sees it', async () => {
    await box.sh(
      'mkdir -p /etc/network/interfaces.d && printf "auto lo\\niface lo inet loopback\\nsource /etc/network/interfaces.d/*\\n" > /etc/network/interfaces',
    )
    const before = await converge(ping, ctx, conn, {
      address: VIP,
      count: 1,
      timeout: 1,
      expect: 'unreachable',
    })
    expect(before.first).toEqual([])
    const r = await convergeTwice(address, { address: `${VIP}/32`, interface: 'lo', persist: true })
    expect(r.gatherTrips).toBe(1)
    expect(r.first.map((c) => `${c.action} ${c.target}`)).toEqual([
      `create address ${VIP}/32 on lo`,
      'create file /etc/network/interfaces.d/runbook-lo-198-51-100-190-32',
    ])
    expect(await box.sh('ip -o addr show dev lo')).toContain(`inet ${VIP}/32`)
    expect(await box.sh('cat /etc/network/interfaces.d/runbook-lo-198-51-100-190-32')).toContain(
      `iface lo inet static\n    address ${VIP}/32`,
    )
    const up = await converge(ping, ctx, conn, { address: VIP, count: 2, timeout: 3 })
    expect([up.first, up.gatherTrips]).toEqual([[], 1])
    expect(ctx.records.some((x) => x.type === 'address' && x.id === `lo:${VIP}/32`)).toBe(true)
  })

  it('a different prefix is replaced; absent removes address and file', async () => {
    const r = await convergeTwice(address, { address: `${VIP}/28`, interface: 'lo' })
    expect(r.first).toEqual([
      {
        action: 'replace',
        target: `address ${VIP}/28 on lo`,
        key: { kind: 'address', name: `${VIP}/28` },
        before: { address: `${VIP}/32` },
        after: { address: `${VIP}/28` },
      },
    ])
    await convergeTwice(address, { address: `${VIP}/28`, interface: 'lo', state: 'absent' })
    await convergeTwice(address, {
      address: `${VIP}/32`,
      interface: 'lo',
      state: 'absent',
      persist: true,
    })
    expect(await box.sh('ip -o addr show dev lo')).not.toContain(VIP)
    expect((await box.conn.exec('ls /etc/network/interfaces.d/')).stdout).toBe('')
  })
})
