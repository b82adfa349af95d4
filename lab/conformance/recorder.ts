import { obj, send } from './http.ts'
import type { HttpRequest, HttpResponse } from './http.ts'
import { shapeOf } from './shape.ts'
import type { Shape } from './shape.ts'

/** A value the sequence checks as well as the shape: a count, a status, a link relation set. */
export type Fact = string | number | boolean | null

/** What one step of the sequence yielded on one cloud. */
export interface StepRecord {
  /** Stable id, the key of comparisons and of known differences (`neutron.port.create-fixed-ip`). */
  id: string
  /** Method and templated path, for reports (`PUT /v2.0/ports/{port}`). */
  request: string
  /** HTTP status; 0 when the request did not get an answer at all. */
  status: number
  /** Neutron's `NeutronError.type` or Keystone's `error.title`; null on success or no envelope. */
  errorType: string | null
  shape: Shape
  /** Values that must match too (they do not depend on ids, times or allocation order). */
  facts: Record<string, Fact>
  /** How long the request took (reported, never compared). */
  ms: number
}

/** One exchange as kept for golden files (the body parsed, headers lower-cased). */
export interface Exchange {
  request: { method: string; path: string; body?: unknown }
  status: number
  headers: Record<string, string>
  body: unknown
}

/** The outcome of the whole sequence on one cloud. */
export interface SequenceResult {
  target: string
  startedAt: string
  durationMs: number
  steps: StepRecord[]
  /** Raw exchanges by step id (secrets still in; scrub before saving). */
  exchanges: Record<string, Exchange>
}

/**
 * The error type of a response body in either envelope.
 * @example errorTypeOf({ NeutronError: { type: 'PortNotFound' } }) // 'PortNotFound'
 */
export function errorTypeOf(body: unknown): string | null {
  const neutron = obj(obj(body)['NeutronError'])
  if (typeof neutron['type'] === 'string') return neutron['type']
  const keystone = obj(obj(body)['error'])
  if (typeof keystone['title'] === 'string') return keystone['title']
  return null
}

/** Runs requests as named steps and records each one. */
export class Recorder {
  readonly steps: StepRecord[] = []
  readonly exchanges: Record<string, Exchange> = {}

  constructor(private readonly log: (line: string) => void = () => undefined) {}

  /**
   * Send one request as step `id` and record status, error type, shape and `facts(res)`.
   * @example await rec.step('neutron.port.show', 'GET /v2.0/ports/{port}', { method: 'GET', url, token })
   */
  async step(
    id: string,
    label: string,
    req: HttpRequest,
    facts: (res: HttpResponse) => Record<string, Fact> = () => ({}),
  ): Promise<HttpResponse> {
    if (this.steps.some((s) => s.id === id)) throw new Error(`duplicate step id ${id}`)
    let res: HttpResponse
    const t0 = performance.now()
    try {
      res = await send(req)
    } catch (e) {
      res = {
        status: 0,
        headers: {},
        body: { transportError: e instanceof Error ? e.message : String(e) },
      }
    }
    const record: StepRecord = {
      id,
      request: label,
      status: res.status,
      errorType: errorTypeOf(res.body),
      shape: shapeOf(res.body),
      facts: safeFacts(facts, res),
      ms: Math.round(performance.now() - t0),
    }
    this.steps.push(record)
    const path = new URL(req.url).pathname + new URL(req.url).search
    this.exchanges[id] = {
      request:
        req.body === undefined
          ? { method: req.method, path }
          : { method: req.method, path, body: req.body },
      status: res.status,
      headers: res.headers,
      body: res.body,
    }
    this.log(
      `${String(res.status).padEnd(3)} ${String(record.ms).padStart(5)} ms ${id}${record.errorType === null ? '' : ` (${record.errorType})`}`,
    )
    return res
  }
}

function safeFacts(
  facts: (res: HttpResponse) => Record<string, Fact>,
  res: HttpResponse,
): Record<string, Fact> {
  try {
    return facts(res)
  } catch (e) {
    return { factError: e instanceof Error ? e.message : String(e) }
  }
}
