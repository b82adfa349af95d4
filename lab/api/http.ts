/**
 * The lab API's HTTP plumbing: a request context, route tables, and errors that carry the exact
 * envelope of the service that raises them (Keystone, Nova, Neutron, Glance).
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { AuthContext } from './keystone/tokens.ts'

/** One parsed request, as a route handler sees it. */
export interface Ctx {
  method: string
  /** Path below the service prefix (`/v2.0/ports/abc`), without a `.json` suffix. */
  path: string
  /** The original path as requested (for pagination links). */
  fullPath: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown
  /** `http://127.0.0.1:8780`, from the Host header: links point where the client came from. */
  baseUrl: string
  /** Capture groups of the route's pattern. */
  params: string[]
  /** Set for every route of a service that requires a token. */
  auth: AuthContext | null
}

/** What a handler returns. */
export interface Reply {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

/** A route: method, a pattern anchored on the service path, and its handler. */
export interface Route {
  method: string
  pattern: RegExp
  handler: (ctx: Ctx) => Reply | Promise<Reply>
}

/** An error response with the envelope of the service that raised it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`)
  }
}

/**
 * Neutron's envelope: `{"NeutronError": {"type", "message", "detail"}}`.
 * @example throw neutronError(404, 'PortNotFound', `Port ${id} could not be found.`)
 */
export function neutronError(status: number, type: string, message: string, detail = ''): ApiError {
  return new ApiError(status, { NeutronError: { type, message, detail } })
}

/** The `type` of a Neutron error, or null for anything else. */
export function neutronErrorType(e: unknown): string | null {
  if (!(e instanceof ApiError)) return null
  const inner = asObject(asObject(e.body)?.['NeutronError'])
  return typeof inner?.['type'] === 'string' ? inner['type'] : null
}

const NOVA_FAULT_NAMES: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
}

/**
 * Nova's envelope: the key names the fault (`itemNotFound`, `badRequest`, `conflictingRequest`).
 * @example throw novaError(404, `Instance ${id} could not be found.`)
 */
export function novaError(status: number, message: string): ApiError {
  const key = NOVA_FAULT_NAMES[status] ?? 'computeFault'
  return new ApiError(status, { [key]: { code: status, message } })
}

const KEYSTONE_TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
}

/**
 * Keystone's envelope: `{"error": {"code", "title", "message"}}`; a 401 also names the realm.
 * @example throw keystoneError(401, 'The request you have made requires authentication.', base)
 */
export function keystoneError(status: number, message: string, baseUrl?: string): ApiError {
  const headers: Record<string, string> = {}
  if (status === 401 && baseUrl !== undefined)
    headers['WWW-Authenticate'] = `Keystone uri="${baseUrl}"`
  return new ApiError(
    status,
    { error: { code: status, title: KEYSTONE_TITLES[status] ?? 'Error', message } },
    headers,
  )
}

/** The 401 every service answers (keystonemiddleware's) when the token is missing, bad or expired. */
export function unauthorized(baseUrl: string): ApiError {
  return keystoneError(401, 'The request you have made requires authentication.', baseUrl)
}

const GLANCE_TITLES: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
}

/**
 * Glance's JSON error (webob's): `{"code": "404 Not Found", "title": "Not Found", "message": ...}`.
 * @example throw glanceError(404, `No image found with ID ${id}`)
 */
export function glanceError(status: number, message: string): ApiError {
  const title = GLANCE_TITLES[status] ?? 'Error'
  return new ApiError(status, { code: `${status} ${title}`, title, message })
}

/** A JSON reply. */
export function json(status: number, body: unknown, headers?: Record<string, string>): Reply {
  return headers === undefined ? { status, body } : { status, body, headers }
}

/** Narrow an unknown JSON value to a plain object, or null. */
export function asObject(x: unknown): Record<string, unknown> | null {
  return x !== null && typeof x === 'object' && !Array.isArray(x)
    ? (x as Record<string, unknown>)
    : null
}

/** All values of a query parameter (Neutron lets filters repeat). */
export function queryAll(q: URLSearchParams, key: string): string[] {
  return q.getAll(key)
}
