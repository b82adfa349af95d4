/** Nova's server create: validate like Nova, then make or bind the ports at once. */
import type { Cloud } from '../cloud.ts'
import { errorText } from '../cloud.ts'
import { asObject, json, novaError, neutronErrorType } from '../http.ts'
import type { Ctx, Reply } from '../http.ts'
import { isoSeconds, secret, uuid } from '../ids.ts'
import { canSeeNetwork, canSeePort, ensureDefaultSecurityGroup } from '../neutron/common.ts'
import { createPortRecord, refreshPortStatus } from '../neutron/ports.ts'
import { atLeast } from './versions.ts'
import type { Microversion } from './versions.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type { NetworkRec, PortRec, ServerRec } from '../types.ts'

/** The caller of a Nova route (routes are only reached with a project-scoped token). */
export function who(ctx: Ctx): AuthContext & { projectId: string } {
  const auth = ctx.auth
  if (auth === null || auth.projectId === null)
    throw novaError(401, 'The request you have made requires authentication.')
  return { ...auth, projectId: auth.projectId }
}

/** Nova's 400 for a body that fails its JSON schema. */
export function invalid(
  field: string,
  value: unknown,
  reason: string,
): ReturnType<typeof novaError> {
  return novaError(
    400,
    `Invalid input for field/attribute ${field}. Value: ${JSON.stringify(value)}. ${reason}`,
  )
}

/** A JSON value as Python's repr() shows it, as Nova's schema errors do: `{'tags': ['x']}`. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None'
  if (v === true) return 'True'
  if (v === false) return 'False'
  if (typeof v === 'number') return String(v)
  if (typeof v === 'string') {
    const body = v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
    return v.includes("'") && !v.includes('"') ? `"${body}"` : `'${body.replace(/'/g, "\\'")}'`
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`
  if (typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`)
      .join(', ')}}`
  return String(v)
}

/** `http://.../flavors/2` or `2` -> `2`. */
function refId(ref: unknown): string | null {
  if (typeof ref === 'number') return String(ref)
  if (typeof ref !== 'string' || ref === '') return null
  return ref.replace(/\/+$/, '').split('/').pop() ?? null
}

function hostnameOf(name: string): string {
  const h = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
  return h === '' ? 'server' : h
}

interface NicRequest {
  network?: NetworkRec
  port?: PortRec
  fixedIp?: string
}

function parseNetworks(
  cloud: Cloud,
  raw: unknown,
  auth: AuthContext & { projectId: string },
  v: Microversion,
): NicRequest[] {
  if (raw === undefined) {
    if (atLeast(v, 37)) throw invalid('server', '...', "'networks' is a required property")
    raw = 'auto'
  }
  if (raw === 'none') return []
  if (raw === 'auto') {
    const own = cloud.state.networks.filter(
      (n) => !n.external && (n.projectId === auth.projectId || n.shared),
    )
    if (own.length === 0)
      throw novaError(
        400,
        `Unable to automatically allocate a network for project ${auth.projectId}`,
      )
    if (own.length > 1)
      throw novaError(
        409,
        'Multiple possible networks found, use a Network ID to be more specific.',
      )
    return [{ network: own[0] as NetworkRec }]
  }
  if (!Array.isArray(raw))
    throw invalid('networks', raw, `${JSON.stringify(raw)} is not of type 'array'`)
  return raw.map((item: unknown) => {
    const o = asObject(item)
    if (o === null)
      throw invalid('networks', raw, `${JSON.stringify(item)} is not of type 'object'`)
    const portId = o['port']
    if (typeof portId === 'string' && portId !== '') {
      const port = cloud.state.ports.find((p) => p.id === portId)
      if (port === undefined || !canSeePort(cloud, port, auth))
        throw novaError(400, `Port ${portId} could not be found.`)
      if (port.deviceId !== '') throw novaError(409, `Port ${portId} is still in use.`)
      return { port }
    }
    const netId = o['uuid']
    if (typeof netId !== 'string')
      throw invalid('networks', raw, "'uuid' or 'port' is a required property")
    const network = cloud.state.networks.find((n) => n.id === netId)
    if (network === undefined || !canSeeNetwork(network, auth))
      throw novaError(400, `Network ${netId} could not be found.`)
    if (network.external && !network.shared && !auth.isAdmin) {
      throw novaError(403, `It is not allowed to create an interface on external network ${netId}`)
    }
    const fixed = o['fixed_ip']
    return typeof fixed === 'string' ? { network, fixedIp: fixed } : { network }
  })
}

function resolveGroups(cloud: Cloud, raw: unknown, projectId: string): string[] | null {
  if (raw === undefined) return null
  if (!Array.isArray(raw))
    throw invalid('security_groups', raw, `${JSON.stringify(raw)} is not of type 'array'`)
  return raw.map((g: unknown) => {
    const name = asObject(g)?.['name']
    if (typeof name !== 'string')
      throw invalid('security_groups', raw, "'name' is a required property")
    const found =
      cloud.state.securityGroups.find((x) => x.projectId === projectId && x.id === name) ??
      cloud.state.securityGroups.find((x) => x.projectId === projectId && x.name === name)
    if (found === undefined)
      throw novaError(400, `Security group ${name} not found for project ${projectId}.`)
    return found.id
  })
}

/** POST /servers: 202 with the new server's id; the build runs later (compute.ts). */
export function createServer(cloud: Cloud, ctx: Ctx, v: Microversion): Reply {
  const auth = who(ctx)
  const body = asObject(asObject(ctx.body)?.['server'])
  if (body === null) throw invalid('root', ctx.body, "'server' is a required property")
  // Below 2.52 the request schema allows no `tags` (additionalProperties: false).
  if ('tags' in body && !atLeast(v, 52))
    throw novaError(
      400,
      `Invalid input for field/attribute server. Value: ${pyRepr(body)}. Additional properties are not allowed ('tags' was unexpected)`,
    )
  const name = body['name']
  if (typeof name !== 'string' || name.trim() === '' || name.length > 255)
    throw invalid('name', name, "'name' is a required property")
  const imageId = refId(body['imageRef'])
  if (imageId === null)
    throw novaError(400, 'Block Device Mapping is Invalid: the lab boots servers from images only.')
  const image = cloud.state.images.find((i) => i.id === imageId)
  if (image === undefined) throw novaError(400, 'Can not find requested image')
  const flavorId = refId(body['flavorRef'])
  const flavor = cloud.state.flavors.find((f) => f.id === flavorId)
  if (flavor === undefined) throw novaError(400, 'Invalid flavorRef provided.')
  if (image.minDisk > flavor.disk && flavor.disk > 0)
    throw novaError(400, "Flavor's disk is too small for requested image.")
  if (image.minRam > flavor.ram)
    throw novaError(400, "Flavor's memory is too small for requested image.")
  const keyName = body['key_name']
  if (
    keyName !== undefined &&
    keyName !== null &&
    !cloud.state.keypairs.some((k) => k.name === keyName && k.userId === auth.userId)
  ) {
    throw novaError(400, 'Invalid key_name provided.')
  }
  const userData = body['user_data']
  if (
    userData !== undefined &&
    userData !== null &&
    (typeof userData !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(userData))
  ) {
    throw invalid('user_data', userData, 'is not a valid base64 value')
  }
  const metadata = asObject(body['metadata']) ?? {}
  for (const [k, val] of Object.entries(metadata))
    if (typeof val !== 'string')
      throw invalid('metadata', metadata, `${JSON.stringify(val)} for ${k} is not of type 'string'`)
  const nics = parseNetworks(cloud, body['networks'], auth, v)
  const groups = resolveGroups(cloud, body['security_groups'], auth.projectId)
  const minCount = Number(body['min_count'] ?? 1)
  const maxCount = Number(body['max_count'] ?? minCount)
  if (
    !Number.isInteger(minCount) ||
    !Number.isInteger(maxCount) ||
    minCount < 1 ||
    maxCount < minCount
  ) {
    throw novaError(400, 'min_count must be <= max_count')
  }
  if (maxCount > 1 && nics.some((n) => n.port !== undefined))
    throw novaError(
      400,
      'Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.',
    )
  const tags = Array.isArray(body['tags']) ? (body['tags'] as unknown[]).map(String) : []
  const created: ServerRec[] = []
  for (let i = 1; i <= maxCount; i++) {
    const serverName = maxCount > 1 ? `${name}-${i}` : name
    const requestedHost =
      typeof body['hostname'] === 'string' && atLeast(v, 90)
        ? body['hostname']
        : hostnameOf(serverName)
    const now = isoSeconds()
    const server: ServerRec = {
      id: uuid(),
      name: serverName,
      projectId: auth.projectId,
      userId: auth.userId,
      flavorId: flavor.id,
      imageId: image.id,
      keyName: typeof keyName === 'string' ? keyName : null,
      status: 'BUILD',
      vmState: 'building',
      taskState: 'scheduling',
      powerState: 0,
      portIds: [],
      ownedPortIds: [],
      requestedSecurityGroups: groups ?? [],
      metadata: metadata as Record<string, string>,
      userData: typeof userData === 'string' ? userData : null,
      availabilityZone: 'nova',
      hostname: requestedHost,
      description: typeof body['description'] === 'string' ? body['description'] : null,
      tags,
      createdAt: now,
      updatedAt: now,
      launchedAt: null,
      fault: null,
      consoleLog: '',
    }
    attachNics(cloud, server, nics, groups)
    cloud.state.servers.push(server)
    created.push(server)
  }
  const first = created[0] as ServerRec
  const sgNames =
    body['security_groups'] === undefined
      ? [{ name: 'default' }]
      : (body['security_groups'] as unknown[]).map((g) => ({ name: String(asObject(g)?.['name']) }))
  const reply: Record<string, unknown> = {
    id: first.id,
    links: [
      { rel: 'self', href: `${ctx.baseUrl}/compute/v2.1/servers/${first.id}` },
      { rel: 'bookmark', href: `${ctx.baseUrl}/compute/servers/${first.id}` },
    ],
    'OS-DCF:diskConfig': 'MANUAL',
    security_groups: sgNames,
    adminPass: typeof body['adminPass'] === 'string' ? body['adminPass'] : secret(9),
  }
  if (body['return_reservation_id'] === true)
    return json(202, { reservation_id: `r-${first.id.slice(0, 8)}` })
  return json(
    202,
    { server: reply },
    { Location: `${ctx.baseUrl}/compute/v2.1/servers/${first.id}` },
  )
}

/**
 * Bind or create the server's ports now (so `port list --server` finds them at once); a failure
 * to allocate is the build's failure, shown as ERROR with a fault like Nova's.
 */
function attachNics(cloud: Cloud, s: ServerRec, nics: NicRequest[], groups: string[] | null): void {
  try {
    for (const nic of nics) {
      if (nic.port !== undefined) {
        nic.port.deviceId = s.id
        nic.port.deviceOwner = `compute:${s.availabilityZone}`
        nic.port.bindingHostId = 'runbook-lab'
        refreshPortStatus(cloud, nic.port)
        s.portIds.push(nic.port.id)
        continue
      }
      const network = nic.network as NetworkRec
      if (groups !== null && groups.length > 0 && !network.portSecurityEnabled) {
        throw new Error(
          'Network requires port_security_enabled and subnet associated in order to apply security groups.',
        )
      }
      const sg = network.portSecurityEnabled
        ? (groups ?? [ensureDefaultSecurityGroup(cloud, s.projectId).id])
        : []
      const port = createPortRecord(cloud, {
        network,
        projectId: s.projectId,
        fixedIps: nic.fixedIp === undefined ? undefined : [{ ip_address: nic.fixedIp }],
        securityGroups: sg,
        deviceId: s.id,
        deviceOwner: `compute:${s.availabilityZone}`,
      })
      port.bindingHostId = 'runbook-lab'
      s.portIds.push(port.id)
      s.ownedPortIds.push(port.id)
    }
  } catch (e) {
    const type = neutronErrorType(e)
    const message = type === null ? errorText(e) : `${type} from Neutron`
    s.status = 'ERROR'
    s.vmState = 'error'
    s.taskState = null
    s.fault = {
      code: 500,
      message: `Build of instance ${s.id} aborted: ${message}`,
      created: isoSeconds(),
      details: '',
    }
  }
}
