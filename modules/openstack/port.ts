/**
 * `openstack.port`: a Neutron port as described — the seed's reserved VIP port
 * (`openstack port create`), or an existing port by id whose allowed address pairs the runbook
 * sets (`openstack port set --allowed-address`).
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import type { ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { unknown, type Unknown } from '../../engine/vars/unknown.ts'
import { addressMaybeCidr, ipAddress, macAddress } from '../../engine/values.ts'
import type { Port } from './client/neutron.ts'
import type { Api } from './lib/cloud.ts'
import { ownedResource, type At, type Own } from './lib/owned.ts'
import { ensureTagged, isMarked, ownerOf, type ClaimKind } from './lib/ownership.ts'
import {
  adoptParam,
  cloudParam,
  known,
  later,
  stateParam,
  type Later,
  printable,
} from './lib/params.ts'

const fixedIp = z
  .strictObject({
    subnet: later(z.string().min(1)).optional().describe('Subnet name or id'),
    ip_address: later(ipAddress).optional().describe('The address (default: one Neutron picks)'),
  })
  .refine((f) => f.subnet !== undefined || f.ip_address !== undefined, {
    message: 'give subnet, ip_address or both',
  })

const pair = z.strictObject({
  ip_address: later(addressMaybeCidr).describe(
    'Address or CIDR the port may also send from (the VIP)',
  ),
  mac_address: later(macAddress).optional().describe("MAC address (default: the port's own)"),
})

const params = z
  .strictObject({
    name: z.string().min(1).optional().describe('Port name: the port this task creates and owns'),
    id: later(z.string().min(1))
      .optional()
      .describe("An existing port by id (a server's port): changed in place, never created"),
    network: later(z.string().min(1)).optional().describe('Network name or id (needed to create)'),
    fixed_ips: z.array(fixedIp).optional().describe('Fixed IPs: [{subnet, ip_address}]'),
    allowed_address_pairs: z
      .array(pair)
      .optional()
      .describe('Allowed address pairs, compared as a set ([] clears them)'),
    security_groups: z
      .array(later(z.string().min(1)))
      .optional()
      .describe('Security group names or ids, compared as a set'),
    port_security_enabled: z
      .boolean()
      .optional()
      .describe('Port security (IP source guard and security groups)'),
    description: z.string().optional().describe('Description'),
    state: stateParam,
    adopt: adoptParam,
    cloud: cloudParam,
  })
  .refine((p) => (p.name === undefined) !== (p.id === undefined), {
    message: 'give exactly one of `name` or `id`',
  })

/** openstack.port's parameters. */
export type PortParams = z.infer<typeof params>

/** A fixed IP as wanted, with names resolved. */
export interface WantedFixedIp {
  subnet_id?: Later<string> | undefined
  ip_address?: Later<string> | undefined
}

/** What gather found: the port, how it is ours, and the wanted references resolved to ids. */
export interface PortState {
  port: Port | undefined
  how: ClaimKind | 'id' | undefined
  /** The port's id is known only after apply (`id:` from a server not created yet). */
  pending: boolean
  want: {
    network_id?: Later<string> | undefined
    fixed_ips?: WantedFixedIp[] | undefined
    security_groups?: Later<string>[] | undefined
  }
}

const same = (a: unknown, b: unknown): boolean => known(a) && known(b) && a === b

/** `192.0.2.254/32` and `192.0.2.254` are the same address. */
function canonicalIp(ip: string): string {
  return ip
    .trim()
    .toLowerCase()
    .replace(/\/(32|128)$/, '')
}

/** Allowed address pairs as a set of `ip|mac` keys (a pair without MAC means the port's MAC). */
function pairKeys(
  pairs: readonly { ip_address: Later<string>; mac_address?: Later<string> | undefined }[],
  portMac: string,
): string[] | undefined {
  if (
    pairs.some(
      (p) => !known(p.ip_address) || (p.mac_address !== undefined && !known(p.mac_address)),
    )
  )
    return undefined
  return [
    ...new Set(
      pairs.map(
        (p) =>
          `${canonicalIp(p.ip_address as string)}|${((p.mac_address as string | undefined) ?? portMac).toLowerCase()}`,
      ),
    ),
  ].sort()
}

/** Whether the port's fixed IPs are the wanted ones (each wanted entry matches one allocation). */
export function fixedIpsMatch(
  want: readonly WantedFixedIp[],
  have: readonly { subnet_id: string; ip_address: string }[],
): boolean {
  if (want.length !== have.length) return false
  const free = [...have]
  for (const w of want) {
    if (
      (w.subnet_id !== undefined && !known(w.subnet_id)) ||
      (w.ip_address !== undefined && !known(w.ip_address))
    )
      return false
    const i = free.findIndex(
      (h) =>
        (w.subnet_id === undefined || w.subnet_id === h.subnet_id) &&
        (w.ip_address === undefined ||
          canonicalIp(w.ip_address as string) === canonicalIp(h.ip_address)),
    )
    if (i < 0) return false
    free.splice(i, 1)
  }
  return true
}

function targetOf(p: PortParams, port: Port | undefined): string {
  if (p.name !== undefined) return `port ${p.name}`
  return `port ${port?.id ?? (known(p.id) ? (p.id as string) : '(known after apply)')}`
}

function wantedAttrs(p: PortParams, s: PortState): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (p.fixed_ips !== undefined) out['fixed_ips'] = p.fixed_ips
  if (p.allowed_address_pairs !== undefined) out['allowed_address_pairs'] = p.allowed_address_pairs
  if (p.security_groups !== undefined)
    out['security_groups'] = s.want.security_groups ?? p.security_groups
  if (p.port_security_enabled !== undefined) out['port_security_enabled'] = p.port_security_enabled
  if (p.description !== undefined) out['description'] = p.description
  return out
}

/** The attributes of `port` that differ from `p`, before and after. */
function differences(
  p: PortParams,
  s: PortState,
  port: Port,
): { before: Record<string, unknown>; after: Record<string, unknown> } {
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  if (s.want.fixed_ips !== undefined && !fixedIpsMatch(s.want.fixed_ips, port.fixed_ips)) {
    before['fixed_ips'] = port.fixed_ips
    after['fixed_ips'] = s.want.fixed_ips
  }
  if (p.allowed_address_pairs !== undefined) {
    const want = pairKeys(p.allowed_address_pairs, port.mac_address)
    const have = pairKeys(port.allowed_address_pairs, port.mac_address)
    if (want === undefined || JSON.stringify(want) !== JSON.stringify(have)) {
      before['allowed_address_pairs'] = port.allowed_address_pairs
      after['allowed_address_pairs'] = p.allowed_address_pairs.map((x) => ({
        ip_address: x.ip_address,
        mac_address: x.mac_address ?? port.mac_address,
      }))
    }
  }
  const sgs = s.want.security_groups
  if (sgs !== undefined) {
    const complete = sgs.every((g) => known(g))
    if (
      !complete ||
      JSON.stringify([...new Set(sgs as string[])].sort()) !==
        JSON.stringify([...port.security_groups].sort())
    ) {
      before['security_groups'] = port.security_groups
      after['security_groups'] = sgs
    }
  }
  if (
    p.port_security_enabled !== undefined &&
    p.port_security_enabled !== (port.port_security_enabled ?? true)
  ) {
    before['port_security_enabled'] = port.port_security_enabled ?? true
    after['port_security_enabled'] = p.port_security_enabled
  }
  if (p.description !== undefined && p.description !== port.description) {
    before['description'] = port.description
    after['description'] = p.description
  }
  return { before, after }
}

/**
 * The changes that bring the port to `p` (pure).
 * @example planPort(p, { port: undefined, how: undefined, pending: false, want: {} })
 */
export function planPort(p: PortParams, s: PortState): Change[] {
  const port = s.port
  const target = targetOf(p, port)
  if (p.state === 'absent') {
    if (port === undefined) return []
    return [
      {
        action: 'delete',
        target,
        before: { id: port.id, fixed_ips: port.fixed_ips.map((f) => f.ip_address) },
      },
    ]
  }
  if (port === undefined) {
    if (p.id !== undefined) {
      if (!s.pending) throw new RunbookError('E_API', `Neutron: no port with id '${String(p.id)}'`)
      return [
        {
          action: 'update',
          target,
          after: wantedAttrs(p, s),
          note: 'a port that exists only after apply',
        },
      ]
    }
    if (p.network === undefined)
      throw new RunbookError('E_PARAM', `creating port ${p.name ?? ''} needs \`network\``)
    return [
      {
        action: 'create',
        target,
        after: {
          name: p.name,
          network: p.network,
          ...wantedAttrs(p, s),
          id: unknown('port.id'),
          mac_address: unknown('port.mac_address'),
        },
      },
    ]
  }
  if (s.want.network_id !== undefined && !same(s.want.network_id, port.network_id)) {
    if (s.how === 'adopt' || s.how === 'id') {
      throw new RunbookError(
        'E_MODULE',
        `${target} (${port.id}) is on network ${port.network_id}, not ${String(p.network)}; Neutron cannot move a port, and this runbook did not create it`,
      )
    }
    return [
      {
        action: 'replace',
        target,
        before: { id: port.id, network_id: port.network_id },
        after: { network: p.network, ...wantedAttrs(p, s), id: unknown('port.id') },
        note: 'Neutron cannot move a port to another network',
      },
    ]
  }
  const d = differences(p, s, port)
  if (Object.keys(d.after).length === 0) return []
  return [
    {
      action: 'update',
      target: p.name === undefined ? target : `${target} (${port.id})`,
      before: d.before,
      after: d.after,
    },
  ]
}

/** What `register` gets. */
export function portOutput(port: Port | undefined, p?: PortParams): Record<string, unknown> {
  if (port === undefined) {
    const ip = p?.fixed_ips?.[0]?.ip_address
    return {
      id: unknown('port.id'),
      name: p?.name ?? '',
      mac_address: unknown('port.mac_address'),
      ip: ip ?? unknown('port.ip'),
      fixed_ips: unknown('port.fixed_ips'),
      network_id: unknown('port.network_id'),
      allowed_address_pairs: p?.allowed_address_pairs ?? [],
      status: unknown('port.status'),
    }
  }
  return {
    id: port.id,
    name: port.name,
    network_id: port.network_id,
    mac_address: port.mac_address,
    ip: port.fixed_ips[0]?.ip_address ?? null,
    fixed_ips: port.fixed_ips,
    allowed_address_pairs: port.allowed_address_pairs,
    security_groups: port.security_groups,
    port_security_enabled: port.port_security_enabled ?? true,
    status: port.status,
    device_id: port.device_id,
  }
}

async function resolveWant(
  ctx: ModuleContext,
  api: Api,
  p: PortParams,
  port: Port | undefined,
): Promise<PortState['want']> {
  const want: PortState['want'] = {}
  if (p.state === 'absent') return want
  if (p.network !== undefined)
    want.network_id = known(p.network) ? (await api.neutron.network(p.network)).id : p.network
  const networkId =
    want.network_id !== undefined && known(want.network_id) ? want.network_id : port?.network_id
  if (p.fixed_ips !== undefined) {
    want.fixed_ips = []
    for (const f of p.fixed_ips) {
      const subnetId =
        f.subnet === undefined
          ? undefined
          : known(f.subnet)
            ? (await api.neutron.subnet(f.subnet, networkId)).id
            : f.subnet
      want.fixed_ips.push({
        ...(subnetId === undefined ? {} : { subnet_id: subnetId }),
        ...(f.ip_address === undefined ? {} : { ip_address: f.ip_address }),
      })
    }
  }
  if (p.security_groups !== undefined)
    want.security_groups = await securityGroupIds(ctx, api, p.security_groups)
  return want
}

/**
 * Security group ids for names or ids; a name not found is known after apply during a plan (an
 * earlier task may create it) and an error otherwise.
 */
export async function securityGroupIds(
  ctx: ModuleContext,
  api: Api,
  refs: readonly Later<string>[],
): Promise<Later<string>[]> {
  const names = refs.filter((r): r is string => known(r))
  const ids = await api.neutron.securityGroupIds(names, await api.client.projectId())
  const byName = new Map(names.map((n, i) => [n, ids[i]]))
  return refs.map((r) => {
    if (!known(r)) return r
    const id = byName.get(r)
    if (id !== undefined) return id
    if (ctx.check) return unknown(`security group ${r}`) as Unknown
    throw new RunbookError(
      'E_API',
      `Neutron: no security group named or with id '${r}' in this project`,
    )
  })
}

function body(
  p: PortParams,
  s: PortState,
  port: Port | undefined,
  changed?: Record<string, unknown>,
): Record<string, unknown> {
  const b: Record<string, unknown> = {}
  const has = (k: string): boolean => changed === undefined || k in changed
  if (has('fixed_ips') && s.want.fixed_ips !== undefined) {
    // Wanted entries that match an allocation keep it exactly, so Neutron does not reallocate.
    const free = [...(port?.fixed_ips ?? [])]
    b['fixed_ips'] = s.want.fixed_ips.map((w) => {
      const i = free.findIndex(
        (h) =>
          (w.subnet_id === undefined || w.subnet_id === h.subnet_id) &&
          (w.ip_address === undefined ||
            canonicalIp(String(w.ip_address)) === canonicalIp(h.ip_address)),
      )
      if (i >= 0) return free.splice(i, 1)[0]
      return {
        ...(w.subnet_id === undefined ? {} : { subnet_id: w.subnet_id }),
        ...(w.ip_address === undefined ? {} : { ip_address: w.ip_address }),
      }
    })
  }
  if (has('allowed_address_pairs') && p.allowed_address_pairs !== undefined)
    b['allowed_address_pairs'] = p.allowed_address_pairs.map((x) => ({
      ip_address: x.ip_address,
      ...(x.mac_address === undefined ? {} : { mac_address: x.mac_address }),
    }))
  if (has('security_groups') && s.want.security_groups !== undefined)
    b['security_groups'] = s.want.security_groups
  if (has('port_security_enabled') && p.port_security_enabled !== undefined)
    b['port_security_enabled'] = p.port_security_enabled
  if (has('description') && p.description !== undefined) b['description'] = p.description
  return b
}

/** The port's lookup by name and owner: a lost POST's answer, a pending record's port. */
async function findPort(api: Api, name: string, ownerTag: string): Promise<Port | undefined> {
  return (await api.neutron.ports({ name })).find((x) => isMarked(x, ownerTag))
}

async function readPort({
  ctx,
  api,
  p,
  own,
}: At & { p: PortParams; own: Own<Port> }): Promise<PortState> {
  if (p.id !== undefined) {
    if (!known(p.id))
      return {
        port: undefined,
        how: undefined,
        pending: true,
        want: await resolveWant(ctx, api, p, undefined),
      }
    const found = await api.neutron.port(p.id)
    return {
      port: found,
      how: found === undefined ? undefined : 'id',
      pending: false,
      want: await resolveWant(ctx, api, p, found),
    }
  }
  const name = p.name ?? ''
  const c = await own.claim({ name, adopt: p.adopt, candidates: await api.neutron.ports({ name }) })
  return {
    port: c?.resource,
    how: c?.how,
    pending: false,
    want: await resolveWant(ctx, api, p, c?.resource),
  }
}

/**
 * Ensures a Neutron port: created with its fixed IPs, or updated in place (allowed address pairs,
 * security groups, fixed IPs); moving it to another network replaces it.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const port = ownedResource<PortParams, PortState, Port>({
  module: {
    name: 'openstack.port',
    summary:
      'A Neutron port: reserve an address, or set allowed address pairs and security groups on a port',
    example: `- name: Reserve the VIP address with a port nobody uses
  openstack.port:
    name: kld-vip
    network: mynetwork
    fixed_ips: [{ subnet: mysubnet, ip_address: 192.0.2.254 }]
- name: Let the VM's port send from the VIP
  openstack.port:
    id: "{{vm1.port.id}}"
    allowed_address_pairs: [{ ip_address: 192.0.2.254/24 }]`,
    params,
    acceptsUnknown: true,
    plan: (p, s) => printable(planPort(p, s)),
    output: (p, s, changes) =>
      portOutput(
        changes.some((c) => c.action === 'create' || c.action === 'replace') ? undefined : s?.port,
        p,
      ),
  },
  type: 'port',
  kind: 'port',
  id: (x) => x.id,
  marked: isMarked,
  ownerTags: (x) => [...x.tags, x.description],
  find: findPort,
  tag: ({ ctx, api }, x) => ensureTagged(ctx, api, 'ports', x),
  read: readPort,
  current: (s) => s.port,
  async create({ ctx, api, p, s }) {
    const name = p.name ?? ''
    const owner = ownerOf(ctx)
    // As the official client: admin_state_up, and the owner tag only where Neutron keeps it at
    // create; the marker in `description` makes the port ours until it is tagged.
    const atCreate = await api.neutron.has('tag-ports-during-bulk-creation')
    const b = {
      name,
      network_id: s.want.network_id,
      admin_state_up: true,
      ...body(p, s, undefined),
      description: owner.tag,
      ...(atCreate ? { tags: [owner.tag] } : {}),
    }
    return { name, post: () => api.neutron.createPort(b) }
  },
  async created({ ctx, api, p }, made) {
    await ensureTagged(ctx, api, 'ports', made)
    return p.description === undefined
      ? made
      : api.neutron.updatePort(made.id, { description: p.description })
  },
  update: async ({ api, p, s }, change) =>
    s.port === undefined
      ? undefined
      : api.neutron.updatePort(
          s.port.id,
          body(p, s, s.port, change.after as Record<string, unknown>),
        ),
  remove: ({ api }, id) => api.neutron.deleteGone('ports', id),
  async verify({ api, p, s }, result) {
    // The post-condition: what Neutron shows now plans to nothing.
    const now = result === undefined ? undefined : await api.neutron.port(result.id)
    const left = planPort(p, { ...s, port: now, pending: false, how: s.how ?? 'journal' })
    if (now === undefined || left.length > 0) {
      throw new RunbookError(
        'E_API',
        `${targetOf(p, now)}: Neutron did not take the change${left[0] ? ` (${JSON.stringify(left[0].after)} still differs)` : ' (the port is gone)'}`,
      )
    }
    return portOutput(now)
  },
})
