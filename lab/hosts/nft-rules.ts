import type { LabPort, LabSecurityGroupRule, NetworkSnapshot } from '../driver.ts'
import { formatIpv4, isMac, nftElements, parseCidr, parseIpv4, type Ipv4Range } from './ipv4.ts'
import { BRIDGE, FIP_ROUTER_ADDR, FIP_ROUTER_IF, NFT_BRIDGE_TABLE, NFT_IP_TABLE } from './names.ts'

/** A VM's bridge port and the Neutron port it implements. */
export interface PortBinding {
  /** The veth on the bridge (router namespace). */
  veth: string
  port: LabPort
}

/**
 * Set on a packet's mark by the ip table when conntrack says established or related; the bridge
 * table reads it, because this kernel has no conntrack in the bridge family.
 */
export const MARK_ESTABLISHED = 0x10000
/** Set on a packet's mark when conntrack says invalid. */
export const MARK_INVALID = 0x20000
/** The low bits of the mark: the index of the lab port the frame came from (0: not a lab port). */
export const MARK_PORT_MASK = 0xffff
/**
 * Set on a packet's mark by the bridge table when a frame goes from port to port (not to the
 * router's MAC). The ip table leaves such frames from outside the subnet untracked: a VM that
 * forwards them (an LVS/DR director) got them through the router's DNAT (client -> floating IP ->
 * VIP), whose connection already answers VIP -> client; tracked again they would clash with it, and
 * conntrack drops the clash. Neutron's router and port firewall keep separate connection tables.
 */
export const MARK_BRIDGED = 0x40000

const PROTOCOL_NUMBERS: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  vrrp: 112,
  sctp: 132,
}
const PORT_PROTOCOLS: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' }

/** Parses a rule's protocol: a number or a name; null for any; undefined when unknown (rule skipped). */
function protocolOf(p: string | null): number | null | undefined {
  if (p === null || p === '' || p === 'any') return null
  if (/^\d+$/.test(p)) return Number(p) <= 255 ? Number(p) : undefined
  return PROTOCOL_NUMBERS[p.toLowerCase()]
}

/** The addresses a port may send from: its fixed IPs and allowed address pairs. */
export function portSourceRanges(port: LabPort): Ipv4Range[] {
  const out: Ipv4Range[] = []
  for (const ip of port.fixedIps) {
    const n = parseIpv4(ip)
    if (n !== null) out.push({ start: n, end: n })
  }
  for (const pair of port.allowedAddressPairs) {
    const r = parseCidr(pair.ipAddress)
    if (r !== null) out.push(r)
  }
  return out
}

function portMacs(port: LabPort): string[] {
  const macs = [port.mac, ...port.allowedAddressPairs.map((p) => p.macAddress ?? port.mac)]
    .filter(isMac)
    .map((m) => m.toLowerCase())
  return [...new Set(macs)]
}

function setLiteral(items: readonly string[]): string {
  return `{ ${items.join(', ')} }`
}

/** The match part of one security-group rule, or null when the rule cannot apply to IPv4. */
function ruleMatch(rule: LabSecurityGroupRule, groupSet: (id: string) => string): string | null {
  if (rule.ethertype !== 'IPv4') return null
  const peer = rule.direction === 'ingress' ? 'saddr' : 'daddr'
  const parts: string[] = []
  if (rule.remoteIpPrefix !== null && rule.remoteIpPrefix !== '') {
    const r = parseCidr(rule.remoteIpPrefix)
    if (r === null) return null
    const [el] = nftElements([r])
    if (!(r.start === 0 && r.end === 0xffffffff) && el !== undefined) parts.push(`ip ${peer} ${el}`)
  }
  if (rule.remoteGroupId !== null && rule.remoteGroupId !== '')
    parts.push(`ip ${peer} @${groupSet(rule.remoteGroupId)}`)
  const proto = protocolOf(rule.protocol)
  if (proto === undefined) return null
  if (proto !== null) {
    const l4 = PORT_PROTOCOLS[proto]
    const min = rule.portRangeMin
    const max = rule.portRangeMax ?? min
    if (l4 !== undefined && min !== null && max !== null) {
      parts.push(`${l4} dport ${min === max ? `${min}` : `${min}-${max}`}`)
    } else if (proto === 1 && min !== null) {
      parts.push(`icmp type ${min}`)
      if (rule.portRangeMax !== null) parts.push(`icmp code ${rule.portRangeMax}`)
    } else {
      parts.push(`ip protocol ${proto}`)
    }
  }
  return parts.join(' ')
}

/**
 * The whole lab ruleset for the router namespace, as one `nft -f` transaction that replaces both
 * tables atomically:
 * - `bridge rbl_ports`: per VM port, anti-spoofing of frames entering the bridge (source MAC, IPv4
 *   source and ARP sender must be the port's fixed IPs or allowed address pairs; nothing else
 *   but IPv4 and ARP) and security-group ingress of frames leaving to the port;
 * - `ip rbl_router`: conntrack state copied into the packet mark for the bridge table, security-
 *   group egress per port (stateful), floating-IP DNAT/SNAT, and a forward policy that lets the
 *   machine reach VMs only through floating IPs.
 * @example await run('nft', ['-f', '-'], { input: renderRuleset(snapshot, bindings) })
 */
export function renderRuleset(snapshot: NetworkSnapshot, bindings: readonly PortBinding[]): string {
  const secured = [...bindings].sort((a, b) => a.veth.localeCompare(b.veth))
  const groups = new Map(snapshot.securityGroups.map((g) => [g.id, g]))
  const groupSets = new Map<string, string>()
  const groupSet = (id: string): string => {
    let name = groupSets.get(id)
    if (name === undefined) {
      name = `g${groupSets.size + 1}`
      groupSets.set(id, name)
    }
    return name
  }

  // VM ports are in hairpin mode, so that a floating IP DNATed back to the VM that sent to it
  // (br_netfilter bridges it out of the port it came in by) arrives; everything else a port sends
  // (ARP broadcasts, VRRP multicast, unknown unicast) must not come back to it.
  const hairpinGuards = secured.map((b) => {
    const macs = portMacs(b.port)
    const toVm = macs.length > 0 ? ` ether daddr != ${setLiteral(macs)}` : ''
    return `\t\tiifname "${b.veth}" oifname "${b.veth}"${toVm} drop`
  })
  const bridgeChains: string[] = []
  const ipChains: string[] = []
  const inVmap: string[] = []
  const outVmap: string[] = []
  const markVmap: string[] = []
  secured.forEach((b, i) => {
    const idx = i + 1
    if (!b.port.portSecurityEnabled) {
      inVmap.push(`"${b.veth}" : accept`)
      outVmap.push(`"${b.veth}" : accept`)
      return
    }
    inVmap.push(`"${b.veth}" : jump from_${idx}`)
    outVmap.push(`"${b.veth}" : jump to_${idx}`)
    markVmap.push(`${idx} : jump egress_${idx}`)
    const macs = portMacs(b.port)
    const sources = nftElements(portSourceRanges(b.port))
    const from = [`\tchain from_${idx} {`, `\t\t# port ${b.port.id}: frames the VM sends`]
    if (macs.length === 0) from.push('\t\tdrop')
    from.push(`\t\tether saddr != ${setLiteral(macs)} drop`)
    if (sources.length === 0) {
      from.push('\t\tdrop')
    } else {
      from.push(`\t\tether type arp arp saddr ether != ${setLiteral(macs)} drop`)
      from.push(`\t\tether type arp arp saddr ip != ${setLiteral(sources)} drop`)
      from.push('\t\tether type arp accept')
      from.push(`\t\tether type ip ip saddr != ${setLiteral(sources)} drop`)
      from.push(`\t\tether type ip meta mark set ${idx} accept`)
      from.push('\t\tdrop')
    }
    from.push('\t}')
    bridgeChains.push(from.join('\n'))

    const ingress: string[] = []
    const egress: string[] = []
    for (const gid of b.port.securityGroupIds) {
      const g = groups.get(gid)
      if (g === undefined) continue
      for (const rule of g.rules) {
        const m = ruleMatch(rule, groupSet)
        if (m === null) continue
        const line = `\t\t${m === '' ? '' : `${m} `}accept comment "sg ${g.name} rule ${rule.id}"`
        ;(rule.direction === 'ingress' ? ingress : egress).push(line)
      }
    }
    bridgeChains.push(
      [
        `\tchain to_${idx} {`,
        `\t\t# port ${b.port.id}: security-group ingress`,
        '\t\tether type arp accept',
        '\t\tether type != ip drop',
        `\t\tmeta mark & 0x${MARK_INVALID.toString(16)} == 0x${MARK_INVALID.toString(16)} drop`,
        `\t\tmeta mark & 0x${MARK_ESTABLISHED.toString(16)} == 0x${MARK_ESTABLISHED.toString(16)} accept`,
        ...ingress,
        '\t\tdrop',
        '\t}',
      ].join('\n'),
    )
    ipChains.push(
      [
        `\tchain egress_${idx} {`,
        `\t\t# port ${b.port.id}: security-group egress`,
        '\t\tct state established,related accept',
        '\t\tct state invalid drop',
        ...egress,
        '\t\tdrop',
        '\t}',
      ].join('\n'),
    )
  })

  const sets: string[] = []
  for (const [id, name] of groupSets) {
    const members: Ipv4Range[] = []
    for (const p of snapshot.ports)
      if (p.securityGroupIds.includes(id)) members.push(...portSourceRanges(p))
    const els = nftElements(members)
    sets.push(
      `\tset ${name} {\n\t\t# members of security group ${id}\n\t\ttype ipv4_addr\n\t\tflags interval\n${els.length > 0 ? `\t\telements = ${setLiteral(els)}\n` : ''}\t}`,
    )
  }

  const subnet = parseCidr(snapshot.subnetCidr)
  const prefixLen = snapshot.subnetCidr.split('/')[1] ?? '32'
  const subnetText = subnet === null ? '192.0.2.0/24' : `${formatIpv4(subnet.start)}/${prefixLen}`
  const dnat: string[] = []
  const snat: string[] = []
  for (const f of snapshot.floatingIps) {
    if (f.fixedIp === null || parseIpv4(f.floatingIp) === null || parseIpv4(f.fixedIp) === null)
      continue
    dnat.push(`${f.floatingIp} : ${f.fixedIp}`)
    if (!snat.some((s) => s.startsWith(`${f.fixedIp} :`)))
      snat.push(`${f.fixedIp} : ${f.floatingIp}`)
  }
  const mapDecl = (name: string, els: string[]): string =>
    `\tmap ${name} {\n\t\ttype ipv4_addr : ipv4_addr\n${els.length > 0 ? `\t\telements = ${setLiteral(els)}\n` : ''}\t}`

  const bridgeTable = [
    `table bridge ${NFT_BRIDGE_TABLE} {`,
    ...sets,
    [
      '\tchain prerouting {',
      // before br_netfilter (priority 0) hands IPv4 to the ip table, which reads the port mark
      '\t\ttype filter hook prerouting priority -300; policy accept;',
      ...(inVmap.length > 0 ? [`\t\tiifname vmap ${setLiteral(inVmap)}`] : []),
      '\t\tiifname "rblv-*" drop',
      '\t}',
    ].join('\n'),
    [
      '\tchain bridged {',
      // after the port chains (which set the mark), before br_netfilter (0) runs conntrack
      '\t\ttype filter hook prerouting priority -290; policy accept;',
      `\t\tether type ip meta pkttype != host meta mark set meta mark | 0x${MARK_BRIDGED.toString(16)}`,
      '\t}',
    ].join('\n'),
    ...['forward', 'output'].map((hook) =>
      [
        `\tchain ${hook} {`,
        `\t\ttype filter hook ${hook} priority 0; policy accept;`,
        ...(hook === 'forward' ? hairpinGuards : []),
        ...(outVmap.length > 0 ? [`\t\toifname vmap ${setLiteral(outVmap)}`] : []),
        '\t\toifname "rblv-*" drop',
        '\t}',
      ].join('\n'),
    ),
    ...bridgeChains,
    '}',
  ].join('\n')

  const stateMarks = [
    `\t\tct state established,related meta mark set meta mark | 0x${MARK_ESTABLISHED.toString(16)}`,
    `\t\tct state invalid meta mark set meta mark | 0x${MARK_INVALID.toString(16)}`,
  ]
  const ipTable = [
    `table ip ${NFT_IP_TABLE} {`,
    ...sets,
    mapDecl('fip_dnat', dnat),
    mapDecl('fip_snat', snat),
    [
      '\tchain raw_prerouting {',
      // before conntrack (-200); security groups still apply to these frames, without state
      '\t\ttype filter hook prerouting priority raw; policy accept;',
      `\t\tmeta mark & 0x${MARK_BRIDGED.toString(16)} == 0x${MARK_BRIDGED.toString(16)} ip saddr != ${subnetText} notrack`,
      '\t}',
    ].join('\n'),
    [
      '\tchain state_prerouting {',
      // after conntrack (-200), before DNAT (-100): bridged IPv4 arrives here through br_netfilter
      '\t\ttype filter hook prerouting priority -150; policy accept;',
      ...stateMarks,
      ...(markVmap.length > 0
        ? [`\t\tmeta mark & 0x${MARK_PORT_MASK.toString(16)} vmap ${setLiteral(markVmap)}`]
        : []),
      '\t}',
    ].join('\n'),
    [
      '\tchain state_output {',
      '\t\ttype filter hook output priority -150; policy accept;',
      ...stateMarks,
      '\t}',
    ].join('\n'),
    ...ipChains,
    [
      '\tchain nat_prerouting {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      '\t\tdnat to ip daddr map @fip_dnat',
      '\t}',
    ].join('\n'),
    [
      '\tchain nat_postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      `\t\toifname "${FIP_ROUTER_IF}" ip saddr ${subnetText} snat to ip saddr map @fip_snat`,
      `\t\toifname "${FIP_ROUTER_IF}" ip saddr ${subnetText} masquerade`,
      // hairpin, as a Neutron router: a VM reaching a floating IP from inside is SNATed to its own
      // floating IP, or to the router's gateway address, so the answer comes back through the router
      `\t\toifname "${BRIDGE}" ct status dnat ip saddr ${subnetText} snat to ip saddr map @fip_snat`,
      `\t\toifname "${BRIDGE}" ct status dnat ip saddr ${subnetText} snat to ${FIP_ROUTER_ADDR}`,
      '\t}',
    ].join('\n'),
    [
      '\tchain forward {',
      '\t\ttype filter hook forward priority 0; policy accept;',
      `\t\tiifname "${FIP_ROUTER_IF}" ct state established,related accept`,
      `\t\tiifname "${FIP_ROUTER_IF}" ct status dnat accept`,
      `\t\tiifname "${FIP_ROUTER_IF}" drop`,
      '\t}',
    ].join('\n'),
    '}',
  ].join('\n')

  return [
    `table bridge ${NFT_BRIDGE_TABLE}`,
    `delete table bridge ${NFT_BRIDGE_TABLE}`,
    `table ip ${NFT_IP_TABLE}`,
    `delete table ip ${NFT_IP_TABLE}`,
    bridgeTable,
    ipTable,
    '',
  ].join('\n')
}
