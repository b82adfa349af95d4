import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { copy } from '../../../modules/host/copy.ts'
import { wanted, type ContentFileState } from '../../../modules/host/lib/content-file.ts'
import { UNKNOWN_MARK } from '../../../engine/vars/unknown.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from './harness.ts'

const file = (
  content: string,
  over: Partial<{ mode: string; owner: string; group: string; fetched: boolean }> = {},
): ContentFileState['have'] => ({
  type: 'file',
  path: '/etc/x.conf',
  sha256: wanted(content).sha256 ?? '',
  size: content.length,
  mode: over.mode ?? '0644',
  owner: over.owner ?? 'root',
  group: over.group ?? 'root',
  uid: '0',
  gid: '0',
  ...(over.fetched === false ? {} : { content }),
})

const cases: PlanCase<ContentFileState>[] = [
  {
    name: 'absent file is created, with a diff from nothing',
    params: { dest: '/etc/x.conf', content: 'a\n', mode: '0640' },
    current: { want: wanted('a\n'), have: { type: 'absent', parentExists: true } },
    expected: [
      {
        action: 'create',
        target: 'file /etc/x.conf',
        after: { sha256: wanted('a\n').sha256, mode: '0640' },
        diff: { path: '/etc/x.conf', before: '', after: 'a\n' },
      },
    ],
  },
  {
    name: 'a missing directory is said in the plan',
    params: { dest: '/nope/x.conf', content: 'a\n' },
    current: { want: wanted('a\n'), have: { type: 'absent', parentExists: false } },
    expected: [
      {
        action: 'create',
        target: 'file /nope/x.conf',
        after: { sha256: wanted('a\n').sha256 },
        diff: { path: '/nope/x.conf', before: '', after: 'a\n' },
        note: 'directory /nope does not exist: apply will fail',
      },
    ],
  },
  {
    name: 'idempotent: same sha and attributes (the state after apply)',
    params: { dest: '/etc/x.conf', content: 'a\n', mode: 644, owner: 'root' },
    current: { want: wanted('a\n'), have: file('a\n', { fetched: false }) },
    expected: [],
  },
  {
    name: 'changed content is an update with a unified diff',
    params: { dest: '/etc/x.conf', content: 'b\n' },
    current: { want: wanted('b\n'), have: file('a\n') },
    expected: [
      {
        action: 'update',
        target: 'file /etc/x.conf',
        before: { sha256: wanted('a\n').sha256 },
        after: { sha256: wanted('b\n').sha256 },
        diff: { path: '/etc/x.conf', before: 'a\n', after: 'b\n' },
      },
    ],
  },
  {
    name: 'a large file (content not fetched) shows the checksum change only',
    params: { dest: '/etc/x.conf', content: 'b\n' },
    current: { want: wanted('b\n'), have: file('a\n', { fetched: false }) },
    expected: [
      {
        action: 'update',
        target: 'file /etc/x.conf',
        before: { sha256: wanted('a\n').sha256 },
        after: { sha256: wanted('b\n').sha256 },
        note: 'content differs (binary or larger than the diff limit)',
      },
    ],
  },
  {
    name: 'mode only',
    params: { dest: '/etc/x.conf', content: 'a\n', mode: '0600' },
    current: { want: wanted('a\n'), have: file('a\n') },
    expected: [
      {
        action: 'update',
        target: 'file /etc/x.conf',
        before: { mode: '0644' },
        after: { mode: '0600' },
      },
    ],
  },
  {
    name: 'owner given as uid matches',
    params: { dest: '/etc/x.conf', content: 'a\n', owner: '0', group: 'root' },
    current: { want: wanted('a\n'), have: file('a\n') },
    expected: [],
  },
  {
    name: 'content known after apply',
    params: { dest: '/etc/x.conf', content: `ip ${UNKNOWN_MARK}\n` },
    current: { want: wanted(`ip ${UNKNOWN_MARK}\n`), have: file('ip 1\n') },
    expected: [
      {
        action: 'update',
        target: 'file /etc/x.conf',
        before: { sha256: wanted('ip 1\n').sha256 },
        after: { sha256: '(known after apply)' },
        diff: { path: '/etc/x.conf', before: 'ip 1\n', after: 'ip (known after apply)\n' },
      },
    ],
  },
  {
    name: 'a directory at dest is an error',
    params: { dest: '/etc', content: 'a\n' },
    current: { want: wanted('a\n'), have: { type: 'directory' } },
    throws: /not a regular file/,
  },
]

describe('copy plan', () => planTable(copy, cases))

describe('copy on the local host', () => {
  let dir = ''
  const conn = new CountingConnection(new LocalConnection('localhost'))
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rbt-copy-'))
  })
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('creates once (one round trip to gather), records it, then is in sync', async () => {
    const ctx = testContext({ conn })
    const dest = path.join(dir, 'a.conf')
    const r = await converge(copy, ctx, conn, { dest, content: 'hello\n', mode: '0600' })
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.gatherTrips).toBe(1)
    expect(r.result?.changed).toBe(true)
    expect(r.second).toEqual([])
    expect(await fs.readFile(dest, 'utf8')).toBe('hello\n')
    expect((await fs.stat(dest)).mode & 0o7777).toBe(0o600)
    expect(ctx.records.map((x) => [x.type, x.id])).toEqual([['file', dest]])
    await copy.destroy?.(
      ctx,
      ctx.records[0] ?? {
        module: 'copy',
        type: 'file',
        id: dest,
        host: 'localhost',
        task: 't',
        createdAt: '',
      },
    )
    await expect(fs.stat(dest)).rejects.toThrow()
  })

  it('replaces atomically (a new inode, no temp files left) and keeps a backup', async () => {
    const dest = path.join(dir, 'b.conf')
    await fs.writeFile(dest, 'old\n')
    const inode = (await fs.stat(dest)).ino
    const ctx = testContext({ conn })
    const r = await converge(copy, ctx, conn, { dest, content: 'new\n', backup: true })
    expect(r.first[0]?.diff).toEqual({ path: dest, before: 'old\n', after: 'new\n' })
    expect(r.second).toEqual([])
    const backup = String(r.result?.output?.backup_file)
    expect(backup).toMatch(/b\.conf\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$/)
    expect(await fs.readFile(backup, 'utf8')).toBe('old\n')
    expect((await fs.stat(dest)).ino).not.toBe(inode)
    expect((await fs.readdir(dir)).filter((f) => f.includes('.rb-'))).toEqual([])
    expect(ctx.records).toEqual([])
  })

  it('a failing validate leaves the old file untouched and fails with the validator output', async () => {
    const dest = path.join(dir, 'c.conf')
    await fs.writeFile(dest, 'good\n')
    const ctx = testContext({ conn })
    const p = copy.params.parse({
      dest,
      content: 'bad\n',
      validate: `sh -c 'grep -q good "$1" || { echo "not good: $(cat "$1")" >&2; exit 3; }' v %s`,
    })
    const s = await copy.gather(ctx, p)
    await expect(copy.apply(ctx, p, copy.plan(p, s), s)).rejects.toThrow(
      /validation of .* failed.*\n.*not good: bad/s,
    )
    expect(await fs.readFile(dest, 'utf8')).toBe('good\n')
    expect((await fs.readdir(dir)).filter((f) => f.includes('.rb-'))).toEqual([])
  })

  it('a passing validate sees the new content', async () => {
    const dest = path.join(dir, 'd.conf')
    await fs.writeFile(dest, 'one\n')
    const r = await converge(copy, testContext({ conn }), conn, {
      dest,
      content: 'good two\n',
      validate: 'grep -q good %s',
    })
    expect(r.second).toEqual([])
    expect(await fs.readFile(dest, 'utf8')).toBe('good two\n')
  })

  it('fixes mode and owner without rewriting the content', async () => {
    const dest = path.join(dir, 'e.conf')
    await fs.writeFile(dest, 'same\n', { mode: 0o644 })
    const inode = (await fs.stat(dest)).ino
    const r = await converge(copy, testContext({ conn }), conn, {
      dest,
      content: 'same\n',
      mode: '0640',
      owner: 'nobody',
      group: 'nogroup',
    })
    expect(r.first).toEqual([
      {
        action: 'update',
        target: `file ${dest}`,
        before: { mode: '0644', owner: 'root', group: 'root' },
        after: { mode: '0640', owner: 'nobody', group: 'nogroup' },
      },
    ])
    expect(r.second).toEqual([])
    const st = await fs.stat(dest)
    expect([st.ino, st.mode & 0o7777, st.uid]).toEqual([inode, 0o640, 65534])
  })

  it('copies binary and latin-1 src files byte for byte, relative to the runbook directory', async () => {
    await fs.writeFile(path.join(dir, 'latin1.txt'), Buffer.from('caf\xe9\n', 'latin1'))
    const l1 = await converge(copy, testContext({ conn, baseDir: dir }), conn, {
      src: 'latin1.txt',
      dest: path.join(dir, 'latin1.copy'),
    })
    expect(l1.second).toEqual([])
    expect(await fs.readFile(path.join(dir, 'latin1.copy'))).toEqual(
      Buffer.from('caf\xe9\n', 'latin1'),
    )
    const src = path.join(dir, 'blob.bin')
    await fs.writeFile(src, Buffer.from([0, 1, 2, 255, 0]))
    const dest = path.join(dir, 'blob.copy')
    const r = await converge(copy, testContext({ conn, baseDir: dir }), conn, {
      src: 'blob.bin',
      dest,
    })
    expect(r.first[0]?.diff).toBeUndefined()
    expect(r.second).toEqual([])
    expect(await fs.readFile(dest)).toEqual(Buffer.from([0, 1, 2, 255, 0]))
  })

  it('refuses both content and src', () => {
    expect(() => copy.params.parse({ dest: '/x', content: 'a', src: 'b' })).toThrow(/exactly one/)
  })
})
