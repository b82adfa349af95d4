import type { NetworkSnapshot } from '../driver.ts'
import { q, run, runInNetns } from './exec.ts'
import { formatIpv4, parseCidr, parseIpv4 } from './ipv4.ts'
import {
  BRIDGE,
  FIP_HOST_ADDR,
  FIP_HOST_IF,
  FIP_PREFIX_LEN,
  FIP_ROUTER_ADDR,
  FIP_ROUTER_IF,
  ROUTER_NETNS,
} from './names.ts'

/** The tenant subnet as the hosts implement it. */
export interface TenantSubnet {
  /** Network address, e.g. `192.0.2.0`. */
  network: string
  prefixLen: number
  gateway: string
}

const TENANT = parseCidr('192.0.2.0/24')
const FLOATING = parseCidr('198.51.100.0/25')

/** Checks the snapshot's subnet against the address plan (192.0.2.0/24 only) and returns it. */
export function tenantSubnet(snapshot: NetworkSnapshot): TenantSubnet {
  const r = parseCidr(snapshot.subnetCidr)
  const gw = parseIpv4(snapshot.gatewayIp)
  const prefixLen = Number(snapshot.subnetCidr.split('/')[1] ?? 'x')
  if (r === null || gw === null || TENANT === null || !Number.isInteger(prefixLen)) {
    throw new Error(
      `lab hosts: bad tenant subnet ${snapshot.subnetCidr} / gateway ${snapshot.gatewayIp}`,
    )
  }
  if (r.start < TENANT.start || r.end > TENANT.end || gw < r.start || gw > r.end) {
    throw new Error(
      `lab hosts: the tenant subnet must lie in 192.0.2.0/24 with its gateway inside (got ${snapshot.subnetCidr}, ${snapshot.gatewayIp})`,
    )
  }
  return { network: formatIpv4(r.start), prefixLen, gateway: snapshot.gatewayIp }
}

/** Lists the lab's network namespaces (`ip netns list`, names only). */
export async function listNetns(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list'], { allowFail: true })
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '')
}

async function linkExists(name: string, netns?: string): Promise<boolean> {
  const args =
    netns === undefined ? ['link', 'show', 'dev', name] : ['-n', netns, 'link', 'show', 'dev', name]
  return (await run('ip', args, { allowFail: true })).code === 0
}

/**
 * Makes the router: its namespace with forwarding on, the tenant bridge with the gateway address,
 * and the veth to the machine (198.51.100.1/25 here, 198.51.100.2/25 there). Idempotent.
 */
export async function ensureRouter(subnet: TenantSubnet): Promise<void> {
  if (!(await listNetns()).includes(ROUTER_NETNS)) await run('ip', ['netns', 'add', ROUTER_NETNS])
  await runInNetns(
    ROUTER_NETNS,
    [
      'sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1',
      'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0',
      // IPv4 frames crossing the bridge go through the ip-family hooks (conntrack, the state marks)
      'sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0',
      'ip link set lo up',
      `ip link show dev ${BRIDGE} >/dev/null 2>&1 || ip link add ${BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0`,
      `ip addr replace ${q(`${subnet.gateway}/${subnet.prefixLen}`)} dev ${BRIDGE}`,
      `ip link set ${BRIDGE} up`,
    ].join('\n'),
  )
  if (!(await linkExists(FIP_HOST_IF))) {
    if (await linkExists(FIP_ROUTER_IF, ROUTER_NETNS))
      await run('ip', ['-n', ROUTER_NETNS, 'link', 'del', FIP_ROUTER_IF])
    await run('ip', [
      'link',
      'add',
      FIP_HOST_IF,
      'type',
      'veth',
      'peer',
      'name',
      FIP_ROUTER_IF,
      'netns',
      ROUTER_NETNS,
    ])
  }
  await run('sysctl', ['-qw', `net.ipv6.conf.${FIP_HOST_IF}.disable_ipv6=1`], { allowFail: true })
  await run('ip', ['addr', 'replace', `${FIP_HOST_ADDR}/${FIP_PREFIX_LEN}`, 'dev', FIP_HOST_IF])
  await run('ip', ['link', 'set', FIP_HOST_IF, 'up'])
  await runInNetns(
    ROUTER_NETNS,
    [
      `ip addr replace ${FIP_ROUTER_ADDR}/${FIP_PREFIX_LEN} dev ${FIP_ROUTER_IF}`,
      `ip link set ${FIP_ROUTER_IF} up`,
    ].join('\n'),
  )
}

/** True when the router namespace and its bridge exist. */
export async function routerExists(): Promise<boolean> {
  return (await listNetns()).includes(ROUTER_NETNS) && (await linkExists(BRIDGE, ROUTER_NETNS))
}

/**
 * Puts exactly the associated floating IPs as /32 addresses on the router's outer veth, so that
 * the router answers ARP for them (the nft DNAT does the rest).
 */
export async function syncFloatingAddresses(snapshot: NetworkSnapshot): Promise<void> {
  const want = new Set<string>()
  for (const f of snapshot.floatingIps) {
    const n = parseIpv4(f.floatingIp)
    if (f.fixedIp === null || n === null || FLOATING === null) continue
    if (
      n < FLOATING.start ||
      n > FLOATING.end ||
      f.floatingIp === FIP_HOST_ADDR ||
      f.floatingIp === FIP_ROUTER_ADDR
    )
      continue
    want.add(f.floatingIp)
  }
  const { stdout } = await run('ip', [
    '-n',
    ROUTER_NETNS,
    '-4',
    '-o',
    'addr',
    'show',
    'dev',
    FIP_ROUTER_IF,
  ])
  const have = new Set<string>()
  for (const m of stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/32/g))
    if (m[1] !== undefined) have.add(m[1])
  const cmds: string[] = []
  for (const a of have) if (!want.has(a)) cmds.push(`addr del ${a}/32 dev ${FIP_ROUTER_IF}`)
  for (const a of want) if (!have.has(a)) cmds.push(`addr add ${a}/32 dev ${FIP_ROUTER_IF}`)
  if (cmds.length > 0)
    await run('ip', ['-n', ROUTER_NETNS, '-batch', '-'], { input: `${cmds.join('\n')}\n` })
}
