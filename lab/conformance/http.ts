import { Agent } from 'node:http'
import axios from 'axios'

// uwsgi's http-socket closes a connection after each response; a reused keep-alive socket would
// then fail with ECONNRESET, so every request gets its own connection.
const agent = new Agent({ keepAlive: false })

/** What the conformance harness keeps of one HTTP exchange. */
export interface HttpResponse {
  status: number
  headers: Record<string, string>
  body: unknown
}

/** One request: JSON in, JSON (or text) out; a status is never an exception here. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD'
  url: string
  token?: string
  body?: unknown
  /** Extra headers (`X-Subject-Token`). */
  headers?: Record<string, string>
}

/**
 * Send one request and return status, lower-cased headers and the parsed body.
 * @example await send({ method: 'GET', url: 'http://127.0.0.1:9696/v2.0/networks', token })
 */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (req.token !== undefined) headers['X-Auth-Token'] = req.token
  if (req.body !== undefined) headers['Content-Type'] = 'application/json'
  Object.assign(headers, req.headers)
  const res = await axios.request({
    method: req.method,
    url: req.url,
    headers,
    data: req.body === undefined ? undefined : JSON.stringify(req.body),
    // Status codes are the data under test, not failures.
    validateStatus: () => true,
    responseType: 'text',
    transformResponse: (x: unknown) => x,
    timeout: 60_000,
    proxy: false,
    httpAgent: agent,
  })
  const flat: Record<string, string> = {}
  for (const [k, v] of Object.entries(res.headers as Record<string, unknown>)) {
    if (typeof v === 'string') flat[k.toLowerCase()] = v
    else if (Array.isArray(v)) flat[k.toLowerCase()] = v.join(', ')
  }
  return { status: res.status, headers: flat, body: parseBody(res.data) }
}

function parseBody(data: unknown): unknown {
  if (typeof data !== 'string' || data === '') return null
  try {
    return JSON.parse(data) as unknown
  } catch {
    return data
  }
}

/** Narrow an unknown value to a plain object (or an empty one). */
export function obj(x: unknown): Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x)
    ? (x as Record<string, unknown>)
    : {}
}

/** Narrow an unknown value to an array (or an empty one). */
export function arr(x: unknown): unknown[] {
  return Array.isArray(x) ? x : []
}

/** Read a string field, or undefined. */
export function str(x: unknown, key: string): string | undefined {
  const v = obj(x)[key]
  return typeof v === 'string' ? v : undefined
}
