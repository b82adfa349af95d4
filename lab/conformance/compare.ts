/**
 * Compares two runs of the conformance sequence (the real services and the lab) step by step:
 * status, error type, missing and extra keys, JSON types, facts. Differences listed in
 * docs/lab.md ("Conformance differences", a fenced yaml block) are justified; any other fails.
 *
 * Usage:
 *   node --import tsx lab/conformance/compare.ts REAL LAB [--known docs/lab.md] [--findings FILE]
 * REAL and LAB are target files (the sequence is run) or result files saved by sequence.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import type { SequenceResult, StepRecord } from './recorder.ts'
import { runSequence } from './sequence.ts'
import { targetSchema } from './target.ts'

/** What differs. `missing-key`: the real service has it, the lab not; `extra-key`: the reverse. */
export type DifferenceKind =
  'step' | 'status' | 'error-type' | 'missing-key' | 'extra-key' | 'type' | 'fact'

/** One difference between the real run and the lab run. */
export interface Difference {
  step: string
  kind: DifferenceKind
  /** The key path (keys, types) or fact name; absent for status and error type. */
  key?: string
  real: string
  lab: string
}

/** A justified difference, as listed in docs/lab.md; `step` and `key` may use `*` wildcards. */
export const knownDifferenceSchema = z.object({
  step: z.string(),
  kind: z.enum(['step', 'status', 'error-type', 'missing-key', 'extra-key', 'type', 'fact']),
  key: z.string().optional(),
  /** When given, the entry matches only these exact values. */
  real: z.union([z.string(), z.number(), z.boolean()]).optional(),
  lab: z.union([z.string(), z.number(), z.boolean()]).optional(),
  reason: z.string().min(10),
})

/** A justified difference. */
export type KnownDifference = z.infer<typeof knownDifferenceSchema>

/** The verdict on a comparison. */
export interface Verdict {
  unexpected: Difference[]
  justified: { difference: Difference; reason: string }[]
  /** Known entries that matched nothing (the lab was fixed, or the entry is wrong). */
  unused: KnownDifference[]
}

const show = (x: unknown): string => (x === null ? 'null' : x === undefined ? '(none)' : String(x))

/** Drop paths whose parent is in the same list: report `port.binding` once, not each child. */
function topmost(paths: string[]): string[] {
  const set = new Set(paths)
  return paths.filter((p) => {
    for (let i = p.length - 1; i > 0; i--) {
      if ((p[i] === '.' || p[i] === '[') && set.has(p.slice(0, i))) return false
    }
    return true
  })
}

function compareStep(real: StepRecord, lab: StepRecord): Difference[] {
  const out: Difference[] = []
  const step = real.id
  if (real.status !== lab.status)
    out.push({ step, kind: 'status', real: String(real.status), lab: String(lab.status) })
  if (real.errorType !== lab.errorType)
    out.push({ step, kind: 'error-type', real: show(real.errorType), lab: show(lab.errorType) })
  const realKeys = new Set(real.shape.keys)
  const labKeys = new Set(lab.shape.keys)
  for (const key of topmost(real.shape.keys.filter((k) => !labKeys.has(k))))
    out.push({ step, kind: 'missing-key', key, real: 'present', lab: 'absent' })
  for (const key of topmost(lab.shape.keys.filter((k) => !realKeys.has(k))))
    out.push({ step, kind: 'extra-key', key, real: 'absent', lab: 'present' })
  for (const [key, realType] of Object.entries(real.shape.types)) {
    const labType = lab.shape.types[key]
    if (labType !== undefined && labType !== realType)
      out.push({ step, kind: 'type', key, real: realType, lab: labType })
  }
  for (const key of new Set([...Object.keys(real.facts), ...Object.keys(lab.facts)])) {
    const a = real.facts[key]
    const b = lab.facts[key]
    if (a !== b) out.push({ step, kind: 'fact', key, real: show(a), lab: show(b) })
  }
  return out
}

/**
 * Every difference between the real run and the lab run, in sequence order.
 * @example compare(realResult, labResult).filter((d) => d.kind === 'status')
 */
export function compare(real: SequenceResult, lab: SequenceResult): Difference[] {
  const labById = new Map(lab.steps.map((s) => [s.id, s]))
  const out: Difference[] = []
  for (const r of real.steps) {
    const l = labById.get(r.id)
    if (l === undefined) out.push({ step: r.id, kind: 'step', real: 'ran', lab: 'missing' })
    else out.push(...compareStep(r, l))
  }
  const realIds = new Set(real.steps.map((s) => s.id))
  for (const l of lab.steps)
    if (!realIds.has(l.id)) out.push({ step: l.id, kind: 'step', real: 'missing', lab: 'ran' })
  return out
}

function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  )
}

function matches(k: KnownDifference, d: Difference): boolean {
  if (k.kind !== d.kind || !glob(k.step).test(d.step)) return false
  if (k.key !== undefined && !glob(k.key).test(d.key ?? '')) return false
  if (k.real !== undefined && String(k.real) !== d.real) return false
  if (k.lab !== undefined && String(k.lab) !== d.lab) return false
  return true
}

/**
 * Sort differences into justified (a known entry matches) and unexpected.
 * @example classify(compare(real, lab), readKnownDifferences('docs/lab.md')).unexpected.length === 0
 */
export function classify(diffs: Difference[], known: KnownDifference[]): Verdict {
  const used = new Set<KnownDifference>()
  const verdict: Verdict = { unexpected: [], justified: [], unused: [] }
  for (const d of diffs) {
    const k = known.find((x) => matches(x, d))
    if (k === undefined) verdict.unexpected.push(d)
    else {
      used.add(k)
      verdict.justified.push({ difference: d, reason: k.reason })
    }
  }
  verdict.unused = known.filter((k) => !used.has(k))
  return verdict
}

/** The heading under which docs/lab.md lists known differences. */
export const KNOWN_HEADING = 'Conformance differences'

/**
 * Read the known differences: the first fenced ```yaml block after the heading
 * "Conformance differences" in a markdown file (none when the file or the section is absent).
 * @example readKnownDifferences('docs/lab.md')
 */
export function readKnownDifferences(markdownPath: string): KnownDifference[] {
  let text: string
  try {
    text = readFileSync(markdownPath, 'utf8')
  } catch {
    return []
  }
  const at = text.search(new RegExp(`^#+\\s+${KNOWN_HEADING}\\s*$`, 'm'))
  if (at < 0) return []
  const block = /^```ya?ml\s*\n([\s\S]*?)^```/m.exec(text.slice(at))
  if (block === null) return []
  const parsed: unknown = parseYaml(block[1] ?? '')
  return z.array(knownDifferenceSchema).parse(parsed ?? [])
}

/**
 * One difference as a line of text.
 * @example describeDifference({ step: 's', kind: 'status', real: '404', lab: '200' }) // 'status: real 404, lab 200'
 */
export function describeDifference(d: Difference): string {
  switch (d.kind) {
    case 'step':
      return `step: real ${d.real}, lab ${d.lab}`
    case 'status':
    case 'error-type':
      return `${d.kind}: real ${d.real}, lab ${d.lab}`
    case 'missing-key':
      return `missing key ${d.key ?? ''} (the real service has it)`
    case 'extra-key':
      return `extra key ${d.key ?? ''} (only the lab has it)`
    default:
      return `${d.kind} ${d.key ?? ''}: real ${d.real}, lab ${d.lab}`
  }
}

/**
 * A plain-text report: unexpected differences per step, then a count of justified ones.
 * @example console.log(renderReport(real, lab, verdict))
 */
export function renderReport(real: SequenceResult, lab: SequenceResult, v: Verdict): string {
  const lines: string[] = []
  const labels = new Map([...real.steps, ...lab.steps].map((s) => [s.id, s.request]))
  lines.push(
    `conformance: ${real.steps.length} steps on ${real.target} (${real.durationMs} ms), ${lab.steps.length} on ${lab.target} (${lab.durationMs} ms)`,
  )
  let last = ''
  for (const d of v.unexpected) {
    if (d.step !== last) lines.push(`  ${d.step}  ${labels.get(d.step) ?? ''}`)
    last = d.step
    lines.push(`    - ${describeDifference(d)}`)
  }
  lines.push(
    `${v.unexpected.length} unexpected, ${v.justified.length} justified (docs/lab.md), ${v.unused.length} known entries unused`,
  )
  for (const k of v.unused) lines.push(`  unused: ${k.step} ${k.kind} ${k.key ?? ''}`)
  return lines.join('\n')
}

function brief(s: StepRecord | undefined): string {
  if (s === undefined) return 'not run'
  return `${s.status}${s.errorType === null ? '' : ` ${s.errorType}`}`
}

/**
 * FINDINGS.md-style markdown: for each step with unexpected differences, what the real service
 * answered and what the lab answered (status, error type, keys, facts).
 * @example writeFileSync('lab/conformance/FINDINGS.md', renderFindings(real, lab, verdict))
 */
export function renderFindings(real: SequenceResult, lab: SequenceResult, v: Verdict): string {
  const byStep = new Map<string, Difference[]>()
  for (const d of v.unexpected) byStep.set(d.step, [...(byStep.get(d.step) ?? []), d])
  const realById = new Map(real.steps.map((s) => [s.id, s]))
  const labById = new Map(lab.steps.map((s) => [s.id, s]))
  const out: string[] = []
  for (const [step, diffs] of byStep) {
    const r = realById.get(step)
    const l = labById.get(step)
    out.push(`### ${step}`, '', `\`${r?.request ?? l?.request ?? ''}\``, '')
    out.push(`- real: ${brief(r)}; lab: ${brief(l)}`)
    for (const d of diffs) out.push(`- ${describeDifference(d)}`)
    if (r !== undefined && r.status !== l?.status) {
      out.push(`- real keys: ${r.shape.keys.map((k) => `\`${k}\``).join(', ') || '(none)'}`)
      out.push(`- lab keys: ${l?.shape.keys.map((k) => `\`${k}\``).join(', ') || '(none)'}`)
    }
    out.push('')
  }
  return out.join('\n')
}

async function load(path: string): Promise<SequenceResult> {
  const data: unknown = JSON.parse(readFileSync(path, 'utf8'))
  const asTarget = targetSchema.safeParse(data)
  if (asTarget.success)
    return runSequence(asTarget.data, { log: (l) => console.error(`[${asTarget.data.name}] ${l}`) })
  return data as SequenceResult
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const args = process.argv.slice(2)
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name)
    if (i < 0) return undefined
    const v = args[i + 1]
    args.splice(i, 2)
    return v
  }
  const knownPath = flag('--known') ?? 'docs/lab.md'
  const findings = flag('--findings')
  const [realPath, labPath] = args
  if (realPath === undefined || labPath === undefined) {
    console.error('usage: compare.ts REAL LAB [--known docs/lab.md] [--findings FILE]')
    process.exit(2)
  }
  const real = await load(realPath)
  const lab = await load(labPath)
  const verdict = classify(compare(real, lab), readKnownDifferences(knownPath))
  console.log(renderReport(real, lab, verdict))
  if (findings !== undefined) writeFileSync(findings, renderFindings(real, lab, verdict))
  process.exit(verdict.unexpected.length === 0 ? 0 : 1)
}
