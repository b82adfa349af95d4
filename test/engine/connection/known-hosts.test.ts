import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  KnownHostsStore,
  entryMatchesHost,
  knownHostName,
  parseKnownHosts,
  verifyHostKey,
  type HostKeyCheckInput,
} from '../../../engine/connection/known-hosts.ts'
import { sha256Fingerprint } from '../../../engine/connection/host-key.ts'
import { RunbookError } from '../../../engine/errors.ts'
import { ECDSA, ED25519, OTHER_ED25519 } from './keys.ts'

const key = Buffer.from(ED25519.b64, 'base64')
const other = Buffer.from(OTHER_ED25519.b64, 'base64')
const otherFp = sha256Fingerprint(other)

describe('parseKnownHosts', () => {
  it('reads plain, marked, commented and broken lines', () => {
    const text = [
      '# comment',
      '',
      `web1,192.0.2.11 ssh-ed25519 ${ED25519.b64} comment here`,
      `@revoked * ssh-ed25519 ${OTHER_ED25519.b64}`,
      `@cert-authority *.example ssh-ed25519 ${ED25519.b64}`,
      'garbage',
      `@unknown x ssh-ed25519 ${ED25519.b64}`,
    ].join('\n')
    const entries = parseKnownHosts(text, 'kh')
    expect(entries.map((e) => [e.line, e.marker, e.hosts])).toEqual([
      [3, undefined, 'web1,192.0.2.11'],
      [4, 'revoked', '*'],
      [5, 'cert-authority', '*.example'],
    ])
  })
})

describe('entryMatchesHost', () => {
  const entry = (hosts: string) => parseKnownHosts(`${hosts} ssh-ed25519 ${ED25519.b64}`, 'kh')[0]!
  it.each([
    ['192.0.2.11', '192.0.2.11', true],
    ['web1,192.0.2.11', '192.0.2.11', true],
    ['192.0.2.*', '192.0.2.11', true],
    ['192.0.2.1?', '192.0.2.11', true],
    ['192.0.2.*,!192.0.2.11', '192.0.2.11', false],
    ['192.0.2.11', '[192.0.2.11]:2222', false],
    ['[192.0.2.11]:2222', '[192.0.2.11]:2222', true],
    ['[192.0.2.11]:2222', '192.0.2.11', false],
    ['WEB1', 'web1', true],
    [ED25519.hashed, '192.0.2.11', true],
    [ED25519.hashed, '192.0.2.12', false],
    [ED25519.hashedPort, '[192.0.2.11]:2222', true],
    [ED25519.hashedPort, '192.0.2.11', false],
  ])('%s matches %s: %s', (hosts, name, expected) => {
    expect(entryMatchesHost(entry(hosts), name)).toBe(expected)
  })

  it('names hosts as OpenSSH does', () => {
    expect(knownHostName('192.0.2.11', 22)).toBe('192.0.2.11')
    expect(knownHostName('Web1', 2222)).toBe('[web1]:2222')
  })
})

describe('verifyHostKey', () => {
  const base = (over: Partial<HostKeyCheckInput>): HostKeyCheckInput => ({
    host: 'web1',
    address: '192.0.2.11',
    port: 22,
    key,
    entries: [],
    mode: 'strict',
    ...over,
  })
  const kh = (text: string) => parseKnownHosts(text, '/p/known_hosts')

  it('accepts a recorded key', () => {
    expect(verifyHostKey(base({ entries: kh(`192.0.2.11 ssh-ed25519 ${ED25519.b64}`) }))).toEqual({
      ok: true,
      record: 'none',
    })
  })

  it('accepts a key recorded under a hashed name or with another key type beside it', () => {
    expect(
      verifyHostKey(base({ entries: kh(`${ED25519.hashed} ssh-ed25519 ${ED25519.b64}`) })).ok,
    ).toBe(true)
    expect(
      verifyHostKey(base({ entries: kh(`192.0.2.11 ${ECDSA.line}\n192.0.2.11 ${ED25519.line}`) }))
        .ok,
    ).toBe(true)
  })

  it.each(['strict', 'accept-new', 'off'] as const)(
    'refuses a changed key in mode %s, naming the host and both fingerprints',
    (mode) => {
      const v = verifyHostKey(
        base({ mode, key: other, entries: kh(`192.0.2.11 ssh-ed25519 ${ED25519.b64}`) }),
      )
      expect(v.ok).toBe(false)
      if (v.ok) return
      expect(v.error).toBeInstanceOf(RunbookError)
      expect(v.error.code).toBe('E_HOST_KEY')
      expect(v.error.message).toContain('web1 (192.0.2.11)')
      expect(v.error.message).toContain(ED25519.sha256)
      expect(v.error.message).toContain(otherFp)
      expect(v.error.message).toContain('/p/known_hosts:1')
      expect(v.error.hint).toContain("ssh-keygen -R '192.0.2.11'")
    },
  )

  it('treats a key of another type than the recorded ones as changed', () => {
    const v = verifyHostKey(base({ entries: kh(`192.0.2.11 ${ECDSA.line}`) }))
    expect(v.ok).toBe(false)
    if (!v.ok) expect(v.error.message).toContain(ECDSA.sha256)
  })

  it('handles an unknown host by mode', () => {
    const strict = verifyHostKey(base({ entries: kh(`192.0.2.12 ${ED25519.line}`) }))
    expect(strict.ok).toBe(false)
    if (!strict.ok) expect(strict.error.message).toMatch(/unknown.*SHA256:TDEVTH9/)
    expect(verifyHostKey(base({ mode: 'accept-new' }))).toEqual({ ok: true, record: 'append' })
    expect(verifyHostKey(base({ mode: 'off' }))).toEqual({ ok: true, record: 'none' })
  })

  it('uses the port in the name', () => {
    expect(verifyHostKey(base({ port: 2222, entries: kh(`192.0.2.11 ${ED25519.line}`) })).ok).toBe(
      false,
    )
    expect(
      verifyHostKey(base({ port: 2222, entries: kh(`[192.0.2.11]:2222 ${ED25519.line}`) })).ok,
    ).toBe(true)
  })

  it('refuses a revoked key even in mode off', () => {
    const v = verifyHostKey(
      base({ mode: 'off', entries: kh(`@revoked 192.0.2.* ${ED25519.line}`) }),
    )
    expect(v.ok).toBe(false)
    if (!v.ok) expect(v.error.message).toContain('revoked')
  })

  it('lets pinned keys decide, and records them when known_hosts disagrees', () => {
    const pinned = [{ type: 'ssh-ed25519', fingerprint: ED25519.sha256 }]
    expect(verifyHostKey(base({ pinned }))).toEqual({ ok: true, record: 'replace' })
    expect(verifyHostKey(base({ pinned, entries: kh(`192.0.2.11 ${ED25519.line}`) }))).toEqual({
      ok: true,
      record: 'none',
    })
    expect(
      verifyHostKey(base({ pinned, entries: kh(`192.0.2.11 ssh-ed25519 ${OTHER_ED25519.b64}`) })),
    ).toEqual({ ok: true, record: 'replace' })
    const v = verifyHostKey(base({ pinned, key: other }))
    expect(v.ok).toBe(false)
    if (!v.ok) {
      expect(v.error.message).toContain(`pinned ${ED25519.sha256} (ED25519)`)
      expect(v.error.message).toContain(otherFp)
    }
  })
})

describe('KnownHostsStore', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rbt-kh-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('appends, replaces, and re-reads what it wrote', async () => {
    const file = path.join(dir, 'sub', 'known_hosts')
    const store = new KnownHostsStore()
    expect(await store.entries([file])).toEqual([])
    await Promise.all([
      store.record(file, '192.0.2.11', key, false),
      store.record(file, '[192.0.2.12]:2222', key, false),
    ])
    expect((await store.entries([file])).map((e) => e.hosts).sort()).toEqual([
      '192.0.2.11',
      '[192.0.2.12]:2222',
    ])
    await store.record(file, '192.0.2.11', other, true)
    const text = readFileSync(file, 'utf8')
    expect(text).not.toContain(`192.0.2.11 ssh-ed25519 ${ED25519.b64}`)
    expect(text).toContain(`192.0.2.11 ssh-ed25519 ${OTHER_ED25519.b64}`)
    expect(text).toContain('[192.0.2.12]:2222')
  })

  it('keeps keys of other types and other hosts on replace', async () => {
    const file = path.join(dir, 'kh2')
    writeFileSync(file, `# mine\n192.0.2.11 ${ECDSA.line}\n192.0.2.11 ${ED25519.line}\n`)
    await new KnownHostsStore().record(file, '192.0.2.11', other, true)
    const entries = parseKnownHosts(readFileSync(file, 'utf8'), file)
    expect(entries.map((e) => e.key)).toEqual([ECDSA.b64, OTHER_ED25519.b64])
  })
})
