/**
 * Chaos: the real CLI against the lab's API through a proxy that fails a share of requests (503s,
 * connection resets before and after the service carried a request out, delays). Apply and destroy
 * must converge: no duplicate resource after apply, nothing left after destroy. Rounds, share and
 * delay: CHAOS_API_ROUNDS (CI runs 2), CHAOS_API_SHARE (0.3), CHAOS_API_DELAY_MS (1000); more on
 * request: `CHAOS_API_ROUNDS=10 npx vitest run test/chaos/api-faults.test.ts`.
 * Also: API retries are visible (`-v`: every one; each give-up names its attempts).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { OpenStackClient } from '../../modules/openstack/client/client.ts'
import { resolveCloud } from '../../modules/openstack/client/config.ts'
import { makeHostKey, startCloud, type TestCloud } from '../modules/openstack/harness.ts'
import { startFaultProxy, type FaultProxy, type FaultProxyOptions } from './fault-proxy.ts'

const BIN = path.resolve('cli/runbook.js')
const ROUNDS = Number(process.env['CHAOS_API_ROUNDS'] ?? 2)
const SHARE = Number(process.env['CHAOS_API_SHARE'] ?? 0.3)
const DELAY_MS = Number(process.env['CHAOS_API_DELAY_MS'] ?? 1000)
/** Runs of one command until it succeeds: a fault may outlast a request's retries. */
const TRIES = 4

const RUNBOOK = (key: string): string => `plays:
  - hosts: localhost
    tasks:
      - openstack.keypair: { name: chaos-key, public_key: "${key}" }
      - openstack.security_group:
          name: chaos-sg
          rules: [{ protocol: icmp }, { protocol: tcp, port: 22 }]
      - openstack.port: { name: "chaos-port-{{item}}", network: mynetwork }
        loop: [1, 2, 3]
      - openstack.server:
          name: "chaos-vm-{{item}}"
          image: Debian 12
          flavor: m1.small
          network: mynetwork
          security_groups: [default, chaos-sg]
          key_name: chaos-key
        loop: [1, 2]
      - openstack.floating_ip: { network: public, server: chaos-vm-1 }
`

interface Cli {
  code: number
  out: string
}

function cli(dir: string, args: string[]): Promise<Cli> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', CI: 'true' },
    })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    child.on('exit', (code) => resolve({ code: code ?? -1, out }))
  })
}

/** What the cloud holds, read straight from the lab (not through the proxy). */
async function inventory(c: OpenStackClient): Promise<Record<string, string[]>> {
  const named = z.object({ name: z.string().nullable().optional(), id: z.string() })
  const names = (xs: { name?: string | null | undefined; id: string }[]): string[] =>
    xs.map((x) => x.name ?? x.id).sort()
  const ports = await c.list(
    'network',
    '/ports',
    'ports',
    named.extend({ device_owner: z.string() }),
  )
  return {
    servers: names(await c.list('compute', '/servers', 'servers', named)),
    ports: names(ports.filter((p) => !p.device_owner.startsWith('network:'))),
    floating_ips: (
      await c.list('network', '/floatingips', 'floatingips', z.object({ id: z.string() }))
    ).map((f) => f.id),
    keypairs: (
      await c.list(
        'compute',
        '/os-keypairs',
        'keypairs',
        z.object({ keypair: z.object({ name: z.string() }) }),
      )
    )
      .map((k) => k.keypair.name)
      .sort(),
    security_groups: names(
      await c.list('network', '/security-groups', 'security_groups', named),
    ).filter((n) => n !== 'default' && n !== 'ssh'),
  }
}

describe('chaos: API faults through a proxy', () => {
  let cloud: TestCloud
  let dir = ''
  let direct: OpenStackClient
  const proxies: FaultProxy[] = []

  /** A proxy to the lab, and a clouds.yaml whose `lab` goes through it. */
  async function through(o: Omit<FaultProxyOptions, 'target'>): Promise<{
    proxy: FaultProxy
    args: string[]
  }> {
    const proxy = await startFaultProxy({ target: cloud.url, ...o })
    proxies.push(proxy)
    const file = path.join(dir, `clouds-${proxies.length}.yaml`)
    writeFileSync(file, readFileSync(cloud.cloudsYaml, 'utf8').split(cloud.url).join(proxy.url))
    return {
      proxy,
      args: ['-e', `openstack_clouds_yaml=${file}`, '-e', 'openstack_cloud=lab'],
    }
  }

  /** Runs a command until it succeeds, at most TRIES times; how many it took. */
  async function converge(args: string[]): Promise<{ runs: number; last: Cli }> {
    let last: Cli = { code: -1, out: '' }
    for (let runs = 1; runs <= TRIES; runs++) {
      last = await cli(dir, args)
      if (last.code === 0) return { runs, last }
      // why a run gave up (a fault that outlasted the retries): said, for the record
      for (const line of last.out.split('\n').filter((l) => l.startsWith('error:')))
        console.log(`chaos api: ${args[0] ?? ''} run ${runs} failed: ${line}`)
    }
    return { runs: TRIES, last }
  }

  beforeAll(async () => {
    cloud = await startCloud()
    dir = mkdtempSync(path.join(tmpdir(), 'rb-chaos-api-'))
    writeFileSync(path.join(dir, 'runbook.yaml'), RUNBOOK(makeHostKey().line))
    direct = new OpenStackClient(
      resolveCloud({
        cloud: 'lab',
        env: { OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml },
      }),
    )
  }, 60_000)

  afterAll(async () => {
    for (const p of proxies) await p.close()
    await cloud?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(
    `${ROUNDS} rounds at ${SHARE * 100}% faults: apply makes each resource once, destroy leaves nothing`,
    async () => {
      const { proxy, args } = await through({ share: SHARE, delayMs: DELAY_MS })
      const tally: string[] = []
      for (let round = 1; round <= ROUNDS; round++) {
        const apply = await converge(['apply', 'runbook.yaml', ...args])
        expect(apply.last.code, apply.last.out).toBe(0)
        expect(await inventory(direct)).toEqual({
          servers: ['chaos-vm-1', 'chaos-vm-2'],
          // a server's own port has no name: its id stands in, so count them
          ports: expect.arrayContaining(['chaos-port-1', 'chaos-port-2', 'chaos-port-3']),
          floating_ips: [expect.any(String)],
          keypairs: ['chaos-key'],
          security_groups: ['chaos-sg'],
        })
        expect((await inventory(direct)).ports).toHaveLength(5)
        const destroy = await converge(['destroy', 'runbook.yaml', ...args, '--auto-approve'])
        expect(destroy.last.code, destroy.last.out).toBe(0)
        expect(await inventory(direct)).toEqual({
          servers: [],
          ports: [],
          floating_ips: [],
          keypairs: [],
          security_groups: [],
        })
        tally.push(`round ${round}: apply ${apply.runs} run(s), destroy ${destroy.runs} run(s)`)
      }
      console.log(
        `chaos api: ${tally.join('; ')}; ${proxy.stats.requests} requests, injected ${JSON.stringify(proxy.stats.injected)}`,
      )
      expect(Object.values(proxy.stats.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    },
    ROUNDS * 240_000,
  )

  it('shows every retry with -v, and the give-up names its attempts', async () => {
    // every port lookup fails: five attempts, each retry shown, then the error with the count
    const { proxy, args } = await through({
      share: 1,
      faults: ['503'],
      match: (method, url) => method === 'GET' && url.includes('/v2.0/ports'),
    })
    const r = await cli(dir, ['plan', 'runbook.yaml', ...args, '-v'])
    expect(r.code, r.out).toBe(1)
    for (const n of [2, 3, 4, 5])
      expect(r.out).toMatch(
        new RegExp(
          `waiting +localhost .*Neutron GET /[^ ]*v2\\.0/ports[^ ]*: retrying \\(${n}/5\\) after 503 in [\\d.]+ s`,
        ),
      )
    expect(r.out).toMatch(
      /Neutron 503: 503 Service Unavailable No server is available\. \(GET \S+\) after 5 attempts/,
    )
    expect(proxy.stats.injected['503']).toBeGreaterThanOrEqual(5)
  }, 60_000)
})
