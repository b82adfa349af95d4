/**
 * The module contract. A module reads the state that matters (`gather`, read-only), says what
 * would change (`plan`, pure), and changes it (`apply`, which checks its own post-condition).
 * Adding a module is one file, one test and one line in its family's list (modules/<family>/index.ts);
 * nothing in engine/. A family is one line in modules/index.ts, and in modules/catalog.ts if it
 * loads on demand.
 */
import type { z } from 'zod'
import type { Connection, BecomeOptions } from './connection/types.ts'
import type { Change } from './plan/change.ts'
import type { Timings } from './timings.ts'

/** A resource a run created, as the journal keeps it, so that `destroy` can remove it. */
export interface ResourceRecord {
  /** The module that created it and knows how to destroy it. */
  module: string
  /** Kind of resource, e.g. `port`, `server`, `file`. */
  type: string
  /** Stable id (a UUID, a path). */
  id: string
  name?: string | undefined
  /** Inventory host whose task created it. */
  host: string
  /** Name of the task that created it. */
  task: string
  /** Whatever the module needs to destroy it later (never secrets). */
  data?: Record<string, unknown> | undefined
  createdAt: string
}

/** A connection setting of a host added at run time (see `add_host`). */
export interface HostSpec {
  name: string
  groups?: string[] | undefined
  vars?: Record<string, unknown> | undefined
}

/** What the engine lends a module while it works on one task for one host. */
export interface ModuleContext {
  /** Inventory name of the host the task runs for. */
  readonly host: string
  /** The connection to the host the module acts on (the controller for controller modules). */
  conn(): Promise<Connection>
  /**
   * The connection to another inventory host, for modules that coordinate hosts (a failover
   * test run from the jumphost stops the master). Same pool, same host-key checks.
   */
  connectTo(host: string): Promise<Connection>
  /** The task's become, if any. */
  readonly become: BecomeOptions | undefined
  /** All variables visible to the task (read-only). */
  readonly vars: Readonly<Record<string, unknown>>
  /** Directory of the runbook file, to resolve relative paths such as a template's `src`. */
  readonly baseDir: string
  /** Where relative source files are looked up, first hit wins (a role's templates/, files/, itself; then baseDir). */
  readonly searchPath?: readonly string[] | undefined
  /** True during `plan` and `--check`: gather and plan only. */
  readonly check: boolean
  /**
   * Renders a Handlebars template with the task's variables (strict: a missing variable is an
   * error). During a plan, text that depends on values known only after apply throws
   * UnknownValueError, and the engine shows the task as known after apply.
   */
  render(template: string, extra?: Record<string, unknown>): string
  /** Evaluates a condition expression (the language of `when`) with the task's variables. */
  evaluate(expression: string, extra?: Record<string, unknown>): unknown
  /** A per-host cache that lives for the whole run (facts are gathered once). */
  readonly cache: Map<string, unknown>
  /** A run-wide singleton, e.g. one API client per cloud. */
  shared<T>(key: string, create: () => T): T
  /**
   * Resources created by earlier runs of this runbook (journal), and recording new ones. Writes
   * are ordered; await one when the next step must not happen before it is on disk (a record of
   * intent before a create request).
   */
  readonly journal: {
    find(module: string, type: string, id?: string): ResourceRecord[]
    /** Every record, of any module (what a domain keeps on all its records, e.g. an owner id). */
    all(): readonly ResourceRecord[]
    record(r: Omit<ResourceRecord, 'host' | 'task' | 'createdAt' | 'module'>): Promise<void>
    forget(type: string, id: string): Promise<void>
  }
  /** Hosts added during the run (Ansible's add_host). */
  readonly inventory: {
    addHost(spec: HostSpec): void
    hostVars(name: string): Readonly<Record<string, unknown>> | undefined
  }
  /**
   * The run's environment (the CLI's own; empty in tests unless they say otherwise). Modules read
   * OS_CLOUD and the like here, never from process.env.
   */
  readonly env: Readonly<Record<string, string | undefined>>
  /** Tells the live view what the task waits for ("server ACTIVE", "dpkg lock"). */
  progress(message: string): void
  /**
   * The task's counters for `--timings`. The connections `conn()` gives count themselves; a
   * client shared by tasks (an API client) counts its requests here for the task that awaits
   * them: `measure(ctx.timings, 'api', () => request())`.
   */
  readonly timings?: Timings | undefined
  /** Marks a value as secret: it is redacted from every output from now on. */
  secret(value: string): void
  readonly signal: AbortSignal
}

/** What `apply` reports. */
export interface ApplyResult {
  /** Defaults to true: apply ran because there were changes. */
  changed?: boolean
  /** Goes into `register` (merged with changed/failed/msg). */
  output?: Record<string, unknown>
  /** Merged into the host's variables, as Ansible's ansible_facts. */
  facts?: Record<string, unknown>
  msg?: string
  /**
   * The module ran but the outcome is a failure it can describe (a command's non-zero rc): the
   * task fails with `msg` unless `failed_when` says otherwise, and `output` is still registered.
   * Modules throw instead when there is no output worth registering.
   */
  failed?: boolean
}

/**
 * A module.
 * @example
 * export const ping = defineModule({ name: 'ping', summary: '...', example: '- ping: {}', params: z.strictObject({}),
 *   gather: async () => null, plan: () => [], apply: async () => ({ changed: false }) })
 */
export interface Module<P = unknown, S = unknown> {
  /** Name used as the task key: `apt`, `openstack.port`. */
  readonly name: string
  /** One line for `runbook modules`. */
  readonly summary: string
  /** Runbook YAML for docs/modules.md and `runbook modules NAME`. */
  readonly example: string
  readonly params: z.ZodType<P>
  /** Other names accepted for parameters (`pkg` for `name`), mapped to the canonical name. */
  readonly aliases?: Readonly<Record<string, string>>
  /** The parameter a bare string stands for: `shell: echo hi` is `shell: { cmd: echo hi }`. */
  readonly freeForm?: string
  /** Whether plan may be called with values known only after apply (Unknown) in the parameters. */
  readonly acceptsUnknown?: boolean
  /**
   * Top-level parameters the engine passes through unrendered, because the module renders them
   * itself with ctx.render (template's inline `content`, which may use the task's `vars` extras).
   */
  readonly rawParams?: readonly string[]
  /**
   * A check: it proves something about the world and leaves it as it found it (a ping, a failover
   * test). What it plans to run is listed as a check, not a change: a plan with only checks is in
   * sync (`--detailed-exitcode` 0).
   */
  readonly verifies?: boolean
  /** `controller`: runs on the engine's machine whatever the play's hosts (API modules). */
  readonly target?: 'host' | 'controller'
  /** Reads the state that matters to `p`. Read-only: it also runs during `plan`. */
  gather(ctx: ModuleContext, p: P): Promise<S>
  /** Pure: the changes that would bring `current` to `p`; [] means in sync. */
  plan(p: P, current: S): Change[]
  /**
   * Why nothing needs doing when `plan` returned [] (pyinfra's noop reason), shown with --verbose:
   * `keepalived 1:2.2.7-1 is installed`.
   */
  noop?(p: P, current: S): string | undefined
  /** Makes the changes, verifies the post-condition, returns what happened. */
  apply(ctx: ModuleContext, p: P, changes: Change[], current: S): Promise<ApplyResult>
  /**
   * What `register` holds when nothing changes, or in a plan before apply (`current` is
   * undefined when the host does not exist yet); use Unknown for values known after apply.
   */
  output?(p: P, current: S | undefined, changes: Change[]): Record<string, unknown>
  /** Facts for the host's variables when nothing changes or during a plan (as ApplyResult.facts). */
  facts?(p: P, current: S | undefined): Record<string, unknown> | undefined
  /**
   * Template files the module will render (paths relative to the runbook), with the names of the
   * extra variables it gives them, so validation checks them before anything runs.
   */
  templateFiles?(args: Record<string, unknown>): { path: string; vars: string[] }[]
  /** Text to show under the task in the run's output (debug's message). */
  display?(output: Record<string, unknown>): string | undefined
  /** Names of the variables this module sets on the host, for validation (`set_fact` keys). */
  providesVars?(args: Record<string, unknown>): string[]
  /** Removes a resource this module created (runbook destroy). */
  destroy?(ctx: ModuleContext, resource: ResourceRecord): Promise<void>
  /**
   * Why an inventory host cannot be reached, when this module knows better than the channel's
   * timeout ("server kld-vm-2 is SHUTOFF"): the engine asks every module that has this hook when
   * a connect fails (for the host and each jump host on its way). Never throws; undefined when
   * the module knows nothing of the host.
   */
  explainUnreachable?(
    ctx: ModuleContext,
    host: UnreachableHost,
  ): Promise<UnreachableReason | undefined>
}

/** A host a connect failed for, as `explainUnreachable` sees it. */
export interface UnreachableHost {
  /** Inventory name. */
  name: string
  /** Its `address` (or `ansible_host`), if set. */
  address: string | undefined
}

/** A module's account of why a host cannot be reached. */
export interface UnreachableReason {
  /** `server kld-vm-2 is SHUTOFF`. */
  message: string
  /** What to do about it. */
  hint?: string | undefined
  /** True when waiting will not help (a stopped server), so a just-created host is not retried. */
  lasting: boolean
}

/** Identity function that infers a module's types. */
export function defineModule<P, S>(m: Module<P, S>): Module<P, S> {
  return m
}

/** A registry of modules by name. */
export type ModuleRegistry = ReadonlyMap<string, Module<unknown, unknown>>

/**
 * Builds a registry from modules, refusing duplicate names.
 * @example const registry = createRegistry([command, shell, copy])
 */
export function createRegistry(
  modules: ReadonlyArray<
    | Pick<Module, 'name' | 'gather' | 'plan' | 'apply'>
    | { readonly name: string; readonly summary: string }
  >,
): ModuleRegistry {
  const map = new Map<string, Module<unknown, unknown>>()
  for (const m of modules) {
    if (map.has(m.name)) throw new Error(`module ${m.name} registered twice`)
    map.set(m.name, m as unknown as Module<unknown, unknown>)
  }
  return map
}

/** A family of modules loaded only when needed: the prefix of its modules' names, and its loader. */
export interface ModuleFamily {
  /** `openstack` for `openstack.port`, `openstack.server`, … */
  prefix: string
  load(): Promise<ReadonlyArray<{ readonly name: string; readonly summary: string }>>
}

/**
 * A registry that starts with some modules and loads the other families when a name of theirs is
 * asked for (the CLI's: a runbook that names no `openstack.*` module never loads that family, its
 * schemas, its HTTP client). It is a registry like any other once loaded: `load` first.
 * @example const r = new ExpandableRegistry([...hostModules], [{ prefix: 'openstack', load }]); await r.load(['openstack.port'])
 */
export class ExpandableRegistry extends Map<string, Module<unknown, unknown>> {
  private readonly pending: Map<string, ModuleFamily>
  private readonly loading = new Map<string, Promise<void>>()

  constructor(
    modules: ReadonlyArray<{ readonly name: string; readonly summary: string }>,
    families: readonly ModuleFamily[],
  ) {
    super(createRegistry(modules))
    this.pending = new Map(families.map((f) => [f.prefix, f]))
  }

  /** Whether every family is loaded. */
  get complete(): boolean {
    return this.pending.size === 0
  }

  /** Whether `name` belongs to a family not loaded yet (`openstack.port` before it is). */
  unloaded(name: string): boolean {
    const dot = name.indexOf('.')
    return dot > 0 && this.pending.has(name.slice(0, dot))
  }

  /** Loads the families of these names; every family without names. Loads each family once. */
  async load(names?: Iterable<string>): Promise<void> {
    const prefixes = new Set<string>()
    if (names === undefined) for (const p of this.pending.keys()) prefixes.add(p)
    else for (const n of names) if (this.unloaded(n)) prefixes.add(n.slice(0, n.indexOf('.')))
    await Promise.all([...prefixes].map((p) => this.family(p)))
  }

  private family(prefix: string): Promise<void> {
    let loading = this.loading.get(prefix)
    if (loading === undefined) {
      const family = this.pending.get(prefix)
      if (family === undefined) return Promise.resolve()
      loading = family.load().then((modules) => {
        for (const m of modules) {
          if (this.has(m.name)) throw new Error(`module ${m.name} registered twice`)
          this.set(m.name, m as unknown as Module<unknown, unknown>)
        }
        this.pending.delete(prefix)
      })
      this.loading.set(prefix, loading)
    }
    return loading
  }
}

/**
 * Makes sure the modules of `names` are in `registry` (every module without names), when it loads
 * families on demand; any other registry has them all already.
 * @example await loadModules(registry, journal.all().map((r) => r.module))
 */
export async function loadModules(
  registry: ModuleRegistry,
  names?: Iterable<string>,
): Promise<void> {
  if (registry instanceof ExpandableRegistry) await registry.load(names)
}
