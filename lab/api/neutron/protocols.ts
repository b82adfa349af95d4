/** IP protocol names Neutron accepts in security-group rules, with their numbers. */
export const IP_PROTOCOLS: Readonly<Record<string, number>> = {
  ah: 51,
  dccp: 33,
  egp: 8,
  esp: 50,
  gre: 47,
  hopopt: 0,
  icmp: 1,
  icmpv6: 58,
  igmp: 2,
  ipip: 4,
  'ipv6-encap': 41,
  'ipv6-frag': 44,
  'ipv6-icmp': 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  ospf: 89,
  pgm: 113,
  rsvp: 46,
  sctp: 132,
  tcp: 6,
  udp: 17,
  udplite: 136,
  vrrp: 112,
}

/**
 * The protocol number of a rule's protocol as a string (`'tcp'` -> `'6'`, `'112'` -> `'112'`),
 * null for "any" (null, `any`, `''`), undefined when it is not a protocol Neutron accepts.
 * @example protocolNumber('vrrp') === '112'
 */
export function protocolNumber(p: string | null): string | null | undefined {
  if (p === null || p === '' || p === 'any') return null
  const named = IP_PROTOCOLS[p.toLowerCase()]
  if (named !== undefined) return String(named)
  if (/^\d{1,3}$/.test(p) && Number(p) <= 255) return String(Number(p))
  return undefined
}

/** True for the protocols whose rules take a port range. */
export function hasPorts(num: string | null): boolean {
  return num === '6' || num === '17' || num === '33' || num === '132' || num === '136'
}

/** True for ICMP (v4 or v6), whose port_range_min/max mean type/code. */
export function isIcmp(num: string | null): boolean {
  return num === '1' || num === '58'
}
