/**
 * `assert`: fails the task unless every condition holds, in plan and apply alike.
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule } from '../../engine/module.ts'
import { isUnknown } from '../../engine/vars/unknown.ts'

const params = z.strictObject({
  that: z
    .union([z.string(), z.array(z.string())])
    .describe('Conditions, in the language of `when`; all must hold'),
  fail_msg: z.string().optional().describe('Message when a condition does not hold'),
  success_msg: z.string().optional(),
})

/** Checks conditions. */
export const assert = defineModule({
  name: 'assert',
  summary: 'Fail unless every condition holds',
  example: `- name: The VIP is on exactly one node
  assert:
    that:
      - vip_holders | length == 1
    fail_msg: "VIP held by {{vip_holders}}"`,
  params,
  gather: async (ctx, p) => {
    const conds = Array.isArray(p.that) ? p.that : [p.that]
    for (const c of conds) {
      const v = ctx.evaluate(c)
      if (isUnknown(v)) continue
      const ok =
        typeof v === 'string'
          ? !['', 'false', 'False', '0', 'no'].includes(v.trim())
          : Array.isArray(v)
            ? v.length > 0
            : Boolean(v)
      if (!ok) throw new RunbookError('E_ASSERT', p.fail_msg ?? `assertion failed: ${c}`)
    }
    return { msg: p.success_msg ?? 'all assertions passed' }
  },
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (_p, current) => current ?? {},
})
