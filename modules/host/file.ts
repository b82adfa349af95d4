/**
 * `file`: a path on the host is a directory, an (empty if new) file, a symlink, or absent, with
 * mode and owner.
 */
import { z } from 'zod'
import { absolutePath, isSystemPath } from '../../engine/values.ts'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import {
  attrDiff,
  attrParams,
  parseAttrs,
  setAttrsScript,
  wantedAttrs,
  type FileAttrs,
} from './lib/attrs.ts'
import { parseKv, probe, run, tail } from './lib/remote.ts'

const params = z
  .strictObject({
    path: absolutePath.describe('Absolute path on the host'),
    state: z
      .enum(['directory', 'file', 'touch', 'link', 'absent'])
      .default('file')
      .describe(
        'directory (mkdir -p), file (must exist; only attributes are managed), touch (created empty if missing; an existing file is left as is, so it stays idempotent), link (symlink to `src`), absent (removed, recursively for a directory)',
      ),
    src: z.string().min(1).optional().describe('Target of the symlink (state: link)'),
    force: z
      .boolean()
      .default(false)
      .describe('state: link replaces a regular file or an empty directory found at `path`'),
    allow_system_path: z
      .boolean()
      .default(false)
      .describe(
        'state: absent may remove `/` or a top-level directory (`/etc`, `/usr`, `/var`, `/home`, ...) only with this set to true',
      ),
    ...attrParams,
  })
  .refine((p) => (p.state === 'link') === (p.src !== undefined), {
    message: '`src` is required with state: link, and only then',
  })
  .superRefine((p, ctx) => {
    if (p.state === 'absent' && !p.allow_system_path && isSystemPath(p.path))
      ctx.addIssue({
        code: 'custom',
        path: ['path'],
        message: `refusing to remove ${p.path}: it is / or a top-level system directory (set allow_system_path: true if you mean it)`,
      })
  })

/** file's parameters. */
export type FileParams = z.infer<typeof params>

/** What is at the path. */
export type PathState = { type: 'absent'; parentExists: boolean } | ExistingPath

/** Something exists at the path. */
export interface ExistingPath extends FileAttrs {
  type: 'file' | 'directory' | 'link' | 'other'
  uid: string
  gid: string
  linkTarget?: string
}

const TYPES: Record<string, 'file' | 'directory' | 'link'> = {
  'regular file': 'file',
  'regular empty file': 'file',
  directory: 'directory',
  'symbolic link': 'link',
}

async function gatherPath(ctx: ModuleContext, p: FileParams): Promise<PathState> {
  const script = [
    `p=${quote(p.path)}`,
    'if [ -e "$p" ] || [ -L "$p" ]; then',
    `  stat -c 'type=%F\nmode=%a\nowner=%U\ngroup=%G\nuid=%u\ngid=%g' "$p"`,
    '  [ -L "$p" ] && echo "target=$(readlink "$p")"',
    'else echo type=absent; if [ -d "$(dirname "$p")" ]; then echo parent=yes; fi; fi',
    'true',
  ].join('\n')
  const kv = parseKv(await probe(ctx, script, `stat ${p.path}`))
  if (kv.type === 'absent') return { type: 'absent', parentExists: kv.parent === 'yes' }
  const s: ExistingPath = { type: TYPES[kv.type ?? ''] ?? 'other', ...parseAttrs(kv) }
  if (kv.target !== undefined) s.linkTarget = kv.target
  return s
}

function planPath(p: FileParams, s: PathState): Change[] {
  const target = `${p.state === 'link' ? 'link' : p.state === 'directory' ? 'directory' : 'file'} ${p.path}`
  const attrs = wantedAttrs(p)
  if (p.state === 'absent')
    return s.type === 'absent'
      ? []
      : [{ action: 'delete', target: `${s.type} ${p.path}`, before: { type: s.type } }]
  if (s.type === 'absent') {
    if (p.state === 'file')
      throw new RunbookError(
        'E_MODULE',
        `${p.path} does not exist (state: file does not create files; use state: touch)`,
      )
    const after = {
      type: p.state === 'touch' ? 'file' : p.state,
      ...(p.src ? { src: p.src } : {}),
      ...attrs,
    }
    return [{ action: 'create', target, after }]
  }
  const wantType = p.state === 'touch' ? 'file' : p.state
  if (s.type !== wantType) {
    if (p.state === 'link' && p.force && (s.type === 'file' || s.type === 'directory')) {
      return [
        {
          action: 'replace',
          target,
          before: { type: s.type },
          after: { type: 'link', src: p.src, ...attrs },
        },
      ]
    }
    throw new RunbookError(
      'E_MODULE',
      `${p.path} is a ${s.type}, not a ${wantType}${p.state === 'link' ? ' (force: true replaces a file or an empty directory)' : ''}`,
    )
  }
  const changes: Change[] = []
  if (p.state === 'link' && s.linkTarget !== p.src)
    changes.push({ action: 'update', target, before: { src: s.linkTarget }, after: { src: p.src } })
  // A symlink's own mode means nothing on Linux; its owner is what chown -h sets.
  const diff = attrDiff(p.state === 'link' ? { owner: p.owner, group: p.group } : p, s)
  if (diff) changes.push({ action: 'update', target, before: diff.before, after: diff.after })
  return changes
}

/**
 * Ensures a path is a directory, file, link, or absent.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const file = defineModule<FileParams, PathState>({
  name: 'file',
  summary: 'A path on the host is a directory, a file, a symlink, or absent, with mode and owner',
  example: `- file: { path: /etc/keepalived, state: directory, mode: '0755' }`,
  params,
  aliases: { dest: 'path', name: 'path' },
  gather: gatherPath,
  plan: planPath,
  async apply(ctx, p, changes, s) {
    const q = quote(p.path)
    const lines: string[] = []
    for (const c of changes) {
      if (c.action === 'delete') lines.push(`rm -rf -- ${q}`)
      if (c.action === 'replace')
        lines.push(s.type === 'directory' ? `rmdir -- ${q}` : `rm -f -- ${q}`)
      if (c.action === 'create' || c.action === 'replace') {
        if (p.state === 'directory') lines.push(`mkdir -p -- ${q}`)
        else if (p.state === 'link') lines.push(`ln -s -- ${quote(p.src ?? '')} ${q}`)
        else lines.push(`: >> ${q}`)
        const attrs = wantedAttrs(p.state === 'link' ? { owner: p.owner, group: p.group } : p)
        if (Object.keys(attrs).length)
          lines.push(
            p.state === 'link'
              ? setAttrsScript(p.path, attrs).replace('chown ', 'chown -h ')
              : setAttrsScript(p.path, attrs),
          )
      }
      if (c.action === 'update') {
        const after = c.after as Partial<FileAttrs> & { src?: string }
        if (after.src !== undefined) lines.push(`ln -sfn -- ${quote(after.src)} ${q}`)
        else
          lines.push(
            p.state === 'link'
              ? setAttrsScript(p.path, after).replace('chown ', 'chown -h ')
              : setAttrsScript(p.path, after),
          )
      }
    }
    const r = await run(ctx, ['set -e', ...lines].join('\n'))
    if (r.rc !== 0)
      throw new RunbookError('E_COMMAND', `file ${p.path}: ${tail(r.stderr || r.stdout)}`)
    const now = await gatherPath(ctx, p)
    const left = planPath(p, now)
    if (left.length)
      throw new RunbookError(
        'E_MODULE',
        `file ${p.path}: still differs after apply (${left.map((c) => c.target).join(', ')})`,
      )
    const created = changes.some((c) => c.action === 'create' || c.action === 'replace')
    if (created)
      await ctx.journal.record({ type: p.state === 'directory' ? 'directory' : 'file', id: p.path })
    if (p.state === 'absent') await ctx.journal.forget('file', p.path)
    return { changed: true, output: outputOf(p, now) }
  },
  output: (p, s) => outputOf(p, s),
  async destroy(ctx, r) {
    const q = quote(r.id)
    const script =
      r.type === 'directory'
        ? `if [ -d ${q} ]; then rmdir -- ${q}; fi`
        : `if [ -L ${q} ] || [ -f ${q} ]; then rm -f -- ${q}; fi`
    const res = await run(ctx, script)
    if (res.rc !== 0)
      throw new RunbookError(
        'E_COMMAND',
        `cannot remove ${r.id}: ${tail(res.stderr)}${r.type === 'directory' ? ' (a directory the runbook created is removed only when empty)' : ''}`,
      )
  },
})

function outputOf(p: FileParams, s: PathState | undefined): Record<string, unknown> {
  if (!s || s.type === 'absent') return { path: p.path, state: 'absent' }
  return {
    path: p.path,
    state: s.type,
    mode: s.mode,
    owner: s.owner,
    group: s.group,
    ...(s.linkTarget !== undefined ? { src: s.linkTarget } : {}),
  }
}
