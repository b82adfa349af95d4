/**
 * Turns a parsed YAML runbook into typed plays and tasks, collecting every structural problem
 * (unknown keywords, unknown modules, wrong types) with its position instead of stopping at the
 * first one.
 */
import { statSync } from 'node:fs'
import path from 'node:path'
import type { z } from 'zod'
import { RunbookError } from '../errors.ts'
import { didYouMean } from '../suggest.ts'
import { describeIssue, valueAt } from '../values.ts'
import {
  IMPORT_TASKS_KEYS,
  importPlaybookKeywords,
  playKeywords,
  runbookKeywords,
  taskKeywords,
  PLAY_KEYS,
  RUNBOOK_KEYS,
  TASK_KEYS,
} from './schema.ts'
import { locate, type Source, type YamlPath } from './source.ts'
import type { Block, Common, Play, Runbook, Step, Task } from './types.ts'

/** What the loader needs to know about modules. */
export interface ModuleCatalog {
  has(name: string): boolean
  names(): Iterable<string>
  /** The parameter a string argument stands for (`shell: echo hi` is `cmd: echo hi`). */
  freeForm(name: string): string | undefined
}

/**
 * Reads another YAML file for import_tasks / import_playbook (the caller keeps it in its SourceSet,
 * for error excerpts); a file that cannot be read is an Error whose message says why.
 */
export type ReadSource = (file: string) => { source: Source; errors: RunbookError[] } | Error

/** What roles add to the play they are used in, besides their tasks. */
interface PlayExtras {
  handlers: Task[]
  defaults: Record<string, unknown>
}

/** How deep imports may nest (a cycle is reported before this). */
const MAX_IMPORT_DEPTH = 20

type Obj = Record<string, unknown>

const existsDir = (p: string): boolean =>
  statSync(p, { throwIfNoEntry: false })?.isDirectory() === true
const existsFile = (p: string): boolean => statSync(p, { throwIfNoEntry: false })?.isFile() === true

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
const list = (v: unknown): string[] =>
  v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]
const conds = (v: unknown): (string | boolean)[] =>
  v === undefined ? [] : Array.isArray(v) ? (v as (string | boolean)[]) : [v as string | boolean]

/** The keywords a runbook, play or task may have, and their schemas. */
interface KeywordSet {
  schema: Record<string, z.ZodType>
  allowed: ReadonlySet<string>
  /** What has them, for messages: `play keyword 'hosts': ...`. */
  what: string
}

/** Where a loader stands: the imports that led to its file, the play and role it fills. */
interface LoadPosition {
  chain: readonly string[]
  via: string | undefined
  extras: PlayExtras
  roleDir: string | undefined
}

class Loader {
  readonly errors: RunbookError[] = []
  /**
   * Secrets declared by imported runbooks (`{ secret: true, ... }` in their top-level vars): they
   * join the importing runbook's vars, where secrets are resolved, instead of being folded into
   * plays as plain objects. The importing runbook's own declaration of a name wins.
   */
  private readonly importedSecrets: Obj = {}
  /** Files being imported, outermost first: this one is the last. */
  private readonly chain: readonly string[]
  /** The import_tasks entries that led here (`file#path>`), for task identity. */
  private readonly via: string | undefined
  /** Where roles put their handlers and defaults: the play being loaded. */
  private extras: PlayExtras
  /** The role being loaded, if any. */
  private readonly roleDir: string | undefined

  constructor(
    private readonly src: Source,
    private readonly modules: ModuleCatalog,
    private readonly read: ReadSource | undefined,
    at: Partial<LoadPosition> = {},
  ) {
    this.chain = at.chain ?? [path.resolve(src.file)]
    this.via = at.via
    this.extras = at.extras ?? { handlers: [], defaults: {} }
    this.roleDir = at.roleDir
  }

  /**
   * Reads a file named at `p` (relative to this file) for an import; reports a missing file, a
   * cycle or YAML errors there and returns undefined.
   */
  private importSource(
    file: unknown,
    p: YamlPath,
    what: string,
    label?: string,
  ): Source | undefined {
    if (typeof file !== 'string' || file.trim() === '') return undefined
    if (this.read === undefined) {
      this.err('E_SCHEMA', `${what} is not available here`, p, { task: label })
      return undefined
    }
    const target = path.resolve(path.dirname(path.resolve(this.src.file)), file)
    if (this.chain.includes(target)) {
      const top = path.dirname(this.chain[0] ?? target)
      const names = [...this.chain.slice(this.chain.indexOf(target)), target].map((f) =>
        path.relative(top, f),
      )
      this.err('E_SCHEMA', `${what}: import cycle ${names.join(' -> ')}`, p, { task: label })
      return undefined
    }
    if (this.chain.length >= MAX_IMPORT_DEPTH) {
      this.err('E_SCHEMA', `${what}: imports nest deeper than ${MAX_IMPORT_DEPTH}`, p, {
        task: label,
      })
      return undefined
    }
    const r = this.read(target)
    if (r instanceof Error) {
      this.err('E_SCHEMA', `${what}: cannot read ${file}: ${r.message}`, p, { task: label })
      return undefined
    }
    if (r.errors.length) {
      this.errors.push(...r.errors)
      return undefined
    }
    return r.source
  }

  private child(src: Source, via?: string, roleDir: string | undefined = this.roleDir): Loader {
    return new Loader(src, this.modules, this.read, {
      chain: [...this.chain, path.resolve(src.file)],
      via,
      extras: this.extras,
      roleDir,
    })
  }

  /** Where role `name` may be, in order: roles/NAME beside this file, then beside the main runbook. */
  private roleCandidates(name: string): string[] {
    const here = path.dirname(path.resolve(this.src.file))
    const top = path.dirname(this.chain[0] ?? here)
    return [...new Set([here, top])].map((d) => path.join(d, 'roles', name))
  }

  /** Reads `dir/main.yaml` (or .yml) of a role, if there is one. */
  private roleFile(roleDir: string, dir: string): Source | undefined | null {
    for (const ext of ['yaml', 'yml']) {
      const file = path.join(roleDir, dir, `main.${ext}`)
      if (!existsFile(file)) continue
      const r = this.read?.(file)
      if (r === undefined || r instanceof Error) return null
      if (r.errors.length) {
        this.errors.push(...r.errors)
        return null
      }
      return r.source
    }
    return undefined
  }

  /**
   * A role as a block: its tasks (with its vars and the entry's), and, into the play, its handlers
   * and defaults. Reports a missing role or a malformed file where it is used or inside the file.
   */
  role(name: unknown, p: YamlPath, common: Common): Block | undefined {
    if (typeof name !== 'string' || name.trim() === '') return undefined
    if (this.read === undefined) {
      this.err('E_SCHEMA', 'roles are not available here', p, { task: common.name })
      return undefined
    }
    const candidates = this.roleCandidates(name)
    const dir = candidates.find(existsDir)
    if (dir === undefined) {
      this.err('E_SCHEMA', `role '${name}' not found (looked in ${candidates.join(', ')})`, p, {
        task: common.name,
      })
      return undefined
    }
    const mapping = (src: Source | undefined | null, what: string): Record<string, unknown> => {
      if (src === undefined || src === null || src.value === null || src.value === undefined)
        return {}
      if (isObj(src.value)) return src.value
      this.errors.push(
        new RunbookError('E_SCHEMA', `a role's ${what} file is a mapping of variables`, {
          pos: locate(src, []),
        }),
      )
      return {}
    }
    if (this.chain.some((f) => f.startsWith(`${dir}${path.sep}`))) {
      this.err('E_SCHEMA', `role '${name}' imports itself`, p, { task: common.name })
      return undefined
    }
    const defaults = mapping(this.roleFile(dir, 'defaults'), 'defaults')
    const vars = mapping(this.roleFile(dir, 'vars'), 'vars')
    const tasksSrc = this.roleFile(dir, 'tasks')
    const handlersSrc = this.roleFile(dir, 'handlers')
    if (tasksSrc === undefined && handlersSrc === undefined) {
      this.err(
        'E_SCHEMA',
        `role '${name}' has neither tasks/main.yaml nor handlers/main.yaml (in ${dir})`,
        p,
        { task: common.name },
      )
      return undefined
    }
    const list = (src: Source | undefined | null, handler: boolean): Step[] => {
      if (src === undefined || src === null || src.value === null || src.value === undefined)
        return []
      const sub = this.child(src, `${this.via ?? ''}${this.src.file}#${p.join('.')}>`, dir)
      let steps: Step[] = []
      if (Array.isArray(src.value))
        steps = handler
          ? src.value
              .map((h, i) => sub.step(h, [i], true))
              .filter((s): s is Step => s !== undefined)
          : sub.steps(src.value, [])
      else
        sub.err(
          'E_SCHEMA',
          `a role's ${handler ? 'handlers' : 'tasks'} file is a list of tasks`,
          [],
        )
      this.errors.push(...sub.errors)
      return steps
    }
    const tasks = list(tasksSrc, false)
    // a role used twice brings its handlers once (each runs once per flush)
    const have = new Set(this.extras.handlers.map((h) => `${h.file}#${h.path.join('.')}`))
    this.extras.handlers.push(
      ...list(handlersSrc, true).filter(
        (s): s is Task => s.kind === 'task' && !have.has(`${s.file}#${s.path.join('.')}`),
      ),
    )
    for (const [k, v] of Object.entries(defaults)) this.extras.defaults[k] = v
    return {
      ...common,
      name: common.name,
      vars: { ...vars, ...common.vars },
      kind: 'block',
      block: tasks,
      rescue: [],
      always: [],
    }
  }

  err(
    code: RunbookError['code'],
    message: string,
    p: YamlPath,
    opts: { key?: boolean; hint?: string | undefined; task?: string | undefined } = {},
  ): void {
    this.errors.push(
      new RunbookError(code, message, {
        pos: locate(this.src, p, { key: opts.key }),
        hint: opts.hint,
        task: opts.task,
      }),
    )
  }

  /** Checks the keywords of one mapping; returns the keys that are not keywords. */
  keywords(obj: Obj, p: YamlPath, set: KeywordSet, task?: string): string[] {
    const { schema, allowed, what } = set
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
        const sub =
          issue && issue.path.length ? [...p, k, ...(issue.path as (string | number)[])] : [...p, k]
        const at = valueAt(v, issue?.path ?? [])
        this.err('E_SCHEMA', `${what} keyword '${k}': ${describeIssue(issue, at)}`, sub, {
          task,
        })
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
      for (const k of this.keywords(root, [], {
        schema: runbookKeywords,
        allowed: RUNBOOK_KEYS,
        what: 'runbook',
      })) {
        this.err('E_UNKNOWN_KEY', `unknown runbook keyword '${k}'`, [k], {
          key: true,
          hint: didYouMean(k, RUNBOOK_KEYS),
        })
      }
    } else {
      this.err(
        'E_SCHEMA',
        root === null || root === undefined
          ? 'the runbook is empty: it needs `plays:` with at least one play'
          : 'a runbook is a mapping with `plays`, or a list of plays',
        [],
      )
      return { file, name: path.basename(file), vars: {}, plays: [] }
    }
    const plays: Play[] = []
    const rawPlays = Array.isArray(top.plays) ? top.plays : []
    if (top.plays === undefined || (Array.isArray(top.plays) && rawPlays.length === 0))
      this.err('E_SCHEMA', 'a runbook needs at least one play', playsPath)
    rawPlays.forEach((rp, i) => {
      if (isObj(rp) && 'import_playbook' in rp)
        plays.push(...this.importPlaybook(rp, [...playsPath, i]))
      else {
        const play = this.play(rp, [...playsPath, i])
        if (play) plays.push(play)
      }
    })
    return {
      file,
      name: typeof top.name === 'string' ? top.name : path.basename(file),
      description: typeof top.description === 'string' ? top.description : undefined,
      vars: { ...this.importedSecrets, ...(isObj(top.vars) ? top.vars : {}) },
      inventory: typeof top.inventory === 'string' ? top.inventory : undefined,
      allowSources: Array.isArray(top.allow_sources) ? top.allow_sources.map(String) : undefined,
      plays,
    }
  }

  /** `- import_playbook: other.yaml`: the other runbook's plays, its top-level vars folded into each. */
  importPlaybook(raw: Obj, p: YamlPath): Play[] {
    const allowed = new Set(Object.keys(importPlaybookKeywords))
    for (const k of this.keywords(raw, p, {
      schema: importPlaybookKeywords,
      allowed,
      what: 'import_playbook',
    })) {
      this.err('E_UNKNOWN_KEY', `unknown import_playbook keyword '${k}'`, [...p, k], {
        key: true,
        hint:
          didYouMean(k, allowed) ??
          'an imported runbook is used as it is; put vars in it or on the command line',
      })
    }
    const src = this.importSource(raw.import_playbook, [...p, 'import_playbook'], 'import_playbook')
    if (src === undefined) return []
    const sub = this.child(src)
    const rb = sub.runbook()
    this.errors.push(...sub.errors)
    const vars: Obj = {}
    for (const [k, v] of Object.entries(rb.vars)) {
      if (isObj(v) && v.secret === true) this.importedSecrets[k] ??= v
      else vars[k] = v
    }
    return rb.plays.map((play) => ({ ...play, vars: { ...vars, ...play.vars } }))
  }

  play(raw: unknown, p: YamlPath): Play | undefined {
    if (!isObj(raw)) {
      this.err('E_SCHEMA', 'a play is a mapping with hosts and tasks', p)
      return undefined
    }
    for (const k of this.keywords(raw, p, {
      schema: playKeywords,
      allowed: PLAY_KEYS,
      what: 'play',
    })) {
      const hint =
        didYouMean(k, PLAY_KEYS) ??
        (this.modules.has(k) || TASK_KEYS.has(k) ? 'tasks go under `tasks:`' : undefined)
      this.err('E_UNKNOWN_KEY', `unknown play keyword '${k}'`, [...p, k], { key: true, hint })
    }
    if (raw.hosts === undefined) this.err('E_SCHEMA', "play has no 'hosts'", p)
    this.extras = { handlers: [], defaults: {} }
    const roles: Step[] = []
    if (Array.isArray(raw.roles)) {
      raw.roles.forEach((entry, i) => {
        const at: YamlPath = [...p, 'roles', i]
        const e: Obj = typeof entry === 'string' ? { role: entry } : isObj(entry) ? entry : {}
        const name = typeof e.role === 'string' ? e.role : undefined
        const block = this.role(name, typeof entry === 'string' ? at : [...at, 'role'], {
          ...this.common(e, at, `role ${name ?? '?'}`),
        })
        if (block) roles.push(block)
      })
    }
    const tasks = [...roles, ...this.steps(raw.tasks, [...p, 'tasks'])]
    const handlers = Array.isArray(raw.handlers)
      ? raw.handlers
          .map((h, i) => this.step(h, [...p, 'handlers', i], true))
          .filter((s): s is Task => s?.kind === 'task')
      : []
    if (Array.isArray(raw.handlers)) {
      raw.handlers.forEach((h, i) => {
        for (const k of ['import_tasks', 'import_role'])
          if (isObj(h) && k in h)
            this.err('E_SCHEMA', `${k} is for tasks, not handlers`, [...p, 'handlers', i, k], {
              key: true,
            })
      })
    }
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
      defaults: this.extras.defaults,
      tasks,
      handlers: [...this.extras.handlers, ...handlers],
    }
  }

  steps(raw: unknown, p: YamlPath): Step[] {
    if (raw === undefined || raw === null) return []
    if (!Array.isArray(raw)) {
      this.err('E_SCHEMA', 'expected a list of tasks', p)
      return []
    }
    return raw
      .map((t, i) => this.step(t, [...p, i], false))
      .filter((s): s is Step => s !== undefined)
  }

  common(raw: Obj, p: YamlPath, name: string): Common {
    return {
      file: this.src.file,
      path: p,
      via: this.via,
      roleDir: this.roleDir,
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

  /**
   * `- import_tasks: file.yaml` becomes a block holding the file's tasks, so that its when, tags,
   * vars and become apply to all of them as a block's do.
   */
  importTasks(raw: Obj, p: YamlPath, rest: string[], label: string | undefined): Block | undefined {
    const kind = 'import_role' in raw ? 'import_role' : 'import_tasks'
    for (const k of rest)
      this.err('E_UNKNOWN_KEY', `unknown keyword '${k}' beside ${kind}`, [...p, k], {
        key: true,
        task: label,
        hint: this.modules.has(k)
          ? 'a module goes in a task of its own'
          : didYouMean(k, IMPORT_TASKS_KEYS),
      })
    for (const k of Object.keys(raw)) {
      if (TASK_KEYS.has(k) && !IMPORT_TASKS_KEYS.has(k)) {
        this.err(
          'E_SCHEMA',
          `'${k}' does not apply to ${kind} (only ${[...IMPORT_TASKS_KEYS].filter((x) => !x.startsWith('import_')).join(', ')})`,
          [...p, k],
          { key: true, task: label },
        )
      }
    }
    if ('import_tasks' in raw && 'import_role' in raw) {
      this.err(
        'E_SCHEMA',
        'one import per entry: import_tasks or import_role',
        [...p, 'import_role'],
        { key: true, task: label },
      )
      return undefined
    }
    if ('import_role' in raw) {
      const name = isObj(raw.import_role) ? raw.import_role.name : undefined
      return this.role(
        name,
        [...p, 'import_role', 'name'],
        this.common(raw, p, label ?? `role ${String(name)}`),
      )
    }
    const file = raw.import_tasks
    const src = this.importSource(file, [...p, 'import_tasks'], 'import_tasks', label)
    if (src === undefined) return undefined
    const sub = this.child(src, `${this.via ?? ''}${this.src.file}#${p.join('.')}>`)
    const value = src.value
    let steps: Step[] = []
    if (Array.isArray(value)) steps = sub.steps(value, [])
    else if (value !== null && value !== undefined)
      sub.err('E_SCHEMA', 'a tasks file is a list of tasks', [])
    this.errors.push(...sub.errors)
    return {
      ...this.common(raw, p, label ?? `import_tasks ${String(file)}`),
      kind: 'block',
      block: steps,
      rescue: [],
      always: [],
    }
  }

  step(raw: unknown, p: YamlPath, handler: boolean): Step | undefined {
    if (!isObj(raw)) {
      this.err('E_SCHEMA', 'a task is a mapping with a module key', p)
      return undefined
    }
    const label = typeof raw.name === 'string' ? raw.name : undefined
    const rest = this.keywords(
      raw,
      p,
      { schema: taskKeywords, allowed: TASK_KEYS, what: 'task' },
      label,
    )
    if ('import_tasks' in raw || 'import_role' in raw)
      return handler ? undefined : this.importTasks(raw, p, rest, label)
    for (const [dynamic, instead] of [
      ['include_tasks', 'import_tasks'],
      ['include_role', 'import_role'],
    ] as const) {
      if (dynamic in raw) {
        this.err('E_SCHEMA', `${dynamic} (dynamic) is not supported`, [...p, dynamic], {
          key: true,
          task: label,
          hint: `use ${instead}: it is read at load time, so it is validated and planned with the rest`,
        })
        return undefined
      }
    }
    if ('block' in raw) {
      for (const k of rest)
        this.err('E_UNKNOWN_KEY', `unknown block keyword '${k}'`, [...p, k], {
          key: true,
          hint: didYouMean(k, TASK_KEYS),
          task: label,
        })
      const block: Block = {
        ...this.common(raw, p, label ?? 'block'),
        kind: 'block',
        block: this.steps(raw.block, [...p, 'block']),
        rescue: this.steps(raw.rescue, [...p, 'rescue']),
        always: this.steps(raw.always, [...p, 'always']),
      }
      return block
    }
    for (const k of ['rescue', 'always'])
      if (k in raw)
        this.err('E_SCHEMA', `'${k}' needs a 'block' beside it`, [...p, k], {
          key: true,
          task: label,
        })
    const mods = rest.filter((k) => this.modules.has(k))
    for (const k of rest.filter((k) => !this.modules.has(k))) {
      // Without any module key, a stray key is most likely a misspelt module; beside one, a keyword.
      const asModule = mods.length === 0
      const hint = asModule
        ? didYouMean(k, [...this.modules.names(), ...TASK_KEYS])
        : didYouMean(k, TASK_KEYS)
      this.err(
        asModule ? 'E_UNKNOWN_MODULE' : 'E_UNKNOWN_KEY',
        asModule ? `unknown module '${k}'` : `unknown task keyword '${k}'`,
        [...p, k],
        { key: true, hint, task: label },
      )
    }
    if (mods.length === 0) {
      if (rest.length === 0)
        this.err('E_UNKNOWN_MODULE', 'task has no module', p, {
          task: label,
          hint: 'add a module key such as `command:` or `template:`; see `runbook modules`',
        })
      return undefined
    }
    if (mods.length > 1) {
      this.err(
        'E_SCHEMA',
        `task has more than one module: ${mods.join(', ')}`,
        [...p, mods[1] as string],
        { key: true, task: label },
      )
      return undefined
    }
    const module = mods[0] as string
    let args = raw[module]
    if (typeof args === 'string' || typeof args === 'number') {
      const ff = this.modules.freeForm(module)
      if (ff) args = { [ff]: String(args) }
      else {
        this.err('E_PARAM', `${module}: parameters must be a mapping`, [...p, module], {
          task: label,
        })
        args = {}
      }
    } else if (args === null || args === undefined) args = {}
    else if (!isObj(args)) {
      this.err('E_PARAM', `${module}: parameters must be a mapping`, [...p, module], {
        task: label,
      })
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
    if (!handler && raw.listen !== undefined)
      this.err('E_SCHEMA', "'listen' is for handlers only", [...p, 'listen'], {
        key: true,
        task: label,
      })
    if (handler && !label)
      this.err('E_SCHEMA', 'a handler needs a name (tasks notify it by name)', p)
    if (raw.until !== undefined && raw.retries === undefined) task.retries = 3
    return task
  }
}

/**
 * Loads a parsed runbook source into plays and tasks.
 * `read` loads the files of import_tasks and import_playbook; without it they are errors.
 * @example const { runbook, errors } = loadRunbook(source, catalog, readSource)
 */
export function loadRunbook(
  src: Source,
  modules: ModuleCatalog,
  read?: ReadSource,
): { runbook: Runbook; errors: RunbookError[] } {
  const l = new Loader(src, modules, read)
  const runbook = l.runbook()
  return { runbook, errors: l.errors }
}
