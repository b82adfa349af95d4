/** An inclusive range of IPv4 addresses as 32-bit unsigned numbers. */
export interface Ipv4Range {
  start: number
  end: number
}

/** Parses a dotted-quad IPv4 address, or returns null. */
export function parseIpv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim())
  if (m === null) return null
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) return null
  return parts.reduce((acc, p) => acc * 256 + p, 0)
}

/** Formats a 32-bit number as a dotted quad. */
export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/**
 * Parses `a.b.c.d` or `a.b.c.d/len` into the range it covers (host bits ignored, as Neutron
 * does), or null when it is not IPv4.
 * @example parseCidr('192.0.2.254/24') // { start: 192.0.2.0, end: 192.0.2.255 } as numbers
 */
export function parseCidr(text: string): Ipv4Range | null {
  const [addr, len, extra] = text.trim().split('/')
  if (addr === undefined || extra !== undefined) return null
  const ip = parseIpv4(addr)
  if (ip === null) return null
  if (len === undefined) return { start: ip, end: ip }
  if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return null
  const size = 2 ** (32 - Number(len))
  const start = Math.floor(ip / size) * size
  return { start, end: start + size - 1 }
}

/** Sorts ranges and merges the ones that overlap or touch (nft refuses overlapping intervals). */
export function mergeRanges(ranges: readonly Ipv4Range[]): Ipv4Range[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start)
  const out: Ipv4Range[] = []
  for (const r of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && r.start <= last.end + 1) last.end = Math.max(last.end, r.end)
    else out.push({ ...r })
  }
  return out
}

/** Renders ranges as nft set elements: `a.b.c.d`, `a.b.c.d/len` when aligned, else `a.b.c.d-e.f.g.h`. */
export function nftElements(ranges: readonly Ipv4Range[]): string[] {
  return mergeRanges(ranges).map((r) => {
    if (r.start === r.end) return formatIpv4(r.start)
    const size = r.end - r.start + 1
    const len = 32 - Math.log2(size)
    if (Number.isInteger(len) && r.start % size === 0) return `${formatIpv4(r.start)}/${len}`
    return `${formatIpv4(r.start)}-${formatIpv4(r.end)}`
  })
}

/** True when the MAC address is six colon-separated hex bytes. */
export function isMac(text: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)
}
