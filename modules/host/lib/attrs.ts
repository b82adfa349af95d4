/**
 * File attributes shared by copy, template and file: mode parsing, the stat probe, and the
 * before/after of attributes that differ.
 */
import { z } from 'zod'
import { quote } from '../../../engine/connection/shell.ts'
import { accountName } from '../../../engine/values.ts'

/**
 * A file mode as chmod reads it: `'0644'`, `'644'`, or a number whose digits are the octal mode
 * (`644`). YAML 1.2 reads `0644` as the decimal 644, so numbers are read digit by digit, never as
 * a decimal value (`0o644`, i.e. 420, is refused because 4-2-0 is not what anyone means).
 */
export const modeParam = z
  .union([
    z.string().regex(/^0?[0-7]{3,4}$/, 'an octal mode such as "0644"'),
    z
      .number()
      .int()
      .nonnegative()
      .refine((n) => /^[0-7]{3,4}$/.test(String(n)), 'an octal mode such as 0644 (digits 0-7)'),
  ])
  .describe(
    "Permissions as chmod's octal digits: '0644' (quoted) or 644; YAML's 0o644 form is refused",
  )

/** owner/group/mode parameters, as zod fields. */
export const attrParams = {
  mode: modeParam.optional(),
  owner: accountName
    .optional()
    .describe('User that owns the file (name or uid); unchanged when absent'),
  group: accountName.optional().describe('Group of the file (name or gid); unchanged when absent'),
}

/** The attributes a task asks for. */
export interface WantedAttrs {
  mode?: string | number | undefined
  owner?: string | undefined
  group?: string | undefined
}

/** Attributes of an existing file as the host reports them (mode as 4 octal digits). */
export interface FileAttrs {
  mode: string
  owner: string
  group: string
}

/**
 * Normalises a mode to four octal digits.
 * @example normMode(644) // '0644'; normMode('1777') // '1777'
 */
export function normMode(m: string | number): string {
  return String(m).padStart(4, '0').slice(-4)
}

/** A normalised mode as a number for chmod and writeFile. */
export function modeNumber(m: string | number): number {
  return parseInt(normMode(m), 8)
}

/** Shell lines that print `mode=`, `owner=`, `group=` of "$p" (following symlinks). */
export function statLines(): string {
  return `stat -L -c 'mode=%a\nowner=%U\ngroup=%G\nuid=%u\ngid=%g\nsize=%s' "$p"`
}

/** Parses what statLines printed. */
export function parseAttrs(kv: Record<string, string>): FileAttrs & { uid: string; gid: string } {
  return {
    mode: normMode(kv.mode ?? '0'),
    owner: kv.owner ?? '',
    group: kv.group ?? '',
    uid: kv.uid ?? '',
    gid: kv.gid ?? '',
  }
}

/** Whether `want` (a name or a numeric id) names the same user/group as the host reported. */
function sameId(want: string, name: string, id: string | undefined): boolean {
  return want === name || (id !== undefined && want === id)
}

/**
 * The attributes that differ, as before/after halves; undefined when all match.
 * @example attrDiff({ mode: '0600' }, { mode: '0644', owner: 'root', group: 'root' }) // { before: { mode: '0644' }, after: { mode: '0600' } }
 */
export function attrDiff(
  want: WantedAttrs,
  have: FileAttrs & { uid?: string; gid?: string },
): { before: Partial<FileAttrs>; after: Partial<FileAttrs> } | undefined {
  const before: Partial<FileAttrs> = {}
  const after: Partial<FileAttrs> = {}
  if (want.mode !== undefined && normMode(want.mode) !== have.mode) {
    before.mode = have.mode
    after.mode = normMode(want.mode)
  }
  if (want.owner !== undefined && !sameId(want.owner, have.owner, have.uid)) {
    before.owner = have.owner
    after.owner = want.owner
  }
  if (want.group !== undefined && !sameId(want.group, have.group, have.gid)) {
    before.group = have.group
    after.group = want.group
  }
  return Object.keys(after).length ? { before, after } : undefined
}

/** The wanted attributes that are set, normalised (for a change's `after`). */
export function wantedAttrs(want: WantedAttrs): Partial<FileAttrs> {
  const out: Partial<FileAttrs> = {}
  if (want.mode !== undefined) out.mode = normMode(want.mode)
  if (want.owner !== undefined) out.owner = want.owner
  if (want.group !== undefined) out.group = want.group
  return out
}

/** Shell commands that set the attributes in `after` on `path` (-h: the link itself when asked). */
export function setAttrsScript(path: string, after: Partial<FileAttrs>): string {
  const p = quote(path)
  const lines: string[] = []
  if (after.owner !== undefined || after.group !== undefined)
    lines.push(
      `chown ${quote(`${after.owner ?? ''}${after.group !== undefined ? `:${after.group}` : ''}`)} ${p}`,
    )
  if (after.mode !== undefined) lines.push(`chmod ${after.mode} ${p}`)
  return lines.join(' && ') || 'true'
}
