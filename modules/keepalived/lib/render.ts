/**
 * keepalived.conf as text, from checked parameters. Pure and deterministic: the same parameters
 * give the same bytes on every run, so the file's sha256 says whether anything changed.
 */
import { parseIpv4Cidr } from './ipv4.ts'
import type { HealthCheck, RealServer, RenderParams, Resolved, VirtualServer } from './params.ts'

/** The first line of every rendered file. */
export const HEADER = '! Managed by runbook (keepalived.config): local edits are overwritten.'

/** The vrrp_instance name: given, or `VI_<vrid>` as in the seed. */
export function instanceName(p: Pick<RenderParams, 'instance' | 'virtual_router_id'>): string {
  return p.instance ?? `VI_${p.virtual_router_id}`
}

/** global_defs' router_id: given, or the node's name in upper case (`KLD-VM-1`). */
export function routerId(p: Pick<RenderParams, 'router_id'>, node: string): string {
  return p.router_id ?? node.toUpperCase().replace(/[^A-Z0-9_.:-]/g, '_')
}

/**
 * The sync group, commented out: this file holds one VRRP instance, and keepalived refuses a sync
 * group of one ("Sync group G1 has only 1 virtual router(s)"), which would do nothing anyway.
 */
export function syncGroupComment(group: string, instance: string): string[] {
  return [
    `# vrrp_sync_group ${group} { group { ${instance} } }`,
    '# not rendered: a sync group needs two or more VRRP instances; this file has one',
  ]
}

/** A block: `name {`, the body indented by two spaces, `}`. */
function block(head: string, body: string[]): string[] {
  return [`${head} {`, ...body.map((l) => (l === '' ? '' : `  ${l}`)), '}']
}

function num(n: number): string {
  return String(n)
}

function checkBlock(c: HealthCheck): string[] {
  const timers = [
    `connect_timeout ${num(c.connect_timeout)}`,
    ...(c.connect_port !== undefined ? [`connect_port ${c.connect_port}`] : []),
    `retry ${c.retry}`,
    `delay_before_retry ${num(c.delay_before_retry)}`,
  ]
  if (c.type === 'TCP_CHECK') return block('TCP_CHECK', timers)
  const urls = c.urls.flatMap((u) =>
    block('url', [
      `path ${u.path}`,
      ...(u.digest !== undefined ? [`digest ${u.digest}`] : []),
      ...(u.status_code !== undefined ? [`status_code ${u.status_code}`] : []),
    ]),
  )
  return block(c.type, [...urls, ...timers])
}

function realServerBlock(rs: RealServer): string[] {
  return block(`real_server ${rs.address} ${rs.port}`, [
    `weight ${rs.weight}`,
    ...(rs.check ? checkBlock(rs.check) : []),
  ])
}

function virtualServerBlock(vs: VirtualServer): string[] {
  const head = [
    `delay_loop ${vs.delay_loop}`,
    `lb_algo ${vs.lb_algo}`,
    `lb_kind ${vs.lb_kind}`,
    ...(vs.persistence_timeout !== undefined
      ? [`persistence_timeout ${vs.persistence_timeout}`]
      : []),
    `protocol ${vs.protocol}`,
  ]
  return block(`virtual_server ${vs.address} ${vs.port}`, [
    ...head,
    ...vs.real_servers.flatMap((rs) => ['', ...realServerBlock(rs)]),
  ])
}

/**
 * The whole keepalived.conf for one node.
 * @example renderConfig(params, { node: { name: 'kld-vm-1', state: 'MASTER', priority: 120 }, interface: 'ens3', peers: [] })
 */
export function renderConfig(p: RenderParams, r: Resolved): string {
  const name = instanceName(p)
  const vrrp: string[] = [
    `state ${r.node.state}`,
    `interface ${r.interface}`,
    `virtual_router_id ${p.virtual_router_id}`,
    `priority ${r.node.priority}`,
    `advert_int ${num(p.advert_int)}`,
  ]
  if (p.nopreempt) vrrp.push('nopreempt')
  if (p.auth_pass !== undefined)
    vrrp.push(...block('authentication', [`auth_type ${p.auth_type}`, `auth_pass ${p.auth_pass}`]))
  if (p.unicast) {
    vrrp.push(`unicast_src_ip ${r.node.address ?? ''}`)
    vrrp.push(
      ...block(
        'unicast_peer',
        r.peers.map((n) => n.address ?? ''),
      ),
    )
  }
  vrrp.push(
    ...block(
      'virtual_ipaddress',
      p.virtual_ipaddresses.map((v) => {
        const c = parseIpv4Cidr(v)
        return c ? `${c.address}/${c.prefix}` : v
      }),
    ),
  )
  const parts: string[][] = [
    [HEADER],
    block('global_defs', [`router_id ${routerId(p, r.node.name)}`]),
  ]
  if (p.sync_group) parts.push(syncGroupComment(p.sync_group, name))
  parts.push(block(`vrrp_instance ${name}`, vrrp))
  for (const vs of p.virtual_servers) parts.push(virtualServerBlock(vs))
  return `${parts.map((b) => b.join('\n')).join('\n\n')}\n`
}
