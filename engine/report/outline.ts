/**
 * An outline of a runbook without running anything, as `ansible-playbook --list-tasks` and
 * `--list-hosts` print: each play with the hosts it would run on and its tasks (blocks, imports
 * and roles indented), tags and modules shown.
 */
import type { Inventory } from '../inventory/inventory.ts'
import type { Runbook, Step } from '../runbook/types.ts'
import { addedGroups } from '../runbook/validate.ts'

/** What to list. */
export interface OutlineOptions {
  tasks: boolean
  hosts: boolean
  /** `--limit`: only these hosts. */
  limit?: string | undefined
}

function stepLines(steps: Step[], indent: string, inherited: string[]): string[] {
  const out: string[] = []
  for (const s of steps) {
    const tags = [...new Set([...inherited, ...s.tags])]
    const tagText = tags.length ? `  tags: [${tags.join(', ')}]` : ''
    if (s.kind === 'task') {
      out.push(
        `${indent}${s.name}  (${s.module}${s.loop !== undefined ? ', loop' : ''}${s.when.length ? ', when' : ''})${tagText}`,
      )
      continue
    }
    out.push(`${indent}${s.name}:${s.when.length ? '  (when)' : ''}${tagText}`)
    out.push(...stepLines(s.block, `${indent}  `, tags))
    if (s.rescue.length) out.push(`${indent}rescue:`, ...stepLines(s.rescue, `${indent}  `, tags))
    if (s.always.length) out.push(`${indent}always:`, ...stepLines(s.always, `${indent}  `, tags))
  }
  return out
}

/**
 * The outline's lines.
 * @example outline(prepared.runbook, prepared.inventory, { tasks: true, hosts: true }).join('\n')
 */
export function outline(rb: Runbook, inv: Inventory, o: OutlineOptions): string[] {
  const added = addedGroups(rb)
  const allowed = o.limit === undefined ? undefined : new Set(inv.match(o.limit))
  const lines: string[] = [`runbook: ${rb.name}`]
  rb.plays.forEach((play, i) => {
    lines.push(
      '',
      `play #${i + 1} (${play.hosts}): ${play.name}${play.tags.length ? `  tags: [${play.tags.join(', ')}]` : ''}`,
    )
    if (o.hosts) {
      let hosts = inv.match(play.hosts)
      if (allowed)
        hosts = hosts.filter(
          (h) => allowed.has(h) || (h === 'localhost' && !inv.hosts.has('localhost')),
        )
      const later = play.hosts
        .split(/[:,]/)
        .map((t) => t.trim())
        .filter((t) => added.has(t))
      lines.push(
        `  hosts (${hosts.length}): ${hosts.join(', ') || '-'}${later.length ? `  (and the hosts added during the run to ${later.join(', ')})` : ''}`,
      )
    }
    if (o.tasks) {
      lines.push('  tasks:', ...stepLines(play.tasks, '    ', play.tags))
      if (play.handlers.length)
        lines.push('  handlers:', ...stepLines(play.handlers, '    ', play.tags))
    }
  })
  return lines
}
