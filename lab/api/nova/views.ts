/**
 * Nova's response shapes, which depend on the microversion the client asked for
 * (`OpenStack-API-Version: compute 2.47` or `X-OpenStack-Nova-API-Version: 2.47`).
 */
import { createHash } from 'node:crypto'
import { NOVA_MAX_VERSION, NOVA_MIN_VERSION } from '../catalog.ts'
import type { Cloud } from '../cloud.ts'
import { atLeast, MAX, MIN, parseVersion, type Microversion } from './versions.ts'
import { ApiError, novaError } from '../http.ts'
import type { Ctx } from '../http.ts'
import type { FlavorRec, ImageRec, ServerRec } from '../types.ts'

/**
 * The microversion of a request (2.1 when none is asked for), or Nova's 400/406; `max` is the
 * lab's maximum (a lower one stands for an older Nova).
 */
export function microversion(ctx: Ctx, maxText: string = NOVA_MAX_VERSION): Microversion {
  const max = parseVersion(maxText) ?? MAX
  let raw: string | undefined
  const modern = ctx.headers['openstack-api-version']
  if (typeof modern === 'string') {
    for (const part of modern.split(',')) {
      const [service, value] = part.trim().split(/\s+/)
      if (service?.toLowerCase() === 'compute' && value !== undefined) raw = value
    }
  }
  const legacy = ctx.headers['x-openstack-nova-api-version']
  if (raw === undefined && typeof legacy === 'string') raw = legacy
  if (raw === undefined) return MIN
  if (raw.toLowerCase() === 'latest') return max
  const v = parseVersion(raw)
  if (v === null)
    throw novaError(
      400,
      `API Version String ${raw} is of invalid format. Must be of format MajorNum.MinorNum.`,
    )
  const cmp = (a: Microversion, b: Microversion) => (a[0] - b[0]) * 10000 + (a[1] - b[1])
  if (cmp(v, MIN) < 0 || cmp(v, max) > 0) {
    throw new ApiError(406, {
      computeFault: {
        code: 406,
        message: `Version ${raw} is not supported by the API. Minimum is ${NOVA_MIN_VERSION} and maximum is ${maxText}.`,
      },
    })
  }
  return v
}

/** The headers every Nova response carries. */
export function versionHeaders(v: Microversion): Record<string, string> {
  const s = `${v[0]}.${v[1]}`
  return {
    'OpenStack-API-Version': `compute ${s}`,
    'X-OpenStack-Nova-API-Version': s,
    Vary: 'OpenStack-API-Version, X-OpenStack-Nova-API-Version',
  }
}

/** The (single) compute host's name. */
export const HOST_NAME = 'runbook-lab'

function links(base: string, kind: string, id: string | number): { rel: string; href: string }[] {
  return [
    { rel: 'self', href: `${base}/compute/v2.1/${kind}/${id}` },
    { rel: 'bookmark', href: `${base}/compute/${kind}/${id}` },
  ]
}

/** A flavor in a list (`GET /flavors`). */
export function flavorSummary(
  f: FlavorRec,
  v: Microversion,
  base: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: f.id,
    name: f.name,
    links: links(base, 'flavors', f.id),
  }
  if (atLeast(v, 55)) out['description'] = f.description
  return out
}

/** A flavor in detail. */
export function flavorDetail(f: FlavorRec, v: Microversion, base: string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...flavorSummary(f, v, base),
    ram: f.ram,
    disk: f.disk,
    vcpus: f.vcpus,
    swap: atLeast(v, 75) ? f.swap : f.swap === 0 ? '' : f.swap,
    'OS-FLV-EXT-DATA:ephemeral': f.ephemeral,
    'OS-FLV-DISABLED:disabled': f.disabled,
    'os-flavor-access:is_public': f.isPublic,
    rxtx_factor: f.rxtxFactor,
  }
  if (atLeast(v, 61)) out['extra_specs'] = { ...f.extraSpecs }
  return out
}

/** Nova's `addresses`: fixed then floating addresses, grouped by network name. */
export function serverAddresses(cloud: Cloud, s: ServerRec): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {}
  for (const portId of s.portIds) {
    const port = cloud.state.ports.find((p) => p.id === portId)
    if (port === undefined) continue
    const net = cloud.state.networks.find((n) => n.id === port.networkId)
    const list = (out[net?.name ?? port.networkId] ??= [])
    for (const f of port.fixedIps) {
      list.push({
        version: 4,
        addr: f.ipAddress,
        'OS-EXT-IPS:type': 'fixed',
        'OS-EXT-IPS-MAC:mac_addr': port.macAddress,
      })
    }
    for (const fip of cloud.state.floatingIps.filter((x) => x.portId === port.id)) {
      list.push({
        version: 4,
        addr: fip.floatingIpAddress,
        'OS-EXT-IPS:type': 'floating',
        'OS-EXT-IPS-MAC:mac_addr': port.macAddress,
      })
    }
  }
  return out
}

/** Names of the security groups of the server's ports, as Nova shows them. */
export function serverSecurityGroups(cloud: Cloud, s: ServerRec): { name: string }[] {
  const names: string[] = []
  for (const portId of s.portIds) {
    const port = cloud.state.ports.find((p) => p.id === portId)
    for (const gid of port?.securityGroups ?? []) {
      const g = cloud.state.securityGroups.find((x) => x.id === gid)
      if (g !== undefined && !names.includes(g.name)) names.push(g.name)
    }
  }
  return names.map((name) => ({ name }))
}

function hostId(s: ServerRec): string {
  if (s.status === 'BUILD' && s.taskState === 'scheduling') return ''
  if (s.status === 'ERROR' && s.launchedAt === null) return ''
  return createHash('sha224').update(`${s.projectId}${HOST_NAME}`).digest('hex')
}

function imageRef(
  image: ImageRec | undefined,
  id: string,
  v: Microversion,
  base: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id,
    links: [{ rel: 'bookmark', href: `${base}/compute/images/${id}` }],
  }
  if (atLeast(v, 98)) out['properties'] = { ...(image?.properties ?? {}) }
  return out
}

function flavorRef(
  cloud: Cloud,
  s: ServerRec,
  v: Microversion,
  base: string,
): Record<string, unknown> {
  const f = cloud.state.flavors.find((x) => x.id === s.flavorId)
  if (!atLeast(v, 47))
    return {
      id: s.flavorId,
      links: [{ rel: 'bookmark', href: `${base}/compute/flavors/${s.flavorId}` }],
    }
  return {
    vcpus: f?.vcpus ?? 0,
    ram: f?.ram ?? 0,
    disk: f?.disk ?? 0,
    ephemeral: f?.ephemeral ?? 0,
    swap: f?.swap ?? 0,
    original_name: f?.name ?? '',
    extra_specs: { ...(f?.extraSpecs ?? {}) },
  }
}

/** How a server is shown: at which microversion, under which base URL, to whom, by which call. */
export interface DetailView {
  v: Microversion
  base: string
  /** The caller is an admin (the OS-EXT-SRV-ATTR fields). */
  admin: boolean
  /** `GET /servers/{id}` rather than a listing. */
  show: boolean
}

/** A server in full (`GET /servers/{id}`, `/servers/detail`). */
export function serverDetail(
  cloud: Cloud,
  s: ServerRec,
  { v, base, admin, show }: DetailView,
): Record<string, unknown> {
  const image = cloud.state.images.find((i) => i.id === s.imageId)
  const out: Record<string, unknown> = {
    id: s.id,
    name: s.name,
    status: s.status,
    tenant_id: s.projectId,
    user_id: s.userId,
    metadata: { ...s.metadata },
    hostId: hostId(s),
    image: imageRef(image, s.imageId, v, base),
    flavor: flavorRef(cloud, s, v, base),
    created: s.createdAt,
    updated: s.updatedAt,
    addresses: serverAddresses(cloud, s),
    accessIPv4: '',
    accessIPv6: '',
    links: links(base, 'servers', s.id),
    'OS-DCF:diskConfig': 'MANUAL',
    'OS-EXT-AZ:availability_zone':
      s.status === 'ERROR' && s.launchedAt === null ? '' : s.availabilityZone,
    config_drive: '',
    key_name: s.keyName,
    'OS-SRV-USG:launched_at': s.launchedAt,
    'OS-SRV-USG:terminated_at': null,
    'OS-EXT-STS:task_state': s.taskState,
    'OS-EXT-STS:vm_state': s.vmState,
    'OS-EXT-STS:power_state': s.powerState,
    'os-extended-volumes:volumes_attached': [],
  }
  if (s.status === 'ACTIVE' || s.status === 'BUILD') out['progress'] = 0
  const groups = serverSecurityGroups(cloud, s)
  if (groups.length > 0) out['security_groups'] = groups
  if (s.fault !== null && s.status === 'ERROR') {
    const fault: Record<string, unknown> = {
      code: s.fault.code,
      created: s.fault.created,
      message: s.fault.message,
    }
    // Nova shows a 500 fault's details (a traceback) only to admins.
    if (admin || s.fault.code !== 500) fault['details'] = s.fault.details
    out['fault'] = fault
  }
  if (admin) {
    out['OS-EXT-SRV-ATTR:host'] = s.launchedAt === null ? null : HOST_NAME
    out['OS-EXT-SRV-ATTR:hypervisor_hostname'] = s.launchedAt === null ? null : HOST_NAME
    out['OS-EXT-SRV-ATTR:instance_name'] = `instance-${s.id.slice(0, 8)}`
    if (atLeast(v, 3)) {
      out['OS-EXT-SRV-ATTR:reservation_id'] = `r-${s.id.slice(0, 8)}`
      out['OS-EXT-SRV-ATTR:launch_index'] = 0
      out['OS-EXT-SRV-ATTR:kernel_id'] = ''
      out['OS-EXT-SRV-ATTR:ramdisk_id'] = ''
      out['OS-EXT-SRV-ATTR:root_device_name'] = '/dev/vda'
      out['OS-EXT-SRV-ATTR:user_data'] = s.userData
      if (!atLeast(v, 90)) out['OS-EXT-SRV-ATTR:hostname'] = s.hostname
    }
    if (atLeast(v, 16)) out['host_status'] = s.launchedAt === null ? '' : 'UP'
  }
  if (atLeast(v, 9)) out['locked'] = false
  if (atLeast(v, 19)) out['description'] = s.description
  if (atLeast(v, 26)) out['tags'] = [...s.tags]
  if (atLeast(v, 63)) out['trusted_image_certificates'] = null
  if (atLeast(v, 71) && show) out['server_groups'] = []
  if (atLeast(v, 73)) out['locked_reason'] = null
  if (atLeast(v, 90)) out['OS-EXT-SRV-ATTR:hostname'] = s.hostname
  if (atLeast(v, 96)) out['pinned_availability_zone'] = null
  if (atLeast(v, 100)) out['scheduler_hints'] = {}
  return out
}

/** A server in a plain list (`GET /servers`). */
export function serverSummary(s: ServerRec, base: string): Record<string, unknown> {
  return { id: s.id, name: s.name, links: links(base, 'servers', s.id) }
}

/** A Nova image (the deprecated image proxy, before 2.36). */
export function novaImage(i: ImageRec, base: string, detail: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: i.id,
    name: i.name,
    links: links(base, 'images', i.id),
  }
  if (!detail) return out
  return {
    ...out,
    status: 'ACTIVE',
    progress: 100,
    minDisk: i.minDisk,
    minRam: i.minRam,
    created: i.createdAt,
    updated: i.updatedAt,
    metadata: { ...i.properties },
    'OS-EXT-IMG-SIZE:size': i.size,
  }
}
