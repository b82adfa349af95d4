/**
 * Template mistakes a new user makes, caught before Handlebars reports them in its own terms:
 * Jinja syntax (`{% if %}`, `| default`, `['key']`), partials, a block never closed (reported
 * where it opens, not at the end of the file), and which variables' values are known before a run.
 */
import type { Inventory } from '../inventory/inventory.ts'
import type { Runbook, Step } from './types.ts'

/** A problem at an offset in a template's text. */
export interface TemplateProblem {
  index: number
  message: string
  hint?: string | undefined
}

/**
 * Jinja (Ansible's template language) or partials in a template, which runbooks do not read.
 * @example jinjaSyntax('{% if x %}') // { index: 0, message: 'this is Jinja syntax ...', hint: '...' }
 */
export function jinjaSyntax(text: string): TemplateProblem | undefined {
  const tag = /\{%-?\s*(\w+)/.exec(text)
  if (tag)
    return {
      index: tag.index,
      message: `'{% ${tag[1]} %}' is Jinja syntax: runbook templates are Handlebars`,
      hint:
        tag[1] === 'for'
          ? 'write {{#each items}}...{{/each}}'
          : tag[1] === 'if'
            ? 'write {{#if x}}...{{else}}...{{/if}}'
            : 'see "Templates" in docs/writing-runbooks.md',
    }
  for (const m of text.matchAll(/\{\{(?!!)([^{}]*)\}\}/g)) {
    const body = m[1] ?? ''
    const filter = /\|\s*(\w+)/.exec(body)
    if (filter && !body.trim().startsWith('#') && !/\bas\s*\|/.test(body))
      return {
        index: m.index,
        message: `'| ${filter[1]}' is a Jinja filter: runbook templates are Handlebars`,
        hint:
          filter[1] === 'default'
            ? "write {{default x 'fallback'}}"
            : `write a helper call, {{${filter[1]} x}} (see \`runbook modules\` and docs/writing-runbooks.md for helpers)`,
      }
    if (/\[\s*['"]/.test(body))
      return {
        index: m.index,
        message: `'${body.trim()}' uses Jinja's ['key'] lookup: runbook templates are Handlebars`,
        hint: 'write a.[key-with-dashes] or a.key: {{hostvars.[kld-vm-1].facts}}',
      }
    if (/^\s*>/.test(body))
      return {
        index: m.index,
        message: 'partials ({{> name}}) are not supported in runbook templates',
        hint: 'put the shared text in a variable, or in its own template file',
      }
  }
  return undefined
}

/**
 * A block closed by the wrong name (reported at the close), or the innermost `{{#block}}` never
 * closed (reported where it opens): Handlebars reports both only at the end of the template.
 */
export function unclosedBlock(text: string): TemplateProblem | undefined {
  const stack: { index: number; name: string }[] = []
  for (const m of text.matchAll(/\{\{~?\s*([#/])\s*([\w-]+)/g)) {
    const name = m[2] ?? ''
    if (m[1] === '#') stack.push({ index: m.index, name })
    else {
      const top = stack.pop()
      if (top && top.name !== name)
        return {
          index: m.index,
          message: `template syntax error: {{/${name}}} closes {{#${top.name}}}`,
          hint: `end {{#${top.name}}} with {{/${top.name}}}`,
        }
    }
  }
  const open = stack[stack.length - 1]
  return open
    ? {
        index: open.index,
        message: `template syntax error: {{#${open.name}}} is never closed`,
        hint: `end it with {{/${open.name}}}`,
      }
    : undefined
}

function stepNames(steps: Step[], out: Set<string>): void {
  for (const s of steps) {
    for (const k of Object.keys(s.vars)) out.add(k)
    if (s.kind === 'block') {
      stepNames(s.block, out)
      stepNames(s.rescue, out)
      stepNames(s.always, out)
    } else {
      if (s.register) out.add(s.register)
      if (s.loop !== undefined) out.add(s.loopVar)
      if (s.indexVar) out.add(s.indexVar)
      if (s.module === 'set_fact') for (const k of Object.keys(s.args)) out.add(k)
      const added = s.module === 'add_host' ? s.args.vars : undefined
      if (added !== null && typeof added === 'object')
        for (const k of Object.keys(added)) out.add(k)
    }
  }
}

/**
 * Every variable name something other than the top-level vars may set (play, block and task vars,
 * loops, register, set_fact, inventory, role defaults): values of these are not known before a run.
 */
export function shadowedNames(rb: Runbook, inv: Inventory): Set<string> {
  const out = new Set<string>(['facts'])
  for (const p of rb.plays) {
    for (const k of [...Object.keys(p.vars), ...Object.keys(p.defaults)]) out.add(k)
    stepNames(p.tasks, out)
    stepNames(p.handlers, out)
  }
  for (const g of inv.groups.values()) for (const k of Object.keys(g.vars)) out.add(k)
  for (const h of inv.hosts.values()) for (const k of Object.keys(h.vars)) out.add(k)
  return out
}
