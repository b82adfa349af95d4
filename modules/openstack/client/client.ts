/**
 * The OpenStack REST client (axios): one Keystone token reused until shortly before it expires and
 * renewed once on a 401; endpoints from the catalog; Nova's microversion header; pagination;
 * retries with backoff for requests that are safe to repeat, never for a POST that may have been
 * carried out (the caller resolves that by looking the resource up: `createResolved`). Errors
 * carry the API's own message; passwords, secrets and tokens are scrubbed from them and handed
 * to `secret` so the engine hides them everywhere.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { rootCertificates } from 'node:tls'
import type { AxiosInstance, AxiosResponse, CreateAxiosDefaults } from 'axios'
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import { measure, type WaitScope } from '../../../engine/timings.ts'
import { selectEndpoint, versionedEndpoint } from './catalog.ts'
import { cloudSecrets, type CloudConfig } from './config.ts'
import { OpenStackApiError, parseFault, SERVICE_NAMES, type ServiceType } from './errors.ts'
import { authBody, parseToken, type Token } from './keystone.ts'

/**
 * axios, loaded with the first request: importing it costs tens of milliseconds of CPU, which
 * every command (`validate`, a host-only run, a plan before its first API task) would pay at
 * start-up. The CLI's bundle holds it, so it is compiled from the bundle's code cache.
 */
async function createAxios(config: CreateAxiosDefaults): Promise<AxiosInstance> {
  const { default: axios } = await import('axios')
  return axios.create(config)
}

/** How the client behaves. */
export interface ClientOptions {
  /** Told every secret value (passwords, tokens) so that the engine redacts it everywhere. */
  secret?: (value: string) => void
  /** Attempts after the first for requests that are safe to repeat; default 4. */
  retries?: number
  /** First backoff delay in ms (doubled each time, with jitter); default 300. */
  backoffMs?: number
  /** Longest backoff delay in ms; default 5000. */
  maxBackoffMs?: number
  /** Per-request timeout in ms; default 60 s. */
  timeoutMs?: number
  /** An answer awaited this long is said on the waiting task's live line; default 2 s. */
  slowNoticeMs?: number
  /** Renew the token this long before it expires; default 120 s (keystoneauth's). */
  tokenMarginMs?: number
  /** Nova microversion; default the cloud's compute_api_version, else 2.79. */
  microversion?: string
  signal?: AbortSignal
  /**
   * Told of every retry before its backoff; default: the waiting task's live line
   * (`Neutron GET /v2.0/ports: retrying (2/5) after 503 in 0.3 s`).
   */
  onRetry?: (r: RetryNotice) => void
  /**
   * One stderr line per request (method, path, status, time; no headers or bodies); the modules
   * set it from RUNBOOK_TRACE_API=1 in the run's environment. Default off.
   */
  trace?: boolean
}

/** A retry about to happen. */
export interface RetryNotice {
  service: ServiceType
  method: string
  path: string
  /** The attempt about to be made (2 for the first retry) and the most there will be. */
  attempt: number
  of: number
  /** What went wrong: an HTTP status (`503`), an error code (`ECONNRESET`), `timeout`. */
  reason: string
  delayMs: number
}

/**
 * A retry as the live view and `-v` show it.
 * @example retryText({ service: 'network', method: 'GET', path: '/v2.0/ports', attempt: 2, of: 5, reason: '503', delayMs: 300 }) // 'Neutron GET /v2.0/ports: retrying (2/5) after 503 in 0.3 s'
 */
export function retryText(r: RetryNotice): string {
  return `${SERVICE_NAMES[r.service]} ${r.method} ${r.path}: retrying (${r.attempt}/${r.of}) after ${r.reason} in ${(r.delayMs / 1000).toFixed(1)} s`
}

/** Query values; arrays repeat the key (`fields=id&fields=name`). */
export type Query = Record<string, string | number | boolean | readonly string[] | undefined>

/** One request. */
export interface RequestOptions {
  query?: Query
  body?: unknown
  headers?: Record<string, string>
  /** Statuses that are answers rather than errors, besides 2xx (404 for a lookup). */
  accept?: readonly number[]
  /** A POST that may be repeated safely (a token request, a lookup). */
  idempotent?: boolean
  /** Nova: send no microversion headers (the version document itself). */
  noMicroversion?: boolean
}

/** An answer. */
export interface ApiResponse {
  status: number
  data: unknown
  headers: Record<string, string>
}

/** An answer as `send` gives it: `ambiguous` when a 5xx came to a request that is not safe to repeat. */
interface SentResponse extends ApiResponse {
  ambiguous?: boolean
  /** Attempts made, when the answer is one the client would have retried (a give-up). */
  attempts?: number
}

/** An axios error code as a retry reason: `ECONNRESET`, `timeout`. */
function errorReason(code: string): string {
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return 'timeout'
  return code === '' ? 'no answer' : code
}

/** Counts, for tests and measurements. */
export interface ClientStats {
  auths: number
  requests: number
  retries: number
  byService: Record<ServiceType, number>
}

/** The Nova microversion the modules are written for (Train): tags on create, embedded flavors. */
/**
 * Lookups that do not change during a run (a network or flavor by name), made once; a failed one is
 * forgotten so that it can be tried again.
 * @example const cache = new LookupCache(); await cache.get('flavor:m1.small', () => nova.findFlavor('m1.small'))
 */
export class LookupCache {
  private readonly entries = new Map<string, Promise<unknown>>()

  /** The value for `key`, loading it once. */
  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    let p = this.entries.get(key) as Promise<T> | undefined
    if (p === undefined) {
      p = load()
      this.entries.set(key, p)
      p.catch(() => this.entries.delete(key))
    }
    return p
  }
}

export const DEFAULT_MICROVERSION = '2.79'

/** The highest Nova microversion the modules read and write (2.100, 2025.1 Epoxy). */
export const MAX_MICROVERSION = '2.100'

/** A microversion as a comparable number: 2.79 -> 20079. */
export function microversionNumber(v: string): number {
  const m = /^(\d+)\.(\d+)$/.exec(v.trim())
  return m === null ? Number.NaN : Number(m[1]) * 10000 + Number(m[2])
}

/**
 * The microversion to use: the highest both sides support, from Nova's version document
 * (`version` is its maximum, `min_version` its minimum; both empty on a Nova without
 * microversions, which is 2.1).
 * @example negotiateMicroversion({ version: '2.93', min_version: '2.1' }) // '2.93'
 */
export function negotiateMicroversion(doc: { version?: string; min_version?: string }): string {
  const max = doc.version === undefined || doc.version === '' ? '2.1' : doc.version
  if (microversionNumber(max) >= microversionNumber(MAX_MICROVERSION)) return MAX_MICROVERSION
  const min = doc.min_version === undefined || doc.min_version === '' ? '2.1' : doc.min_version
  if (microversionNumber(max) < microversionNumber(min) || Number.isNaN(microversionNumber(max)))
    throw new RunbookError('E_API', `Nova's version document gives no usable microversion (${max})`)
  return max
}

const versionDoc = z.object({
  version: z.object({ version: z.string().optional(), min_version: z.string().optional() }),
})

/** How long a shared read (`sharedRead`) is answered from memory at most. */
const READ_TTL_MS = 60_000

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'])

/** Serialises a query, repeating keys for arrays. */
export function queryString(q: Query | undefined): string {
  if (q === undefined) return ''
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v as readonly string[]) p.append(k, x)
    else p.append(k, String(v))
  }
  const s = p.toString()
  return s === '' ? '' : `?${s}`
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RunbookError('E_API', 'interrupted'))
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(new RunbookError('E_API', 'interrupted'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** The NODE_EXTRA_CA_CERTS file that cli/runbook kept from node's start, read once. */
let deferredCa: { file: string; certs: string[] | undefined } | undefined

/**
 * The CAs node would have trusted had it read NODE_EXTRA_CA_CERTS as it started: its own roots and
 * that file's. cli/runbook (the launcher) hands the variable over so that a run that makes no HTTPS
 * request does not parse the bundle; undefined when it did not (node's own store then holds them).
 * A file that cannot be read is ignored with a warning, as node ignores it.
 */
export function deferredCaCerts(): string[] | undefined {
  const file = (globalThis as { __runbookDeferredCaCerts?: string }).__runbookDeferredCaCerts
  if (file === undefined || file === '') return undefined
  if (deferredCa?.file !== file) {
    let certs: string[] | undefined
    try {
      certs = [...rootCertificates, readFileSync(file, 'utf8')]
    } catch (e) {
      process.emitWarning(
        `Ignoring extra certs from \`${file}\`, load failed: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
    deferredCa = { file, certs }
  }
  return deferredCa.certs
}

/**
 * A client for one cloud.
 * @example
 * const c = new OpenStackClient(resolveCloud({ cloud: 'lab', env: ctx.env }), { secret: ctx.secret })
 * const ports = await c.list('network', '/ports', 'ports', { query: { name: 'kld-vip' } })
 */
export class OpenStackClient {
  readonly stats: ClientStats = {
    auths: 0,
    requests: 0,
    retries: 0,
    byService: { identity: 0, compute: 0, network: 0, image: 0 },
  }
  /** The microversion asked for in the configuration (`compute_api_version`), if any. */
  readonly requestedMicroversion: string | undefined
  private readonly httpConfig: CreateAxiosDefaults
  private readonly secrets = new Set<string>()
  private readonly reads = new Map<string, { value: Promise<unknown>; until: number }>()
  /** What changes as the client works, in one object that every task's view shares. */
  private readonly state: {
    negotiated?: Promise<string> | undefined
    http?: Promise<AxiosInstance> | undefined
    current?: Token | undefined
    authing?: Promise<Token> | undefined
  } = {}
  /** The task this view works for: its requests count in its timings, its retries on its line. */
  private readonly scope: WaitScope = {}
  private readonly opts: Required<
    Omit<ClientOptions, 'secret' | 'signal' | 'microversion' | 'onRetry'>
  > &
    Pick<ClientOptions, 'secret' | 'signal' | 'onRetry'>

  constructor(
    readonly config: CloudConfig,
    options: ClientOptions = {},
  ) {
    this.opts = {
      retries: options.retries ?? 4,
      backoffMs: options.backoffMs ?? 300,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      timeoutMs: options.timeoutMs ?? 60_000,
      slowNoticeMs: options.slowNoticeMs ?? 2000,
      tokenMarginMs: options.tokenMarginMs ?? 120_000,
      trace: options.trace ?? false,
      secret: options.secret,
      signal: options.signal,
      onRetry: options.onRetry,
    }
    this.requestedMicroversion = options.microversion ?? config.computeApiVersion
    for (const s of cloudSecrets(config)) this.addSecret(s)
    const ca = config.cacert === undefined ? deferredCaCerts() : readFileSync(config.cacert)
    this.httpConfig = {
      httpAgent: new http.Agent({ keepAlive: true }),
      httpsAgent: new https.Agent({
        keepAlive: true,
        rejectUnauthorized: config.verify,
        ...(ca ? { ca } : {}),
      }),
      timeout: this.opts.timeoutMs,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      maxRedirects: 0,
    }
  }

  private addSecret(value: string): void {
    if (value === '' || this.secrets.has(value)) return
    this.secrets.add(value)
    this.opts.secret?.(value)
  }

  /** Text with every secret this client knows replaced by `***`. */
  scrub(text: string): string {
    let out = text
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join('***')
    return out
  }

  /**
   * This client as one task uses it: the same token, connections, caches and counters; the
   * task's requests count in its timings and its waits and retries are said on its live line.
   * @example const c = client.forTask({ timings: ctx.timings, progress: ctx.progress })
   */
  forTask(scope: WaitScope): OpenStackClient {
    return Object.create(this, { scope: { value: scope } }) as OpenStackClient
  }

  /** Tells of a retry: the option's callback, else the waiting task's live line. */
  private retried(r: RetryNotice): void {
    if (this.opts.onRetry) this.opts.onRetry(r)
    else this.scope.progress?.(retryText(r))
  }

  /** The token, authenticating when there is none or it is about to expire. */
  async token(): Promise<Token> {
    const t = this.state.current
    if (t !== undefined && t.expiresAt - this.opts.tokenMarginMs > Date.now()) return t
    if (this.state.authing === undefined) {
      this.state.authing = this.authenticate().finally(() => {
        this.state.authing = undefined
      })
    }
    return this.state.authing
  }

  private async authenticate(): Promise<Token> {
    const url = `${versionedEndpoint('identity', this.config.endpointOverrides.identity ?? this.config.auth.auth_url)}/auth/tokens`
    this.stats.auths++
    const res = await this.send(
      'identity',
      'POST',
      url,
      { body: authBody(this.config), idempotent: true },
      undefined,
    )
    if (res.status !== 201 && res.status !== 200) {
      throw this.error('identity', 'POST', url, res, { hint: this.authHint(res.status) })
    }
    const token = parseToken(res.headers['x-subject-token'], this.json(res.data))
    this.addSecret(token.value)
    this.state.current = token
    return token
  }

  /** What to do when Keystone refuses the credentials. */
  private authHint(status: number): string | undefined {
    const where = `cloud '${this.config.name}' (${this.config.source})`
    const a = this.config.auth
    if (this.config.authType === 'v3applicationcredential') {
      const cred = a.application_credential_id ?? a.application_credential_name ?? ''
      // Keystone answers 404 for an id it no longer has, 401 for a name or secret it refuses.
      if (status === 404 || status === 401)
        return `the application credential ${cred} of ${where} was deleted, has expired or its secret is wrong: make a new one (openstack application credential create) and put its id and secret there`
    }
    return status === 401 ? `check the credentials of ${where}` : undefined
  }

  /**
   * A read shared by the tasks of a run (a server by name, a server's ports, the project's security
   * groups): made once, then answered from memory until this client writes anything (a request
   * other than GET and the read-only POSTs) or `READ_TTL_MS` passes. Polling never goes through it.
   * @example const servers = await client.sharedRead(`servers:${name}`, () => client.list(...))
   */
  sharedRead<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.reads.get(key)
    if (hit !== undefined && hit.until > Date.now()) return hit.value as Promise<T>
    const value = load()
    const entry = { value, until: Date.now() + READ_TTL_MS }
    this.reads.set(key, entry)
    value.catch(() => {
      if (this.reads.get(key) === entry) this.reads.delete(key)
    })
    return value
  }

  /** The project the token is scoped to. */
  async projectId(): Promise<string> {
    const t = await this.token()
    if (t.projectId === undefined)
      throw new RunbookError(
        'E_API',
        `cloud '${this.config.name}': the token is not scoped to a project`,
        { hint: 'set auth.project_name or auth.project_id' },
      )
    return t.projectId
  }

  /** A service's base URL (versioned), from an override or the catalog. */
  async endpoint(service: ServiceType): Promise<string> {
    const override = this.config.endpointOverrides[service]
    if (override !== undefined) return versionedEndpoint(service, override)
    const t = await this.token()
    return versionedEndpoint(
      service,
      selectEndpoint(t.catalog, service, {
        interface: this.config.interface,
        region: this.config.regionName,
      }),
    )
  }

  /**
   * The Nova microversion of this client's requests: the one configured (`compute_api_version`,
   * as the CLI takes it), else the highest that Nova's version document and the modules both
   * support (read once per client).
   */
  computeMicroversion(): Promise<string> {
    if (this.requestedMicroversion !== undefined) return Promise.resolve(this.requestedMicroversion)
    this.state.negotiated ??= (async () => {
      // The version document is the endpoint itself without a project id (`.../v2.1`).
      const base = (await this.endpoint('compute')).replace(/(\/v2(?:\.1)?)\/[^/]+\/?$/, '$1')
      const doc = await this.get('compute', base, versionDoc, { noMicroversion: true })
      return negotiateMicroversion(doc.version)
    })()
    this.state.negotiated.catch(() => (this.state.negotiated = undefined))
    return this.state.negotiated
  }

  /** Whether this client's Nova requests are at `v` or later (a feature gate: `atLeast('2.52')`). */
  async atLeast(v: string): Promise<boolean> {
    return microversionNumber(await this.computeMicroversion()) >= microversionNumber(v)
  }

  /**
   * One request to a service; `path` is below the service's versioned endpoint (or an absolute URL
   * from a pagination link). Errors (non-2xx outside `accept`) throw OpenStackApiError.
   */
  async request(
    service: ServiceType,
    method: string,
    path: string,
    o: RequestOptions = {},
  ): Promise<ApiResponse> {
    if (method !== 'GET' && method !== 'HEAD' && o.idempotent !== true) this.reads.clear()
    const base = await this.endpoint(service)
    if (service === 'compute' && o.noMicroversion !== true) {
      const mv = await this.computeMicroversion()
      o = {
        ...o,
        headers: {
          'OpenStack-API-Version': `compute ${mv}`,
          'X-OpenStack-Nova-API-Version': mv,
          ...o.headers,
        },
      }
    }
    const url = /^https?:\/\//.test(path)
      ? this.rebase(base, path)
      : `${base}${path}${queryString(o.query)}`
    let token = await this.token()
    let res: SentResponse = await this.send(service, method, url, o, token.value)
    if (res.status === 401) {
      // The token may have been revoked or the clock skewed: authenticate once more, then give up.
      if (this.state.current?.value === token.value) this.state.current = undefined
      token = await this.token()
      res = await this.send(service, method, url, o, token.value)
    }
    if ((res.status >= 200 && res.status < 300) || o.accept?.includes(res.status)) return res
    throw this.error(service, method, url, res)
  }

  /** GET, parsed. */
  async get<T>(
    service: ServiceType,
    path: string,
    schema: z.ZodType<T>,
    o: RequestOptions = {},
  ): Promise<T> {
    const res = await this.request(service, 'GET', path, o)
    return this.parse(service, 'GET', path, schema, res.data)
  }

  /** GET that answers undefined for a 404. */
  async find<T>(
    service: ServiceType,
    path: string,
    schema: z.ZodType<T>,
    o: RequestOptions = {},
  ): Promise<T | undefined> {
    const res = await this.request(service, 'GET', path, { ...o, accept: [404] })
    return res.status === 404 ? undefined : this.parse(service, 'GET', path, schema, res.data)
  }

  /** POST with a JSON body, the answer parsed. */
  async post<T>(
    service: ServiceType,
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    o: RequestOptions = {},
  ): Promise<T> {
    const res = await this.request(service, 'POST', path, { ...o, body })
    return this.parse(service, 'POST', path, schema, res.data)
  }

  /** PUT with a JSON body, the answer parsed. */
  async put<T>(
    service: ServiceType,
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    o: RequestOptions = {},
  ): Promise<T> {
    const res = await this.request(service, 'PUT', path, { ...o, body })
    return this.parse(service, 'PUT', path, schema, res.data)
  }

  /** DELETE; a 404 counts as done (answers false). */
  async delete(service: ServiceType, path: string, o: RequestOptions = {}): Promise<boolean> {
    const res = await this.request(service, 'DELETE', path, { ...o, accept: [404] })
    return res.status !== 404
  }

  /**
   * Every item of a collection, following `<key>_links` (Nova, Neutron) or `next` (Glance), or
   * limit+marker when the service gives no links.
   */
  async list<T>(
    service: ServiceType,
    path: string,
    key: string,
    schema: z.ZodType<T>,
    o: { query?: Query; limit?: number } = {},
  ): Promise<T[]> {
    const base = await this.endpoint(service)
    const query: Query = { ...o.query, ...(o.limit === undefined ? {} : { limit: o.limit }) }
    const out: T[] = []
    const seen = new Set<string>()
    let next: string | undefined = `${base}${path}${queryString(query)}`
    while (next !== undefined) {
      if (seen.has(next) || seen.size > 1000)
        throw new RunbookError(
          'E_API',
          `${SERVICE_NAMES[service]}: pagination of ${path} does not end (${next})`,
        )
      seen.add(next)
      const res = await this.request(service, 'GET', next)
      const data = this.json(res.data)
      const page =
        data !== null && typeof data === 'object'
          ? (data as Record<string, unknown>)[key]
          : undefined
      if (!Array.isArray(page))
        throw new RunbookError(
          'E_API',
          `${SERVICE_NAMES[service]}: GET ${path} answered without a '${key}' list`,
        )
      for (const item of page) out.push(this.parse(service, 'GET', path, schema, item))
      next = this.nextPage(base, data as Record<string, unknown>, key)
      if (
        next === undefined &&
        o.limit !== undefined &&
        page.length >= o.limit &&
        !(`${key}_links` in (data as object)) &&
        !('next' in (data as object))
      ) {
        const last = page[page.length - 1] as { id?: unknown; name?: unknown } | undefined
        const marker =
          typeof last?.id === 'string'
            ? last.id
            : typeof last?.name === 'string'
              ? last.name
              : undefined
        if (marker !== undefined) next = `${base}${path}${queryString({ ...query, marker })}`
      }
    }
    return out
  }

  /**
   * A POST that is never repeated blindly: when it may have been carried out (no answer, a 5xx),
   * `lookup` decides: the resource found is the answer; only when it is not found is the POST sent
   * again.
   */
  async createResolved<T>(
    post: () => Promise<T>,
    lookup: () => Promise<T | undefined>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await post()
      } catch (e) {
        if (!(e instanceof OpenStackApiError) || !e.ambiguous) throw e
        if (attempt >= this.opts.retries) {
          e.message = `${e.message}; gave up after ${attempt + 1} creates, each looked up before the next`
          throw e
        }
        const found = await lookup()
        if (found !== undefined) return found
        this.stats.retries++
        const delayMs = this.delay(attempt)
        this.retried({
          service: e.service,
          method: e.method,
          path: e.path,
          attempt: attempt + 2,
          of: this.opts.retries + 1,
          reason: `${e.status === 0 ? 'no answer' : e.status} (not created: looked up)`,
          delayMs,
        })
        await sleep(delayMs, this.opts.signal)
      }
    }
  }

  /** Parses a body with a schema; a mismatch is the API's fault, said so. */
  parse<T>(
    service: ServiceType,
    method: string,
    path: string,
    schema: z.ZodType<T>,
    data: unknown,
  ): T {
    const r = schema.safeParse(this.json(data))
    if (r.success) return r.data
    const issue = r.error.issues[0]
    throw new RunbookError(
      'E_API',
      `${SERVICE_NAMES[service]}: unexpected answer to ${method} ${path.replace(/^https?:\/\/[^/]+/, '')}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`,
    )
  }

  private json(data: unknown): unknown {
    if (typeof data !== 'string') return data
    if (data === '') return {}
    try {
      return JSON.parse(data) as unknown
    } catch {
      return data
    }
  }

  private nextPage(base: string, data: Record<string, unknown>, key: string): string | undefined {
    const links = data[`${key}_links`]
    if (Array.isArray(links)) {
      const next = links.find(
        (l): l is { rel: string; href: string } =>
          typeof l === 'object' &&
          l !== null &&
          (l as { rel?: unknown }).rel === 'next' &&
          typeof (l as { href?: unknown }).href === 'string',
      )
      return next === undefined ? undefined : this.rebase(base, next.href)
    }
    const glance = data['next']
    if (typeof glance === 'string' && glance !== '') return this.rebase(base, glance)
    return undefined
  }

  /**
   * A link from the API, put on our endpoint: services behind proxies build links with their own
   * host, and Glance's `next` is relative (`/v2/images?marker=...`).
   */
  private rebase(base: string, href: string): string {
    if (href.startsWith(base)) return href
    const root = /^(.*?\/v\d+(?:\.\d+)?)(?:\/.*)?$/.exec(base)?.[1]
    const u = new URL(href, base)
    if (root === undefined) return u.toString()
    const version = /\/v\d+(?:\.\d+)?$/.exec(root)?.[0] ?? ''
    const at = u.pathname.indexOf(`${version}/`)
    return at < 0 ? u.toString() : `${root}${u.pathname.slice(at + version.length)}${u.search}`
  }

  private delay(attempt: number, retryAfter?: string): number {
    const ra = retryAfter === undefined ? NaN : Number(retryAfter)
    if (Number.isFinite(ra) && ra >= 0) return Math.min(ra * 1000, 30_000)
    const d = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** attempt)
    return Math.round(d * (0.5 + Math.random() / 2))
  }

  /** Sends with retries; answers any HTTP status; throws only when no answer came. */
  private async send(
    service: ServiceType,
    method: string,
    url: string,
    o: RequestOptions,
    token: string | undefined,
  ): Promise<SentResponse> {
    const safe = IDEMPOTENT.has(method) || o.idempotent === true
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'User-Agent': 'runbook-openstack/0.1',
      ...o.headers,
    }
    if (token !== undefined) headers['X-Auth-Token'] = token
    if (o.body !== undefined) headers['Content-Type'] = 'application/json'
    const http = await (this.state.http ??= createAxios(this.httpConfig))
    for (let attempt = 0; ; attempt++) {
      this.stats.requests++
      this.stats.byService[service]++
      let res: AxiosResponse<unknown>
      // a slow answer is visible while it is awaited, not only its give-up
      const slow = setTimeout(
        () =>
          this.scope.progress?.(
            `waiting for ${SERVICE_NAMES[service]} to answer ${method} ${this.displayPath(url)} (gives up after ${Math.round(this.opts.timeoutMs / 1000)} s)`,
          ),
        this.opts.slowNoticeMs,
      )
      const sent = performance.now()
      try {
        res = await measure(this.scope.timings, 'api', () =>
          http.request({
            method,
            url,
            headers,
            data: o.body === undefined ? undefined : JSON.stringify(o.body),
            signal: this.opts.signal,
          }),
        )
      } catch (e) {
        clearTimeout(slow)
        const code = (e as { code?: string }).code ?? ''
        const notSent = NOT_SENT.has(code)
        if (this.opts.signal?.aborted) throw new RunbookError('E_API', 'interrupted')
        if ((safe || notSent) && attempt < this.opts.retries) {
          this.stats.retries++
          await this.backoff({ service, method, url, attempt, reason: errorReason(code) })
          continue
        }
        throw new OpenStackApiError({
          service,
          method,
          path: this.displayPath(url),
          status: 0,
          fault: { message: this.scrub(`${code || 'error'} ${(e as Error).message}`.trim()) },
          ambiguous: !notSent && !safe,
          attempts: attempt + 1,
          hint: !notSent && !safe ? 'the request may have been carried out' : undefined,
        })
      }
      clearTimeout(slow)
      const status = res.status
      if (this.opts.trace)
        process.stderr.write(
          `api ${method} ${this.displayPath(url)} ${status} ${Math.round(performance.now() - sent)} ms\n`,
        )
      const retryable = status === 429 || (status >= 500 && status !== 501)
      if (retryable && (safe || status === 429) && attempt < this.opts.retries) {
        this.stats.retries++
        const retryAfter = this.header(res, 'retry-after')
        await this.backoff({ service, method, url, attempt, reason: String(status), retryAfter })
        continue
      }
      const out: SentResponse = {
        ...(retryable ? { attempts: attempt + 1 } : {}),
        status,
        data: res.data,
        headers: Object.fromEntries(
          Object.entries(res.headers).map(([k, v]) => [k.toLowerCase(), String(v)]),
        ),
      }
      // A 5xx to a POST: it may have been carried out before the failure.
      if (retryable && !safe && status !== 429) out.ambiguous = true
      return out
    }
  }

  /** Says the retry (live line, `-v`), then waits its backoff. */
  private async backoff(r: {
    service: ServiceType
    method: string
    url: string
    attempt: number
    reason: string
    retryAfter?: string | undefined
  }): Promise<void> {
    const delayMs = this.delay(r.attempt, r.retryAfter)
    this.retried({
      service: r.service,
      method: r.method,
      path: this.displayPath(r.url),
      attempt: r.attempt + 2,
      of: this.opts.retries + 1,
      reason: r.reason,
      delayMs,
    })
    await sleep(delayMs, this.opts.signal)
  }

  private header(res: AxiosResponse<unknown>, name: string): string | undefined {
    const v = (res.headers as Record<string, unknown>)[name]
    return typeof v === 'string' ? v : undefined
  }

  private displayPath(url: string): string {
    try {
      const u = new URL(url)
      return `${u.pathname}${u.search}`
    } catch {
      return url
    }
  }

  private error(
    service: ServiceType,
    method: string,
    url: string,
    res: SentResponse,
    extra: { hint?: string | undefined } = {},
  ): OpenStackApiError {
    const fault = parseFault(this.json(res.data), `HTTP ${res.status}`)
    return new OpenStackApiError({
      service,
      method,
      path: this.displayPath(url),
      status: res.status,
      fault: { type: fault.type, message: this.scrub(fault.message) },
      ambiguous: res.ambiguous === true,
      attempts: res.attempts,
      hint:
        extra.hint ??
        (res.ambiguous === true ? 'the request may have been carried out' : undefined),
    })
  }
}
