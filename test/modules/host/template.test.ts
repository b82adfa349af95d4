import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { wanted, type ContentFileState } from '../../../modules/host/lib/content-file.ts'
import { template } from '../../../modules/host/template.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from './harness.ts'

// template plans exactly as copy does once rendered; the table checks the shared path once more
// and the idempotency row.
const cases: PlanCase<ContentFileState>[] = [
  {
    name: 'rendered content differs',
    params: { dest: '/etc/k.conf', content: 'vip {{vip}}\n' },
    current: {
      want: wanted('vip 192.0.2.254\n'),
      have: {
        type: 'file',
        path: '/etc/k.conf',
        sha256: wanted('vip 192.0.2.1\n').sha256 ?? '',
        size: 15,
        mode: '0644',
        owner: 'root',
        group: 'root',
        uid: '0',
        gid: '0',
        content: 'vip 192.0.2.1\n',
      },
    },
    expected: [
      {
        action: 'update',
        target: 'file /etc/k.conf',
        before: { sha256: wanted('vip 192.0.2.1\n').sha256 },
        after: { sha256: wanted('vip 192.0.2.254\n').sha256 },
        diff: { path: '/etc/k.conf', before: 'vip 192.0.2.1\n', after: 'vip 192.0.2.254\n' },
      },
    ],
  },
  {
    name: 'idempotent: the rendered file is there',
    params: { dest: '/etc/k.conf', content: 'vip {{vip}}\n' },
    current: {
      want: wanted('vip 192.0.2.254\n'),
      have: {
        type: 'file',
        path: '/etc/k.conf',
        sha256: wanted('vip 192.0.2.254\n').sha256 ?? '',
        size: 16,
        mode: '0644',
        owner: 'root',
        group: 'root',
        uid: '0',
        gid: '0',
      },
    },
    expected: [],
  },
]

describe('template plan', () => planTable(template, cases))

describe('template on the local host', () => {
  let dir = ''
  const conn = new CountingConnection(new LocalConnection('localhost'))
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rbt-template-'))
    await fs.mkdir(path.join(dir, 'templates'))
    await fs.writeFile(
      path.join(dir, 'templates', 'k.conf.hbs'),
      'vrrp {{name}}\n{{#each peers}}peer {{this}}\n{{/each}}',
    )
  })
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('renders a src template with the task variables, then is in sync', async () => {
    const dest = path.join(dir, 'k.conf')
    const ctx = testContext({
      conn,
      baseDir: dir,
      vars: { name: 'VI_1', peers: ['192.0.2.11', '192.0.2.12'] },
    })
    const r = await converge(template, ctx, conn, { src: 'templates/k.conf.hbs', dest })
    expect(r.first[0]?.action).toBe('create')
    expect(r.gatherTrips).toBe(1)
    expect(r.second).toEqual([])
    expect(await fs.readFile(dest, 'utf8')).toBe('vrrp VI_1\npeer 192.0.2.11\npeer 192.0.2.12\n')
  })

  it('a changed variable is an update with a diff', async () => {
    const dest = path.join(dir, 'k.conf')
    const ctx = testContext({ conn, baseDir: dir, vars: { name: 'VI_2', peers: ['192.0.2.11'] } })
    const r = await converge(template, ctx, conn, { src: 'templates/k.conf.hbs', dest })
    expect(r.first[0]?.diff).toEqual({
      path: dest,
      before: 'vrrp VI_1\npeer 192.0.2.11\npeer 192.0.2.12\n',
      after: 'vrrp VI_2\npeer 192.0.2.11\n',
    })
    expect(r.second).toEqual([])
  })

  it('reads its source once per run: every host of a run renders the same text', async () => {
    const src = path.join(dir, 'templates', 'once.hbs')
    await fs.writeFile(src, 'first {{name}}\n')
    const run = testContext({ conn, baseDir: dir, vars: { name: 'a' } })
    const p = template.params.parse({ src: 'templates/once.hbs', dest: path.join(dir, 'once') })
    const rendered = async (ctx: typeof run): Promise<string | undefined> => {
      const changes = template.plan(p, await template.gather(ctx, p))
      return (changes[0]?.diff as { after?: string } | undefined)?.after
    }
    expect(await rendered(run)).toBe('first a\n')
    await fs.writeFile(src, 'second {{name}}\n')
    // the same run (another host): the text read at its first use
    expect(await rendered(run)).toBe('first a\n')
    // the next run reads the file again
    expect(await rendered(testContext({ conn, baseDir: dir, vars: { name: 'b' } }))).toBe(
      'second b\n',
    )
    await fs.rm(src)
    expect(await rendered(run)).toBe('first a\n')
    await expect(
      rendered(testContext({ conn, baseDir: dir, vars: { name: 'c' } })),
    ).rejects.toThrow(/cannot read src .*once\.hbs/)
  })

  it('inline content with extra vars', async () => {
    const dest = path.join(dir, 'inline.conf')
    const r = await converge(template, testContext({ conn, vars: { a: 1 } }), conn, {
      content: '{{a}}-{{b}}\n',
      vars: { b: 2 },
      dest,
    })
    expect(r.second).toEqual([])
    expect(await fs.readFile(dest, 'utf8')).toBe('1-2\n')
  })

  it('a missing variable is an error, not an empty string', async () => {
    const ctx = testContext({ conn })
    await expect(
      template.gather(
        ctx,
        template.params.parse({ content: '{{nope}}', dest: path.join(dir, 'x') }),
      ),
    ).rejects.toThrow(/nope/)
  })

  it('a validate failure keeps the old file', async () => {
    const dest = path.join(dir, 'v.conf')
    await fs.writeFile(dest, 'ok\n')
    const ctx = testContext({ conn, vars: { x: 'broken' } })
    const p = template.params.parse({ content: '{{x}}\n', dest, validate: 'grep -qx ok %s' })
    const s = await template.gather(ctx, p)
    await expect(template.apply(ctx, p, template.plan(p, s), s)).rejects.toThrow(/validation/)
    expect(await fs.readFile(dest, 'utf8')).toBe('ok\n')
  })
})
