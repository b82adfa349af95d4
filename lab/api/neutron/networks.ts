/** Neutron networks and subnets. */
import type { Cloud } from '../cloud.ts'
import { json, neutronError } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { defaultPools, intToIp, ipToInt, isIpv4, normalizeCidr, parseCidr } from './ipam.ts'
import type { Pool } from './ipam.ts'
import {
  caller,
  canSeeNetwork,
  getNetwork,
  invalidInput,
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
import { hasTags, networkView, subnetView } from './views.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type { NetworkRec, SubnetRec } from '../types.ts'

const NETWORK_ATTRS = [
  'name',
  'admin_state_up',
  'shared',
  'router:external',
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
  'mtu',
  'port_security_enabled',
  'description',
  'tags',
  'tenant_id',
  'project_id',
  'availability_zone_hints',
  'is_default',
] as const

/** Attributes whose non-default value only an admin may set (policy `create_network:<attr>`). */
const NETWORK_ADMIN_ATTRS = [
  'shared',
  'router:external',
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
  'is_default',
] as const

const NETWORK_FILTERS = [
  'id',
  'name',
  'admin_state_up',
  'status',
  'shared',
  'router:external',
  'tenant_id',
  'project_id',
  'mtu',
  'description',
  'port_security_enabled',
  'revision_number',
  'is_default',
  'provider:network_type',
  'provider:physical_network',
  'provider:segmentation_id',
  'availability_zone_hints',
  'created_at',
  'updated_at',
] as const

const SUBNET_ATTRS = [
  'name',
  'network_id',
  'ip_version',
  'cidr',
  'gateway_ip',
  'allocation_pools',
  'dns_nameservers',
  'host_routes',
  'enable_dhcp',
  'description',
  'tags',
  'tenant_id',
  'project_id',
  'subnetpool_id',
  'ipv6_ra_mode',
  'ipv6_address_mode',
  'service_types',
  'prefixlen',
  'use_default_subnetpool',
] as const

const SUBNET_FILTERS = [
  'id',
  'name',
  'network_id',
  'ip_version',
  'cidr',
  'gateway_ip',
  'enable_dhcp',
  'tenant_id',
  'project_id',
  'description',
  'subnetpool_id',
  'ipv6_ra_mode',
  'ipv6_address_mode',
  'revision_number',
  'created_at',
  'updated_at',
] as const

function adminAttrsSet(body: Record<string, unknown>, action: string): string[] {
  return NETWORK_ADMIN_ATTRS.filter((a) => a in body && body[a] !== false && body[a] !== null).map(
    (a) => `rule:${action}:${a}`,
  )
}

function createNetwork(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'network', NETWORK_ATTRS)
  const projectId = optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? auth.projectId
  if (!auth.isAdmin) {
    const attrRules = adminAttrsSet(body, 'create_network')
    if (attrRules.length > 0)
      throw policyError(`(rule:create_network and ${attrRules.join(' and ')})`)
    if (projectId !== auth.projectId) throw policyError('rule:create_network')
  }
  const mtu = body['mtu']
  if (mtu !== undefined && (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68)) {
    throw invalidInput('mtu', `'${String(mtu)}' is too small - must be at least '68'`)
  }
  const external = optBool(body, 'router:external') ?? false
  const network: NetworkRec = {
    ...newStandard(projectId, optString(body, 'name') ?? '', optString(body, 'description') ?? ''),
    adminStateUp: optBool(body, 'admin_state_up') ?? true,
    shared: optBool(body, 'shared') ?? false,
    external,
    mtu: typeof mtu === 'number' ? mtu : 1450,
    portSecurityEnabled: optBool(body, 'port_security_enabled') ?? true,
    providerNetworkType: optString(body, 'provider:network_type') ?? 'vxlan',
    providerPhysicalNetwork: optNullableString(body, 'provider:physical_network') ?? null,
    providerSegmentationId:
      typeof body['provider:segmentation_id'] === 'number'
        ? body['provider:segmentation_id']
        : null,
  }
  if (network.providerNetworkType === 'vxlan' && network.providerSegmentationId === null) {
    network.providerSegmentationId = 100 + cloud.state.networks.length
  }
  network.tags = []
  cloud.state.networks.push(network)
  return json(201, { network: networkView(cloud, network, auth.isAdmin) })
}

function ownNetwork(
  cloud: Cloud,
  ctx: Ctx,
  action: string,
): { auth: AuthContext; network: NetworkRec } {
  const auth = caller(ctx)
  const network = getNetwork(cloud, ctx.params[0] ?? '', auth)
  if (!auth.isAdmin && network.projectId !== auth.projectId) throw policyError(`rule:${action}`)
  return { auth, network }
}

function updateNetwork(cloud: Cloud, ctx: Ctx): Reply {
  const { auth, network } = ownNetwork(cloud, ctx, 'update_network')
  const body = resourceBody(ctx, 'network', [...NETWORK_ATTRS, 'id', 'status', 'subnets'])
  rejectReadOnly(body, ['id', 'tenant_id', 'project_id', 'status', 'subnets'])
  if (!auth.isAdmin) {
    const attrRules = adminAttrsSet(body, 'update_network')
    if (attrRules.length > 0)
      throw policyError(`(rule:update_network and ${attrRules.join(' and ')})`)
  }
  const name = optString(body, 'name')
  if (name !== undefined) network.name = name
  const description = optString(body, 'description')
  if (description !== undefined) network.description = description
  network.adminStateUp = optBool(body, 'admin_state_up') ?? network.adminStateUp
  network.shared = optBool(body, 'shared') ?? network.shared
  network.external = optBool(body, 'router:external') ?? network.external
  network.portSecurityEnabled =
    optBool(body, 'port_security_enabled') ?? network.portSecurityEnabled
  if (typeof body['mtu'] === 'number') network.mtu = body['mtu']
  touch(network)
  return json(200, { network: networkView(cloud, network, auth.isAdmin) })
}

function deleteNetwork(cloud: Cloud, ctx: Ctx): Reply {
  const { network } = ownNetwork(cloud, ctx, 'delete_network')
  const inUse = cloud.state.ports.some(
    (p) => p.networkId === network.id && p.deviceOwner !== 'network:dhcp',
  )
  if (inUse) {
    throw neutronError(
      409,
      'NetworkInUse',
      `Unable to complete operation on network ${network.id}. There are one or more ports still in use on the network.`,
    )
  }
  cloud.state.ports = cloud.state.ports.filter((p) => p.networkId !== network.id)
  cloud.state.subnets = cloud.state.subnets.filter((s) => s.networkId !== network.id)
  cloud.state.networks = cloud.state.networks.filter((n) => n.id !== network.id)
  return { status: 204 }
}

function parsePools(raw: unknown, cidr: string, gateway: string | null): Pool[] {
  if (raw === undefined || raw === null) return defaultPools(cidr, gateway)
  if (!Array.isArray(raw))
    throw invalidInput('allocation_pools', `'${JSON.stringify(raw)}' is not a list`)
  return raw.map((p: unknown) => {
    const o = p !== null && typeof p === 'object' ? (p as Record<string, unknown>) : {}
    const start = o['start']
    const end = o['end']
    if (typeof start !== 'string' || typeof end !== 'string' || !isIpv4(start) || !isIpv4(end)) {
      throw invalidInput(
        'allocation_pools',
        `Invalid data format for IP pool: '${JSON.stringify(p)}'`,
      )
    }
    const c = parseCidr(cidr)
    if (
      c === null ||
      ipToInt(start) <= c.network ||
      ipToInt(end) >= c.network + c.size - 1 ||
      ipToInt(start) > ipToInt(end)
    ) {
      throw neutronError(
        400,
        'OutOfBoundsAllocationPool',
        `The allocation pool ${start}-${end} spans beyond the subnet cidr ${cidr}.`,
      )
    }
    if (
      gateway !== null &&
      ipToInt(gateway) >= ipToInt(start) &&
      ipToInt(gateway) <= ipToInt(end)
    ) {
      throw neutronError(
        409,
        'GatewayConflictWithAllocationPools',
        `Gateway ip ${gateway} conflicts with allocation pool ${start}-${end}.`,
      )
    }
    return { start, end }
  })
}

function createSubnet(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'subnet', SUBNET_ATTRS)
  const netId = optString(body, 'network_id')
  if (netId === undefined) throw invalidInput('network_id', `'None' is not a valid UUID`)
  const network = getNetwork(cloud, netId, auth)
  if (!auth.isAdmin && network.projectId !== auth.projectId) throw policyError('rule:create_subnet')
  const version = body['ip_version']
  if (version !== 4 && version !== '4') {
    throw invalidInput(
      'ip_version',
      version === undefined
        ? `'None' is not in [4, 6]`
        : `the lab supports IPv4 subnets only, not '${String(version)}'`,
    )
  }
  const cidrRaw = optString(body, 'cidr')
  const cidr = cidrRaw === undefined ? null : normalizeCidr(cidrRaw)
  if (cidrRaw === undefined || cidr === null)
    throw invalidInput('cidr', `'${String(cidrRaw)}' is not a valid IP subnet`)
  if (cidr !== cidrRaw && cidrRaw.includes('/'))
    throw invalidInput(
      'cidr',
      `'${cidrRaw}' isn't a recommended CIDR, '${cidr}' is the recommended value`,
    )
  const c = parseCidr(cidr)
  for (const other of cloud.state.subnets.filter((s) => s.networkId === network.id)) {
    const o = parseCidr(other.cidr)
    if (
      c !== null &&
      o !== null &&
      c.network < o.network + o.size &&
      o.network < c.network + c.size
    ) {
      throw neutronError(
        400,
        'InvalidInput',
        `Invalid input for operation: Requested subnet with cidr: ${cidr} for network: ${network.id} overlaps with another subnet.`,
      )
    }
  }
  let gateway: string | null = c === null ? null : intToIp(c.network + 1)
  if ('gateway_ip' in body) gateway = optNullableString(body, 'gateway_ip') ?? null
  if (gateway !== null && !isIpv4(gateway))
    throw invalidInput('gateway_ip', `'${gateway}' is not a valid IP address`)
  const subnet: SubnetRec = {
    ...newStandard(
      auth.isAdmin
        ? (optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? network.projectId)
        : auth.projectId,
      optString(body, 'name') ?? '',
      optString(body, 'description') ?? '',
    ),
    networkId: network.id,
    cidr,
    gatewayIp: gateway,
    allocationPools: parsePools(body['allocation_pools'], cidr, gateway),
    enableDhcp: optBool(body, 'enable_dhcp') ?? true,
    dnsNameservers: stringList(body, 'dns_nameservers'),
    hostRoutes: [],
  }
  subnet.tags = []
  cloud.state.subnets.push(subnet)
  touch(network)
  return json(201, { subnet: subnetView(cloud, subnet) })
}

function stringList(body: Record<string, unknown>, key: string): string[] {
  const v = body[key]
  if (v === undefined || v === null) return []
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw invalidInput(key, `'${JSON.stringify(v)}' is not a list`)
  return v as string[]
}

function getSubnet(cloud: Cloud, id: string, auth: AuthContext): SubnetRec {
  const s = cloud.state.subnets.find((x) => x.id === id)
  const n = s === undefined ? undefined : cloud.state.networks.find((x) => x.id === s.networkId)
  if (
    s === undefined ||
    n === undefined ||
    !(canSeeNetwork(n, auth) || s.projectId === auth.projectId)
  ) {
    throw neutronError(404, 'SubnetNotFound', `Subnet ${id} could not be found.`)
  }
  return s
}

function updateSubnet(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const subnet = getSubnet(cloud, ctx.params[0] ?? '', auth)
  if (!auth.isAdmin && subnet.projectId !== auth.projectId) throw policyError('rule:update_subnet')
  const body = resourceBody(ctx, 'subnet', [...SUBNET_ATTRS, 'id'])
  rejectReadOnly(body, ['id', 'network_id', 'cidr', 'ip_version', 'tenant_id', 'project_id'])
  const name = optString(body, 'name')
  if (name !== undefined) subnet.name = name
  const description = optString(body, 'description')
  if (description !== undefined) subnet.description = description
  if ('gateway_ip' in body) subnet.gatewayIp = optNullableString(body, 'gateway_ip') ?? null
  if ('allocation_pools' in body)
    subnet.allocationPools = parsePools(body['allocation_pools'], subnet.cidr, subnet.gatewayIp)
  if ('dns_nameservers' in body) subnet.dnsNameservers = stringList(body, 'dns_nameservers')
  subnet.enableDhcp = optBool(body, 'enable_dhcp') ?? subnet.enableDhcp
  touch(subnet)
  return json(200, { subnet: subnetView(cloud, subnet) })
}

function deleteSubnet(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const subnet = getSubnet(cloud, ctx.params[0] ?? '', auth)
  if (!auth.isAdmin && subnet.projectId !== auth.projectId) throw policyError('rule:delete_subnet')
  if (
    cloud.state.ports.some(
      (p) => p.deviceOwner !== 'network:dhcp' && p.fixedIps.some((f) => f.subnetId === subnet.id),
    )
  ) {
    throw neutronError(
      409,
      'SubnetInUse',
      `Unable to complete operation on subnet ${subnet.id}: One or more ports have an IP allocation from this subnet.`,
    )
  }
  cloud.state.subnets = cloud.state.subnets.filter((s) => s.id !== subnet.id)
  return { status: 204 }
}

/** Neutron's network and subnet routes (below `/v2.0`). */
export function networkRoutes(cloud: Cloud): Route[] {
  const commit = (r: Reply) => cloud.commit().then(() => r)
  const sync = (r: Reply) => cloud.commitAndSync().then(() => r)
  return [
    {
      method: 'GET',
      pattern: /^\/v2\.0\/networks$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const items = cloud.state.networks
          .filter((n) => canSeeNetwork(n, auth))
          .map((n) => networkView(cloud, n, auth.isAdmin))
        return listReply(
          ctx,
          {
            collection: 'networks',
            tags: hasTags(cloud),
            filterable: NETWORK_FILTERS,
            notFound: (id) =>
              neutronError(404, 'NetworkNotFound', `Network ${id} could not be found.`),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/networks$/,
      handler: (ctx) => commit(createNetwork(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/networks\/([^/]+)$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        return json(200, {
          network: showFields(
            ctx,
            networkView(cloud, getNetwork(cloud, ctx.params[0] ?? '', auth), auth.isAdmin),
          ),
        })
      },
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/networks\/([^/]+)$/,
      handler: (ctx) => sync(updateNetwork(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/networks\/([^/]+)$/,
      handler: (ctx) => sync(deleteNetwork(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/subnets$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const visible = new Set(
          cloud.state.networks.filter((n) => canSeeNetwork(n, auth)).map((n) => n.id),
        )
        const items = cloud.state.subnets
          .filter((s) => visible.has(s.networkId) || s.projectId === auth.projectId)
          .map((s) => subnetView(cloud, s))
        return listReply(
          ctx,
          {
            collection: 'subnets',
            tags: hasTags(cloud),
            filterable: SUBNET_FILTERS,
            notFound: (id) =>
              neutronError(404, 'SubnetNotFound', `Subnet ${id} could not be found.`),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/subnets$/,
      handler: (ctx) => commit(createSubnet(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/subnets\/([^/]+)$/,
      handler: (ctx) =>
        json(200, {
          subnet: showFields(
            ctx,
            subnetView(cloud, getSubnet(cloud, ctx.params[0] ?? '', caller(ctx))),
          ),
        }),
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/subnets\/([^/]+)$/,
      handler: (ctx) => sync(updateSubnet(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/subnets\/([^/]+)$/,
      handler: (ctx) => sync(deleteSubnet(cloud, ctx)),
    },
  ]
}
