/**
 * `keepalived.vip_answers`: a check that a VIP answers pings from the host (the jumphost, a
 * client), waiting a bounded time for it. When it does not, it says why: no node holds the VIP,
 * two do, or the holder's port may not send from it (allowed address pairs), told apart by
 * pinging the holder's own address (lib/silence.ts).
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule } from '../../engine/module.ts'
import { answers, whySilent } from './lib/silence.ts'
import { requireHosts, vipAddress } from './lib/vip.ts'

const params = z.strictObject({
  vip: z.string().min(1).describe('The virtual IP (`192.0.2.254` or `192.0.2.254/24`)'),
  nodes: z
    .array(z.string().min(1))
    .min(1)
    .describe('Inventory names of the nodes that may hold it (asked when it does not answer)'),
  timeout: z
    .number()
    .positive()
    .max(600)
    .default(10)
    .describe('Seconds to wait for a first reply (a VIP just configured may still be moving)'),
})

/** keepalived.vip_answers' parameters. */
export type VipAnswersParams = z.infer<typeof params>

/**
 * Asserts that a VIP answers, and says why when it does not.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keepalivedVipAnswers = defineModule<VipAnswersParams, { answered: boolean }>({
  name: 'keepalived.vip_answers',
  summary: 'Asserts that a VIP answers pings from the host; when not, says why (holder, port)',
  example: `- name: The VIP answers from the jumphost
  keepalived.vip_answers: { vip: 192.0.2.254, nodes: [kld-vm-1, kld-vm-2] }`,
  params,
  verifies: true,
  async gather(ctx, p) {
    requireHosts(ctx, 'keepalived.vip_answers', p.nodes)
    return { answered: await answers(ctx, vipAddress(p.vip), 1, 2) }
  },
  plan: (p, s) =>
    s.answered
      ? []
      : [
          {
            action: 'run',
            target: `ping ${vipAddress(p.vip)}`,
            note: `no reply now; waits up to ${p.timeout} s`,
          },
        ],
  async apply(ctx, p) {
    const vip = vipAddress(p.vip)
    ctx.progress(`waiting for ${vip} to answer (at most ${p.timeout} s)`)
    if (await answers(ctx, vip, Math.ceil(p.timeout / 0.2), p.timeout))
      return { changed: false, output: { vip, answered: true } }
    ctx.progress(`${vip} is silent: asking ${p.nodes.join(', ')} who holds it`)
    throw new RunbookError(
      'E_ASSERT',
      `${vip} does not answer from ${ctx.host} within ${p.timeout} s: ${await whySilent(ctx, vip, p.nodes)}`,
    )
  },
  output: (p, s) => ({ vip: vipAddress(p.vip), answered: s?.answered ?? false }),
})
