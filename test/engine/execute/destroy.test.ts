/**
 * destroy is never blocked: a record on a host that no longer exists is dropped with a line, and
 * a record it cannot act on is reported without stopping the rest. The host is reached over real
 * SSH (a closed port on 127.0.0.1: refused, as a deleted VM's address is), the "cloud" is files.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { promises as fs } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { describe, expect, it } from 'vitest'
import { sshConnectionFactory } from '../../../engine/connection/ssh-factory.ts'
import { RunbookError } from '../../../engine/errors.ts'
import { destroy } from '../../../engine/execute/destroy.ts'
import { Inventory } from '../../../engine/inventory/inventory.ts'
import { Journal, stateDirFor } from '../../../engine/journal/journal.ts'
import {
  createRegistry,
  defineModule,
  ExpandableRegistry,
  type ModuleRegistry,
} from '../../../engine/module.ts'
import type { RunEvent } from '../../../engine/report/events.ts'
import { Redactor } from '../../../engine/vars/secrets.ts'

/** A controller-side "server": a file in the cloud directory; `gone-project` fails like an old project. */
const server = defineModule({
  name: 'test.server',
  summary: 'test: a server as a file',
  example: '-',
  target: 'controller',
  params: z.strictObject({}),
  gather: async () => null,
  plan: () => [],
  apply: async () => ({}),
  destroy: async (_ctx, r) => {
    if (r.data?.['project'] === 'gone')
      throw new RunbookError('E_API', `${r.type} ${r.name} was created in project gone`)
    await fs.rm(r.id, { force: true })
  },
})
/** A file on a host: destroying it needs the host. */
const hostFile = defineModule({
  name: 'test.file',
  summary: 'test: a file on a host',
  example: '-',
  params: z.strictObject({}),
  gather: async () => null,
  plan: () => [],
  apply: async () => ({}),
  destroy: async (ctx, r) => {
    const conn = await ctx.conn()
    await conn.exec(`rm -f ${r.id}`)
  },
})

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res))
  const port = (srv.address() as { port: number }).port
  await new Promise((res) => srv.close(res))
  return port
}

async function setup(records: { server?: boolean; project?: string }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-destroy-'))
  const cloud = path.join(dir, 'cloud')
  mkdirSync(cloud)
  const j = await Journal.open(path.join(dir, 'state'), 'rb.yaml', undefined)
  const port = await closedPort()
  await j.rememberHost('vm1', ['vms'], { address: '127.0.0.1', port, user: 'nobody' })
  const base = { host: 'localhost', task: 'create', createdAt: 'now' }
  if (records.server) {
    writeFileSync(path.join(cloud, 'vm1'), '')
    await j.record({
      ...base,
      module: 'test.server',
      type: 'server',
      id: path.join(cloud, 'vm1'),
      name: 'vm1',
    })
  }
  if (records.project) {
    writeFileSync(path.join(cloud, 'fip'), '')
    await j.record({
      ...base,
      module: 'test.server',
      type: 'floating_ip',
      id: 'fip-1',
      name: 'fip',
      data: { project: records.project },
    })
  }
  await j.record({ ...base, module: 'test.file', type: 'file', id: '/etc/app.conf', host: 'vm1' })
  return { dir, cloud, j }
}

async function run(j: Journal, registry: ModuleRegistry = createRegistry([server, hostFile])) {
  const events: RunEvent[] = []
  const r = await destroy({
    journal: j,
    registry,
    inventory: Inventory.empty(),
    connections: sshConnectionFactory({ sshConfigFile: false }),
    redactor: new Redactor(),
    emit: (e) => events.push(e),
    baseDir: '/',
    vars: {},
    plan: false,
  })
  return { r, events }
}

describe('destroy is never blocked', () => {
  it("loads the modules of the journal's records when the registry loads families on demand", async () => {
    const { cloud, j } = await setup({ server: true })
    // the runbook of this destroy names none of them: nothing of the family is loaded yet
    const registry = new ExpandableRegistry(
      [],
      [{ prefix: 'test', load: async () => [server, hostFile] }],
    )
    const { r } = await run(j, registry)
    expect(r.errors.map((e) => e.message)).toEqual([])
    expect(existsSync(path.join(cloud, 'vm1'))).toBe(false)
    expect(j.data.resources).toEqual([])
  })

  it('a file on a VM whose server this destroy removes is dropped, with a line', async () => {
    const { cloud, j } = await setup({ server: true })
    const { r } = await run(j)
    expect(r.errors.map((e) => e.message)).toEqual([])
    expect(r.ok).toBe(true)
    expect(existsSync(path.join(cloud, 'vm1'))).toBe(false)
    expect(j.data.resources).toEqual([])
    expect(r.lines).toEqual([
      'dropped the record of file /etc/app.conf on vm1: its server vm1 was destroyed by this run',
    ])
  })

  it('a file on a VM whose server an earlier destroy removed is dropped once the host is unreachable', async () => {
    const { j } = await setup({})
    const { r } = await run(j)
    expect(r.ok).toBe(true)
    expect(j.data.resources).toEqual([])
    expect(r.lines[0]).toMatch(
      /dropped the record of file \/etc\/app.conf on vm1: host vm1 cannot be reached and its server is no longer in the journal/,
    )
  })

  it('a record it cannot act on is reported with its ID; the rest is destroyed', async () => {
    const { cloud, j } = await setup({ server: true, project: 'gone' })
    const { r } = await run(j)
    expect(r.ok).toBe(false)
    expect(existsSync(path.join(cloud, 'vm1'))).toBe(false)
    expect(j.data.resources.map((x) => x.id)).toEqual(['fip-1'])
    expect(r.errors[0]?.hint).toBe('if it is gone for good: runbook destroy --forget fip-1')
    expect(r.lines.at(-1)).toMatch(
      /1 record\(s\) could not be destroyed .*floating_ip fip \(ID fip-1\).*runbook destroy --forget ID/,
    )
  })
})

describe('destroy --forget', () => {
  it('drops a record without touching anything; an unknown ID is an error that lists the records', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-forget-'))
    const rb = path.join(dir, 'runbook.yaml')
    writeFileSync(rb, 'plays:\n  - hosts: localhost\n    tasks: []\n')
    const j = await Journal.open(
      stateDirFor(path.join(dir, '.runbook'), rb, undefined),
      rb,
      undefined,
    )
    await j.record({
      module: 'openstack.floating_ip',
      type: 'floating_ip',
      id: 'fip-1',
      name: 'kld-fip',
      host: 'localhost',
      task: 't',
      createdAt: 'now',
    })
    const cli = (args: string[]) =>
      spawnSync(process.execPath, [path.resolve('cli/runbook.js'), ...args], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      })
    const bad = cli(['destroy', 'runbook.yaml', '--forget', 'nope'])
    expect(bad.status).toBe(1)
    expect(bad.stderr).toContain(
      'no record with ID nope; it records: floating_ip kld-fip (ID fip-1)',
    )
    const ok = cli(['destroy', 'runbook.yaml', '--forget', 'fip-1'])
    expect(ok.status, ok.stderr).toBe(0)
    expect(ok.stdout).toContain(
      'Forgot floating_ip kld-fip (ID fip-1) on localhost: removed from the journal, not destroyed.',
    )
    const again = cli(['destroy', 'runbook.yaml', '--auto-approve'])
    expect(again.stdout).toContain('Nothing to destroy')
  }, 30_000)
})

describe('destroy and secrets', () => {
  it('needs no secret it never uses', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-nosecret-'))
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      `vars:\n  pw: { secret: true, from_env: DESTROY_TEST_PW }\nplays:\n  - hosts: localhost\n    tasks:\n      - copy: { dest: ${dir}/made.conf, content: "x\\n" }\n`,
    )
    const cli = (args: string[], env: Record<string, string>) =>
      spawnSync(process.execPath, [path.resolve('cli/runbook.js'), ...args], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', ...env },
      })
    const apply = cli(['apply', 'runbook.yaml'], { DESTROY_TEST_PW: 'Some-s3cret' })
    expect(apply.status, apply.stderr).toBe(0)
    expect(existsSync(path.join(dir, 'made.conf'))).toBe(true)
    const d = cli(['destroy', 'runbook.yaml', '--auto-approve'], {})
    expect(d.status, d.stdout + d.stderr).toBe(0)
    expect(d.stdout).toContain('secret(s) pw not available')
    expect(existsSync(path.join(dir, 'made.conf'))).toBe(false)
  }, 30_000)
})
