/**
 * The lab API's HTTP server: one port, four services told apart by path (as in devstack), a token
 * check in front of Nova, Neutron and Glance (keystonemiddleware's 401), and every error in the
 * envelope of the service that raised it.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Cloud, errorText } from './cloud.ts'
import type { CloudOptions } from './cloud.ts'
import { restoreServers } from './nova/compute.ts'
import { glancePublicRoutes, glanceRoutes } from './glance/routes.ts'
import {
  ApiError,
  glanceError,
  keystoneError,
  neutronError,
  novaError,
  unauthorized,
} from './http.ts'
import type { Ctx, Reply, Route } from './http.ts'
import { uuid } from './ids.ts'
import { keystoneRoutes } from './keystone/routes.ts'
import { neutronPublicRoutes, neutronRoutes } from './neutron/routes.ts'
import { novaHeaders, novaPublicRoutes, novaRoutes } from './nova/routes.ts'
import { novaRelease } from './nova/versions.ts'
import { OPTIONAL_EXTENSIONS } from './neutron/extensions.ts'
import { seedCloud, writeCloudsYaml } from './seed.ts'

/** How to start the API. */
export interface LabApiOptions extends Omit<CloudOptions, 'endpoint'> {
  /** 0 picks a free port (tests). */
  port: number
  host?: string
  /** Log one line per request (method, path, status, time) through `log`. */
  logRequests?: boolean
  /** Also log request and response bodies. */
  logBodies?: boolean
}

/** A running lab API. */
export interface LabApi {
  /** `http://127.0.0.1:8780` */
  url: string
  port: number
  cloud: Cloud
  /** The clouds.yaml written for this cloud. */
  cloudsYaml: string
  /** Stop listening and wait for background work; the hosts are left as they are. */
  close(): Promise<void>
}

interface Service {
  prefix: string
  open: Route[]
  routes: Route[]
  /** Turn the path below the prefix into the path the routes match (or null: not this service's). */
  rewrite: (rest: string) => string | null
  notFound: () => ApiError
  malformed: () => ApiError
  methodNotAllowed: () => ApiError
  internal: (msg: string) => ApiError
  needsAuth: boolean
  headers?: (ctx: Ctx) => Record<string, string>
}

function services(cloud: Cloud): Service[] {
  return [
    {
      prefix: '/compute',
      open: novaPublicRoutes(cloud),
      routes: novaRoutes(cloud),
      rewrite: (rest) => {
        const m = /^\/v2\.1(?:\/[0-9a-f]{32})?(\/.*)$/.exec(rest)
        return m === null ? null : (m[1] ?? null)
      },
      notFound: () => novaError(404, 'The resource could not be found.'),
      malformed: () => novaError(400, 'Malformed request body'),
      methodNotAllowed: () =>
        novaError(405, 'The method specified is not allowed for this resource.'),
      internal: (msg) => novaError(500, `Unexpected API Error. ${msg}`),
      needsAuth: true,
      headers: novaHeaders(cloud),
    },
    {
      prefix: '/network',
      open: neutronPublicRoutes(),
      routes: neutronRoutes(cloud),
      rewrite: (rest) => rest.replace(/\.json$/, ''),
      notFound: () => neutronError(404, 'HTTPNotFound', 'The resource could not be found.'),
      malformed: () => neutronError(400, 'HTTPBadRequest', 'Malformed request body'),
      methodNotAllowed: () =>
        neutronError(405, 'HTTPMethodNotAllowed', 'The method is not allowed for this resource.'),
      internal: (msg) =>
        neutronError(
          500,
          'HTTPInternalServerError',
          `Request Failed: internal server error while processing your request. ${msg}`,
        ),
      needsAuth: true,
    },
    {
      prefix: '/image',
      open: glancePublicRoutes(),
      routes: glanceRoutes(cloud),
      rewrite: (rest) => rest,
      notFound: () => glanceError(404, 'The resource could not be found.'),
      malformed: () => glanceError(400, 'Malformed request body'),
      methodNotAllowed: () =>
        new ApiError(405, {
          code: '405 Method Not Allowed',
          title: 'Method Not Allowed',
          message: 'The method is not allowed.',
        }),
      internal: (msg) =>
        new ApiError(500, {
          code: '500 Internal Server Error',
          title: 'Internal Server Error',
          message: msg,
        }),
      needsAuth: true,
    },
    {
      prefix: '',
      open: keystoneRoutes(cloud),
      routes: [],
      rewrite: (rest) => rest,
      notFound: () => keystoneError(404, 'The resource could not be found.'),
      malformed: () => keystoneError(400, 'Malformed request body'),
      methodNotAllowed: () =>
        keystoneError(405, 'The method is not allowed for the requested URL.'),
      internal: (msg) =>
        new ApiError(500, { error: { code: 500, title: 'Internal Server Error', message: msg } }),
      needsAuth: false,
    },
  ]
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function match(
  routes: Route[],
  method: string,
  path: string,
): { route: Route; params: string[] } | 'method' | null {
  let pathMatched = false
  for (const route of routes) {
    const m = route.pattern.exec(path)
    if (m === null) continue
    pathMatched = true
    if (
      route.method === method ||
      (method === 'HEAD' &&
        route.method === 'GET' &&
        !routes.some((r) => r.method === 'HEAD' && r.pattern.test(path)))
    ) {
      return { route, params: m.slice(1).map((x) => x ?? '') }
    }
  }
  return pathMatched ? 'method' : null
}

async function dispatch(
  cloud: Cloud,
  all: Service[],
  req: IncomingMessage,
  log: (line: string) => void,
  logBodies: boolean,
): Promise<Reply & { svc: Service }> {
  const url = new URL(req.url ?? '/', 'http://lab')
  const method = (req.method ?? 'GET').toUpperCase()
  const svc = all.find(
    (s) => s.prefix === '' || url.pathname === s.prefix || url.pathname.startsWith(`${s.prefix}/`),
  ) as Service
  const rest = url.pathname.slice(svc.prefix.length)
  const ctx: Ctx = {
    method,
    path: rest,
    fullPath: url.pathname,
    query: url.searchParams,
    headers: req.headers,
    body: undefined,
    baseUrl: `http://${req.headers.host ?? new URL(cloud.endpoint).host}`,
    params: [],
    auth: null,
  }
  try {
    const raw = await readBody(req)
    if (logBodies && raw !== '') log(`  > ${raw.slice(0, 4000)}`)
    if (raw.trim() !== '') {
      try {
        ctx.body = JSON.parse(raw) as unknown
      } catch {
        throw svc.malformed()
      }
    }
    let found = match(svc.open, method, rest)
    if (found === null || found === 'method') {
      const inner = svc.rewrite(rest)
      const authed = inner === null ? null : match(svc.routes, method, inner)
      if (authed !== null && inner !== null) {
        found = authed
        ctx.path = inner
      }
    }
    if (found === null) throw svc.notFound()
    if (found === 'method') throw svc.methodNotAllowed()
    if (svc.needsAuth && !svc.open.includes(found.route)) {
      const token = req.headers['x-auth-token']
      const auth = typeof token === 'string' ? cloud.authenticate(token) : null
      if (auth === null || auth.projectId === null) throw unauthorized(ctx.baseUrl)
      ctx.auth = auth
    }
    ctx.params = found.params
    const reply = await found.route.handler(ctx)
    return { ...reply, headers: { ...(svc.headers?.(ctx) ?? {}), ...(reply.headers ?? {}) }, svc }
  } catch (e) {
    const err = e instanceof ApiError ? e : svc.internal(errorText(e))
    if (!(e instanceof ApiError))
      log(
        `internal error on ${method} ${url.pathname}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      )
    return {
      status: err.status,
      body: err.body,
      headers: { ...(svc.headers?.(ctx) ?? {}), ...err.headers },
      svc,
    }
  }
}

function send(res: ServerResponse, method: string, reply: Reply): string {
  const headers: Record<string, string> = {
    'x-openstack-request-id': `req-${uuid()}`,
    ...(reply.headers ?? {}),
  }
  let text = ''
  if (reply.body !== undefined && reply.status !== 204) {
    text = JSON.stringify(reply.body)
    headers['Content-Type'] = 'application/json'
    headers['Content-Length'] = String(Buffer.byteLength(text))
  } else {
    headers['Content-Length'] = '0'
  }
  res.writeHead(reply.status, headers)
  res.end(method === 'HEAD' ? undefined : text)
  return text
}

/**
 * Start the lab API: load (or create) the state, seed it, bring the hosts up to it, listen.
 * @example const api = await startLabApi({ stateDir, port: 0, driver: createNullDriver() })
 */
export async function startLabApi(opts: LabApiOptions): Promise<LabApi> {
  const host = opts.host ?? '127.0.0.1'
  const log = opts.log ?? (() => undefined)
  let ready: { cloud: Cloud; services: Service[] } | null = null
  const server: Server = createServer((req, res) => {
    const started = Date.now()
    if (ready === null) {
      send(res, 'GET', {
        status: 503,
        body: {
          error: { code: 503, title: 'Service Unavailable', message: 'The lab is starting.' },
        },
      })
      return
    }
    const { cloud, services: all } = ready
    void dispatch(cloud, all, req, log, opts.logBodies === true).then((reply) => {
      const text = send(res, req.method ?? 'GET', reply)
      if (opts.logRequests === true)
        log(`${req.method ?? '?'} ${req.url ?? ''} ${reply.status} ${Date.now() - started}ms`)
      if (opts.logBodies === true && text !== '') log(`  < ${text.slice(0, 4000)}`)
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const url = `http://${host}:${port}`
  const closeServer = () => new Promise<void>((resolve) => server.close(() => resolve()))
  try {
    const cloud = new Cloud({ ...opts, endpoint: url, log })
    log(
      `stands for Nova ${novaRelease(cloud.novaMaxVersion)} (microversions 2.1-${cloud.novaMaxVersion}) and Neutron with ${[...cloud.neutronExtensions].filter((a) => OPTIONAL_EXTENSIONS.includes(a) || a.startsWith('standard-attr-tag')).join(', ') || 'no tag extension'}`,
    )
    seedCloud(cloud)
    await cloud.commit()
    await cloud.initDriver()
    await cloud.syncNetwork()
    const cloudsYaml = await writeCloudsYaml(cloud)
    restoreServers(cloud)
    ready = { cloud, services: services(cloud) }
    return {
      url,
      port,
      cloud,
      cloudsYaml,
      close: async () => {
        server.closeAllConnections()
        await closeServer()
        await cloud.idle()
        await cloud.commit()
      },
    }
  } catch (e) {
    server.closeAllConnections()
    await closeServer()
    throw e
  }
}
