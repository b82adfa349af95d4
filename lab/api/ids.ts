import { createHash, randomBytes, randomUUID } from 'node:crypto'

/** A Neutron/Nova style id: a dashed UUID (`5e3898d7-11be-483e-9732-b2f5eccd2b2e`). */
export function uuid(): string {
  return randomUUID()
}

/** A Keystone style id: 32 hex digits, no dashes. */
export function hexId(): string {
  return randomUUID().replace(/-/g, '')
}

/** A stable 32-hex id derived from a label, for catalog entries that must not change across restarts. */
export function stableId(label: string): string {
  return createHash('sha256').update(label).digest('hex').slice(0, 32)
}

/** A MAC address in OpenStack's default `fa:16:3e` prefix. */
export function macAddress(): string {
  const b = randomBytes(3)
  return ['fa', '16', '3e', ...[...b].map((x) => x.toString(16).padStart(2, '0'))].join(':')
}

/** A random secret in URL-safe base64. */
export function secret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url')
}

/** `2016-03-08T20:19:41Z`: the timestamp format of Neutron and Nova. */
export function isoSeconds(d: Date = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** `2015-11-07T02:58:43.578000Z`: Keystone's timestamp format (microseconds). */
export function isoMicros(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')
}

/** `2013-09-23T13:37:00.000000`: Nova's `OS-SRV-USG:launched_at` format (no zone). */
export function isoNaiveMicros(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000')
}
