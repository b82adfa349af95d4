/**
 * Host keys from a server's console output, so that the engine can trust a VM it has just created
 * before its first connection instead of trusting on first use. cloud-init prints two blocks:
 *
 *   -----BEGIN SSH HOST KEY FINGERPRINTS-----
 *   256 SHA256:Yx... root@vm (ED25519)          (older images: MD5 hex, e.g. 2048 aa:bb:... (RSA))
 *   -----END SSH HOST KEY FINGERPRINTS-----
 *   -----BEGIN SSH HOST KEY KEYS-----
 *   ssh-ed25519 AAAAC3Nza... root@vm
 *   -----END SSH HOST KEY KEYS-----
 *
 * Lines may carry any prefix (`ec2: `, `<14>Jan  1 00:00:00 cloud-init: `, a kernel timestamp).
 * Only lines inside those blocks are read.
 */
import {
  decodeKeyBlob,
  keyType,
  keyTypeFromDisplay,
  md5Fingerprint,
  sha256Fingerprint,
} from './host-key.ts'

/** One host key the server is expected to show. */
export interface PinnedHostKey {
  /** OpenSSH key type when known (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`). */
  type?: string | undefined
  /** `SHA256:base64` or `MD5:aa:bb:...`. */
  fingerprint: string
  /** The base64 key blob, when the console printed the key itself. */
  key?: string | undefined
}

const FP_LINE =
  /\b(\d{3,5})\s+(SHA256:[A-Za-z0-9+/]{20,}=*|(?:MD5:)?(?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2})(?:\s+.*?)?\s*\(([A-Za-z0-9-]+)\)\s*$/
const KEY_LINE =
  /\b((?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[A-Za-z0-9@.-]+))\s+(AAAA[A-Za-z0-9+/]+={0,2})(?=\s|$)/

/**
 * Every host key a console log announces, deduplicated; [] when it has none.
 * @example
 * const pins = parseConsoleFingerprints(await nova.consoleLog(id))
 * pool.get('web1', { address: '192.0.2.11', via: 'jump', pinnedHostKeys: pins })
 */
export function parseConsoleFingerprints(consoleLog: string): PinnedHostKey[] {
  const out = new Map<string, PinnedHostKey>()
  const add = (k: PinnedHostKey): void => {
    const seen = out.get(k.fingerprint)
    out.set(k.fingerprint, { ...seen, ...k, type: k.type ?? seen?.type, key: k.key ?? seen?.key })
  }
  let block: 'fp' | 'keys' | undefined
  for (const raw of consoleLog.split(/\r?\n|\r/)) {
    // eslint-disable-next-line no-control-regex -- strips terminal escapes (ESC [ … letter)
    const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
    if (line.includes('-----BEGIN SSH HOST KEY FINGERPRINTS-----')) block = 'fp'
    else if (line.includes('-----BEGIN SSH HOST KEY KEYS-----')) block = 'keys'
    else if (/-----END SSH HOST KEY (FINGERPRINTS|KEYS)-----/.test(line)) block = undefined
    else if (block === 'fp') {
      const m = FP_LINE.exec(line)
      if (!m) continue
      const bits = Number(m[1])
      const fp = m[2]!
      const fingerprint = fp.startsWith('SHA256:')
        ? fp
        : `MD5:${fp.replace(/^MD5:/, '').toLowerCase()}`
      add({ type: keyTypeFromDisplay(m[3]!, bits), fingerprint })
    } else if (block === 'keys') {
      const m = KEY_LINE.exec(line)
      if (!m) continue
      const blob = decodeKeyBlob(m[2]!)
      if (!blob || keyType(blob) !== m[1]) continue
      add({ type: m[1], fingerprint: sha256Fingerprint(blob), key: m[2] })
    }
  }
  return dropMd5Duplicates([...out.values()])
}

/** An MD5 pin whose key is also pinned by SHA256 adds nothing; keep the list readable. */
function dropMd5Duplicates(keys: PinnedHostKey[]): PinnedHostKey[] {
  const md5OfKeys = new Set(
    keys.flatMap((k) => (k.key ? [md5Fingerprint(Buffer.from(k.key, 'base64'))] : [])),
  )
  return keys.filter((k) => !(k.fingerprint.startsWith('MD5:') && md5OfKeys.has(k.fingerprint)))
}

/**
 * A pin written by hand: `SHA256:...`, `MD5:aa:bb:...`, or a public key line `ssh-ed25519 AAAA... [comment]`.
 * @example parsePinnedHostKey('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...')
 */
export function parsePinnedHostKey(text: string): PinnedHostKey | undefined {
  const s = text.trim()
  if (/^SHA256:[A-Za-z0-9+/]{20,}=*$/.test(s)) return { fingerprint: s.replace(/=+$/, '') }
  const md5 = /^(?:MD5:)?((?:[0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2})$/.exec(s)
  if (md5) return { fingerprint: `MD5:${md5[1]!.toLowerCase()}` }
  const m = KEY_LINE.exec(s)
  const blob = m ? decodeKeyBlob(m[2]!) : undefined
  if (m && blob && keyType(blob) === m[1])
    return { type: m[1], fingerprint: sha256Fingerprint(blob), key: m[2] }
  return undefined
}

/** Whether `blob` is one of the pinned keys (by key, SHA256 or MD5 fingerprint). */
export function matchesPinned(blob: Buffer, pins: PinnedHostKey[]): boolean {
  const sha = sha256Fingerprint(blob)
  const md5 = md5Fingerprint(blob).toLowerCase()
  const b64 = blob.toString('base64')
  return pins.some(
    (p) =>
      p.key === b64 ||
      p.fingerprint.replace(/=+$/, '') === sha ||
      p.fingerprint.toLowerCase() === md5,
  )
}
