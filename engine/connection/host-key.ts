/**
 * Host key blobs as the SSH wire format carries them: their type and their fingerprints, in the
 * forms OpenSSH prints (`SHA256:base64`, `MD5:hex:hex`) so that messages match `ssh-keygen -l`.
 */
import { createHash } from 'node:crypto'

/** The key type written inside a public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown'
  const len = blob.readUInt32BE(0)
  if (len > 64 || 4 + len > blob.length) return 'unknown'
  return blob.subarray(4, 4 + len).toString('latin1')
}

/** `SHA256:` and the unpadded base64 digest, as `ssh-keygen -l` prints it. */
export function sha256Fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

/** `MD5:` and colon-separated hex, the form older cloud images print on their console. */
export function md5Fingerprint(blob: Buffer): string {
  const hex = createHash('md5').update(blob).digest('hex')
  return `MD5:${hex.match(/../g)!.join(':')}`
}

/** The short name OpenSSH shows in parentheses: ED25519, ECDSA, RSA, DSA. */
export function displayKeyType(type: string): string {
  if (type === 'ssh-ed25519') return 'ED25519'
  if (type.startsWith('ecdsa-sha2-')) return 'ECDSA'
  if (type === 'ssh-rsa' || type.startsWith('rsa-sha2-')) return 'RSA'
  if (type === 'ssh-dss') return 'DSA'
  if (type.startsWith('sk-ssh-ed25519')) return 'ED25519-SK'
  if (type.startsWith('sk-ecdsa')) return 'ECDSA-SK'
  return type.toUpperCase()
}

/** `SHA256:abc (ED25519)`: a key as messages show it. */
export function describeKey(blob: Buffer): string {
  return `${sha256Fingerprint(blob)} (${displayKeyType(keyType(blob))})`
}

/** The OpenSSH key type for the name in parentheses of a fingerprint line and the key size. */
export function keyTypeFromDisplay(display: string, bits?: number): string | undefined {
  switch (display.toUpperCase()) {
    case 'ED25519':
      return 'ssh-ed25519'
    case 'RSA':
      return 'ssh-rsa'
    case 'DSA':
      return 'ssh-dss'
    case 'ECDSA':
      return bits === 384
        ? 'ecdsa-sha2-nistp384'
        : bits === 521
          ? 'ecdsa-sha2-nistp521'
          : 'ecdsa-sha2-nistp256'
    case 'ED25519-SK':
      return 'sk-ssh-ed25519@openssh.com'
    case 'ECDSA-SK':
      return 'sk-ecdsa-sha2-nistp256@openssh.com'
    default:
      return undefined
  }
}

/** Host key algorithms ssh2 can negotiate that carry a key of `type` (RSA has three). */
export function algorithmsForKeyType(type: string): string[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
  return [type]
}

/** Decodes base64 strictly enough to reject garbage; undefined when it is not a key blob. */
export function decodeKeyBlob(b64: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined
  const blob = Buffer.from(b64, 'base64')
  return keyType(blob) === 'unknown' ? undefined : blob
}
