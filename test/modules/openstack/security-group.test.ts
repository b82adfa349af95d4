import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KNOWN_AFTER_APPLY, unknown } from '../../../engine/vars/unknown.ts'
import {
  ruleKey,
  securityGroup,
  type SecurityGroupState,
} from '../../../modules/openstack/security-group.ts'
import { planTable, type PlanCase } from '../host/harness.ts'
import { converge, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

const sgState = (
  rules: SecurityGroupState['want'],
  have: {
    direction: string
    ethertype: string
    protocol: string | null
    remote_group_id?: string | null
    remote_ip_prefix?: string | null
    port_range_min?: number | null
    port_range_max?: number | null
    id: string
  }[],
): SecurityGroupState => ({
  group: {
    id: 'sg-1',
    name: 'kld-vrrp',
    description: '',
    tags: [],
    security_group_rules: have.map((r) => ({
      security_group_id: 'sg-1',
      port_range_min: null,
      port_range_max: null,
      remote_ip_prefix: null,
      remote_group_id: null,
      description: '',
      ...r,
    })),
  },
  how: 'journal',
  want: rules,
  names: { 'sg-1': 'kld-vrrp' },
})
const egress = [
  { id: 'e4', direction: 'egress', ethertype: 'IPv4', protocol: null },
  { id: 'e6', direction: 'egress', ethertype: 'IPv6', protocol: null },
]
const vrrp = {
  direction: 'ingress',
  ethertype: 'IPv4',
  protocol: '112',
  port_range_min: null,
  port_range_max: null,
  remote_ip_prefix: null,
  remote_group_id: 'self',
}
const ssh = {
  direction: 'ingress',
  ethertype: 'IPv4',
  protocol: '6',
  port_range_min: 22,
  port_range_max: 22,
  remote_ip_prefix: '0.0.0.0/0',
  remote_group_id: null,
}

const sgCases: PlanCase<SecurityGroupState>[] = [
  {
    name: 'a missing group is created with its rules (and the default egress)',
    params: {
      name: 'kld-vrrp',
      rules: [
        { protocol: 'vrrp', remote_group: 'self' },
        { protocol: 'tcp', port: 22, remote_ip_prefix: '0.0.0.0/0' },
      ],
    },
    current: { group: undefined, how: undefined, want: [vrrp, ssh], names: {} },
    expected: [
      {
        action: 'create',
        target: 'security group kld-vrrp',
        after: {
          name: 'kld-vrrp',
          rules: [
            'egress IPv4 any to any',
            'egress IPv6 any to any',
            'ingress IPv4 vrrp from group self',
            'ingress IPv4 tcp 22 from 0.0.0.0/0',
          ],
          id: KNOWN_AFTER_APPLY,
        },
      },
    ],
  },
  {
    name: 'idempotent: the same rules, protocol by name or number, 0.0.0.0/0 or no prefix',
    params: {
      name: 'kld-vrrp',
      rules: [
        { protocol: 112, remote_group: 'self' },
        { protocol: 'tcp', port: '22' },
      ],
    },
    current: sgState(
      [vrrp, { ...ssh, remote_ip_prefix: null }],
      [
        ...egress,
        {
          id: 'r1',
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'vrrp',
          remote_group_id: 'sg-1',
        },
        {
          id: 'r2',
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: 'tcp',
          port_range_min: 22,
          port_range_max: 22,
          remote_ip_prefix: '0.0.0.0/0',
        },
      ],
    ),
    expected: [],
  },
  {
    name: 'rules compared as a set: one added, one removed',
    params: { name: 'kld-vrrp', rules: [{ protocol: 'icmp' }] },
    current: sgState(
      [
        {
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: '1',
          port_range_min: null,
          port_range_max: null,
          remote_ip_prefix: null,
          remote_group_id: null,
        },
      ],
      [...egress, { id: 'r2', ...ssh }],
    ),
    expected: [
      {
        action: 'update',
        target: 'security group kld-vrrp (sg-1)',
        before: { 'ingress IPv4 tcp 22 from 0.0.0.0/0': 'r2' },
        after: { 'ingress IPv4 icmp from any': KNOWN_AFTER_APPLY },
      },
    ],
  },
  {
    name: 'default_egress: false removes the egress rules nobody listed',
    params: { name: 'kld-vrrp', default_egress: false },
    current: sgState([], egress),
    expected: [
      {
        action: 'update',
        target: 'security group kld-vrrp (sg-1)',
        before: { 'egress IPv4 any to any': 'e4', 'egress IPv6 any to any': 'e6' },
        after: {},
      },
    ],
  },
  {
    name: 'absent: deleted',
    params: { name: 'kld-vrrp', state: 'absent' },
    current: sgState([], egress),
    expected: [
      { action: 'delete', target: 'security group kld-vrrp', before: { id: 'sg-1', rules: 2 } },
    ],
  },
]

describe('openstack.security_group plan', () => planTable(securityGroup, sgCases))

describe('rule identity', () => {
  it('is unknown while a remote group is', () => {
    expect(ruleKey({ ...vrrp, remote_group_id: unknown('g') }, 'sg-1')).toBeUndefined()
    expect(ruleKey(vrrp, 'sg-1')).toBe('ingress IPv4 112 * * group:sg-1')
  })
})

describe('openstack.security_group against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-os-sg-'))
  beforeAll(async () => {
    cloud = await startCloud()
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] }, dir)
  })
  afterAll(async () => {
    await cloud.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('makes a group with VRRP from itself, ICMP and SSH; changes rules as a set; keeps the default egress', async () => {
    const rules = [
      { protocol: 'vrrp', remote_group: 'self' },
      { protocol: 'icmp' },
      { protocol: 'tcp', port: 22, remote_ip_prefix: '0.0.0.0/0' },
    ]
    const plan = await planOnly(securityGroup, runs.next(), { name: 'kld-vrrp', rules })
    expect(plan.changes[0]?.after).toMatchObject({
      rules: [
        'egress IPv4 any to any',
        'egress IPv6 any to any',
        'ingress IPv4 vrrp from group self',
        'ingress IPv4 icmp from any',
        'ingress IPv4 tcp 22 from 0.0.0.0/0',
      ],
    })
    const r = await converge(securityGroup, runs.next(), {
      name: 'kld-vrrp',
      description: 'keepalived',
      rules,
    })
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    expect(r.syncCalls).toBe(1)
    const id = String(r.result?.output?.['id'])
    const group = await runs.api().neutron.securityGroup(id)
    expect(
      group?.security_group_rules.find((x) => x.protocol === 'vrrp' || x.protocol === '112')
        ?.remote_group_id,
    ).toBe(id)
    const less = await converge(securityGroup, runs.next(), {
      name: 'kld-vrrp',
      description: 'keepalived',
      rules: [rules[0], { protocol: 'tcp', port: '22' }],
    })
    expect(Object.keys(less.first[0]?.before as object)).toEqual(['ingress IPv4 icmp from any'])
    expect(less.second).toEqual([])
  })
})
