import { describe, expect, it } from 'vitest'
import type { LabPort, LabSecurityGroupRule, NetworkSnapshot } from '../../../lab/driver.ts'
import { mergeRanges, nftElements, parseCidr, parseIpv4 } from '../../../lab/hosts/ipv4.ts'
import { renderRuleset } from '../../../lab/hosts/nft-rules.ts'
import { shortId, vmNames } from '../../../lab/hosts/names.ts'

const rule = (
  r: Partial<LabSecurityGroupRule> & Pick<LabSecurityGroupRule, 'id' | 'direction'>,
): LabSecurityGroupRule => ({
  ethertype: 'IPv4',
  protocol: null,
  portRangeMin: null,
  portRangeMax: null,
  remoteIpPrefix: null,
  remoteGroupId: null,
  ...r,
})

const port = (n: number, extra: Partial<LabPort> = {}): LabPort => ({
  id: `port-${n}`,
  mac: `fa:16:3e:00:00:${n.toString(16).padStart(2, '0')}`,
  fixedIps: [`192.0.2.${n}`],
  allowedAddressPairs: [],
  securityGroupIds: ['sg-default'],
  portSecurityEnabled: true,
  deviceId: null,
  ...extra,
})

const snapshot = (ports: LabPort[]): NetworkSnapshot => ({
  subnetCidr: '192.0.2.0/24',
  gatewayIp: '192.0.2.1',
  ports,
  securityGroups: [
    {
      id: 'sg-default',
      name: 'default',
      rules: [
        rule({ id: 'in-self', direction: 'ingress', remoteGroupId: 'sg-default' }),
        rule({ id: 'out', direction: 'egress' }),
      ],
    },
    {
      id: 'sg-ssh',
      name: 'ssh',
      rules: [
        rule({
          id: 'ssh',
          direction: 'ingress',
          protocol: '6',
          portRangeMin: 22,
          portRangeMax: 22,
          remoteIpPrefix: '0.0.0.0/0',
        }),
        rule({
          id: 'ping',
          direction: 'ingress',
          protocol: '1',
          portRangeMin: 8,
          remoteIpPrefix: '198.51.100.0/24',
        }),
        rule({ id: 'vrrp', direction: 'ingress', protocol: '112', remoteIpPrefix: '192.0.2.0/24' }),
        rule({
          id: 'web',
          direction: 'ingress',
          protocol: '17',
          portRangeMin: 8000,
          portRangeMax: 8100,
        }),
        rule({ id: 'v6', direction: 'ingress', ethertype: 'IPv6', protocol: '6' }),
      ],
    },
  ],
  floatingIps: [
    { id: 'f1', floatingIp: '198.51.100.10', fixedIp: '192.0.2.13', portId: 'port-13' },
    { id: 'f2', floatingIp: '198.51.100.11', fixedIp: null, portId: null },
  ],
})

describe('ipv4 helpers', () => {
  it.each([
    ['192.0.2.254', '192.0.2.254'],
    ['192.0.2.254/24', '192.0.2.0/24'],
    ['192.0.2.128/25', '192.0.2.128/25'],
    ['192.0.2.254/32', '192.0.2.254'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ])('parses %s', (text, rendered) => {
    const r = parseCidr(text)
    expect(r).not.toBeNull()
    expect(nftElements([r!])).toEqual([rendered])
  })

  it.each(['192.0.2.256', '2001:db8::1', '192.0.2.1/33', '192.0.2.1/24/1', 'x'])(
    'rejects %s',
    (text) => {
      expect(parseCidr(text)).toBeNull()
    },
  )

  it('renders unaligned merged ranges as ranges', () => {
    expect(nftElements([parseCidr('192.0.2.13')!, parseCidr('192.0.2.14')!])).toEqual([
      '192.0.2.13-192.0.2.14',
    ])
    expect(nftElements([parseCidr('192.0.2.12')!, parseCidr('192.0.2.13')!])).toEqual([
      '192.0.2.12/31',
    ])
  })

  it('merges overlapping and adjacent ranges, as nft needs', () => {
    const r = (a: string, b: string) => ({ start: parseIpv4(a)!, end: parseIpv4(b)! })
    expect(
      mergeRanges([
        r('192.0.2.11', '192.0.2.11'),
        r('192.0.2.0', '192.0.2.255'),
        r('198.51.100.1', '198.51.100.1'),
        r('198.51.100.2', '198.51.100.2'),
      ]),
    ).toEqual([r('192.0.2.0', '192.0.2.255'), r('198.51.100.1', '198.51.100.2')])
  })
})

describe('names', () => {
  it('derives interface names of at most 15 characters', () => {
    const n = vmNames(shortId('3f2a9c1e-1111-4222-8333-444455556666'))
    expect(n).toMatchObject({ short: '3f2a9c1e', netns: 'rbl-vm-3f2a9c1e', veth: 'rblv-3f2a9c1e' })
    expect(n.veth.length).toBeLessThanOrEqual(15)
    expect(shortId('not-a-uuid')).toMatch(/^[0-9a-f]{8}$/)
  })
})

describe('renderRuleset', () => {
  const vm1 = port(11, { allowedAddressPairs: [{ ipAddress: '192.0.2.254' }] })
  const jump = port(13, { securityGroupIds: ['sg-default', 'sg-ssh'] })
  const open = port(14, { portSecurityEnabled: false })
  const vip = port(254)
  const text = renderRuleset(snapshot([vm1, jump, open, vip]), [
    { veth: 'rblv-0000000b', port: vm1 },
    { veth: 'rblv-0000000d', port: jump },
    { veth: 'rblv-0000000e', port: open },
  ])

  it('replaces both tables in one transaction', () => {
    expect(text.split('\n').slice(0, 4)).toEqual([
      'table bridge rbl_ports',
      'delete table bridge rbl_ports',
      'table ip rbl_router',
      'delete table ip rbl_router',
    ])
  })

  it('lets a port send only from its MAC, fixed IPs and allowed address pairs (ARP too)', () => {
    expect(text).toContain('ether saddr != { fa:16:3e:00:00:0b } drop')
    expect(text).toContain('ether type arp arp saddr ip != { 192.0.2.11, 192.0.2.254 } drop')
    expect(text).toContain('ether type ip ip saddr != { 192.0.2.11, 192.0.2.254 } drop')
    expect(text).toContain('ether type ip ip saddr != { 192.0.2.13 } drop')
    // unknown lab ports are closed; ports without port security are open
    expect(text).toMatch(
      /iifname vmap \{ "rblv-0000000b" : jump from_1, "rblv-0000000d" : jump from_2, "rblv-0000000e" : accept \}/,
    )
    expect(text).toContain('iifname "rblv-*" drop')
  })

  it('renders security-group rules by protocol, ports, prefix and remote group', () => {
    expect(text).toContain('ip saddr @g1 accept comment "sg default rule in-self"')
    expect(text).toMatch(
      /set g1 \{\n\t\t# members of security group sg-default\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = \{ 192\.0\.2\.11, 192\.0\.2\.13-192\.0\.2\.14, 192\.0\.2\.254 \}/,
    )
    expect(text).toContain('tcp dport 22 accept comment "sg ssh rule ssh"')
    expect(text).toContain('ip saddr 198.51.100.0/24 icmp type 8 accept')
    expect(text).toContain('ip saddr 192.0.2.0/24 ip protocol 112 accept')
    expect(text).toContain('udp dport 8000-8100 accept')
    expect(text).not.toContain('rule v6')
    // ingress: established first (from the ip table's mark), then the rules, then drop
    const to2 = /chain to_2 \{([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    const lines = to2
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
    expect(lines.slice(0, 4)).toEqual([
      'ether type arp accept',
      'ether type != ip drop',
      'meta mark & 0x20000 == 0x20000 drop',
      'meta mark & 0x10000 == 0x10000 accept',
    ])
    expect(lines.at(-1)).toBe('drop')
    // egress is stateful in the ip table, keyed by the port mark
    expect(text).toContain('meta mark & 0xffff vmap { 1 : jump egress_1, 2 : jump egress_2 }')
    expect(text).toMatch(
      /chain egress_1 \{\n.*\n\t\tct state established,related accept\n\t\tct state invalid drop\n\t\taccept comment "sg default rule out"\n\t\tdrop/,
    )
  })

  it('maps only associated floating IPs', () => {
    expect(text).toMatch(
      /map fip_dnat \{\n\t\ttype ipv4_addr : ipv4_addr\n\t\telements = \{ 198\.51\.100\.10 : 192\.0\.2\.13 \}/,
    )
    expect(text).toMatch(
      /map fip_snat \{\n\t\ttype ipv4_addr : ipv4_addr\n\t\telements = \{ 192\.0\.2\.13 : 198\.51\.100\.10 \}/,
    )
    expect(text).not.toContain('198.51.100.11')
    expect(text).toContain('iifname "rbl-gw0" drop')
  })

  it('hairpins floating IPs from inside as a Neutron router: SNAT to the own floating IP, else the gateway', () => {
    const post = /chain nat_postrouting \{([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    expect(post.split('\n').slice(2)).toEqual([
      '\t\toifname "rbl-gw0" ip saddr 192.0.2.0/24 snat to ip saddr map @fip_snat',
      '\t\toifname "rbl-gw0" ip saddr 192.0.2.0/24 masquerade',
      '\t\toifname "rbl-br0" ct status dnat ip saddr 192.0.2.0/24 snat to ip saddr map @fip_snat',
      '\t\toifname "rbl-br0" ct status dnat ip saddr 192.0.2.0/24 snat to 198.51.100.2',
    ])
  })

  it('lets only frames to the VM itself come back out of the port they came in by (hairpin mode)', () => {
    const fwd = /chain forward \{([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    const lines = fwd.split('\n').map((l) => l.trim())
    // one guard per port, secured or not, before the per-port chains
    expect(lines.slice(2, 5)).toEqual([
      'iifname "rblv-0000000b" oifname "rblv-0000000b" ether daddr != { fa:16:3e:00:00:0b } drop',
      'iifname "rblv-0000000d" oifname "rblv-0000000d" ether daddr != { fa:16:3e:00:00:0d } drop',
      'iifname "rblv-0000000e" oifname "rblv-0000000e" ether daddr != { fa:16:3e:00:00:0e } drop',
    ])
    expect(lines[5]).toMatch(/^oifname vmap /)
    const out = /chain output \{([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    expect(out).not.toContain('iifname')
  })

  // LVS/DR behind a floating IP: the router DNATs client -> FIP to the VIP, the director forwards
  // the same client's packets unchanged to a real server. Tracked twice, both connections would
  // answer VIP -> client and conntrack would drop the second; Neutron keeps them apart.
  it('leaves frames a VM forwards from outside the subnet untracked, and only those', () => {
    const bridged = /chain bridged \{\n([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    expect(bridged).toContain('type filter hook prerouting priority -290; policy accept;')
    expect(bridged).toContain(
      'ether type ip meta pkttype != host meta mark set meta mark | 0x40000',
    )
    const raw = /chain raw_prerouting \{\n([\s\S]*?)\n\t\}/.exec(text)?.[1] ?? ''
    expect(raw).toContain('type filter hook prerouting priority raw; policy accept;')
    expect(raw).toContain('meta mark & 0x40000 == 0x40000 ip saddr != 192.0.2.0/24 notrack')
    // the bit is set after the port chains (-300), which overwrite the mark with the port index,
    // and read before conntrack (-200); it shares no bit with the others
    expect(text.indexOf('chain bridged')).toBeGreaterThan(text.indexOf('chain prerouting'))
    expect(0x40000 & (0xffff | 0x10000 | 0x20000)).toBe(0)
  })

  it('closes a port with security but no groups, and keeps an empty lab valid', () => {
    const bare = port(20, { securityGroupIds: [] })
    const t = renderRuleset(snapshot([bare]), [{ veth: 'rblv-00000014', port: bare }])
    const to1 = /chain to_1 \{([\s\S]*?)\n\t\}/.exec(t)?.[1] ?? ''
    expect(to1).not.toContain('comment "sg')
    const empty = renderRuleset(snapshot([]), [])
    expect(empty).not.toContain('vmap')
    expect(empty).toContain('map fip_dnat')
  })
})
