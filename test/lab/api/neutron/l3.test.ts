import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, o, startTestLab } from '../harness.ts'
import type { TestLab } from '../harness.ts'

const FIP_KEYS = [
  'created_at',
  'description',
  'fixed_ip_address',
  'floating_ip_address',
  'floating_network_id',
  'id',
  'port_details',
  'port_id',
  'project_id',
  'revision_number',
  'router_id',
  'status',
  'tags',
  'tenant_id',
  'updated_at',
]

describe('lab API: Neutron routers and floating IPs', () => {
  let lab: TestLab
  let token: string
  let publicId: string
  let netId: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    const nets = a((await lab.req('GET', '/network/v2.0/networks', { token })).body['networks'])
    publicId = String(nets.find((n) => n['name'] === 'public')?.['id'])
    netId = String(nets.find((n) => n['name'] === 'mynetwork')?.['id'])
  })
  afterAll(async () => {
    await lab.close()
  })

  it('seeds myrouter with a gateway on public and an interface on mysubnet', async () => {
    const routers = a((await lab.req('GET', '/network/v2.0/routers', { token })).body['routers'])
    expect(routers).toHaveLength(1)
    expect(routers[0]).toMatchObject({
      name: 'myrouter',
      external_gateway_info: {
        network_id: publicId,
        enable_snat: true,
        external_fixed_ips: [{ ip_address: '198.51.100.2' }],
      },
    })
  })

  it('creates a floating IP from public, associates it to a port, disassociates and deletes it', async () => {
    const created = await lab.req('POST', '/network/v2.0/floatingips', {
      token,
      body: { floatingip: { floating_network_id: publicId } },
    })
    expect(created.status).toBe(201)
    const fip = o(created.body['floatingip'])
    expect(Object.keys(fip).sort()).toEqual(FIP_KEYS)
    expect(fip).toMatchObject({
      floating_ip_address: '198.51.100.10',
      status: 'DOWN',
      port_id: null,
      router_id: null,
      port_details: null,
    })
    const port = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: netId, name: 'vm' } },
        })
      ).body['port'],
    )
    const assoc = await lab.req('PUT', `/network/v2.0/floatingips/${String(fip['id'])}`, {
      token,
      body: { floatingip: { port_id: port['id'] } },
    })
    expect(assoc.status).toBe(200)
    expect(o(assoc.body['floatingip'])).toMatchObject({
      port_id: port['id'],
      fixed_ip_address: '192.0.2.10',
      status: 'ACTIVE',
    })
    expect(o(o(assoc.body['floatingip'])['port_details'])['mac_address']).toBe(port['mac_address'])
    expect(lab.driver.lastSnapshot()?.floatingIps).toEqual([
      { id: fip['id'], floatingIp: '198.51.100.10', fixedIp: '192.0.2.10', portId: port['id'] },
    ])
    const listed = a(
      (
        await lab.req('GET', `/network/v2.0/floatingips?floating_ip_address=198.51.100.10`, {
          token,
        })
      ).body['floatingips'],
    )
    expect(listed).toHaveLength(1)
    const second = o(
      (
        await lab.req('POST', '/network/v2.0/floatingips', {
          token,
          body: { floatingip: { floating_network_id: publicId } },
        })
      ).body['floatingip'],
    )
    const taken = await lab.req('PUT', `/network/v2.0/floatingips/${String(second['id'])}`, {
      token,
      body: { floatingip: { port_id: port['id'] } },
    })
    expect(taken.status).toBe(409)
    expect(o(taken.body['NeutronError'])['type']).toBe('FloatingIPPortAlreadyAssociated')
    const off = await lab.req('PUT', `/network/v2.0/floatingips/${String(fip['id'])}`, {
      token,
      body: { floatingip: { port_id: null } },
    })
    expect(o(off.body['floatingip'])).toMatchObject({
      port_id: null,
      fixed_ip_address: null,
      status: 'DOWN',
    })
    expect(lab.driver.lastSnapshot()?.floatingIps.find((f) => f.id === fip['id'])).toMatchObject({
      fixedIp: null,
      portId: null,
    })
    expect(
      (await lab.req('DELETE', `/network/v2.0/floatingips/${String(fip['id'])}`, { token })).status,
    ).toBe(204)
    const gone = await lab.req('GET', `/network/v2.0/floatingips/${String(fip['id'])}`, { token })
    expect(gone.status).toBe(404)
    expect(o(gone.body['NeutronError'])['type']).toBe('FloatingIPNotFound')
    // The freed address is handed out again.
    const third = o(
      (
        await lab.req('POST', '/network/v2.0/floatingips', {
          token,
          body: { floatingip: { floating_network_id: publicId } },
        })
      ).body['floatingip'],
    )
    expect(third['floating_ip_address']).toBe('198.51.100.10')
  })

  it('creates and associates in one call; a port behind no router gets ExternalGatewayForFloatingIPNotFound', async () => {
    const port = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: netId } },
        })
      ).body['port'],
    )
    const both = await lab.req('POST', '/network/v2.0/floatingips', {
      token,
      body: { floatingip: { floating_network_id: publicId, port_id: port['id'] } },
    })
    expect(both.status).toBe(201)
    expect(o(both.body['floatingip'])['router_id']).not.toBeNull()
    const net = o(
      (
        await lab.req('POST', '/network/v2.0/networks', {
          token,
          body: { network: { name: 'isolated' } },
        })
      ).body['network'],
    )
    const sub = o(
      (
        await lab.req('POST', '/network/v2.0/subnets', {
          token,
          body: { subnet: { network_id: net['id'], ip_version: 4, cidr: '10.1.0.0/24' } },
        })
      ).body['subnet'],
    )
    const lone = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: net['id'] } },
        })
      ).body['port'],
    )
    const fail = await lab.req('POST', '/network/v2.0/floatingips', {
      token,
      body: { floatingip: { floating_network_id: publicId, port_id: lone['id'] } },
    })
    expect(fail.status).toBe(404)
    expect(fail.body).toEqual({
      NeutronError: {
        type: 'ExternalGatewayForFloatingIPNotFound',
        message: `External network ${publicId} is not reachable from subnet ${String(sub['id'])}.  Therefore, cannot associate Port ${String(lone['id'])} with a Floating IP.`,
        detail: '',
      },
    })
  })

  it('keeps specific floating addresses and internal networks for admins', async () => {
    const fixed = await lab.req('POST', '/network/v2.0/floatingips', {
      token,
      body: { floatingip: { floating_network_id: publicId, floating_ip_address: '198.51.100.50' } },
    })
    expect(fixed.status).toBe(403)
    expect(o(fixed.body['NeutronError'])['message']).toBe(
      '(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy',
    )
    const internal = await lab.req('POST', '/network/v2.0/floatingips', {
      token,
      body: { floatingip: { floating_network_id: netId } },
    })
    expect(internal.status).toBe(400)
    const admin = await lab.adminToken()
    const asAdmin = await lab.req('POST', '/network/v2.0/floatingips', {
      token: admin,
      body: { floatingip: { floating_network_id: publicId, floating_ip_address: '198.51.100.50' } },
    })
    expect(o(asAdmin.body['floatingip'])['floating_ip_address']).toBe('198.51.100.50')
  })

  it('refuses to remove a router interface that floating IPs need', async () => {
    const router = a(
      (await lab.req('GET', '/network/v2.0/routers?name=myrouter', { token })).body['routers'],
    )[0]
    const subnet = a(
      (await lab.req('GET', '/network/v2.0/subnets?name=mysubnet', { token })).body['subnets'],
    )[0]
    const res = await lab.req(
      'PUT',
      `/network/v2.0/routers/${String(router?.['id'])}/remove_router_interface`,
      { token, body: { subnet_id: subnet?.['id'] } },
    )
    expect(res.status).toBe(409)
    expect(o(res.body['NeutronError'])['type']).toBe('RouterInterfaceInUseByFloatingIP')
    const del = await lab.req('DELETE', `/network/v2.0/routers/${String(router?.['id'])}`, {
      token,
    })
    expect(o(del.body['NeutronError'])['type']).toBe('RouterInUse')
  })
})
