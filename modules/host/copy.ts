/**
 * `copy`: a file on the host with exactly this content (inline, or a file next to the runbook).
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { findSource } from '../../engine/runbook/search-path.ts'
import { isPrivate } from '../../engine/runbook/source.ts'
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
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
    content: z
      .string()
      .optional()
      .describe('The exact content of the file (use `src` for a file next to the runbook)'),
    src: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A file on the controller, relative to the runbook directory, copied byte for byte',
      ),
    ...contentFileParams,
  })
  .refine((p) => (p.content === undefined) !== (p.src === undefined), {
    message: 'give exactly one of `content` or `src`',
  })

/** copy's parameters. */
export type CopyParams = z.infer<typeof params>

/**
 * What the file must contain, read on the controller along the search path (a role's dirs, then
 * the runbook's), and whether the file is private (not world-readable: never shown in a diff).
 */
export async function readSourceFile(
  dirs: readonly string[],
  src: string,
): Promise<{ data: Buffer; private: boolean }> {
  const file = findSource(dirs, src) ?? path.resolve(dirs[dirs.length - 1] ?? '.', src)
  try {
    const data = await fs.readFile(file)
    return { data, private: isPrivate((await fs.stat(file)).mode) }
  } catch (e) {
    throw new RunbookError('E_PARAM', `cannot read src ${file}: ${(e as Error).message}`, {
      cause: e,
    })
  }
}

/**
 * The task's source file (`src`, looked up in its search path), read once per run however many
 * hosts use it: every host is given the same content, and 50 hosts do not read it 50 times.
 * @example const { data } = await taskSource(ctx, 'keepalived.conf.hbs')
 */
export function taskSource(
  ctx: Pick<ModuleContext, 'searchPath' | 'baseDir' | 'shared'>,
  src: string,
): Promise<{ data: Buffer; private: boolean }> {
  const dirs = ctx.searchPath ?? [ctx.baseDir]
  return ctx.shared(`source-file:${JSON.stringify([dirs, src])}`, () => readSourceFile(dirs, src))
}

/**
 * Ensures a file on the host has the given content, mode and owner.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const copy = defineModule<CopyParams, ContentFileState>({
  name: 'copy',
  summary: 'A file on the host with exactly this content (compared by sha256, replaced atomically)',
  example: `- copy:\n    dest: /etc/default/keepalived\n    content: "DAEMON_ARGS=\\"-D\\"\\n"\n    mode: '0644'\n    backup: true`,
  params,
  async gather(ctx, p) {
    const src = p.content === undefined ? await taskSource(ctx, p.src ?? '') : undefined
    const want = wanted(p.content ?? src?.data ?? '', src?.private)
    return { want, have: await gatherRemote(ctx, p.dest, want) }
  },
  plan: planContentFile,
  apply: (ctx, p, _changes, current) => applyContentFile(ctx, p, current),
  output: (p, current) => outputOf(p, current),
  destroy: destroyContentFile,
})
