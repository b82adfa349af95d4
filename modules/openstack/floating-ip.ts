/**
 * `openstack.floating_ip`: a floating IP from an external network on a port (or a server's port),
 * as the seed gives the jumphost its public address. A floating IP has no name: the port it is
 * on is its identity, so the one already there is reused, and one this runbook allocated earlier
 * that is free again is associated rather than a new one allocated.
 */
import { z } from 'zod'
import { ipAddress } from '../../engine/values.ts'
import { RunbookError } from '../../engine/errors.ts'
import type { ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import type { FloatingIp, Network, Port } from './client/neutron.ts'
import type { Api } from './lib/cloud.ts'
import { ownedResource, type At, type Own } from './lib/owned.ts'
import {
  ensureTagged,
  isMarked,
  isPending,
  ownerOf,
  recordData,
  type ClaimKind,
} from './lib/ownership.ts'
import { adoptParam, cloudParam, known, later, printable } from './lib/params.ts'

const params = z
  .strictObject({
    network: z
      .string()
      .min(1)
      .describe('External network name or id to allocate from (e.g. public)'),
    port: later(z.string().min(1))
      .optional()
      .describe('Port name or id the floating IP translates to'),
    server: later(z.string().min(1))
      .optional()
      .describe('Or a server name or id: its port (the one with `fixed_ip`, else its first)'),
    fixed_ip: later(ipAddress)
      .optional()
      .describe('Which fixed IP of the port (default: its first)'),
    description: z.string().optional().describe('Description of a new floating IP'),
    state: z
      .enum(['present', 'absent', 'disassociated'])
      .default('present')
      .describe(
        'present: on the port; absent: released; disassociated: off the port (port_id null) but still allocated to the project',
      ),
    adopt: adoptParam,
    cloud: cloudParam,
  })
  .refine((p) => (p.port === undefined) !== (p.server === undefined), {
    message: 'give exactly one of `port` or `server`',
  })

/** openstack.floating_ip's parameters. */
export type FloatingIpParams = z.infer<typeof params>

/** What gather found. */
export interface FloatingIpState {
  network: Network
  /** The port it must be on (undefined: known only after apply). */
  port: Port | undefined
  /** The fixed IP of that port it translates to. */
  fixedIp: string | undefined
  /** The floating IP on that port now. */
  current: FloatingIp | undefined
  how: ClaimKind | 'foreign' | undefined
  /** A floating IP this runbook allocated earlier that is free again. */
  reusable: FloatingIp | undefined
}

const targetOf = (p: FloatingIpParams, s: FloatingIpState): string => {
  const what =
    p.server !== undefined
      ? `server ${known(p.server) ? p.server : '(known after apply)'}`
      : `port ${known(p.port) ? String(p.port) : '(known after apply)'}`
  return `floating IP on ${what}${s.fixedIp ? ` (${s.fixedIp})` : ''}`
}

/**
 * The changes that give the port its floating IP (pure).
 * @example planFloatingIp(p, { network, port, fixedIp: '192.0.2.10', current: undefined, how: undefined, reusable: undefined })
 */
export function planFloatingIp(p: FloatingIpParams, s: FloatingIpState): Change[] {
  const target = targetOf(p, s)
  const fip = s.current
  if (p.state === 'absent' || p.state === 'disassociated') {
    if (fip === undefined) return []
    const verb = p.state === 'absent' ? 'release' : 'disassociate'
    if (s.how === 'foreign' && !p.adopt)
      throw new RunbookError(
        'E_MODULE',
        `${target}: ${fip.floating_ip_address} is on it but was not allocated by this runbook`,
        { hint: `set \`adopt: true\` to ${verb} it anyway` },
      )
    // Off the port, as `openstack floating ip unset --port`: the address stays the project's.
    if (p.state === 'disassociated')
      return [
        {
          action: 'update',
          target,
          before: { floating_ip_address: fip.floating_ip_address, port_id: fip.port_id },
          after: { floating_ip_address: fip.floating_ip_address, port_id: null },
          note: 'disassociate; the address stays allocated',
        },
      ]
    return [
      {
        action: 'delete',
        target,
        before: { floating_ip_address: fip.floating_ip_address, id: fip.id },
      },
    ]
  }
  if (fip !== undefined) {
    if (fip.floating_network_id === s.network.id) return []
    if (s.how === 'foreign' || s.how === 'adopt')
      throw new RunbookError(
        'E_MODULE',
        `${target}: ${fip.floating_ip_address} is from network ${fip.floating_network_id}, not ${p.network}, and this runbook did not allocate it`,
      )
    return [
      {
        action: 'replace',
        target,
        before: {
          floating_ip_address: fip.floating_ip_address,
          network_id: fip.floating_network_id,
        },
        after: { network: p.network, floating_ip_address: unknown('floating_ip.address') },
        note: 'from another external network',
      },
    ]
  }
  const port = s.port?.id ?? unknown('port.id')
  if (s.reusable !== undefined) {
    return [
      {
        action: 'update',
        target,
        before: { floating_ip_address: s.reusable.floating_ip_address, port_id: null },
        after: { floating_ip_address: s.reusable.floating_ip_address, port_id: port },
        note: 'associate the one this runbook allocated earlier',
      },
    ]
  }
  return [
    {
      action: 'create',
      target,
      after: {
        network: p.network,
        port_id: port,
        ...(s.fixedIp ? { fixed_ip_address: s.fixedIp } : {}),
        floating_ip_address: unknown('floating_ip.address'),
        id: unknown('floating_ip.id'),
      },
    },
  ]
}

/** What `register` gets. */
export function floatingIpOutput(fip: FloatingIp | undefined): Record<string, unknown> {
  if (fip === undefined) {
    const address = unknown('floating_ip.address')
    return {
      id: unknown('floating_ip.id'),
      address,
      floating_ip_address: address,
      fixed_ip_address: unknown('floating_ip.fixed_ip_address'),
      port_id: unknown('floating_ip.port_id'),
    }
  }
  return {
    id: fip.id,
    address: fip.floating_ip_address,
    floating_ip_address: fip.floating_ip_address,
    fixed_ip_address: fip.fixed_ip_address,
    port_id: fip.port_id,
    network_id: fip.floating_network_id,
    status: fip.status,
  }
}

async function targetPort(
  ctx: ModuleContext,
  api: Api,
  p: FloatingIpParams,
): Promise<Port | undefined> {
  if (p.port !== undefined) {
    if (!known(p.port)) return undefined
    const port = await api.neutron.portByRef(p.port)
    if (port === undefined && !ctx.check && p.state === 'present')
      throw new RunbookError('E_API', `Neutron: no port named or with id '${p.port}'`)
    return port
  }
  if (p.server === undefined || !known(p.server)) return undefined
  const server = await api.nova.serverByRef(p.server)
  if (server === undefined) {
    if (ctx.check || p.state === 'absent') return undefined
    throw new RunbookError('E_API', `Nova: no server named or with id '${p.server}'`)
  }
  const ports = await api.neutron.ports({ device_id: server.id })
  if (p.fixed_ip !== undefined) {
    if (!known(p.fixed_ip)) return undefined
    const found = ports.find((x) => x.fixed_ips.some((f) => f.ip_address === p.fixed_ip))
    if (found === undefined)
      throw new RunbookError(
        'E_API',
        `server ${p.server} has no port with fixed IP ${p.fixed_ip} (it has ${ports.flatMap((x) => x.fixed_ips.map((f) => f.ip_address)).join(', ') || 'none'})`,
      )
    return found
  }
  const first = ports.sort((a, b) => a.id.localeCompare(b.id))[0]
  if (first === undefined) throw new RunbookError('E_API', `server ${p.server} has no port`)
  return first
}

async function readFloatingIp({
  ctx,
  api,
  p,
  own,
}: At & { p: FloatingIpParams; own: Own<FloatingIp> }): Promise<FloatingIpState> {
  const network = await api.neutron.network(p.network)
  const port = await targetPort(ctx, api, p)
  const fixedIp =
    port === undefined
      ? undefined
      : p.fixed_ip !== undefined && known(p.fixed_ip)
        ? p.fixed_ip
        : port.fixed_ips[0]?.ip_address
  const owner = ownerOf(ctx)
  const records = ctx.journal
    .find('openstack.floating_ip', 'floating_ip')
    .filter((r) => !isPending(r))
  const journalled = new Set(records.map((r) => r.id))
  let current: FloatingIp | undefined
  let how: FloatingIpState['how']
  if (port !== undefined) {
    const on = (await api.neutron.floatingIps({ port_id: port.id })).filter(
      (f) => fixedIp === undefined || f.fixed_ip_address === fixedIp,
    )
    current = on.find((f) => journalled.has(f.id) || isMarked(f, owner.tag)) ?? on[0]
    if (current !== undefined)
      how = journalled.has(current.id)
        ? 'journal'
        : isMarked(current, owner.tag)
          ? 'tag'
          : p.adopt
            ? 'adopt'
            : 'foreign'
    if (current !== undefined)
      await own.takeOver({
        name: current.floating_ip_address,
        id: current.id,
        how,
        extra: { network_id: current.floating_network_id },
        pendingName: port.id,
      })
    // A run that died between the create and the tagging: finish it.
    if (current !== undefined && (how === 'journal' || how === 'tag'))
      await ensureTagged(ctx, api, 'floatingips', current)
  }
  let reusable: FloatingIp | undefined
  if (current === undefined && p.state === 'present') {
    // One this runbook allocated that is free again (its port was deleted): associate it.
    const free = await api.neutron.floatingIps({ floating_network_id: network.id })
    reusable = free.find((f) => f.port_id === null && isMarked(f, owner.tag))
    if (reusable === undefined) {
      for (const r of records) {
        const f = await api.neutron.floatingIp(r.id)
        if (f !== undefined && f.port_id === null && f.floating_network_id === network.id) {
          reusable = f
          break
        }
      }
    }
  }
  return { network, port, fixedIp, current, how, reusable }
}

/**
 * Ensures a port (or a server's port) has a floating IP from an external network.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const floatingIp = ownedResource<FloatingIpParams, FloatingIpState, FloatingIp>({
  module: {
    name: 'openstack.floating_ip',
    summary:
      'A floating IP from an external network on a port or a server (the one already there is reused)',
    example: `- name: The jumphost's public address
  openstack.floating_ip:
    network: public
    server: kld-jumphost-vm
  register: jump_fip      # jump_fip.address`,
    params,
    acceptsUnknown: true,
    plan: (p, s) => printable(planFloatingIp(p, s)),
    output: (_p, s, changes) =>
      floatingIpOutput(
        changes.some((c) => c.action !== 'update') && changes.length > 0
          ? undefined
          : (s?.current ?? s?.reusable),
      ),
  },
  type: 'floating_ip',
  kind: 'floating IP',
  id: (f) => f.id,
  marked: isMarked,
  // A floating IP has no name: the pending record goes by the port it is made for.
  find: async (api, portId, ownerTag) =>
    (await api.neutron.floatingIps({ port_id: portId })).find((f) => isMarked(f, ownerTag)),
  read: readFloatingIp,
  current: (s) => s.current,
  async create({ ctx, p, s, api }) {
    const port = portOf(p, s)
    const body = {
      floating_network_id: s.network.id,
      port_id: port.id,
      ...(s.fixedIp ? { fixed_ip_address: s.fixedIp } : {}),
      // Stock Neutron refuses tags in the POST: the marker in `description` until it is tagged.
      description: ownerOf(ctx).tag,
    }
    return {
      name: port.id,
      recordName: (f) => f.floating_ip_address,
      extra: { network_id: s.network.id },
      post: () => api.neutron.createFloatingIp(body),
    }
  },
  async created({ ctx, api, p }, made) {
    await ensureTagged(ctx, api, 'floatingips', made)
    if (p.description !== undefined)
      await api.neutron.updateFloatingIp(made.id, { description: p.description })
    return made
  },
  async update({ ctx, api, p, s }) {
    if (p.state === 'disassociated' && s.current !== undefined)
      return api.neutron.updateFloatingIp(s.current.id, { port_id: null })
    const port = portOf(p, s)
    if (s.reusable === undefined) return undefined
    const id = s.reusable.id
    const f = await api.neutron.updateFloatingIp(id, {
      port_id: port.id,
      ...(s.fixedIp ? { fixed_ip_address: s.fixedIp } : {}),
    })
    if (ctx.journal.find('openstack.floating_ip', 'floating_ip', id).length === 0)
      await ctx.journal.record({
        type: 'floating_ip',
        id,
        name: f.floating_ip_address,
        data: await recordData(ctx, api, { network_id: s.network.id }),
      })
    return f
  },
  remove: ({ api }, id) => api.neutron.deleteGone('floatingips', id),
  async verify({ api, p, s }, f) {
    if (p.state === 'disassociated' && f !== undefined) {
      if (f.port_id !== null)
        throw new RunbookError(
          'E_API',
          `${targetOf(p, s)}: Neutron still shows ${f.floating_ip_address} on port ${f.port_id}`,
        )
      return floatingIpOutput(f)
    }
    const port = portOf(p, s)
    const now = f === undefined ? undefined : await api.neutron.floatingIp(f.id)
    if (now === undefined || now.port_id !== port.id)
      throw new RunbookError(
        'E_API',
        `${targetOf(p, s)}: Neutron does not show floating IP ${f?.id ?? '(none)'} on port ${port.id}`,
      )
    return floatingIpOutput(now)
  },
})

/** The port the floating IP must be on; by apply it is known. */
function portOf(p: FloatingIpParams, s: FloatingIpState): Port {
  if (s.port === undefined)
    throw new RunbookError('E_API', `${targetOf(p, s)}: the port is not there`)
  return s.port
}
