/**
 * `openstack.security_group`: a Neutron security group with exactly these rules (compared as a
 * set; Neutron's two default egress rules are kept unless `default_egress: false`), e.g. the
 * seed's "VRRP between the keepalived VMs, ICMP to the VIP, SSH from anywhere".
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { cidr, portRange, protocol } from '../../engine/values.ts'
import type { ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { unknown, type Unknown } from '../../engine/vars/unknown.ts'
import type { Rule, SecurityGroup } from './client/neutron.ts'
import { ownedResource, type At, type Call, type Own } from './lib/owned.ts'
import { ensureTagged, isMarked, ownerOf, type ClaimKind } from './lib/ownership.ts'
import { adoptParam, cloudParam, known, stateParam, type Later, printable } from './lib/params.ts'

/** IP protocol numbers by the names Neutron accepts. */
export const PROTOCOLS: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  egp: 8,
  dccp: 33,
  'ipv6-encap': 41,
  'ipv6-route': 43,
  'ipv6-frag': 44,
  rsvp: 46,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  'ipv6-icmp': 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  ospf: 89,
  encap: 98,
  pgm: 113,
  vrrp: 112,
  sctp: 132,
  udplite: 136,
  udp: 17,
}
const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PROTOCOLS)
    .filter(([n]) => n !== 'ipv6-icmp')
    .map(([n, v]) => [v, n]),
)
const PORTED = new Set([6, 17, 33, 132, 136])

const rule = z
  .strictObject({
    direction: z
      .enum(['ingress', 'egress'])
      .default('ingress')
      .describe('ingress (default) or egress'),
    ethertype: z.enum(['IPv4', 'IPv6']).default('IPv4').describe('IPv4 (default) or IPv6'),
    protocol: protocol
      .optional()
      .describe(
        'tcp, udp, icmp, vrrp, ... or a number (VRRP is 112); omitted or `any`: every protocol',
      ),
    port: portRange.optional().describe('Port or range `8000-8080` (tcp, udp, sctp)'),
    icmp_type: z.number().int().min(0).max(255).optional().describe('ICMP type'),
    icmp_code: z.number().int().min(0).max(255).optional().describe('ICMP code (with icmp_type)'),
    remote_ip_prefix: cidr.optional().describe('Source (ingress) or destination (egress) CIDR'),
    remote_group: z
      .string()
      .min(1)
      .optional()
      .describe('Or a security group name or id; `self` is this group'),
    description: z.string().optional().describe('Description of a new rule'),
  })
  .superRefine((r, ctx) => {
    let proto: number | undefined
    try {
      const n = protocolNumber(r.protocol)
      proto = n === null ? undefined : Number(n)
    } catch {
      proto = undefined // an unknown protocol is reported by its own check
    }
    const bad = (path: string, message: string): void => {
      ctx.addIssue({ code: 'custom', path: [path], message })
    }
    if (r.port !== undefined && proto !== undefined && !PORTED.has(proto))
      bad('port', `a port applies to tcp, udp, sctp, dccp and udplite, not to ${r.protocol}`)
    if ((r.icmp_type !== undefined || r.icmp_code !== undefined) && proto !== 1 && proto !== 58)
      bad(
        r.icmp_type !== undefined ? 'icmp_type' : 'icmp_code',
        `icmp_type and icmp_code apply to icmp only, not to ${r.protocol ?? 'any protocol'}`,
      )
    if (r.icmp_code !== undefined && r.icmp_type === undefined)
      bad('icmp_code', 'icmp_code needs icmp_type')
    if (r.remote_ip_prefix !== undefined && r.remote_group !== undefined)
      bad('remote_group', 'give remote_ip_prefix or remote_group, not both')
    const family = r.remote_ip_prefix?.includes(':') ? 'IPv6' : 'IPv4'
    if (r.remote_ip_prefix !== undefined && r.ethertype !== undefined && family !== r.ethertype)
      bad(
        'remote_ip_prefix',
        `${r.remote_ip_prefix} is an ${family} network, but the rule's ethertype is ${r.ethertype}`,
      )
  })

const params = z.strictObject({
  name: z.string().min(1).describe('Security group name'),
  description: z.string().optional().describe('Description'),
  rules: z
    .array(rule)
    .default([])
    .describe('The rules, compared as a set: missing ones are added, others removed'),
  default_egress: z
    .boolean()
    .default(true)
    .describe("Keep Neutron's default egress rules (any IPv4, any IPv6) without listing them"),
  state: stateParam,
  adopt: adoptParam,
  cloud: cloudParam,
})

/** openstack.security_group's parameters. */
export type SecurityGroupParams = z.infer<typeof params>
type RuleParams = z.infer<typeof rule>

/** A rule in Neutron's terms, as wanted or found. */
export interface NormalRule {
  direction: string
  ethertype: string
  /** Protocol number as text, or null for any. */
  protocol: string | null
  port_range_min: number | null
  port_range_max: number | null
  remote_ip_prefix: string | null
  /** A group id, `self`, or unknown until the group exists. */
  remote_group_id: Later<string> | null
  description?: string | undefined
}

/** What gather found. */
export interface SecurityGroupState {
  group: SecurityGroup | undefined
  how: ClaimKind | undefined
  /** The wanted rules with remote groups resolved (`self` stays `self`). */
  want: NormalRule[]
  /** Group names by id, for readable rules. */
  names: Record<string, string>
}

/** Protocol as Neutron's number (text), null for any. */
export function protocolNumber(p: string | number | null | undefined): string | null {
  if (p === undefined || p === null) return null
  const s = String(p).toLowerCase()
  if (s === 'any' || s === '') return null
  if (/^\d+$/.test(s)) return String(Number(s))
  const n = PROTOCOLS[s]
  if (n === undefined)
    throw new RunbookError('E_PARAM', `unknown protocol '${String(p)}'`, {
      hint: `use a number or one of ${Object.keys(PROTOCOLS).join(', ')}`,
    })
  return String(n)
}

/** A rule parameter in Neutron's terms. */
export function normaliseRule(
  r: RuleParams,
): Omit<NormalRule, 'remote_group_id'> & { remote_group: string | null } {
  if (r.remote_ip_prefix !== undefined && r.remote_group !== undefined)
    throw new RunbookError('E_PARAM', 'a rule takes remote_ip_prefix or remote_group, not both')
  const protocol = protocolNumber(r.protocol)
  let min: number | null = null
  let max: number | null = null
  if (r.port !== undefined) {
    if (protocol === null || !PORTED.has(Number(protocol)))
      throw new RunbookError(
        'E_PARAM',
        `a port needs protocol tcp, udp, sctp, dccp or udplite (got ${String(r.protocol ?? 'any')})`,
      )
    const [a, b] = String(r.port).split('-').map(Number)
    min = a ?? null
    max = b ?? a ?? null
  }
  if (r.icmp_type !== undefined || r.icmp_code !== undefined) {
    if (protocol !== '1' && protocol !== '58')
      throw new RunbookError('E_PARAM', 'icmp_type and icmp_code need protocol icmp')
    min = r.icmp_type ?? null
    max = r.icmp_code ?? null
  }
  return {
    direction: r.direction,
    ethertype: r.ethertype,
    protocol,
    port_range_min: min,
    port_range_max: max,
    remote_ip_prefix: r.remote_ip_prefix ?? null,
    remote_group: r.remote_group ?? null,
    description: r.description,
  }
}

/** `0.0.0.0/0` (or `::/0`) allows the same as no prefix. */
function prefixKey(prefix: string | null): string {
  return prefix === null || prefix === '0.0.0.0/0' || prefix === '::/0' ? '*' : prefix.toLowerCase()
}

/** The identity of a rule, for comparing sets (self is the group's own id when known). */
export function ruleKey(r: NormalRule, selfId: string | undefined): string | undefined {
  const group = r.remote_group_id === 'self' ? selfId : r.remote_group_id
  if (group !== null && (group === undefined || !known(group))) return undefined
  return [
    r.direction,
    r.ethertype,
    r.protocol ?? '*',
    r.port_range_min ?? '*',
    r.port_range_max ?? '*',
    group === null ? prefixKey(r.remote_ip_prefix) : `group:${group as string}`,
  ].join(' ')
}

/** A rule as people read it: `ingress IPv4 tcp 22 from 0.0.0.0/0`. */
export function ruleText(r: NormalRule, names: Record<string, string>, selfId?: string): string {
  const num = r.protocol === null ? null : Number(r.protocol)
  const proto = num === null ? 'any' : (NAMES[num] ?? String(num))
  let ports = ''
  if (num !== null && PORTED.has(num) && r.port_range_min !== null)
    ports =
      r.port_range_max !== null && r.port_range_max !== r.port_range_min
        ? ` ${r.port_range_min}-${r.port_range_max}`
        : ` ${r.port_range_min}`
  if ((num === 1 || num === 58) && r.port_range_min !== null)
    ports = ` type ${r.port_range_min}${r.port_range_max !== null ? ` code ${r.port_range_max}` : ''}`
  const g = r.remote_group_id
  const remote =
    g === null
      ? (r.remote_ip_prefix ?? 'any')
      : g === 'self' || g === selfId
        ? 'group self'
        : known(g)
          ? `group ${names[g] ?? g}`
          : 'group (known after apply)'
  return `${r.direction} ${r.ethertype} ${proto}${ports} ${r.direction === 'egress' ? 'to' : 'from'} ${remote}`
}

const DEFAULT_EGRESS: NormalRule[] = ['IPv4', 'IPv6'].map((ethertype) => ({
  direction: 'egress',
  ethertype,
  protocol: null,
  port_range_min: null,
  port_range_max: null,
  remote_ip_prefix: null,
  remote_group_id: null,
}))

function fromNeutron(r: Rule): NormalRule {
  return {
    direction: r.direction,
    ethertype: r.ethertype,
    protocol: protocolNumber(r.protocol),
    port_range_min: r.port_range_min,
    port_range_max: r.port_range_max,
    remote_ip_prefix: r.remote_ip_prefix,
    remote_group_id: r.remote_group_id,
  }
}

function wanted(p: SecurityGroupParams, s: SecurityGroupState): NormalRule[] {
  return p.default_egress ? [...DEFAULT_EGRESS, ...s.want] : s.want
}

/** Rules to add and to remove. */
function ruleDiff(
  p: SecurityGroupParams,
  s: SecurityGroupState,
  group: SecurityGroup,
): { add: NormalRule[]; remove: Rule[] } {
  const want = wanted(p, s)
  const wantKeys = new Set(want.map((r) => ruleKey(r, group.id)))
  const haveKeys = new Map(
    group.security_group_rules.map((r) => [ruleKey(fromNeutron(r), group.id), r]),
  )
  const seen = new Set<string>()
  const add = want.filter((r) => {
    const k = ruleKey(r, group.id)
    if (k === undefined) return true
    if (haveKeys.has(k) || seen.has(k)) return false
    seen.add(k)
    return true
  })
  const remove = group.security_group_rules.filter(
    (r) => !wantKeys.has(ruleKey(fromNeutron(r), group.id)),
  )
  return { add, remove }
}

/**
 * The changes that bring the group to `p` (pure).
 * @example planSecurityGroup(p, { group: undefined, how: undefined, want: [], names: {} })
 */
export function planSecurityGroup(p: SecurityGroupParams, s: SecurityGroupState): Change[] {
  const target = `security group ${p.name}`
  const g = s.group
  if (p.state === 'absent')
    return g === undefined
      ? []
      : [{ action: 'delete', target, before: { id: g.id, rules: g.security_group_rules.length } }]
  if (g === undefined) {
    const texts = [...new Set(wanted(p, s).map((r) => ruleText(r, s.names)))]
    return [
      {
        action: 'create',
        target,
        after: {
          name: p.name,
          ...(p.description === undefined ? {} : { description: p.description }),
          rules: texts,
          id: unknown('security_group.id'),
        },
      },
    ]
  }
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  if (p.description !== undefined && p.description !== g.description) {
    before['description'] = g.description
    after['description'] = p.description
  }
  const d = ruleDiff(p, s, g)
  for (const r of d.remove) before[ruleText(fromNeutron(r), s.names, g.id)] = r.id
  for (const r of d.add) after[ruleText(r, s.names, g.id)] = unknown('rule.id')
  if (Object.keys(before).length === 0 && Object.keys(after).length === 0) return []
  return [{ action: 'update', target: `${target} (${g.id})`, before, after }]
}

/** What the rules of `p` want: Neutron's terms, remote groups as ids (`self` stays `self`). */
function wantedRules(
  ctx: ModuleContext,
  p: SecurityGroupParams,
  all: readonly SecurityGroup[],
): NormalRule[] {
  const want: NormalRule[] = []
  if (p.state !== 'present') return want
  for (const r of p.rules) {
    const n = normaliseRule(r)
    let group: Later<string> | null = null
    if (n.remote_group !== null) {
      if (n.remote_group === 'self' || n.remote_group === p.name) group = 'self'
      else {
        const found =
          all.find((g) => g.id === n.remote_group) ?? all.find((g) => g.name === n.remote_group)
        if (found !== undefined) group = found.id
        else if (ctx.check) group = unknown(`security group ${n.remote_group}`) as Unknown
        else
          throw new RunbookError(
            'E_API',
            `Neutron: no security group named or with id '${n.remote_group}' in this project`,
          )
      }
    }
    const { remote_group: _ignored, ...rest } = n
    want.push({ ...rest, remote_group_id: group })
  }
  return want
}

async function readGroup({
  ctx,
  api,
  p,
  own,
}: At & { p: SecurityGroupParams; own: Own<SecurityGroup> }): Promise<SecurityGroupState> {
  const project = await api.client.projectId()
  const all = await api.neutron.securityGroups({ project_id: project })
  const names = Object.fromEntries(all.map((g) => [g.id, g.name]))
  const c = await own.claim({
    name: p.name,
    adopt: p.adopt,
    candidates: all.filter((g) => g.name === p.name),
  })
  return { group: c?.resource, how: c?.how, want: wantedRules(ctx, p, all), names }
}

/** A protocol as the official client sends it: by name where Neutron has one (`tcp`, not `6`). */
export function neutronProtocol(num: string): string {
  const name = NAMES[Number(num)]
  // Neutron's map has no `encap`: 98 goes as a number.
  return name === undefined || name === 'encap' ? num : name
}

function ruleBody(groupId: string, r: NormalRule): Record<string, unknown> {
  return {
    security_group_id: groupId,
    direction: r.direction,
    ethertype: r.ethertype,
    ...(r.protocol === null ? {} : { protocol: neutronProtocol(r.protocol) }),
    ...(r.port_range_min === null ? {} : { port_range_min: r.port_range_min }),
    ...(r.port_range_max === null ? {} : { port_range_max: r.port_range_max }),
    ...(r.remote_ip_prefix === null ? {} : { remote_ip_prefix: r.remote_ip_prefix }),
    ...(r.remote_group_id === null
      ? {}
      : { remote_group_id: r.remote_group_id === 'self' ? groupId : r.remote_group_id }),
    ...(r.description === undefined ? {} : { description: r.description }),
  }
}

/** Removes the rules the group should not have and adds the missing ones. */
async function syncRules(
  { api, p, s }: Call<SecurityGroupParams, SecurityGroupState>,
  group: SecurityGroup,
): Promise<SecurityGroup> {
  const d = ruleDiff(p, s, group)
  for (const r of d.remove) await api.neutron.deleteSecurityGroupRule(r.id)
  for (const r of d.add) await api.neutron.ensureSecurityGroupRule(ruleBody(group.id, r))
  return group
}

/**
 * Ensures a security group with exactly these rules.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const securityGroup = ownedResource<
  SecurityGroupParams,
  SecurityGroupState,
  SecurityGroup,
  { id: string }
>({
  module: {
    name: 'openstack.security_group',
    summary:
      'A Neutron security group with exactly these rules (VRRP 112, ICMP, SSH, ...), compared as a set',
    example: `- name: VRRP between the keepalived VMs, ping and SSH
  openstack.security_group:
    name: kld-vrrp
    description: keepalived cluster
    rules:
      - { protocol: vrrp, remote_group: self }
      - { protocol: icmp }
      - { protocol: tcp, port: 22, remote_ip_prefix: 0.0.0.0/0 }`,
    params,
    acceptsUnknown: true,
    plan: (p, s) => printable(planSecurityGroup(p, s)),
    output: (p, s, changes) => ({
      id:
        changes.some((c) => c.action === 'create') || s?.group === undefined
          ? unknown('security_group.id')
          : s.group.id,
      name: p.name,
    }),
  },
  type: 'security_group',
  kind: 'security group',
  id: (g) => g.id,
  marked: isMarked,
  ownerTags: (g) => [...g.tags, g.description],
  find: async (api, name, ownerTag) =>
    (await api.neutron.securityGroups({ name })).find((g) => isMarked(g, ownerTag)),
  tag: ({ ctx, api }, g) => ensureTagged(ctx, api, 'security-groups', g),
  read: readGroup,
  current: (s) => s.group,
  async create({ ctx, api, p }) {
    // Stock Neutron refuses tags in the POST: the marker in `description` until it is tagged.
    const body = { name: p.name, description: ownerOf(ctx).tag }
    return { name: p.name, post: () => api.neutron.createSecurityGroup(body) }
  },
  async created(c, made) {
    const { ctx, api, p } = c
    const tag = ownerOf(ctx).tag
    await ensureTagged(ctx, api, 'security-groups', { id: made.id, tags: [], description: tag })
    if (p.description !== undefined)
      await api.neutron.updateSecurityGroup(made.id, { description: p.description })
    const group = await api.neutron.securityGroup(made.id)
    if (group === undefined)
      throw new RunbookError('E_API', `security group ${p.name}: Neutron does not show it`)
    return syncRules(c, group)
  },
  async update(c) {
    const { api, p, s } = c
    const group = s.group
    if (group === undefined)
      throw new RunbookError('E_API', `security group ${p.name}: Neutron does not show it`)
    if (p.description !== undefined && p.description !== group.description)
      await api.neutron.updateSecurityGroup(group.id, { description: p.description })
    return syncRules(c, group)
  },
  remove: ({ api }, id) => api.neutron.deleteGone('security-groups', id),
  async verify({ p, reread }) {
    const now = await reread()
    const left = planSecurityGroup(p, { ...now, how: now.how ?? 'journal' })
    if (now.group === undefined || left.length > 0)
      throw new RunbookError(
        'E_API',
        `security group ${p.name}: Neutron does not show the rules asked for (${JSON.stringify(left[0]?.after ?? {})})`,
      )
    return {
      id: now.group.id,
      name: p.name,
      rules: now.group.security_group_rules.map((r) =>
        ruleText(fromNeutron(r), now.names, now.group?.id),
      ),
    }
  },
})
