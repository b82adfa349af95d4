/**
 * `openstack.keypair`: a Nova keypair with this public key, so servers can be created with
 * `key_name`. Nova keypairs carry no tags: one is this runbook's when the journal says so (or a
 * create of it was journalled as pending with the same key); an identical keypair that is not
 * ours is used as it is and left alone by `destroy`.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import type { ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { sshPublicKey } from '../../engine/values.ts'
import { unknown, UnknownValueError } from '../../engine/vars/unknown.ts'
import type { Keypair } from './client/nova.ts'
import { ownedResource, type At, type Own } from './lib/owned.ts'
import { isPending, pendingId, type ClaimKind } from './lib/ownership.ts'
import { adoptParam, cloudParam, stateParam, printable } from './lib/params.ts'

const params = z
  .strictObject({
    name: z.string().min(1).describe('Keypair name'),
    public_key: sshPublicKey.optional().describe('The public key, one OpenSSH line'),
    public_key_file: z
      .string()
      .min(1)
      .optional()
      .describe('Or a file holding it, relative to the runbook directory'),
    state: stateParam,
    adopt: adoptParam,
    cloud: cloudParam,
  })
  .refine(
    (p) =>
      p.state === 'absent' || (p.public_key === undefined) !== (p.public_key_file === undefined),
    { message: 'give exactly one of `public_key` or `public_key_file`' },
  )

/** openstack.keypair's parameters. */
export type KeypairParams = z.infer<typeof params>

/** What gather found. */
export interface KeypairState {
  /** The wanted key, normalised (`type base64`), when present is wanted. */
  want: string | undefined
  keypair: Keypair | undefined
  how: ClaimKind | 'same' | undefined
}

/** `ssh-ed25519 AAAA... comment` -> `ssh-ed25519 AAAA...`: the comment does not matter. */
export function normaliseKey(text: string): string {
  return text.trim().split(/\s+/).slice(0, 2).join(' ')
}

const keySha = (key: string): string => createHash('sha256').update(normaliseKey(key)).digest('hex')

/**
 * The changes that make the keypair hold the key (pure).
 * @example planKeypair(p, { want: 'ssh-ed25519 AAAA...', keypair: undefined, how: undefined })
 */
export function planKeypair(p: KeypairParams, s: KeypairState): Change[] {
  const target = `keypair ${p.name}`
  const k = s.keypair
  if (p.state === 'absent')
    return k === undefined
      ? []
      : [{ action: 'delete', target, before: { fingerprint: k.fingerprint } }]
  if (k === undefined)
    return [{ action: 'create', target, after: { name: p.name, public_key: s.want } }]
  if (normaliseKey(k.public_key) === s.want) return []
  if (s.how === 'same')
    throw new RunbookError(
      'E_MODULE',
      `${target} exists with another key (${k.fingerprint}) and was not created by this runbook`,
      { hint: 'set `adopt: true` to replace it, or choose another name' },
    )
  return [
    {
      action: 'replace',
      target,
      before: { public_key: normaliseKey(k.public_key), fingerprint: k.fingerprint },
      after: { public_key: s.want },
      note: "Nova cannot change a keypair's key",
    },
  ]
}

/** The wanted key, normalised; during a plan a key file not there yet is known after apply. */
async function wantedKey(ctx: ModuleContext, p: KeypairParams): Promise<string | undefined> {
  if (p.state !== 'present') return undefined
  let text = p.public_key
  if (p.public_key_file !== undefined) {
    const file = path.resolve(ctx.baseDir, p.public_key_file)
    text = await fs.readFile(file, 'utf8').catch((e: unknown) => {
      // During a plan the key may be what an earlier task (ssh-keygen) is about to make.
      if (ctx.check && (e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new UnknownValueError(`public key file ${p.public_key_file}`)
      throw new RunbookError(
        'E_PARAM',
        `cannot read public_key_file ${file}: ${(e as Error).message}`,
      )
    })
  }
  const want = normaliseKey(text ?? '')
  if (!/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/=]+$/.test(want))
    throw new RunbookError(
      'E_PARAM',
      `keypair ${p.name}: the public key is not an OpenSSH public key line`,
    )
  return want
}

async function readKeypair({
  ctx,
  api,
  p,
  own,
}: At & { p: KeypairParams; own: Own<Keypair> }): Promise<KeypairState> {
  const want = await wantedKey(ctx, p)
  const found = await api.nova.keypair(p.name)
  const pending = ctx.journal.find('openstack.keypair', 'keypair', pendingId(p.name))[0]
  const marked = (k: Keypair): boolean =>
    pending !== undefined && pending.data?.['key_sha256'] === keySha(k.public_key)
  const sameKey =
    found !== undefined && want !== undefined && normaliseKey(found.public_key) === want
  // An identical key that is not ours is fine to use: nothing to change, nothing to take.
  const c =
    found === undefined ||
    (sameKey &&
      !marked(found) &&
      ctx.journal.find('openstack.keypair', 'keypair', found.name).length === 0)
      ? undefined
      : await own.claim({
          name: p.name,
          adopt: p.adopt,
          candidates: [found],
          marked,
          extra: (k) => ({ key_sha256: keySha(k.public_key) }),
        })
  return { want, keypair: found, how: c?.how ?? (found === undefined ? undefined : 'same') }
}

/**
 * Ensures a Nova keypair with this public key.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keypair = ownedResource<KeypairParams, KeypairState, Keypair>({
  module: {
    name: 'openstack.keypair',
    summary: 'A Nova keypair holding this public key (text or a file next to the runbook)',
    example: `- name: The operator's key on the VMs
  openstack.keypair:
    name: kld-key
    public_key_file: files/id_ed25519.pub`,
    params,
    plan: (p, s) => printable(planKeypair(p, s)),
    output: (p, s, changes) =>
      s?.keypair === undefined ||
      changes.some((c) => c.action === 'create' || c.action === 'replace')
        ? {
            name: p.name,
            fingerprint: unknown('keypair.fingerprint'),
            public_key: s?.want ?? unknown('keypair.public_key'),
            type: 'ssh',
          }
        : keypairOutput(s.keypair),
  },
  type: 'keypair',
  kind: 'keypair',
  // A keypair is known by its name.
  id: (k) => k.name,
  // Nova keypairs carry no tags: a pending record with the same key is the only mark.
  marked: () => false,
  read: readKeypair,
  current: (s) => s.keypair,
  async create({ p, s, api }) {
    const key = s.want ?? ''
    return {
      name: p.name,
      extra: { key_sha256: keySha(key) },
      post: () => api.nova.createKeypair(p.name, key),
      lookup: async () => {
        const k = await api.nova.keypair(p.name)
        return k !== undefined && normaliseKey(k.public_key) === key ? k : undefined
      },
    }
  },
  created: async (_c, made) => made,
  remove: async ({ api }, name) => {
    await api.nova.deleteKeypair(name)
  },
  removed: (name) => ({ name, state: 'absent' }),
  async verify({ api, p, s }, made) {
    const key = s.want ?? ''
    const now = await api.nova.keypair(made?.name ?? p.name)
    if (now === undefined || normaliseKey(now.public_key) !== key)
      throw new RunbookError('E_API', `keypair ${p.name}: Nova does not show the key`)
    return keypairOutput(now)
  },
  async destroy({ api }, r) {
    const name = r.name ?? r.id
    const k = await api.nova.keypair(name)
    // A pending create: only the key it was about to import is ours.
    if (k === undefined || (isPending(r) && r.data?.['key_sha256'] !== keySha(k.public_key))) return
    await api.nova.deleteKeypair(name)
  },
})

function keypairOutput(k: Keypair): Record<string, unknown> {
  return {
    name: k.name,
    fingerprint: k.fingerprint,
    public_key: k.public_key,
    type: k.type ?? 'ssh',
  }
}
