import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KNOWN_AFTER_APPLY, unknown } from '../../../engine/vars/unknown.ts'
import type { Port } from '../../../modules/openstack/client/neutron.ts'
import { port, type PortState } from '../../../modules/openstack/port.ts'
import { planTable, type PlanCase } from '../host/harness.ts'
import { converge, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

const MAC = 'fa:16:3e:00:00:01'
const NET = 'net-1'
const SUB = 'sub-1'
const mk = (over: Partial<Port> = {}): Port => ({
  id: 'port-1',
  name: 'kld-vip',
  network_id: NET,
  mac_address: MAC,
  fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.254' }],
  allowed_address_pairs: [],
  security_groups: ['sg-default'],
  port_security_enabled: true,
  description: '',
  device_id: '',
  device_owner: '',
  status: 'DOWN',
  tags: ['runbook:abc'],
  ...over,
})
const state = (p: Port | undefined, over: Partial<PortState> = {}): PortState => ({
  port: p,
  how: p ? 'journal' : undefined,
  pending: false,
  want: { network_id: NET, fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.254' }] },
  ...over,
})
const vip = {
  name: 'kld-vip',
  network: 'mynetwork',
  fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.254' }],
}

const cases: PlanCase<PortState>[] = [
  {
    name: 'a missing port is created; its id and MAC are known after apply',
    params: vip,
    current: state(undefined),
    expected: [
      {
        action: 'create',
        target: 'port kld-vip',
        after: {
          name: 'kld-vip',
          network: 'mynetwork',
          fixed_ips: vip.fixed_ips,
          id: KNOWN_AFTER_APPLY,
          mac_address: KNOWN_AFTER_APPLY,
        },
      },
    ],
  },
  { name: 'idempotent: the port as created', params: vip, current: state(mk()), expected: [] },
  {
    name: "allowed address pairs are added in place (MAC defaults to the port's)",
    params: { ...vip, allowed_address_pairs: [{ ip_address: '192.0.2.200/24' }] },
    current: state(mk()),
    expected: [
      {
        action: 'update',
        target: 'port kld-vip (port-1)',
        before: { allowed_address_pairs: [] },
        after: { allowed_address_pairs: [{ ip_address: '192.0.2.200/24', mac_address: MAC }] },
      },
    ],
  },
  {
    name: 'idempotent: pairs compared as a set, /32 is the address, MAC case ignored',
    params: {
      ...vip,
      allowed_address_pairs: [
        { ip_address: '192.0.2.9/32' },
        { ip_address: '192.0.2.200/24', mac_address: MAC.toUpperCase() },
      ],
    },
    current: state(
      mk({
        allowed_address_pairs: [
          { ip_address: '192.0.2.200/24', mac_address: MAC },
          { ip_address: '192.0.2.9', mac_address: MAC },
        ],
      }),
    ),
    expected: [],
  },
  {
    name: '[] clears the pairs',
    params: { ...vip, allowed_address_pairs: [] },
    current: state(
      mk({ allowed_address_pairs: [{ ip_address: '192.0.2.200', mac_address: MAC }] }),
    ),
    expected: [
      {
        action: 'update',
        target: 'port kld-vip (port-1)',
        before: { allowed_address_pairs: [{ ip_address: '192.0.2.200', mac_address: MAC }] },
        after: { allowed_address_pairs: [] },
      },
    ],
  },
  {
    name: 'idempotent: security groups compared as a set',
    params: { ...vip, security_groups: ['default', 'ssh'] },
    current: state(mk({ security_groups: ['sg-ssh', 'sg-default'] }), {
      want: {
        network_id: NET,
        fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.254' }],
        security_groups: ['sg-default', 'sg-ssh'],
      },
    }),
    expected: [],
  },
  {
    name: 'security groups that are not there yet are known after apply',
    params: { ...vip, security_groups: ['default', 'kld-vrrp'] },
    current: state(mk(), {
      want: {
        network_id: NET,
        fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.254' }],
        security_groups: ['sg-default', unknown('security group kld-vrrp')],
      },
    }),
    expected: [
      {
        action: 'update',
        target: 'port kld-vip (port-1)',
        before: { security_groups: ['sg-default'] },
        after: { security_groups: ['sg-default', KNOWN_AFTER_APPLY] },
      },
    ],
  },
  {
    name: 'another fixed IP on the same network is an update in place',
    params: { ...vip, fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.253' }] },
    current: state(mk(), {
      want: { network_id: NET, fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.253' }] },
    }),
    expected: [
      {
        action: 'update',
        target: 'port kld-vip (port-1)',
        before: { fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.254' }] },
        after: { fixed_ips: [{ subnet_id: SUB, ip_address: '192.0.2.253' }] },
      },
    ],
  },
  {
    name: 'another network is a replace (Neutron cannot move a port)',
    params: { ...vip, network: 'other' },
    current: state(mk(), {
      want: { network_id: 'net-2', fixed_ips: [{ ip_address: '192.0.2.254' }] },
    }),
    expected: [
      {
        action: 'replace',
        target: 'port kld-vip',
        before: { id: 'port-1', network_id: NET },
        after: { network: 'other', fixed_ips: vip.fixed_ips, id: KNOWN_AFTER_APPLY },
        note: 'Neutron cannot move a port to another network',
      },
    ],
  },
  {
    name: 'an adopted port is never replaced',
    params: { ...vip, network: 'other', adopt: true },
    current: state(mk(), { how: 'adopt', want: { network_id: 'net-2' } }),
    throws: /Neutron cannot move a port, and this runbook did not create it/,
  },
  {
    name: 'absent: delete',
    params: { name: 'kld-vip', state: 'absent' },
    current: state(mk()),
    expected: [
      {
        action: 'delete',
        target: 'port kld-vip',
        before: { id: 'port-1', fixed_ips: ['192.0.2.254'] },
      },
    ],
  },
  {
    name: 'idempotent: absent and gone',
    params: { name: 'kld-vip', state: 'absent' },
    current: state(undefined),
    expected: [],
  },
  {
    name: "a server's port known only after apply: an update of it",
    params: {
      id: unknown('vm1.port.id'),
      allowed_address_pairs: [{ ip_address: '192.0.2.254/24' }],
    },
    current: { port: undefined, how: undefined, pending: true, want: {} },
    expected: [
      {
        action: 'update',
        target: 'port (known after apply)',
        after: { allowed_address_pairs: [{ ip_address: '192.0.2.254/24' }] },
        note: 'a port that exists only after apply',
      },
    ],
  },
  {
    name: 'by id: the pair is set on the port',
    params: { id: 'port-9', allowed_address_pairs: [{ ip_address: '192.0.2.254/24' }] },
    current: { port: mk({ id: 'port-9', name: '' }), how: 'id', pending: false, want: {} },
    expected: [
      {
        action: 'update',
        target: 'port port-9',
        before: { allowed_address_pairs: [] },
        after: { allowed_address_pairs: [{ ip_address: '192.0.2.254/24', mac_address: MAC }] },
      },
    ],
  },
  {
    name: 'by id: a port that is not there',
    params: { id: 'port-9', allowed_address_pairs: [] },
    current: { port: undefined, how: undefined, pending: false, want: {} },
    throws: /no port with id 'port-9'/,
  },
  {
    name: 'creating needs a network',
    params: { name: 'x' },
    current: state(undefined),
    throws: /needs `network`/,
  },
]

describe('openstack.port plan', () => planTable(port, cases))

describe('openstack.port against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  beforeAll(async () => {
    cloud = await startCloud()
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('plans the VIP port on a fresh cloud, creates it tagged and journalled, then is in sync', async () => {
    const plan = await planOnly(port, runs.next(), vip)
    expect(plan.changes.map((c) => c.action)).toEqual(['create'])
    expect(plan.output?.['id']).toEqual(unknown('port.id'))
    expect(plan.output?.['ip']).toBe('192.0.2.254')
    expect(runs.records).toEqual([])

    const r = await converge(port, runs.next(), vip)
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    // name lookup, network, subnet: three calls to decide, fresh or in sync
    expect(r.gatherCalls).toBe(3)
    expect(r.syncCalls).toBe(3)
    const out = r.result?.output ?? {}
    expect(out['ip']).toBe('192.0.2.254')
    const rec = runs.records.find((x) => x.type === 'port')
    expect(rec).toMatchObject({
      module: 'openstack.port',
      id: out['id'],
      name: 'kld-vip',
      data: { project_id: expect.any(String), owner: expect.stringMatching(/^[0-9a-f]{12}$/) },
    })
    expect(runs.records.filter((x) => x.id.startsWith('pending:'))).toEqual([])
    const made = await runs.api().neutron.port(String(out['id']))
    expect(made?.tags).toEqual([`runbook:${String(rec?.data?.['owner'])}`])
    // The password and the run's token went to the engine's redactor.
    const auth = (cloud.clouds['lab'] as { auth: { password: string } }).auth
    expect(runs.secrets).toEqual(
      expect.arrayContaining([auth.password, (await runs.api().client.token()).value]),
    )
  })

  it('sets allowed address pairs on a port it did not create, by id, and leaves the journal alone', async () => {
    const api = runs.next().api()
    const net = await api.neutron.network('mynetwork')
    const other = await api.neutron.createPort({ name: 'rbt-vm-port', network_id: net.id })
    const before = runs.records.length
    const want = { id: other.id, allowed_address_pairs: [{ ip_address: '192.0.2.254/24' }] }
    const r = await converge(port, runs.next(), want)
    expect(r.first).toEqual([
      {
        action: 'update',
        target: `port ${other.id}`,
        before: { allowed_address_pairs: [] },
        after: {
          allowed_address_pairs: [{ ip_address: '192.0.2.254/24', mac_address: other.mac_address }],
        },
      },
    ])
    expect(r.second).toEqual([])
    expect(r.gatherCalls).toBe(1)
    expect((await api.neutron.port(other.id))?.allowed_address_pairs).toEqual([
      { ip_address: '192.0.2.254/24', mac_address: other.mac_address },
    ])
    expect(runs.records.length).toBe(before)
    const cleared = await converge(port, runs.next(), { id: other.id, allowed_address_pairs: [] })
    expect(cleared.first.map((c) => c.action)).toEqual(['update'])
    expect(cleared.second).toEqual([])
    await api.neutron.deletePort(other.id)
  })

  it('refuses a port of the same name it did not create, unless adopted (and then never destroys it)', async () => {
    const api = runs.next().api()
    const net = await api.neutron.network('mynetwork')
    const hand = await api.neutron.createPort({ name: 'rbt-handmade', network_id: net.id })
    await expect(
      planOnly(port, runs.next(), { name: 'rbt-handmade', network: 'mynetwork' }),
    ).rejects.toThrow(
      /a port named 'rbt-handmade' already exists .* and was not created by this runbook/,
    )
    // As another runbook leaves one: created, then tagged (stock Neutron drops tags in a POST).
    const tagged = await api.neutron.createPort({ name: 'rbt-theirs', network_id: net.id })
    await api.neutron.setTags('ports', tagged.id, ['runbook:0123456789ab'])
    await expect(
      planOnly(port, runs.next(), { name: 'rbt-theirs', network: 'mynetwork' }),
    ).rejects.toThrow(/it carries runbook:0123456789ab, another runbook's tag/)
    const r = await converge(port, runs.next(), {
      name: 'rbt-handmade',
      network: 'mynetwork',
      adopt: true,
      description: 'adopted',
    })
    expect(r.first.map((c) => c.action)).toEqual(['update'])
    expect(r.second).toEqual([])
    expect(runs.records.some((x) => x.id === hand.id)).toBe(false)
    await api.neutron.deletePort(hand.id)
    await api.neutron.deletePort(tagged.id)
  })

  it("fails with Neutron's words when the address is taken, and journals nothing", async () => {
    const before = runs.records.length
    const p = port.params.parse({
      name: 'rbt-dup',
      network: 'mynetwork',
      fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.254' }],
    })
    const ctx = runs.next().ctx('openstack.port')
    const s = await port.gather(ctx, p)
    await expect(port.apply(ctx, p, port.plan(p, s), s)).rejects.toThrow(
      /^Neutron 409 IpAddressAlreadyAllocated: IP address 192\.0\.2\.254 already allocated in subnet [0-9a-f-]+ \(POST \/network\/v2\.0\/ports\)$/,
    )
    expect(runs.records.length).toBe(before)
  })

  it('moves the fixed IP in place, then deletes the port on destroy (and a second destroy is fine)', async () => {
    const moved = await converge(port, runs.next(), {
      ...vip,
      fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.253' }],
    })
    expect(moved.first.map((c) => c.action)).toEqual(['update'])
    expect(moved.second).toEqual([])
    const rec = runs.records.find((x) => x.type === 'port' && x.name === 'kld-vip')
    if (rec === undefined) throw new Error('no record')
    const ctx = runs.next().ctx('openstack.port')
    await port.destroy?.(ctx, rec)
    expect(await runs.api().neutron.port(rec.id)).toBeUndefined()
    await port.destroy?.(ctx, rec)
  })
})
