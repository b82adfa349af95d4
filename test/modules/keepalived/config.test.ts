import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { FACTS_CACHE_KEY, type HostFacts } from '../../../modules/host/facts.ts'
import { wanted } from '../../../modules/host/lib/content-file.ts'
import {
  keepalivedConfig,
  prepareConfig,
  type KeepalivedConfigState,
} from '../../../modules/keepalived/config.ts'
import type { HostView } from '../../../modules/keepalived/lib/cluster.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from '../host/harness.ts'
import { hostOn, lvsDrRunbook, seed001, seed002, seed003, seed004 } from './seeds.ts'

const GOLDEN = path.join(import.meta.dirname, 'golden')
// UPDATE_GOLDEN=1 rewrites them; review the diff before keeping it.
const update = process.env.UPDATE_GOLDEN === '1'

/** Rendered text for params on a host, through the module's own schema (defaults applied). */
function render(params: Record<string, unknown>, host: HostView): string {
  return prepareConfig(keepalivedConfig.params.parse(params), host).text
}

const goldens: { file: string; params: Record<string, unknown>; host: HostView }[] = [
  { file: 'seed001-master.conf', params: seed001, host: hostOn('kld-vm-1', 'ens3', '192.0.2.11') },
  { file: 'seed001-backup.conf', params: seed001, host: hostOn('kld-vm-2', 'ens3', '192.0.2.22') },
  { file: 'seed003-unicast.conf', params: seed003, host: hostOn('freepbx1', 'eno1', '192.0.2.31') },
  { file: 'seed004-lvs-dr.conf', params: seed004, host: hostOn('lvs-1', 'eth0', '192.0.2.41') },
  {
    file: 'seed002-lvs-tcp-check.conf',
    params: seed002,
    host: hostOn('balance01', 'ens18', '192.0.2.235'),
  },
  // what runbooks/lvs-dr.yaml renders on its first director, with its defaults and as seed 002
  {
    file: 'lvs-dr-runbook.conf',
    params: lvsDrRunbook('seed004'),
    host: hostOn('lvs-director-1', 'ens3', '192.0.2.41'),
  },
  {
    file: 'lvs-dr-runbook-seed002.conf',
    params: lvsDrRunbook('seed002'),
    host: hostOn('lvs-director-1', 'ens3', '192.0.2.41'),
  },
]

describe('keepalived.config renders the seeds (golden files)', () => {
  it.each(goldens)('$file', ({ file, params, host }) => {
    const text = render(params, host)
    const golden = path.join(GOLDEN, file)
    if (update) writeFileSync(golden, text)
    expect(text).toBe(readFileSync(golden, 'utf8'))
  })

  it('renders the same bytes every time and for every order of equal input', () => {
    const host = hostOn('kld-vm-1', 'ens3', '192.0.2.11')
    expect(render(seed001, host)).toBe(render(structuredClone(seed001), host))
  })

  it('unicast peers are the other nodes, in cluster order', () => {
    const three = {
      ...seed003,
      cluster: [
        ...seed003.cluster,
        { name: 'freepbx3', state: 'BACKUP', priority: 90, address: '192.0.2.34' },
      ],
    }
    const text = render(three, hostOn('freepbx2', 'eno1', '192.0.2.32'))
    expect(text).toContain(
      'unicast_src_ip 192.0.2.32\n  unicast_peer {\n    192.0.2.31\n    192.0.2.34\n  }',
    )
  })

  it('defaults the interface to the default-route interface and the node to the host', () => {
    const text = render(
      { ...seed001, virtual_ipaddresses: ['192.0.2.254/24'] },
      hostOn('kld-vm-2', 'ens7', '192.0.2.22'),
    )
    expect(text).toMatch(/state BACKUP\n {2}interface ens7\n/)
    expect(text).toContain('router_id KLD-VM-2')
  })

  // keepalived's own parser on every golden file: no warning at all (it warns, and carries on,
  // about everything the cluster checks refuse). -t only parses; nothing is started or sent.
  const keepalived = spawnSync('keepalived', ['--version']).status === 0
  const multicastInterface = (): string =>
    spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.match(
      /^\d+: ([\w.-]+)[:@][^\n]*<[^>]*\bMULTICAST\b/m,
    )?.[1] ?? 'eth0'
  it.skipIf(!keepalived)('keepalived -t accepts every golden file without a word', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rbt-kld-golden-'))
    try {
      const iface = multicastInterface()
      for (const g of goldens) {
        const f = path.join(dir, g.file)
        writeFileSync(
          f,
          readFileSync(path.join(GOLDEN, g.file), 'utf8').replace(
            /interface \S+/,
            `interface ${iface}`,
          ),
        )
        const r = spawnSync('keepalived', ['-t', '-f', f], { encoding: 'utf8' })
        expect({ file: g.file, rc: r.status, out: r.stdout + r.stderr }).toEqual({
          file: g.file,
          rc: 0,
          out: '',
        })
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('writes sync_group as a comment, and only when one is named', () => {
    const host = hostOn('lvs-1', 'eth0', '192.0.2.41')
    expect(render(seed004, host)).toContain(
      '# vrrp_sync_group G1 { group { VI_1 } }\n# not rendered: a sync group needs two or more VRRP instances',
    )
    for (const none of [undefined, null])
      expect(render({ ...seed004, sync_group: none }, host)).not.toMatch(/sync_group/)
    expect(() => render({ ...seed004, sync_group: 'G 1' }, host)).toThrow(/letters, digits/)
  })

  // Why a comment: keepalived itself refuses the sync group of one instance that seed 004 writes.
  // Should a later keepalived accept it, this fails and the decision can be revisited.
  it.skipIf(!keepalived)('keepalived -t refuses the seed’s sync group of one instance', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rbt-kld-sync-'))
    try {
      const text = readFileSync(path.join(GOLDEN, 'seed004-lvs-dr.conf'), 'utf8')
      const live = text.replace(
        /^# (vrrp_sync_group G1 \{ group \{ VI_1 \} \})$/m,
        'vrrp_sync_group G1 {\n  group {\n    VI_1\n  }\n}',
      )
      expect(live).not.toBe(text)
      const f = path.join(dir, 'live.conf')
      writeFileSync(f, live.replace(/interface \S+/, `interface ${multicastInterface()}`))
      const r = spawnSync('keepalived', ['-t', '-f', f], { encoding: 'utf8' })
      expect(r.status).not.toBe(0)
      expect(r.stdout + r.stderr).toMatch(/Sync group G1 has only 1 virtual router/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

const hostAbsent = { type: 'absent' as const, parentExists: true }
const text001 = (): string => render(seed001, hostOn('kld-vm-1', 'ens3', '192.0.2.11'))
const state = (have: KeepalivedConfigState['have'], text = text001()): KeepalivedConfigState => ({
  want: wanted(text),
  have,
  resolved: prepareConfig(
    keepalivedConfig.params.parse(seed001),
    hostOn('kld-vm-1', 'ens3', '192.0.2.11'),
  ).resolved,
})
const file = (content: string, mode = '0640') => ({
  type: 'file' as const,
  path: '/etc/keepalived/keepalived.conf',
  sha256: wanted(content).sha256 ?? '',
  size: content.length,
  mode,
  owner: 'root',
  group: 'root',
  uid: '0',
  gid: '0',
  content,
})
const older = text001().replace('priority 120', 'priority 110')

const planCases: PlanCase<KeepalivedConfigState>[] = [
  {
    name: 'a fresh host: create, 0640 root:root',
    params: seed001,
    current: state(hostAbsent),
    expected: [
      {
        action: 'create',
        target: 'file /etc/keepalived/keepalived.conf',
        after: { sha256: wanted(text001()).sha256, mode: '0640', owner: 'root', group: 'root' },
        diff: { path: '/etc/keepalived/keepalived.conf', before: '', after: text001() },
      },
    ],
  },
  {
    name: 'a changed priority: update with a diff',
    params: seed001,
    current: state(file(older)),
    expected: [
      {
        action: 'update',
        target: 'file /etc/keepalived/keepalived.conf',
        before: { sha256: wanted(older).sha256 },
        after: { sha256: wanted(text001()).sha256 },
        diff: { path: '/etc/keepalived/keepalived.conf', before: older, after: text001() },
      },
    ],
  },
  {
    name: 'the package’s world-readable file: mode only',
    params: seed001,
    current: state(file(text001(), '0644')),
    expected: [
      {
        action: 'update',
        target: 'file /etc/keepalived/keepalived.conf',
        before: { mode: '0644' },
        after: { mode: '0640' },
      },
    ],
  },
  {
    name: 'idempotent: the rendered file is there',
    params: seed001,
    current: state(file(text001())),
    expected: [],
  },
]

describe('keepalived.config plan', () => planTable(keepalivedConfig, planCases))

describe('keepalived.config on the local host', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-kld-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  // Facts as the `facts` task would have cached them: nothing about this machine's own network is read.
  const facts = {
    default_ipv4: {
      interface: 'ens3',
      address: '192.0.2.11',
      gateway: '192.0.2.1',
      prefix: 24,
      mac: null,
    },
    interfaces: {
      ens3: {
        mac: null,
        mtu: 1500,
        state: 'UP',
        ipv4: [{ address: '192.0.2.11', prefix: 24 }],
        ipv6: [],
      },
    },
  } as unknown as HostFacts
  const ctxFor = (conn: CountingConnection) => {
    const ctx = testContext({ conn })
    ctx.cache.set(FACTS_CACHE_KEY, facts)
    return ctx
  }

  it('writes 0640 root:root, validated, marks auth_pass secret, then is in sync; destroy removes it', async () => {
    const conn = new CountingConnection(new LocalConnection('kld-vm-1'))
    const ctx = ctxFor(conn)
    const dest = path.join(dir, 'keepalived.conf')
    const r = await converge(keepalivedConfig, ctx, conn, {
      ...seed001,
      dest,
      validate: 'grep -q "^vrrp_instance VI_254 {" %s',
    })
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.gatherTrips).toBe(1)
    expect(r.second).toEqual([])
    expect(readFileSync(dest, 'utf8')).toBe(text001())
    expect((statSync(dest).mode & 0o777).toString(8)).toBe('640')
    expect(ctx.secrets).toContain('k3Epa1iv')
    expect(r.result?.output).toMatchObject({
      dest,
      checksum: wanted(text001()).sha256,
      node: 'kld-vm-1',
      state: 'MASTER',
      priority: 120,
      interface: 'ens3',
      instance: 'VI_254',
      router_id: 'KLD-VM-1',
    })
    expect(ctx.records).toMatchObject([
      { type: 'file', id: `kld-vm-1:${dest}`, data: { path: dest } },
    ])
    await keepalivedConfig.destroy?.(ctx, ctx.records[0]!)
    expect(existsSync(dest)).toBe(false)
  })

  it('a failing validate leaves the old file alone', async () => {
    const conn = new CountingConnection(new LocalConnection('kld-vm-1'))
    const ctx = ctxFor(conn)
    const dest = path.join(dir, 'v.conf')
    writeFileSync(dest, 'old\n')
    const p = keepalivedConfig.params.parse({ ...seed001, dest, validate: 'grep -q NOT-THERE %s' })
    const s = await keepalivedConfig.gather(ctx, p)
    await expect(keepalivedConfig.apply(ctx, p, keepalivedConfig.plan(p, s), s)).rejects.toThrow(
      /validation of .* failed, the old file is untouched/,
    )
    expect(readFileSync(dest, 'utf8')).toBe('old\n')
  })

  it('refuses at gather, before anything is read or written, when this host is not in the cluster', async () => {
    const conn = new CountingConnection(new LocalConnection('kld-vm-9'))
    const ctx = ctxFor(conn)
    const p = keepalivedConfig.params.parse({ ...seed001, dest: path.join(dir, 'x.conf') })
    await expect(keepalivedConfig.gather(ctx, p)).rejects.toThrow(
      /this host is 'kld-vm-9', which is not in cluster \(kld-vm-1, kld-vm-2\)/,
    )
    expect(conn.trips).toBe(0)
  })
})

describe('keepalived.config across the directors of one run', () => {
  it('refuses a director whose virtual servers differ from another’s, before touching it', async () => {
    const a = testContext({ conn: new LocalConnection('lvs-1') })
    const p = keepalivedConfig.params.parse(seed004)
    // gather reads this machine's facts and file (nothing is written); lvs-1 registers its servers
    await keepalivedConfig.gather(a, p).catch(() => undefined)
    const b = { ...testContext({ conn: new LocalConnection('lvs-2') }), shared: a.shared }
    const fewer = keepalivedConfig.params.parse({
      ...seed004,
      virtual_servers: [
        {
          ...seed004.virtual_servers[0],
          real_servers: seed004.virtual_servers[0]?.real_servers.slice(0, 2),
        },
      ],
    })
    await expect(keepalivedConfig.gather(b, fewer)).rejects.toThrow(
      /virtual_servers on lvs-2 differ from lvs-1's \(virtual_router_id 50\): every director must list the same virtual and real servers/,
    )
    const same = { ...testContext({ conn: new LocalConnection('lvs-2') }), shared: a.shared }
    const r = await keepalivedConfig.gather(same, p).then(
      () => 'gathered',
      (e: Error) => e.message,
    )
    expect(r).not.toMatch(/differ from/)
  })
})
