/**
 * The little IPv4 arithmetic the keepalived checks need: parsing an address with an optional
 * prefix, and whether an address lies in a network. node:net validates the dotted quad.
 */
import { isIPv4 } from 'node:net'

/** An IPv4 address with the prefix it was written with (32 when none). */
export interface Ipv4Cidr {
  address: string
  prefix: number
  /** Whether the text carried an explicit `/prefix`. */
  explicit: boolean
}

/**
 * Parses `192.0.2.254` or `192.0.2.254/24`; null when it is neither.
 * @example parseIpv4Cidr('192.0.2.254/24') // { address: '192.0.2.254', prefix: 24, explicit: true }
 */
export function parseIpv4Cidr(text: string): Ipv4Cidr | null {
  const m = /^([^/\s]+)(?:\/(\d{1,2}))?$/.exec(text.trim())
  if (!m || !isIPv4(m[1] ?? '')) return null
  const prefix = m[2] === undefined ? 32 : Number(m[2])
  if (prefix > 32) return null
  return { address: m[1] ?? '', prefix, explicit: m[2] !== undefined }
}

/** Whether `text` is a dotted-quad IPv4 address (no prefix). */
export function isIpv4(text: string): boolean {
  return isIPv4(text)
}

function toNumber(address: string): number {
  return address.split('.').reduce((n, o) => n * 256 + Number(o), 0)
}

/**
 * Whether `address` is inside `network/prefix`.
 * @example inNetwork('192.0.2.254', '192.0.2.11', 24) // true
 */
export function inNetwork(address: string, network: string, prefix: number): boolean {
  const size = 2 ** (32 - prefix)
  return Math.floor(toNumber(address) / size) === Math.floor(toNumber(network) / size)
}

/**
 * The network of an address, as `a.b.c.d/prefix`.
 * @example networkOf('192.0.2.11', 24) // '192.0.2.0/24'
 */
export function networkOf(address: string, prefix: number): string {
  const size = 2 ** (32 - prefix)
  const n = Math.floor(toNumber(address) / size) * size
  return `${[24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')}/${prefix}`
}
