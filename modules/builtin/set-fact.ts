/**
 * `set_fact`: sets host variables for the rest of the run.
 */
import { z } from 'zod'
import { defineModule } from '../../engine/module.ts'

/** Sets variables on the host. */
export const setFact = defineModule({
  name: 'set_fact',
  summary: 'Set variables on the host for later tasks',
  example: `- name: Remember the VRRP interface
  set_fact:
    vrrp_interface: "{{facts.default_ipv4.interface}}"`,
  params: z.record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name'),
    z.unknown(),
  ),
  acceptsUnknown: true,
  gather: async () => null,
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (p) => ({ facts: p }),
  facts: (p) => p,
  providesVars: (args) => Object.keys(args),
})
