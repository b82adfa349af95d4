/**
 * `service` and `facts` on a host whose init is systemd: the machine's own systemd booted as PID 1
 * of a sandbox (test/fixtures/sandbox-host.ts, `init: 'systemd'`), in its own cgroup namespace, with
 * keepalived's real unit file and journald. The SysV side is in modules-host.test.ts.
 * Addresses: 198.51.100.192/28 (this file's slice, inside the sandbox's own network namespace).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { facts } from '../../modules/host/facts.ts'
import { service } from '../../modules/host/service.ts'
import {
  addUplink,
  startSandbox,
  systemdSandboxSupport,
  type SandboxHost,
} from '../fixtures/sandbox-host.ts'
import { testContext, type TestContext } from '../helpers/context.ts'
import { converge, CountingConnection } from '../modules/host/harness.ts'

const KEEPALIVED_CONF =
  'vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 52\n  priority 90\n  advert_int 1\n  virtual_ipaddress {\n    198.51.100.200/32\n  }\n}\n'
const root = process.getuid?.() === 0
// Where the machine cannot give systemd a cgroup2 tree, say so rather than pass silently.
const support = root ? systemdSandboxSupport() : null

describe.skipIf(!root)('service on a systemd host', () => {
  let box: SandboxHost
  let conn: CountingConnection
  let ctx: TestContext

  beforeAll(async () => {
    if (support === null)
      throw new Error(
        'this machine has no writable cgroup2 hierarchy: a systemd host cannot be made here',
      )
    box = await startSandbox({ id: 'systemd', hostname: 'rbt-mod-systemd', init: 'systemd' })
    conn = new CountingConnection(box.conn)
    ctx = testContext({ conn })
    await addUplink(box, { address: '198.51.100.194/28', gateway: '198.51.100.193' })
    await box.sh(
      'cat > /etc/keepalived/keepalived.conf && systemctl disable keepalived.service 2>/dev/null',
      KEEPALIVED_CONF,
    )
  }, 60_000)

  afterAll(async () => {
    await box?.destroy()
  })

  it('the host really runs systemd, and facts say so', async () => {
    expect((await box.sh('cat /proc/1/comm')).trim()).toBe('systemd')
    const f = await facts.gather(ctx, facts.params.parse({}))
    expect(f.init).toBe('systemd')
  })

  it('starts and enables keepalived through systemctl, and the unit really runs', async () => {
    const r = await converge(service, ctx, conn, {
      name: 'keepalived',
      state: 'started',
      enabled: true,
    })
    expect(r.first.map((c) => c.target)).toEqual([
      'service keepalived at boot',
      'service keepalived',
    ])
    expect(r.second).toEqual([])
    expect(r.gatherTrips).toBe(1)
    expect(r.result?.output).toMatchObject({
      state: 'started',
      enabled: true,
      init: 'systemd',
      status: 'active/running',
    })
    expect((await box.sh('systemctl is-active keepalived.service')).trim()).toBe('active')
    expect((await box.sh('systemctl is-enabled keepalived.service')).trim()).toBe('enabled')
    expect(await box.sh('pidof keepalived')).toMatch(/\d+/)
  })

  it('restarted is a run every time, and the main pid changes', async () => {
    const pid = (await box.sh('systemctl show -p MainPID --value keepalived.service')).trim()
    const r = await converge(service, ctx, conn, { name: 'keepalived', state: 'restarted' })
    expect(r.first).toMatchObject([
      { action: 'run', target: 'service keepalived', after: { action: 'restart' } },
    ])
    const now = (await box.sh('systemctl show -p MainPID --value keepalived.service')).trim()
    expect(now).not.toBe(pid)
    expect(Number(now)).toBeGreaterThan(0)
  })

  it('stops and disables it; the unit is inactive and disabled', async () => {
    const r = await converge(service, ctx, conn, {
      name: 'keepalived',
      state: 'stopped',
      enabled: false,
    })
    expect(r.first.map((c) => c.target).sort()).toEqual([
      'service keepalived',
      'service keepalived at boot',
    ])
    expect(r.second).toEqual([])
    expect((await box.conn.exec('systemctl is-active keepalived.service')).stdout.trim()).toBe(
      'inactive',
    )
    expect((await box.conn.exec('systemctl is-enabled keepalived.service')).stdout.trim()).toBe(
      'disabled',
    )
  })

  it('a unit whose daemon dies at start fails started with its journal lines', async () => {
    await box.sh(
      'cat > /etc/systemd/system/rbt-crash.service && systemctl daemon-reload',
      '[Unit]\nDescription=runbook crash test\n[Service]\nExecStart=/bin/sh -c "echo rbt-crash: cannot bind 198.51.100.200:80 >&2; exit 3"\n',
    )
    const p = service.params.parse({ name: 'rbt-crash', state: 'started', timeout: 3 })
    const s = await service.gather(ctx, p)
    const err = await service.apply(ctx, p, service.plan(p, s), s).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(String(err)).toMatch(/service rbt-crash is not running after start/)
    expect(String(err)).toMatch(/rbt-crash: cannot bind 198\.51\.100\.200:80/)
  })

  it('an unknown unit is planned as "an earlier task must install it", and refused at apply, naming it', async () => {
    const p = service.params.parse({ name: 'rbt-no-such-unit', state: 'started' })
    const s = await service.gather(ctx, p)
    const plan = service.plan(p, s)
    expect(plan).toMatchObject([
      {
        target: 'service rbt-no-such-unit',
        note: 'not installed yet (systemd); an earlier task must install it',
      },
    ])
    await expect(service.apply(ctx, p, plan, s)).rejects.toThrow(
      /service rbt-no-such-unit not found \(no such unit\)/,
    )
  })
})
