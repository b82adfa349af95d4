/**
 * Shared by the OpenStack module tests: the lab API in-process on a random port (hosts off; a
 * driver whose console logs carry cloud-init's host-key block with real keys), module contexts
 * whose journal outlives one "run", and converge (gather -> plan -> apply -> gather -> plan).
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parse } from 'yaml'
import type { ApplyResult, Module, ModuleContext, ResourceRecord } from '../../../engine/module.ts'
import type { Change } from '../../../engine/plan/change.ts'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { MemoryRecords, moduleContext } from '../../../engine/execute/context.ts'
import type { HostDriver, VmSpec } from '../../../lab/driver.ts'
import { startLabApi, type LabApi } from '../../../lab/api/server.ts'
import type { Capacity } from '../../../lab/api/cloud.ts'
import { apiFor, CLIENT_OPTIONS_KEY, type Api } from '../../../modules/openstack/lib/cloud.ts'

/** An OpenSSH ed25519 public key line and its SHA256 fingerprint. */
export function makeHostKey(): { line: string; fingerprint: string } {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(String(publicKey.export({ format: 'jwk' }).x), 'base64url')
  const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)])
  return {
    line: `ssh-ed25519 ${blob.toString('base64')}`,
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  }
}

/** A driver that makes no hosts but answers consoles as cloud-init would. */
export function consoleDriver(): HostDriver & {
  keys: Map<string, { line: string; fingerprint: string }>
  /** Consoles as an image without cloud-init's key block: none, or ending as cloud-init does. */
  withoutKeys: 'no' | 'silent' | 'cloud-init-done'
} {
  const keys = new Map<string, { line: string; fingerprint: string }>()
  const log = (spec: VmSpec | string): string => {
    const id = typeof spec === 'string' ? spec : spec.id
    if (driver.withoutKeys !== 'no')
      return [
        `[    0.000000] Linux version 6.1 (lab)`,
        ...(driver.withoutKeys === 'cloud-init-done'
          ? [
              `[   12.345678] cloud-init[512]: Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026 04:00:00 +0000. Datasource DataSourceOpenStackLocal.  Up 12.34 seconds`,
            ]
          : []),
        '',
      ].join('\n')
    let k = keys.get(id)
    if (k === undefined) keys.set(id, (k = makeHostKey()))
    return [
      `[    0.000000] Linux version 6.1 (lab)`,
      `<14>Jan  1 00:00:00 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----`,
      `<14>Jan  1 00:00:00 cloud-init: 256 ${k.fingerprint} root@${id.slice(0, 8)} (ED25519)`,
      `<14>Jan  1 00:00:00 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----`,
      `-----BEGIN SSH HOST KEY KEYS-----`,
      `${k.line} root@${id.slice(0, 8)}`,
      `-----END SSH HOST KEY KEYS-----`,
      '',
    ].join('\n')
  }
  const driver: ReturnType<typeof consoleDriver> = {
    keys,
    withoutKeys: 'no',
    init: async () => undefined,
    createVm: async (spec) => ({ consoleLog: log(spec) }),
    deleteVm: async () => undefined,
    stopVm: async () => undefined,
    startVm: async (id) => ({ consoleLog: log(id) }),
    syncNetwork: async () => undefined,
    consoleLog: async (id) => log(id),
    teardown: async () => undefined,
  }
  return driver
}

/** A running in-process cloud. */
export interface TestCloud {
  api: LabApi
  url: string
  cloudsYaml: string
  /** The clouds.yaml entries, for inline clouds in `openstack_cloud`. */
  clouds: Record<string, Record<string, unknown>>
  driver: ReturnType<typeof consoleDriver>
  close(): Promise<void>
}

/**
 * Starts the lab API in-process (hosts off) on a random port.
 * @example const cloud = await startCloud(); ...; await cloud.close()
 */
export async function startCloud(
  o: {
    tokenTtlSeconds?: number
    capacity?: Capacity
    neutronExtensions?: string
    novaMaxMicroversion?: string
  } = {},
): Promise<TestCloud> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'rbt-os-'))
  const driver = consoleDriver()
  const api = await startLabApi({
    stateDir,
    port: 0,
    driver,
    ...(o.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: o.tokenTtlSeconds }),
    ...(o.capacity === undefined ? {} : { capacity: o.capacity }),
    // Stock Neutron and the newest Nova unless a test asks otherwise, whatever the environment says.
    neutronExtensions: o.neutronExtensions ?? '',
    novaMaxMicroversion: o.novaMaxMicroversion ?? '',
  })
  const doc = parse(readFileSync(api.cloudsYaml, 'utf8')) as {
    clouds: Record<string, Record<string, unknown>>
  }
  return {
    api,
    url: api.url,
    cloudsYaml: api.cloudsYaml,
    clouds: doc.clouds,
    driver,
    async close() {
      await api.close()
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}

/** A journal that outlives runs, and the contexts of one run. */
export class Runs {
  private readonly store = new MemoryRecords()
  readonly records: ResourceRecord[] = this.store.records
  readonly secrets: string[] = []
  readonly messages: string[] = []
  private shared = Runs.sharedValues()

  constructor(
    readonly vars: Record<string, unknown>,
    readonly baseDir: string = process.cwd(),
  ) {}

  /** A run's shared values: retries in tests back off in milliseconds, not seconds. */
  private static sharedValues(): Map<string, unknown> {
    return new Map([[CLIENT_OPTIONS_KEY, { backoffMs: 5, maxBackoffMs: 20 }]])
  }

  /** Starts a new run: a fresh client and owner cache, the same journal. */
  next(): this {
    this.shared = Runs.sharedValues()
    return this
  }

  /** A context for `module` in this run. */
  ctx(module: string, check = false): ModuleContext {
    const conn = new LocalConnection('localhost')
    return moduleContext({
      host: 'localhost',
      module,
      task: 'test',
      vars: this.vars,
      baseDir: this.baseDir,
      check,
      become: undefined,
      conn: async () => conn,
      connectTo: async (host) => {
        throw new Error(`the OpenStack module tests reach no host (${host})`)
      },
      records: this.store,
      inventory: { addHost: () => undefined, hostVars: () => undefined },
      cache: new Map(),
      shared: this.shared,
      progress: (m) => this.messages.push(m),
      secret: (v) => this.secrets.push(v),
    })
  }

  /** The run's client (the one the modules use). */
  api(module = 'test'): Api {
    return apiFor(this.ctx(module), undefined)
  }
}

/** A context whose process "dies" right after a create's POST: its final journal record never lands. */
export function dyingAfterPost(ctx: ModuleContext): ModuleContext {
  return {
    ...ctx,
    journal: {
      ...ctx.journal,
      record: async (r) => {
        if (!r.id.startsWith('pending:')) throw new Error('killed -9')
        await ctx.journal.record(r)
      },
    },
  }
}

/** What one converge did. */
export interface Converged {
  first: Change[]
  result: ApplyResult | undefined
  second: Change[]
  /** API requests of the first gather (not counting authentication). */
  gatherCalls: number
  /** API requests of the second gather, in a new run (authentication not counted). */
  syncCalls: number
}

/**
 * gather -> plan -> apply, then a new run's gather -> plan, which must be [].
 * @example const r = await converge(port, runs, { name: 'kld-vip', network: 'mynetwork' })
 */
export async function converge<P, S>(
  mod: Module<P, S>,
  runs: Runs,
  raw: Record<string, unknown>,
): Promise<Converged> {
  const p = mod.params.parse(raw)
  const ctx = runs.ctx(mod.name)
  const stats = runs.api().client.stats
  await runs.api().client.token()
  const before = stats.requests - stats.auths
  const current = await mod.gather(ctx, p)
  const gatherCalls = stats.requests - stats.auths - before
  const first = mod.plan(p, current)
  const result = first.length ? await mod.apply(ctx, p, first, current) : undefined
  runs.next()
  const ctx2 = runs.ctx(mod.name)
  const stats2 = runs.api().client.stats
  await runs.api().client.token()
  const before2 = stats2.requests - stats2.auths
  const second = mod.plan(p, await mod.gather(ctx2, p))
  return { first, result, second, gatherCalls, syncCalls: stats2.requests - stats2.auths - before2 }
}

/** Gather and plan only (a `runbook plan` of one task). */
export async function planOnly<P, S>(
  mod: Module<P, S>,
  runs: Runs,
  raw: Record<string, unknown>,
): Promise<{ changes: Change[]; output: Record<string, unknown> | undefined; state: S }> {
  const p = mod.params.parse(raw)
  const state = await mod.gather(runs.ctx(mod.name, true), p)
  const changes = mod.plan(p, state)
  return { changes, output: mod.output?.(p, state, changes), state }
}
