/**
 * Prints a plan Terraform-style: each task and host with its changes, values not known yet as
 * `(known after apply)`, file contents as unified diffs, and the closing count line.
 */
import type { PlannedChange } from '../plan/change.ts'
import { formatChange, planSummary, type Colors } from './format.ts'

/**
 * The plan as text lines.
 * @example renderPlan(result.changes, colors).join('\n')
 */
export function renderPlan(
  changes: PlannedChange[],
  c: Colors,
  counts: { create: number; update: number; delete: number; run: number },
  checks = 0,
): string[] {
  const lines: string[] = []
  let lastPlay = ''
  const groups = new Map<string, PlannedChange[]>()
  for (const ch of changes) {
    const key = `${ch.play}\u0000${ch.task}\u0000${ch.host}`
    const list = groups.get(key) ?? []
    list.push(ch)
    groups.set(key, list)
  }
  for (const list of groups.values()) {
    const first = list[0] as PlannedChange
    if (first.play !== lastPlay) {
      lines.push('', c.bold(`PLAY ${first.play}`))
      lastPlay = first.play
    }
    lines.push(
      '',
      `  ${c.bold(`# ${first.task}`)} ${c.dim(`[${first.host}]`)}${first.check ? c.dim('  (check)') : first.deferred ? c.dim('  (known after apply)') : ''}`,
    )
    for (const ch of list) lines.push(...formatChange(ch.change, c, { diff: true, indent: '  ' }))
  }
  const deferred = new Set(
    changes
      .filter((c) => c.deferred && !c.check)
      .map((c) => `${c.play}\u0000${c.task}\u0000${c.host}`),
  ).size
  lines.push('', planSummary(counts, c, deferred, checks))
  return lines
}
