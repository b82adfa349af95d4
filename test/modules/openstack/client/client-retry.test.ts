/**
 * Retries against a tiny real HTTP peer that fails on purpose (503s, dropped connections): GETs
 * and DELETEs are repeated with backoff, a POST never blindly; a POST whose answer is lost is
 * resolved by looking the resource up. Also a peer that is not there at all.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Timings } from '../../../../engine/timings.ts'
import {
  OpenStackClient,
  retryText,
  type RetryNotice,
} from '../../../../modules/openstack/client/client.ts'
import { cloudConfig } from '../../../../modules/openstack/client/config.ts'
import { OpenStackApiError } from '../../../../modules/openstack/client/errors.ts'

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void

describe('client retries against a failing peer', () => {
  let server: Server
  let url = ''
  const seen: string[] = []
  let handler: Handler = (_q, res) => res.end()

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req.on('data', (b: Buffer) => (body += b.toString()))
      req.on('end', () => {
        if (req.url === '/v3/auth/tokens') {
          res.writeHead(201, { 'Content-Type': 'application/json', 'X-Subject-Token': 'tok-123' })
          res.end(
            JSON.stringify({
              token: {
                expires_at: new Date(Date.now() + 3600_000).toISOString(),
                user: { id: 'u' },
                project: { id: 'p', name: 'demo' },
                catalog: [
                  {
                    type: 'network',
                    endpoints: [{ interface: 'public', region_id: 'R', url: `${url}/net` }],
                  },
                ],
              },
            }),
          )
          return
        }
        seen.push(`${req.method ?? ''} ${req.url ?? ''}`)
        handler(req, res, body)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  beforeEach(() => {
    seen.length = 0
    notices.length = 0
  })

  const notices: RetryNotice[] = []
  const client = (retries = 3, onRetry?: (r: RetryNotice) => void): OpenStackClient =>
    new OpenStackClient(
      cloudConfig('fake', 'test', {
        auth: { auth_url: `${url}/v3`, username: 'u', password: 'pw', project_name: 'demo' },
      }),
      {
        retries,
        backoffMs: 5,
        maxBackoffMs: 20,
        ...(onRetry ? { onRetry } : { onRetry: (r: RetryNotice) => notices.push(r) }),
      },
    )
  const neutron503 = (res: ServerResponse): void => {
    res.writeHead(503, { 'Content-Type': 'application/json' })
    res.end(
      JSON.stringify({
        NeutronError: { type: 'ServiceUnavailable', message: 'try later', detail: '' },
      }),
    )
  }

  it('repeats a GET after 503s and answers the 200', async () => {
    let n = 0
    handler = (_q, res) => {
      if (++n <= 2) return neutron503(res)
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"ports": []}')
    }
    const c = client()
    expect(await c.list('network', '/ports', 'ports', z.unknown())).toEqual([])
    expect(seen).toEqual(['GET /net/v2.0/ports', 'GET /net/v2.0/ports', 'GET /net/v2.0/ports'])
    expect(c.stats.retries).toBe(2)
    // each retry is told before its backoff, with the attempt it starts and the most there will be
    expect(notices.map((n) => retryText(n).replace(/in [\d.]+ s$/, 'in N s'))).toEqual([
      'Neutron GET /net/v2.0/ports: retrying (2/4) after 503 in N s',
      'Neutron GET /net/v2.0/ports: retrying (3/4) after 503 in N s',
    ])
  })

  it("tells the waiting task's live line of each retry, and counts its attempts in its timings", async () => {
    let n = 0
    handler = (_q, res) => {
      if (++n <= 1) return neutron503(res)
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"ports": []}')
    }
    const c = new OpenStackClient(
      cloudConfig('fake', 'test', {
        auth: { auth_url: `${url}/v3`, username: 'u', password: 'pw', project_name: 'demo' },
      }),
      { retries: 4, backoffMs: 5, maxBackoffMs: 20 },
    )
    const a: string[] = []
    const b: string[] = []
    const run = new Timings()
    const ta = new Timings(run)
    const tb = new Timings(run)
    // two tasks' views of one client, at the same time: each hears of its own waits only
    await Promise.all([
      c
        .forTask({ timings: ta, progress: (m) => a.push(m) })
        .list('network', '/ports', 'ports', z.unknown()),
      c.forTask({ timings: tb, progress: (m) => b.push(m) }).token(),
    ])
    // the views share one token: one authentication for both
    expect(c.stats.auths).toBe(1)
    // the list's two attempts count for its task; the token's request for the one that made it
    expect(ta.api_requests + tb.api_requests).toBe(3)
    expect(ta.api_requests).toBeGreaterThanOrEqual(2)
    expect(run.api_requests).toBe(3)
    expect(a).toHaveLength(1)
    expect(a[0]).toMatch(
      /^Neutron GET \/net\/v2\.0\/ports: retrying \(2\/5\) after 503 in [\d.]+ s$/,
    )
    expect(b).toEqual([])
  })

  it('gives up after its retries with the last answer', async () => {
    handler = (_q, res) => neutron503(res)
    await expect(client(2).delete('network', '/ports/x')).rejects.toThrow(
      'Neutron 503 ServiceUnavailable: try later (DELETE /net/v2.0/ports/x) after 3 attempts',
    )
    expect(seen).toHaveLength(3)
    expect(notices.map((x) => x.attempt)).toEqual([2, 3])
  })

  it('repeats a GET whose connection was dropped', async () => {
    let n = 0
    handler = (req, res) => {
      if (++n === 1) return req.socket.destroy()
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"ports": [1]}')
    }
    expect(await client().list('network', '/ports', 'ports', z.number())).toEqual([1])
    expect(seen).toHaveLength(2)
    expect(notices.map((x) => `${x.reason} ${x.attempt}/${x.of}`)).toEqual(['ECONNRESET 2/4'])
  })

  it('says on the live line that an answer is slow while it is awaited', async () => {
    handler = (_q, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'application/json' })
        res.end('{"ports": []}')
      }, 300)
    }
    const c = new OpenStackClient(
      cloudConfig('fake', 'test', {
        auth: { auth_url: `${url}/v3`, username: 'u', password: 'pw', project_name: 'demo' },
      }),
      { slowNoticeMs: 100, timeoutMs: 30_000 },
    )
    await c.token()
    const lines: string[] = []
    await c
      .forTask({ progress: (m) => lines.push(m) })
      .list('network', '/ports', 'ports', z.unknown())
    expect(lines).toEqual([
      'waiting for Neutron to answer GET /net/v2.0/ports (gives up after 30 s)',
    ])
  })

  it('names the attempts when a dropped connection outlasts the retries', async () => {
    handler = (req) => req.socket.destroy()
    await expect(client(2).list('network', '/ports', 'ports', z.number())).rejects.toThrow(
      /^Neutron unreachable: ECONNRESET .*\(GET \/net\/v2\.0\/ports\) after 3 attempts$/,
    )
  })

  it('never repeats a POST by itself: a 503 is reported as possibly carried out', async () => {
    handler = (_q, res) => neutron503(res)
    const e = (await client()
      .post('network', '/ports', { port: {} }, z.unknown())
      .catch((x: unknown) => x)) as OpenStackApiError
    expect(e).toBeInstanceOf(OpenStackApiError)
    expect(e.ambiguous).toBe(true)
    expect(e.hint).toMatch(/may have been carried out/)
    expect(e.message).toMatch(/after 1 attempt$/)
    expect(seen).toEqual(['POST /net/v2.0/ports'])
  })

  it('resolves a POST whose answer was lost by looking the resource up, and sends it once', async () => {
    handler = (req, res, body) => {
      // The port is made, then the connection dies before the answer.
      if (req.method === 'POST') {
        expect(JSON.parse(body)).toEqual({ port: { name: 'made' } })
        return req.socket.destroy()
      }
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"ports": [{"id": "p-1", "name": "made"}]}')
    }
    const c = client()
    const schema = z.object({ id: z.string(), name: z.string() })
    const made = await c.createResolved(
      () =>
        c
          .post('network', '/ports', { port: { name: 'made' } }, z.object({ port: schema }))
          .then((r) => r.port),
      async () =>
        (await c.list('network', '/ports', 'ports', schema, { query: { name: 'made' } }))[0],
    )
    expect(made).toEqual({ id: 'p-1', name: 'made' })
    expect(seen).toEqual(['POST /net/v2.0/ports', 'GET /net/v2.0/ports?name=made'])
  })

  it('sends the POST again only when the lookup shows it was not carried out', async () => {
    let posts = 0
    handler = (req, res) => {
      if (req.method === 'POST' && ++posts === 1) return neutron503(res)
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'Content-Type': 'application/json' })
      res.end(req.method === 'POST' ? '{"port": {"id": "p-2"}}' : '{"ports": []}')
    }
    const c = client()
    const made = await c.createResolved(
      () =>
        c
          .post('network', '/ports', { port: {} }, z.object({ port: z.object({ id: z.string() }) }))
          .then((r) => r.port),
      async () =>
        (
          await c.list('network', '/ports', 'ports', z.object({ id: z.string() }), {
            query: { name: 'x' },
          })
        )[0],
    )
    expect(made).toEqual({ id: 'p-2' })
    expect(seen).toEqual([
      'POST /net/v2.0/ports',
      'GET /net/v2.0/ports?name=x',
      'POST /net/v2.0/ports',
    ])
  })

  it('gives up a POST whose answer is lost every time, naming its attempts, each retry told', async () => {
    handler = (req, res) => {
      if (req.method === 'POST') return req.socket.destroy()
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end('{"ports": []}')
    }
    const c = client(2)
    const e = (await c
      .createResolved(
        () => c.post('network', '/ports', { port: {} }, z.unknown()),
        async () => undefined,
      )
      .catch((x: unknown) => x)) as OpenStackApiError
    expect(e.message).toMatch(
      /^Neutron unreachable: ECONNRESET .*\(POST \/net\/v2\.0\/ports\) after 1 attempt; gave up after 3 creates, each looked up before the next$/,
    )
    expect(notices.map((n) => `${n.reason} ${n.attempt}/${n.of}`)).toEqual([
      'no answer (not created: looked up) 2/3',
      'no answer (not created: looked up) 3/3',
    ])
  })

  it('pages with limit and marker when the service gives no links', async () => {
    const all = [{ id: 'a' }, { id: 'b' }, { id: 'c' }]
    handler = (req, res) => {
      const q = new URL(req.url ?? '', url).searchParams
      const from = q.get('marker') === null ? 0 : all.findIndex((x) => x.id === q.get('marker')) + 1
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ things: all.slice(from, from + Number(q.get('limit'))) }))
    }
    expect(
      await client().list('network', '/things', 'things', z.object({ id: z.string() }), {
        limit: 2,
      }),
    ).toEqual(all)
    expect(seen).toEqual(['GET /net/v2.0/things?limit=2', 'GET /net/v2.0/things?limit=2&marker=b'])
  })

  it('repeats even a POST when the connection was refused (nothing was sent), then says the service is unreachable', async () => {
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()))
    const port = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    const c = new OpenStackClient(
      cloudConfig('gone', 'test', {
        auth: { auth_url: `http://127.0.0.1:${port}/v3`, username: 'u', password: 'pw' },
      }),
      { retries: 2, backoffMs: 5 },
    )
    const e = (await c.token().catch((x: unknown) => x)) as OpenStackApiError
    expect(e.message).toMatch(/^Keystone unreachable: ECONNREFUSED.* after 3 attempts$/)
    expect(e.ambiguous).toBe(false)
    expect(c.stats.requests).toBe(3)
  })
})
