import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, o, startTestLab } from '../harness.ts'
import type { TestLab } from '../harness.ts'

const PORT_KEYS = [
  'admin_state_up',
  'allowed_address_pairs',
  'binding:vnic_type',
  'created_at',
  'description',
  'device_id',
  'device_owner',
  'extra_dhcp_opts',
  'fixed_ips',
  'id',
  'mac_address',
  'name',
  'network_id',
  'port_security_enabled',
  'project_id',
  'revision_number',
  'security_groups',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
]

describe('lab API: Neutron networks and ports', () => {
  let lab: TestLab
  let token: string
  let netId: string
  let subnetId: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    const nets = await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })
    netId = String(a(nets.body['networks'])[0]?.['id'])
    const subnets = await lab.req(
      'GET',
      `/network/v2.0/subnets?name=mysubnet&network_id=${netId}`,
      { token },
    )
    subnetId = String(a(subnets.body['subnets'])[0]?.['id'])
  })
  afterAll(async () => {
    await lab.close()
  })

  const createPort = (port: Record<string, unknown>) =>
    lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: netId, ...port } },
    })

  it('seeds mynetwork/mysubnet and the external network public', async () => {
    const nets = a((await lab.req('GET', '/network/v2.0/networks', { token })).body['networks'])
    expect(nets.map((n) => n['name']).sort()).toEqual(['mynetwork', 'public'])
    const pub = nets.find((n) => n['name'] === 'public')
    expect(pub).toMatchObject({ 'router:external': true, is_default: false })
    expect(Object.keys(pub ?? {})).not.toContain('provider:network_type')
    const subnet = o(
      (await lab.req('GET', `/network/v2.0/subnets/${subnetId}`, { token })).body['subnet'],
    )
    expect(subnet).toMatchObject({
      cidr: '192.0.2.0/24',
      gateway_ip: '192.0.2.1',
      allocation_pools: [{ start: '192.0.2.10', end: '192.0.2.254' }],
      ip_version: 4,
    })
  })

  it('creates a port with a fixed IP and refuses the same IP again with IpAddressAlreadyAllocated', async () => {
    const res = await createPort({
      name: 'kld-vip',
      fixed_ips: [{ subnet_id: subnetId, ip_address: '192.0.2.254' }],
    })
    expect(res.status).toBe(201)
    const port = o(res.body['port'])
    expect(Object.keys(port).sort()).toEqual(PORT_KEYS)
    expect(port).toMatchObject({
      name: 'kld-vip',
      fixed_ips: [{ subnet_id: subnetId, ip_address: '192.0.2.254' }],
      status: 'DOWN',
      device_id: '',
      device_owner: '',
    })
    expect(port['mac_address']).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/)
    // Neutron gives a port the project's default group when none is asked for.
    expect((port['security_groups'] as unknown[]).length).toBe(1)
    const dup = await createPort({
      name: 'kld-vip2',
      fixed_ips: [{ subnet_id: subnetId, ip_address: '192.0.2.254' }],
    })
    expect(dup.status).toBe(409)
    expect(dup.body).toEqual({
      NeutronError: {
        type: 'IpAddressAlreadyAllocated',
        message: `IP address 192.0.2.254 already allocated in subnet ${subnetId}`,
        detail: '',
      },
    })
  })

  it('allocates the lowest free address of the pool, and rejects addresses outside the subnet', async () => {
    const res = await createPort({ name: 'auto' })
    expect(o(res.body['port'])['fixed_ips']).toEqual([
      { subnet_id: subnetId, ip_address: '192.0.2.10' },
    ])
    const bySubnet = await createPort({ fixed_ips: [{ subnet_id: subnetId }] })
    expect(o(bySubnet.body['port'])['fixed_ips']).toEqual([
      { subnet_id: subnetId, ip_address: '192.0.2.11' },
    ])
    const outside = await createPort({
      fixed_ips: [{ subnet_id: subnetId, ip_address: '10.0.0.5' }],
    })
    expect(outside.status).toBe(400)
    expect(o(outside.body['NeutronError'])['type']).toBe('InvalidIpForSubnet')
    const gateway = await createPort({ fixed_ips: [{ ip_address: '192.0.2.1' }] })
    expect(gateway.status).toBe(409)
    const junk = await createPort({ fixed_ips: [{ ip_address: 'not-an-ip' }] })
    expect(junk.status).toBe(400)
    expect(o(junk.body['NeutronError'])['type']).toBe('HTTPBadRequest')
  })

  it('answers unknown ids with 404 in the NeutronError envelope', async () => {
    const port = await lab.req('GET', '/network/v2.0/ports/00000000-0000-0000-0000-000000000000', {
      token,
    })
    expect(port.status).toBe(404)
    expect(port.body).toEqual({
      NeutronError: {
        type: 'PortNotFound',
        message: 'Port 00000000-0000-0000-0000-000000000000 could not be found.',
        detail: '',
      },
    })
    const net = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: 'nope' } },
    })
    expect(net.status).toBe(404)
    expect(o(net.body['NeutronError'])['type']).toBe('NetworkNotFound')
    const del = await lab.req('DELETE', '/network/v2.0/ports/nope', { token })
    expect(o(del.body['NeutronError'])['type']).toBe('PortNotFound')
    const unknownAttr = await createPort({ colour: 'blue' })
    expect(unknownAttr.status).toBe(400)
    expect(o(unknownAttr.body['NeutronError'])['message']).toBe(
      "Unrecognized attribute(s) 'colour'",
    )
  })

  it("sets and clears allowed_address_pairs, defaulting the MAC to the port's, and pushes the snapshot", async () => {
    const port = o((await createPort({ name: 'aap' })).body['port'])
    const id = String(port['id'])
    const set = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: { port: { allowed_address_pairs: [{ ip_address: '192.0.2.254/24' }] } },
    })
    expect(set.status).toBe(200)
    expect(o(set.body['port'])['allowed_address_pairs']).toEqual([
      { ip_address: '192.0.2.254/24', mac_address: port['mac_address'] },
    ])
    expect(o(set.body['port'])['revision_number']).toBe(2)
    const snap = lab.driver.lastSnapshot()
    expect(snap?.ports.find((p) => p.id === id)?.allowedAddressPairs).toEqual([
      { ipAddress: '192.0.2.254/24', macAddress: port['mac_address'] },
    ])
    const dup = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: {
        port: { allowed_address_pairs: [{ ip_address: '192.0.2.9' }, { ip_address: '192.0.2.9' }] },
      },
    })
    expect(o(dup.body['NeutronError'])['type']).toBe('DuplicateAddressPairInRequest')
    const noSecurity = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: { port: { port_security_enabled: false } },
    })
    expect(noSecurity.status).toBe(409)
    const clear = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: { port: { allowed_address_pairs: [] } },
    })
    expect(o(clear.body['port'])['allowed_address_pairs']).toEqual([])
    expect(lab.driver.lastSnapshot()?.ports.find((p) => p.id === id)?.allowedAddressPairs).toEqual(
      [],
    )
    const off = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: { port: { port_security_enabled: false, security_groups: [] } },
    })
    expect(o(off.body['port'])).toMatchObject({ port_security_enabled: false, security_groups: [] })
    const readOnly = await lab.req('PUT', `/network/v2.0/ports/${id}`, {
      token,
      body: { port: { network_id: netId } },
    })
    expect(readOnly.status).toBe(400)
  })

  it('filters ports by fixed_ips, device_id, name and network_id, and selects fields', async () => {
    const byIp = a(
      (await lab.req('GET', '/network/v2.0/ports?fixed_ips=ip_address%3D192.0.2.254', { token }))
        .body['ports'],
    )
    expect(byIp.map((p) => p['name'])).toEqual(['kld-vip'])
    const bySubnet = a(
      (
        await lab.req(
          'GET',
          `/network/v2.0/ports?fixed_ips=subnet_id%3D${subnetId}&fixed_ips=ip_address%3D192.0.2.10`,
          { token },
        )
      ).body['ports'],
    )
    expect(bySubnet.map((p) => p['name'])).toEqual(['auto'])
    const substr = a(
      (
        await lab.req('GET', '/network/v2.0/ports?fixed_ips=ip_address_substr%3D192.0.2.25', {
          token,
        })
      ).body['ports'],
    )
    expect(substr.map((p) => p['name'])).toEqual(['kld-vip'])
    const byName = a(
      (await lab.req('GET', '/network/v2.0/ports?name=kld-vip&name=auto', { token })).body['ports'],
    )
    expect(byName).toHaveLength(2)
    const router = a(
      (
        await lab.req('GET', '/network/v2.0/ports?device_owner=network%3Arouter_interface', {
          token,
        })
      ).body['ports'],
    )
    expect(router[0]?.['fixed_ips']).toEqual([{ subnet_id: subnetId, ip_address: '192.0.2.1' }])
    const byDevice = a(
      (
        await lab.req(
          'GET',
          `/network/v2.0/ports?device_id=${String(router[0]?.['device_id'])}&network_id=${netId}`,
          { token },
        )
      ).body['ports'],
    )
    expect(byDevice).toHaveLength(1)
    const fields = a(
      (await lab.req('GET', '/network/v2.0/ports?name=kld-vip&fields=id&fields=name', { token }))
        .body['ports'],
    )
    expect(Object.keys(fields[0] ?? {}).sort()).toEqual(['id', 'name'])
    const invalid = await lab.req('GET', '/network/v2.0/ports?colour=blue', { token })
    expect(invalid.status).toBe(400)
    expect(invalid.body).toEqual({
      NeutronError: {
        type: 'HTTPBadRequest',
        message: "['colour'] is invalid attribute for filtering",
        detail: '',
      },
    })
  })

  it('paginates with limit and marker and gives next/previous links', async () => {
    const all = a((await lab.req('GET', '/network/v2.0/ports', { token })).body['ports'])
    const ids = all.map((p) => String(p['id'])).sort()
    const first = await lab.req('GET', '/network/v2.0/ports?limit=2', { token })
    const page1 = a(first.body['ports'])
    expect(page1.map((p) => p['id'])).toEqual(ids.slice(0, 2))
    const links = a(first.body['ports_links'])
    expect(links.map((l) => l['rel'])).toEqual(['next', 'previous'])
    const next = new URL(String(links[0]?.['href']))
    expect(next.searchParams.get('marker')).toBe(ids[1])
    expect(next.searchParams.get('limit')).toBe('2')
    const second = await lab.req('GET', `${next.pathname}${next.search}`, { token })
    expect(a(second.body['ports']).map((p) => p['id'])).toEqual(ids.slice(2, 4))
    const last = await lab.req(
      'GET',
      `/network/v2.0/ports?limit=2&marker=${ids[ids.length - 2] ?? ''}`,
      { token },
    )
    expect(a(last.body['ports']).map((p) => p['id'])).toEqual(ids.slice(-1))
    expect(a(last.body['ports_links']).map((l) => l['rel'])).toEqual(['previous'])
    const back = await lab.req(
      'GET',
      `/network/v2.0/ports?limit=2&marker=${ids[2] ?? ''}&page_reverse=True`,
      { token },
    )
    expect(a(back.body['ports']).map((p) => p['id'])).toEqual(ids.slice(0, 2))
    const nets = await lab.req('GET', '/network/v2.0/networks.json?limit=1', { token })
    expect(String(a(nets.body['networks_links'])[0]?.['href'])).toContain(
      '/network/v2.0/networks.json?limit=1&marker=',
    )
  })

  it('answers a bad limit and an unknown marker as Neutron does', async () => {
    const limit = await lab.req('GET', '/network/v2.0/networks?limit=abc', { token })
    expect(limit.body).toEqual({
      NeutronError: {
        type: 'BadRequest',
        message: "Bad limit request: Limit must be an integer 0 or greater and not 'abc'.",
        detail: '',
      },
    })
    const marker = await lab.req(
      'GET',
      '/network/v2.0/networks?limit=1&marker=00000000-0000-4000-8000-000000000000',
      { token },
    )
    expect(marker.status).toBe(404)
    expect(marker.body).toEqual({
      NeutronError: {
        type: 'NetworkNotFound',
        message: 'Network 00000000-0000-4000-8000-000000000000 could not be found.',
        detail: '',
      },
    })
    const ports = await lab.req('GET', '/network/v2.0/ports?limit=1&marker=nope', { token })
    expect(o(ports.body['NeutronError'])['type']).toBe('PortNotFound')
  })

  it("lets only an admin change a port's MAC, and a member create ports only on its networks", async () => {
    const port = o((await createPort({ mac_address: 'fa:16:3e:00:00:42' })).body['port'])
    expect(port['mac_address']).toBe('fa:16:3e:00:00:42')
    const change = await lab.req('PUT', `/network/v2.0/ports/${String(port['id'])}`, {
      token,
      body: { port: { mac_address: 'fa:16:3e:00:00:01' } },
    })
    expect(change.status).toBe(403)
    expect(change.body).toEqual({
      NeutronError: {
        type: 'PolicyNotAuthorized',
        message: '(rule:update_port and rule:update_port:mac_address) is disallowed by policy',
        detail: '',
      },
    })
    const pub = a(
      (await lab.req('GET', '/network/v2.0/networks?name=public', { token })).body['networks'],
    )[0]
    const onPublic = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: pub?.['id'] } },
    })
    expect(onPublic.status).toBe(403)
    const project = lab.api.cloud.state.projects.find((p) => p.name === 'demo')?.id ?? ''
    expect(onPublic.body).toEqual({
      NeutronError: {
        type: 'HTTPForbidden',
        message: `Tenant ${project} not allowed to create port on this network`,
        detail: '',
      },
    })
    await lab.req('DELETE', `/network/v2.0/ports/${String(port['id'])}`, { token })
  })

  it('answers policy errors like Neutron for admin-only attributes', async () => {
    const ext = await lab.req('POST', '/network/v2.0/networks', {
      token,
      body: { network: { name: 'x', 'router:external': true } },
    })
    expect(ext.status).toBe(403)
    expect(ext.body).toEqual({
      NeutronError: {
        type: 'PolicyNotAuthorized',
        message:
          '(rule:create_network and rule:create_network:router:external) is disallowed by policy',
        detail: '',
      },
    })
    const pub = a(
      (await lab.req('GET', '/network/v2.0/networks?name=public', { token })).body['networks'],
    )[0]
    const del = await lab.req('DELETE', `/network/v2.0/networks/${String(pub?.['id'])}`, { token })
    expect(del.status).toBe(403)
    expect(o(del.body['NeutronError'])['message']).toBe(
      'rule:delete_network is disallowed by policy',
    )
    const admin = await lab.adminToken()
    const asAdmin = await lab.req('GET', '/network/v2.0/networks?name=public', { token: admin })
    expect(a(asAdmin.body['networks'])[0]).toMatchObject({ 'provider:network_type': 'flat' })
  })

  it('creates, updates and deletes a network with a subnet; refuses to delete one in use', async () => {
    const net = o(
      (
        await lab.req('POST', '/network/v2.0/networks', {
          token,
          body: { network: { name: 'net2' } },
        })
      ).body['network'],
    )
    const sub = await lab.req('POST', '/network/v2.0/subnets', {
      token,
      body: { subnet: { network_id: net['id'], ip_version: 4, cidr: '10.9.0.0/24', name: 'sub2' } },
    })
    expect(sub.status).toBe(201)
    expect(o(sub.body['subnet'])).toMatchObject({
      gateway_ip: '10.9.0.1',
      allocation_pools: [{ start: '10.9.0.2', end: '10.9.0.254' }],
    })
    const overlap = await lab.req('POST', '/network/v2.0/subnets', {
      token,
      body: { subnet: { network_id: net['id'], ip_version: 4, cidr: '10.9.0.128/25' } },
    })
    expect(overlap.status).toBe(400)
    const port = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: net['id'] } },
        })
      ).body['port'],
    )
    const busy = await lab.req('DELETE', `/network/v2.0/networks/${String(net['id'])}`, { token })
    expect(busy.status).toBe(409)
    expect(o(busy.body['NeutronError'])['type']).toBe('NetworkInUse')
    await lab.req('DELETE', `/network/v2.0/ports/${String(port['id'])}`, { token })
    const renamed = await lab.req('PUT', `/network/v2.0/networks/${String(net['id'])}`, {
      token,
      body: { network: { name: 'net3' } },
    })
    expect(o(renamed.body['network'])['name']).toBe('net3')
    expect(
      (await lab.req('DELETE', `/network/v2.0/networks/${String(net['id'])}`, { token })).status,
    ).toBe(204)
    expect(
      (await lab.req('GET', `/network/v2.0/networks/${String(net['id'])}`, { token })).status,
    ).toBe(404)
  })
})
