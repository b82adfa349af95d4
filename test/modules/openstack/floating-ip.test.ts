import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KNOWN_AFTER_APPLY, unknown } from '../../../engine/vars/unknown.ts'
import type { FloatingIp, Network, Port } from '../../../modules/openstack/client/neutron.ts'
import { floatingIp, type FloatingIpState } from '../../../modules/openstack/floating-ip.ts'
import { server } from '../../../modules/openstack/server.ts'
import { planTable, type PlanCase } from '../host/harness.ts'
import { converge, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

const net: Network = { id: 'ext-1', name: 'public', 'router:external': true, subnets: [] }
const nic: Port = {
  id: 'port-1',
  name: '',
  network_id: 'net-1',
  mac_address: 'fa:16:3e:00:00:01',
  fixed_ips: [{ subnet_id: 's', ip_address: '192.0.2.10' }],
  allowed_address_pairs: [],
  security_groups: [],
  port_security_enabled: true,
  description: '',
  device_id: 'srv',
  device_owner: 'compute:nova',
  status: 'ACTIVE',
  tags: [],
}
const fip = (over: Partial<FloatingIp> = {}): FloatingIp => ({
  id: 'fip-1',
  floating_ip_address: '198.51.100.10',
  floating_network_id: 'ext-1',
  port_id: 'port-1',
  fixed_ip_address: '192.0.2.10',
  status: 'ACTIVE',
  description: '',
  tags: [],
  ...over,
})
const st = (over: Partial<FloatingIpState> = {}): FloatingIpState => ({
  network: net,
  port: nic,
  fixedIp: '192.0.2.10',
  current: undefined,
  how: undefined,
  reusable: undefined,
  ...over,
})
const jump = { network: 'public', server: 'kld-jumphost-vm' }

const cases: PlanCase<FloatingIpState>[] = [
  {
    name: 'none on the port: allocate one on it',
    params: jump,
    current: st(),
    expected: [
      {
        action: 'create',
        target: 'floating IP on server kld-jumphost-vm (192.0.2.10)',
        after: {
          network: 'public',
          port_id: 'port-1',
          fixed_ip_address: '192.0.2.10',
          floating_ip_address: KNOWN_AFTER_APPLY,
          id: KNOWN_AFTER_APPLY,
        },
      },
    ],
  },
  {
    name: 'the server exists only after apply: everything known after apply',
    params: { network: 'public', server: unknown('jump.name') },
    current: st({ port: undefined, fixedIp: undefined }),
    expected: [
      {
        action: 'create',
        target: 'floating IP on server (known after apply)',
        after: {
          network: 'public',
          port_id: KNOWN_AFTER_APPLY,
          floating_ip_address: KNOWN_AFTER_APPLY,
          id: KNOWN_AFTER_APPLY,
        },
      },
    ],
  },
  {
    name: 'idempotent: ours is on the port',
    params: jump,
    current: st({ current: fip(), how: 'journal' }),
    expected: [],
  },
  {
    name: 'idempotent: one somebody else put on the port is reused',
    params: jump,
    current: st({ current: fip(), how: 'foreign' }),
    expected: [],
  },
  {
    name: 'one this runbook allocated earlier and is free again is associated',
    params: jump,
    current: st({ reusable: fip({ port_id: null, fixed_ip_address: null }) }),
    expected: [
      {
        action: 'update',
        target: 'floating IP on server kld-jumphost-vm (192.0.2.10)',
        before: { floating_ip_address: '198.51.100.10', port_id: null },
        after: { floating_ip_address: '198.51.100.10', port_id: 'port-1' },
        note: 'associate the one this runbook allocated earlier',
      },
    ],
  },
  {
    name: 'absent: release ours',
    params: { ...jump, state: 'absent' },
    current: st({ current: fip(), how: 'tag' }),
    expected: [
      {
        action: 'delete',
        target: 'floating IP on server kld-jumphost-vm (192.0.2.10)',
        before: { floating_ip_address: '198.51.100.10', id: 'fip-1' },
      },
    ],
  },
  {
    name: 'absent: not one it allocated',
    params: { ...jump, state: 'absent' },
    current: st({ current: fip(), how: 'foreign' }),
    throws: /was not allocated by this runbook/,
  },
]

describe('openstack.floating_ip plan', () => planTable(floatingIp, cases))

describe('openstack.floating_ip against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  beforeAll(async () => {
    cloud = await startCloud()
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('gives the jumphost a floating IP, then reuses it; destroy releases it', async () => {
    const plan = await planOnly(floatingIp, runs.next(), jump)
    expect(plan.changes[0]?.action).toBe('create')
    expect(plan.output?.['address']).toEqual(unknown('floating_ip.address'))
    await converge(server, runs.next(), {
      name: 'kld-jumphost-vm',
      image: 'Debian 12',
      flavor: 'm1.tiny',
      network: 'mynetwork',
      security_groups: ['default', 'ssh'],
      host_keys: false,
    })
    const r = await converge(floatingIp, runs.next(), jump)
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    // network, server, its ports, floating IPs of the port, free ones of ours
    expect(r.gatherCalls).toBe(5)
    expect(r.syncCalls).toBe(4)
    const address = String(r.result?.output?.['address'])
    expect(address).toMatch(/^198\.51\.100\.\d+$/)
    const rec = runs.records.find((x) => x.type === 'floating_ip')
    expect(rec).toMatchObject({ name: address, data: { network_id: expect.any(String) } })
    const again = await planOnly(floatingIp, runs.next(), jump)
    expect(again.output?.['address']).toBe(address)
    if (rec === undefined) throw new Error('no record')
    await floatingIp.destroy?.(runs.next().ctx('openstack.floating_ip'), rec)
    expect(await runs.api().neutron.floatingIp(rec.id)).toBeUndefined()
  })

  it('associates one it allocated earlier that is free again instead of allocating another', async () => {
    const api = runs.next().api()
    const network = await api.neutron.network('mynetwork')
    const a = await api.neutron.createPort({ name: 'rbt-a', network_id: network.id })
    const first = await converge(floatingIp, runs.next(), { network: 'public', port: 'rbt-a' })
    const address = first.result?.output?.['address']
    await api.neutron.deletePort(a.id)
    const b = await api.neutron.createPort({ name: 'rbt-b', network_id: network.id })
    const second = await converge(floatingIp, runs.next(), { network: 'public', port: 'rbt-b' })
    expect(second.first[0]?.note).toBe('associate the one this runbook allocated earlier')
    expect(second.result?.output?.['address']).toBe(address)
    expect(second.second).toEqual([])
    await converge(floatingIp, runs.next(), { network: 'public', port: 'rbt-b', state: 'absent' })
    await api.neutron.deletePort(b.id)
  })
})
