/**
 * `openstack.port_info`: the seed's `openstack port list --server X --fixed-ip ip-address=Y`, read
 * only. openstack.server already registers its ports; this lookup is for the step as the seed
 * does it — the address the VM itself reports (facts) leads to its Neutron port — and for servers
 * this runbook did not create. A server or address that exists only after apply is known after
 * apply during a plan; no match when applying is an error.
 */
import { z } from 'zod'
import { ipAddress } from '../../engine/values.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import type { Port } from './client/neutron.ts'
import { apiFor } from './lib/cloud.ts'
import { cloudParam, known, later } from './lib/params.ts'

const params = z.strictObject({
  server: later(z.string().min(1)).describe('Server name or id (`--server`)'),
  fixed_ip: later(ipAddress)
    .optional()
    .describe('Fixed IP address of the port (`--fixed-ip ip-address=`)'),
  cloud: cloudParam,
})

/** openstack.port_info's parameters. */
export type PortInfoParams = z.infer<typeof params>

/** The matching ports, or pending when the server or address is known only after apply. */
export interface PortInfoState {
  pending: boolean
  ports: Port[]
}

/** What `register` gets: the port (id, MAC, fixed IPs) and every match. */
export function portInfoOutput(s: PortInfoState | undefined): Record<string, unknown> {
  if (s === undefined || s.pending)
    return {
      id: unknown('port.id'),
      mac_address: unknown('port.mac_address'),
      ip: unknown('port.ip'),
      fixed_ips: unknown('port.fixed_ips'),
      network_id: unknown('port.network_id'),
      ports: unknown('ports'),
    }
  const view = (p: Port): Record<string, unknown> => ({
    id: p.id,
    name: p.name,
    mac_address: p.mac_address,
    ip: p.fixed_ips[0]?.ip_address ?? null,
    fixed_ips: p.fixed_ips,
    network_id: p.network_id,
    allowed_address_pairs: p.allowed_address_pairs,
    security_groups: p.security_groups,
  })
  const first = s.ports[0]
  return { ...(first === undefined ? {} : view(first)), ports: s.ports.map(view) }
}

/**
 * Looks up a server's port by fixed IP.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const portInfo = defineModule<PortInfoParams, PortInfoState>({
  name: 'openstack.port_info',
  summary:
    "Look up a server's Neutron port by fixed IP (openstack port list --server --fixed-ip), read only",
  example: `- name: The port behind the address the VM reports
  openstack.port_info:
    server: kld-vm-1
    fixed_ip: "{{hostvars.[kld-vm-1].facts.default_ipv4.address}}"
  register: vm1_port      # vm1_port.id`,
  params,
  target: 'controller',
  acceptsUnknown: true,
  async gather(ctx, p) {
    if (!known(p.server) || (p.fixed_ip !== undefined && !known(p.fixed_ip)))
      return { pending: true, ports: [] }
    const api = apiFor(ctx, p.cloud)
    const server = await api.nova.serverByRef(p.server)
    if (server === undefined) {
      if (ctx.check) return { pending: true, ports: [] }
      throw new RunbookError('E_API', `Nova: no server named or with id '${p.server}'`)
    }
    const ports = await api.neutron.ports({
      device_id: server.id,
      ...(p.fixed_ip === undefined ? {} : { fixed_ips: `ip_address=${p.fixed_ip}` }),
    })
    if (ports.length === 0)
      throw new RunbookError(
        'E_API',
        `server ${p.server} has no port${p.fixed_ip === undefined ? '' : ` with fixed IP ${p.fixed_ip}`}`,
      )
    if (ports.length > 1 && p.fixed_ip === undefined)
      throw new RunbookError(
        'E_API',
        `server ${p.server} has ${ports.length} ports (${ports.map((x) => x.id).join(', ')})`,
        { hint: 'give fixed_ip to pick one' },
      )
    return { pending: false, ports }
  },
  plan: () => [],
  apply: async (_ctx, _p, _changes, s) => ({ changed: false, output: portInfoOutput(s) }),
  output: (_p, s) => portInfoOutput(s),
})
