/**
 * The lab cloud as one object: the state (in memory, persisted on every change), the host driver,
 * and the ordering of driver calls. Route handlers validate and mutate `state` synchronously, then
 * `await cloud.commit()` (and `cloud.syncNetwork()` when port security or NAT changed).
 */
import { cpus, totalmem } from 'node:os'
import PQueue from 'p-queue'
import type { HostDriver } from '../driver.ts'
import { Coalescer } from './coalesce.ts'
import { secret } from './ids.ts'
import { labPaths } from './paths.ts'
import { buildSnapshot } from './snapshot.ts'
import { readState, StateStore } from './store.ts'
import { verifyToken } from './keystone/tokens.ts'
import type { AuthContext } from './keystone/tokens.ts'
import { extensionSet } from './neutron/extensions.ts'
import { checkedMaxVersion } from './nova/versions.ts'
import type { LabState } from './types.ts'

/** What a flavor may ask for and still be placed (Nova's "No valid host" otherwise). */
export interface Capacity {
  vcpus: number
  ramMb: number
}

/** How a Cloud is made. */
export interface CloudOptions {
  stateDir: string
  driver: HostDriver
  /** Where clients reach the API, for the catalog: `http://127.0.0.1:8780`. */
  endpoint: string
  /** Token lifetime; Keystone's default is one hour. */
  tokenTtlSeconds?: number
  /** Largest flavor that fits; default: the machine (vCPUs x 4, as Nova's cpu_allocation_ratio; RAM x 1). */
  capacity?: Capacity
  /** How many VM operations (create/start/stop/delete) the driver runs at once. */
  vmConcurrency?: number
  /** Nova's maximum microversion (an older Nova); default RUNBOOK_LAB_NOVA_MAX_MICROVERSION, else 2.100. */
  novaMaxMicroversion?: string
  /** Neutron extensions to add or drop (`+alias,-alias`); default RUNBOOK_LAB_NEUTRON_EXTENSIONS. */
  neutronExtensions?: string
  log?: (line: string) => void
}

/** An empty cloud; seed.ts fills it. */
export function emptyState(): LabState {
  return {
    schema: 1,
    tokenKey: secret(32),
    seed: null,
    projects: [],
    users: [],
    roles: [],
    assignments: [],
    appCreds: [],
    flavors: [],
    images: [],
    keypairs: [],
    servers: [],
    networks: [],
    subnets: [],
    ports: [],
    securityGroups: [],
    securityGroupRules: [],
    routers: [],
    floatingIps: [],
    nextKeypairId: 1,
  }
}

/** The lab cloud: state, persistence and the host driver. */
export class Cloud {
  readonly state: LabState
  readonly driver: HostDriver
  readonly endpoint: string
  readonly stateDir: string
  readonly tokenTtlMs: number
  readonly capacity: Capacity
  readonly log: (line: string) => void
  /** Nova's maximum microversion here: the release the lab stands for. */
  readonly novaMaxVersion: string
  /** The Neutron extensions this lab announces and honours. */
  readonly neutronExtensions: ReadonlySet<string>
  /** Tokens revoked with DELETE /v3/auth/tokens (until restart; they expire within the TTL anyway). */
  readonly revoked = new Set<string>()
  private readonly store: StateStore
  private readonly netSync: Coalescer
  private readonly vmQueue: PQueue
  private readonly vmChains = new Map<string, Promise<unknown>>()
  private driverReady: Promise<void> = Promise.resolve()

  constructor(opts: CloudOptions) {
    this.stateDir = opts.stateDir
    this.driver = opts.driver
    this.endpoint = opts.endpoint.replace(/\/$/, '')
    this.tokenTtlMs = (opts.tokenTtlSeconds ?? 3600) * 1000
    this.capacity = opts.capacity ?? {
      vcpus: cpus().length * 4,
      ramMb: Math.floor(totalmem() / 2 ** 20),
    }
    this.log = opts.log ?? (() => undefined)
    this.novaMaxVersion = checkedMaxVersion(
      opts.novaMaxMicroversion ?? process.env['RUNBOOK_LAB_NOVA_MAX_MICROVERSION'],
    )
    this.neutronExtensions = extensionSet(
      opts.neutronExtensions ?? process.env['RUNBOOK_LAB_NEUTRON_EXTENSIONS'],
    )
    const file = labPaths(opts.stateDir).state
    this.state = readState(file) ?? emptyState()
    this.store = new StateStore(file, () => this.state)
    this.vmQueue = new PQueue({ concurrency: opts.vmConcurrency ?? 4 })
    this.netSync = new Coalescer(async () => {
      await this.driverReady
      await this.driver.syncNetwork(buildSnapshot(this.state))
    })
  }

  /** Persist the state; resolves when it is on disk. */
  commit(): Promise<void> {
    return this.store.save()
  }

  /**
   * Bring the hosts up to the state (bridge, router, NAT): every driver call waits for this.
   * A failure is returned to the caller (the daemon exits on it) and later calls still run.
   */
  initDriver(): Promise<void> {
    const run = this.driver.init(buildSnapshot(this.state))
    this.driverReady = run.catch(() => undefined)
    return run
  }

  /**
   * Push the whole network snapshot to the hosts. Never rejects: a failed push is logged and the
   * next one converges, as Neutron's agents do; the API call that caused it still succeeds.
   */
  async syncNetwork(): Promise<void> {
    try {
      await this.netSync.run()
    } catch (e) {
      this.log(`syncNetwork failed: ${errorText(e)}`)
    }
  }

  /** Persist, then push the network snapshot. */
  async commitAndSync(): Promise<void> {
    await this.commit()
    await this.syncNetwork()
  }

  /**
   * Run a driver operation for one VM: operations on the same VM run in order, at most
   * `vmConcurrency` VMs are worked on at once, and nothing starts before the driver's init.
   */
  vmOp<T>(id: string, op: () => Promise<T>): Promise<T> {
    const prev = this.vmChains.get(id) ?? Promise.resolve()
    const next = prev
      .catch(() => undefined)
      .then(() => this.driverReady)
      .then(() => this.vmQueue.add(op))
    const tail = next.catch(() => undefined)
    this.vmChains.set(id, tail)
    void tail.then(() => {
      if (this.vmChains.get(id) === tail) this.vmChains.delete(id)
    })
    return next
  }

  /** Resolves when no VM operation and no network push is pending (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const chains = [...this.vmChains.values()]
      if (chains.length === 0) break
      await Promise.all(chains)
    }
    await this.vmQueue.onIdle()
    await this.netSync.idle()
  }

  /** Resolve a token to its caller; null when it is invalid, expired, revoked or its user is gone. */
  authenticate(token: string): AuthContext | null {
    if (this.revoked.has(token)) return null
    const payload = verifyToken(this.state.tokenKey, token)
    if (payload === null) return null
    const user = this.state.users.find((u) => u.id === payload.u && u.enabled)
    if (user === undefined) return null
    if (payload.a !== null && !this.state.appCreds.some((c) => c.id === payload.a)) return null
    const roleNames = payload.p === null ? [] : this.roleNames(user.id, payload.p, payload.a)
    if (payload.p !== null && roleNames.length === 0) return null
    return {
      token,
      payload,
      userId: user.id,
      projectId: payload.p,
      roleNames,
      isAdmin: roleNames.includes('admin'),
    }
  }

  /** Effective role names of a user on a project (an application credential narrows them). */
  roleNames(userId: string, projectId: string, appCredId: string | null): string[] {
    const ids = new Set(
      this.state.assignments
        .filter((a) => a.userId === userId && a.projectId === projectId)
        .map((a) => a.roleId),
    )
    const cred =
      appCredId === null ? undefined : this.state.appCreds.find((c) => c.id === appCredId)
    const allowed = cred === undefined ? ids : new Set(cred.roleIds.filter((r) => ids.has(r)))
    const names = new Set(this.state.roles.filter((r) => allowed.has(r.id)).map((r) => r.name))
    // Keystone's default implied roles: admin implies member, member implies reader.
    if (names.has('admin')) names.add('member')
    if (names.has('member')) names.add('reader')
    return [...names]
  }
}

/** The message of an unknown thrown value. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
