/**
 * Neutron L3 as far as floating IPs need it: routers (external gateway, interfaces) and floating
 * IPs (allocation from the external network, association to a port behind a router).
 */
import type { Cloud } from '../cloud.ts'
import { json, neutronError, neutronErrorType } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { asObject } from '../http.ts'
import {
  caller,
  getNetwork,
  getPort,
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
import { createPortRecord, deletePortRecord } from './ports.ts'
import { listReply, showFields } from './query.ts'
import { floatingIpView, hasTags, routerView } from './views.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type { FloatingIpRec, NetworkRec, PortRec, RouterRec } from '../types.ts'

const ROUTER_ATTRS = [
  'name',
  'admin_state_up',
  'external_gateway_info',
  'description',
  'tenant_id',
  'project_id',
  'tags',
  'distributed',
  'ha',
  'availability_zone_hints',
  'flavor_id',
  'routes',
] as const
const ROUTER_FILTERS = [
  'id',
  'name',
  'admin_state_up',
  'status',
  'tenant_id',
  'project_id',
  'description',
  'revision_number',
  'created_at',
  'updated_at',
] as const
const FIP_ATTRS = [
  'floating_network_id',
  'port_id',
  'fixed_ip_address',
  'floating_ip_address',
  'subnet_id',
  'description',
  'tenant_id',
  'project_id',
  'tags',
  'qos_policy_id',
] as const
const FIP_FILTERS = [
  'id',
  'floating_ip_address',
  'floating_network_id',
  'router_id',
  'port_id',
  'fixed_ip_address',
  'status',
  'tenant_id',
  'project_id',
  'description',
  'revision_number',
  'created_at',
  'updated_at',
] as const

function badRequest(resource: string, msg: string): ReturnType<typeof neutronError> {
  return neutronError(400, 'BadRequest', `Bad ${resource} request: ${msg}.`)
}

function getRouter(cloud: Cloud, id: string, auth: AuthContext): RouterRec {
  const r = cloud.state.routers.find((x) => x.id === id)
  if (r === undefined || (!auth.isAdmin && r.projectId !== auth.projectId))
    throw neutronError(404, 'RouterNotFound', `Router ${id} could not be found`)
  return r
}

function externalNetwork(
  cloud: Cloud,
  id: string,
  auth: AuthContext,
  resource: string,
): NetworkRec {
  const net = getNetwork(cloud, id, auth)
  if (!net.external) {
    throw badRequest(
      resource,
      resource === 'router'
        ? `Network ${id} is not an external network`
        : `Network ${id} is not a valid external network`,
    )
  }
  return net
}

/** Create (or replace) a router's gateway port on an external network. */
export function setGateway(
  cloud: Cloud,
  router: RouterRec,
  network: NetworkRec,
  fixedIps: unknown,
  enableSnat: boolean,
): void {
  clearGateway(cloud, router)
  const port = createPortRecord(cloud, {
    network,
    projectId: '',
    fixedIps,
    deviceId: router.id,
    deviceOwner: 'network:router_gateway',
  })
  router.gateway = { networkId: network.id, enableSnat, fixedIps: port.fixedIps }
}

function clearGateway(cloud: Cloud, router: RouterRec): void {
  for (const p of cloud.state.ports.filter(
    (x) => x.deviceId === router.id && x.deviceOwner === 'network:router_gateway',
  )) {
    deletePortRecord(cloud, p.id)
  }
  router.gateway = null
}

function applyGatewayInfo(
  cloud: Cloud,
  router: RouterRec,
  raw: unknown,
  auth: AuthContext,
  action: string,
): void {
  if (raw === null || (asObject(raw) !== null && Object.keys(asObject(raw) ?? {}).length === 0)) {
    if (router.gateway !== null && cloud.state.floatingIps.some((f) => f.routerId === router.id)) {
      throw neutronError(
        409,
        'RouterExternalGatewayInUseByFloatingIp',
        `Gateway cannot be updated for router ${router.id}, since a gateway to external network ${router.gateway.networkId} is required by one or more floating IPs.`,
      )
    }
    clearGateway(cloud, router)
    return
  }
  const info = asObject(raw)
  if (info === null)
    throw invalidInput('external_gateway_info', `'${JSON.stringify(raw)}' is not a dictionary`)
  if (!auth.isAdmin) {
    for (const k of ['external_fixed_ips', 'enable_snat']) {
      if (k in info)
        throw policyError(
          `(rule:${action} and rule:${action}:external_gateway_info and rule:${action}:external_gateway_info:${k})`,
        )
    }
  }
  const netId = info['network_id']
  if (typeof netId !== 'string')
    throw invalidInput(
      'external_gateway_info',
      `'${JSON.stringify(raw)}' does not contain network_id`,
    )
  const network = externalNetwork(cloud, netId, auth, 'router')
  const snat = typeof info['enable_snat'] === 'boolean' ? info['enable_snat'] : true
  setGateway(cloud, router, network, info['external_fixed_ips'] ?? undefined, snat)
}

function createRouter(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'router', ROUTER_ATTRS)
  for (const k of ['distributed', 'ha', 'flavor_id'] as const) {
    if (k in body && body[k] !== null && body[k] !== false && !auth.isAdmin)
      throw policyError(`(rule:create_router and rule:create_router:${k})`)
  }
  const projectId = optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? auth.projectId
  if (projectId !== auth.projectId && !auth.isAdmin) throw policyError('rule:create_router')
  const router: RouterRec = {
    ...newStandard(projectId, optString(body, 'name') ?? '', optString(body, 'description') ?? ''),
    adminStateUp: optBool(body, 'admin_state_up') ?? true,
    gateway: null,
  }
  router.tags = []
  if (body['external_gateway_info'] !== undefined)
    applyGatewayInfo(cloud, router, body['external_gateway_info'], auth, 'create_router')
  cloud.state.routers.push(router)
  return json(201, { router: routerView(cloud, router, auth.isAdmin) })
}

function updateRouter(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const router = getRouter(cloud, ctx.params[0] ?? '', auth)
  const body = resourceBody(ctx, 'router', [...ROUTER_ATTRS, 'id', 'status'])
  rejectReadOnly(body, ['id', 'tenant_id', 'project_id', 'status'])
  const name = optString(body, 'name')
  if (name !== undefined) router.name = name
  const description = optString(body, 'description')
  if (description !== undefined) router.description = description
  router.adminStateUp = optBool(body, 'admin_state_up') ?? router.adminStateUp
  if ('external_gateway_info' in body)
    applyGatewayInfo(cloud, router, body['external_gateway_info'], auth, 'update_router')
  touch(router)
  return json(200, { router: routerView(cloud, router, auth.isAdmin) })
}

function interfacePorts(cloud: Cloud, router: RouterRec): PortRec[] {
  return cloud.state.ports.filter(
    (p) => p.deviceId === router.id && p.deviceOwner === 'network:router_interface',
  )
}

function deleteRouter(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const router = getRouter(cloud, ctx.params[0] ?? '', auth)
  if (interfacePorts(cloud, router).length > 0)
    throw neutronError(409, 'RouterInUse', `Router ${router.id} still has ports`)
  clearGateway(cloud, router)
  cloud.state.routers = cloud.state.routers.filter((r) => r.id !== router.id)
  return { status: 204 }
}

function interfaceInfo(router: RouterRec, port: PortRec): Record<string, unknown> {
  const subnetIds = port.fixedIps.map((f) => f.subnetId)
  return {
    id: router.id,
    tenant_id: router.projectId,
    project_id: router.projectId,
    port_id: port.id,
    network_id: port.networkId,
    subnet_id: subnetIds[0] ?? null,
    subnet_ids: subnetIds,
  }
}

/** Attach a router to a subnet through a new port that owns the subnet's gateway address. */
export function addInterface(
  cloud: Cloud,
  router: RouterRec,
  body: Record<string, unknown>,
  auth: AuthContext,
): PortRec {
  const subnetId = body['subnet_id']
  const portId = body['port_id']
  if ((subnetId === undefined) === (portId === undefined))
    throw badRequest('router', 'Either subnet_id or port_id must be specified')
  if (typeof portId === 'string') {
    const port = getPort(cloud, portId, auth)
    if (port.deviceId !== '')
      throw neutronError(
        409,
        'PortInUse',
        `Unable to complete operation on port ${port.id} for network ${port.networkId}. Port already has an attached device ${port.deviceId}.`,
      )
    port.deviceId = router.id
    port.deviceOwner = 'network:router_interface'
    port.securityGroups = []
    port.status = 'ACTIVE'
    touch(port)
    return port
  }
  const subnet = cloud.state.subnets.find((s) => s.id === subnetId)
  if (subnet === undefined)
    throw neutronError(404, 'SubnetNotFound', `Subnet ${String(subnetId)} could not be found.`)
  if (subnet.gatewayIp === null)
    throw badRequest('router', 'Subnet for router interface must have a gateway IP')
  if (interfacePorts(cloud, router).some((p) => p.fixedIps.some((f) => f.subnetId === subnet.id))) {
    throw badRequest('router', `Router already has a port on subnet ${subnet.id}`)
  }
  const network = cloud.state.networks.find((n) => n.id === subnet.networkId)
  if (network === undefined)
    throw neutronError(404, 'NetworkNotFound', `Network ${subnet.networkId} could not be found.`)
  return createPortRecord(cloud, {
    network,
    projectId: router.projectId,
    fixedIps: [{ subnet_id: subnet.id, ip_address: subnet.gatewayIp }],
    deviceId: router.id,
    deviceOwner: 'network:router_interface',
  })
}

function removeInterface(cloud: Cloud, router: RouterRec, body: Record<string, unknown>): PortRec {
  const subnetId = body['subnet_id']
  const portId = body['port_id']
  const port = interfacePorts(cloud, router).find(
    (p) => p.id === portId || p.fixedIps.some((f) => f.subnetId === subnetId),
  )
  if (port === undefined) {
    if (typeof portId === 'string')
      throw neutronError(
        404,
        'RouterInterfaceNotFound',
        `Router ${router.id} does not have an interface with id ${portId}`,
      )
    throw neutronError(
      404,
      'RouterInterfaceNotFoundForSubnet',
      `Router ${router.id} has no interface on subnet ${String(subnetId)}`,
    )
  }
  const subnets = new Set(port.fixedIps.map((f) => f.subnetId))
  const needed = cloud.state.floatingIps.some((f) => {
    const p = cloud.state.ports.find((x) => x.id === f.portId)
    return (
      f.routerId === router.id && p !== undefined && p.fixedIps.some((x) => subnets.has(x.subnetId))
    )
  })
  if (needed) {
    throw neutronError(
      409,
      'RouterInterfaceInUseByFloatingIP',
      `Router interface for subnet ${[...subnets][0] ?? ''} on router ${router.id} cannot be deleted, as it is required by one or more floating IPs.`,
    )
  }
  deletePortRecord(cloud, port.id)
  return port
}

/** The router that connects a subnet to an external network, if any. */
function routerFor(cloud: Cloud, subnetId: string, externalNetId: string): RouterRec | undefined {
  return cloud.state.routers.find(
    (r) =>
      r.gateway?.networkId === externalNetId &&
      cloud.state.ports.some(
        (p) =>
          p.deviceId === r.id &&
          p.deviceOwner === 'network:router_interface' &&
          p.fixedIps.some((f) => f.subnetId === subnetId),
      ),
  )
}

function associate(
  cloud: Cloud,
  fip: FloatingIpRec,
  portId: string,
  fixedIp: string | undefined,
  auth: AuthContext,
): void {
  const port = getPort(cloud, portId, auth)
  if (port.deviceOwner.startsWith('network:')) {
    throw badRequest(
      'floatingip',
      `Port ${port.id} has owner ${port.deviceOwner} and therefore cannot be assigned a floating IP`,
    )
  }
  const ip =
    fixedIp === undefined ? port.fixedIps[0] : port.fixedIps.find((f) => f.ipAddress === fixedIp)
  if (ip === undefined) {
    throw badRequest(
      'floatingip',
      fixedIp === undefined
        ? `Port ${port.id} does not have any IP addresses`
        : `Port ${port.id} does not have fixed ip ${fixedIp}`,
    )
  }
  const router = routerFor(cloud, ip.subnetId, fip.floatingNetworkId)
  if (router === undefined) {
    throw neutronError(
      404,
      'ExternalGatewayForFloatingIPNotFound',
      `External network ${fip.floatingNetworkId} is not reachable from subnet ${ip.subnetId}.  Therefore, cannot associate Port ${port.id} with a Floating IP.`,
    )
  }
  const other = cloud.state.floatingIps.find(
    (f) =>
      f.id !== fip.id &&
      f.portId === port.id &&
      f.fixedIpAddress === ip.ipAddress &&
      f.floatingNetworkId === fip.floatingNetworkId,
  )
  if (other !== undefined) {
    throw neutronError(
      409,
      'FloatingIPPortAlreadyAssociated',
      `Cannot associate floating IP ${fip.floatingIpAddress} (${fip.id}) with port ${port.id} using fixed IP ${ip.ipAddress}, as that fixed IP already has a floating IP on external network ${fip.floatingNetworkId}.`,
    )
  }
  fip.portId = port.id
  fip.fixedIpAddress = ip.ipAddress
  fip.routerId = router.id
}

function createFloatingIp(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const body = createBody(cloud, ctx, 'floatingip', FIP_ATTRS)
  const netId = optString(body, 'floating_network_id')
  if (netId === undefined) throw invalidInput('floating_network_id', `'None' is not a valid UUID`)
  if ('floating_ip_address' in body && !auth.isAdmin)
    throw policyError('(rule:create_floatingip and rule:create_floatingip:floating_ip_address)')
  const projectId = optString(body, 'project_id') ?? optString(body, 'tenant_id') ?? auth.projectId
  if (projectId !== auth.projectId && !auth.isAdmin) throw policyError('rule:create_floatingip')
  const network = externalNetwork(cloud, netId, auth, 'floatingip')
  const std = newStandard(projectId, '', optString(body, 'description') ?? '')
  const address = optString(body, 'floating_ip_address')
  const subnetId = optString(body, 'subnet_id')
  const request =
    address !== undefined
      ? [{ ip_address: address, ...(subnetId === undefined ? {} : { subnet_id: subnetId }) }]
      : subnetId !== undefined
        ? [{ subnet_id: subnetId }]
        : undefined
  let port: PortRec
  try {
    port = createPortRecord(cloud, {
      network,
      projectId: '',
      fixedIps: request,
      deviceId: std.id,
      deviceOwner: 'network:floatingip',
    })
  } catch (e) {
    if (neutronErrorType(e) === 'IpAddressGenerationFailure') {
      throw neutronError(
        400,
        'ExternalIpAddressExhausted',
        `Unable to find any IP address on external network ${network.id}.`,
      )
    }
    throw e
  }
  const first = port.fixedIps[0]
  if (first === undefined) {
    deletePortRecord(cloud, port.id)
    throw neutronError(
      400,
      'ExternalIpAddressExhausted',
      `Unable to find any IP address on external network ${network.id}.`,
    )
  }
  const fip: FloatingIpRec = {
    id: std.id,
    description: std.description,
    projectId,
    tags: [],
    createdAt: std.createdAt,
    updatedAt: std.updatedAt,
    revisionNumber: std.revisionNumber,
    floatingNetworkId: network.id,
    floatingIpAddress: first.ipAddress,
    portId: null,
    fixedIpAddress: null,
    routerId: null,
  }
  const portId = optNullableString(body, 'port_id')
  try {
    if (typeof portId === 'string')
      associate(cloud, fip, portId, optString(body, 'fixed_ip_address'), auth)
  } catch (e) {
    deletePortRecord(cloud, port.id)
    throw e
  }
  cloud.state.floatingIps.push(fip)
  return json(201, { floatingip: floatingIpView(cloud, fip) })
}

function getFloatingIp(cloud: Cloud, id: string, auth: AuthContext): FloatingIpRec {
  const f = cloud.state.floatingIps.find((x) => x.id === id)
  if (f === undefined || (!auth.isAdmin && f.projectId !== auth.projectId)) {
    throw neutronError(404, 'FloatingIPNotFound', `Floating IP ${id} could not be found`)
  }
  return f
}

function updateFloatingIp(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const fip = getFloatingIp(cloud, ctx.params[0] ?? '', auth)
  const body = resourceBody(ctx, 'floatingip', [...FIP_ATTRS, 'id'])
  rejectReadOnly(body, [
    'id',
    'floating_network_id',
    'floating_ip_address',
    'tenant_id',
    'project_id',
  ])
  const description = optString(body, 'description')
  if (description !== undefined) fip.description = description
  if ('port_id' in body) {
    const portId = optNullableString(body, 'port_id') ?? null
    if (portId === null) {
      fip.portId = null
      fip.fixedIpAddress = null
      fip.routerId = null
    } else {
      associate(cloud, fip, portId, optString(body, 'fixed_ip_address'), auth)
    }
  }
  touch(fip)
  return json(200, { floatingip: floatingIpView(cloud, fip) })
}

function deleteFloatingIp(cloud: Cloud, ctx: Ctx): Reply {
  const auth = caller(ctx)
  const fip = getFloatingIp(cloud, ctx.params[0] ?? '', auth)
  cloud.state.floatingIps = cloud.state.floatingIps.filter((f) => f.id !== fip.id)
  for (const p of cloud.state.ports.filter(
    (x) => x.deviceId === fip.id && x.deviceOwner === 'network:floatingip',
  ))
    deletePortRecord(cloud, p.id)
  return { status: 204 }
}

/** Neutron's router and floating-IP routes (below `/v2.0`). */
export function l3Routes(cloud: Cloud): Route[] {
  const commit = (r: Reply) => cloud.commit().then(() => r)
  const sync = (r: Reply) => cloud.commitAndSync().then(() => r)
  const iface = (ctx: Ctx, add: boolean): Reply => {
    const auth = caller(ctx)
    const router = getRouter(cloud, ctx.params[0] ?? '', auth)
    const body = asObject(ctx.body)
    if (body === null) throw neutronError(400, 'HTTPBadRequest', 'Resource body required')
    const port = add
      ? addInterface(cloud, router, body, auth)
      : removeInterface(cloud, router, body)
    touch(router)
    return json(200, interfaceInfo(router, port))
  }
  return [
    {
      method: 'GET',
      pattern: /^\/v2\.0\/routers$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const items = cloud.state.routers
          .filter((r) => auth.isAdmin || r.projectId === auth.projectId)
          .map((r) => routerView(cloud, r, auth.isAdmin))
        return listReply(
          ctx,
          {
            collection: 'routers',
            tags: hasTags(cloud),
            filterable: ROUTER_FILTERS,
            notFound: (id) =>
              neutronError(404, 'RouterNotFound', `Router ${id} could not be found`),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/routers$/,
      handler: (ctx) => commit(createRouter(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/routers\/([^/]+)$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        return json(200, {
          router: showFields(
            ctx,
            routerView(cloud, getRouter(cloud, ctx.params[0] ?? '', auth), auth.isAdmin),
          ),
        })
      },
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/routers\/([^/]+)$/,
      handler: (ctx) => sync(updateRouter(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/routers\/([^/]+)$/,
      handler: (ctx) => sync(deleteRouter(cloud, ctx)),
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/routers\/([^/]+)\/add_router_interface$/,
      handler: (ctx) => sync(iface(ctx, true)),
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/routers\/([^/]+)\/remove_router_interface$/,
      handler: (ctx) => sync(iface(ctx, false)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/floatingips$/,
      handler: (ctx) => {
        const auth = caller(ctx)
        const items = cloud.state.floatingIps
          .filter((f) => auth.isAdmin || f.projectId === auth.projectId)
          .map((f) => floatingIpView(cloud, f))
        return listReply(
          ctx,
          {
            collection: 'floatingips',
            tags: hasTags(cloud),
            filterable: FIP_FILTERS,
            notFound: (id) =>
              neutronError(404, 'FloatingIPNotFound', `Floating IP ${id} could not be found`),
          },
          items,
        )
      },
    },
    {
      method: 'POST',
      pattern: /^\/v2\.0\/floatingips$/,
      handler: (ctx) => sync(createFloatingIp(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/floatingips\/([^/]+)$/,
      handler: (ctx) =>
        json(200, {
          floatingip: showFields(
            ctx,
            floatingIpView(cloud, getFloatingIp(cloud, ctx.params[0] ?? '', caller(ctx))),
          ),
        }),
    },
    {
      method: 'PUT',
      pattern: /^\/v2\.0\/floatingips\/([^/]+)$/,
      handler: (ctx) => sync(updateFloatingIp(cloud, ctx)),
    },
    {
      method: 'DELETE',
      pattern: /^\/v2\.0\/floatingips\/([^/]+)$/,
      handler: (ctx) => sync(deleteFloatingIp(cloud, ctx)),
    },
  ]
}
