import type { RunbookError } from '../../../engine/errors.ts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { settingsFromVars } from '../../../engine/connection/ssh-factory.ts'
import { KNOWN_AFTER_APPLY, unknown } from '../../../engine/vars/unknown.ts'
import type { Port } from '../../../modules/openstack/client/neutron.ts'
import type { Server } from '../../../modules/openstack/client/nova.ts'
import { server, userDataSha, type ServerState } from '../../../modules/openstack/server.ts'
import { planTable, type PlanCase } from '../host/harness.ts'
import { converge, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

const srv = (over: Partial<Server> = {}): Server => ({
  id: 'srv-1',
  name: 'kld-vm-1',
  status: 'ACTIVE',
  tags: ['runbook:abc'],
  metadata: {},
  image: 'img-1',
  flavor: { original_name: 'm1.small' },
  key_name: 'kld-key',
  addresses: { mynetwork: [{ addr: '192.0.2.11', version: 4 }] },
  'OS-EXT-STS:task_state': null,
  'OS-EXT-STS:vm_state': 'active',
  ...over,
})
const nic = (over: Partial<Port> = {}): Port => ({
  id: 'port-1',
  name: '',
  network_id: 'net-1',
  mac_address: 'fa:16:3e:00:00:11',
  fixed_ips: [{ subnet_id: 'sub-1', ip_address: '192.0.2.11' }],
  allowed_address_pairs: [],
  security_groups: ['sg-default'],
  port_security_enabled: true,
  description: '',
  device_id: 'srv-1',
  device_owner: 'compute:nova',
  status: 'ACTIVE',
  tags: [],
  ...over,
})
const want = {
  image_id: 'img-1',
  flavor: { id: '2', name: 'm1.small' },
  networks: ['net-1'],
  ports: [] as string[],
}
const st = (s: Server | undefined, over: Partial<ServerState> = {}): ServerState => ({
  server: s,
  how: s ? 'journal' : undefined,
  ports: s ? [nic()] : [],
  hostKeys: [],
  userDataSha: undefined,
  want,
  ...over,
})
const vm = {
  name: 'kld-vm-1',
  image: 'Debian 12',
  flavor: 'm1.small',
  network: 'mynetwork',
  key_name: 'kld-key',
}

const cases: PlanCase<ServerState>[] = [
  {
    name: 'a missing server is created, its id known after apply',
    params: vm,
    current: st(undefined),
    expected: [
      {
        action: 'create',
        target: 'server kld-vm-1',
        after: {
          name: 'kld-vm-1',
          image: 'Debian 12',
          flavor: 'm1.small',
          networks: ['mynetwork'],
          key_name: 'kld-key',
          id: KNOWN_AFTER_APPLY,
          status: 'ACTIVE',
        },
      },
    ],
  },
  { name: 'idempotent: the server as created', params: vm, current: st(srv()), expected: [] },
  ...(['present', 'running'] as const).flatMap((state) =>
    (
      [
        ['SHUTOFF', 'start'],
        ['SUSPENDED', 'resume'],
        ['PAUSED', 'unpause'],
        ['SHELVED_OFFLOADED', 'unshelve'],
      ] as const
    ).map(([status, verb]) => ({
      name: `state ${state} converges a ${status} server to ACTIVE (${verb})`,
      params: { ...vm, state },
      current: st(srv({ status })),
      expected: [
        {
          action: 'update' as const,
          target: 'server kld-vm-1 (srv-1)',
          before: { status },
          after: { status: 'ACTIVE' },
          note: `${verb} (${status} -> ACTIVE)`,
        },
      ],
    })),
  ),
  {
    name: 'a server on its way (BUILD, REBOOT) is left to finish',
    params: vm,
    current: st(srv({ status: 'REBOOT' })),
    expected: [],
  },
  {
    name: 'state stopped stops an ACTIVE server',
    params: { ...vm, state: 'stopped' },
    current: st(srv()),
    expected: [
      {
        action: 'update',
        target: 'server kld-vm-1 (srv-1)',
        before: { status: 'ACTIVE' },
        after: { status: 'SHUTOFF' },
        note: 'stop (ACTIVE -> SHUTOFF)',
      },
    ],
  },
  {
    name: 'idempotent: a SHUTOFF server with state stopped',
    params: { ...vm, state: 'stopped' },
    current: st(srv({ status: 'SHUTOFF' })),
    expected: [],
  },
  {
    name: 'security groups change in place on its ports',
    params: { ...vm, security_groups: ['default', 'ssh'] },
    current: st(srv(), { want: { ...want, security_groups: ['sg-default', 'sg-ssh'] } }),
    expected: [
      {
        action: 'update',
        target: 'server kld-vm-1 (srv-1)',
        before: { security_groups: ['sg-default'] },
        after: { security_groups: ['sg-default', 'sg-ssh'] },
      },
    ],
  },
  {
    name: 'another image replaces it',
    params: { ...vm, image: 'Debian 12' },
    current: st(srv(), { want: { ...want, image_id: 'img-2' } }),
    expected: [
      {
        action: 'replace',
        target: 'server kld-vm-1 (srv-1)',
        before: { id: 'srv-1', status: 'ACTIVE', image: 'img-1' },
        after: {
          name: 'kld-vm-1',
          image: 'Debian 12',
          flavor: 'm1.small',
          networks: ['mynetwork'],
          key_name: 'kld-key',
          id: KNOWN_AFTER_APPLY,
          status: 'ACTIVE',
        },
        note: 'replace: image',
      },
    ],
  },
  {
    name: 'changed user data replaces it (its digest is in the journal)',
    params: { ...vm, user_data: '#cloud-config\n' },
    current: st(srv(), {
      userDataSha: userDataSha('old'),
      want: { ...want, user_data_sha256: userDataSha('#cloud-config\n') },
    }),
    expected: [
      {
        action: 'replace',
        target: 'server kld-vm-1 (srv-1)',
        before: { id: 'srv-1', status: 'ACTIVE', user_data_sha256: userDataSha('old') },
        after: {
          name: 'kld-vm-1',
          image: 'Debian 12',
          flavor: 'm1.small',
          networks: ['mynetwork'],
          key_name: 'kld-key',
          user_data_sha256: userDataSha('#cloud-config\n'),
          id: KNOWN_AFTER_APPLY,
          status: 'ACTIVE',
        },
        note: 'replace: user_data',
      },
    ],
  },
  {
    name: 'a server in ERROR is replaced, with the fault said',
    params: vm,
    current: st(
      srv({ status: 'ERROR', fault: { code: 500, message: 'No valid host was found.' } }),
    ),
    expected: [
      {
        action: 'replace',
        target: 'server kld-vm-1 (srv-1)',
        before: { id: 'srv-1', status: 'ERROR' },
        after: {
          name: 'kld-vm-1',
          image: 'Debian 12',
          flavor: 'm1.small',
          networks: ['mynetwork'],
          key_name: 'kld-key',
          id: KNOWN_AFTER_APPLY,
          status: 'ACTIVE',
        },
        note: 'replace: it is in ERROR: No valid host was found.',
      },
    ],
  },
  {
    name: 'an adopted server is never replaced',
    params: { ...vm, adopt: true },
    current: st(srv({ key_name: 'other' }), { how: 'adopt' }),
    throws:
      /differs in what only a new server can change \(key_name\), and this runbook did not create it/,
  },
  {
    name: 'absent: delete',
    params: { name: 'kld-vm-1', state: 'absent' },
    current: st(srv()),
    expected: [
      { action: 'delete', target: 'server kld-vm-1', before: { id: 'srv-1', status: 'ACTIVE' } },
    ],
  },
  {
    name: 'idempotent: absent and gone',
    params: { name: 'kld-vm-1', state: 'absent' },
    current: st(undefined),
    expected: [],
  },
  {
    name: 'creating needs an image and a flavor',
    params: { name: 'x' },
    current: st(undefined),
    throws: /needs `image` and `flavor`/,
  },
]

describe('openstack.server plan', () => planTable(server, cases))

describe('openstack.server against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  beforeAll(async () => {
    cloud = await startCloud({ capacity: { vcpus: 4, ramMb: 8192 } })
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
  })
  afterAll(async () => {
    await cloud.close()
  })

  const vm1 = {
    name: 'kld-vm-1',
    image: 'Debian 12',
    flavor: 'm1.small',
    network: 'mynetwork',
    security_groups: ['default'],
  }

  it('plans a server on a fresh cloud with every output known after apply', async () => {
    const plan = await planOnly(server, runs.next(), vm1)
    expect(plan.changes.map((c) => c.action)).toEqual(['create'])
    expect(plan.output).toMatchObject({ id: unknown('server.id'), ip: unknown('server.ip') })
    expect((plan.output?.['port'] as Record<string, unknown>)['id']).toEqual(
      unknown('server.port.id'),
    )
  })

  it('creates it, waits for ACTIVE and the host keys, registers ports and pinnable keys; then in sync', async () => {
    const r = await converge(server, runs.next(), vm1)
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    expect(runs.messages).toEqual(
      expect.arrayContaining([
        'waiting for server ACTIVE',
        'waiting for the SSH host keys in the console log',
      ]),
    )
    const out = r.result?.output ?? {}
    expect(out['status']).toBe('ACTIVE')
    expect(String(out['ip'])).toMatch(/^192\.0\.2\.\d+$/)
    expect(out['addresses']).toEqual({ mynetwork: [out['ip']] })
    const p = out['port'] as { id: string; ip: string; mac_address: string }
    expect(p.ip).toBe(out['ip'])
    expect(p.mac_address).toMatch(/^fa:16:3e:/)
    const key = cloud.driver.keys.get(String(out['id']))
    expect(out['host_keys']).toEqual([
      { fingerprint: key?.fingerprint, type: 'ssh-ed25519', key: key?.line.split(' ')[1] },
    ])
    // The engine's SSH layer takes them as they are.
    const settings = settingsFromVars('kld-vm-1', {
      address: out['ip'],
      pinned_host_keys: out['host_keys'],
    })
    expect(settings.pinnedHostKeys).toEqual(out['host_keys'])
    // fresh: Nova's version document (once per run), servers by name, image, flavor, network,
    // security groups; in sync also its ports and console
    expect(r.gatherCalls).toBe(6)
    expect(r.syncCalls).toBe(8)
    const s = await runs.api().nova.server(String(out['id']))
    expect(s?.tags).toEqual([
      `runbook:${String(runs.records.find((x) => x.type === 'server')?.data?.['owner'])}`,
    ])
  })

  it('changes security groups in place and stops and starts it', async () => {
    const sg = await converge(server, runs.next(), { ...vm1, security_groups: ['default', 'ssh'] })
    expect(sg.first.map((c) => c.action)).toEqual(['update'])
    expect(sg.second).toEqual([])
    const stopped = await converge(server, runs.next(), {
      ...vm1,
      security_groups: ['default', 'ssh'],
      state: 'stopped',
    })
    expect(stopped.first[0]?.after).toEqual({ status: 'SHUTOFF' })
    expect(stopped.second).toEqual([])
    const running = await converge(server, runs.next(), {
      ...vm1,
      security_groups: ['default', 'ssh'],
      state: 'running',
    })
    expect(running.first[0]?.after).toEqual({ status: 'ACTIVE' })
    expect(running.second).toEqual([])
  })

  it('a server stopped behind its back: the unreachable host is explained, present starts it (a change), then in sync', async () => {
    const p = { ...vm1, security_groups: ['default', 'ssh'] }
    const api = runs.api()
    const [s] = await api.nova.serversNamed('kld-vm-1')
    const id = s?.id ?? ''
    const ip = Object.values(s?.addresses ?? {})[0]?.[0]?.addr
    const explain = server.explainUnreachable
    if (explain === undefined) throw new Error('openstack.server has no explainUnreachable')
    const ctx = runs.next().ctx('openstack.server')
    // ACTIVE: nothing to say, the channel's own error stands
    expect(await explain(ctx, { name: 'kld-vm-1', address: ip })).toBeUndefined()

    await api.nova.action(id, { 'os-stop': null })
    for (let i = 0; i < 100 && (await api.nova.server(id))?.status !== 'SHUTOFF'; i++)
      await new Promise((r) => setTimeout(r, 20))
    const why = { message: 'server kld-vm-1 is SHUTOFF', lasting: true }
    expect(await explain(ctx, { name: 'kld-vm-1', address: ip })).toMatchObject(why)
    // found by its address when the inventory calls it something else
    expect(await explain(ctx, { name: 'vm1', address: ip })).toMatchObject(why)
    expect((await explain(ctx, { name: 'kld-vm-1', address: ip }))?.hint).toMatch(
      /apply again .*openstack server start kld-vm-1/,
    )
    // a host that is none of this runbook's servers
    expect(await explain(ctx, { name: 'other', address: '192.0.2.99' })).toBeUndefined()

    const plan = await planOnly(server, runs.next(), p)
    expect(plan.changes).toEqual([
      expect.objectContaining({
        action: 'update',
        before: { status: 'SHUTOFF' },
        after: { status: 'ACTIVE' },
        note: 'start (SHUTOFF -> ACTIVE)',
      }),
    ])
    const started = await converge(server, runs.next(), p)
    expect(started.first.map((c) => c.note)).toEqual(['start (SHUTOFF -> ACTIVE)'])
    expect(started.result?.output?.['status']).toBe('ACTIVE')
    expect(started.second).toEqual([])
    expect((await api.nova.server(id))?.status).toBe('ACTIVE')
  })

  it("fails with Nova's fault when the build fails, journals the server, and replaces it next time", async () => {
    const big = {
      name: 'rbt-big',
      image: 'Debian 12',
      flavor: 'm1.xlarge',
      network: 'mynetwork',
      host_keys: false,
    }
    const p = server.params.parse(big)
    const ctx = runs.next().ctx('openstack.server')
    const s = await server.gather(ctx, p)
    await expect(server.apply(ctx, p, server.plan(p, s), s)).rejects.toThrow(
      /^Nova: server rbt-big \([0-9a-f-]+\) went to ERROR: No valid host was found\. There are not enough hosts available\.$/,
    )
    const rec = runs.records.find((x) => x.type === 'server' && x.name === 'rbt-big')
    expect(rec?.id).toMatch(/^[0-9a-f-]{36}$/)
    const again = await planOnly(server, runs.next(), big)
    expect(again.changes[0]?.action).toBe('replace')
    expect(again.changes[0]?.note).toMatch(/it is in ERROR: No valid host was found/)
    if (rec) await server.destroy?.(runs.next().ctx('openstack.server'), rec)
    expect(await runs.api().nova.server(rec?.id ?? '')).toBeUndefined()
  })

  it.each([
    {
      console: 'cloud-init-done' as const,
      why: /is ACTIVE, but cloud-init finished without printing the host keys to its console: its SSH host keys cannot be pinned$/,
      atMostMs: 2_000,
    },
    {
      console: 'silent' as const,
      why: /is ACTIVE, but its console log showed no SSH host keys within 2 s: its SSH host keys cannot be pinned$/,
      atMostMs: 6_000,
    },
  ])(
    'fails soon, saying what to do, when the console never shows host keys ($console)',
    async ({ console: kind, why, atMostMs }) => {
      cloud.driver.withoutKeys = kind
      try {
        const raw = {
          name: `rbt-nokeys-${kind}`,
          image: 'Debian 12',
          flavor: 'm1.tiny',
          network: 'mynetwork',
          host_keys_timeout: 2,
        }
        const p = server.params.parse(raw)
        const ctx = runs.next().ctx('openstack.server')
        const s = await server.gather(ctx, p)
        const started = Date.now()
        const e = (await server
          .apply(ctx, p, server.plan(p, s), s)
          .catch((x: unknown) => x)) as RunbookError
        expect(Date.now() - started).toBeLessThan(atMostMs)
        expect(e.code).toBe('E_TIMEOUT')
        expect(e.message).toMatch(why)
        expect(e.hint).toMatch(
          /pinned_host_keys .*`host_keys: false`.*man in the middle.*`host_keys_timeout` \(now 2 s\)/,
        )
        // The server stays, journalled: the next run takes it as it is.
        const rec = runs.records.find((x) => x.type === 'server' && x.name === raw.name)
        expect(rec?.id).toMatch(/^[0-9a-f-]{36}$/)
        if (rec) await server.destroy?.(runs.next().ctx('openstack.server'), rec)
      } finally {
        cloud.driver.withoutKeys = 'no'
      }
    },
  )

  it('destroy deletes the server and waits until Nova no longer shows it', async () => {
    const rec = runs.records.find((x) => x.type === 'server' && x.name === 'kld-vm-1')
    if (rec === undefined) throw new Error('no record')
    const ctx = runs.next().ctx('openstack.server')
    await server.destroy?.(ctx, rec)
    expect(runs.messages).toContain('waiting for server deletion')
    expect(await runs.api().nova.server(rec.id)).toBeUndefined()
    await server.destroy?.(ctx, rec)
  })
})
