/**
 * `fail`: stops the host with a message (usually under `when`).
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule } from '../../engine/module.ts'

/** Fails with a message. */
export const fail = defineModule({
  name: 'fail',
  summary: 'Fail the host with a message',
  example: `- name: Refuse an odd number of priorities
  fail:
    msg: "priorities must differ"
  when: nodes[0].priority == nodes[1].priority`,
  params: z.strictObject({
    msg: z.string().default('failed as requested').describe('The message'),
  }),
  freeForm: 'msg',
  gather: async (_ctx, p) => {
    throw new RunbookError('E_ASSERT', p.msg)
  },
  plan: () => [],
  apply: async () => ({ changed: false }),
})
