/**
 * Neutron ports: fixed-IP allocation from the subnet pools (and its conflicts), allowed address
 * pairs, security groups and port security, the `fixed_ips=` filters, and the helpers Nova uses
 * to give a server its port.
 */
import type { Cloud } from '../cloud.ts'
import { json, neutronError } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { macAddress } from '../ids.ts'
import { allocate, cidrContains, isIpv4, parseCidr } from './ipam.ts'
import {
  caller,
  ensureDefaultSecurityGroup,
  getNetwork,
  getPort,
  getSecurityGroup,
  invalidInput,
  newStandard,
  optBool,
  optString,
  policyError,
  rejectReadOnly,
  resourceBody,
  touch,
  canSeePort,
  createBody,
  portCreateTags,
} from './common.ts'
import { listReply, showFields } from './query.ts'
import type { View } from './views.ts'
import { hasTags, portView } from './views.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type { AddressPair, FixedIp, NetworkRec, PortRec } from '../types.ts'

const PORT_ATTRS = [
  'name',
  'network_id',
  'admin_state_up',
  'mac_address',
  'fixed_ips',
  'device_id',
  'device_owner',
  'security_groups',
  'allowed_address_pairs',
  'port_security_enabled',
  'description',
  'tags',
  'tenant_id',
  'project_id',
  'binding:host_id',
  'binding:vnic_type',
  'binding:profile',
  'extra_dhcp_opts',
  'numa_affinity_policy',
  'device_profile',
] as const

const PORT_FILTERS = [
  'id',
  'name',
  'network_id',
  'tenant_id',
  'project_id',
  'mac_address',
  'admin_state_up',
  'status',
  'device_id',
  'device_owner',
  'security_groups',
  'description',
  'revision_number',
  'port_security_enabled',
  'binding:host_id',
  'binding:vnic_type',
  'created_at',
  'updated_at',
] as const

const MAX_ADDRESS_PAIRS = 10
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i

/** Addresses in use on a subnet (by any port other than `exceptPort`), plus its gateway. */
function usedOnSubnet(
  cloud: Cloud,
  subnetId: string,
  exceptPort: string | null,
  allowGateway = false,
): Set<string> {
  const used = new Set<string>()
  for (const p of cloud.state.ports) {
    if (p.id === exceptPort) continue
    for (const f of p.fixedIps) if (f.subnetId === subnetId) used.add(f.ipAddress)
  }
  const s = cloud.state.subnets.find((x) => x.id === subnetId)
  if (s?.gatewayIp != null && !allowGateway) used.add(s.gatewayIp)
  return used
}

/** What `allocateFixedIps` is asked for. */
export interface FixedIpRequest {
  /** The `fixed_ips` of the request; undefined: one automatic address. */
  request: unknown
  /** The port the addresses are for (its own do not count as taken), null for a new one. */
  portId: string | null
  /** The port's current addresses, which an update may list again. */
  keep?: FixedIp[]
  /** A router interface may take the subnet's gateway address. */
  allowGateway?: boolean
}

/**
 * Turn a `fixed_ips` request into allocations on `network`, with Neutron's errors: 400 for an
 * address outside the subnet, 409 IpAddressAlreadyAllocated when it is taken, 409
 * IpAddressGenerationFailure when a pool is exhausted. `keep` are the port's current addresses,
 * which an update may list again. `undefined` means "one automatic address".
 */
export function allocateFixedIps(
  cloud: Cloud,
  network: NetworkRec,
  { request, portId, keep = [], allowGateway = false }: FixedIpRequest,
): FixedIp[] {
  const subnets = cloud.state.subnets.filter((s) => s.networkId === network.id)
  if (request === undefined) {
    for (const s of subnets) {
      const ip = allocate(s.allocationPools, usedOnSubnet(cloud, s.id, portId))
      if (ip !== null) return [{ subnetId: s.id, ipAddress: ip }]
    }
    if (subnets.length === 0) return []
    throw neutronError(
      409,
      'IpAddressGenerationFailure',
      `No more IP addresses available on network ${network.id}.`,
    )
  }
  if (!Array.isArray(request))
    throw invalidInput(
      'fixed_ips',
      `Invalid data format for fixed IP: '${JSON.stringify(request)}'`,
    )
  const out: FixedIp[] = []
  for (const item of request) {
    const spec =
      item !== null && typeof item === 'object' && !Array.isArray(item)
        ? (item as Record<string, unknown>)
        : null
    if (spec === null)
      throw invalidInput('fixed_ips', `Invalid data format for fixed IP: '${JSON.stringify(item)}'`)
    const extra = Object.keys(spec).filter((k) => k !== 'subnet_id' && k !== 'ip_address')
    if (extra.length > 0)
      throw invalidInput('fixed_ips', `Unexpected keys supplied: ${extra.join(', ')}`)
    const subnetId = spec['subnet_id']
    const ip = spec['ip_address']
    if (subnetId !== undefined && typeof subnetId !== 'string')
      throw invalidInput('fixed_ips', `'${JSON.stringify(subnetId)}' is not a valid UUID`)
    if (ip !== undefined && (typeof ip !== 'string' || !isIpv4(ip))) {
      throw invalidInput('fixed_ips', `'${String(ip)}' is not a valid IP address`)
    }
    let subnet =
      subnetId === undefined ? undefined : cloud.state.subnets.find((s) => s.id === subnetId)
    if (subnetId !== undefined) {
      if (subnet === undefined)
        throw neutronError(404, 'SubnetNotFound', `Subnet ${subnetId} could not be found.`)
      if (subnet.networkId !== network.id) {
        throw neutronError(
          400,
          'InvalidInput',
          `Invalid input for operation: Failed to create port on network ${network.id}, because fixed_ips included invalid subnet ${subnetId}.`,
        )
      }
    }
    if (ip === undefined) {
      if (subnet === undefined)
        throw invalidInput('fixed_ips', 'Exactly one of subnet_id or ip_address must be specified')
      const taken = usedOnSubnet(cloud, subnet.id, portId)
      for (const f of out) taken.add(f.ipAddress)
      const got = allocate(subnet.allocationPools, taken)
      if (got === null)
        throw neutronError(
          409,
          'IpAddressGenerationFailure',
          `No more IP addresses available on network ${network.id}.`,
        )
      out.push({ subnetId: subnet.id, ipAddress: got })
      continue
    }
    if (subnet === undefined) {
      subnet = subnets.find((s) => cidrContains(s.cidr, ip))
      if (subnet === undefined) {
        throw neutronError(
          400,
          'InvalidIpForNetwork',
          `IP address ${ip} is not a valid IP for any of the subnets on the specified network.`,
        )
      }
    }
    const c = parseCidr(subnet.cidr)
    const isEdge =
      c !== null &&
      c.size > 2 &&
      (ip === intEdge(c.network) || ip === intEdge(c.network + c.size - 1))
    if (!cidrContains(subnet.cidr, ip) || isEdge) {
      throw neutronError(
        400,
        'InvalidIpForSubnet',
        `IP address ${ip} is not a valid IP for the specified subnet.`,
      )
    }
    const mine = keep.some((f) => f.subnetId === subnet.id && f.ipAddress === ip)
    const taken = usedOnSubnet(cloud, subnet.id, portId, allowGateway)
    if (out.some((f) => f.ipAddress === ip) || (!mine && taken.has(ip))) {
      throw neutronError(
        409,
        'IpAddressAlreadyAllocated',
        `IP address ${ip} already allocated in subnet ${subnet.id}`,
      )
    }
    out.push({ subnetId: subnet.id, ipAddress: ip })
  }
  return out
}

function intEdge(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
}

function parsePairs(request: unknown, mac: string): AddressPair[] {
  if (!Array.isArray(request))
    throw invalidInput('allowed_address_pairs', `'${JSON.stringify(request)}' is not a list`)
  if (request.length > MAX_ADDRESS_PAIRS) {
    throw neutronError(
      400,
      'AllowedAddressPairExhausted',
      `The number of allowed address pair exceeds the maximum ${MAX_ADDRESS_PAIRS}.`,
    )
  }
  const out: AddressPair[] = []
  for (const item of request) {
    const spec =
      item !== null && typeof item === 'object' && !Array.isArray(item)
        ? (item as Record<string, unknown>)
        : null
    if (spec === null)
      throw invalidInput('allowed_address_pairs', `'${JSON.stringify(item)}' is not a dict`)
    const extra = Object.keys(spec).filter((k) => k !== 'ip_address' && k !== 'mac_address')
    if (extra.length > 0)
      throw neutronError(400, 'HTTPBadRequest', `Unrecognized attribute(s) '${extra.join(', ')}'`)
    const ip = spec['ip_address']
    if (ip === undefined)
      throw neutronError(
        400,
        'AllowedAddressPairsMissingIP',
        'AllowedAddressPair must contain ip_address',
      )
    if (typeof ip !== 'string' || parseCidr(ip) === null) {
      throw invalidInput('allowed_address_pairs', `'${String(ip)}' is not a valid IP address`)
    }
    const m = spec['mac_address'] ?? mac
    if (typeof m !== 'string' || !MAC.test(m))
      throw invalidInput('allowed_address_pairs', `'${String(m)}' is not a valid MAC address`)
    const pair = { ipAddress: ip, macAddress: m.toLowerCase() }
    if (out.some((p) => p.ipAddress === pair.ipAddress && p.macAddress === pair.macAddress)) {
      throw neutronError(
        400,
        'DuplicateAddressPairInRequest',
        `Request contains duplicate address pair: mac_address ${pair.macAddress} ip_address ${pair.ipAddress}.`,
      )
    }
    out.push(pair)
  }
  return out
}

function parseSecurityGroups(cloud: Cloud, request: unknown, auth: AuthContext): string[] {
  if (request === null) return []
  if (!Array.isArray(request))
    throw invalidInput('security_groups', `'${JSON.stringify(request)}' is not a list`)
  const out: string[] = []
  for (const id of request) {
    if (typeof id !== 'string' || !UUID.test(id))
      throw invalidInput('security_groups', `'${String(id)}' is not a valid UUID`)
    const g = getSecurityGroup(cloud, id, auth)
    if (!out.includes(g.id)) out.push(g.id)
  }
  return out
}

/** The status a port shows: router ports and ports of a running server are ACTIVE. */
export function refreshPortStatus(cloud: Cloud, p: PortRec): void {
  const server = cloud.state.servers.find((s) => s.id === p.deviceId)
  p.status = p.deviceOwner.startsWith('network:') || server?.status === 'ACTIVE' ? 'ACTIVE' : 'DOWN'
}

/** Options of an internal port creation (Nova's, the seed's, the router's). */
export interface NewPort {
  network: NetworkRec
  projectId: string
  name?: string
  fixedIps?: unknown
  securityGroups?: string[]
  deviceId?: string
  deviceOwner?: string
  portSecurityEnabled?: boolean
}

/** Create a port (already authorised and validated by the caller), allocating its addresses. */
export function createPortRecord(cloud: Cloud, o: NewPort): PortRec {
  const std = newStandard(o.projectId, o.name ?? '', '')
  const owner = o.deviceOwner ?? ''
  const fixedIps = allocateFixedIps(cloud, o.network, {
    request: o.fixedIps,
    portId: std.id,
    allowGateway: owner === 'network:router_interface',
  })
  const portSecurity = o.portSecurityEnabled ?? o.network.portSecurityEnabled
  let groups = o.securityGroups
  if (groups === undefined) {
    groups =
      portSecurity && !owner.startsWith('network:') && fixedIps.length > 0
        ? [ensureDefaultSecurityGroup(cloud, o.projectId).id]
        : []
  }
  const port: PortRec = {
    ...std,
    networkId: o.network.id,
    macAddress: macAddress(),
    fixedIps,
    allowedAddressPairs: [],
    securityGroups: groups,
    portSecurityEnabled: portSecurity,
    deviceId: o.deviceId ?? '',
    deviceOwner: owner,
    adminStateUp: true,
    status: 'DOWN',
    bindingHostId: '',
    vnicType: 'normal',
  }
  refreshPortStatus(cloud, port)
  cloud.state.ports.push(port)
  return port
}

/** Remove a port and drop the floating IPs that pointed at it (Neutron disassociates them). */
export function deletePortRecord(cloud: Cloud, id: string): void {
  cloud.state.ports = cloud.state.ports.filter((p) => p.id !== id)
  for (const f of cloud.state.floatingIps) {
    if (f.portId === id) {
      f.portId = null
      f.fixedIpAddress = null
      f.routerId = null
      touch(f)
    }
  }
}

function createPort(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'port', PORT_ATTRS)
  const netId = optString(body, 'network_id')
  if (netId === undefined) throw invalidInput('network_id', `'None' is not a valid UUID`)
  const network = getNetwork(cloud, netId, auth)
  if (!auth.isAdmin && network.projectId !== auth.projectId && !network.shared) {
    // Neutron checks network ownership in its API layer, before policy (ownership_validation.py).
    throw neutronError(
      403,
      'HTTPForbidden',
      `Tenant ${auth.projectId} not allowed to create port on this network`,
    )
  }
  const projectId = optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? auth.projectId
  if (projectId !== auth.projectId && !auth.isAdmin) throw policyError('rule:create_port')
  for (const k of ['binding:host_id', 'binding:profile'] as const)
    if (k in body && !auth.isAdmin)
      throw policyError(`(rule:create_port and rule:create_port:${k})`)
  const portSecurity = optBool(body, 'port_security_enabled') ?? network.portSecurityEnabled
  const owner = optString(body, 'device_owner') ?? ''
  const mac = optString(body, 'mac_address')
  if (mac !== undefined) {
    if (!MAC.test(mac)) throw invalidInput('mac_address', `'${mac}' is not a valid MAC address`)
    if (
      cloud.state.ports.some(
        (p) => p.networkId === network.id && p.macAddress === mac.toLowerCase(),
      )
    ) {
      throw neutronError(
        409,
        'MacAddressInUse',
        `Unable to complete operation for network ${network.id}. The mac address ${mac} is in use.`,
      )
    }
  }
  let groups: string[] | undefined
  if ('security_groups' in body) groups = parseSecurityGroups(cloud, body['security_groups'], auth)
  const pairsRaw = body['allowed_address_pairs']
  if (!portSecurity) {
    if (groups !== undefined && groups.length > 0) {
      throw neutronError(
        400,
        'PortSecurityAndIPRequiredForSecurityGroups',
        'Port security must be enabled and port must have an IP address in order to use security groups.',
      )
    }
    if (Array.isArray(pairsRaw) && pairsRaw.length > 0) {
      throw neutronError(
        409,
        'AddressPairAndPortSecurityRequired',
        'Port Security must be enabled in order to have allowed address pairs on a port.',
      )
    }
  }
  const tags = portCreateTags(cloud, body)
  const port = createPortRecord(cloud, {
    network,
    projectId,
    name: optString(body, 'name') ?? '',
    fixedIps: body['fixed_ips'],
    ...(groups === undefined ? {} : { securityGroups: groups }),
    deviceId: optString(body, 'device_id') ?? '',
    deviceOwner: owner,
    portSecurityEnabled: portSecurity,
  })
  if (portSecurity && port.fixedIps.length === 0 && groups !== undefined && groups.length > 0) {
    deletePortRecord(cloud, port.id)
    throw neutronError(
      400,
      'PortSecurityAndIPRequiredForSecurityGroups',
      'Port security must be enabled and port must have an IP address in order to use security groups.',
    )
  }
  if (mac !== undefined) port.macAddress = mac.toLowerCase()
  if (pairsRaw !== undefined) port.allowedAddressPairs = parsePairs(pairsRaw, port.macAddress)
  port.description = optString(body, 'description') ?? ''
  port.adminStateUp = optBool(body, 'admin_state_up') ?? true
  port.vnicType = optString(body, 'binding:vnic_type') ?? 'normal'
  port.bindingHostId = optString(body, 'binding:host_id') ?? ''
  if (tags !== undefined) port.tags = tags
  return json(201, { port: portView(cloud, port, auth.isAdmin) })
}

function updatePort(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const port = getPort(cloud, ctx.params[0] ?? '', auth)
  const body = resourceBody(ctx, 'port', [...PORT_ATTRS, 'id', 'status'])
  rejectReadOnly(body, ['network_id', 'id', 'tenant_id', 'project_id', 'status'])
  if (!auth.isAdmin && port.projectId !== auth.projectId) throw policyError('rule:update_port')
  // Neutron's default policy: only an admin may change a port's MAC (port security is built on it).
  if ('mac_address' in body && !auth.isAdmin)
    throw policyError('(rule:update_port and rule:update_port:mac_address)')
  const network = cloud.state.networks.find((n) => n.id === port.networkId)
  const portSecurity = optBool(body, 'port_security_enabled') ?? port.portSecurityEnabled
  const groups =
    'security_groups' in body
      ? parseSecurityGroups(cloud, body['security_groups'], auth)
      : port.securityGroups
  const pairs =
    'allowed_address_pairs' in body
      ? body['allowed_address_pairs'] === null
        ? []
        : parsePairs(body['allowed_address_pairs'], port.macAddress)
      : port.allowedAddressPairs
  if (!portSecurity) {
    if (groups.length > 0) {
      throw neutronError(
        409,
        'PortSecurityPortHasSecurityGroup',
        'Port has security group associated. Cannot disable port security or IP address until security group is removed.',
      )
    }
    if (pairs.length > 0) {
      throw neutronError(
        409,
        'AddressPairAndPortSecurityRequired',
        'Port Security must be enabled in order to have allowed address pairs on a port.',
      )
    }
  }
  let fixedIps = port.fixedIps
  if ('fixed_ips' in body && network !== undefined)
    fixedIps = allocateFixedIps(cloud, network, {
      request: body['fixed_ips'] ?? [],
      portId: port.id,
      keep: port.fixedIps,
    })
  if (portSecurity && groups.length > 0 && fixedIps.length === 0) {
    throw neutronError(
      400,
      'PortSecurityAndIPRequiredForSecurityGroups',
      'Port security must be enabled and port must have an IP address in order to use security groups.',
    )
  }
  const mac = optString(body, 'mac_address')
  if (mac !== undefined && mac.toLowerCase() !== port.macAddress) {
    if (!MAC.test(mac)) throw invalidInput('mac_address', `'${mac}' is not a valid MAC address`)
    if (port.deviceOwner.startsWith('compute:')) {
      throw neutronError(
        409,
        'PortBound',
        `Unable to complete operation on port ${port.id}, port is already bound, port type: other, old_mac ${port.macAddress}, new_mac ${mac}.`,
      )
    }
    port.macAddress = mac.toLowerCase()
  }
  port.fixedIps = fixedIps
  port.securityGroups = groups
  port.allowedAddressPairs = pairs
  port.portSecurityEnabled = portSecurity
  const name = optString(body, 'name')
  if (name !== undefined) port.name = name
  const description = optString(body, 'description')
  if (description !== undefined) port.description = description
  const admin = optBool(body, 'admin_state_up')
  if (admin !== undefined) port.adminStateUp = admin
  const deviceId = optString(body, 'device_id')
  if (deviceId !== undefined) port.deviceId = deviceId
  const owner = optString(body, 'device_owner')
  if (owner !== undefined) port.deviceOwner = owner
  const vnic = optString(body, 'binding:vnic_type')
  if (vnic !== undefined) port.vnicType = vnic
  // A floating IP follows its fixed IP; if that address left the port, Neutron disassociates it.
  for (const f of cloud.state.floatingIps) {
    if (f.portId === port.id && !port.fixedIps.some((x) => x.ipAddress === f.fixedIpAddress)) {
      f.portId = null
      f.fixedIpAddress = null
      f.routerId = null
      touch(f)
    }
  }
  refreshPortStatus(cloud, port)
  touch(port)
  return json(200, { port: portView(cloud, port, auth.isAdmin) })
}

function deletePort(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const port = getPort(cloud, ctx.params[0] ?? '', auth)
  if (!auth.isAdmin && port.projectId !== auth.projectId) throw policyError('rule:delete_port')
  if (
    port.deviceOwner === 'network:router_interface' ||
    port.deviceOwner === 'network:router_gateway'
  ) {
    throw neutronError(
      409,
      'ServicePortInUse',
      `Port ${port.id} cannot be deleted directly via the port API: has device owner ${port.deviceOwner}.`,
    )
  }
  deletePortRecord(cloud, port.id)
  for (const s of cloud.state.servers) {
    s.portIds = s.portIds.filter((id) => id !== port.id)
    s.ownedPortIds = s.ownedPortIds.filter((id) => id !== port.id)
  }
  return { status: 204 }
}

/** `fixed_ips=ip_address=X`, `fixed_ips=subnet_id=Y`, `fixed_ips=ip_address_substr=Z`; one allocation must match all. */
function fixedIpsFilter(item: View, values: string[]): boolean {
  const want: Record<string, string[]> = { ip_address: [], subnet_id: [], ip_address_substr: [] }
  for (const v of values) {
    const eq = v.indexOf('=')
    const key = eq < 0 ? '' : v.slice(0, eq)
    const list = want[key]
    if (list === undefined) throw invalidInput('fixed_ips', `Invalid fixed_ips filter '${v}'`)
    list.push(v.slice(eq + 1))
  }
  const ips = Array.isArray(item['fixed_ips'])
    ? (item['fixed_ips'] as { ip_address: string; subnet_id: string }[])
    : []
  return ips.some(
    (f) =>
      (want['ip_address']?.length === 0 || want['ip_address']?.includes(f.ip_address)) &&
      (want['subnet_id']?.length === 0 || want['subnet_id']?.includes(f.subnet_id)) &&
      (want['ip_address_substr']?.length === 0 ||
        want['ip_address_substr']?.some((s) => f.ip_address.includes(s))),
  )
}

/** Neutron's port routes (below `/v2.0`). */
export function portRoutes(cloud: Cloud): Route[] {
  const sync = (r: Reply) => cloud.commitAndSync().then(() => r)
  return [
    {
      method: 'GET',
      pattern: /^\/v2\.0\/ports$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const items = cloud.state.ports
          .filter((p) => canSeePort(cloud, p, auth))
          .map((p) => portView(cloud, p, auth.isAdmin))
        return listReply(
          ctx,
          {
            collection: 'ports',
            tags: hasTags(cloud),
            filterable: PORT_FILTERS,
            custom: { fixed_ips: fixedIpsFilter },
            notFound: (id) => neutronError(404, 'PortNotFound', `Port ${id} could not be found.`),
          },
          items,
        )
      },
    },
    { method: 'POST', pattern: /^\/v2\.0\/ports$/, handler: (ctx) => sync(createPort(cloud, ctx)) },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/ports\/([^/]+)$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        return json(200, {
          port: showFields(
            ctx,
            portView(cloud, getPort(cloud, ctx.params[0] ?? '', auth), auth.isAdmin),
          ),
        })
      },
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/ports\/([^/]+)$/,
      handler: (ctx) => sync(updatePort(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/ports\/([^/]+)$/,
      handler: (ctx) => sync(deletePort(cloud, ctx)),
    },
  ]
}
