/**
 * `debug`: prints a message or a variable during plan and apply; changes nothing.
 */
import { z } from 'zod'
import { defineModule } from '../../engine/module.ts'

const params = z
  .strictObject({
    msg: z.unknown().optional().describe('What to print (rendered)'),
    var: z.string().optional().describe('Name or expression of a variable to print'),
  })
  .refine((p) => (p.msg !== undefined) !== (p.var !== undefined), {
    message: 'give msg or var (one of them, not both)',
  })

/** Prints a message or a variable. */
export const debug = defineModule({
  name: 'debug',
  summary: 'Print a message or a variable; changes nothing',
  example: `- name: Show the master's interface
  debug:
    msg: "VRRP runs on {{facts.default_ipv4.interface}}"`,
  params,
  freeForm: 'msg',
  gather: async (ctx, p) =>
    p.var !== undefined ? { [p.var]: ctx.evaluate(p.var) } : { msg: p.msg },
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (_p, current) => current ?? {},
  display: (o) => JSON.stringify(o.msg !== undefined ? o.msg : o, null, 2).replace(/^"|"$/g, ''),
})
