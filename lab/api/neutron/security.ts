/** Neutron security groups and their rules (protocol by name or number, remote groups, duplicates). */
import type { Cloud } from '../cloud.ts'
import { json, neutronError } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { normalizeCidr, parseCidr } from './ipam.ts'
import {
  caller,
  ensureDefaultSecurityGroup,
  getSecurityGroup,
  invalidInput,
  newRule,
  newStandard,
  optBool,
  optNullableString,
  optString,
  policyError,
  rejectReadOnly,
  resourceBody,
  touch,
  createBody,
} from './common.ts'
import { listReply, showFields } from './query.ts'
import { hasTags, ruleView, securityGroupView } from './views.ts'
import { hasPorts, IP_PROTOCOLS, isIcmp, protocolNumber } from './protocols.ts'
import type { SecurityGroupRec, SecurityGroupRuleRec } from '../types.ts'

const SG_ATTRS = ['name', 'description', 'stateful', 'tenant_id', 'project_id', 'tags'] as const
const SG_FILTERS = [
  'id',
  'name',
  'description',
  'tenant_id',
  'project_id',
  'stateful',
  'shared',
  'revision_number',
  'created_at',
  'updated_at',
] as const
const RULE_ATTRS = [
  'security_group_id',
  'direction',
  'ethertype',
  'protocol',
  'port_range_min',
  'port_range_max',
  'remote_ip_prefix',
  'remote_group_id',
  'remote_address_group_id',
  'description',
  'tenant_id',
  'project_id',
] as const
const RULE_FILTERS = [
  'id',
  'security_group_id',
  'direction',
  'ethertype',
  'protocol',
  'port_range_min',
  'port_range_max',
  'remote_ip_prefix',
  'remote_group_id',
  'remote_address_group_id',
  'normalized_cidr',
  'tenant_id',
  'project_id',
  'description',
  'revision_number',
  'created_at',
  'updated_at',
] as const

function createGroup(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'security_group', SG_ATTRS)
  const projectId = optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? auth.projectId
  if (projectId !== auth.projectId && !auth.isAdmin) throw policyError('rule:create_security_group')
  ensureDefaultSecurityGroup(cloud, projectId)
  const name = optString(body, 'name') ?? ''
  if (name === 'default')
    throw neutronError(
      409,
      'SecurityGroupDefaultAlreadyExists',
      'Default security group already exists.',
    )
  const group: SecurityGroupRec = {
    ...newStandard(projectId, name, optString(body, 'description') ?? ''),
    stateful: optBool(body, 'stateful') ?? true,
  }
  group.tags = []
  cloud.state.securityGroups.push(group)
  for (const ethertype of ['IPv4', 'IPv6'] as const)
    cloud.state.securityGroupRules.push(newRule(group, { direction: 'egress', ethertype }))
  const view = securityGroupView(cloud, group)
  // Neutron's create answer shows the new rules unfiltered: with standard_attr_id, and with the
  // tags the tag plugin adds (none without it).
  view['security_group_rules'] = (view['security_group_rules'] as Record<string, unknown>[]).map(
    (r) => ({
      ...r,
      standard_attr_id: cloud.state.securityGroupRules.findIndex((x) => x.id === r['id']) + 1,
      ...(hasTags(cloud) ? { tags: [] } : {}),
    }),
  )
  return json(201, { security_group: view })
}

function updateGroup(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const group = getSecurityGroup(cloud, ctx.params[0] ?? '', auth)
  const body = resourceBody(ctx, 'security_group', [...SG_ATTRS, 'id'])
  rejectReadOnly(body, ['id', 'tenant_id', 'project_id'])
  const name = optString(body, 'name')
  if (group.name === 'default' && name !== undefined && name !== 'default') {
    throw neutronError(
      409,
      'SecurityGroupCannotUpdateDefault',
      'Updating default security group not allowed.',
    )
  }
  if (name !== undefined) group.name = name
  const description = optString(body, 'description')
  if (description !== undefined) group.description = description
  const stateful = optBool(body, 'stateful')
  if (stateful !== undefined && stateful !== group.stateful) {
    if (cloud.state.ports.some((p) => p.securityGroups.includes(group.id))) {
      throw neutronError(409, 'SecurityGroupInUse', `Security Group ${group.id} in use.`)
    }
    group.stateful = stateful
  }
  touch(group)
  return json(200, { security_group: securityGroupView(cloud, group) })
}

function deleteGroup(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const group = getSecurityGroup(cloud, ctx.params[0] ?? '', auth)
  if (group.name === 'default' && !auth.isAdmin) {
    throw neutronError(
      409,
      'SecurityGroupCannotRemoveDefault',
      'Insufficient rights for removing default security group.',
    )
  }
  if (cloud.state.ports.some((p) => p.securityGroups.includes(group.id))) {
    throw neutronError(409, 'SecurityGroupInUse', `Security Group ${group.id} in use.`)
  }
  cloud.state.securityGroups = cloud.state.securityGroups.filter((g) => g.id !== group.id)
  // Rules of the group, and rules elsewhere that name it as remote group, go with it.
  cloud.state.securityGroupRules = cloud.state.securityGroupRules.filter(
    (r) => r.securityGroupId !== group.id && r.remoteGroupId !== group.id,
  )
  return { status: 204 }
}

function portNumber(body: Record<string, unknown>, key: string): number | null {
  const v = body[key]
  if (v === undefined || v === null) return null
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isInteger(n)) throw invalidInput(key, `'${String(v)}' is not an integer`)
  if (n < 0 || n > 65535)
    throw invalidInput(key, `'${n}' is too large - must be no larger than '65535'`)
  return n
}

function anyPrefix(p: string | null): string | null {
  return p === '0.0.0.0/0' || p === '::/0' ? null : p === null ? null : normalizeCidr(p)
}

function createRule(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = resourceBody(ctx, 'security_group_rule', RULE_ATTRS)
  const groupId = optString(body, 'security_group_id')
  if (groupId === undefined) throw invalidInput('security_group_id', `'None' is not a valid UUID`)
  const group = getSecurityGroup(cloud, groupId, auth)
  const direction = optString(body, 'direction')
  if (direction !== 'ingress' && direction !== 'egress') {
    throw invalidInput('direction', `'${String(direction)}' is not in ['ingress', 'egress']`)
  }
  const etherRaw = (optString(body, 'ethertype') ?? 'IPv4').toLowerCase()
  if (etherRaw !== 'ipv4' && etherRaw !== 'ipv6')
    throw invalidInput('ethertype', `'${etherRaw}' is not in ['IPv4', 'IPv6']`)
  const ethertype = etherRaw === 'ipv4' ? 'IPv4' : 'IPv6'
  const protoRaw = body['protocol']
  let protocol: string | null = null
  if (protoRaw !== undefined && protoRaw !== null) {
    protocol =
      typeof protoRaw === 'number'
        ? String(protoRaw)
        : typeof protoRaw === 'string'
          ? protoRaw.toLowerCase()
          : '?'
    if (protocol === '') protocol = null
  }
  const num = protocolNumber(protocol)
  if (num === undefined) {
    const names = ['None', ...Object.keys(IP_PROTOCOLS)]
      .map((n) => (n === 'None' ? n : `'${n}'`))
      .join(', ')
    throw neutronError(
      400,
      'SecurityGroupRuleInvalidProtocol',
      `Security group rule protocol ${String(protoRaw)} not supported. Only protocol values [${names}] and integer representations [0 to 255] are supported.`,
    )
  }
  const min = portNumber(body, 'port_range_min')
  let max = portNumber(body, 'port_range_max')
  if (hasPorts(num)) {
    if (min !== null && max === null) max = min
    if (min !== null && max !== null && min > max) {
      throw neutronError(
        400,
        'SecurityGroupInvalidPortRange',
        'For TCP/UDP protocols, port_range_min must be <= port_range_max',
      )
    }
    if (min === 0 || max === 0)
      throw neutronError(400, 'SecurityGroupInvalidPortValue', 'Invalid value for port 0.')
  } else if (isIcmp(num)) {
    for (const [field, attr, v] of [
      ['type', 'port_range_min', min],
      ['code', 'port_range_max', max],
    ] as const) {
      if (v !== null && v > 255) {
        throw neutronError(
          400,
          'SecurityGroupInvalidIcmpValue',
          `Invalid value for ICMP ${field} (${attr}) ${v}. It must be 0 to 255.`,
        )
      }
    }
    if (min === null && max !== null) {
      throw neutronError(
        400,
        'SecurityGroupMissingIcmpType',
        `ICMP code (port-range-max) ${max} is provided but ICMP type (port-range-min) is missing.`,
      )
    }
  } else if (min !== null || max !== null) {
    throw neutronError(
      400,
      'SecurityGroupInvalidProtocolForPort',
      `Ports cannot be specified for protocol ${String(protocol)}. Ports are only supported for ['tcp', 'udp', 'dccp', 'sctp', 'udplite', '6', '17', '33', '132', '136'].`,
    )
  }
  const prefix = optNullableString(body, 'remote_ip_prefix') ?? null
  const remoteGroupId = optNullableString(body, 'remote_group_id') ?? null
  if (prefix !== null && remoteGroupId !== null) {
    throw neutronError(
      400,
      'SecurityGroupRemoteGroupAndRemoteIpPrefix',
      'Only remote_ip_prefix or remote_group_id may be provided.',
    )
  }
  if (prefix !== null) {
    if (parseCidr(prefix) === null)
      throw invalidInput('remote_ip_prefix', `'${prefix}' is not a valid IP subnet`)
    if (ethertype === 'IPv6')
      throw neutronError(
        400,
        'SecurityGroupRuleParameterConflict',
        `Conflicting value ethertype ${ethertype} for CIDR ${prefix}`,
      )
  }
  if (remoteGroupId !== null) getSecurityGroup(cloud, remoteGroupId, auth)
  const dup = cloud.state.securityGroupRules.find(
    (r) =>
      r.securityGroupId === group.id &&
      r.direction === direction &&
      r.ethertype === ethertype &&
      (protocolNumber(r.protocol) ?? null) === num &&
      r.portRangeMin === min &&
      r.portRangeMax === max &&
      anyPrefix(r.remoteIpPrefix) === anyPrefix(prefix) &&
      r.remoteGroupId === remoteGroupId,
  )
  if (dup !== undefined)
    throw neutronError(
      409,
      'SecurityGroupRuleExists',
      `Security group rule already exists. Rule id is ${dup.id}.`,
    )
  const rule: SecurityGroupRuleRec = newRule(group, {
    direction,
    ethertype,
    protocol,
    portRangeMin: min,
    portRangeMax: max,
    remoteIpPrefix: prefix,
    remoteGroupId,
    description: optString(body, 'description') ?? '',
  })
  cloud.state.securityGroupRules.push(rule)
  touch(group)
  return json(201, { security_group_rule: ruleView(rule) })
}

function getRule(cloud: Cloud, ctx: Ctx): SecurityGroupRuleRec {
  const auth = caller(ctx)
  const id = ctx.params[0] ?? ''
  const rule = cloud.state.securityGroupRules.find((r) => r.id === id)
  if (rule === undefined || (!auth.isAdmin && rule.projectId !== auth.projectId)) {
    throw neutronError(404, 'SecurityGroupRuleNotFound', `Security group rule ${id} does not exist`)
  }
  return rule
}

/** Neutron's security-group routes (below `/v2.0`). */
export function securityRoutes(cloud: Cloud): Route[] {
  const sync = (r: Reply) => cloud.commitAndSync().then(() => r)
  return [
    {
      method: 'GET',
      pattern: /^\/v2\.0\/security-groups$/,
      handler: async (ctx) => {
        const auth = caller(ctx)
        const had = cloud.state.securityGroups.length
        ensureDefaultSecurityGroup(cloud, auth.projectId)
        if (cloud.state.securityGroups.length !== had) await cloud.commitAndSync()
        const items = cloud.state.securityGroups
          .filter((g) => auth.isAdmin || g.projectId === auth.projectId)
          .map((g) => securityGroupView(cloud, g))
        return listReply(
          ctx,
          {
            collection: 'security_groups',
            tags: hasTags(cloud),
            filterable: SG_FILTERS,
            notFound: (id) =>
              neutronError(404, 'SecurityGroupNotFound', `Security group ${id} does not exist`),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/security-groups$/,
      handler: (ctx) => sync(createGroup(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/security-groups\/([^/]+)$/,
      handler: (ctx) =>
        json(200, {
          security_group: showFields(
            ctx,
            securityGroupView(cloud, getSecurityGroup(cloud, ctx.params[0] ?? '', caller(ctx))),
          ),
        }),
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/security-groups\/([^/]+)$/,
      handler: (ctx) => sync(updateGroup(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/security-groups\/([^/]+)$/,
      handler: (ctx) => sync(deleteGroup(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/security-group-rules$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const items = cloud.state.securityGroupRules
          .filter((r) => auth.isAdmin || r.projectId === auth.projectId)
          .map(ruleView)
        return listReply(
          ctx,
          {
            collection: 'security_group_rules',
            // rules are no tag resource (Neutron's model has no tag_support): never tag filters
            tags: false,
            filterable: RULE_FILTERS,
            notFound: (id) =>
              neutronError(
                404,
                'SecurityGroupRuleNotFound',
                `Security group rule ${id} does not exist`,
              ),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/security-group-rules$/,
      handler: (ctx) => sync(createRule(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/security-group-rules\/([^/]+)$/,
      handler: (ctx) =>
        json(200, { security_group_rule: showFields(ctx, ruleView(getRule(cloud, ctx))) }),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/security-group-rules\/([^/]+)$/,
      handler: (ctx) => {
        const rule = getRule(cloud, ctx)
        cloud.state.securityGroupRules = cloud.state.securityGroupRules.filter(
          (r) => r.id !== rule.id,
        )
        const group = cloud.state.securityGroups.find((g) => g.id === rule.securityGroupId)
        if (group !== undefined) touch(group)
        return sync({ status: 204 })
      },
    },
  ]
}
