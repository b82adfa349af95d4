/**
 * Redaction by content, beyond redaction by value: a secret that was rotated is no longer the
 * current value, yet the old one is still in the file on the host, in the diff of a plan and in
 * what a task reads back. So (1) every value a secret ever had is kept in the secrets store and
 * redacted like the current one, and (2) a file whose content holds a secret is sensitive as a
 * whole: its diff still shows which lines change, with the secret parts masked on both sides,
 * including a value on the host that this state directory never knew.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { removeStaleTemps, writeFileAtomic } from '../connection/local.ts'
import type { Change, ContentDiff } from '../plan/change.ts'
import { MASK, type Redactor } from './secrets.ts'

/** The marker of a masked value that is not the one on the host: the line changes. */
export const MASK_CHANGED = `${MASK} (changed)`

/** How many earlier values of each secret are kept. */
const HISTORY_DEPTH = 20

/** The file of earlier secret values, inside the secrets store (0600, like generated secrets). */
function historyFile(stateDir: string): string {
  return path.join(stateDir, 'secrets', '.history.json')
}

/**
 * Every value each secret had in earlier runs of this state directory.
 * @example for (const v of await secretHistory(stateDir)) redactor.add(v)
 */
export async function secretHistory(stateDir: string): Promise<string[]> {
  try {
    const doc = JSON.parse(await fs.readFile(historyFile(stateDir), 'utf8')) as unknown
    if (doc === null || typeof doc !== 'object') return []
    return Object.values(doc as Record<string, unknown>).flatMap((v) =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [],
    )
  } catch {
    return []
  }
}

/**
 * Adds the current secret values to the history (a value already there is kept once).
 * @example await rememberSecrets(stateDir, { auth_pass: 'n3w' })
 */
export async function rememberSecrets(
  stateDir: string,
  values: Record<string, string>,
): Promise<void> {
  const file = historyFile(stateDir)
  let doc: Record<string, string[]>
  try {
    doc = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string[]>
  } catch {
    doc = {}
  }
  let dirty = false
  for (const [name, value] of Object.entries(values)) {
    const list = Array.isArray(doc[name]) ? doc[name] : []
    if (value === '' || list.includes(value)) continue
    doc[name] = [...list, value].slice(-HISTORY_DEPTH)
    dirty = true
  }
  if (!dirty) return
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  await removeStaleTemps(file)
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 })
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * The shape of a line that holds a secret: the text around the secret, with the secret as a
 * capture. Undefined when nothing around it tells lines apart (a file that is only a token).
 */
function shapeOf(line: string, r: Redactor): RegExp | undefined {
  const parts = r.split(line)
  if (parts.join('').trim().length < 2) return undefined
  return new RegExp(`^${parts.map(escape).join('(.+?)')}$`)
}

/** A line with its secret parts masked: known values, or the parts a known shape captures. */
function maskLine(line: string, r: Redactor, shapes: readonly RegExp[]): string | undefined {
  if (r.contains(line)) return r.text(line)
  for (const shape of shapes) {
    const m = shape.exec(line)
    if (!m) continue
    let out = ''
    let rest = line
    for (const g of m.slice(1)) {
      const at = rest.indexOf(g ?? '')
      out += rest.slice(0, at) + MASK
      rest = rest.slice(at + (g ?? '').length)
    }
    return out + rest
  }
  return undefined
}

/**
 * A content diff with the secret parts of both sides masked; a line whose secret changed still
 * shows as changed (`*** (changed)` on the new side). Unchanged when neither side holds a secret.
 * @example maskContentDiff({ path, before: 'pass old\n', after: 'pass new\n' }, r)
 * // { path, before: 'pass ***\n', after: 'pass *** (changed)\n' }
 */
export function maskContentDiff(d: ContentDiff, r: Redactor): ContentDiff {
  if (!r.contains(d.before) && !r.contains(d.after)) return d
  const before = d.before.split('\n')
  const after = d.after.split('\n')
  const secretLines = [...before, ...after].filter((l) => r.contains(l))
  const shapes = secretLines.map((l) => shapeOf(l, r)).filter((x) => x !== undefined)
  // A file that is a bare token (a password file): a removed bare line is the old token.
  const bare = secretLines.some((l) => shapeOf(l, r) === undefined)
  const kept = new Set(after)
  const maskedBefore = before.map(
    (l) => maskLine(l, r, shapes) ?? (bare && !kept.has(l) && !/\s/.test(l.trim()) ? MASK : l),
  )
  const old = new Set(before)
  const shown = new Set(maskedBefore)
  const maskedAfter = after.map((l) => {
    const m = maskLine(l, r, shapes)
    if (m === undefined) return l
    // the raw line is new, but its masked form would read as unchanged: say it changed
    return !old.has(l) && shown.has(m) ? m.split(MASK).join(MASK_CHANGED) : m
  })
  return { path: d.path, before: maskedBefore.join('\n'), after: maskedAfter.join('\n') }
}

/** An attribute value with secrets: masked whole, `*** (changed)` when the new one differs. */
function maskAttrs(before: unknown, after: unknown, r: Redactor): [unknown, unknown] {
  const holds = (v: unknown): boolean => v !== undefined && r.contains(JSON.stringify(v))
  const isObj = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype
  if (isObj(before) || isObj(after)) {
    const b = isObj(before) ? { ...before } : before
    const a = isObj(after) ? { ...after } : after
    const keys = new Set([...Object.keys(isObj(b) ? b : {}), ...Object.keys(isObj(a) ? a : {})])
    for (const k of keys) {
      const [mb, ma] = maskAttrs(isObj(b) ? b[k] : undefined, isObj(a) ? a[k] : undefined, r)
      if (isObj(b) && k in b) b[k] = mb
      if (isObj(a) && k in a) a[k] = ma
    }
    return [b, a]
  }
  if (!holds(before) && !holds(after)) return [before, after]
  const changed = JSON.stringify(before) !== JSON.stringify(after)
  return [
    before === undefined ? undefined : MASK,
    after === undefined ? undefined : changed && before !== undefined ? MASK_CHANGED : MASK,
  ]
}

/**
 * A change as it may be shown or kept: secrets masked by value and by content, on both sides.
 * The change a module applies is never this one (it would write the mask).
 * @example maskChange(change, redactor)
 */
export function maskChange(ch: Change, r: Redactor): Change {
  if (r.size === 0) return ch
  const [before, after] = maskAttrs(ch.before, ch.after, r)
  const out: Change = { ...ch }
  if (ch.before !== undefined) out.before = before
  if (ch.after !== undefined) out.after = after
  if (ch.diff) out.diff = maskContentDiff(ch.diff, r)
  if (ch.note !== undefined) out.note = r.text(ch.note)
  out.target = r.text(ch.target)
  return out
}
