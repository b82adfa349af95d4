/** Nova keypairs (`/os-keypairs`): import a public key or have one generated. */
import { createHash } from 'node:crypto'
import type { Cloud } from '../cloud.ts'
import { asObject, json, novaError } from '../http.ts'
import type { Ctx, Route } from '../http.ts'
import { isoNaiveMicros } from '../ids.ts'
import { atLeast } from './versions.ts'
import type { Microversion } from './versions.ts'
import type { KeypairRec } from '../types.ts'

/** Nova's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex. */
export async function fingerprint(publicKey: string): Promise<string | null> {
  const blob = publicKey.trim().split(/\s+/)[1]
  if (blob === undefined || !/^[A-Za-z0-9+/=]+$/.test(blob)) return null
  const ssh2 = await loadSsh2()
  const parsed = ssh2.utils.parseKey(publicKey.trim())
  if (parsed instanceof Error) return null
  const hex = createHash('md5').update(Buffer.from(blob, 'base64')).digest('hex')
  return hex.match(/../g)?.join(':') ?? null
}

/** ssh2 is loaded on first use: it costs half a second at start-up and only keypairs need it. */
async function loadSsh2(): Promise<typeof import('ssh2')> {
  return (await import('ssh2')).default
}

function view(k: KeypairRec, v: Microversion, full: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: k.name,
    public_key: k.publicKey,
    fingerprint: k.fingerprint,
  }
  if (atLeast(v, 2)) out['type'] = k.type
  if (full) {
    out['user_id'] = k.userId
    out['created_at'] = k.createdAt
    out['deleted'] = false
    out['deleted_at'] = null
    out['updated_at'] = null
    out['id'] = k.id
  }
  return out
}

/** Nova's keypair routes. */
export function keypairRoutes(cloud: Cloud, mv: (ctx: Ctx) => Microversion): Route[] {
  const userOf = (ctx: Ctx): string => {
    const auth = ctx.auth
    if (auth === null) throw novaError(401, 'The request you have made requires authentication.')
    const asked = ctx.query.get('user_id')
    if (asked !== null && asked !== auth.userId && !auth.isAdmin) {
      throw novaError(403, "Policy doesn't allow os_compute_api:os-keypairs:index to be performed.")
    }
    return asked ?? auth.userId
  }
  const find = (ctx: Ctx): KeypairRec => {
    const user = userOf(ctx)
    const name = decodeURIComponent(ctx.params[0] ?? '')
    const k = cloud.state.keypairs.find((x) => x.name === name && x.userId === user)
    if (k === undefined) throw novaError(404, `Keypair ${name} not found for user ${user}`)
    return k
  }
  return [
    {
      method: 'GET',
      pattern: /^\/os-keypairs$/,
      handler: (ctx) => {
        const user = userOf(ctx)
        const v = mv(ctx)
        return json(200, {
          keypairs: cloud.state.keypairs
            .filter((k) => k.userId === user)
            .map((k) => ({ keypair: view(k, v, false) })),
        })
      },
    },
    {
      method: 'GET',
      pattern: /^\/os-keypairs\/([^/]+)$/,
      handler: (ctx) => json(200, { keypair: view(find(ctx), mv(ctx), true) }),
    },
    {
      method: 'DELETE',
      pattern: /^\/os-keypairs\/([^/]+)$/,
      handler: async (ctx) => {
        const k = find(ctx)
        cloud.state.keypairs = cloud.state.keypairs.filter((x) => x !== k)
        await cloud.commit()
        return { status: atLeast(mv(ctx), 2) ? 204 : 202 }
      },
    },
    {
      method: 'POST',
      pattern: /^\/os-keypairs$/,
      handler: async (ctx) => {
        const v = mv(ctx)
        const auth = ctx.auth
        if (auth === null)
          throw novaError(401, 'The request you have made requires authentication.')
        const body = asObject(asObject(ctx.body)?.['keypair'])
        const name = body?.['name']
        if (body === null || typeof name !== 'string' || !/^[\w. -]{1,255}$/.test(name)) {
          throw novaError(
            400,
            `Invalid input for field/attribute keypair. Value: ${JSON.stringify(ctx.body)}. 'name' is a required property`,
          )
        }
        const userId =
          atLeast(v, 10) && typeof body['user_id'] === 'string' && auth.isAdmin
            ? body['user_id']
            : auth.userId
        if (cloud.state.keypairs.some((k) => k.name === name && k.userId === userId))
          throw novaError(409, `Key pair '${name}' already exists.`)
        let publicKey = body['public_key']
        let privateKey: string | undefined
        if (publicKey === undefined || publicKey === null) {
          if (atLeast(v, 92))
            throw novaError(
              400,
              `Invalid input for field/attribute keypair. Value: ${JSON.stringify(ctx.body)}. 'public_key' is a required property`,
            )
          const ssh2 = await loadSsh2()
          const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: `Generated-by-Nova` })
          publicKey = pair.public
          privateKey = pair.private
        }
        if (typeof publicKey !== 'string')
          throw novaError(400, 'Keypair data is invalid: failed to generate fingerprint')
        const fp = await fingerprint(publicKey)
        if (fp === null)
          throw novaError(400, 'Keypair data is invalid: failed to generate fingerprint')
        const type = body['type'] === 'x509' ? 'x509' : 'ssh'
        const rec: KeypairRec = {
          id: cloud.state.nextKeypairId++,
          name,
          userId,
          publicKey,
          fingerprint: fp,
          type,
          createdAt: isoNaiveMicros(),
        }
        cloud.state.keypairs.push(rec)
        await cloud.commit()
        const out = {
          ...view(rec, v, false),
          user_id: userId,
          ...(privateKey === undefined ? {} : { private_key: privateKey }),
        }
        return json(atLeast(v, 2) ? 201 : 200, { keypair: out })
      },
    },
  ]
}
