import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { Journal, stateDirFor } from '../../../engine/journal/journal.ts'
import { acquireLock } from '../../../engine/journal/lock.ts'
import { Redactor } from '../../../engine/vars/secrets.ts'

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'rb-journal-'))

describe('Journal', () => {
  it('records, finds, forgets, survives a reopen, and redacts secrets', async () => {
    const dir = tmp()
    const r = new Redactor()
    r.add('s3cret-value')
    const j = await Journal.open(dir, 'rb.yaml', undefined, r)
    await j.record({
      module: 'm',
      type: 'port',
      id: 'p1',
      name: 'kld-vip',
      host: 'localhost',
      task: 't',
      createdAt: 'now',
      data: { note: 'has s3cret-value' },
    })
    await j.record({
      module: 'm',
      type: 'port',
      id: 'p2',
      host: 'localhost',
      task: 't',
      createdAt: 'now',
    })
    await j.forget('port', 'p2')
    const again = await Journal.open(dir, 'rb.yaml', undefined)
    expect(again.find('m', 'port').map((x) => x.id)).toEqual(['p1'])
    expect(readFileSync(path.join(dir, 'journal.json'), 'utf8')).not.toContain('s3cret-value')
  })

  it('keeps one record per host for the same path', async () => {
    const j = await Journal.open(tmp(), 'rb.yaml', undefined)
    for (const host of ['vm1', 'vm2'])
      await j.record({
        module: 'template',
        type: 'file',
        id: '/etc/x.conf',
        host,
        task: 't',
        createdAt: 'now',
      })
    expect(j.find('template', 'file').map((r) => r.host)).toEqual(['vm1', 'vm2'])
    await j.forget('file', '/etc/x.conf', 'vm1')
    expect(j.find('template', 'file').map((r) => r.host)).toEqual(['vm2'])
  })

  it('refuses a corrupt journal instead of starting over', async () => {
    const dir = tmp()
    writeFileSync(path.join(dir, 'journal.json'), '{"version":1,')
    await expect(Journal.open(dir, 'rb.yaml', undefined)).rejects.toThrow(/not valid JSON/)
  })

  it('keys state by runbook and inventory', () => {
    expect(stateDirFor('/s', 'a/vip.yaml', 'i1.yaml')).not.toBe(
      stateDirFor('/s', 'a/vip.yaml', 'i2.yaml'),
    )
    expect(path.basename(stateDirFor('/s', 'a/vip.yaml', undefined))).toMatch(/^vip-[0-9a-f]{10}$/)
  })
})

describe('lock', () => {
  it('lets one holder in, names it to the second, and frees on release', async () => {
    const dir = tmp()
    const a = await acquireLock(dir, 'first')
    await expect(acquireLock(dir, 'second')).rejects.toThrow(
      new RegExp(`pid ${process.pid}.*first`),
    )
    await a.release()
    const b = await acquireLock(dir, 'third')
    await b.release()
  })

  it('waits for a holder that finishes within the timeout', async () => {
    const dir = tmp()
    const a = await acquireLock(dir, 'first')
    setTimeout(() => void a.release(), 300)
    const waits: string[] = []
    const b = await acquireLock(dir, 'second', 5000, (h) => waits.push(h.command))
    await b.release()
    // the wait is said once, with whom it waits for
    expect(waits).toEqual(['first'])
  })

  it('takes over the lock of a dead process', async () => {
    const dir = tmp()
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10)'])
    await new Promise((r) => child.on('exit', r))
    writeFileSync(
      path.join(dir, 'lock'),
      JSON.stringify({
        pid: child.pid,
        host: (await import('node:os')).hostname(),
        command: 'dead',
        startedAt: 'then',
      }),
    )
    const l = await acquireLock(dir, 'me')
    expect(l.tookOverFrom?.pid).toBe(child.pid)
    await l.release()
  })
})

describe('temp files of killed writers', () => {
  it('a writer killed mid-write leaves its temp file; the next open removes it, a live one stays', async () => {
    const dir = tmp()
    const j = await Journal.open(dir, 'rb.yaml', undefined)
    await j.startRun('apply')
    // a real process creates its temp file the way writeFileAtomic names it, then is SIGKILLed
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('fs').writeFileSync(require('path').join(process.argv[1], '.journal.json.rb-' + process.pid + '-0badc0de'), ''); console.log('written'); setInterval(() => {}, 1000)`,
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    await new Promise<void>((res) => child.stdout.once('data', () => res()))
    child.kill('SIGKILL')
    await new Promise((res) => child.once('exit', res))
    const dead = `.journal.json.rb-${child.pid}-0badc0de`
    const live = `.journal.json.rb-${process.pid}-1234abcd`
    writeFileSync(path.join(dir, live), '')
    expect(readdirSync(dir)).toContain(dead)
    const again = await Journal.open(dir, 'rb.yaml', undefined)
    expect(again.removedTemps).toEqual([dead])
    expect(readdirSync(dir).sort()).toEqual([live, 'journal.json'].sort())
    expect(again.data.runs).toHaveLength(1)
  })
})
