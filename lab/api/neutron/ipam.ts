/** IPv4 arithmetic for the lab's subnets: parsing, containment and pool allocation. */

/** An allocation pool as Neutron shows it. */
export interface Pool {
  start: string
  end: string
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

/** True for a dotted-quad IPv4 address. */
export function isIpv4(s: string): boolean {
  return IPV4.test(s)
}

/** `192.0.2.10` -> 3221225994. */
export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
}

/** 3221225994 -> `192.0.2.10`. */
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
}

/** A parsed IPv4 CIDR. */
export interface Cidr {
  network: number
  prefix: number
  size: number
}

/** Parse `192.0.2.0/24`; null when it is not an IPv4 CIDR. A bare address is a /32. */
export function parseCidr(s: string): Cidr | null {
  const [addr, bits, extra] = s.split('/')
  if (addr === undefined || extra !== undefined || !isIpv4(addr)) return null
  const prefix = bits === undefined ? 32 : Number(bits)
  if (!/^\d{1,2}$/.test(bits ?? '32') || prefix > 32) return null
  const size = 2 ** (32 - prefix)
  const network = Math.floor(ipToInt(addr) / size) * size
  return { network, prefix, size }
}

/** `192.0.2.7/24` -> `192.0.2.0/24` (Neutron normalises remote_ip_prefix this way). */
export function normalizeCidr(s: string): string | null {
  const c = parseCidr(s)
  return c === null ? null : `${intToIp(c.network)}/${c.prefix}`
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr)
  if (c === null || !isIpv4(ip)) return false
  const n = ipToInt(ip)
  return n >= c.network && n < c.network + c.size
}

/** The default pool of a subnet: every host address except the gateway, as Neutron computes it. */
export function defaultPools(cidr: string, gateway: string | null): Pool[] {
  const c = parseCidr(cidr)
  if (c === null || c.size < 4) return []
  const first = c.network + 1
  const last = c.network + c.size - 2
  const gw = gateway === null ? -1 : ipToInt(gateway)
  if (gw < first || gw > last) return [{ start: intToIp(first), end: intToIp(last) }]
  const pools: Pool[] = []
  if (gw > first) pools.push({ start: intToIp(first), end: intToIp(gw - 1) })
  if (gw < last) pools.push({ start: intToIp(gw + 1), end: intToIp(last) })
  return pools
}

/** True when `ip` lies in one of the pools. */
export function inPools(pools: Pool[], ip: string): boolean {
  const n = ipToInt(ip)
  return pools.some((p) => n >= ipToInt(p.start) && n <= ipToInt(p.end))
}

/** The lowest address of the pools that is not in `used`, or null when the pools are exhausted. */
export function allocate(pools: Pool[], used: ReadonlySet<string>): string | null {
  for (const p of pools) {
    for (let n = ipToInt(p.start); n <= ipToInt(p.end); n++) {
      const ip = intToIp(n)
      if (!used.has(ip)) return ip
    }
  }
  return null
}
