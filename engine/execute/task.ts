/**
 * One task on one host: conditions, loops, rendering and checking parameters, gather -> plan ->
 * apply with retries, changed_when/failed_when, register, notify. Errors get their position,
 * task and host here, so modules can throw plain RunbookErrors.
 */
import { RunbookError, toRunbookError } from '../errors.ts'
import type { Connection } from '../connection/types.ts'
import { isLocalHost } from '../connection/factory.ts'
import { LocalConnection } from '../connection/local.ts'
import { SSH_DEFAULTS } from '../connection/settings.ts'
import type { Module, ModuleContext, ResourceRecord } from '../module.ts'
import type { Change } from '../plan/change.ts'
import type { TaskStatus } from '../report/events.ts'
import { locate } from '../runbook/source.ts'
import type { Play, Task } from '../runbook/types.ts'
import { evaluate, evaluateCondition } from '../vars/expr.ts'
import { renderDeep, renderString, renderText } from '../vars/template.ts'
import {
  containsUnknown,
  isUnknown,
  showUnknowns,
  unknown,
  UnknownValueError,
} from '../vars/unknown.ts'
import type { Run } from './executor.ts'
import { coerceParams } from '../runbook/shape.ts'
import { sourceSearchPath } from '../runbook/search-path.ts'
import { makeScope } from './scope.ts'
import { withProgress } from '../progress.ts'
import { maskChange } from '../vars/secrets-redaction.ts'

/** Thrown to stop a host's remaining tasks after a failure that is not ignored. */
export class TaskFailure extends Error {
  constructor(readonly error: RunbookError) {
    super(error.message)
  }
}

type Become = { become: boolean; user?: string | undefined } | undefined

/** The outcome of one item of a task. */
interface ItemResult {
  status: TaskStatus
  result: Record<string, unknown>
  changes: Change[]
  deferred: boolean
  error?: RunbookError
  display?: string | undefined
  /** Why an item in sync needed nothing (the module's noop reason). */
  noop?: string | undefined
}

const CONNECTION_KEYS = [
  'address',
  'ansible_host',
  'port',
  'ansible_port',
  'user',
  'ansible_user',
  'via',
]
/** A connect still going after this long is shown in the live view. */
const CONNECT_NOTICE_MS = 1500
/** How long a connect to a host added in this run (a VM just created) is retried. */
const JUST_CREATED_WAIT_MS = 60_000
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** The task's scope plus its result, as `result` and under its register name (until, changed_when). */
function withResult(
  scope: Record<string, unknown>,
  task: Task,
  result: Record<string, unknown>,
): Record<string, unknown> {
  return makeScope([
    { vars: scope, templated: false },
    { vars: { result, ...(task.register ? { [task.register]: result } : {}) }, templated: false },
  ])
}

/** Runs tasks for the executor. */
export class TaskRunner {
  private readonly local = new LocalConnection('localhost')

  constructor(private readonly owner: Run) {}

  private selected(tags: string[]): boolean {
    const o = this.owner.opts
    if (o.skipTags?.some((t) => tags.includes(t))) return false
    if (!o.tags?.length) return true
    return tags.includes('always') || o.tags.some((t) => tags.includes(t))
  }

  /** Whether a host's address is still unknown (a VM not created yet, during a plan). */
  pending(host: string, seen = new Set<string>()): boolean {
    if (seen.has(host)) return false
    seen.add(host)
    const vars = this.owner.varsOf(host)
    for (const k of CONNECTION_KEYS) {
      const v = Object.prototype.hasOwnProperty.call(vars, k) ? vars[k] : undefined
      if (containsUnknown(v)) return true
    }
    const via = vars.via
    const jumps = Array.isArray(via) ? via : typeof via === 'string' ? [via] : []
    return jumps.some((j) => typeof j === 'string' && this.pending(j, seen))
  }

  // eslint-disable-next-line max-params -- positional parameters to be replaced by one value (issue 13)
  async run(
    play: Play,
    host: string,
    task: Task,
    frames: Record<string, unknown>[],
    tags: string[],
    hosts: string[],
    become: Become,
    handler: boolean,
  ): Promise<void> {
    if (!this.selected(tags)) return
    const h = this.owner.host(host)
    if (task.runOnce && hosts[0] !== undefined && host !== hosts[0]) {
      const first = this.owner.runOnce.get(this.key(task))
      const result = first ? await first.catch(() => undefined) : undefined
      if (task.register && result !== undefined) h.facts[task.register] = result
      return
    }
    let settle: ((v: unknown) => void) | undefined
    let fail: ((e: unknown) => void) | undefined
    if (task.runOnce)
      this.owner.runOnce.set(
        this.key(task),
        new Promise((res, rej) => ((settle = res), (fail = rej))),
      )
    this.owner.emit({ type: 'task_start', play: play.name, task: task.name, host, handler })
    const started = Date.now()
    const layers = this.owner.layers(host, play, [...frames, task.vars])
    const scope = makeScope(layers)
    let items: unknown[] | undefined
    const results: ItemResult[] = []
    try {
      if (task.loop !== undefined) {
        const raw =
          typeof task.loop === 'string'
            ? renderString(task.loop, scope)
            : renderDeep(task.loop, scope)
        if (isUnknown(raw)) items = [unknown(task.loopVar)]
        else if (!Array.isArray(raw))
          throw new RunbookError('E_PARAM', `loop must be a list, got ${typeof raw}`)
        else items = raw
      }
      for (const [i, item] of (items ?? [undefined]).entries()) {
        const extra: Record<string, unknown> = items
          ? { [task.loopVar]: item, ...(task.indexVar ? { [task.indexVar]: i } : {}) }
          : {}
        const itemScope = items ? makeScope([...layers, { vars: extra, templated: false }]) : scope
        results.push(await this.item(play, host, task, itemScope, become))
      }
    } catch (e) {
      results.push({
        status: 'failed',
        result: { failed: true, msg: String((e as Error).message) },
        changes: [],
        deferred: false,
        error: this.locate(e, task, host),
      })
    }
    const status = this.aggregate(results)
    const first = results.find((r) => r.error)
    const registered = items
      ? {
          changed: results.some((r) => r.status === 'changed'),
          failed: results.some((r) => r.status === 'failed'),
          skipped: results.every((r) => r.status === 'skipped'),
          results: results.map((r) => r.result),
        }
      : (results[0]?.result ?? {})
    if (task.register)
      h.facts[task.register] =
        results.some((r) => r.deferred) && !items
          ? (results[0]?.result ?? unknown(task.register))
          : registered
    // what is shown and kept: secrets masked by content on both sides (modules got the raw ones)
    const changes = results
      .flatMap((r) => r.changes)
      .map((c) => maskChange(c, this.owner.opts.redactor))
    const deferred = results.some((r) => r.deferred)
    for (const change of changes)
      this.owner.changes.push({
        play: play.name,
        task: task.name,
        host,
        change,
        deferred,
        check: this.owner.opts.registry.get(task.module)?.verifies === true,
      })
    const ignored = status === 'failed' && task.ignoreErrors
    this.count(host, status, ignored)
    if (status === 'changed' && task.notify.length) for (const n of task.notify) h.notified.add(n)
    this.owner.emit({
      type: 'task_end',
      play: play.name,
      task: task.name,
      host,
      status,
      changes: changes.map((c) => ({
        ...c,
        before: showUnknowns(c.before),
        after: showUnknowns(c.after),
      })),
      msg: first?.error ? first.error.message : undefined,
      display:
        results
          .map((r) => r.display)
          .filter((d) => d !== undefined)
          .join('\n') || undefined,
      noop:
        results
          .map((r) => r.noop)
          .filter((d) => d !== undefined)
          .join('\n') || undefined,
      duration_ms: Date.now() - started,
      pos: this.owner.position(task),
      handler,
      ignored,
      deferred,
      result: task.noLog || isUnknown(registered) ? undefined : showUnknowns(registered),
    })
    if (task.runOnce) {
      if (status === 'failed') fail?.(first?.error)
      else settle?.(registered)
    }
    if ((status === 'failed' && !ignored) || status === 'unreachable') {
      const err =
        first?.error ?? new RunbookError('E_MODULE', 'task failed', { task: task.name, host })
      h.failed = true
      throw new TaskFailure(err)
    }
  }

  private key(task: Task): string {
    return `${task.via ?? ''}${task.file}#${task.path.join('.')}`
  }

  private aggregate(results: ItemResult[]): TaskStatus {
    if (results.some((r) => r.status === 'unreachable')) return 'unreachable'
    if (results.some((r) => r.status === 'failed')) return 'failed'
    if (results.some((r) => r.status === 'changed')) return 'changed'
    if (results.length > 0 && results.every((r) => r.status === 'skipped')) return 'skipped'
    return 'ok'
  }

  private count(host: string, status: TaskStatus, ignored: boolean): void {
    const c = this.owner.host(host).counts
    if (status === 'unreachable') {
      c.unreachable++
      this.owner.host(host).unreachable = true
    } else if (status === 'failed') {
      if (ignored) c.ignored++
      else c.failed++
    } else c[status]++
  }

  private locate(e: unknown, task: Task, host: string): RunbookError {
    const err = toRunbookError(e, 'E_MODULE', { task: task.name, host })
    if (!err.pos) {
      const src = this.owner.opts.sources.get(task.file)
      if (src) err.pos = locate(src, task.path)
    }
    return err
  }

  /** One item of a task (the whole task when it has no loop). */
  private async item(
    play: Play,
    host: string,
    task: Task,
    scope: Record<string, unknown>,
    become: Become,
  ): Promise<ItemResult> {
    const o = this.owner.opts
    const plan = o.mode === 'plan' && task.checkMode !== false
    for (const cond of task.when) {
      const v = evaluateCondition(cond, scope)
      if (v === false)
        return {
          status: 'skipped',
          result: {
            changed: false,
            skipped: true,
            skip_reason: `condition '${String(cond)}' is false`,
          },
          changes: [],
          deferred: false,
        }
      if (isUnknown(v) && !plan)
        throw new RunbookError(
          'E_EXPRESSION',
          `condition '${String(cond)}' depends on values that are still unknown`,
        )
    }
    const module = o.registry.get(task.module)
    if (!module) throw new RunbookError('E_UNKNOWN_MODULE', `unknown module '${task.module}'`)
    const target = task.delegateTo ? String(renderString(task.delegateTo, scope)) : host
    const raw = new Set(module.rawParams ?? [])
    let args = Object.fromEntries(
      Object.entries(task.args).map(([k, v]) => [k, raw.has(k) ? v : renderDeep(v, scope)]),
    )
    args = this.unalias(module, args)
    const defer = (why: string): ItemResult => {
      // What the task would have set is unknown from here on, not undefined.
      const h = this.owner.host(host)
      for (const name of module.providesVars?.(task.args) ?? [])
        if (!(name in h.facts)) h.facts[name] = unknown(name)
      return deferred(why)
    }
    const deferred = (why: string): ItemResult => ({
      status: 'changed',
      result: task.register ? (unknown(task.register) as unknown as Record<string, unknown>) : {},
      changes: [
        { action: 'update', target: `${task.module}`, after: showUnknowns(args), note: why },
      ],
      deferred: true,
    })
    if (containsUnknown(args) && !module.acceptsUnknown) {
      if (plan) return defer('parameters known after apply')
      throw new RunbookError('E_PARAM', 'parameters still contain values known only after apply')
    }
    const parsed = module.params.safeParse(coerceParams(module.params, args))
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const src = o.sources.get(task.file)
      const at = issue?.path.length ? `'${issue.path.join('.')}': ` : ''
      throw new RunbookError(
        'E_PARAM',
        `${task.module}: ${at}${issue?.message ?? 'invalid parameters'}`,
        {
          pos: src
            ? locate(src, [
                ...task.path,
                task.module,
                ...((issue?.path ?? []) as (string | number)[]),
              ])
            : undefined,
        },
      )
    }
    const p = parsed.data
    const ctx = this.context(play, host, target, task, module, scope, become, plan)
    const attempts = (task.retries ?? 0) + 1
    let last: ItemResult | undefined
    let held: ReturnType<typeof evaluateCondition> = true
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        last = await this.withTimeout(task, () =>
          withProgress(ctx.progress, () => this.once(module, ctx, p, plan, task, scope)),
        )
      } catch (e) {
        if (e instanceof UnknownValueError) {
          if (plan) return defer(e.message)
          throw new RunbookError('E_MODULE', e.message)
        }
        const err = this.locate(e, task, host)
        const unreachable = err.code === 'E_CONNECTION' || err.code === 'E_HOST_KEY'
        last = {
          status: unreachable ? 'unreachable' : 'failed',
          result: {
            changed: false,
            failed: true,
            msg: err.message,
            ...(unreachable ? { unreachable: true } : {}),
          },
          changes: [],
          deferred: false,
          error: err,
        }
        if (unreachable) return last
      }
      if (!task.until) break
      held =
        last.status !== 'failed' &&
        evaluateCondition(task.until, withResult(scope, task, last.result))
      if (held === true || isUnknown(held) || attempt === attempts) break
      ctx.progress(`retrying (${attempt}/${task.retries ?? 0}) until ${task.until}`)
      await sleep(task.delay * 1000)
    }
    if (last && held === false && last.status !== 'failed' && !plan) {
      const err = this.locate(
        new RunbookError(
          'E_MODULE',
          `'until: ${task.until}' still false after ${attempts} attempts`,
        ),
        task,
        host,
      )
      return {
        ...last,
        status: 'failed',
        error: err,
        result: { ...last.result, failed: true, msg: err.message },
      }
    }
    return last as ItemResult
  }

  private unalias(module: Module, args: Record<string, unknown>): Record<string, unknown> {
    if (!module.aliases) return args
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(args)) out[module.aliases[k] ?? k] = v
    return out
  }

  private async withTimeout<T>(task: Task, fn: () => Promise<T>): Promise<T> {
    if (!task.timeout) return fn()
    let timer: NodeJS.Timeout | undefined
    const limit = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () => rej(new RunbookError('E_TIMEOUT', `task timed out after ${task.timeout} s`)),
        (task.timeout ?? 0) * 1000,
      )
    })
    try {
      return await Promise.race([fn(), limit])
    } finally {
      clearTimeout(timer)
    }
  }

  /** gather -> plan -> (apply) once, with changed_when / failed_when. */
  // eslint-disable-next-line max-params -- positional parameters to be replaced by one value (issue 13)
  private async once(
    module: Module,
    ctx: ModuleContext,
    p: unknown,
    plan: boolean,
    task: Task,
    scope: Record<string, unknown>,
  ): Promise<ItemResult> {
    const current = await module.gather(ctx, p)
    const changes = module.plan(p, current)
    let changed = changes.length > 0
    let output: Record<string, unknown>
    let facts: Record<string, unknown> | undefined
    let msg: string | undefined
    let failed = false
    if (plan || changes.length === 0) {
      output = module.output ? module.output(p, current, changes) : {}
      if (plan && changes.length && !module.output)
        output = unknown(task.register ?? task.module) as unknown as Record<string, unknown>
      facts = module.facts?.(p, current)
    } else {
      const r = await module.apply(ctx, p, changes, current)
      changed = r.changed ?? true
      output = r.output ?? (module.output ? module.output(p, current, changes) : {})
      facts = r.facts ?? module.facts?.(p, current)
      msg = r.msg
      failed = r.failed === true
    }
    const h = this.owner.host(ctx.host)
    if (facts) Object.assign(h.facts, facts)
    let result: Record<string, unknown> = isUnknown(output)
      ? output
      : { ...output, changed, failed, ...(msg ? { msg } : {}) }
    let status: TaskStatus = changed ? 'changed' : 'ok'
    if ((task.changedWhen.length || task.failedWhen.length) && !isUnknown(result)) {
      const s = withResult(scope, task, result)
      if (task.changedWhen.length) {
        const c = task.changedWhen.every((w) => evaluateCondition(w, s) === true)
        result = { ...result, changed: c }
        status = c ? 'changed' : 'ok'
        if (!c) changes.length = 0
      }
      if (task.failedWhen.length) {
        failed = task.failedWhen.every((w) => evaluateCondition(w, s) === true)
        if (failed) msg = `failed_when holds: ${task.failedWhen.join(' and ')}`
        result = { ...result, failed }
      }
    }
    if (failed) {
      const err = new RunbookError(
        task.failedWhen.length ? 'E_ASSERT' : 'E_MODULE',
        msg ?? 'failed',
      )
      return {
        status: 'failed',
        result: { ...result, failed: true, msg: err.message },
        changes,
        deferred: false,
        error: err,
      }
    }
    if (task.noLog)
      return {
        status,
        result,
        changes: changes.map((c) => ({
          action: c.action,
          target: c.target,
          note: 'details hidden (no_log)',
        })),
        deferred: false,
      }
    const display = !isUnknown(result) && module.display ? module.display(result) : undefined
    const noop = status === 'ok' && changes.length === 0 ? module.noop?.(p, current) : undefined
    return { status, result, changes, deferred: false, display, noop }
  }

  // eslint-disable-next-line max-params -- positional parameters to be replaced by one value (issue 13)
  private context(
    play: Play,
    host: string,
    target: string,
    task: Task,
    module: Module,
    scope: Record<string, unknown>,
    become: Become,
    plan: boolean,
  ): ModuleContext {
    const o = this.owner.opts
    const h = this.owner.host(target)
    const controller = module.target === 'controller'
    const becomeOpts = become?.become
      ? {
          method: 'sudo' as const,
          user: become.user,
          password: typeof scope.become_password === 'string' ? scope.become_password : undefined,
        }
      : undefined
    const progress = (message: string): void =>
      this.owner.emit({ type: 'task_progress', task: task.name, host, message })
    const connect = async (name: string): Promise<Connection> => {
      if (name === 'localhost' && isLocalHost(name, this.owner.varsOf(name))) return this.local
      if (plan && this.pending(name)) throw new UnknownValueError(`host ${name}`)
      // a connect that takes a while is visible: what it waits for and how long at most
      const vars = this.owner.varsOf(name)
      const via = Array.isArray(vars.via) ? vars.via.join(' -> ') : vars.via
      const limit =
        typeof vars.connect_timeout === 'number'
          ? vars.connect_timeout
          : SSH_DEFAULTS.connectTimeoutMs / 1000
      const slow = setTimeout(
        () =>
          progress(
            `connecting to ${name}${typeof via === 'string' && via ? ` via ${via}` : ''} (gives up after ${limit} s)`,
          ),
        CONNECT_NOTICE_MS,
      )
      // A VM just (re)created may not answer yet (booting, or the jump host still has the old
      // MAC of its address): retried within a bounded wait, each attempt reported.
      const fresh = this.owner.addedHosts.has(name)
      const started = Date.now()
      try {
        for (let attempt = 1; ; attempt++) {
          try {
            return await o.connections.get(name, this.owner.varsOf)
          } catch (e) {
            const err = toRunbookError(e, 'E_CONNECTION', { host: name })
            const waited = Math.round((Date.now() - started) / 1000)
            if (
              !fresh ||
              err.code !== 'E_CONNECTION' ||
              Date.now() - started > JUST_CREATED_WAIT_MS
            ) {
              if (attempt > 1)
                err.message = `${err.message} (gave up after ${attempt} attempts in ${waited} s: ${name} was just created)`
              throw err
            }
            progress(
              `${name} was just created: connect attempt ${attempt} failed (${err.message}); retrying, ${waited} s of at most ${JUST_CREATED_WAIT_MS / 1000} s`,
            )
            await sleep(2000)
          }
        }
      } finally {
        clearTimeout(slow)
      }
    }
    return {
      host,
      become: becomeOpts,
      vars: scope,
      baseDir: o.baseDir,
      searchPath: sourceSearchPath(task.roleDir, o.baseDir),
      check: plan,
      conn: () => (controller ? Promise.resolve(this.local) : connect(target)),
      connectTo: connect,
      render: (template, extra) => {
        const v = renderText(
          template,
          extra
            ? makeScope([
                { vars: scope, templated: false },
                { vars: extra, templated: false },
              ])
            : scope,
        )
        if (isUnknown(v)) throw new UnknownValueError('rendered content', v.partial)
        return v
      },
      evaluate: (expression, extra) =>
        evaluate(
          expression,
          extra
            ? makeScope([
                { vars: scope, templated: false },
                { vars: extra, templated: false },
              ])
            : scope,
        ),
      cache: h.cache,
      shared: <T>(key: string, create: () => T): T => {
        if (!this.owner.shared.has(key)) this.owner.shared.set(key, create())
        return this.owner.shared.get(key) as T
      },
      journal: {
        find: (mod, type, id) => o.journal?.find(mod, type, id) ?? [],
        record: async (r) => {
          if (!o.journal || plan) return
          const rec: ResourceRecord = {
            ...r,
            module: module.name,
            host,
            task: task.name,
            createdAt: new Date().toISOString(),
          }
          await o.journal.record(rec)
        },
        forget: async (type, id) => {
          if (o.journal && !plan) await o.journal.forget(type, id, host)
        },
      },
      inventory: {
        addHost: (spec) => {
          o.inventory.addHost(spec.name, spec.groups, spec.vars)
          this.owner.addedHosts.add(spec.name)
          if (o.journal && !plan && !containsUnknown(spec.vars))
            void o.journal.rememberHost(spec.name, spec.groups ?? [], spec.vars ?? {})
        },
        hostVars: (name) =>
          o.inventory.hosts.has(name) || name === 'localhost' ? this.owner.varsOf(name) : undefined,
      },
      progress,
      secret: (v) => o.redactor.add(v),
      signal: o.signal ?? new AbortController().signal,
    }
  }
}
