import { promises as fs } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { ping, parsePing, type PingState } from '../../../modules/host/ping.ts'
import { waitFor, type WaitState } from '../../../modules/host/wait-for.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from './harness.ts'

const waitCases: PlanCase<WaitState>[] = [
  {
    name: 'port not open yet',
    params: { port: 8080 },
    current: { up: false },
    expected: [
      {
        action: 'run',
        target: 'wait for tcp 127.0.0.1:8080 started',
        note: 'not yet (timeout 300 s)',
      },
    ],
  },
  { name: 'idempotent: port open', params: { port: 8080 }, current: { up: true }, expected: [] },
  {
    name: 'port must close',
    params: { port: 8080, state: 'stopped', timeout: 5 },
    current: { up: true },
    expected: [
      {
        action: 'run',
        target: 'wait for tcp 127.0.0.1:8080 stopped',
        note: 'not yet (timeout 5 s)',
      },
    ],
  },
  {
    name: 'path absent as wanted',
    params: { path: '/run/x.pid', state: 'absent' },
    current: { up: false },
    expected: [],
  },
  {
    name: 'command succeeds',
    params: { command: 'test -S /run/sock' },
    current: { up: true },
    expected: [],
  },
]

const pingCases: PlanCase<PingState>[] = [
  {
    name: 'idempotent: reachable as expected',
    params: { address: '192.0.2.254' },
    current: { transmitted: 3, received: 2 },
    expected: [],
  },
  {
    name: 'unreachable but expected reachable',
    params: { address: '192.0.2.254' },
    current: { transmitted: 3, received: 0 },
    expected: [
      {
        action: 'run',
        target: 'ping 192.0.2.254',
        note: 'expected reachable, but now 192.0.2.254 unreachable: 0/3 replies',
      },
    ],
  },
  {
    name: 'unreachable as expected',
    params: { address: '192.0.2.254', expect: 'unreachable' },
    current: { transmitted: 3, received: 0 },
    expected: [],
  },
  {
    name: 'ping could not run is not "unreachable"',
    params: { address: 'nohost', expect: 'unreachable' },
    current: { transmitted: 0, received: 0, error: 'unknown host' },
    expected: [
      {
        action: 'run',
        target: 'ping nohost',
        note: 'expected unreachable, but now nohost reachable: 0/0 replies (unknown host)',
      },
    ],
  },
]

describe('wait_for plan', () => planTable(waitFor, waitCases))
describe('ping plan', () => planTable(ping, pingCases))

it('parses ping summaries', () => {
  expect(
    parsePing(
      '3 packets transmitted, 3 received, 0% packet loss, time 2003ms\nrtt min/avg/max/mdev = 0.030/0.041/0.052/0.009 ms\n',
    ),
  ).toEqual({ transmitted: 3, received: 3, rttAvg: 0.041 })
  expect(parsePing('2 packets transmitted, 0 received, +2 errors, 100% packet loss')).toEqual({
    transmitted: 2,
    received: 0,
  })
})

describe('wait_for and ping on the local host', () => {
  const conn = new CountingConnection(new LocalConnection('localhost'))
  let server: net.Server | undefined
  let port = 0
  let dir = ''
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rbt-wait-'))
    const probe = net.createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    port = (probe.address() as net.AddressInfo).port
    await new Promise<void>((r) => probe.close(() => r()))
  })
  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()))
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('waits for a TCP port that opens later, then plans nothing', async () => {
    const ctx = testContext({ conn })
    setTimeout(() => {
      server = net.createServer((s) => s.end())
      server.listen(port, '127.0.0.1')
    }, 700)
    const r = await converge(waitFor, ctx, conn, { port, timeout: 10, sleep: 0.2 })
    expect(r.gatherTrips).toBe(1)
    expect(r.first.map((c) => c.action)).toEqual(['run'])
    expect(r.result?.changed).toBe(false)
    expect(Number(r.result?.output?.elapsed)).toBeGreaterThan(0.4)
    expect(r.second).toEqual([])
    expect(
      ctx.messages.some((m) => m.startsWith(`waiting for tcp 127.0.0.1:${port} started`)),
    ).toBe(true)
  })

  it('times out with a clear message', async () => {
    const ctx = testContext({ conn })
    const p = waitFor.params.parse({ path: path.join(dir, 'never'), timeout: 0.6, sleep: 0.2 })
    await expect(
      waitFor.apply(ctx, p, waitFor.plan(p, { up: false }), { up: false }),
    ).rejects.toThrow(/timed out after 0.6 s waiting for path .*never present/)
  })

  it('waits for a path and a command', async () => {
    const f = path.join(dir, 'flag')
    setTimeout(() => void fs.writeFile(f, ''), 300)
    const ctx = testContext({ conn })
    expect(
      (await converge(waitFor, ctx, conn, { path: f, timeout: 5, sleep: 0.1 })).second,
    ).toEqual([])
    expect(
      (await converge(waitFor, ctx, conn, { command: `test -e ${f}`, timeout: 5 })).first,
    ).toEqual([])
  })

  it('ping 127.0.0.1: reachable holds, expecting unreachable fails', async () => {
    const ctx = testContext({ conn })
    const t0 = Date.now()
    const up = await converge(ping, ctx, conn, {
      address: '127.0.0.1',
      count: 3,
      interval: 1,
      timeout: 3,
    })
    expect([up.first, up.gatherTrips]).toEqual([[], 1])
    // reachable returns at the first reply, not after count intervals (3 gathers would take 6 s)
    expect(Date.now() - t0).toBeLessThan(1500)
    const p = ping.params.parse({
      address: '127.0.0.1',
      count: 1,
      timeout: 2,
      expect: 'unreachable',
    })
    const s = await ping.gather(ctx, p)
    expect(ping.plan(p, s)[0]?.note).toMatch(
      /expected unreachable, but now 127.0.0.1 reachable: 1\/1/,
    )
    await expect(ping.apply(ctx, p, ping.plan(p, s), s)).rejects.toThrow(
      /expected 127.0.0.1 unreachable/,
    )
  })
})
