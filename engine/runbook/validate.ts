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
import { expressionRefs } from '../vars/expr.ts'
import { helperNames } from '../vars/helpers.ts'
import { looksLikeSecret, misplacedSecret } from '../vars/secrets.ts'
import { isTemplate, templateRefs } from '../vars/template.ts'
import { checkShape, coerceParams, hasTemplate, type ShapeIssue } from './shape.ts'
import { renderKnown, staticLoop, staticScope, withNames } from './static-args.ts'
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

const MAGIC = ['inventory_hostname', 'groups', 'hostvars', 'play_hosts', 'runbook_dir', 'state_dir']

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

/** What a validation run reads. */
interface ValidatorInput {
  rb: Runbook
  inv: Inventory
  registry: ModuleRegistry
  sources: SourceSet
  known: KnownVars
  baseDir: string
}

class Validator {
  readonly errors: RunbookError[] = []
  /** Variables any task may set: registered results, set_fact keys, facts. */
  private readonly dynamic = new Set<string>()
  /** Groups that add_host will create. */
  private readonly addedGroups: Set<string>

  private readonly rb: Runbook
  private readonly inv: Inventory
  private readonly registry: ModuleRegistry
  private readonly sources: SourceSet
  private readonly base: Set<string>
  private readonly baseDir: string
  private readonly values: Readonly<Record<string, unknown>>
  /** The values known before the run, for rendering parameters (see static-args.ts). */
  private readonly scope: Record<string, unknown>

  constructor(o: ValidatorInput) {
    this.rb = o.rb
    this.inv = o.inv
    this.registry = o.registry
    this.sources = o.sources
    this.baseDir = o.baseDir
    this.values = o.known.values ?? {}
    this.base = new Set([...o.known.runbook, ...o.known.extra, ...o.known.secrets, ...MAGIC])
    this.addedGroups = addedGroups(o.rb)
    this.shadowed = shadowedNames(o.rb, o.inv)
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
    for (const t of all) {
      if (t.register) this.dynamic.add(t.register)
      const m = this.registry.get(t.module)
      for (const v of m?.providesVars?.(t.args) ?? []) this.dynamic.add(v)
      if (t.module === 'add_host' && t.args.vars && typeof t.args.vars === 'object')
        for (const v of Object.keys(t.args.vars)) this.dynamic.add(v)
    }
    if (this.rb.plays.some((p) => p.gatherFacts)) this.dynamic.add('facts')
    for (const play of this.rb.plays) this.play(play)
  }

  play(play: Play): void {
    const known = new Set([
      ...this.base,
      ...this.dynamic,
      ...Object.keys(play.vars),
      ...Object.keys(play.defaults),
    ])
    for (const g of this.inv.groups.values()) for (const k of Object.keys(g.vars)) known.add(k)
    for (const h of this.inv.hosts.values()) for (const k of Object.keys(h.vars)) known.add(k)
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
    this.steps(play.tasks, known, topics, false)
    this.steps(play.handlers, known, topics, true)
  }

  steps(steps: Step[], known: Set<string>, topics: Set<string>, inRescue: boolean): void {
    for (const s of steps) {
      const scope = new Set([...known, ...Object.keys(s.vars)])
      const whenScope =
        s.kind === 'task' && s.loop !== undefined
          ? new Set([...scope, s.loopVar, ...(s.indexVar ? [s.indexVar] : [])])
          : scope
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
        this.steps(s.block, scope, topics, inRescue)
        this.steps(s.rescue, new Set([...scope, 'failed_task', 'failed_result']), topics, true)
        this.steps(s.always, new Set([...scope, 'failed_task', 'failed_result']), topics, inRescue)
        continue
      }
      this.task(s, scope, topics)
    }
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
    this.yamlOctalMode(t)
    this.copySource(t)
    for (const f of m.templateFiles?.(t.args) ?? [])
      this.templateFile(f.path, new Set([...scope, ...f.vars]), t, [...t.path, t.module, 'src'])
    const raw = new Set(m.rawParams ?? [])
    for (const [k, v] of Object.entries(t.args)) {
      // Parameters the module renders itself (with variables of its own) get a syntax check only.
      this.value(v, t.file, [...t.path, t.module, k], raw.has(k) ? undefined : scope, t.name)
    }
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
      if (known && !known.has(r.root))
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
    for (const r of refs)
      if (!known.has(r))
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
 * @example const errors = validateRunbook(runbook, inventory, registry, sources, { runbook: [...], extra: [], secrets: [] })
 */
// eslint-disable-next-line max-params -- positional parameters to be replaced by one value (issue 13)
export function validateRunbook(
  rb: Runbook,
  inv: Inventory,
  registry: ModuleRegistry,
  sources: SourceSet,
  known: KnownVars,
  baseDir: string,
): RunbookError[] {
  const v = new Validator({ rb, inv, registry, sources, known, baseDir })
  v.run()
  return v.errors
}
