/**
 * Text for changes: Terraform-style attribute lines and unified diffs, with colours that can be
 * turned off (NO_COLOR, not a terminal, --no-color).
 */
import { createTwoFilesPatch } from 'diff'
import pc from 'picocolors'
import { ACTION_SYMBOL, type Change, type PlanCounts } from '../plan/change.ts'
import { KNOWN_AFTER_APPLY, isUnknown, showUnknowns } from '../vars/unknown.ts'

/** A colour palette, real or plain. */
export type Colors = ReturnType<typeof pc.createColors>

/** Colours for an output stream: off with NO_COLOR, off when not a terminal, off on request. */
export function colorsFor(stream: NodeJS.WriteStream, force?: boolean): Colors {
  const enabled = force ?? (!('NO_COLOR' in process.env) && Boolean(stream.isTTY))
  return pc.createColors(enabled)
}

/** No colours: text for files (a saved plan) and comparisons. */
export const plainColors: Colors = pc.createColors(false)

function show(v: unknown): string {
  if (v === undefined) return 'null'
  if (isUnknown(v)) return KNOWN_AFTER_APPLY
  if (typeof v === 'string') return v === KNOWN_AFTER_APPLY ? v : JSON.stringify(v)
  return JSON.stringify(showUnknowns(v))
    .split(JSON.stringify(KNOWN_AFTER_APPLY))
    .join(KNOWN_AFTER_APPLY)
}

function colorFor(c: Colors, action: Change['action']): (s: string) => string {
  switch (action) {
    case 'create':
      return c.green
    case 'delete':
      return c.red
    case 'replace':
      return c.magenta
    case 'update':
      return c.yellow
    case 'run':
      return c.cyan
  }
}

/** A unified diff of a content change. */
export function unifiedDiff(path: string, before: string, after: string, c: Colors): string[] {
  const patch = createTwoFilesPatch(`${path} (before)`, `${path} (after)`, before, after, '', '', {
    context: 3,
  })
  return patch
    .split('\n')
    .slice(2)
    .filter((l) => l !== '' && !l.startsWith('\\ No newline'))
    .map((l) =>
      l.startsWith('+')
        ? c.green(l)
        : l.startsWith('-')
          ? c.red(l)
          : l.startsWith('@@')
            ? c.cyan(l)
            : l,
    )
}

/**
 * The lines of one change: `+ port kld-vip` and its attributes, or a diff for file content.
 * @example formatChange({ action: 'create', target: 'package keepalived' }, c, { diff: true })
 */
export function formatChange(
  ch: Change,
  c: Colors,
  opts: { diff: boolean; indent?: string },
): string[] {
  const ind = opts.indent ?? '  '
  const col = colorFor(c, ch.action)
  const lines = [
    `${ind}${col(ACTION_SYMBOL[ch.action])} ${ch.target}${ch.note ? c.dim(`  (${ch.note})`) : ''}`,
  ]
  const sub = `${ind}    `
  const before =
    ch.before !== null && typeof ch.before === 'object' && !Array.isArray(ch.before)
      ? (ch.before as Record<string, unknown>)
      : undefined
  const after =
    ch.after !== null && typeof ch.after === 'object' && !Array.isArray(ch.after)
      ? (ch.after as Record<string, unknown>)
      : undefined
  if (before || after) {
    const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])]
    const width = Math.min(24, Math.max(0, ...keys.map((k) => k.length)))
    for (const k of keys) {
      const b = before?.[k]
      const a = after?.[k]
      if (before && after && JSON.stringify(b) === JSON.stringify(a)) continue
      const name = k.padEnd(width)
      if (ch.action === 'delete' || !after || !(k in after))
        lines.push(`${sub}${c.red('-')} ${name} = ${show(b)}`)
      else if (!before || !(k in before)) lines.push(`${sub}${c.green('+')} ${name} = ${show(a)}`)
      else lines.push(`${sub}${c.yellow('~')} ${name} = ${show(b)} ${c.dim('->')} ${show(a)}`)
    }
  } else if (ch.before !== undefined || ch.after !== undefined) {
    if (ch.before !== undefined && ch.after !== undefined)
      lines.push(`${sub}${show(ch.before)} ${c.dim('->')} ${show(ch.after)}`)
    else lines.push(`${sub}${show(ch.after ?? ch.before)}`)
  }
  if (ch.diff && opts.diff)
    lines.push(
      ...unifiedDiff(ch.diff.path, ch.diff.before, ch.diff.after, c).map((l) => `${sub}${l}`),
    )
  return lines
}

/** `Plan: N to create, M to change, K to destroy, R to run.` */
export function planSummary(p: PlanCounts, c: Colors, deferred = 0, checks = 0): string {
  const total = p.create + p.update + p.delete + p.run
  const tail = deferred
    ? ` ${deferred} more task${deferred === 1 ? '' : 's'} known after apply (hosts or values that do not exist yet).`
    : ''
  const checkTail = checks ? ` ${checks} check${checks === 1 ? '' : 's'} will run on apply.` : ''
  if (total === 0 && deferred === 0)
    return `${c.green('No changes. The infrastructure matches the runbook.')}${checkTail}`
  return `${c.bold('Plan:')} ${p.create} to create, ${p.update} to change, ${p.delete} to destroy, ${p.run} to run.${tail}${checkTail}`
}
