/**
 * Turns a parsed YAML runbook into typed plays and tasks, collecting every structural problem
 * (unknown keywords, unknown modules, wrong types) with its position instead of stopping at the
 * first one.
 */
import path from 'node:path'
import type { z } from 'zod'
import { RunbookError } from '../errors.ts'
import { didYouMean } from '../suggest.ts'
import { playKeywords, runbookKeywords, taskKeywords, PLAY_KEYS, RUNBOOK_KEYS, TASK_KEYS } from './schema.ts'
import { locate, type Source, type YamlPath } from './source.ts'
import type { Block, Common, Play, Runbook, Step, Task } from './types.ts'

/** What the loader needs to know about modules. */
export interface ModuleCatalog {
  has(name: string): boolean
  names(): Iterable<string>
  /** The parameter a string argument stands for (`shell: echo hi` is `cmd: echo hi`). */
  freeForm(name: string): string | undefined
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)])
const conds = (v: unknown): (string | boolean)[] => (v === undefined ? [] : Array.isArray(v) ? (v as (string | boolean)[]) : [v as string | boolean])

class Loader {
  readonly errors: RunbookError[] = []
  constructor(
    private readonly src: Source,
    private readonly modules: ModuleCatalog,
  ) {}

  err(code: RunbookError['code'], message: string, p: YamlPath, opts: { key?: boolean; hint?: string | undefined; task?: string | undefined } = {}): void {
    this.errors.push(new RunbookError(code, message, { pos: locate(this.src, p, { key: opts.key }), hint: opts.hint, task: opts.task }))
  }

  /** Checks the keywords of one mapping; returns the keys that are not keywords. */
  keywords(obj: Obj, p: YamlPath, schema: Record<string, z.ZodType>, allowed: ReadonlySet<string>, what: string, task?: string): string[] {
    const rest: string[] = []
    for (const [k, v] of Object.entries(obj)) {
      if (!allowed.has(k)) {
        rest.push(k)
        continue
      }
      const s = schema[k]
      if (!s || v === null || v === undefined) continue
      const r = s.safeParse(v)
      if (!r.success) {
        const issue = r.error.issues[0]
        const sub = issue && issue.path.length ? [...p, k, ...(issue.path as (string | number)[])] : [...p, k]
        this.err('E_SCHEMA', `${what} keyword '${k}': ${issue?.message ?? 'invalid value'}`, sub, { task })
      }
    }
    return rest
  }

  runbook(): Runbook {
    const file = this.src.file
    const root = this.src.value
    let top: Obj
    let playsPath: YamlPath
    if (Array.isArray(root)) {
      top = { plays: root }
      playsPath = []
    } else if (isObj(root)) {
      top = root
      playsPath = ['plays']
      for (const k of this.keywords(root, [], runbookKeywords, RUNBOOK_KEYS, 'runbook')) {
        this.err('E_UNKNOWN_KEY', `unknown runbook keyword '${k}'`, [k], { key: true, hint: didYouMean(k, RUNBOOK_KEYS) })
      }
    } else {
      this.err('E_SCHEMA', 'a runbook is a mapping with `plays`, or a list of plays', [])
      return { file, name: path.basename(file), vars: {}, plays: [] }
    }
    const plays: Play[] = []
    const rawPlays = Array.isArray(top.plays) ? top.plays : []
    if (!Array.isArray(top.plays) || rawPlays.length === 0) this.err('E_SCHEMA', 'a runbook needs at least one play', playsPath)
    rawPlays.forEach((rp, i) => {
      const play = this.play(rp, [...playsPath, i])
      if (play) plays.push(play)
    })
    return {
      file,
      name: typeof top.name === 'string' ? top.name : path.basename(file),
      description: typeof top.description === 'string' ? top.description : undefined,
      vars: isObj(top.vars) ? top.vars : {},
      inventory: typeof top.inventory === 'string' ? top.inventory : undefined,
      plays,
    }
  }

  play(raw: unknown, p: YamlPath): Play | undefined {
    if (!isObj(raw)) {
      this.err('E_SCHEMA', 'a play is a mapping with hosts and tasks', p)
      return undefined
    }
    for (const k of this.keywords(raw, p, playKeywords, PLAY_KEYS, 'play')) {
      const hint = didYouMean(k, PLAY_KEYS) ?? (this.modules.has(k) || TASK_KEYS.has(k) ? 'tasks go under `tasks:`' : undefined)
      this.err('E_UNKNOWN_KEY', `unknown play keyword '${k}'`, [...p, k], { key: true, hint })
    }
    if (raw.hosts === undefined) this.err('E_SCHEMA', "play has no 'hosts'", p)
    const handlers = Array.isArray(raw.handlers) ? raw.handlers.map((h, i) => this.step(h, [...p, 'handlers', i], true)).filter((s): s is Task => s?.kind === 'task') : []
    return {
      file: this.src.file,
      path: p,
      name: typeof raw.name === 'string' ? raw.name : `play ${String(p[p.length - 1])}`,
      hosts: Array.isArray(raw.hosts) ? raw.hosts.map(String).join(':') : String(raw.hosts ?? ''),
      vars: isObj(raw.vars) ? raw.vars : {},
      become: raw.become === true,
      becomeUser: typeof raw.become_user === 'string' ? raw.become_user : undefined,
      gatherFacts: raw.gather_facts === true,
      tags: list(raw.tags),
      forks: typeof raw.forks === 'number' ? raw.forks : undefined,
      tasks: this.steps(raw.tasks, [...p, 'tasks']),
      handlers,
    }
  }

  steps(raw: unknown, p: YamlPath): Step[] {
    if (raw === undefined || raw === null) return []
    if (!Array.isArray(raw)) {
      this.err('E_SCHEMA', 'expected a list of tasks', p)
      return []
    }
    return raw.map((t, i) => this.step(t, [...p, i], false)).filter((s): s is Step => s !== undefined)
  }

  common(raw: Obj, p: YamlPath, name: string): Common {
    return {
      file: this.src.file,
      path: p,
      name,
      when: conds(raw.when),
      tags: list(raw.tags),
      become: typeof raw.become === 'boolean' ? raw.become : undefined,
      becomeUser: typeof raw.become_user === 'string' ? raw.become_user : undefined,
      vars: isObj(raw.vars) ? raw.vars : {},
      ignoreErrors: raw.ignore_errors === true,
      delegateTo: typeof raw.delegate_to === 'string' ? raw.delegate_to : undefined,
      runOnce: raw.run_once === true,
      noLog: raw.no_log === true,
      checkMode: typeof raw.check_mode === 'boolean' ? raw.check_mode : undefined,
    }
  }

  step(raw: unknown, p: YamlPath, handler: boolean): Step | undefined {
    if (!isObj(raw)) {
      this.err('E_SCHEMA', 'a task is a mapping with a module key', p)
      return undefined
    }
    const label = typeof raw.name === 'string' ? raw.name : undefined
    const rest = this.keywords(raw, p, taskKeywords, TASK_KEYS, 'task', label)
    if ('block' in raw) {
      for (const k of rest) this.err('E_UNKNOWN_KEY', `unknown block keyword '${k}'`, [...p, k], { key: true, hint: didYouMean(k, TASK_KEYS), task: label })
      const block: Block = {
        ...this.common(raw, p, label ?? 'block'),
        kind: 'block',
        block: this.steps(raw.block, [...p, 'block']),
        rescue: this.steps(raw.rescue, [...p, 'rescue']),
        always: this.steps(raw.always, [...p, 'always']),
      }
      return block
    }
    for (const k of ['rescue', 'always']) if (k in raw) this.err('E_SCHEMA', `'${k}' needs a 'block' beside it`, [...p, k], { key: true, task: label })
    const mods = rest.filter((k) => this.modules.has(k))
    for (const k of rest.filter((k) => !this.modules.has(k))) {
      // Without any module key, a stray key is most likely a misspelt module; beside one, a keyword.
      const asModule = mods.length === 0
      const hint = asModule ? didYouMean(k, [...this.modules.names(), ...TASK_KEYS]) : didYouMean(k, TASK_KEYS)
      this.err(asModule ? 'E_UNKNOWN_MODULE' : 'E_UNKNOWN_KEY', asModule ? `unknown module '${k}'` : `unknown task keyword '${k}'`, [...p, k], { key: true, hint, task: label })
    }
    if (mods.length === 0) {
      if (rest.length === 0) this.err('E_UNKNOWN_MODULE', 'task has no module', p, { task: label, hint: 'add a module key such as `command:` or `template:`; see `runbook modules`' })
      return undefined
    }
    if (mods.length > 1) {
      this.err('E_SCHEMA', `task has more than one module: ${mods.join(', ')}`, [...p, mods[1] as string], { key: true, task: label })
      return undefined
    }
    const module = mods[0] as string
    let args = raw[module]
    if (typeof args === 'string' || typeof args === 'number') {
      const ff = this.modules.freeForm(module)
      if (ff) args = { [ff]: String(args) }
      else {
        this.err('E_PARAM', `${module}: parameters must be a mapping`, [...p, module], { task: label })
        args = {}
      }
    } else if (args === null || args === undefined) args = {}
    else if (!isObj(args)) {
      this.err('E_PARAM', `${module}: parameters must be a mapping`, [...p, module], { task: label })
      args = {}
    }
    const lc = isObj(raw.loop_control) ? raw.loop_control : {}
    const name = label ?? module
    const task: Task = {
      ...this.common(raw, p, name),
      kind: 'task',
      module,
      args: args as Obj,
      register: typeof raw.register === 'string' ? raw.register : undefined,
      loop: raw.loop ?? raw.with_items,
      loopVar: typeof lc.loop_var === 'string' ? lc.loop_var : 'item',
      indexVar: typeof lc.index_var === 'string' ? lc.index_var : undefined,
      loopLabel: typeof lc.label === 'string' ? lc.label : undefined,
      notify: list(raw.notify),
      retries: typeof raw.retries === 'number' ? raw.retries : undefined,
      until: typeof raw.until === 'string' ? raw.until : undefined,
      delay: typeof raw.delay === 'number' ? raw.delay : 5,
      changedWhen: conds(raw.changed_when),
      failedWhen: conds(raw.failed_when),
      timeout: typeof raw.timeout === 'number' ? raw.timeout : undefined,
      listen: handler ? [name, ...list(raw.listen)] : [],
    }
    if (!handler && raw.listen !== undefined) this.err('E_SCHEMA', "'listen' is for handlers only", [...p, 'listen'], { key: true, task: label })
    if (handler && !label) this.err('E_SCHEMA', 'a handler needs a name (tasks notify it by name)', p)
    if (raw.until !== undefined && raw.retries === undefined) task.retries = 3
    return task
  }
}

/**
 * Loads a parsed runbook source into plays and tasks.
 * @example const { runbook, errors } = loadRunbook(source, catalog)
 */
export function loadRunbook(src: Source, modules: ModuleCatalog): { runbook: Runbook; errors: RunbookError[] } {
  const l = new Loader(src, modules)
  const runbook = l.runbook()
  return { runbook, errors: l.errors }
}
