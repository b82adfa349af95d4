/**
 * `template`: a file on the host rendered from a Handlebars template with the task's variables.
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule } from '../../engine/module.ts'
import { taskSource } from './copy.ts'
import {
  applyContentFile,
  contentFileParams,
  destroyContentFile,
  gatherRemote,
  outputOf,
  planContentFile,
  wanted,
  type ContentFileState,
} from './lib/content-file.ts'

const params = z
  .strictObject({
    src: z
      .string()
      .min(1)
      .optional()
      .describe('Handlebars template file on the controller, relative to the runbook directory'),
    content: z.string().optional().describe('An inline Handlebars template (instead of `src`)'),
    vars: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('Extra variables for this template only'),
    ...contentFileParams,
  })
  .refine((p) => (p.content === undefined) !== (p.src === undefined), {
    message: 'give exactly one of `src` or `content`',
  })

/** template's parameters. */
export type TemplateParams = z.infer<typeof params>

/**
 * Renders a template to a file on the host; `validate` checks it there before it replaces the old.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const template = defineModule<TemplateParams, ContentFileState>({
  name: 'template',
  summary:
    'A file on the host rendered from a Handlebars template (diffed, validated, replaced atomically)',
  example: `- template:\n    src: templates/keepalived.conf.hbs\n    dest: /etc/keepalived/keepalived.conf\n    validate: keepalived -t -f %s\n    mode: '0640'\n  notify: restart keepalived`,
  params,
  rawParams: ['content'],
  templateFiles: (a) =>
    typeof a.src === 'string' && !a.src.includes('{{')
      ? [
          {
            path: a.src,
            vars: a.vars !== null && typeof a.vars === 'object' ? Object.keys(a.vars) : [],
          },
        ]
      : [],
  async gather(ctx, p) {
    const file = p.content === undefined ? await taskSource(ctx, p.src ?? '') : undefined
    const source = p.content ?? file?.data.toString('utf8') ?? ''
    let text: string
    try {
      text = ctx.render(source, p.vars)
    } catch (e) {
      if (e instanceof RunbookError) throw e
      throw new RunbookError('E_TEMPLATE', `${p.src ?? 'content'}: ${(e as Error).message}`, {
        cause: e,
      })
    }
    const want = wanted(text, file?.private)
    return { want, have: await gatherRemote(ctx, p.dest, want) }
  },
  plan: planContentFile,
  apply: (ctx, p, _changes, current) => applyContentFile(ctx, p, current),
  output: (p, current) => outputOf(p, current),
  destroy: destroyContentFile,
})
