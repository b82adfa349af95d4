/**
 * Keystone tokens, stateless like Fernet tokens: the payload is signed (HMAC-SHA256) with a key kept
 * in the state file, so a token stays valid across restarts of the daemon until it expires.
 */
import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'

/** What a token says. */
export interface TokenPayload {
  /** user id */
  u: string
  /** project id, null for an unscoped token */
  p: string | null
  /** auth methods (`password`, `application_credential`) */
  m: string[]
  /** application credential id */
  a: string | null
  /** issued at, ms since epoch */
  iat: number
  /** expires at, ms since epoch */
  exp: number
  /** audit id */
  aud: string
}

/** Who is calling, resolved from a valid token. */
export interface AuthContext {
  token: string
  payload: TokenPayload
  userId: string
  projectId: string | null
  roleNames: string[]
  isAdmin: boolean
}

/**
 * Sign a payload into a token string.
 * @example issueToken(state.tokenKey, { u, p, m: ['password'], a: null, iat, exp, aud })
 */
export function issueToken(key: string, payload: TokenPayload): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url')
  const mac = createHmac('sha256', key).update(body).digest('base64url')
  return `${body}.${mac}`
}

/** Check a token's signature and expiry; null when it is forged, malformed or expired. */
export function verifyToken(key: string, token: string, now = Date.now()): TokenPayload | null {
  const [body, mac, extra] = token.split('.')
  if (body === undefined || mac === undefined || extra !== undefined) return null
  const want = createHmac('sha256', key).update(body).digest()
  const got = Buffer.from(mac, 'base64url')
  if (got.length !== want.length || !timingSafeEqual(got, want)) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  if (!isPayload(parsed) || parsed.exp <= now) return null
  return parsed
}

function isPayload(x: unknown): x is TokenPayload {
  if (typeof x !== 'object' || x === null) return false
  const o = x as Record<string, unknown>
  return (
    typeof o['u'] === 'string' &&
    (o['p'] === null || typeof o['p'] === 'string') &&
    Array.isArray(o['m']) &&
    (o['a'] === null || typeof o['a'] === 'string') &&
    typeof o['iat'] === 'number' &&
    typeof o['exp'] === 'number' &&
    typeof o['aud'] === 'string'
  )
}

/** Keystone audit ids are 22 characters of URL-safe base64. */
export function auditId(): string {
  return randomBytes(16).toString('base64url').slice(0, 22)
}

/** Cheaper than scrypt's default (a few ms, not ~50 ms per authentication): a lab on loopback. */
const SCRYPT = { N: 4096, r: 8, p: 1 }

/**
 * Hash a password or secret for storage (scrypt with a random salt): `scrypt$salt$hash`.
 * @example const h = hashSecret('s3cret'); checkSecret('s3cret', h) === true
 */
export function hashSecret(plain: string): string {
  const salt = randomBytes(16)
  const hash = scryptSync(plain, salt, 32, SCRYPT)
  return `scrypt$${salt.toString('base64url')}$${hash.toString('base64url')}`
}

/** Compare a plain secret with a stored hash, in constant time. */
export function checkSecret(plain: string, stored: string): boolean {
  const [kind, salt, hash] = stored.split('$')
  if (kind !== 'scrypt' || salt === undefined || hash === undefined) return false
  const want = Buffer.from(hash, 'base64url')
  const got = scryptSync(plain, Buffer.from(salt, 'base64url'), want.length, SCRYPT)
  return timingSafeEqual(got, want)
}
