/**
 * `runbook destroy`: removes what the journal says this runbook created, newest first, through
 * the module that created each resource. What is destroyed leaves the journal at once, so an
 * interrupted destroy can simply be run again.
 */
import { isLocalHost, type ConnectionFactory } from '../connection/factory.ts'
import { LocalConnection } from '../connection/local.ts'
import { RunbookError, toRunbookError } from '../errors.ts'
import type { Inventory } from '../inventory/inventory.ts'
import type { Journal } from '../journal/journal.ts'
import { loadModules, type ModuleRegistry, type ResourceRecord } from '../module.ts'
import type { Change } from '../plan/change.ts'
import { emptyCounts, type EventSink, type HostCounts } from '../report/events.ts'
import { moduleContext } from './context.ts'
import { makeScope } from './scope.ts'
import type { Timings } from '../timings.ts'
import type { Redactor } from '../vars/secrets.ts'

/** Options of a destroy. */
export interface DestroyOptions {
  journal: Journal
  registry: ModuleRegistry
  inventory: Inventory
  connections: ConnectionFactory
  redactor: Redactor
  emit: EventSink
  /** The run's counters (`--timings`): a destroy's API requests and commands count in its totals. */
  timings?: Timings | undefined
  baseDir: string
  /** Runbook-level variables (clouds, credentials) that modules may need to reach the resources. */
  vars: Record<string, unknown>
  /** --var / --var-file: above the inventory, as in a run. */
  extraVars?: Record<string, unknown>
  /** true: list what would be destroyed, touch nothing. */
  plan: boolean
  /** The environment modules see (ModuleContext.env): the CLI passes its own; none by default. */
  env?: Readonly<Record<string, string | undefined>> | undefined
}

/** Error codes of a host that cannot be reached. */
const UNREACHABLE = new Set(['E_CONNECTION', 'E_HOST_KEY', 'E_TIMEOUT'])

/** What a destroy did. */
export interface DestroyResult {
  ok: boolean
  changes: Change[]
  errors: RunbookError[]
  hosts: Record<string, HostCounts>
  /** What destroy decided on its own (records dropped, records left), as printed. */
  lines: string[]
}

/** The change that destroying a resource is. */
export function destroyChange(r: ResourceRecord): Change {
  return {
    action: 'delete',
    target: `${r.type} ${r.name ?? r.id}`,
    before: { id: r.id, ...(r.name ? { name: r.name } : {}), host: r.host },
    note: `created by task "${r.task}"`,
  }
}

/**
 * Destroys the resources of a journal, newest first.
 * @example await destroy({ journal, registry, inventory, connections, redactor, emit, baseDir, vars, plan: false })
 */
export async function destroy(o: DestroyOptions): Promise<DestroyResult> {
  // the modules that made the records, whatever the runbook names now
  await loadModules(
    o.registry,
    o.journal.all().map((r) => r.module),
  )
  for (const [name, h] of Object.entries(o.journal.data.hosts))
    if (!o.inventory.hosts.has(name)) o.inventory.addHost(name, h.groups, h.vars)
  const varsOf = (host: string): Record<string, unknown> =>
    makeScope([
      { vars: o.vars, templated: true },
      { vars: o.inventory.hostVars(host), templated: true },
      { vars: o.extraVars ?? {}, templated: false },
      { vars: { inventory_hostname: host }, templated: false },
    ])
  const resources = [...o.journal.data.resources].reverse()
  const changes: Change[] = []
  const errors: RunbookError[] = []
  const hosts: Record<string, HostCounts> = {}
  const local = new LocalConnection()
  const shared = new Map<string, unknown>()
  const lines: string[] = []
  const say = (message: string): void => {
    lines.push(message)
    o.emit(o.redactor.value({ type: 'warning', message }))
  }
  // A record on a host that no longer exists can never be acted on. A host this runbook added
  // whose server this destroy removes: its records wait for that, then are dropped (no point in
  // reaching a VM about to go, maybe stopped). One whose server is no longer in the journal
  // (destroyed by an earlier run): tried, and dropped when the host cannot be reached.
  const hostSide = (r: ResourceRecord): boolean =>
    o.journal.data.hosts[r.host] !== undefined &&
    o.registry.get(r.module)?.target !== 'controller' &&
    !isLocalHost(r.host, varsOf(r.host))
  const serverOf = (host: string): ResourceRecord | undefined =>
    o.journal.data.resources.find((x) => x.type === 'server' && x.name === host)
  const waiting: ResourceRecord[] = []
  const stuck: ResourceRecord[] = []
  /** Records of a cloud project these credentials do not reach (gone, or another cloud). */
  const elsewhere: { r: ResourceRecord; why: string }[] = []
  const drop = async (r: ResourceRecord, why: string): Promise<void> => {
    await o.journal.forget(r.type, r.id, r.host)
    say(`dropped the record of ${r.type} ${r.name ?? r.id} on ${r.host}: ${why}`)
  }
  for (const r of resources) {
    changes.push(destroyChange(r))
    hosts[r.host] ??= emptyCounts()
    if (o.plan) continue
    if (hostSide(r) && serverOf(r.host) !== undefined) {
      waiting.push(r)
      continue
    }
    const gone = hostSide(r)
      ? `host ${r.host} cannot be reached and its server is no longer in the journal (destroyed by an earlier run)`
      : undefined
    await destroyOne(r, gone)
    if (r.type === 'server' && r.name !== undefined && serverOf(r.name) === undefined)
      for (const w of waiting.filter((x) => x.host === r.name)) {
        waiting.splice(waiting.indexOf(w), 1)
        await drop(w, `its server ${w.host} was destroyed by this run`)
      }
  }
  // hosts whose server stays (it failed to go): destroy on them now
  for (const r of waiting) await destroyOne(r, undefined)
  await o.connections.closeAll().catch(() => undefined)
  if (stuck.length > 0)
    say(
      `${stuck.length} record(s) could not be destroyed and stay in the journal: ${stuck.map((r) => `${r.type} ${r.name ?? r.id} (ID ${r.id})`).join(', ')}. When a resource is gone for good, \`runbook destroy --forget ID\` drops its record without touching anything.`,
    )
  if (elsewhere.length > 0)
    say(
      `${elsewhere.length} record(s) stay in the journal, made in a project this cloud is not: ${elsewhere.map((x) => `${x.why} (ID ${x.r.id})`).join('; ')}. Select the cloud they were made in to destroy them; if their project is gone (a lab brought up again has a new one), \`runbook destroy --forget ID\` drops a record without touching anything.`,
    )
  return { ok: errors.length === 0, changes, errors, hosts, lines }

  /** Destroys one record; one it cannot reach is dropped when `gone` says why, else reported. */
  async function destroyOne(r: ResourceRecord, gone: string | undefined): Promise<void> {
    const change = destroyChange(r)
    const counts = (hosts[r.host] ??= emptyCounts())
    const task = `destroy ${r.type} ${r.name ?? r.id}`
    o.emit(o.redactor.value({ type: 'task_start', play: 'destroy', task, host: r.host }))
    const started = Date.now()
    const module = o.registry.get(r.module)
    try {
      if (!module?.destroy)
        throw new RunbookError('E_MODULE', `module '${r.module}' cannot destroy a ${r.type}`)
      const scope = varsOf(r.host)
      const ctx = moduleContext({
        host: r.host,
        module: r.module,
        task,
        vars: scope,
        baseDir: o.baseDir,
        check: false,
        become: { method: 'sudo' },
        conn: async () =>
          module.target === 'controller' || isLocalHost(r.host, scope)
            ? local
            : o.connections.get(r.host, varsOf),
        connectTo: async (other) =>
          isLocalHost(other, varsOf(other)) ? local : o.connections.get(other, varsOf),
        // a destroy only reads and forgets records, it makes none
        records: {
          find: (...a) => o.journal.find(...a),
          all: () => o.journal.all(),
          record: async () => undefined,
          forget: (...a) => o.journal.forget(...a),
        },
        inventory: { addHost: () => undefined, hostVars: (n) => varsOf(n) },
        cache: new Map(),
        shared,
        progress: (message) =>
          o.emit(o.redactor.value({ type: 'task_progress', task, host: r.host, message })),
        timings: o.timings,
        secret: (v) => o.redactor.add(v),
        env: o.env,
      })
      await module.destroy(ctx, r)
      await o.journal.forget(r.type, r.id, r.host)
      counts.changed++
      o.emit(
        o.redactor.value({
          type: 'task_end',
          play: 'destroy',
          task,
          host: r.host,
          status: 'changed',
          changes: [change],
          duration_ms: Date.now() - started,
        }),
      )
    } catch (e) {
      const err = toRunbookError(e, 'E_MODULE', { host: r.host, task })
      if (gone !== undefined && UNREACHABLE.has(err.code)) {
        o.emit(
          o.redactor.value({
            type: 'task_end',
            play: 'destroy',
            task,
            host: r.host,
            status: 'ok',
            changes: [],
            msg: err.message,
            duration_ms: Date.now() - started,
          }),
        )
        await drop(r, gone)
        return
      }
      if (err.code === 'E_STALE_RECORD') {
        // not an error of this run: reported, kept, and the rest goes on (docs/decisions.md)
        elsewhere.push({ r, why: err.message })
        counts.skipped++
        o.emit(
          o.redactor.value({
            type: 'task_end',
            play: 'destroy',
            task,
            host: r.host,
            status: 'skipped',
            changes: [],
            msg: err.message,
            duration_ms: Date.now() - started,
          }),
        )
        return
      }
      err.hint ??= `if it is gone for good: runbook destroy --forget ${r.id}`
      errors.push(err)
      stuck.push(r)
      counts.failed++
      o.emit(
        o.redactor.value({
          type: 'task_end',
          play: 'destroy',
          task,
          host: r.host,
          status: 'failed',
          changes: [],
          msg: err.message,
          duration_ms: Date.now() - started,
        }),
      )
    }
  }
}
