/**
 * An HTTP proxy between the tool and the lab's API that fails a share of requests on purpose, as a
 * load balancer in front of a sick cloud does: a 503 without reaching the service, a connection
 * reset before the request is sent on, a reset after the service carried it out (the answer is
 * lost: the case that makes duplicates), and a delay. The service's own URLs in answers (Keystone's
 * catalog, pagination links) are rewritten to the proxy's, so every request passes through it.
 */
import {
  createServer,
  request,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'

/** A fault the proxy injects. */
export type Fault = '503' | 'reset-before' | 'reset-after' | 'delay'

/** How the proxy misbehaves. */
export interface FaultProxyOptions {
  /** The service's origin, `http://127.0.0.1:8780`. */
  target: string
  /** Share of requests that get a fault (0..1). */
  share: number
  faults?: readonly Fault[]
  delayMs?: number
  /** Deterministic choices for a test (default Math.random). */
  random?: () => number
  /** Only requests this accepts may get a fault (default: every request). */
  match?: (method: string, url: string) => boolean
}

/** A running proxy and what it did. */
export interface FaultProxy {
  url: string
  stats: { requests: number; injected: Record<Fault, number> }
  /** Faults off or on (a check that reads the cloud through the proxy). */
  enabled: boolean
  close(): Promise<void>
}

const ALL: readonly Fault[] = ['503', 'reset-before', 'reset-after', 'delay']

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    req.on('data', (b: Buffer) => parts.push(b))
    req.on('end', () => resolve(Buffer.concat(parts)))
    req.on('error', reject)
  })
}

/** Sends the request on; answers status, headers and body with the target's URLs made ours. */
function forward(
  o: FaultProxyOptions,
  own: string,
  req: IncomingMessage,
  body: Buffer,
): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const out = request(
      `${o.target}${req.url ?? '/'}`,
      { method: req.method, headers: { ...req.headers, host: new URL(o.target).host } },
      (res) => {
        void readBody(res).then((b) => {
          const text = b.toString('utf8').split(o.target).join(own)
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined && k !== 'content-length' && k !== 'transfer-encoding')
              headers[k] = (Array.isArray(v) ? v.join(', ') : v).split(o.target).join(own)
          resolve({ status: res.statusCode ?? 502, headers, body: Buffer.from(text, 'utf8') })
        }, reject)
      },
    )
    out.on('error', reject)
    out.end(body)
  })
}

/**
 * Starts the proxy on a free port of 127.0.0.1.
 * @example const proxy = await startFaultProxy({ target: lab.url, share: 0.3 })
 */
export async function startFaultProxy(o: FaultProxyOptions): Promise<FaultProxy> {
  const faults = o.faults ?? ALL
  const random = o.random ?? Math.random
  const stats: FaultProxy['stats'] = {
    requests: 0,
    injected: { '503': 0, 'reset-before': 0, 'reset-after': 0, delay: 0 },
  }
  let own = ''
  const state = { enabled: true }
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++
    const body = await readBody(req)
    const fault =
      state.enabled && (o.match?.(req.method ?? '', req.url ?? '') ?? true) && random() < o.share
        ? faults[Math.floor(random() * faults.length)]
        : undefined
    if (fault !== undefined) stats.injected[fault]++
    if (fault === '503') {
      // as HAProxy answers when no backend is up: HTML, not the service's JSON
      res.writeHead(503, { 'Content-Type': 'text/html' })
      res.end('<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>')
      return
    }
    if (fault === 'reset-before') {
      req.socket.destroy()
      return
    }
    if (fault === 'delay') await new Promise((r) => setTimeout(r, o.delayMs ?? 1000))
    const answer = await forward(o, own, req, body)
    if (fault === 'reset-after') {
      req.socket.destroy()
      return
    }
    res.writeHead(answer.status, answer.headers)
    res.end(answer.body)
  }
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  own = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url: own,
    stats,
    get enabled() {
      return state.enabled
    },
    set enabled(v: boolean) {
      state.enabled = v
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}
