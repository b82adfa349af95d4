/**
 * `add_host`: a host joins the inventory during the run (a VM the runbook just created), with
 * its connection settings and groups, so later plays can target it.
 */
import { z } from 'zod'
import { defineModule } from '../../engine/module.ts'

const params = z.strictObject({
  name: z.string().min(1).describe('Inventory name of the host'),
  groups: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .describe('Groups it joins'),
  address: z.unknown().optional().describe('Address to connect to (may be known only after apply)'),
  user: z.string().optional().describe('Login user'),
  port: z.number().int().optional(),
  via: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .describe('Jumphost(s), by inventory name'),
  vars: z.record(z.string(), z.unknown()).optional().describe('More host variables'),
})

/** Adds a host to the inventory for the rest of the run. */
export const addHost = defineModule({
  name: 'add_host',
  summary: 'Add a host (e.g. a VM just created) to the inventory and to groups for later plays',
  example: `- name: The new VM joins the keepalived group, reached through the jumphost
  add_host:
    name: kld-vm-1
    groups: [keepalived]
    address: "{{vm1.server.ip}}"
    user: ubuntu
    via: kld-jumphost-vm`,
  params,
  target: 'controller',
  acceptsUnknown: true,
  // Adding to the in-memory inventory touches nothing outside the engine, so it happens during
  // gather: a plan then knows the hosts later plays will run on.
  gather: async (ctx, p) => {
    const groups = p.groups === undefined ? [] : Array.isArray(p.groups) ? p.groups : [p.groups]
    const vars: Record<string, unknown> = { ...(p.vars ?? {}) }
    if (p.address !== undefined) vars.address = p.address
    if (p.user !== undefined) vars.user = p.user
    if (p.port !== undefined) vars.port = p.port
    if (p.via !== undefined) vars.via = p.via
    ctx.inventory.addHost({ name: p.name, groups, vars })
    return { name: p.name, groups }
  },
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (_p, current) => ({ host: current ?? {} }),
})
