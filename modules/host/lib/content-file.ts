/**
 * The engine of `copy` and `template`: a file whose content the controller knows. The host is
 * asked for the file's sha256 and attributes in one round trip, and for its content only when it
 * differs and is small enough for a diff, so an unchanged file is never transferred.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { filePath } from '../../../engine/values.ts'
import { quote } from '../../../engine/connection/shell.ts'
import { RunbookError } from '../../../engine/errors.ts'
import type { ApplyResult, ModuleContext, ResourceRecord } from '../../../engine/module.ts'
import type { Change } from '../../../engine/plan/change.ts'
import { KNOWN_AFTER_APPLY, UNKNOWN_MARK } from '../../../engine/vars/unknown.ts'
import {
  attrDiff,
  attrParams,
  modeNumber,
  parseAttrs,
  setAttrsScript,
  statLines,
  wantedAttrs,
  type FileAttrs,
} from './attrs.ts'
import { parseKv, probe, run, tail } from './remote.ts'

/** Largest current file fetched for a diff; larger files show a checksum change only. */
export const DIFF_LIMIT = 256 * 1024

/** Parameters common to copy and template. */
export const contentFileParams = {
  dest: filePath.describe('Absolute path of the file on the host'),
  ...attrParams,
  backup: z
    .boolean()
    .default(false)
    .describe('Keep the old file as `dest.<timestamp>~` before replacing it'),
  validate: z
    .string()
    .regex(/%s/, "must contain %s, the path of the new file (e.g. 'keepalived -t -f %s')")
    .optional()
    .describe(
      'Command run on the host against the new content (%s = a temp file next to dest) before it replaces the old file; a non-zero rc leaves the old file untouched',
    ),
}

/** What the task wants, resolved on the controller (content rendered or read). */
export interface WantedContent {
  /** UTF-8 text, or base64 when `binary`; contains UNKNOWN_MARK when known only after apply. */
  content: string
  binary: boolean
  /** null when the content is not known until apply. */
  sha256: string | null
  /**
   * Read from a controller file that is not world-readable (0600, 0640): never shown in a diff,
   * only its checksum and size.
   */
  private?: boolean
  /** Size in bytes. */
  size?: number
}

/** The destination as the host reports it. */
export type RemoteFile =
  | { type: 'absent'; parentExists: boolean }
  | { type: 'directory' }
  | { type: 'other' }
  | RegularFile

/** An existing regular file (content only when fetched for a diff). */
export interface RegularFile extends FileAttrs {
  type: 'file'
  /** The path after following symlinks: what gets replaced. */
  path: string
  sha256: string
  size: number
  uid: string
  gid: string
  content?: string
}

/** gather's result. */
export interface ContentFileState {
  want: WantedContent
  have: RemoteFile
}

/** The parameters the shared code reads. */
export interface ContentFileParams {
  dest: string
  mode?: string | number | undefined
  owner?: string | undefined
  group?: string | undefined
  backup: boolean
  validate?: string | undefined
}

/** Wraps controller-side content as WantedContent. */
export function wanted(data: string | Buffer, isPrivate = false): WantedContent {
  const w = wantedOf(data)
  return isPrivate ? { ...w, private: true, size: Buffer.byteLength(data) } : w
}

function wantedOf(data: string | Buffer): WantedContent {
  if (typeof data === 'string') {
    const unknown = data.includes(UNKNOWN_MARK)
    return { content: data, binary: false, sha256: unknown ? null : sha256(data) }
  }
  // Bytes that do not survive a UTF-8 round trip (NUL, latin-1) are kept as they are, without a diff.
  const text = data.toString('utf8')
  if (data.includes(0) || !Buffer.from(text, 'utf8').equals(data))
    return { content: data.toString('base64'), binary: true, sha256: sha256(data) }
  return { content: text, binary: false, sha256: sha256(data) }
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

function bytes(w: WantedContent): Buffer {
  return w.binary ? Buffer.from(w.content, 'base64') : Buffer.from(w.content, 'utf8')
}

/** One round trip: type, attributes and sha256 of dest; its content only when it differs and is small. */
export async function gatherRemote(
  ctx: ModuleContext,
  dest: string,
  want: WantedContent,
): Promise<RemoteFile> {
  const script = [
    `p=${quote(dest)}`,
    'if [ -e "$p" ]; then',
    '  if [ -d "$p" ]; then echo type=directory; exit 0; fi',
    '  if [ ! -f "$p" ]; then echo type=other; exit 0; fi',
    // the file a symlink leads to is the one written (readlink only for a link: one process less)
    '  echo type=file; if [ -L "$p" ]; then echo "path=$(readlink -f "$p")"; else echo "path=$p"; fi',
    `  ${statLines()}`,
    '  s=$(sha256sum < "$p"); s=${s%% *}; echo "sha256=$s"',
    `  if [ "$s" != ${quote(want.sha256 ?? '-')} ] && [ "$(stat -L -c %s "$p")" -le ${DIFF_LIMIT} ]; then printf content=; base64 -w0 < "$p"; echo; fi`,
    'else',
    '  echo type=absent',
    '  if [ -d "$(dirname "$p")" ]; then echo parent=yes; else echo parent=no; fi',
    'fi',
  ].join('\n')
  const kv = parseKv(await probe(ctx, script, `stat ${dest}`))
  if (kv.type === 'absent') return { type: 'absent', parentExists: kv.parent === 'yes' }
  if (kv.type === 'directory') return { type: 'directory' }
  if (kv.type === 'other') return { type: 'other' }
  const file: RegularFile = {
    type: 'file',
    path: kv.path ?? dest,
    sha256: kv.sha256 ?? '',
    size: Number(kv.size ?? 0),
    ...parseAttrs(kv),
  }
  if (kv.content !== undefined) {
    const raw = Buffer.from(kv.content, 'base64')
    if (!raw.includes(0)) file.content = raw.toString('utf8')
  }
  return file
}

/** Text for a diff: unknown parts shown as `(known after apply)`; binary content has none. */
function diffText(w: WantedContent): string | undefined {
  return w.binary || w.private === true
    ? undefined
    : w.content.split(UNKNOWN_MARK).join(KNOWN_AFTER_APPLY)
}

/**
 * The changes for one content file: create, or update of content and/or attributes.
 * @example planContentFile({ dest: '/etc/x', backup: false }, { want: wanted('a\n'), have: { type: 'absent', parentExists: true } })
 */
export function planContentFile(p: ContentFileParams, s: ContentFileState): Change[] {
  const target = `file ${p.dest}`
  const { want, have } = s
  if (have.type === 'directory' || have.type === 'other')
    throw new RunbookError('E_MODULE', `${p.dest} exists and is not a regular file (${have.type})`)
  const after = { sha256: want.sha256 ?? KNOWN_AFTER_APPLY, ...wantedAttrs(p) }
  const text = diffText(want)
  const hidden =
    want.private === true
      ? `content not shown (its source is not world-readable): sha256 ${want.sha256 ?? KNOWN_AFTER_APPLY}, ${want.size ?? '?'} bytes`
      : undefined
  if (have.type === 'absent') {
    const note = have.parentExists
      ? hidden
      : `directory ${p.dest.slice(0, p.dest.lastIndexOf('/')) || '/'} does not exist: apply will fail`
    return [
      {
        action: 'create',
        target,
        after,
        ...(text !== undefined ? { diff: { path: p.dest, before: '', after: text } } : {}),
        ...(note ? { note } : {}),
      },
    ]
  }
  const attrs = attrDiff(p, have)
  const contentDiffers = want.sha256 !== have.sha256
  if (!contentDiffers && !attrs) return []
  const before: Record<string, unknown> = { ...attrs?.before }
  const afterU: Record<string, unknown> = { ...attrs?.after }
  const change: Change = { action: 'update', target, before, after: afterU }
  if (contentDiffers) {
    before.sha256 = have.sha256
    afterU.sha256 = want.sha256 ?? KNOWN_AFTER_APPLY
    if (text !== undefined && have.content !== undefined)
      change.diff = { path: p.dest, before: have.content, after: text }
    else
      change.note =
        hidden ??
        (want.sha256 === null
          ? 'content known after apply'
          : 'content differs (binary or larger than the diff limit)')
  }
  return [change]
}

/** Writes the new content (after `validate` and `backup`), or only fixes attributes; verifies. */
export async function applyContentFile(
  ctx: ModuleContext,
  p: ContentFileParams,
  s: ContentFileState,
): Promise<ApplyResult> {
  const { want, have } = s
  if (want.sha256 === null)
    throw new RunbookError('E_MODULE', `content of ${p.dest} is still unknown at apply`)
  const conn = await ctx.conn()
  const dest = have.type === 'file' ? have.path : p.dest
  let backupFile: string | undefined
  if (have.type !== 'file' || have.sha256 !== want.sha256) {
    if (have.type === 'absent' && !have.parentExists)
      throw new RunbookError('E_MODULE', `cannot create ${p.dest}: its directory does not exist`)
    // journalled before it exists: a run killed between the write and the record would leave a
    // file no later run owns (found by test/chaos); destroying a file that never came is a no-op
    if (have.type === 'absent') await ctx.journal.record({ type: 'file', id: p.dest })
    const pre = prepareScript(dest, p, have.type === 'file')
    if (pre) {
      const r = await run(ctx, pre, { stdin: bytes(want) })
      if (r.rc !== 0) {
        const out = tail(`${r.stdout}${r.stderr}`)
        if (r.rc === 97)
          throw new RunbookError(
            'E_COMMAND',
            `validation of ${p.dest} failed, the old file is untouched: ${p.validate ?? ''}\n${out}`,
          )
        throw new RunbookError('E_COMMAND', `preparing ${p.dest} failed (rc ${r.rc}): ${out}`)
      }
      backupFile = parseKv(r.stdout).backup
    }
    await conn.writeFile(dest, bytes(want), {
      mode: p.mode === undefined ? undefined : modeNumber(p.mode),
      owner: p.owner,
      group: p.group,
      become: ctx.become,
    })
  } else {
    const attrs = attrDiff(p, have)
    if (attrs) {
      const r = await run(ctx, setAttrsScript(dest, attrs.after))
      if (r.rc !== 0)
        throw new RunbookError('E_COMMAND', `cannot set attributes of ${p.dest}: ${tail(r.stderr)}`)
    }
  }
  const now = await gatherRemote(ctx, p.dest, want)
  if (now.type !== 'file' || now.sha256 !== want.sha256 || attrDiff(p, now)) {
    throw new RunbookError(
      'E_MODULE',
      `${p.dest} does not have the content and attributes just written (post-condition failed)`,
    )
  }
  return { changed: true, output: outputOf(p, { want, have: now }, backupFile) }
}

/** validate (rc 97 when the validator fails) and backup in one script; '' when neither is asked. */
function prepareScript(dest: string, p: ContentFileParams, exists: boolean): string {
  const lines: string[] = []
  if (p.validate) {
    const dir = dest.slice(0, dest.lastIndexOf('/')) || '/'
    const base = dest.slice(dest.lastIndexOf('/') + 1)
    lines.push(
      `t=$(mktemp ${quote(`${dir}/.${base}.rb-validate-XXXXXX`)}) || exit 1`,
      `trap 'rm -f "$t"' EXIT`,
      'cat > "$t" || exit 1',
      p.mode === undefined ? '' : `chmod ${modeNumber(p.mode).toString(8)} "$t"`,
      `( ${p.validate.split('%s').join('"$t"')} ) 2>&1 || exit 97`,
    )
  } else lines.push('cat > /dev/null')
  if (p.backup && exists) {
    lines.push(
      `d=${quote(dest)}`,
      'b="$d.$(date +%Y-%m-%d@%H:%M:%S)~"',
      '[ -e "$b" ] && b="$d.$(date +%Y-%m-%d@%H:%M:%S.%N)~"',
      'cp -p "$d" "$b" || exit 1',
      'echo "backup=$b"',
    )
  }
  return p.validate || (p.backup && exists) ? lines.filter(Boolean).join('\n') : ''
}

/** What `register` holds. */
export function outputOf(
  p: ContentFileParams,
  s: ContentFileState | undefined,
  backupFile?: string,
): Record<string, unknown> {
  const have = s?.have
  const out: Record<string, unknown> = {
    dest: p.dest,
    checksum: s?.want.sha256 ?? KNOWN_AFTER_APPLY,
  }
  if (have?.type === 'file')
    Object.assign(out, { size: have.size, mode: have.mode, owner: have.owner, group: have.group })
  if (backupFile) out.backup_file = backupFile
  return out
}

/** Removes a file this runbook created, if it is still a regular file. */
export async function destroyContentFile(ctx: ModuleContext, r: ResourceRecord): Promise<void> {
  const q = quote(r.id)
  const res = await run(ctx, `if [ -f ${q} ] || [ -L ${q} ]; then rm -f ${q}; fi`)
  if (res.rc !== 0)
    throw new RunbookError('E_COMMAND', `cannot remove ${r.id}: ${tail(res.stderr)}`)
}
