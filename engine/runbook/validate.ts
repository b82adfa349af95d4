/**
 * Validation before anything runs: every module's parameters, every template and condition, every
 * variable that can be known, host patterns and handler names. It collects all problems, each with
 * file:line:col, the task and a "did you mean".
 */
import { readFileSync, statSync } from 'node:fs'
import { isScalar } from 'yaml'
import { RunbookError } from '../errors.ts'
import type { Inventory } from '../inventory/inventory.ts'
import type { ModuleRegistry } from '../module.ts'
import { didYouMean } from '../suggest.ts'
import { badVariableName } from '../values.ts'
import { evaluateCondition, expressionProblems, expressionRefs } from '../vars/expr.ts'
import { helperNames } from '../vars/helpers.ts'
import { looksLikeSecret, misplacedSecret } from '../vars/secrets.ts'
import { isTemplate, renderString, templateRefs } from '../vars/template.ts'
import { checkShape, coerceParams, hasTemplate, type ShapeIssue } from './shape.ts'
import { renderKnown, staticLoop, staticScope, viewOf, withNames } from './static-args.ts'
import { jinjaSyntax, shadowedNames, unclosedBlock } from './template-checks.ts'
import { findSource, outsideTree, sourceSearchPath } from './search-path.ts'
import { isPrivate, locate, locateInScalar, type SourceSet, type YamlPath } from './source.ts'
import type { Play, Runbook, Step, Task } from './types.ts'

/** What validation knows about variables that exist before the run. */
export interface KnownVars {
  runbook: Iterable<string>
  extra: Iterable<string>
  secrets: Iterable<string>
  /** Values known before the run (top-level vars, -e, var files), to check sub-keys and loops. */
  values?: Readonly<Record<string, unknown>>
}

/** What a runbook is validated against. */
export interface ValidateOptions {
  runbook: Runbook
  inventory: Inventory
  registry: ModuleRegistry
  sources: SourceSet
  known: KnownVars
  /** The runbook's directory, where relative template paths start. */
  baseDir: string
}

const MAGIC = ['inventory_hostname', 'groups', 'hostvars', 'play_hosts', 'runbook_dir', 'state_dir']

/** Names the engine sets on every host: a variable of the same name would hide them. */
const RESERVED_VARS = new Set([...MAGIC, 'facts'])

/**
 * A chain of top-level vars whose templates lead back to the first one (`a: "{{b}}"`,
 * `b: "{{a}}/x"`), or undefined. Only names that are themselves top-level vars are followed.
 */
export function varCycle(vars: Readonly<Record<string, unknown>>): string[] | undefined {
  const refs = new Map<string, string[]>()
  for (const [k, v] of Object.entries(vars))
    refs.set(
      k,
      refsIn(v).filter((r) => r in vars),
    )
  const state = new Map<string, 'open' | 'done'>()
  const walk = (k: string, chain: string[]): string[] | undefined => {
    if (state.get(k) === 'open') return [...chain.slice(chain.indexOf(k)), k]
    if (state.get(k) === 'done') return undefined
    state.set(k, 'open')
    for (const r of refs.get(k) ?? []) {
      const found = walk(r, [...chain, k])
      if (found) return found
    }
    state.set(k, 'done')
    return undefined
  }
  for (const k of refs.keys()) {
    const found = walk(k, [])
    if (found) return found
  }
  return undefined
}

/** The root names a value's templates refer to (none when a template does not parse). */
function refsIn(v: unknown): string[] {
  if (typeof v === 'string') {
    if (!isTemplate(v)) return []
    try {
      return templateRefs(v).vars.map((r) => r.root)
    } catch {
      return []
    }
  }
  if (Array.isArray(v)) return v.flatMap(refsIn)
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(refsIn)
  return []
}

/**
 * Every task under these steps, blocks flattened (block, rescue, always).
 * @example flatTasks(play.tasks).filter((t) => t.module === 'add_host')
 */
export function flatTasks(steps: Step[]): Task[] {
  return steps.flatMap((s) =>
    s.kind === 'task'
      ? [s]
      : [...flatTasks(s.block), ...flatTasks(s.rescue), ...flatTasks(s.always)],
  )
}

/**
 * The groups that add_host tasks put hosts into during a run.
 * @example addedGroups(runbook).has('keepalived')
 */
export function addedGroups(rb: Runbook): Set<string> {
  const out = new Set<string>()
  for (const t of rb.plays.flatMap((p) => [...flatTasks(p.tasks), ...p.handlers])) {
    if (t.module === 'add_host')
      for (const g of ([] as unknown[]).concat(t.args.groups ?? t.args.group ?? []))
        if (typeof g === 'string') out.add(g)
  }
  return out
}

class Validator {
  readonly errors: RunbookError[] = []
  /** Variables any task may set: registered results, set_fact keys, facts. */
  private readonly dynamic = new Set<string>()
  /** Groups that add_host will create. */
  private readonly addedGroups: Set<string>
  /** Each task's place in the order tasks run (plays in order, blocks flattened). */
  private readonly order = new Map<Task, number>()
  /** The first task that registers or sets each name. */
  private readonly setBy = new Map<string, { index: number; task: Task }>()
  /** The `when` conditions of the blocks around the step being checked. */
  private guards: (string | boolean)[] = []
  /** The loop bindings of the task being checked, when its items are known before the run. */
  private items: Record<string, unknown>[] = [{}]
  /** Names the task being checked cannot see yet: only a later task sets them (name -> why). */
  private notYet = new Map<string, string>()

  private readonly rb: Runbook
  private readonly inv: Inventory
  private readonly registry: ModuleRegistry
  private readonly sources: SourceSet
  private readonly base: Set<string>
  private readonly baseDir: string
  private readonly values: Readonly<Record<string, unknown>>
  /** The values known before the run, for rendering parameters (see static-args.ts). */
  private readonly scope: Record<string, unknown>

  constructor(o: ValidateOptions) {
    this.rb = o.runbook
    this.inv = o.inventory
    this.registry = o.registry
    this.sources = o.sources
    this.baseDir = o.baseDir
    this.values = o.known.values ?? {}
    this.base = new Set([...o.known.runbook, ...o.known.extra, ...o.known.secrets, ...MAGIC])
    this.addedGroups = addedGroups(this.rb)
    this.shadowed = shadowedNames(this.rb, this.inv)
    const extra = new Set(o.known.extra)
    this.scope = staticScope(
      this.values,
      new Set([...this.shadowed, ...o.known.secrets].filter((k) => !extra.has(k))),
    )
  }

  /** Names defined anywhere but the top-level vars: their values are not known before the run. */
  private readonly shadowed: Set<string>

  err(
    code: RunbookError['code'],
    message: string,
    file: string,
    path: YamlPath,
    opts: {
      task?: string | undefined
      hint?: string | undefined
      key?: boolean
      index?: number
    } = {},
  ): void {
    const src = this.sources.get(file)
    const pos = src
      ? opts.index !== undefined
        ? locateInScalar(src, path, opts.index)
        : locate(src, path, { key: opts.key })
      : undefined
    this.errors.push(new RunbookError(code, message, { pos, task: opts.task, hint: opts.hint }))
  }

  run(): void {
    const all = this.rb.plays.flatMap((p) => [...flatTasks(p.tasks), ...p.handlers])
    for (const [i, t] of this.rb.plays.flatMap((p) => flatTasks(p.tasks)).entries()) {
      this.order.set(t, i)
      const m = this.registry.get(t.module)
      for (const v of [...(t.register ? [t.register] : []), ...(m?.providesVars?.(t.args) ?? [])])
        if (!this.setBy.has(v)) this.setBy.set(v, { index: i, task: t })
    }
    for (const t of all) {
      if (t.register) this.dynamic.add(t.register)
      const m = this.registry.get(t.module)
      for (const v of m?.providesVars?.(t.args) ?? []) this.dynamic.add(v)
      if (t.module === 'add_host' && t.args.vars && typeof t.args.vars === 'object')
        for (const v of Object.keys(t.args.vars)) this.dynamic.add(v)
    }
    if (this.rb.plays.some((p) => p.gatherFacts)) this.dynamic.add('facts')
    this.topVars()
    for (const play of this.rb.plays) this.play(play)
  }

  /**
   * The runbook's own vars: valid names, not the engine's reserved ones, templates that refer to
   * something that exists somewhere (they render lazily, on each host, so anything a host, play or
   * task defines counts), and no chain of them that comes back to where it started.
   */
  topVars(): void {
    const everywhere = new Set([...this.base, ...this.dynamic])
    for (const p of this.rb.plays) {
      for (const k of [...Object.keys(p.vars), ...Object.keys(p.defaults)]) everywhere.add(k)
      for (const t of flatTasks(p.tasks)) for (const k of Object.keys(t.vars)) everywhere.add(k)
    }
    for (const g of this.inv.groups.values()) for (const k of Object.keys(g.vars)) everywhere.add(k)
    for (const h of this.inv.hosts.values()) for (const k of Object.keys(h.vars)) everywhere.add(k)
    this.varNames(this.rb.vars, this.rb.file, ['vars'], undefined)
    this.vars(this.rb.vars, this.rb.file, ['vars'], everywhere, undefined)
    const cycle = varCycle(this.rb.vars)
    if (cycle)
      this.err(
        'E_TEMPLATE',
        `variable '${cycle[0]}' refers to itself: ${cycle.join(' -> ')}`,
        this.rb.file,
        ['vars', cycle[0] ?? ''],
        { key: true, hint: 'one of these must be a value, not a template of the others' },
      )
  }

  /** Variable names that templates and conditions can use, none of them the engine's own. */
  varNames(
    vars: Record<string, unknown>,
    file: string,
    path: YamlPath,
    task: string | undefined,
  ): void {
    for (const k of Object.keys(vars)) {
      const problem =
        badVariableName(k) ??
        (RESERVED_VARS.has(k)
          ? {
              message: `'${k}' is set by runbook itself and cannot be a variable of yours`,
              hint: 'choose another name',
            }
          : undefined)
      if (problem)
        this.err('E_SCHEMA', problem.message, file, [...path, k], {
          task,
          key: true,
          hint: problem.hint,
        })
    }
  }

  play(play: Play): void {
    this.notYet = new Map()
    const known = new Set([
      ...this.base,
      ...this.dynamic,
      ...Object.keys(play.vars),
      ...Object.keys(play.defaults),
    ])
    for (const g of this.inv.groups.values()) for (const k of Object.keys(g.vars)) known.add(k)
    for (const h of this.inv.hosts.values()) for (const k of Object.keys(h.vars)) known.add(k)
    this.varNames(play.vars, play.file, [...play.path, 'vars'], undefined)
    this.vars(play.vars, play.file, [...play.path, 'vars'], known, undefined)
    for (const term of play.hosts
      .split(/[:,]/)
      .map((t) => t.trim().replace(/^[!&]/, ''))
      .filter(Boolean)) {
      if (isTemplate(term) || term.includes('*') || term.includes('?')) continue
      if (this.inv.match(term).length || this.addedGroups.has(term) || this.inv.groups.has(term))
        continue
      this.err(
        'E_INVENTORY',
        `hosts pattern '${term}' matches no host or group`,
        play.file,
        [...play.path, 'hosts'],
        {
          hint:
            didYouMean(term, [...this.inv.names(), ...this.addedGroups]) ??
            (this.inv.file ? undefined : 'no inventory given: use -i INVENTORY'),
        },
      )
    }
    const topics = new Set(play.handlers.flatMap((h) => h.listen))
    this.duplicateHandlers(play)
    // names that exist before any task sets them: vars of the runbook, play, inventory, -e, magic
    const before = new Set(known)
    for (const n of this.dynamic) if (!this.isStatic(n, play)) before.delete(n)
    this.steps(play.tasks, known, topics, false, before)
    this.steps(play.handlers, known, topics, true)
  }

  /** Whether a name has a value before any task runs (so a task may use it at any point). */
  private isStatic(name: string, play: Play): boolean {
    return (
      this.base.has(name) ||
      name in play.vars ||
      name in play.defaults ||
      name === 'facts' ||
      [...this.inv.groups.values(), ...this.inv.hosts.values()].some((x) => name in x.vars)
    )
  }

  /** Two handlers of one play with the same name: only one of them would ever run. */
  duplicateHandlers(play: Play): void {
    const seen = new Set<string>()
    for (const h of play.handlers) {
      if (seen.has(h.name))
        this.err(
          'E_SCHEMA',
          `a second handler named '${h.name}' in this play: notify would run only one of them`,
          h.file,
          [...h.path, 'name'],
          { task: h.name, hint: 'give each handler its own name (or use listen: for a topic)' },
        )
      seen.add(h.name)
    }
  }

  steps(
    steps: Step[],
    known: Set<string>,
    topics: Set<string>,
    inRescue: boolean,
    before?: Set<string>,
  ): void {
    for (const s of steps) {
      this.notYet = before ? this.laterNames(s, known, before) : new Map()
      const scope = new Set([...known, ...Object.keys(s.vars)])
      const whenScope =
        s.kind === 'task' && s.loop !== undefined
          ? new Set([...scope, s.loopVar, ...(s.indexVar ? [s.indexVar] : [])])
          : scope
      this.varNames(s.vars, s.file, [...s.path, 'vars'], s.name)
      this.vars(s.vars, s.file, [...s.path, 'vars'], whenScope, s.name)
      for (const [i, w] of s.when.entries())
        this.condition(
          w,
          s.file,
          [...s.path, 'when', ...(s.when.length > 1 ? [i] : [])],
          whenScope,
          s.name,
        )
      if (s.kind === 'block') {
        const outer = this.guards
        this.guards = [...outer, ...s.when]
        this.steps(s.block, scope, topics, inRescue, before)
        const withFail = new Set([...scope, 'failed_task', 'failed_result'])
        const after = before && new Set([...before, ...withFail])
        this.steps(s.rescue, withFail, topics, true, after)
        this.steps(s.always, withFail, topics, inRescue, after)
        this.guards = outer
        continue
      }
      this.task(s, scope, topics)
    }
  }

  /**
   * Names that a step uses before any task has set them: only a later task registers or sets
   * them (the first task of a block stands for the block).
   */
  laterNames(s: Step, known: Set<string>, before: Set<string>): Map<string, string> {
    const first = s.kind === 'task' ? s : flatTasks([s])[0]
    const at = first ? this.order.get(first) : undefined
    const out = new Map<string, string>()
    if (at === undefined) return out
    for (const [name, by] of this.setBy) {
      if (by.index <= at || before.has(name) || !known.has(name) || name in s.vars) continue
      if (s.kind === 'block' && by.index < at + flatTasks([s]).length) continue
      const line = this.sources.get(by.task.file)
        ? locate(this.sources.get(by.task.file) as Parameters<typeof locate>[0], by.task.path)?.line
        : undefined
      out.set(
        name,
        `it is set only later, by task '${by.task.name}'${line ? ` (line ${line})` : ''}: move this task after it, or give the variable a value first`,
      )
    }
    return out
  }

  task(t: Task, known: Set<string>, topics: Set<string>): void {
    const m = this.registry.get(t.module)
    if (!m) return
    if (t.loop !== undefined) {
      this.value(t.loop, t.file, [...t.path, 'loop'], known, t.name)
      this.loopIsList(t)
    }
    const scope = new Set([
      ...known,
      ...(t.loop !== undefined ? [t.loopVar, ...(t.indexVar ? [t.indexVar] : [])] : []),
    ])
    const withResult = new Set([...scope, 'result', ...(t.register ? [t.register] : [])])
    for (const issue of checkShape(m.params, t.args, m.aliases ?? {})) {
      this.err(
        'E_PARAM',
        `${t.module}: ${issue.message}`,
        t.file,
        [...t.path, t.module, ...issue.path],
        { task: t.name, hint: issue.hint, key: issue.atKey },
      )
    }
    this.renderedShape(t)
    this.secretsInArgs(t)
    this.yamlOctalMode(t)
    this.copySource(t)
    for (const f of m.templateFiles?.(t.args) ?? [])
      this.templateFile(f.path, new Set([...scope, ...f.vars]), t, [...t.path, t.module, 'src'])
    const raw = new Set(m.rawParams ?? [])
    const loop = t.loop === undefined ? undefined : staticLoop(t.loop, this.scope)
    this.items = (loop ?? [undefined])
      .map((item, i) =>
        loop ? { [t.loopVar]: item, ...(t.indexVar ? { [t.indexVar]: i } : {}) } : {},
      )
      .filter((names) => this.runsSurely(t, withNames(this.scope, names)))
    for (const [k, v] of Object.entries(t.args)) {
      // Parameters the module renders itself (with variables of its own) get a syntax check only.
      this.value(v, t.file, [...t.path, t.module, k], raw.has(k) ? undefined : scope, t.name)
    }
    this.items = [{}]
    for (const [k, list] of [
      ['changed_when', t.changedWhen],
      ['failed_when', t.failedWhen],
    ] as const) {
      for (const [i, c] of list.entries())
        this.condition(
          c,
          t.file,
          [...t.path, k, ...(list.length > 1 ? [i] : [])],
          withResult,
          t.name,
        )
    }
    if (t.until) this.condition(t.until, t.file, [...t.path, 'until'], withResult, t.name)
    if (
      t.delegateTo &&
      !isTemplate(t.delegateTo) &&
      !this.inv.match(t.delegateTo).length &&
      !this.addedHostNames().has(t.delegateTo)
    ) {
      this.err(
        'E_INVENTORY',
        `delegate_to: no host '${t.delegateTo}'`,
        t.file,
        [...t.path, 'delegate_to'],
        { task: t.name, hint: didYouMean(t.delegateTo, this.inv.names()) },
      )
    }
    for (const [i, n] of t.notify.entries()) {
      if (!topics.has(n))
        this.err(
          'E_SCHEMA',
          `notify: no handler named '${n}' in this play`,
          t.file,
          [...t.path, 'notify', ...(t.notify.length > 1 ? [i] : [])],
          { task: t.name, hint: didYouMean(n, topics) },
        )
    }
  }

  /**
   * Templated parameters judged by what they render to from values known before the run
   * (`path: "{{base}}"` with `base: /etc`), once per item of a loop known before the run. Problems
   * the literal check already reported are not repeated.
   */
  renderedShape(t: Task): void {
    const m = this.registry.get(t.module)
    if (!m || !hasTemplate(t.args)) return
    const loop = t.loop === undefined ? [undefined] : staticLoop(t.loop, this.scope)
    if (!loop) return
    const aliases = m.aliases ?? {}
    const seen = new Set(checkShape(m.params, t.args, aliases).map(issueKey))
    for (const [i, item] of loop.entries()) {
      const scope =
        t.loop === undefined
          ? this.scope
          : withNames(this.scope, { [t.loopVar]: item, ...(t.indexVar ? { [t.indexVar]: i } : {}) })
      // a task whose `when` may not hold is judged when it runs: `name: "{{stop_vm}}"` guarded
      // by `when: stop_vm != ''` is empty only when the task is skipped
      if (!this.runsSurely(t, scope)) continue
      const rendered = coerceParams(m.params, renderKnown(t.args, scope))
      for (const issue of checkShape(m.params, rendered, aliases)) {
        if (seen.has(issueKey(issue))) continue
        seen.add(issueKey(issue))
        const at = templatedAt(t.args, issue.path)
        const shown = at.template ? shownValue(at.value, renderKnown(at.value, scope)) : undefined
        this.err(
          'E_PARAM',
          `${t.module}: ${issue.message}${t.loop !== undefined ? ` (loop item ${i})` : ''}`,
          t.file,
          [...t.path, t.module, ...at.path],
          { task: t.name, hint: shown ?? issue.hint, key: issue.atKey },
        )
      }
    }
  }

  /** A secret declared in set_fact or add_host vars: secrets are declared in top-level vars. */
  secretsInArgs(t: Task): void {
    const vars =
      t.module === 'add_host' ? t.args.vars : t.module === 'set_fact' ? t.args : undefined
    if (vars === null || typeof vars !== 'object') return
    const at = [...t.path, t.module, ...(t.module === 'add_host' ? ['vars'] : [])]
    const src = this.sources.get(t.file)
    for (const [k, v] of Object.entries(vars))
      if (looksLikeSecret(v))
        this.errors.push(
          misplacedSecret(k, src ? locate(src, [...at, k]) : undefined).locate({ task: t.name }),
        )
  }

  /** Whether every `when` around and on a task holds for sure with the values known now. */
  runsSurely(t: Task, scope: Record<string, unknown>): boolean {
    return [...this.guards, ...t.when].every((c) => {
      try {
        return evaluateCondition(c, scope) === true
      } catch {
        return false
      }
    })
  }

  /**
   * `mode: 0o644` is the number 420 to YAML 1.2, whose digits would make a wrong mode: the one
   * rule (docs/modules-host.md) is chmod's digits, quoted or not, and YAML's 0o/0x forms refused.
   */
  yamlOctalMode(t: Task): void {
    const src = this.sources.get(t.file)
    const node: unknown = src?.doc.getIn([...t.path, t.module, 'mode'], true)
    if (!src || !isScalar(node) || typeof node.value !== 'number' || !node.range) return
    const raw = src.text.slice(node.range[0], node.range[1]).trim()
    if (/^[+-]?0[oOxXbB]/.test(raw))
      this.err(
        'E_PARAM',
        `${t.module}: mode ${raw} is the number ${node.value} to YAML, not chmod's digits`,
        t.file,
        [...t.path, t.module, 'mode'],
        { task: t.name, hint: `write the digits, quoted: mode: '0${node.value.toString(8)}'` },
      )
  }

  /** `loop: "{{nodes}}"` when `nodes` is known before the run and is not a list. */
  loopIsList(t: Task): void {
    if (typeof t.loop === 'string' && !isTemplate(t.loop)) {
      this.err('E_SCHEMA', `loop: '${t.loop}' is text, not a list`, t.file, [...t.path, 'loop'], {
        task: t.name,
        hint: `write the items as a list: loop: [${t.loop
          .split(/\s*,\s*/)
          .filter(Boolean)
          .join(', ')}], or a template of a list variable: loop: "{{ items }}"`,
      })
      return
    }
    const m = typeof t.loop === 'string' ? /^\s*\{\{\s*([\w.]+)\s*\}\}\s*$/.exec(t.loop) : null
    const root = m?.[1]?.split('.')[0] ?? ''
    if (!m || this.shadowed.has(root) || !(root in this.values) || this.subKey(m[1] ?? '')) return
    let v: unknown = this.values
    for (const part of (m[1] ?? '').split('.')) v = (v as Record<string, unknown>)[part]
    if (Array.isArray(v) || hasTemplate(v) || v === undefined) return
    const what =
      v === null
        ? 'empty (null)'
        : typeof v === 'object'
          ? 'a mapping'
          : `the ${typeof v} ${JSON.stringify(v)}`
    this.err('E_SCHEMA', `loop: '${m[1]}' is ${what}, not a list`, t.file, [...t.path, 'loop'], {
      task: t.name,
      hint: 'loop over a list (`- a` items, or [a, b]); for a mapping, list its entries instead',
    })
  }

  /** Reports a source outside the runbook's tree and `allow_sources`; true when it is. */
  outside(file: string, t: Task, at: YamlPath, module: string): boolean {
    if (!outsideTree(file, this.baseDir, this.rb.allowSources ?? [])) return false
    this.err(
      'E_PARAM',
      `${module}: source ${file} is outside the runbook's directory ${this.baseDir}`,
      t.file,
      at,
      {
        task: t.name,
        hint: 'list its directory under `allow_sources:` at the top of the runbook if it is meant',
      },
    )
    return true
  }

  /** A copy whose `src` names no file (templates are checked with their contents). */
  copySource(t: Task): void {
    const src = t.args.src
    if (t.module !== 'copy' || typeof src !== 'string' || isTemplate(src)) return
    const dirs = sourceSearchPath(t.roleDir, this.baseDir)
    const file = findSource(dirs, src)
    if (file !== undefined) this.outside(file, t, [...t.path, t.module, 'src'], 'copy')
    else
      this.err(
        'E_PARAM',
        `copy: source file ${src} not found (looked in ${dirs.join(', ')})`,
        t.file,
        [...t.path, t.module, 'src'],
        {
          task: t.name,
        },
      )
  }

  /** Checks a template file's syntax and variables, pointing into the file itself. */
  templateFile(rel: string, known: Set<string>, t: Task, at: YamlPath): void {
    const dirs = sourceSearchPath(t.roleDir, this.baseDir)
    const file = findSource(dirs, rel)
    let text: string
    try {
      if (file === undefined) throw new Error('not found')
      text = readFileSync(file, 'utf8')
    } catch {
      this.err(
        'E_PARAM',
        `${t.module}: template file ${rel} not found (looked in ${dirs.join(', ')})`,
        t.file,
        at,
        { task: t.name },
      )
      return
    }
    if (this.outside(file, t, at, 'template')) return
    this.sources.addText(file, text, isPrivate(statSync(file).mode))
    const posOf = (index: number): { file: string; line: number; col: number } => {
      const before = text.slice(0, index).split('\n')
      return { file, line: before.length, col: (before[before.length - 1]?.length ?? 0) + 1 }
    }
    const jinja = jinjaSyntax(text)
    if (jinja) {
      this.errors.push(
        new RunbookError('E_TEMPLATE', jinja.message, {
          pos: posOf(jinja.index),
          task: t.name,
          hint: jinja.hint,
        }),
      )
      return
    }
    let refs: ReturnType<typeof templateRefs>
    try {
      refs = templateRefs(text)
    } catch (e) {
      const open = unclosedBlock(text)
      const line = /line (\d+)/.exec(String((e as RunbookError).cause ?? ''))?.[1]
      this.errors.push(
        open
          ? new RunbookError('E_TEMPLATE', open.message, {
              pos: posOf(open.index),
              task: t.name,
              hint: open.hint,
            })
          : new RunbookError('E_TEMPLATE', (e as Error).message, {
              pos: { file, line: Number(line ?? 1), col: 1 },
              task: t.name,
              hint: (e as RunbookError).hint,
            }),
      )
      return
    }
    for (const h of refs.helpers) {
      if (!['if', 'unless', 'each', 'with'].includes(h.root) && !this.isHelper(h.root))
        this.errors.push(
          new RunbookError('E_TEMPLATE', `unknown helper '${h.root}'`, {
            pos: posOf(h.index),
            task: t.name,
            hint: didYouMean(h.root, this.helperList()),
          }),
        )
    }
    const before = this.errors.length
    for (const r of refs.vars) {
      const sub = known.has(r.root) ? this.subKey(r.path) : undefined
      if (!known.has(r.root) || sub)
        this.errors.push(
          new RunbookError('E_UNDEFINED', sub?.message ?? `undefined variable '${r.root}'`, {
            pos: posOf(r.index),
            task: t.name,
            hint: sub ? sub.hint : didYouMean(r.root, known),
          }),
        )
    }
    if (this.errors.length > before) return
    const problem = this.trialRender(text, known)
    const name = problem && /variable '@?([\w-]+)'/.exec(problem.message)?.[1]
    if (problem)
      this.errors.push(
        new RunbookError('E_UNDEFINED', problem.message, {
          pos: posOf(Math.max(0, name ? text.search(new RegExp(`\\{\\{[^}]*\\b${name}\\b`)) : 0)),
          task: t.name,
          hint: problem.hint,
        }),
      )
  }

  private addedHostNames(): Set<string> {
    const names = new Set<string>()
    for (const p of this.rb.plays)
      for (const t of flatTasks(p.tasks))
        if (t.module === 'add_host' && typeof t.args.name === 'string') names.add(t.args.name)
    return names
  }

  vars(
    vars: Record<string, unknown>,
    file: string,
    path: YamlPath,
    known: Set<string>,
    task: string | undefined,
  ): void {
    for (const [k, v] of Object.entries(vars)) {
      if (looksLikeSecret(v)) {
        const src = this.sources.get(file)
        this.errors.push(
          misplacedSecret(k, src ? locate(src, [...path, k]) : undefined).locate({ task }),
        )
        continue
      }
      this.value(v, file, [...path, k], known, task)
    }
  }

  /** Checks every template inside a value (syntax only when `known` is undefined). */
  value(
    v: unknown,
    file: string,
    path: YamlPath,
    known: Set<string> | undefined,
    task: string | undefined,
  ): void {
    if (typeof v === 'string') this.template(v, file, path, known, task)
    else if (Array.isArray(v)) v.forEach((x, i) => this.value(x, file, [...path, i], known, task))
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) this.value(x, file, [...path, k], known, task)
  }

  template(
    s: string,
    file: string,
    path: YamlPath,
    known: Set<string> | undefined,
    task: string | undefined,
  ): void {
    const before = this.errors.length
    this.templateNames(s, file, path, known, task)
    if (known && this.errors.length === before && /\{\{[#>]|\.\w/.test(s)) {
      const problem = this.trialRender(s, known)
      if (problem)
        this.err('E_UNDEFINED', problem.message, file, path, { task, hint: problem.hint })
    }
  }

  /**
   * Renders a template with the values known before the run (once per known loop item), to find
   * names that a static reading cannot see: those inside `{{#each}}`/`{{#with}}` and the sub-keys
   * of a loop item. Names known only at run time render as unknown and are not judged.
   */
  trialRender(
    s: string,
    known: Set<string>,
  ): { message: string; hint: string | undefined } | undefined {
    const view = viewOf(this.scope, known)
    for (const names of this.items) {
      try {
        renderString(s, withNames(view, names))
      } catch (e) {
        if (e instanceof RunbookError && e.code === 'E_UNDEFINED')
          return { message: e.message, hint: e.hint }
        return undefined
      }
    }
    return undefined
  }

  templateNames(
    s: string,
    file: string,
    path: YamlPath,
    known: Set<string> | undefined,
    task: string | undefined,
  ): void {
    if (!isTemplate(s) && !s.includes('{%')) return
    const jinja = jinjaSyntax(s)
    if (jinja) {
      this.err('E_TEMPLATE', jinja.message, file, path, {
        task,
        index: jinja.index,
        hint: jinja.hint,
      })
      return
    }
    let refs: ReturnType<typeof templateRefs>
    try {
      refs = templateRefs(s)
    } catch (e) {
      this.err('E_TEMPLATE', (e as Error).message, file, path, {
        task,
        hint: (e as RunbookError).hint,
      })
      return
    }
    for (const h of refs.helpers) {
      if (!['if', 'unless', 'each', 'with'].includes(h.root) && !this.isHelper(h.root))
        this.err('E_TEMPLATE', `unknown helper '${h.root}'`, file, path, {
          task,
          index: h.index,
          hint: didYouMean(h.root, this.helperList()),
        })
    }
    for (const r of refs.vars) {
      const later = known ? this.notYet.get(r.root) : undefined
      if (later)
        this.err('E_UNDEFINED', `variable '${r.root}' is used before it is set`, file, path, {
          task,
          index: r.index,
          hint: later,
        })
      else if (known && !known.has(r.root))
        this.err('E_UNDEFINED', `undefined variable '${r.root}'`, file, path, {
          task,
          index: r.index,
          hint: didYouMean(r.root, known),
        })
      else if (known) {
        const sub = this.subKey(r.path)
        if (sub)
          this.err('E_UNDEFINED', sub.message, file, path, { task, index: r.index, hint: sub.hint })
      }
    }
  }

  /**
   * A sub-key missing from a value known before the run (`node.prority` when `node` is a
   * top-level variable that nothing else redefines).
   */
  subKey(ref: string): { message: string; hint: string | undefined } | undefined {
    const parts = ref.replace(/\.\[([^\]]*)\]/g, '.$1').split('.')
    const root = parts[0] ?? ''
    if (parts.length < 2 || this.shadowed.has(root) || !(root in this.values)) return undefined
    let cur: unknown = this.values[root]
    for (let i = 1; i < parts.length; i++) {
      const part = parts[i] ?? ''
      if (cur === null || typeof cur !== 'object' || hasTemplate(cur)) return undefined
      if (!Object.prototype.hasOwnProperty.call(cur, part)) {
        const keys = Object.keys(cur)
        return {
          message: `undefined variable '${part}' in '${parts.slice(0, i).join('.')}' (from '${ref}')`,
          hint:
            didYouMean(part, keys) ??
            (keys.length ? `it has ${keys.slice(0, 8).join(', ')}` : undefined),
        }
      }
      cur = (cur as Record<string, unknown>)[part]
    }
    return undefined
  }

  condition(
    c: string | boolean,
    file: string,
    path: YamlPath,
    known: Set<string>,
    task: string | undefined,
  ): void {
    if (typeof c !== 'string') return
    if (isTemplate(c) && !/^\s*\{\{[^{}]*\}\}\s*$/.test(c)) {
      // `{{ n }} > 2` renders to the text "1 > 2", which is not empty, so it would always hold
      this.err(
        'E_EXPRESSION',
        'a condition is an expression, not a template: this mixes {{ }} with other text and would always be true',
        file,
        path,
        { task, hint: `write it without braces: ${c.replace(/\{\{\s*|\s*\}\}/g, '')}` },
      )
      return
    }
    if (isTemplate(c)) return this.template(c, file, path, known, task)
    let refs: string[]
    try {
      refs = expressionRefs(c)
    } catch (e) {
      this.err('E_EXPRESSION', (e as Error).message, file, path, { task })
      return
    }
    for (const p of expressionProblems(c))
      this.err('E_EXPRESSION', `condition: ${p.message}`, file, path, { task, hint: p.hint })
    for (const r of refs)
      if (this.notYet.has(r))
        this.err(
          'E_UNDEFINED',
          `variable '${r}' is used in a condition before it is set`,
          file,
          path,
          {
            task,
            hint: this.notYet.get(r),
          },
        )
      else if (!known.has(r))
        this.err('E_UNDEFINED', `undefined variable '${r}' in condition`, file, path, {
          task,
          hint: didYouMean(r, known),
        })
  }

  private helperList(): string[] {
    return [...helperNames]
  }
  private isHelper(name: string): boolean {
    return helperNames.has(name)
  }
}

const issueKey = (i: ShapeIssue): string => `${i.path.join('.')}\u0000${i.message}`

/**
 * Where a problem found in rendered parameters sits in the parameters as written: the path down to
 * the template that produced it, and that template.
 */
function templatedAt(
  args: unknown,
  at: readonly (string | number)[],
): { path: (string | number)[]; value: unknown; template: boolean } {
  let cur = args
  const path: (string | number)[] = []
  for (const part of at) {
    if (typeof cur === 'string' && isTemplate(cur)) break
    if (cur === null || typeof cur !== 'object' || !(part in cur)) break
    cur = (cur as Record<string | number, unknown>)[part]
    path.push(part)
  }
  return { path, value: cur, template: typeof cur === 'string' && isTemplate(cur) }
}

/** "'{{base}}' renders to '/etc' before the run", for a hint. */
function shownValue(template: unknown, rendered: unknown): string | undefined {
  if (typeof template !== 'string' || rendered === template) return undefined
  const text = typeof rendered === 'string' ? rendered : JSON.stringify(rendered)
  const short = text.length > 60 ? `${text.slice(0, 57)}...` : text
  return `'${template}' renders to '${short}' before the run`
}

/**
 * Validates a loaded runbook against modules, inventory and known variables.
 * @example const errors = validateRunbook({ runbook, inventory, registry, sources, known: { runbook: [...], extra: [], secrets: [] }, baseDir })
 */
export function validateRunbook(o: ValidateOptions): RunbookError[] {
  const v = new Validator(o)
  v.run()
  return v.errors
}
