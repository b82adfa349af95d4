/**
 * One task on one host: conditions, loops, rendering and checking parameters, gather -> plan ->
 * apply with retries, changed_when/failed_when, register, notify. Errors get their position,
 * task and host here, so modules can throw plain RunbookErrors.
 */
import { RunbookError, toRunbookError } from '../errors.ts'
import { LocalConnection } from '../connection/local.ts'
import type { Module, ModuleContext, UnreachableReason } from '../module.ts'
import type { Change } from '../plan/change.ts'
import type { TaskStatus } from '../report/events.ts'
import { locate } from '../runbook/source.ts'
import type { Task } from '../runbook/types.ts'
import { evaluateCondition } from '../vars/expr.ts'
import { renderDeep, renderString } from '../vars/template.ts'
import {
  containsUnknown,
  isUnknown,
  showUnknowns,
  unknown,
  UnknownValueError,
} from '../vars/unknown.ts'
import { coerceParams } from '../runbook/shape.ts'
import { sourceSearchPath } from '../runbook/search-path.ts'
import { connector, sleep } from './connect.ts'
import { moduleContext } from './context.ts'
import { makeScope } from './scope.ts'
import type { HostFrame, RunState } from './types.ts'
import { explainUnreachable } from './unreachable.ts'
import { Timings } from '../timings.ts'
import { maskChange } from '../vars/secrets-redaction.ts'

/** Thrown to stop a host's remaining tasks after a failure that is not ignored. */
export class TaskFailure extends Error {
  constructor(readonly error: RunbookError) {
    super(error.message)
  }
}

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

/** One item of a task on one host: the frame, the task and the item's scope. */
interface ItemCall {
  frame: HostFrame
  task: Task
  scope: Record<string, unknown>
  /** The task's counters on this host (`--timings`). */
  timings: Timings
}

/** One attempt of an item: gather -> plan -> (apply) with the parsed parameters. */
interface Attempt extends ItemCall {
  module: Module
  ctx: ModuleContext
  params: unknown
  /** Gather and plan only. */
  plan: boolean
}

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

  constructor(private readonly owner: RunState) {}

  private selected(tags: readonly string[]): boolean {
    const o = this.owner.opts
    if (o.skipTags?.some((t) => tags.includes(t))) return false
    if (!o.tags?.length) return true
    return tags.includes('always') || o.tags.some((t) => tags.includes(t))
  }

  /** Runs a task (all its items) for the frame's host; throws TaskFailure when the host must stop. */
  async run(frame: HostFrame, task: Task): Promise<void> {
    const { play, host, handler } = frame
    if (!this.selected(frame.tags)) return
    const h = this.owner.host(host)
    if (task.runOnce && frame.hosts[0] !== undefined && host !== frame.hosts[0]) {
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
    const timings = new Timings(this.owner.opts.timings)
    const { items, results } = await this.items(frame, task, timings)
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
    const check = this.owner.opts.registry.get(task.module)?.verifies === true
    for (const change of changes)
      this.owner.plan({ play: play.name, task: task.name, host, change, deferred, check })
    const ignored = status === 'failed' && task.ignoreErrors
    this.count(host, status, ignored)
    if (status === 'changed' && task.notify.length) for (const n of task.notify) h.notified.add(n)
    const joined = (pick: (r: ItemResult) => string | undefined): string | undefined =>
      results
        .map(pick)
        .filter((d) => d !== undefined)
        .join('\n') || undefined
    const duration = Date.now() - started
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
      display: joined((r) => r.display),
      noop: joined((r) => r.noop),
      duration_ms: duration,
      timings: timings.totals(duration),
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

  /** The task's items (a loop's, or the task itself) and what each did; a failure ends the loop. */
  private async items(
    frame: HostFrame,
    task: Task,
    timings: Timings,
  ): Promise<{ items: unknown[] | undefined; results: ItemResult[] }> {
    const layers = this.owner.layers(frame.host, frame.play, [...frame.vars, task.vars])
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
        results.push(await this.item({ frame, task, scope: itemScope, timings }))
      }
    } catch (e) {
      results.push({
        status: 'failed',
        result: { failed: true, msg: String((e as Error).message) },
        changes: [],
        deferred: false,
        error: this.locate(e, task, frame.host),
      })
    }
    return { items, results }
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

  /** The item is skipped (a `when` is false), or throws when a `when` is still unknown on apply. */
  private skipped(call: ItemCall, plan: boolean): ItemResult | undefined {
    for (const cond of call.task.when) {
      const v = evaluateCondition(cond, call.scope)
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
    return undefined
  }

  /** The item stands in the plan as known after apply; what it would set is unknown from here on. */
  private deferred(call: ItemCall, module: Module, args: unknown, why: string): ItemResult {
    const { task } = call
    const h = this.owner.host(call.frame.host)
    for (const name of module.providesVars?.(task.args) ?? [])
      if (!(name in h.facts)) h.facts[name] = unknown(name)
    return {
      status: 'changed',
      result: task.register ? (unknown(task.register) as unknown as Record<string, unknown>) : {},
      changes: [
        { action: 'update', target: `${task.module}`, after: showUnknowns(args), note: why },
      ],
      deferred: true,
    }
  }

  /** The task's arguments rendered (except the module's raw ones) and unaliased. */
  private args(call: ItemCall, module: Module): Record<string, unknown> {
    const raw = new Set(module.rawParams ?? [])
    const args = Object.fromEntries(
      Object.entries(call.task.args).map(([k, v]) => [
        k,
        raw.has(k) ? v : renderDeep(v, call.scope),
      ]),
    )
    if (!module.aliases) return args
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(args)) out[module.aliases[k] ?? k] = v
    return out
  }

  /** Parses the arguments with the module's schema; an error points at the argument. */
  private params(task: Task, module: Module, args: Record<string, unknown>): unknown {
    const parsed = module.params.safeParse(coerceParams(module.params, args))
    if (parsed.success) return parsed.data
    const issue = parsed.error.issues[0]
    const src = this.owner.opts.sources.get(task.file)
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

  /** One item of a task (the whole task when it has no loop). */
  private async item(call: ItemCall): Promise<ItemResult> {
    const { task, scope } = call
    const host = call.frame.host
    const plan = this.owner.opts.mode === 'plan' && task.checkMode !== false
    const skip = this.skipped(call, plan)
    if (skip) return skip
    const module = this.owner.opts.registry.get(task.module)
    if (!module) throw new RunbookError('E_UNKNOWN_MODULE', `unknown module '${task.module}'`)
    const args = this.args(call, module)
    if (containsUnknown(args) && !module.acceptsUnknown) {
      if (plan) return this.deferred(call, module, args, 'parameters known after apply')
      throw new RunbookError('E_PARAM', 'parameters still contain values known only after apply')
    }
    const params = this.params(task, module, args)
    const attempt: Attempt = {
      ...call,
      module,
      ctx: this.context(call, module, plan),
      params,
      plan,
    }
    const attempts = (task.retries ?? 0) + 1
    let last: ItemResult | undefined
    let held: ReturnType<typeof evaluateCondition> = true
    for (let n = 1; n <= attempts; n++) {
      try {
        last = await this.withTimeout(task, () => this.once(attempt))
      } catch (e) {
        if (e instanceof UnknownValueError) {
          if (plan) return this.deferred(call, module, args, e.message)
          throw new RunbookError('E_MODULE', e.message)
        }
        last = this.failed(e, task, host)
        if (last.status === 'unreachable') return last
      }
      if (!task.until) break
      held =
        last.status !== 'failed' &&
        evaluateCondition(task.until, withResult(scope, task, last.result))
      if (held === true || isUnknown(held) || n === attempts) break
      attempt.ctx.progress(`retrying (${n}/${task.retries ?? 0}) until ${task.until}`)
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

  /** An attempt that threw: failed, or unreachable when the host could not be reached. */
  private failed(e: unknown, task: Task, host: string): ItemResult {
    const err = this.locate(e, task, host)
    const unreachable = err.code === 'E_CONNECTION' || err.code === 'E_HOST_KEY'
    return {
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
  private async once(a: Attempt): Promise<ItemResult> {
    const { module, ctx, params: p, plan, task, scope } = a
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

  /** The module's context for an item: on the delegated host, with the run's journal. */
  private context(call: ItemCall, module: Module, plan: boolean): ModuleContext {
    const { frame, task, scope, timings } = call
    const o = this.owner.opts
    const host = frame.host
    const target = task.delegateTo ? String(renderString(task.delegateTo, scope)) : host
    const become = frame.become?.become
      ? {
          method: 'sudo' as const,
          user: frame.become.user,
          password: typeof scope.become_password === 'string' ? scope.become_password : undefined,
        }
      : undefined
    const progress = (message: string): void =>
      this.owner.emit({ type: 'task_progress', task: task.name, host, message })
    // a module may know why a host is unreachable (its server is SHUTOFF): asked with this context
    // (the context is complete before any connect can fail, so the closure sees it)
    const explain = (name: string): Promise<UnreachableReason | undefined> =>
      explainUnreachable(o.registry, ctx, name, (h) => this.owner.varsOf(h))
    const connect = connector(this.owner, { local: this.local, plan, progress, explain })
    const ctx: ModuleContext = moduleContext({
      host,
      module: module.name,
      task: task.name,
      vars: scope,
      baseDir: o.baseDir,
      searchPath: sourceSearchPath(task.roleDir, o.baseDir),
      check: plan,
      become,
      conn: () => (module.target === 'controller' ? Promise.resolve(this.local) : connect(target)),
      connectTo: connect,
      records: o.journal,
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
      cache: this.owner.host(target).cache,
      shared: this.owner.shared,
      progress,
      timings,
      secret: (v) => o.redactor.add(v),
      signal: o.signal,
      env: o.env,
    })
    return ctx
  }
}
