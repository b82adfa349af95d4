import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { file, type ExistingPath, type PathState } from '../../../modules/host/file.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from './harness.ts'

const dirState = (mode = '0755'): ExistingPath => ({
  type: 'directory',
  mode,
  owner: 'root',
  group: 'root',
  uid: '0',
  gid: '0',
})
const absent: PathState = { type: 'absent', parentExists: true }

const cases: PlanCase<PathState>[] = [
  {
    name: 'directory is created',
    params: { path: '/etc/k', state: 'directory', mode: '0750' },
    current: absent,
    expected: [
      { action: 'create', target: 'directory /etc/k', after: { type: 'directory', mode: '0750' } },
    ],
  },
  {
    name: 'idempotent: the directory is there',
    params: { path: '/etc/k', state: 'directory', mode: '0750' },
    current: dirState('0750'),
    expected: [],
  },
  {
    name: 'directory mode fixed',
    params: { path: '/etc/k', state: 'directory', mode: '0750' },
    current: dirState(),
    expected: [
      {
        action: 'update',
        target: 'directory /etc/k',
        before: { mode: '0755' },
        after: { mode: '0750' },
      },
    ],
  },
  {
    name: 'absent removes what is there',
    params: { path: '/etc/k', state: 'absent' },
    current: dirState(),
    expected: [{ action: 'delete', target: 'directory /etc/k', before: { type: 'directory' } }],
  },
  {
    name: 'absent and already gone',
    params: { path: '/etc/k', state: 'absent' },
    current: absent,
    expected: [],
  },
  {
    name: 'touch creates an empty file',
    params: { path: '/etc/k/f', state: 'touch' },
    current: absent,
    expected: [{ action: 'create', target: 'file /etc/k/f', after: { type: 'file' } }],
  },
  {
    name: 'state file does not create',
    params: { path: '/etc/k/f' },
    current: absent,
    throws: /does not exist/,
  },
  {
    name: 'a file where a directory is wanted',
    params: { path: '/etc/k', state: 'directory' },
    current: { ...dirState(), type: 'file' },
    throws: /is a file, not a directory/,
  },
  {
    name: 'link retargeted',
    params: { path: '/etc/k/l', state: 'link', src: '/b' },
    current: {
      type: 'link',
      mode: '0777',
      owner: 'root',
      group: 'root',
      uid: '0',
      gid: '0',
      linkTarget: '/a',
    },
    expected: [
      { action: 'update', target: 'link /etc/k/l', before: { src: '/a' }, after: { src: '/b' } },
    ],
  },
  {
    name: 'link with force replaces a file',
    params: { path: '/etc/k/l', state: 'link', src: '/b', force: true },
    current: { ...dirState('0644'), type: 'file' },
    expected: [
      {
        action: 'replace',
        target: 'link /etc/k/l',
        before: { type: 'file' },
        after: { type: 'link', src: '/b' },
      },
    ],
  },
]

describe('file plan', () => planTable(file, cases))

describe('file on the local host', () => {
  let dir = ''
  const conn = new CountingConnection(new LocalConnection('localhost'))
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rbt-file-'))
  })
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('makes a directory with mode and owner, records it, then is in sync', async () => {
    const ctx = testContext({ conn })
    const p = path.join(dir, 'a', 'b')
    const r = await converge(file, ctx, conn, {
      path: p,
      state: 'directory',
      mode: '0750',
      owner: 'nobody',
    })
    expect(r.gatherTrips).toBe(1)
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    const st = await fs.stat(p)
    expect([st.isDirectory(), st.mode & 0o7777, st.uid]).toEqual([true, 0o750, 65534])
    expect(ctx.records.map((x) => x.type)).toEqual(['directory'])
    await file.destroy?.(
      ctx,
      ctx.records[0] ?? {
        module: 'file',
        type: 'directory',
        id: p,
        host: 'localhost',
        task: 't',
        createdAt: '',
      },
    )
    await expect(fs.stat(p)).rejects.toThrow()
  })

  it('touch, link, absent', async () => {
    const ctx = testContext({ conn })
    const f = path.join(dir, 'f')
    const l = path.join(dir, 'l')
    expect(
      (await converge(file, ctx, conn, { path: f, state: 'touch', mode: '0600' })).second,
    ).toEqual([])
    expect((await converge(file, ctx, conn, { path: l, state: 'link', src: f })).second).toEqual([])
    expect(await fs.readlink(l)).toBe(f)
    expect(
      (await converge(file, ctx, conn, { path: l, state: 'link', src: '/etc/hostname' })).first.map(
        (c) => c.action,
      ),
    ).toEqual(['update'])
    expect(await fs.readlink(l)).toBe('/etc/hostname')
    const r = await converge(file, ctx, conn, { path: f, state: 'absent' })
    expect([r.first.length, r.second.length]).toEqual([1, 0])
    await expect(fs.stat(f)).rejects.toThrow()
  })
})
