/**
 * OpenStack's error envelopes, read into one error type: the service, the request, the status and
 * the API's own words. Keystone `{"error": {code, title, message}}`, Nova `{"itemNotFound":
 * {code, message}}`, Neutron `{"NeutronError": {type, message, detail}}`, Glance (webob)
 * `{code, title, message}` or HTML, keystonemiddleware's 401 in Keystone's shape.
 */
import { RunbookError } from '../../../engine/errors.ts'

/** The services the client speaks to, by catalog type. */
export type ServiceType = 'identity' | 'compute' | 'network' | 'image'

/** How the services call themselves in messages. */
export const SERVICE_NAMES: Record<ServiceType, string> = {
  identity: 'Keystone',
  compute: 'Nova',
  network: 'Neutron',
  image: 'Glance',
}

/** What the API said, as far as the envelope tells. */
export interface ApiFault {
  /** The API's error type: Neutron's `type`, Nova's fault key, Keystone's `title`. */
  type?: string | undefined
  message: string
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  x !== null && typeof x === 'object' && !Array.isArray(x)
const text = (x: unknown): string | undefined =>
  typeof x === 'string' && x.trim() !== '' ? x.trim() : undefined

/**
 * The fault in a response body, whatever the service's envelope.
 * @example parseFault({ NeutronError: { type: 'PortNotFound', message: 'Port x could not be found.', detail: '' } })
 */
export function parseFault(body: unknown, statusText = ''): ApiFault {
  if (typeof body === 'string') {
    const trimmed = body.trim()
    if (trimmed.startsWith('{')) {
      try {
        return parseFault(JSON.parse(trimmed) as unknown, statusText)
      } catch {
        // not JSON after all: fall through to plain text
      }
    }
    const plain = trimmed
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
    return { message: plain.slice(0, 300) || statusText || 'no message' }
  }
  if (!isObject(body)) return { message: statusText || 'no message' }
  const neutron = body['NeutronError']
  if (isObject(neutron)) {
    const detail = text(neutron['detail'])
    return {
      type: text(neutron['type']),
      message: `${text(neutron['message']) ?? statusText}${detail ? ` (${detail})` : ''}`,
    }
  }
  if (typeof neutron === 'string') return { message: neutron }
  const err = body['error']
  if (isObject(err))
    return { type: text(err['title']), message: text(err['message']) ?? statusText }
  if (typeof err === 'string') return { message: err }
  if (text(body['message']) !== undefined)
    return { type: text(body['title']), message: text(body['message']) ?? '' }
  // Nova: a single key naming the fault.
  const keys = Object.keys(body)
  if (keys.length === 1) {
    const key = keys[0] as string
    const inner = body[key]
    if (isObject(inner) && text(inner['message']) !== undefined)
      return { type: key, message: text(inner['message']) ?? '' }
  }
  if (text(body['faultstring']) !== undefined) return { message: text(body['faultstring']) ?? '' }
  return { message: statusText || JSON.stringify(body).slice(0, 300) }
}

/** Where an API error happened. */
export interface ApiErrorInfo {
  service: ServiceType
  method: string
  /** Path below the service's endpoint, with the query. */
  path: string
  /** HTTP status; 0 when no response came (connection refused, reset, timeout). */
  status: number
  fault: ApiFault
  /** The request may have been carried out although no answer says so (a POST that timed out). */
  ambiguous?: boolean
  /** Attempts made before giving up (said in the message when the error is a give-up). */
  attempts?: number | undefined
  hint?: string | undefined
  cause?: unknown
}

/** "after 5 attempts", or "" when no count is known. */
export function attemptsText(n: number | undefined): string {
  return n === undefined ? '' : ` after ${n} attempt${n === 1 ? '' : 's'}`
}

/**
 * An error from an OpenStack API: code E_API, a message that names the service, status, the API's
 * error type and message, and the request (`Neutron 409 IpAddressAlreadyAllocated: IP address
 * 192.0.2.254 already allocated in subnet ... (POST /v2.0/ports)`).
 */
export class OpenStackApiError extends RunbookError {
  readonly service: ServiceType
  readonly method: string
  readonly path: string
  readonly status: number
  readonly faultType: string | undefined
  readonly apiMessage: string
  readonly ambiguous: boolean
  readonly attempts: number | undefined

  constructor(info: ApiErrorInfo) {
    const what =
      info.status === 0
        ? `${SERVICE_NAMES[info.service]} unreachable`
        : `${SERVICE_NAMES[info.service]} ${info.status}${info.fault.type ? ` ${info.fault.type}` : ''}`
    const gaveUp = attemptsText(info.attempts)
    super('E_API', `${what}: ${info.fault.message} (${info.method} ${info.path})${gaveUp}`, {
      hint: info.hint,
      cause: info.cause,
    })
    this.name = 'OpenStackApiError'
    this.service = info.service
    this.method = info.method
    this.path = info.path
    this.status = info.status
    this.faultType = info.fault.type
    this.apiMessage = info.fault.message
    this.ambiguous = info.ambiguous === true
    this.attempts = info.attempts
  }
}

/** Whether an error is the API saying "not found". */
export function isNotFound(e: unknown): boolean {
  return e instanceof OpenStackApiError && e.status === 404
}
