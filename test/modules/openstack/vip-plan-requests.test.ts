/**
 * `runbook plan` of the VIP runbook's cloud part on a cloud in sync (the lab API in-process, hosts
 * off): one request per resource read. The token is reused, lists are filtered server-side, and
 * what one task read another does not read again (a server by name, its ports, the project's
 * security groups). The plays on the hosts are replaced by the same API reads from localhost.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { startCloud, type TestCloud } from './harness.ts'

const run = promisify(execFile)
const BIN = path.resolve('cli/runbook.js')

let cloud: TestCloud
let work: string

/** The CLI, asynchronously: the cloud answers from this process. */
async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const r = await run(
    process.execPath,
    [BIN, ...args, '-e', `openstack_clouds_yaml=${cloud.cloudsYaml}`],
    { cwd: work, env: { ...process.env, NO_COLOR: '1', ...env }, encoding: 'utf8' },
  ).then(
    (x) => ({ code: 0, out: x.stdout, err: x.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? 1,
      out: e.stdout ?? '',
      err: e.stderr ?? '',
    }),
  )
  return r
}

beforeAll(async () => {
  cloud = await startCloud()
  work = await mkdtemp(path.join(tmpdir(), 'rbt-vip-plan-'))
  const doc = parse(await readFile('runbooks/vip-keepalived.yaml', 'utf8')) as {
    inventory: string
    plays: unknown[]
  }
  doc.inventory = path.resolve('inventories/lab.yaml')
  doc.plays = [
    doc.plays[0],
    {
      name: 'Allow the VIP on both ports, as the hosts do',
      hosts: 'localhost',
      tasks: [
        {
          name: 'The port of that interface',
          'openstack.port_info': { server: '{{item.name}}', fixed_ip: '{{item.address}}' },
          loop: '{{nodes}}',
          register: 'vrrp_ports',
        },
        {
          name: 'The port may send from the VIP',
          'openstack.port': {
            id: '{{item.id}}',
            allowed_address_pairs: [{ ip_address: '{{vip}}/32' }],
          },
          loop: '{{vrrp_ports.results}}',
        },
      ],
    },
  ]
  await writeFile(path.join(work, 'vip.yaml'), stringify(doc))
  const applied = await cli(['apply', 'vip.yaml'])
  expect(applied.err).toBe('')
  expect(applied.code).toBe(0)
}, 60_000)

afterAll(async () => {
  await cloud?.close()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('plan of the VIP runbook on a cloud in sync', () => {
  it('makes one request per resource read, and prints their number in --json', async () => {
    const r = await cli(['plan', 'vip.yaml', '--json'], { RUNBOOK_TRACE_API: '1' })
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.out.trim().split('\n').pop() ?? '{}') as {
      api_requests?: number
      plan?: Record<string, number>
    }
    expect(summary.plan).toEqual({ create: 0, update: 0, delete: 0, run: 0 })
    const requests = r.err
      .split('\n')
      .filter((l) => l.startsWith('api '))
      .map((l) => l.replace(/ \d+ ms$/, ''))
    expect(summary.api_requests).toBe(requests.length)
    // nothing is read twice, and the only POSTs are the token and the console logs (host keys)
    expect(requests.length - new Set(requests).size).toBe(0)
    expect(requests.filter((l) => l.startsWith('api POST /v3/auth/tokens'))).toHaveLength(1)
    expect(
      requests.filter(
        (l) => / (POST|PUT|DELETE|PATCH) /.test(l) && !/auth\/tokens|\/action/.test(l),
      ),
    ).toEqual([])
    // every list is filtered server-side, but Nova's flavors, which take no name filter
    expect(requests.filter((l) => /^api GET [^?]*s \d+$/.test(l) && !/\/flavors /.test(l))).toEqual(
      [],
    )
    // token, Nova's version, keypair, VIP port, network, subnet, image, flavors, security
    // groups, 3 x (server, its ports, its console), the external network, the floating IP, 2 x
    // (the port of an address, the port by id)
    expect(requests).toHaveLength(24)
  }, 30_000)
})
