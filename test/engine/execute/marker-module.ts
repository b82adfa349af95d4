/**
 * A small real module for executor tests: ensures a marker file with given content exists
 * (or not). It touches the real filesystem, so tests see real state between runs.
 */
import { promises as fs } from 'node:fs'
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import { defineModule } from '../../../engine/module.ts'
import { unknown } from '../../../engine/vars/unknown.ts'

/** Ensures a marker file. */
export const marker = defineModule({
  name: 'marker',
  summary: 'test module: a file with content',
  example: '- marker: { path: /tmp/x, content: a }',
  params: z.strictObject({
    path: z.string(),
    content: z.string().default(''),
    state: z.enum(['present', 'absent']).default('present'),
    fail: z.boolean().default(false),
  }),
  gather: async (ctx, p) => {
    await ctx.conn()
    return fs.readFile(p.path, 'utf8').catch(() => null)
  },
  plan: (p, current) => {
    if (p.state === 'absent')
      return current === null ? [] : [{ action: 'delete', target: `marker ${p.path}` }]
    if (current === p.content) return []
    return [
      {
        action: current === null ? 'create' : 'update',
        target: `marker ${p.path}`,
        diff: { path: p.path, before: current ?? '', after: p.content },
      },
    ]
  },
  apply: async (ctx, p) => {
    if (p.fail) throw new RunbookError('E_MODULE', `marker ${p.path} refused`)
    if (p.state === 'absent') await fs.rm(p.path, { force: true })
    else {
      const existed = await fs.stat(p.path).then(
        () => true,
        () => false,
      )
      await fs.writeFile(p.path, p.content)
      if (!existed) ctx.journal.record({ type: 'marker', id: p.path })
    }
    return { output: { path: p.path, id: p.path } }
  },
  // The id exists once the file does: during a plan of a new file it is known only after apply.
  output: (p, current) => ({
    path: p.path,
    id: current === undefined || current === null ? unknown('id') : p.path,
  }),
  destroy: async (_ctx, r) => fs.rm(r.id, { force: true }),
})
