/**
 * The lab API in-process on a random port, with a driver that records what it is asked and makes
 * nothing (hosts off): for tests of the API over real HTTP.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HostDriver, NetworkSnapshot, VmSpec } from '../../../lab/driver.ts'
import { startLabApi } from '../../../lab/api/server.ts'
import type { LabApi } from '../../../lab/api/server.ts'
import type { Capacity } from '../../../lab/api/cloud.ts'

/** One driver call. */
export interface DriverCall {
  method: keyof HostDriver
  id?: string
  spec?: VmSpec
  snapshot?: NetworkSnapshot
}

/** A HostDriver that records calls; `fail` makes the named method throw. */
export interface RecordingDriver extends HostDriver {
  calls: DriverCall[]
  fail: Partial<Record<keyof HostDriver, string>>
  /** Resolve to hold createVm until released (to observe BUILD). */
  gate: Promise<void> | null
  lastSnapshot(): NetworkSnapshot | undefined
}

/** A driver that records and never touches the machine. */
export function recordingDriver(): RecordingDriver {
  const d: RecordingDriver = {
    calls: [],
    fail: {},
    gate: null,
    lastSnapshot: () => [...d.calls].reverse().find((c) => c.snapshot !== undefined)?.snapshot,
    async init(snapshot) {
      d.calls.push({ method: 'init', snapshot })
    },
    async createVm(spec, snapshot) {
      d.calls.push({ method: 'createVm', id: spec.id, spec, snapshot })
      if (d.gate !== null) await d.gate
      if (d.fail.createVm !== undefined) throw new Error(d.fail.createVm)
      return {
        consoleLog: `ci-info: boot of ${spec.hostname}\nec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n`,
      }
    },
    async deleteVm(id) {
      d.calls.push({ method: 'deleteVm', id })
    },
    async stopVm(id) {
      d.calls.push({ method: 'stopVm', id })
      if (d.fail.stopVm !== undefined) throw new Error(d.fail.stopVm)
    },
    async startVm(id) {
      d.calls.push({ method: 'startVm', id })
      if (d.fail.startVm !== undefined) throw new Error(d.fail.startVm)
      return { consoleLog: `restarted ${id}\n` }
    },
    async syncNetwork(snapshot) {
      d.calls.push({ method: 'syncNetwork', snapshot })
    },
    async consoleLog(id) {
      d.calls.push({ method: 'consoleLog', id })
      return `console of ${id}\n`
    },
    async teardown() {
      d.calls.push({ method: 'teardown' })
    },
  }
  return d
}

/** A response as the tests look at it. */
export interface Res {
  status: number
  headers: Headers
  body: Record<string, unknown>
}

/** A running test lab. */
export interface TestLab {
  api: LabApi
  url: string
  stateDir: string
  driver: RecordingDriver
  req(
    method: string,
    path: string,
    opts?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<Res>
  /** A project-scoped token of `demo` (password). */
  token(): Promise<string>
  /** A project-scoped token of `admin`. */
  adminToken(): Promise<string>
  /** Restart the API on the same state dir (and driver), as after a daemon restart; `between` runs while it is down. */
  restart(between?: () => Promise<void>): Promise<void>
  close(): Promise<void>
}

/** Options of a test lab. */
export interface TestLabOptions {
  tokenTtlSeconds?: number
  capacity?: Capacity
  stateDir?: string
  /** Neutron extensions to add or drop (`+alias,-alias`); default: a stock Neutron's. */
  neutronExtensions?: string
}

/**
 * Start the lab API in-process on a random port with a recording driver.
 * @example const lab = await startTestLab(); const t = await lab.token()
 */
export async function startTestLab(opts: TestLabOptions = {}): Promise<TestLab> {
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'rb-lab-api-')))
  const driver = recordingDriver()
  const start = () =>
    startLabApi({
      stateDir,
      port: 0,
      driver,
      ...(opts.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: opts.tokenTtlSeconds }),
      ...(opts.capacity === undefined ? {} : { capacity: opts.capacity }),
      neutronExtensions: opts.neutronExtensions ?? '',
      novaMaxMicroversion: '',
    })
  let api = await start()
  const lab: TestLab = {
    get api() {
      return api
    },
    get url() {
      return api.url
    },
    stateDir,
    driver,
    async req(method, path, o = {}) {
      const headers: Record<string, string> = { Accept: 'application/json', ...(o.headers ?? {}) }
      if (o.token !== undefined) headers['X-Auth-Token'] = o.token
      if (o.body !== undefined) headers['Content-Type'] = 'application/json'
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers,
        body: o.body === undefined ? null : JSON.stringify(o.body),
      })
      const text = await res.text()
      return {
        status: res.status,
        headers: res.headers,
        body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
      }
    },
    token: () => passwordToken(lab, 'demo', demoPassword(api), 'demo'),
    adminToken: () =>
      passwordToken(lab, 'admin', api.cloud.state.seed?.adminPassword ?? '', 'admin'),
    async restart(between) {
      await api.close()
      if (between !== undefined) await between()
      api = await start()
    },
    async close() {
      await api.close()
      if (opts.stateDir === undefined) await rm(stateDir, { recursive: true, force: true })
    },
  }
  return lab
}

function demoPassword(api: LabApi): string {
  return api.cloud.state.seed?.demoPassword ?? ''
}

/** The body of a password authentication by names (user and project in the Default domain). */
export function passwordAuth(user: string, password: string, project: string): unknown {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: user, domain: { name: 'Default' }, password } },
      },
      scope: { project: { name: project, domain: { id: 'default' } } },
    },
  }
}

async function passwordToken(
  lab: TestLab,
  user: string,
  password: string,
  project: string,
): Promise<string> {
  const res = await lab.req('POST', '/v3/auth/tokens', {
    body: passwordAuth(user, password, project),
  })
  const token = res.headers.get('x-subject-token')
  if (res.status !== 201 || token === null)
    throw new Error(`auth failed: ${res.status} ${JSON.stringify(res.body)}`)
  return token
}

/** Poll until `check` returns a value, or fail after `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Narrow a JSON value to an object. */
export function o(x: unknown): Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x))
    throw new Error(`not an object: ${JSON.stringify(x)}`)
  return x as Record<string, unknown>
}

/** Narrow a JSON value to an array of objects. */
export function a(x: unknown): Record<string, unknown>[] {
  if (!Array.isArray(x)) throw new Error(`not an array: ${JSON.stringify(x)}`)
  return x.map(o)
}
