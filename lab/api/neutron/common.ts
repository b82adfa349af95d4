/**
 * What every Neutron handler shares: request-body parsing with Neutron's error messages, the
 * visibility and policy rules of a member/admin caller, and standard attributes.
 */
import type { Cloud } from '../cloud.ts'
import { ApiError, asObject, neutronError } from '../http.ts'
import type { Ctx } from '../http.ts'
import { isoSeconds, uuid } from '../ids.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type {
  NetworkRec,
  NeutronStandard,
  PortRec,
  SecurityGroupRec,
  SecurityGroupRuleRec,
} from '../types.ts'

/** The caller of a Neutron route (routes are only reached with a project-scoped token). */
export function caller(ctx: Ctx): AuthContext & { projectId: string } {
  const auth = ctx.auth
  if (auth === null || auth.projectId === null)
    throw new ApiError(401, {
      error: {
        code: 401,
        title: 'Unauthorized',
        message: 'The request you have made requires authentication.',
      },
    })
  return { ...auth, projectId: auth.projectId }
}

/** `{"port": {...}}` -> the inner object, with Neutron's messages when it is missing. */
export function resourceBody(
  ctx: Ctx,
  resource: string,
  allowed: readonly string[],
): Record<string, unknown> {
  const body = asObject(ctx.body)
  if (body === null) throw neutronError(400, 'HTTPBadRequest', 'Resource body required')
  const inner = asObject(body[resource])
  if (inner === null)
    throw neutronError(400, 'HTTPBadRequest', `Unable to find '${resource}' in request body`)
  const unknown = Object.keys(inner).filter((k) => !allowed.includes(k))
  if (unknown.length > 0)
    throw neutronError(400, 'HTTPBadRequest', `Unrecognized attribute(s) '${unknown.join(', ')}'`)
  return inner
}

/**
 * A create's body: `tags` is no attribute without the tag extension, and with it one Neutron
 * refuses in a POST (`allow_post: False`) for every resource but ports, whose `tags` the
 * `tag-ports-during-bulk-creation` API definition opens (kept only when its ML2 driver is on:
 * see `portCreateTags`).
 */
export function createBody(
  cloud: Cloud,
  ctx: Ctx,
  resource: string,
  allowed: readonly string[],
): Record<string, unknown> {
  const tagged = cloud.neutronExtensions.has('standard-attr-tag')
  const inner = resourceBody(ctx, resource, tagged ? allowed : allowed.filter((a) => a !== 'tags'))
  if ('tags' in inner && resource !== 'port')
    throw neutronError(400, 'HTTPBadRequest', "Attribute 'tags' not allowed in POST")
  return inner
}

/** The tags a port create keeps: only with `tag-ports-during-bulk-creation` on; else dropped. */
export function portCreateTags(cloud: Cloud, body: Record<string, unknown>): string[] | undefined {
  const tags = optTags(body)
  return cloud.neutronExtensions.has('tag-ports-during-bulk-creation') ? tags : undefined
}

/** Neutron's 400 for a value that fails validation. */
export function invalidInput(attr: string, reason: string): ApiError {
  return neutronError(400, 'HTTPBadRequest', `Invalid input for ${attr}. Reason: ${reason}.`)
}

/** Read an optional string attribute. */
export function optString(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw invalidInput(key, `'${JSON.stringify(v)}' is not a valid string`)
  return v
}

/** Read an optional string-or-null attribute. */
export function optNullableString(
  o: Record<string, unknown>,
  key: string,
): string | null | undefined {
  return o[key] === null ? null : optString(o, key)
}

/** Read an optional boolean attribute (Neutron also accepts 'true'/'false' strings). */
export function optBool(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key]
  if (v === undefined) return undefined
  if (typeof v === 'boolean') return v
  if (typeof v === 'string' && ['true', 'false', 'True', 'False'].includes(v))
    return v.toLowerCase() === 'true'
  throw invalidInput(key, `'${JSON.stringify(v)}' cannot be converted to boolean`)
}

/** Reject attributes that exist but may not be changed by a PUT. */
export function rejectReadOnly(o: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of keys) {
    if (k in o) throw neutronError(400, 'HTTPBadRequest', `Cannot update read-only attribute ${k}`)
  }
}

/** 403 PolicyNotAuthorized, in oslo.policy's words. */
export function policyError(rule: string): ApiError {
  return neutronError(403, 'PolicyNotAuthorized', `${rule} is disallowed by policy`)
}

/** The standard attributes of a new resource. */
export function newStandard(projectId: string, name: string, description: string): NeutronStandard {
  const now = isoSeconds()
  return {
    id: uuid(),
    name,
    description,
    projectId,
    tags: [],
    createdAt: now,
    updatedAt: now,
    revisionNumber: 1,
  }
}

/** Mark a resource changed: bump revision_number and updated_at. */
export function touch(r: { updatedAt: string; revisionNumber: number }): void {
  r.updatedAt = isoSeconds()
  r.revisionNumber += 1
}

/** A non-admin sees its own networks, shared ones and external ones. */
export function canSeeNetwork(n: NetworkRec, auth: AuthContext): boolean {
  return auth.isAdmin || n.projectId === auth.projectId || n.shared || n.external
}

/** A non-admin sees its own ports and the ports on its own networks. */
export function canSeePort(cloud: Cloud, p: PortRec, auth: AuthContext): boolean {
  if (auth.isAdmin || p.projectId === auth.projectId) return true
  const net = cloud.state.networks.find((n) => n.id === p.networkId)
  return net !== undefined && net.projectId === auth.projectId
}

/** Find a visible network or throw 404 NetworkNotFound. */
export function getNetwork(cloud: Cloud, id: string, auth: AuthContext): NetworkRec {
  const n = cloud.state.networks.find((x) => x.id === id)
  if (n === undefined || !canSeeNetwork(n, auth))
    throw neutronError(404, 'NetworkNotFound', `Network ${id} could not be found.`)
  return n
}

/** Find a visible port or throw 404 PortNotFound. */
export function getPort(cloud: Cloud, id: string, auth: AuthContext): PortRec {
  const p = cloud.state.ports.find((x) => x.id === id)
  if (p === undefined || !canSeePort(cloud, p, auth))
    throw neutronError(404, 'PortNotFound', `Port ${id} could not be found.`)
  return p
}

/** Find a visible security group or throw 404 SecurityGroupNotFound. */
export function getSecurityGroup(cloud: Cloud, id: string, auth: AuthContext): SecurityGroupRec {
  const g = cloud.state.securityGroups.find((x) => x.id === id)
  if (g === undefined || (!auth.isAdmin && g.projectId !== auth.projectId)) {
    throw neutronError(404, 'SecurityGroupNotFound', `Security group ${id} does not exist`)
  }
  return g
}

/**
 * The project's `default` security group, created on first use as Neutron does: all egress, and
 * all ingress from members of the group itself.
 */
export function ensureDefaultSecurityGroup(cloud: Cloud, projectId: string): SecurityGroupRec {
  const existing = cloud.state.securityGroups.find(
    (g) => g.projectId === projectId && g.name === 'default',
  )
  if (existing !== undefined) return existing
  const group: SecurityGroupRec = {
    ...newStandard(projectId, 'default', 'Default security group'),
    stateful: true,
  }
  cloud.state.securityGroups.push(group)
  for (const direction of ['egress', 'ingress'] as const) {
    for (const ethertype of ['IPv4', 'IPv6'] as const) {
      cloud.state.securityGroupRules.push(
        newRule(group, {
          direction,
          ethertype,
          remoteGroupId: direction === 'ingress' ? group.id : null,
        }),
      )
    }
  }
  return group
}

/** A rule with defaults for everything not given. */
export function newRule(
  group: SecurityGroupRec,
  r: Partial<SecurityGroupRuleRec> & Pick<SecurityGroupRuleRec, 'direction' | 'ethertype'>,
): SecurityGroupRuleRec {
  const now = isoSeconds()
  return {
    id: uuid(),
    securityGroupId: group.id,
    projectId: group.projectId,
    protocol: null,
    portRangeMin: null,
    portRangeMax: null,
    remoteIpPrefix: null,
    remoteGroupId: null,
    description: '',
    createdAt: now,
    updatedAt: now,
    revisionNumber: 1,
    ...r,
  }
}

/** Validate a `tags` list on create (the tag extension also has its own /tags routes). */
export function optTags(o: Record<string, unknown>): string[] | undefined {
  const v = o['tags']
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.some((t) => typeof t !== 'string'))
    throw invalidInput('tags', `'${JSON.stringify(v)}' is not a list of strings`)
  return v as string[]
}
