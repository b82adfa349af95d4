/**
 * Saved plans, as Terraform's `plan -out` / `apply PLANFILE`: `runbook plan --out FILE` keeps what
 * was reviewed (the options of the run, a digest of every file it read, and each planned change as
 * it was printed); `runbook apply FILE` runs with exactly those options, refuses when a file
 * changed, plans again and refuses when the plan is not the one that was saved, and only then
 * applies. Secrets are not stored: they are read again at apply, and changes are kept redacted.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import type { PlannedChange } from './change.ts'
import type { Redactor } from '../vars/secrets.ts'
import { writeFileAtomic } from '../connection/local.ts'
import { formatChange, plainColors } from '../report/format.ts'
import type { SourceSet } from '../runbook/source.ts'

/** The marker of a saved plan file. */
export const PLAN_FORMAT = 'runbook-plan'

/** The run options a saved plan carries (apply uses them instead of its own flags). */
export interface SavedOptions {
  runbook: string
  inventory: string | null
  vars: string[]
  varFiles: string[]
  limit: string | null
  tags: string[] | null
  skipTags: string[] | null
  stateRoot: string
}

/** A saved plan file. */
export interface SavedPlan {
  format: typeof PLAN_FORMAT
  version: 1
  created: string
  options: SavedOptions
  /** sha256 of every file the plan read: runbook, imports, inventory, var files, templates. */
  files: Record<string, string>
  /** Each planned change as printed (redacted), keyed by play, task and host. */
  changes: string[]
  /** The plan as it was shown, without colours. */
  rendered: string[]
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/**
 * Digests of the files of a run.
 * @example digestFiles(prepared.sources) // { '/rb/runbook.yaml': 'e3b0…' }
 */
export function digestFiles(sources: SourceSet): Record<string, string> {
  return Object.fromEntries(
    sources
      .entries()
      .map(([file, text]) => [path.resolve(file), sha256(text)])
      .sort(([a], [b]) => String(a).localeCompare(String(b))),
  )
}

/**
 * The planned changes as the comparable text a saved plan keeps (checks included).
 * @example planEntries(result.changes, prepared.redactor)
 */
export function planEntries(changes: readonly PlannedChange[], redactor: Redactor): string[] {
  return changes
    .map((c) =>
      redactor.text(
        `${c.play} / ${c.task} / ${c.host}${c.check ? ' (check)' : ''}\n${formatChange(c.change, plainColors, { diff: true }).join('\n')}`,
      ),
    )
    .sort()
}

/**
 * Writes a saved plan (0600: it names hosts and may hold --var values).
 * @example await writeSavedPlan('vip.plan', { options, files, changes, rendered })
 */
export async function writeSavedPlan(
  file: string,
  plan: Omit<SavedPlan, 'format' | 'version' | 'created'>,
): Promise<void> {
  const doc: SavedPlan = {
    format: PLAN_FORMAT,
    version: 1,
    created: new Date().toISOString(),
    ...plan,
  }
  await writeFileAtomic(path.resolve(file), `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 })
}

/**
 * Reads `file` as a saved plan: undefined when it is not one (a runbook, say), an error when it
 * claims to be one and is not readable as such.
 * @example const saved = await readSavedPlan(argv[0]) // undefined for runbooks/vip-keepalived.yaml
 */
export async function readSavedPlan(file: string): Promise<SavedPlan | undefined> {
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch {
    return undefined
  }
  if (!text.trimStart().startsWith('{')) return undefined
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return undefined
  }
  if (
    doc === null ||
    typeof doc !== 'object' ||
    (doc as { format?: unknown }).format !== PLAN_FORMAT
  )
    return undefined
  const p = doc as Partial<SavedPlan>
  if (p.version !== 1 || !p.options || !p.files || !Array.isArray(p.changes)) {
    throw new RunbookError(
      'E_USAGE',
      `${file}: a saved plan of an unknown version or damaged; run plan again`,
    )
  }
  return p as SavedPlan
}

/**
 * The files whose content is not what the plan read (changed or gone), with what happened.
 * @example await changedFiles(saved, digestFiles(prepared.sources)) // ['/rb/k.hbs: changed']
 */
export async function changedFiles(
  plan: SavedPlan,
  now: Record<string, string>,
): Promise<string[]> {
  const out: string[] = []
  for (const [file, digest] of Object.entries(plan.files)) {
    if (now[file] === undefined)
      out.push(`${file}: ${(await fs.stat(file).catch(() => null)) ? 'no longer read' : 'gone'}`)
    else if (now[file] !== digest) out.push(`${file}: changed`)
  }
  for (const file of Object.keys(now))
    if (plan.files[file] === undefined) out.push(`${file}: read now, not when the plan was saved`)
  return out
}

/**
 * Lines telling how the plan of now differs from the saved one (empty when they are the same).
 * @example planDrift(saved.changes, planEntries(now.changes, redactor)) // ['planned, not needed now: …']
 */
export function planDrift(saved: readonly string[], now: readonly string[]): string[] {
  const left = new Map<string, number>()
  for (const e of now) left.set(e, (left.get(e) ?? 0) + 1)
  const gone: string[] = []
  for (const e of saved) {
    const n = left.get(e) ?? 0
    if (n > 0) left.set(e, n - 1)
    else gone.push(e)
  }
  const added = [...left].flatMap(([e, n]) => Array<string>(n).fill(e))
  const indent = (e: string): string =>
    e
      .split('\n')
      .map((l, i) => (i === 0 ? l : `  ${l}`))
      .join('\n')
  return [
    ...gone.map((e) => `planned, not needed now: ${indent(e)}`),
    ...added.map((e) => `needed now, not planned: ${indent(e)}`),
  ]
}
