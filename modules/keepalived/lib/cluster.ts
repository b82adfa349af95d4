/**
 * What keepalived cannot check and every host of the cluster can: each host sees the whole
 * cluster, so the rules that span nodes (one MASTER, distinct priorities, the MASTER highest,
 * unicast peers) are checked before anything is written, and each problem names its node and field.
 * `clusterProblems` needs only the parameters (it runs when they are parsed); `hostProblems` needs
 * the host's facts too (interface, subnet) and runs at gather.
 */
import { inNetwork, isIpv4, networkOf, parseIpv4Cidr } from './ipv4.ts'
import type { ClusterNode, RenderParams, Resolved } from './params.ts'

/** One problem, at the parameter it is about. */
export interface Problem {
  path: (string | number)[]
  message: string
}

/** The parameters the cluster rules read: the rendered ones they check, and the cluster itself. */
export interface ClusterParams extends Pick<
  RenderParams,
  | 'virtual_router_id'
  | 'auth_type'
  | 'auth_pass'
  | 'virtual_ipaddresses'
  | 'unicast'
  | 'nopreempt'
  | 'virtual_servers'
> {
  cluster: ClusterNode[]
  node?: string | undefined
}

/** The longest password VRRP carries: keepalived truncates anything longer, silently. */
export const AUTH_PASS_MAX = 8

function who(n: ClusterNode): string {
  return `${n.name} (${n.state}, priority ${n.priority})`
}

/** The VIPs' addresses, without prefixes (invalid ones left out). */
export function vipAddresses(vips: readonly string[]): string[] {
  return vips.map((v) => parseIpv4Cidr(v)?.address).filter((a): a is string => a !== undefined)
}

function nodeProblems(p: ClusterParams, out: Problem[]): void {
  const at = (i: number, field?: string): (string | number)[] =>
    field ? ['cluster', i, field] : ['cluster', i]
  const seen = new Map<string, number>()
  const owners = new Set(vipAddresses(p.virtual_ipaddresses))
  p.cluster.forEach((n, i) => {
    const first = seen.get(n.name)
    if (first !== undefined)
      out.push({
        path: at(i, 'name'),
        message: `${n.name} is listed twice (also cluster[${first}])`,
      })
    else seen.set(n.name, i)
    if (n.priority < 1 || n.priority > 255)
      out.push({
        path: at(i, 'priority'),
        message: `${n.name}: priority ${n.priority} is outside 1-254`,
      })
    if (n.priority === 255 && !(n.address !== undefined && owners.has(n.address))) {
      out.push({
        path: at(i, 'priority'),
        message: `${n.name}: priority 255 is reserved for the address owner (a node whose own address is a VIP); use 1-254`,
      })
    }
    if (n.priority === 255 && n.state !== 'MASTER')
      out.push({
        path: at(i, 'state'),
        message: `${n.name}: the address owner (priority 255) must be in state MASTER`,
      })
    if (n.address !== undefined && !isIpv4(n.address))
      out.push({
        path: at(i, 'address'),
        message: `${n.name}: address '${n.address}' is not an IPv4 address`,
      })
    if (p.unicast && n.address === undefined)
      out.push({
        path: at(i, 'address'),
        message: `${n.name}: unicast needs every node's address, and this node has none`,
      })
  })
  const addrs = new Map<string, string>()
  for (const [i, n] of p.cluster.entries()) {
    if (n.address === undefined) continue
    const other = addrs.get(n.address)
    if (other !== undefined)
      out.push({
        path: at(i, 'address'),
        message: `${n.name}: address ${n.address} is also ${other}'s`,
      })
    else addrs.set(n.address, n.name)
  }
}

function stateProblems(p: ClusterParams, out: Problem[]): void {
  const masters = p.cluster.map((n, i) => ({ n, i })).filter((x) => x.n.state === 'MASTER')
  for (const m of masters.slice(1)) {
    out.push({
      path: ['cluster', m.i, 'state'],
      message: `${m.n.name}: a second MASTER (${masters[0]?.n.name} is MASTER too); exactly one node starts as MASTER, or none (every node BACKUP: the highest priority wins the election)`,
    })
  }
  if (p.nopreempt) {
    for (const m of masters) {
      out.push({
        path: ['cluster', m.i, 'state'],
        message: `${m.n.name}: state MASTER with nopreempt: keepalived clears nopreempt on a MASTER; give every node state BACKUP (the highest priority still wins the first election)`,
      })
    }
  }
  if (p.auth_pass !== undefined && p.auth_type === 'AH') {
    for (const m of masters)
      out.push({
        path: ['cluster', m.i, 'state'],
        message: `${m.n.name}: state MASTER with auth_type AH: keepalived starts such an instance as BACKUP; give every node state BACKUP or use PASS`,
      })
  }
  const byPriority = new Map<number, string>()
  p.cluster.forEach((n, i) => {
    const other = byPriority.get(n.priority)
    if (other !== undefined)
      out.push({
        path: ['cluster', i, 'priority'],
        message: `${n.name}: priority ${n.priority} is also ${other}'s; VRRP would break the tie by IP address, so give every node its own priority`,
      })
    else byPriority.set(n.priority, n.name)
  })
  const master = masters[0]?.n
  if (master) {
    p.cluster.forEach((n, i) => {
      if (n !== master && n.priority > master.priority) {
        out.push({
          path: ['cluster', i, 'priority'],
          message: `${n.name}: priority ${n.priority} is above the MASTER's (${who(master)}): ${n.name} would take the VIP over at once; the MASTER needs the highest priority`,
        })
      }
    })
  }
}

function authProblems(p: ClusterParams, out: Problem[]): void {
  if (p.auth_pass === undefined) return
  // The value is a secret: messages say what is wrong with it, never what it is.
  if (p.auth_pass.length === 0) out.push({ path: ['auth_pass'], message: 'auth_pass is empty' })
  if (p.auth_pass.length > AUTH_PASS_MAX)
    out.push({
      path: ['auth_pass'],
      message: `auth_pass has ${p.auth_pass.length} characters; keepalived silently uses only the first ${AUTH_PASS_MAX}: shorten it`,
    })
  if (/[\s!#"{}]/.test(p.auth_pass))
    out.push({
      path: ['auth_pass'],
      message:
        'auth_pass contains a blank or one of ! # " { } that keepalived’s config parser would cut it at',
    })
}

function vipProblems(p: ClusterParams, out: Problem[]): void {
  const seen = new Set<string>()
  p.virtual_ipaddresses.forEach((v, i) => {
    const c = parseIpv4Cidr(v)
    if (!c)
      return void out.push({
        path: ['virtual_ipaddresses', i],
        message: `'${v}' is not an IPv4 address or CIDR (192.0.2.254/24)`,
      })
    if (seen.has(c.address))
      out.push({ path: ['virtual_ipaddresses', i], message: `${c.address} is listed twice` })
    seen.add(c.address)
  })
}

function serverProblems(p: ClusterParams, out: Problem[]): void {
  const vips = new Set(vipAddresses(p.virtual_ipaddresses))
  const services = new Set<string>()
  p.virtual_servers.forEach((vs, i) => {
    const at = (...rest: (string | number)[]): (string | number)[] => [
      'virtual_servers',
      i,
      ...rest,
    ]
    const name = `virtual server ${vs.address}:${vs.port}/${vs.protocol}`
    if (!isIpv4(vs.address))
      out.push({ path: at('address'), message: `'${vs.address}' is not an IPv4 address` })
    else if (!vips.has(vs.address))
      out.push({
        path: at('address'),
        message: `${name}: ${vs.address} is not one of virtual_ipaddresses, so no node would own it`,
      })
    const key = `${vs.address}:${vs.port}/${vs.protocol}`
    if (services.has(key)) out.push({ path: at(), message: `${name} is defined twice` })
    services.add(key)
    const reals = new Set<string>()
    vs.real_servers.forEach((rs, j) => {
      const rat = ['virtual_servers', i, 'real_servers', j]
      if (!isIpv4(rs.address))
        out.push({ path: [...rat, 'address'], message: `'${rs.address}' is not an IPv4 address` })
      if (reals.has(`${rs.address}:${rs.port}`))
        out.push({
          path: rat,
          message: `${name}: real server ${rs.address}:${rs.port} is listed twice`,
        })
      reals.add(`${rs.address}:${rs.port}`)
      if (rs.check === undefined)
        out.push({
          path: [...rat, 'check'],
          message: `${name}: real server ${rs.address} has no health check: keepalived would keep it in the table with its service down; give it TCP_CHECK or HTTP_GET`,
        })
      if (vips.has(rs.address))
        out.push({
          path: [...rat, 'address'],
          message: `${name}: real server ${rs.address} is a VIP: it would forward to itself`,
        })
      if (vs.lb_kind !== 'NAT' && rs.port !== vs.port) {
        out.push({
          path: [...rat, 'port'],
          message: `${name}: real server ${rs.address} port ${rs.port}: with lb_kind ${vs.lb_kind} the packet keeps its port, so the real server must listen on ${vs.port} (keepalived silently resets it); use NAT to map ports`,
        })
      }
    })
  })
}

/**
 * Every problem of the cluster as a whole that the parameters alone show.
 * @example clusterProblems({ cluster: [{ name: 'a', state: 'MASTER', priority: 100 }, { name: 'b', state: 'MASTER', priority: 90 }], ... })
 * // [{ path: ['cluster', 1, 'state'], message: 'b: a second MASTER ...' }]
 */
export function clusterProblems(p: ClusterParams): Problem[] {
  const out: Problem[] = []
  nodeProblems(p, out)
  stateProblems(p, out)
  authProblems(p, out)
  vipProblems(p, out)
  serverProblems(p, out)
  if (p.node !== undefined && !p.cluster.some((n) => n.name === p.node)) {
    out.push({
      path: ['node'],
      message: `'${p.node}' is not in cluster (${p.cluster.map((n) => n.name).join(', ')})`,
    })
  }
  return out
}

/** One line per problem, for an error message. */
export function formatProblems(problems: readonly Problem[]): string {
  const one = (x: Problem): string =>
    `${x.path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('')}: ${x.message}`
  if (problems.length === 1 && problems[0]) return one(problems[0])
  return `${problems.length} problems:\n${problems.map((x) => `  - ${one(x)}`).join('\n')}`
}

/** The host as gather sees it: its inventory name and, when facts are known, its interfaces. */
export interface HostView {
  name: string
  /** The default-route interface, when the host has one. */
  defaultInterface: string | null
  /** IPv4 addresses per interface; null when unknown. */
  interfaces: Record<string, { address: string; prefix: number }[]> | null
}

/**
 * The checks that need the host: which node it is, whether the interface exists, whether the
 * VIPs are in the interface's subnet and the unicast source address is local.
 * @example hostProblems(params, { name: 'kld-vm-1', defaultInterface: 'ens3', interfaces: { ens3: [{ address: '192.0.2.11', prefix: 24 }] } }, undefined)
 */
export function hostProblems(
  p: ClusterParams,
  host: HostView,
  wantedInterface: string | undefined,
): { problems: Problem[]; resolved?: Resolved } {
  const problems: Problem[] = []
  const name = p.node ?? host.name
  const index = p.cluster.findIndex((n) => n.name === name)
  const node = p.cluster[index]
  if (!node)
    problems.push({
      path: ['node'],
      message: `this host is '${name}', which is not in cluster (${p.cluster.map((n) => n.name).join(', ')}); set node: to its cluster name`,
    })
  const iface = wantedInterface ?? host.defaultInterface ?? undefined
  if (iface === undefined)
    problems.push({
      path: ['interface'],
      message: `not given, and ${host.name} has no default route to take it from`,
    })
  const addrs = iface !== undefined ? host.interfaces?.[iface] : undefined
  if (iface !== undefined && host.interfaces && !addrs) {
    problems.push({
      path: ['interface'],
      message: `${iface} does not exist on ${host.name} (it has ${Object.keys(host.interfaces).sort().join(', ')})`,
    })
  }
  if (iface !== undefined && addrs) {
    const vips = new Set(vipAddresses(p.virtual_ipaddresses))
    // The VIP itself may already sit on the interface (on the master): it does not define a subnet.
    const own = addrs.filter((a) => !vips.has(a.address))
    if (own.length > 0) {
      p.virtual_ipaddresses.forEach((v, i) => {
        const c = parseIpv4Cidr(v)
        if (c && !own.some((a) => inNetwork(c.address, a.address, a.prefix))) {
          problems.push({
            path: ['virtual_ipaddresses', i],
            message: `${c.address} is outside ${iface}'s subnet on ${host.name} (${own.map((a) => networkOf(a.address, a.prefix)).join(', ')}): no neighbour would reach it`,
          })
        }
      })
    }
    if (own.length > 0) {
      p.virtual_servers.forEach((vs, i) => {
        if (vs.lb_kind !== 'DR') return
        vs.real_servers.forEach((rs, j) => {
          if (isIpv4(rs.address) && !own.some((a) => inNetwork(rs.address, a.address, a.prefix)))
            problems.push({
              path: ['virtual_servers', i, 'real_servers', j, 'address'],
              message: `real server ${rs.address} is outside ${iface}'s network on ${host.name} (${own.map((a) => networkOf(a.address, a.prefix)).join(', ')}): lb_kind DR forwards by MAC address, so real servers must share the directors' network (TUN or NAT route instead)`,
            })
        })
      })
    }
    if (
      p.unicast &&
      node?.address !== undefined &&
      !addrs.some((a) => a.address === node.address)
    ) {
      problems.push({
        path: ['cluster', index, 'address'],
        message: `${node.name}: ${node.address} is not an address of ${iface} on ${host.name} (${addrs.map((a) => `${a.address}/${a.prefix}`).join(', ') || 'none'}); unicast_src_ip must be local`,
      })
    }
  }
  if (problems.length > 0 || !node || iface === undefined) return { problems }
  return {
    problems,
    resolved: { node, interface: iface, peers: p.cluster.filter((n) => n !== node) },
  }
}
