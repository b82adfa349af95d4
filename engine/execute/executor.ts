/**
 * The executor: plays in order; within a play, hosts in parallel (p-queue, `forks`) and each
 * host's tasks in order; handlers once per host at the end of the play. The same walk serves
 * `plan` (gather and plan only) and `apply` (gather again just before each change, apply, verify).
 */
import PQueue from 'p-queue'
import { RunbookError, toRunbookError } from '../errors.ts'
import { countChanges, type PlannedChange } from '../plan/change.ts'
import { emptyCounts, type RunEvent } from '../report/events.ts'
import type { Block, Play, Step, Task } from '../runbook/types.ts'
import { locate } from '../runbook/source.ts'
import { evaluateCondition } from '../vars/expr.ts'
import { isUnknown } from '../vars/unknown.ts'
import { makeScope, type Layer } from './scope.ts'
import { TaskRunner, TaskFailure } from './task.ts'
import type { HostFrame, HostState, RunOptions, RunResult, RunState } from './types.ts'

/**
 * Runs a loaded, validated runbook.
 * @example const result = await execute({ runbook, inventory, registry, mode: 'plan', ... })
 */
export async function execute(opts: RunOptions): Promise<RunResult> {
  return new Run(opts).run()
}

class Run implements RunState {
  readonly hosts = new Map<string, HostState>()
  readonly changes: PlannedChange[] = []
  readonly errors: RunbookError[] = []
  readonly shared = new Map<string, unknown>()
  readonly runOnce = new Map<string, Promise<unknown>>()
  /** Hosts add_host added in this run: VMs just (re)created, whose connect may be retried. */
  readonly addedHosts = new Set<string>()
  readonly runner: TaskRunner
  private readonly started = Date.now()

  constructor(readonly opts: RunOptions) {
    this.runner = new TaskRunner(this)
  }

  /** Runs a task for a host. */
  runTask(frame: HostFrame, task: Task): Promise<void> {
    return this.runner.run(frame, task)
  }

  plan(change: PlannedChange): void {
    this.changes.push(change)
  }

  emit(e: RunEvent): void {
    this.opts.emit(this.opts.redactor.value(e))
  }

  host(name: string): HostState {
    let h = this.hosts.get(name)
    if (!h) {
      h = {
        name,
        facts: {},
        notified: new Set(),
        counts: emptyCounts(),
        failed: false,
        unreachable: false,
        cache: new Map(),
      }
      this.hosts.set(name, h)
    }
    return h
  }

  /** The base layers of a host's scope: runbook, inventory, play, results, extra vars. */
  layers(
    host: string,
    play: Play | undefined,
    frames: readonly Record<string, unknown>[] = [],
  ): Layer[] {
    const o = this.opts
    const facts = this.hosts.get(host)?.facts ?? {}
    const magic = {
      inventory_hostname: host,
      groups: this.groupsVar(),
      hostvars: this.hostvars(),
      play_hosts: play ? this.playHosts(play) : [],
      runbook_dir: o.baseDir,
      state_dir: o.stateDir ?? `${o.baseDir}/.runbook`,
    }
    return [
      // roles' defaults are below everything, as in Ansible
      { vars: play?.defaults ?? {}, templated: true },
      { vars: o.runbook.vars, templated: true },
      { vars: o.secretVars, templated: false },
      { vars: o.inventory.hostVars(host), templated: true },
      { vars: play?.vars ?? {}, templated: true },
      { vars: facts, templated: false },
      ...frames.map((vars) => ({ vars, templated: true })),
      { vars: o.extraVars, templated: false },
      { vars: magic, templated: false },
    ]
  }

  /**
   * `groups.NAME`: the hosts of every group. Made again only when the inventory changed (add_host):
   * every scope of every host and task has it, and 50 hosts would otherwise make it thousands of
   * times a run.
   */
  private groupsVar(): Record<string, string[]> {
    const inv = this.opts.inventory
    if (this.groupsMemo?.revision !== inv.revision)
      this.groupsMemo = {
        revision: inv.revision,
        value: Object.fromEntries([...inv.groups.keys()].map((g) => [g, inv.groupHosts(g)])),
      }
    return this.groupsMemo.value
  }
  private groupsMemo: { revision: number; value: Record<string, string[]> } | undefined

  /**
   * `hostvars.NAME.x`: every host's variables, computed on access (so always current); the object
   * is made again only when the set of hosts changed.
   */
  hostvars(): Record<string, unknown> {
    const names = [...new Set([...this.opts.inventory.hosts.keys(), ...this.hosts.keys()])]
    const known = this.hostvarsMemo
    if (known && known.names.length === names.length && names.every((n, i) => known.names[i] === n))
      return known.value
    const out: Record<string, unknown> = {}
    for (const n of names) {
      Object.defineProperty(out, n, {
        enumerable: true,
        get: () => makeScope(this.layers(n, undefined).slice(0, 6)),
      })
    }
    this.hostvarsMemo = { names, value: out }
    return out
  }
  private hostvarsMemo: { names: string[]; value: Record<string, unknown> } | undefined

  /** Any host's variables without play context (for jumphost settings). */
  varsOf = (host: string): Record<string, unknown> => makeScope(this.layers(host, undefined))

  playHosts(play: Play): string[] {
    let hosts = this.opts.inventory.match(play.hosts)
    if (this.opts.limit) {
      const allowed = new Set(this.opts.inventory.match(this.opts.limit))
      hosts = hosts.filter(
        (h) => allowed.has(h) || (h === 'localhost' && !this.opts.inventory.hosts.has('localhost')),
      )
    }
    return hosts
  }

  async run(): Promise<RunResult> {
    const o = this.opts
    try {
      for (const play of o.runbook.plays) {
        if (o.signal?.aborted) break
        await this.play(play)
      }
    } finally {
      if (o.keepConnections !== true) await o.connections.closeAll().catch(() => undefined)
    }
    const hosts = Object.fromEntries([...this.hosts].map(([n, h]) => [n, h.counts]))
    const ok =
      ![...this.hosts.values()].some((h) => h.failed || h.unreachable) && this.errors.length === 0
    return {
      ok,
      hosts,
      plan: countChanges(this.changes.filter((c) => !c.deferred && !c.check).map((c) => c.change)),
      checks: new Set(this.changes.filter((c) => c.check).map((c) => `${c.task}\u0000${c.host}`))
        .size,
      changes: this.changes,
      errors: this.errors,
      durationMs: Date.now() - this.started,
    }
  }

  async play(play: Play): Promise<void> {
    const hosts = this.playHosts(play).filter(
      (h) => !this.host(h).failed && !this.host(h).unreachable,
    )
    this.emit({ type: 'play_start', play: play.name, hosts })
    if (hosts.length === 0) {
      this.emit({ type: 'warning', message: `play "${play.name}": no hosts match '${play.hosts}'` })
      this.emit({ type: 'play_end', play: play.name })
      return
    }
    const queue = new PQueue({ concurrency: play.forks ?? this.opts.forks })
    const steps: Step[] = play.gatherFacts ? [this.factsTask(play), ...play.tasks] : play.tasks
    await queue.addAll(hosts.map((host) => () => this.hostTasks(play, host, steps, hosts)))
    await queue.addAll(hosts.map((host) => () => this.handlers(play, host, hosts)))
    this.emit({ type: 'play_end', play: play.name })
  }

  private factsTask(play: Play): Task {
    return {
      kind: 'task',
      file: play.file,
      path: play.path,
      name: 'Gathering facts',
      module: 'facts',
      args: {},
      when: [],
      tags: ['always'],
      vars: {},
      ignoreErrors: false,
      runOnce: false,
      noLog: false,
      notify: [],
      loopVar: 'item',
      delay: 5,
      changedWhen: [],
      failedWhen: [],
      listen: [],
    }
  }

  /** The frame of a host at the top of a play. */
  private frame(play: Play, host: string, hosts: string[]): HostFrame {
    return {
      play,
      host,
      hosts,
      vars: [],
      tags: play.tags,
      become: play.become ? { become: true, user: play.becomeUser } : undefined,
      handler: false,
    }
  }

  private async hostTasks(play: Play, host: string, steps: Step[], hosts: string[]): Promise<void> {
    try {
      await this.steps(this.frame(play, host, hosts), steps)
    } catch (e) {
      if (e instanceof TaskFailure) this.errors.push(e.error)
      else this.fail(host, play, undefined, e)
    }
  }

  private async handlers(play: Play, host: string, hosts: string[]): Promise<void> {
    const h = this.host(host)
    if (h.unreachable || (h.failed && !this.opts.forceHandlers)) return
    const top = { ...this.frame(play, host, hosts), handler: true }
    // In definition order, each at most once per flush; a handler may notify others (Ansible's
    // chaining): a later one runs in the same pass, an earlier one in another pass.
    const ran = new Set<Task>()
    for (let pass = true; pass;) {
      pass = false
      for (const handler of play.handlers) {
        if (ran.has(handler) || !handler.listen.some((t) => h.notified.has(t))) continue
        ran.add(handler)
        pass = true
        try {
          await this.runTask({ ...top, tags: [...play.tags, ...handler.tags] }, handler)
        } catch (e) {
          if (e instanceof TaskFailure) this.errors.push(e.error)
          else this.fail(host, play, handler, e)
          return
        }
      }
    }
    h.notified.clear()
  }

  /** Records an unexpected error of the engine itself for a host. */
  fail(host: string, play: Play, task: Task | undefined, e: unknown): void {
    const err = toRunbookError(e, 'E_MODULE', { host, task: task?.name })
    this.errors.push(err)
    this.host(host).failed = true
    this.host(host).counts.failed++
    this.emit({
      type: 'task_end',
      play: play.name,
      task: task?.name ?? '(engine)',
      host,
      status: 'failed',
      changes: [],
      msg: err.message,
      duration_ms: 0,
    })
  }

  /** Runs steps in order for one host; throws TaskFailure when the host must stop. */
  async steps(frame: HostFrame, steps: Step[]): Promise<void> {
    for (const step of steps) {
      if (this.opts.signal?.aborted)
        throw new TaskFailure(new RunbookError('E_MODULE', 'interrupted'))
      const inner: HostFrame = {
        ...frame,
        tags: [...frame.tags, ...step.tags],
        become:
          step.become !== undefined
            ? { become: step.become, user: step.becomeUser ?? frame.become?.user }
            : frame.become,
      }
      if (step.kind === 'task') await this.runTask(inner, step)
      else await this.block(inner, step)
    }
  }

  /** A block: its steps, then `rescue` if one failed, then `always`. */
  private async block(outer: HostFrame, block: Block): Promise<void> {
    const frame: HostFrame = { ...outer, vars: [...outer.vars, block.vars] }
    const scope = makeScope(this.layers(frame.host, frame.play, frame.vars))
    for (const cond of block.when) {
      const v = evaluateCondition(cond, scope)
      if (v === false) return
      if (isUnknown(v) && this.opts.mode === 'apply')
        throw new RunbookError('E_EXPRESSION', `condition '${String(cond)}' is still unknown`)
    }
    let failure: TaskFailure | undefined
    try {
      await this.steps(frame, block.block)
    } catch (e) {
      if (!(e instanceof TaskFailure)) throw e
      failure = e
    }
    const h = this.host(frame.host)
    if (failure && block.rescue.length) {
      h.failed = false
      h.counts.rescued++
      h.counts.failed = Math.max(0, h.counts.failed - 1)
      h.facts.failed_task = failure.error.task ?? ''
      h.facts.failed_result = { msg: failure.error.message }
      failure = undefined
      try {
        await this.steps(frame, block.rescue)
      } catch (e) {
        if (!(e instanceof TaskFailure)) throw e
        failure = e
      }
    }
    if (block.always.length) {
      const wasFailed = h.failed
      h.failed = false
      try {
        await this.steps(frame, block.always)
      } finally {
        h.failed = h.failed || wasFailed
      }
    }
    if (failure) throw failure
  }

  /** The source position of a task, as `file:line:col`. */
  position(task: { file: string; path: readonly (string | number)[] }): string | undefined {
    const src = this.opts.sources.get(task.file)
    if (!src) return undefined
    const p = locate(src, task.path)
    return `${p.file}:${p.line}:${p.col}`
  }
}
