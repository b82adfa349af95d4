/**
 * Keystone v3 authentication: the request body for password and application-credential auth, and
 * what the client keeps of the answer (the token, its expiry, the catalog, the project).
 */
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import { catalogEntrySchema, type CatalogEntry } from './catalog.ts'
import type { AuthSettings, CloudConfig } from './config.ts'

/** A token and what came with it. */
export interface Token {
  value: string
  /** ms since the epoch. */
  expiresAt: number
  catalog: CatalogEntry[]
  projectId: string | undefined
  projectName: string | undefined
  userId: string
}

const domain = (id: string | undefined, name: string | undefined): Record<string, string> =>
  id !== undefined ? { id } : { name: name ?? 'Default' }

function user(a: AuthSettings): Record<string, unknown> {
  if (a.user_id !== undefined) return { id: a.user_id }
  return { name: a.username, domain: domain(a.user_domain_id, a.user_domain_name) }
}

/**
 * The body of `POST /v3/auth/tokens` for a cloud.
 * @example authBody(resolveCloud({ cloud: 'lab', env: ctx.env }))
 */
export function authBody(c: CloudConfig): Record<string, unknown> {
  const a = c.auth
  if (c.authType === 'v3applicationcredential') {
    const credential: Record<string, unknown> =
      a.application_credential_id !== undefined
        ? { id: a.application_credential_id, secret: a.application_credential_secret }
        : {
            name: a.application_credential_name,
            secret: a.application_credential_secret,
            user: user(a),
          }
    // An application credential carries its own scope; Keystone refuses another one.
    return {
      auth: {
        identity: { methods: ['application_credential'], application_credential: credential },
      },
    }
  }
  const identity = {
    methods: ['password'],
    password: { user: { ...user(a), password: a.password } },
  }
  let scope: Record<string, unknown> | undefined
  if (a.project_id !== undefined) scope = { project: { id: a.project_id } }
  else if (a.project_name !== undefined)
    scope = {
      project: { name: a.project_name, domain: domain(a.project_domain_id, a.project_domain_name) },
    }
  return { auth: scope === undefined ? { identity } : { identity, scope } }
}

const tokenSchema = z.object({
  token: z.object({
    expires_at: z.string(),
    catalog: z.array(catalogEntrySchema).optional(),
    project: z.object({ id: z.string(), name: z.string().optional() }).optional(),
    user: z.object({ id: z.string() }),
  }),
})

/**
 * What the client keeps of Keystone's answer.
 * @example parseToken(res.headers['x-subject-token'], res.data)
 */
export function parseToken(subjectToken: string | undefined, body: unknown): Token {
  if (subjectToken === undefined || subjectToken === '')
    throw new RunbookError('E_API', 'Keystone answered without an X-Subject-Token header')
  const r = tokenSchema.safeParse(body)
  if (!r.success)
    throw new RunbookError(
      'E_API',
      `Keystone's token response is not a v3 token: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message ?? ''}`,
    )
  const t = r.data.token
  const expiresAt = Date.parse(t.expires_at)
  if (Number.isNaN(expiresAt))
    throw new RunbookError(
      'E_API',
      `Keystone's token has an unreadable expires_at '${t.expires_at}'`,
    )
  return {
    value: subjectToken,
    expiresAt,
    catalog: t.catalog ?? [],
    projectId: t.project?.id,
    projectName: t.project?.name,
    userId: t.user.id,
  }
}
