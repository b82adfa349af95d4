/**
 * Keystone v3, the part clients need: tokens (password and application-credential methods,
 * project scope), validation, the catalog, version discovery, and application credentials.
 */
import { catalog, keystoneVersion, keystoneVersions } from '../catalog.ts'
import type { Cloud } from '../cloud.ts'
import { ApiError, asObject, json, keystoneError, unauthorized } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { hexId, isoMicros, secret } from '../ids.ts'
import { auditId, checkSecret, hashSecret, issueToken } from './tokens.ts'
import type { TokenPayload } from './tokens.ts'
import type { AppCredRec, ProjectRec, UserRec } from '../types.ts'

/** The only domain. */
export const DEFAULT_DOMAIN = { id: 'default', name: 'Default' }

const AUTH_FAILED = 'The request you have made requires authentication.'
const MALFORMED =
  'The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.'

function expecting(what: string, where: string): ApiError {
  return keystoneError(400, `Expecting to find ${what} in ${where}. ${MALFORMED}`)
}

function authPluginError(message: string, base: string): ApiError {
  const err = keystoneError(401, message, base)
  const inner = (err.body as { error: Record<string, unknown> }).error
  return new ApiError(
    401,
    { error: { code: inner['code'], identity: {}, message, title: inner['title'] } },
    err.headers,
  )
}

function domainMatches(spec: unknown): boolean {
  const d = asObject(spec)
  if (d === null) return false
  if (typeof d['id'] === 'string') return d['id'] === DEFAULT_DOMAIN.id
  return (
    typeof d['name'] === 'string' && d['name'].toLowerCase() === DEFAULT_DOMAIN.name.toLowerCase()
  )
}

function findUser(cloud: Cloud, spec: Record<string, unknown>, base: string): UserRec {
  const users = cloud.state.users
  let user: UserRec | undefined
  if (typeof spec['id'] === 'string') user = users.find((u) => u.id === spec['id'])
  else if (typeof spec['name'] === 'string') {
    if (spec['domain'] === undefined) throw expecting('domain', 'user')
    if (domainMatches(spec['domain'])) user = users.find((u) => u.name === spec['name'])
  } else throw expecting('id or name', 'user')
  if (user === undefined || !user.enabled) throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  return user
}

function findProject(cloud: Cloud, spec: Record<string, unknown>, base: string): ProjectRec {
  const projects = cloud.state.projects
  let project: ProjectRec | undefined
  if (typeof spec['id'] === 'string') project = projects.find((p) => p.id === spec['id'])
  else if (typeof spec['name'] === 'string') {
    if (spec['domain'] === undefined) throw expecting('domain', 'project')
    if (domainMatches(spec['domain'])) project = projects.find((p) => p.name === spec['name'])
  } else throw expecting('id or name', 'project')
  if (project === undefined || !project.enabled) throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  return project
}

function passwordAuth(
  cloud: Cloud,
  identity: Record<string, unknown>,
  scope: unknown,
  base: string,
): Omit<TokenPayload, 'iat' | 'exp' | 'aud'> {
  const pw = asObject(identity['password'])
  if (pw === null) throw expecting('password', 'identity')
  const userSpec = asObject(pw['user'])
  if (userSpec === null) throw expecting('user', 'password')
  const user = findUser(cloud, userSpec, base)
  if (
    typeof userSpec['password'] !== 'string' ||
    !checkSecret(userSpec['password'], user.passwordHash)
  ) {
    throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  }
  let projectId: string | null = null
  if (scope === undefined || scope === null) {
    // Keystone scopes to the user's default project when no scope is given.
    projectId = user.defaultProjectId
  } else if (scope !== 'unscoped') {
    const s = asObject(scope)
    const p = asObject(s?.['project'])
    if (p === null) throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
    projectId = findProject(cloud, p, base).id
  }
  if (projectId !== null && cloud.roleNames(user.id, projectId, null).length === 0) {
    if (scope === undefined || scope === null) projectId = null
    else throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  }
  return { u: user.id, p: projectId, m: ['password'], a: null }
}

function appCredAuth(
  cloud: Cloud,
  identity: Record<string, unknown>,
  scope: unknown,
  base: string,
): Omit<TokenPayload, 'iat' | 'exp' | 'aud'> {
  const spec = asObject(identity['application_credential'])
  if (spec === null) throw expecting('application_credential', 'identity')
  if (typeof spec['secret'] !== 'string') throw expecting('secret', 'application_credential')
  if (scope !== undefined && scope !== null) {
    // Keystone's renderer adds the auth plugin's `identity` ({}) to the errors those plugins raise.
    throw authPluginError(
      'Error authenticating with application credential: Application credentials cannot request a scope.',
      `${base}/v3`,
    )
  }
  let cred: AppCredRec | undefined
  if (typeof spec['id'] === 'string') {
    cred = cloud.state.appCreds.find((c) => c.id === spec['id'])
    if (cred === undefined)
      throw keystoneError(404, `Could not find Application Credential: ${spec['id']}.`)
  } else if (typeof spec['name'] === 'string') {
    const userSpec = asObject(spec['user'])
    if (userSpec === null) throw expecting('user', 'application credential')
    const user = findUser(cloud, userSpec, base)
    cred = cloud.state.appCreds.find((c) => c.name === spec['name'] && c.userId === user.id)
  } else throw expecting('id or name', 'application credential')
  if (cred === undefined || !checkSecret(spec['secret'], cred.secretHash))
    throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  if (cred.expiresAt !== null && Date.parse(cred.expiresAt) <= Date.now())
    throw keystoneError(401, AUTH_FAILED, `${base}/v3`)
  return { u: cred.userId, p: cred.projectId, m: ['application_credential'], a: cred.id }
}

/** The body of a token, as Keystone renders it. */
export function tokenBody(cloud: Cloud, payload: TokenPayload): Record<string, unknown> {
  const user = cloud.state.users.find((u) => u.id === payload.u)
  const token: Record<string, unknown> = {
    methods: payload.m,
    user: {
      domain: DEFAULT_DOMAIN,
      id: payload.u,
      name: user?.name ?? '',
      password_expires_at: null,
    },
    audit_ids: [payload.aud],
    expires_at: isoMicros(new Date(payload.exp)),
    issued_at: isoMicros(new Date(payload.iat)),
  }
  if (payload.p !== null) {
    const project = cloud.state.projects.find((p) => p.id === payload.p)
    token['project'] = { domain: DEFAULT_DOMAIN, id: payload.p, name: project?.name ?? '' }
    token['is_domain'] = false
    const names = cloud.roleNames(payload.u, payload.p, payload.a)
    token['roles'] = cloud.state.roles
      .filter((r) => names.includes(r.name))
      .map((r) => ({ id: r.id, name: r.name }))
    token['catalog'] = catalog(cloud.endpoint)
  }
  if (payload.a !== null) {
    const cred = cloud.state.appCreds.find((c) => c.id === payload.a)
    token['application_credential'] = {
      id: payload.a,
      name: cred?.name ?? '',
      restricted: cred?.unrestricted !== true,
    }
  }
  return { token }
}

function issue(cloud: Cloud, ctx: Ctx): Reply {
  const auth = asObject(asObject(ctx.body)?.['auth'])
  if (auth === null) throw expecting('auth', 'request body')
  const identity = asObject(auth['identity'])
  if (identity === null) throw expecting('identity', 'auth')
  const methods = identity['methods']
  if (!Array.isArray(methods) || methods.length === 0) throw expecting('methods', 'identity')
  let partial: Omit<TokenPayload, 'iat' | 'exp' | 'aud'>
  if (methods.includes('application_credential'))
    partial = appCredAuth(cloud, identity, auth['scope'], ctx.baseUrl)
  else if (methods.includes('password'))
    partial = passwordAuth(cloud, identity, auth['scope'], ctx.baseUrl)
  else throw keystoneError(401, AUTH_FAILED, `${ctx.baseUrl}/v3`)
  const now = Date.now()
  const payload: TokenPayload = {
    ...partial,
    iat: now,
    exp: now + cloud.tokenTtlMs,
    aud: auditId(),
  }
  const token = issueToken(cloud.state.tokenKey, payload)
  return json(201, tokenBody(cloud, payload), { 'X-Subject-Token': token, Vary: 'X-Auth-Token' })
}

function requireAuth(cloud: Cloud, ctx: Ctx): NonNullable<ReturnType<Cloud['authenticate']>> {
  const token = ctx.headers['x-auth-token']
  const auth = typeof token === 'string' ? cloud.authenticate(token) : null
  if (auth === null) throw unauthorized(ctx.baseUrl)
  return auth
}

function subject(cloud: Cloud, ctx: Ctx): TokenPayload {
  const raw = ctx.headers['x-subject-token']
  const sub = typeof raw === 'string' ? cloud.authenticate(raw) : null
  if (sub === null) throw keystoneError(404, `Could not find token: ${String(raw)}.`)
  return sub.payload
}

function forbidden(action: string): ApiError {
  return keystoneError(403, `You are not authorized to perform the requested action: ${action}.`)
}

function appCredView(c: AppCredRec, cloud: Cloud, base: string): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    description: c.description,
    user_id: c.userId,
    project_id: c.projectId,
    system: null,
    roles: cloud.state.roles
      .filter((r) => c.roleIds.includes(r.id))
      .map((r) => ({
        id: r.id,
        name: r.name,
        domain_id: null,
        description: null,
        options: { immutable: true },
      })),
    expires_at: c.expiresAt,
    unrestricted: c.unrestricted,
    links: { self: `${base}/v3/application_credentials/${c.id}` },
  }
}

function createAppCred(cloud: Cloud, ctx: Ctx): Reply {
  const auth = requireAuth(cloud, ctx)
  const userId = ctx.params[0] ?? ''
  if (userId !== auth.userId) throw forbidden('identity:create_application_credential')
  if (auth.payload.a !== null) throw forbidden('identity:create_application_credential')
  if (auth.projectId === null)
    throw keystoneError(400, 'Application credentials require a project-scoped token.')
  const spec = asObject(asObject(ctx.body)?.['application_credential'])
  if (spec === null) throw keystoneError(400, `'application_credential' is a required property`)
  const name = spec['name']
  if (typeof name !== 'string' || name === '')
    throw keystoneError(400, `'name' is a required property`)
  if (cloud.state.appCreds.some((c) => c.userId === userId && c.name === name)) {
    throw keystoneError(
      409,
      'Conflict occurred attempting to store application_credential - Duplicate entry.',
    )
  }
  const plain = typeof spec['secret'] === 'string' ? spec['secret'] : secret(48)
  // Keystone records the caller's effective roles, implied ones included (member -> reader).
  const effective = new Set(cloud.roleNames(userId, auth.projectId, null))
  const roleIds = cloud.state.roles.filter((r) => effective.has(r.name)).map((r) => r.id)
  const cred: AppCredRec = {
    id: hexId(),
    name,
    description: typeof spec['description'] === 'string' ? spec['description'] : null,
    userId,
    projectId: auth.projectId,
    secretHash: hashSecret(plain),
    roleIds,
    expiresAt: typeof spec['expires_at'] === 'string' ? spec['expires_at'] : null,
    unrestricted: typeof spec['unrestricted'] === 'boolean' ? spec['unrestricted'] : null,
  }
  cloud.state.appCreds.push(cred)
  return json(201, {
    application_credential: { ...appCredView(cred, cloud, ctx.baseUrl), secret: plain },
  })
}

/** Keystone's routes (mounted at the root of the port). */
export function keystoneRoutes(cloud: Cloud): Route[] {
  const commitThen = (r: Reply) => cloud.commit().then(() => r)
  return [
    { method: 'GET', pattern: /^\/?$/, handler: (ctx) => json(300, keystoneVersions(ctx.baseUrl)) },
    {
      method: 'GET',
      pattern: /^\/v3\/?$/,
      handler: (ctx) => json(200, { version: keystoneVersion(ctx.baseUrl) }),
    },
    { method: 'POST', pattern: /^\/v3\/auth\/tokens$/, handler: (ctx) => issue(cloud, ctx) },
    {
      method: 'GET',
      pattern: /^\/v3\/auth\/tokens$/,
      handler: (ctx) => {
        requireAuth(cloud, ctx)
        const raw = ctx.headers['x-subject-token']
        return json(200, tokenBody(cloud, subject(cloud, ctx)), { 'X-Subject-Token': String(raw) })
      },
    },
    {
      method: 'HEAD',
      pattern: /^\/v3\/auth\/tokens$/,
      handler: (ctx) => {
        requireAuth(cloud, ctx)
        subject(cloud, ctx)
        return { status: 200 }
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/v3\/auth\/tokens$/,
      handler: (ctx) => {
        requireAuth(cloud, ctx)
        subject(cloud, ctx)
        cloud.revoked.add(String(ctx.headers['x-subject-token']))
        return { status: 204 }
      },
    },
    {
      method: 'GET',
      pattern: /^\/v3\/auth\/catalog$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        if (auth.projectId === null)
          throw keystoneError(
            403,
            'A project-scoped token is required to produce a service catalog.',
          )
        return json(200, {
          catalog: catalog(cloud.endpoint),
          links: { self: `${ctx.baseUrl}/v3/auth/catalog`, previous: null, next: null },
        })
      },
    },
    {
      method: 'GET',
      pattern: /^\/v3\/auth\/projects$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        const ids = new Set(
          cloud.state.assignments.filter((a) => a.userId === auth.userId).map((a) => a.projectId),
        )
        const projects = cloud.state.projects
          .filter((p) => ids.has(p.id))
          .map((p) => projectView(p, ctx.baseUrl))
        return json(200, {
          projects,
          links: { self: `${ctx.baseUrl}/v3/auth/projects`, previous: null, next: null },
        })
      },
    },
    {
      method: 'GET',
      pattern: /^\/v3\/projects\/([^/]+)$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        const p = cloud.state.projects.find((x) => x.id === ctx.params[0])
        if (!auth.isAdmin && p?.id !== auth.projectId) throw forbidden('identity:get_project')
        if (p === undefined)
          throw keystoneError(404, `Could not find project: ${ctx.params[0] ?? ''}.`)
        return json(200, { project: projectView(p, ctx.baseUrl) })
      },
    },
    {
      method: 'GET',
      pattern: /^\/v3\/users\/([^/]+)\/application_credentials$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        if (auth.userId !== ctx.params[0] && !auth.isAdmin)
          throw forbidden('identity:list_application_credentials')
        const name = ctx.query.get('name')
        const creds = cloud.state.appCreds.filter(
          (c) => c.userId === ctx.params[0] && (name === null || c.name === name),
        )
        return json(200, {
          application_credentials: creds.map((c) => appCredView(c, cloud, ctx.baseUrl)),
          links: {
            self: `${ctx.baseUrl}/v3/users/${ctx.params[0] ?? ''}/application_credentials`,
            previous: null,
            next: null,
          },
        })
      },
    },
    {
      method: 'POST',
      pattern: /^\/v3\/users\/([^/]+)\/application_credentials$/,
      handler: (ctx) => commitThen(createAppCred(cloud, ctx)),
    },
    {
      method: 'GET',
      pattern: /^\/v3\/users\/([^/]+)\/application_credentials\/([^/]+)$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        const c = cloud.state.appCreds.find(
          (x) => x.id === ctx.params[1] && x.userId === ctx.params[0],
        )
        if (c === undefined || (c.userId !== auth.userId && !auth.isAdmin)) {
          throw keystoneError(404, `Could not find Application Credential: ${ctx.params[1] ?? ''}.`)
        }
        return json(200, { application_credential: appCredView(c, cloud, ctx.baseUrl) })
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/v3\/users\/([^/]+)\/application_credentials\/([^/]+)$/,
      handler: (ctx) => {
        const auth = requireAuth(cloud, ctx)
        const i = cloud.state.appCreds.findIndex(
          (x) => x.id === ctx.params[1] && x.userId === ctx.params[0],
        )
        const c = cloud.state.appCreds[i]
        if (c === undefined || (c.userId !== auth.userId && !auth.isAdmin)) {
          throw keystoneError(404, `Could not find Application Credential: ${ctx.params[1] ?? ''}.`)
        }
        cloud.state.appCreds.splice(i, 1)
        return commitThen({ status: 204 })
      },
    },
  ]
}

function projectView(p: ProjectRec, base: string): Record<string, unknown> {
  return {
    id: p.id,
    name: p.name,
    domain_id: p.domainId,
    description: p.description,
    enabled: p.enabled,
    parent_id: p.domainId,
    is_domain: false,
    tags: [],
    options: {},
    links: { self: `${base}/v3/projects/${p.id}` },
  }
}
