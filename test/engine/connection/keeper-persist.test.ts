import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { identityKey } from '../../../engine/connection/keeper.ts'
import { Frame, FrameReader, encodeFrame } from '../../../engine/connection/mux.ts'
import {
  PERSIST_DEFAULT_SECONDS,
  checkKeeperDir,
  keeperDir,
  keeperSocket,
  persistSecondsFromEnv,
} from '../../../engine/connection/persist.ts'
import type { ResolvedEndpoint } from '../../../engine/connection/transport.ts'
import { RunbookError } from '../../../engine/errors.ts'

const base = mkdtempSync(path.join(os.tmpdir(), 'rb-persist-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))

describe('frames', () => {
  it('splits a stream cut anywhere into the frames written', () => {
    const frames = [
      encodeFrame(Frame.Open, { op: 'status' }),
      encodeFrame(Frame.Data, Buffer.from('ls\n')),
      encodeFrame(Frame.Eof),
      encodeFrame(Frame.Stderr, Buffer.alloc(70_000, 1)),
    ]
    const all = Buffer.concat(frames)
    for (const step of [1, 3, 7, 4096, all.length]) {
      const got: Array<[number, number]> = []
      const r = new FrameReader((t, b) => got.push([t, b.length]))
      for (let i = 0; i < all.length; i += step) r.push(all.subarray(i, i + step))
      expect(got).toEqual([
        [Frame.Open, 15],
        [Frame.Data, 3],
        [Frame.Eof, 0],
        [Frame.Stderr, 70_000],
      ])
    }
  })

  it('refuses a length no peer sends', () => {
    const bad = Buffer.from([Frame.Data, 0xff, 0xff, 0xff, 0xff])
    expect(() => new FrameReader(() => undefined).push(bad)).toThrow(/frame of/)
  })
})

describe('settings', () => {
  it.each([
    [undefined, PERSIST_DEFAULT_SECONDS],
    ['', PERSIST_DEFAULT_SECONDS],
    ['0', 0],
    [' 300 ', 300],
  ])('RUNBOOK_SSH_PERSIST=%j -> %d', (v, want) => {
    expect(persistSecondsFromEnv({ RUNBOOK_SSH_PERSIST: v })).toBe(want)
  })

  it.each(['yes', '-1', '1.5', '60s'])('RUNBOOK_SSH_PERSIST=%s is refused', (v) => {
    expect(() => persistSecondsFromEnv({ RUNBOOK_SSH_PERSIST: v })).toThrow(RunbookError)
    expect(() => persistSecondsFromEnv({ RUNBOOK_SSH_PERSIST: v })).toThrow(/seconds/)
  })

  it('puts the socket in the runtime directory, else in /tmp per uid', () => {
    expect(keeperDir({ XDG_RUNTIME_DIR: '/run/user/1000' })).toBe('/run/user/1000/runbook')
    expect(keeperDir({})).toBe(`/tmp/runbook-${process.getuid!()}`)
    expect(keeperDir({ RUNBOOK_KEEPER_DIR: '/x/k', XDG_RUNTIME_DIR: '/run/user/1' })).toBe('/x/k')
  })
})

describe('the keeper directory', () => {
  it('is created 0700 and accepted', () => {
    const d = path.join(base, 'fresh')
    expect(checkKeeperDir(d)).toBeUndefined()
    expect(checkKeeperDir(d)).toBeUndefined()
  })

  it('is refused when others may enter it, when it is a symlink, or its socket is a file', () => {
    const open = path.join(base, 'open')
    checkKeeperDir(open)
    chmodSync(open, 0o711)
    expect(checkKeeperDir(open)).toMatch(/mode 711; it must be 700/)
    const link = path.join(base, 'link')
    symlinkSync(path.join(base, 'fresh'), link)
    expect(checkKeeperDir(link)).toMatch(/not a directory/)
    const file = path.join(base, 'file')
    checkKeeperDir(file)
    writeFileSync(keeperSocket(file), '')
    expect(checkKeeperDir(file)).toMatch(/not a socket/)
  })

  it("accepts the user's own socket", async () => {
    const d = path.join(base, 'sock')
    checkKeeperDir(d)
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(keeperSocket(d), r))
    try {
      expect(checkKeeperDir(d)).toBeUndefined()
    } finally {
      server.close()
    }
  })
})

describe('identity', () => {
  const ep = (o: Partial<ResolvedEndpoint> = {}): ResolvedEndpoint => ({
    label: 'h1',
    address: '192.0.2.11',
    port: 22,
    user: 'root',
    privateKeys: ['/k'],
    explicitKeys: true,
    hostKeyChecking: 'strict',
    knownHostsFiles: ['/kh'],
    connectTimeoutMs: 8000,
    keepaliveIntervalMs: 3000,
    keepaliveCountMax: 3,
    ...o,
  })

  it('differs with anything that decides who connects where and how keys are trusted', () => {
    const k = identityKey([ep()])
    for (const o of [
      { user: 'debian' },
      { port: 2222 },
      { privateKeys: ['/other'] },
      { password: 'pw' },
      { hostKeyChecking: 'accept-new' as const },
      { knownHostsFiles: ['/kh2'] },
      { pinned: [{ fingerprint: 'SHA256:x' }] },
    ])
      expect(identityKey([ep(o)])).not.toBe(k)
    expect(identityKey([ep({ label: 'jump', address: '198.51.100.10' }), ep()])).not.toBe(k)
    // the timeout of a connect does not make another connection
    expect(identityKey([ep({ connectTimeoutMs: 1 })])).toBe(k)
  })

  it('holds no secret', () => {
    const k = identityKey([ep({ password: 'S3cret-pw' })])
    expect(k).toMatch(/^[0-9a-f]{64}$/)
    expect(identityKey([ep({ password: 'other' })])).not.toBe(k)
  })
})
