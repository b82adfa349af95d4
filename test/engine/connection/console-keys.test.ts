import { describe, expect, it } from 'vitest'
import {
  matchesPinned,
  parseConsoleFingerprints,
  parsePinnedHostKey,
} from '../../../engine/connection/console-keys.ts'
import { md5Fingerprint, sha256Fingerprint } from '../../../engine/connection/host-key.ts'
import { ECDSA, ED25519, OTHER_ED25519 } from './keys.ts'

const cloudInit = [
  '[   10.123456] cloud-init[512]: Cloud-init v. 23.1 running modules:config',
  'ci-info: no authorized SSH keys fingerprints found for user debian.',
  `<14>Nov 22 00:05:01 cloud-init: #############################################################`,
  `<14>Nov 22 00:05:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----`,
  `<14>Nov 22 00:05:01 cloud-init: 256 ${ECDSA.sha256} root@vm1 (ECDSA)`,
  `<14>Nov 22 00:05:01 cloud-init: 256 ${ED25519.sha256} root@vm1 (ED25519)`,
  `<14>Nov 22 00:05:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----`,
  `<14>Nov 22 00:05:01 cloud-init: #############################################################`,
  '-----BEGIN SSH HOST KEY KEYS-----',
  ECDSA.line,
  ED25519.line,
  '-----END SSH HOST KEY KEYS-----',
  `256 ${OTHER_ED25519.b64} outside any block (ED25519)`,
  `ssh-ed25519 ${OTHER_ED25519.b64} printed later by someone`,
].join('\r\n')

describe('parseConsoleFingerprints', () => {
  it('reads both cloud-init blocks, whatever the line prefix, and merges key and fingerprint', () => {
    const pins = parseConsoleFingerprints(cloudInit)
    expect(pins).toEqual([
      { type: 'ecdsa-sha2-nistp256', fingerprint: ECDSA.sha256, key: ECDSA.b64 },
      { type: 'ssh-ed25519', fingerprint: ED25519.sha256, key: ED25519.b64 },
    ])
  })

  it('reads only what is inside the blocks', () => {
    const pins = parseConsoleFingerprints(cloudInit)
    expect(pins.some((p) => p.key === OTHER_ED25519.b64)).toBe(false)
  })

  it('reads the MD5 form of older images (ec2: prefix, DSA and RSA lines)', () => {
    const log = [
      'ec2: #############################################################',
      'ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
      'ec2: 1024 65:d8:d8:bd:09:25:00:e8:74:86:5d:2c:47:b7:9c:97  root@ip-172-31-70-225 (DSA)',
      `ec2: 256 ${ED25519.md5.slice(4).toUpperCase()}  root@ip-172-31-70-225 (ED25519)`,
      'ec2: 2048 45:4d:55:26:e7:d7:bf:30:4e:cf:05:b2:36:10:2b:ef  root@ip-172-31-70-225 (RSA)',
      'ec2: -----END SSH HOST KEY FINGERPRINTS-----',
    ].join('\n')
    const pins = parseConsoleFingerprints(log)
    expect(pins.map((p) => p.type)).toEqual(['ssh-dss', 'ssh-ed25519', 'ssh-rsa'])
    expect(pins[1]!.fingerprint).toBe(ED25519.md5)
    expect(matchesPinned(Buffer.from(ED25519.b64, 'base64'), pins)).toBe(true)
  })

  it('returns [] for a console without the blocks', () => {
    expect(parseConsoleFingerprints('Booting...\nlogin: ')).toEqual([])
  })

  it('reads ssh-keygen -l lines with an empty comment', () => {
    const log = `-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 ${ED25519.sha256} no comment (ED25519)\n256 ${ECDSA.sha256} (ECDSA)\n-----END SSH HOST KEY FINGERPRINTS-----`
    expect(parseConsoleFingerprints(log).map((p) => p.fingerprint)).toEqual([
      ED25519.sha256,
      ECDSA.sha256,
    ])
  })
})

describe('fingerprints', () => {
  it('match ssh-keygen -l', () => {
    const blob = Buffer.from(ED25519.b64, 'base64')
    expect(sha256Fingerprint(blob)).toBe(ED25519.sha256)
    expect(md5Fingerprint(blob)).toBe(ED25519.md5)
    expect(sha256Fingerprint(Buffer.from(ECDSA.b64, 'base64'))).toBe(ECDSA.sha256)
  })
})

describe('parsePinnedHostKey', () => {
  it.each([
    [ED25519.sha256, { fingerprint: ED25519.sha256 }],
    [ED25519.md5, { fingerprint: ED25519.md5 }],
    [ED25519.md5.slice(4), { fingerprint: ED25519.md5 }],
    [ED25519.line, { type: 'ssh-ed25519', fingerprint: ED25519.sha256, key: ED25519.b64 }],
  ])('%s', (text, pin) => {
    expect(parsePinnedHostKey(text)).toEqual(pin)
  })

  it('rejects what is neither', () => {
    expect(parsePinnedHostKey('SHA256:short')).toBeUndefined()
    expect(
      parsePinnedHostKey(
        'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPsottnw9qJAg0vrIG6JX8Zm2wRnBMkr9eT0Dg41LdVQ',
      ),
    ).toBeUndefined()
  })
})
