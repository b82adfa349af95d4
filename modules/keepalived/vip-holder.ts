/**
 * `keepalived.vip_holder`: which node holds a VIP right now. Read-only: it asks every node (through
 * ctx.connectTo, so it can run on the jumphost or the controller) and changes nothing, so a runbook
 * can `register` it and `assert` on it, and a plan shows it too.
 */
import { z } from 'zod'
import { addressMaybeCidr } from '../../engine/values.ts'
import { defineModule } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import { probeHolders, vipAddress, type HolderProbe } from './lib/vip.ts'

const params = z.strictObject({
  vip: addressMaybeCidr.describe('The virtual IP (`192.0.2.254` or `192.0.2.254/24`)'),
  nodes: z
    .array(z.string().min(1))
    .min(1)
    .describe('Inventory names of the nodes that may hold it'),
  interface: z
    .string()
    .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'an interface name')
    .optional()
    .describe('Look only on this interface (default: every interface)'),
})

/** keepalived.vip_holder's parameters. */
export type VipHolderParams = z.infer<typeof params>

/**
 * What register gets from the probes.
 * @example holderOutput('192.0.2.254', [{ node: 'a', interface: 'ens3' }, { node: 'b', interface: null }]) // { holder: 'a', holders: ['a'], ... }
 */
export function holderOutput(vip: string, probes: readonly HolderProbe[]): Record<string, unknown> {
  const holders = probes.filter((p) => p.interface !== null)
  return {
    vip,
    holder: holders.length === 1 ? holders[0]?.node : null,
    holders: holders.map((p) => p.node),
    // the nodes that do not hold it: keepalived.failover's `backups` when the holder is the master
    others: probes.filter((p) => p.interface === null).map((p) => p.node),
    interfaces: Object.fromEntries(holders.map((p) => [p.node, p.interface])),
  }
}

/**
 * Reports which node holds a VIP.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keepalivedVipHolder = defineModule<VipHolderParams, HolderProbe[]>({
  name: 'keepalived.vip_holder',
  summary: 'Which node holds a VIP now (read-only; asks every node, from any host)',
  example: `- keepalived.vip_holder: { vip: 192.0.2.254, nodes: [kld-vm-1, kld-vm-2] }\n  register: vip\n- assert: { that: "vip.holder == 'kld-vm-1'" }`,
  params,
  verifies: true,
  gather: (ctx, p) => probeHolders(ctx, p.nodes, vipAddress(p.vip), p.interface),
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (p, probes) =>
    probes
      ? holderOutput(vipAddress(p.vip), probes)
      : {
          vip: vipAddress(p.vip),
          holder: unknown('holder'),
          holders: unknown('holders'),
          others: unknown('others'),
          interfaces: unknown('interfaces'),
        },
  display: (o) => {
    const holders = Array.isArray(o.holders) ? (o.holders as string[]) : []
    if (holders.length === 0) return `${String(o.vip)} is on no node`
    return `${String(o.vip)} is on ${holders.join(' and ')}${holders.length > 1 ? ' (split brain)' : ''}`
  },
})
