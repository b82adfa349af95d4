import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, o, startTestLab } from '../harness.ts'
import type { TestLab } from '../harness.ts'

const RULE_KEYS = [
  'created_at',
  'description',
  'direction',
  'ethertype',
  'id',
  'normalized_cidr',
  'port_range_max',
  'port_range_min',
  'project_id',
  'protocol',
  'remote_address_group_id',
  'remote_group_id',
  'remote_ip_prefix',
  'revision_number',
  'security_group_id',
  'tenant_id',
  'updated_at',
]

describe('lab API: Neutron security groups', () => {
  let lab: TestLab
  let token: string
  let defaultId: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    const list = a(
      (await lab.req('GET', '/network/v2.0/security-groups?name=default', { token })).body[
        'security_groups'
      ],
    )
    defaultId = String(list[0]?.['id'])
  })
  afterAll(async () => {
    await lab.close()
  })

  const rule = (r: Record<string, unknown>) =>
    lab.req('POST', '/network/v2.0/security-group-rules', {
      token,
      body: { security_group_rule: r },
    })

  it('has a default group that allows all egress and ingress from itself, and an ssh group', async () => {
    const groups = a(
      (await lab.req('GET', '/network/v2.0/security-groups', { token })).body['security_groups'],
    )
    expect(groups.map((g) => g['name']).sort()).toEqual(['default', 'ssh'])
    const def = groups.find((g) => g['name'] === 'default') ?? {}
    expect(Object.keys(def).sort()).toEqual([
      'created_at',
      'description',
      'id',
      'name',
      'project_id',
      'revision_number',
      'security_group_rules',
      'shared',
      'stateful',
      'tags',
      'tenant_id',
      'updated_at',
    ])
    const rules = a(def['security_group_rules'])
    expect(rules).toHaveLength(4)
    expect(
      rules
        .filter((r) => r['direction'] === 'ingress')
        .every((r) => r['remote_group_id'] === defaultId),
    ).toBe(true)
    expect(
      rules
        .filter((r) => r['direction'] === 'egress')
        .every((r) => r['remote_group_id'] === null && r['protocol'] === null),
    ).toBe(true)
    const ssh = a(groups.find((g) => g['name'] === 'ssh')?.['security_group_rules'])
    expect(ssh.find((r) => r['direction'] === 'ingress')).toMatchObject({
      protocol: 'tcp',
      port_range_min: 22,
      port_range_max: 22,
      remote_ip_prefix: '0.0.0.0/0',
    })
  })

  it('creates a group with the two egress rules', async () => {
    const res = await lab.req('POST', '/network/v2.0/security-groups', {
      token,
      body: { security_group: { name: 'web', description: 'web servers' } },
    })
    expect(res.status).toBe(201)
    const g = o(res.body['security_group'])
    expect(
      a(g['security_group_rules'])
        .map((r) => `${String(r['direction'])}/${String(r['ethertype'])}`)
        .sort(),
    ).toEqual(['egress/IPv4', 'egress/IPv6'])
    const again = await lab.req('POST', '/network/v2.0/security-groups', {
      token,
      body: { security_group: { name: 'default' } },
    })
    expect(again.status).toBe(409)
  })

  it('accepts protocols by name or number, echoes them as sent, and finds duplicates across the two', async () => {
    const vrrp = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: 'vrrp',
      remote_group_id: defaultId,
    })
    expect(vrrp.status).toBe(201)
    const created = o(vrrp.body['security_group_rule'])
    expect(Object.keys(created).sort()).toEqual(RULE_KEYS)
    expect(created).toMatchObject({
      protocol: 'vrrp',
      ethertype: 'IPv4',
      remote_group_id: defaultId,
      port_range_min: null,
    })
    const dup = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: '112',
      remote_group_id: defaultId,
    })
    expect(dup.status).toBe(409)
    expect(dup.body).toEqual({
      NeutronError: {
        type: 'SecurityGroupRuleExists',
        message: `Security group rule already exists. Rule id is ${String(created['id'])}.`,
        detail: '',
      },
    })
    const snap = lab.driver.lastSnapshot()
    const pushed = snap?.securityGroups
      .find((g) => g.id === defaultId)
      ?.rules.find((r) => r.id === created['id'])
    expect(pushed).toMatchObject({
      protocol: '112',
      remoteGroupId: defaultId,
      direction: 'ingress',
    })
    const icmp = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: 'icmp',
      remote_ip_prefix: '0.0.0.0/0',
    })
    expect(o(icmp.body['security_group_rule'])).toMatchObject({
      protocol: 'icmp',
      remote_ip_prefix: '0.0.0.0/0',
      normalized_cidr: '0.0.0.0/0',
    })
    const tcp = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: 'tcp',
      port_range_min: '80',
      port_range_max: '81',
    })
    expect(o(tcp.body['security_group_rule'])).toMatchObject({
      port_range_min: 80,
      port_range_max: 81,
    })
  })

  it("rejects bad rules with Neutron's types", async () => {
    const proto = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: 'bogus',
    })
    expect(proto.status).toBe(400)
    expect(o(proto.body['NeutronError'])['type']).toBe('SecurityGroupRuleInvalidProtocol')
    const range = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      protocol: 'tcp',
      port_range_min: 90,
      port_range_max: 80,
    })
    expect(o(range.body['NeutronError'])['type']).toBe('SecurityGroupInvalidPortRange')
    const both = await rule({
      security_group_id: defaultId,
      direction: 'ingress',
      remote_group_id: defaultId,
      remote_ip_prefix: '10.0.0.0/8',
    })
    expect(o(both.body['NeutronError'])['type']).toBe('SecurityGroupRemoteGroupAndRemoteIpPrefix')
    const dir = await rule({ security_group_id: defaultId, direction: 'sideways' })
    expect(dir.status).toBe(400)
    const missing = await rule({
      security_group_id: '00000000-0000-0000-0000-000000000000',
      direction: 'ingress',
    })
    expect(missing.status).toBe(404)
    expect(o(missing.body['NeutronError'])['type']).toBe('SecurityGroupNotFound')
  })

  it('deletes a rule, then answers 404 SecurityGroupRuleNotFound', async () => {
    const r = o(
      (
        await rule({
          security_group_id: defaultId,
          direction: 'egress',
          protocol: 'udp',
          port_range_min: 53,
        })
      ).body['security_group_rule'],
    )
    expect(r['port_range_max']).toBe(53)
    expect(
      (await lab.req('DELETE', `/network/v2.0/security-group-rules/${String(r['id'])}`, { token }))
        .status,
    ).toBe(204)
    const again = await lab.req('DELETE', `/network/v2.0/security-group-rules/${String(r['id'])}`, {
      token,
    })
    expect(again.status).toBe(404)
    expect(again.body).toEqual({
      NeutronError: {
        type: 'SecurityGroupRuleNotFound',
        message: `Security group rule ${String(r['id'])} does not exist`,
        detail: '',
      },
    })
    const filtered = a(
      (
        await lab.req(
          'GET',
          `/network/v2.0/security-group-rules?security_group_id=${defaultId}&protocol=vrrp`,
          { token },
        )
      ).body['security_group_rules'],
    )
    expect(filtered).toHaveLength(1)
  })

  it('refuses to delete the default group and a group in use', async () => {
    const del = await lab.req('DELETE', `/network/v2.0/security-groups/${defaultId}`, { token })
    expect(del.status).toBe(409)
    expect(o(del.body['NeutronError'])['type']).toBe('SecurityGroupCannotRemoveDefault')
    const g = o(
      (
        await lab.req('POST', '/network/v2.0/security-groups', {
          token,
          body: { security_group: { name: 'used' } },
        })
      ).body['security_group'],
    )
    const net = a(
      (await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })).body['networks'],
    )[0]
    const port = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: net?.['id'], security_groups: [g['id']] } },
        })
      ).body['port'],
    )
    expect(port['security_groups']).toEqual([g['id']])
    const busy = await lab.req('DELETE', `/network/v2.0/security-groups/${String(g['id'])}`, {
      token,
    })
    expect(busy.status).toBe(409)
    expect(o(busy.body['NeutronError'])['type']).toBe('SecurityGroupInUse')
    await lab.req('DELETE', `/network/v2.0/ports/${String(port['id'])}`, { token })
    expect(
      (await lab.req('DELETE', `/network/v2.0/security-groups/${String(g['id'])}`, { token }))
        .status,
    ).toBe(204)
  })
})
