/**
 * The one place a ModuleContext is made. A run, a destroy and the module tests differ only in the
 * parts they hand in (connections, where records go, what a progress message does); rendering,
 * evaluation, the journal's bookkeeping and check mode behave the same for all of them.
 */
import type { BecomeOptions, Connection } from '../connection/types.ts'
import type { ModuleContext, ResourceRecord } from '../module.ts'
import { evaluate } from '../vars/expr.ts'
import { renderText } from '../vars/template.ts'
import { isUnknown, UnknownValueError } from '../vars/unknown.ts'
import { makeScope } from './scope.ts'
import { taskConnection, type Timings } from '../timings.ts'

/** Where resource records live: the run's journal, or a test's memory. `Journal` is one. */
export interface RecordStore {
  find(module: string, type: string, id?: string): ResourceRecord[]
  all(): readonly ResourceRecord[]
  record(r: ResourceRecord): Promise<void>
  forget(type: string, id: string, host?: string): Promise<void>
}

/** What differs between the contexts of a run, a destroy and a test. */
export interface ContextParts {
  /** The inventory host the task runs for. */
  host: string
  /** The module and task, written into the records the module makes. */
  module: string
  task: string
  /** The task's variables. */
  vars: Record<string, unknown>
  baseDir: string
  searchPath?: readonly string[] | undefined
  /** Plan or --check: the journal is read, never written. */
  check: boolean
  become: BecomeOptions | undefined
  conn(): Promise<Connection>
  connectTo(host: string): Promise<Connection>
  /** No store: records are neither kept nor found (a run without a journal). */
  records: RecordStore | undefined
  inventory: ModuleContext['inventory']
  /** The host's cache (lives for the run). */
  cache: Map<string, unknown>
  /** The run's singletons (one API client per cloud). */
  shared: Map<string, unknown>
  progress(message: string): void
  /** The task's counters (`--timings`): its wait for connections, its commands, its API requests. */
  timings?: Timings | undefined
  secret(value: string): void
  signal?: AbortSignal | undefined
  /** The run's environment; none unless given. */
  env?: Readonly<Record<string, string | undefined>> | undefined
}

/**
 * Makes the context a module works with for one task on one host.
 * @example const ctx = moduleContext({ host: 'lvs-1', module: 'apt', task: 'install', vars, ... })
 */
export function moduleContext(p: ContextParts): ModuleContext {
  const withExtra = (extra: Record<string, unknown> | undefined): Record<string, unknown> =>
    extra
      ? makeScope([
          { vars: p.vars, templated: false },
          { vars: extra, templated: false },
        ])
      : p.vars
  const store = p.records
  const scope = { timings: p.timings, progress: p.progress }
  // A connection as this task uses it: the wait for it and each command count in the task's
  // timings, a slow one is said on its live line. The controller's own shell is no SSH wait or
  // remote command: only its slow commands are said.
  const connected = async (get: () => Promise<Connection>): Promise<Connection> => {
    const start = performance.now()
    let c: Connection | undefined
    try {
      c = await get()
      return taskConnection(c, scope, c.kind !== 'local')
    } finally {
      if (c?.kind !== 'local') p.timings?.add('ssh', performance.now() - start)
    }
  }
  return {
    host: p.host,
    become: p.become,
    vars: p.vars,
    baseDir: p.baseDir,
    searchPath: p.searchPath,
    check: p.check,
    conn: () => connected(p.conn),
    connectTo: (host) => connected(() => p.connectTo(host)),
    render: (template, extra) => {
      const v = renderText(template, withExtra(extra))
      if (isUnknown(v)) throw new UnknownValueError('rendered content', v.partial)
      return v
    },
    evaluate: (expression, extra) => evaluate(expression, withExtra(extra)),
    cache: p.cache,
    shared: <T>(key: string, create: () => T): T => {
      if (!p.shared.has(key)) p.shared.set(key, create())
      return p.shared.get(key) as T
    },
    journal: {
      find: (module, type, id) => store?.find(module, type, id) ?? [],
      all: () => store?.all() ?? [],
      record: async (r) => {
        if (!store || p.check) return
        const at = new Date().toISOString()
        await store.record({ ...r, module: p.module, host: p.host, task: p.task, createdAt: at })
      },
      forget: async (type, id) => {
        if (store && !p.check) await store.forget(type, id, p.host)
      },
    },
    inventory: p.inventory,
    env: p.env ?? {},
    progress: p.progress,
    timings: p.timings,
    secret: p.secret,
    signal: p.signal ?? new AbortController().signal,
  }
}

/**
 * Records kept in memory with the journal's rules (one per module, type, id and host), for tests
 * and for runs without a state directory.
 */
export class MemoryRecords implements RecordStore {
  readonly records: ResourceRecord[] = []

  find(module: string, type: string, id?: string): ResourceRecord[] {
    return this.records.filter(
      (r) => r.module === module && r.type === type && (id === undefined || r.id === id),
    )
  }

  all(): readonly ResourceRecord[] {
    return this.records
  }

  async record(r: ResourceRecord): Promise<void> {
    const i = this.records.findIndex(
      (x) => x.module === r.module && x.type === r.type && x.id === r.id && x.host === r.host,
    )
    if (i >= 0) this.records.splice(i, 1)
    this.records.push(r)
  }

  async forget(type: string, id: string, host?: string): Promise<void> {
    for (let i = this.records.length - 1; i >= 0; i--) {
      const x = this.records[i]
      if (x && x.type === type && x.id === id && (host === undefined || x.host === host))
        this.records.splice(i, 1)
    }
  }
}
