/**
 * Which cloud resources are this runbook's. Every resource a module creates carries the tag
 * `runbook:<owner>` (Neutron tags, Nova server tags) and is recorded in the journal. The owner id
 * is random, made once per runbook state and kept in the journal records' data, so that two
 * runbooks (or two checkouts) never claim each other's resources.
 *
 * Stock Neutron refuses `tags` in a POST, so a Neutron resource is created with the marker
 * `runbook:<owner>` as its `description` (a standard attribute every resource accepts at create)
 * and tagged right after with `PUT .../tags`; a run killed between the two (or during the POST)
 * leaves the marker, by which the next run takes it over and finishes the tagging.
 *
 * A create is journalled before the POST as `pending:<name>` and again with its id after it, so a
 * run that dies between the two leaves the next run (or `destroy`) the owner and the name: it
 * finds the resource by name and tag and takes it over instead of making a second one.
 *
 * A resource with the same name that is not ours is an error unless the task says `adopt: true`;
 * an adopted resource is managed in place but not journalled, so `destroy` leaves it alone.
 */
import { randomBytes } from 'node:crypto'
import { RunbookError } from '../../../engine/errors.ts'
import type { ModuleContext, ResourceRecord } from '../../../engine/module.ts'
import { OpenStackApiError } from '../client/errors.ts'
import type { TagCollection } from '../client/neutron.ts'
import type { Api } from './cloud.ts'

/** Prefix of the ownership tag. */
export const TAG_PREFIX = 'runbook:'

/** This runbook's identity on the cloud. */
export interface Owner {
  id: string
  /** `runbook:<id>` */
  tag: string
}

/** The journal records of this domain's modules: `openstack.<something>`. */
const DOMAIN = 'openstack.'

/**
 * The owner of this runbook's resources: from its journal, or new (kept once a resource exists).
 * Every record an OpenStack module writes carries it (`recordData`), so no list of resource
 * types is needed: a new module's records count as soon as they exist.
 * @example const { tag } = ownerOf(ctx) // 'runbook:3f9a0c41d2e7'
 */
export function ownerOf(ctx: ModuleContext): Owner {
  return ctx.shared('openstack:owner', () => {
    const records = ctx.journal
      .all()
      .filter((r) => r.module.startsWith(DOMAIN) && typeof r.data?.['owner'] === 'string')
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    const id = (records[0]?.data?.['owner'] as string | undefined) ?? randomBytes(6).toString('hex')
    return { id, tag: `${TAG_PREFIX}${id}` }
  })
}

/** What a Neutron resource shows of its ownership. */
export interface Marked {
  tags: readonly string[]
  description: string
}

/** Whether a Neutron resource carries our tag, or the create-time marker in its description. */
export function isMarked(r: Marked, ownerTag: string): boolean {
  return r.tags.includes(ownerTag) || r.description === ownerTag
}

/**
 * Gives a resource we own our tag when Neutron has tags and it lacks it (a create, or a run that
 * died between the create and the tagging); a no-op during a plan.
 */
export async function ensureTagged(
  ctx: ModuleContext,
  api: Api,
  collection: TagCollection,
  r: Marked & { id: string },
): Promise<void> {
  const { tag } = ownerOf(ctx)
  if (ctx.check || r.tags.includes(tag) || !(await api.neutron.has('standard-attr-tag'))) return
  await api.neutron.setTags(collection, r.id, [...r.tags, tag])
}

/** The journal id of a create that was sent but not yet answered. */
export function pendingId(name: string): string {
  return `pending:${name}`
}

/** Whether a journal record is a create that was sent but not answered. */
export function isPending(r: ResourceRecord): boolean {
  return r.id.startsWith('pending:')
}

/** How a resource is ours. */
export type ClaimKind = 'journal' | 'tag' | 'adopt'

/** A resource found by name and why this runbook may manage it. */
export interface Claim<T> {
  resource: T
  how: ClaimKind
}

/** What `claim` needs to know. */
export interface ClaimOptions<T> {
  module: string
  type: string
  /** `port`, `server`: for messages. */
  kind: string
  name: string
  adopt: boolean
  owner: Owner
  id(r: T): string
  /** Whether the resource carries our mark (default: the owner tag in `tags`). */
  marked(r: T): boolean
  /** Other runbooks' tags on it, for the message. */
  tags?(r: T): readonly string[]
}

/**
 * Picks, among the resources named `name`, the one this runbook manages: journalled or tagged by
 * us, else (with adopt) the only one there is; a foreign one without adopt is an error.
 * @example const c = claim(ctx, { module: 'openstack.port', type: 'port', kind: 'port', name, adopt, owner, id: (p) => p.id, marked: (p) => p.tags.includes(owner.tag) }, ports)
 */
export function claim<T>(
  ctx: ModuleContext,
  o: ClaimOptions<T>,
  candidates: readonly T[],
): Claim<T> | undefined {
  const journalled = new Set(ctx.journal.find(o.module, o.type).map((r) => r.id))
  const ours = candidates.filter((c) => journalled.has(o.id(c)) || o.marked(c))
  if (ours.length > 1) {
    throw new RunbookError(
      'E_MODULE',
      `${ours.length} ${o.kind}s named '${o.name}' belong to this runbook (${ours.map(o.id).join(', ')})`,
      { hint: 'delete the extra ones; this runbook manages one per name' },
    )
  }
  const mine = ours[0]
  if (mine !== undefined)
    return { resource: mine, how: journalled.has(o.id(mine)) ? 'journal' : 'tag' }
  if (candidates.length === 0) return undefined
  if (o.adopt) {
    if (candidates.length > 1)
      throw new RunbookError(
        'E_MODULE',
        `adopt: ${candidates.length} ${o.kind}s are named '${o.name}' (${candidates.map(o.id).join(', ')})`,
        { hint: 'adopt needs exactly one' },
      )
    return { resource: candidates[0] as T, how: 'adopt' }
  }
  const first = candidates[0] as T
  const other = (o.tags?.(first) ?? []).find((t) => t.startsWith(TAG_PREFIX))
  throw new RunbookError(
    'E_MODULE',
    `a ${o.kind} named '${o.name}' already exists (${candidates.map(o.id).join(', ')}) and was not created by this runbook${other ? ` (it carries ${other}, another runbook's tag)` : ''}`,
    {
      hint: 'set `adopt: true` to manage it, or choose another name',
    },
  )
}

/** What a journal record of an OpenStack resource keeps. */
export interface RecordData {
  /** The cloud's name, when it has one (destroy selects it again). */
  cloud?: string | undefined
  project_id: string
  owner: string
  [key: string]: unknown
}

/**
 * The journal data for a new resource of `api`'s cloud.
 * @example const data = await recordData(ctx, api, { user_data_sha256 })
 */
export async function recordData(
  ctx: ModuleContext,
  api: Api,
  extra: Record<string, unknown> = {},
): Promise<RecordData> {
  return {
    ...(api.cloudName === undefined ? {} : { cloud: api.cloudName }),
    project_id: await api.client.projectId(),
    owner: ownerOf(ctx).id,
    ...extra,
  }
}

/** What `takeOver` records. */
export interface TakeOver {
  type: string
  /** The name the record shows. */
  name: string
  id: string
  how: ClaimKind | 'foreign' | undefined
  /** Journal data beyond cloud, project and owner. */
  extra?: Record<string, unknown> | undefined
  /** The name the pending record went by, when not `name` (a floating IP's port id). */
  pendingName?: string | undefined
}

/**
 * Takes over a resource found by our tag but missing from the journal (a run died between the
 * POST and its record): journals it, and drops the pending record. Bookkeeping only, and a no-op
 * during a plan (the engine ignores records then).
 * @example await takeOver(ctx, api, { type: 'port', name, id: port.id, how: 'tag' })
 */
export async function takeOver(ctx: ModuleContext, api: Api, o: TakeOver): Promise<void> {
  if (ctx.check || o.how !== 'tag') return
  await ctx.journal.record({
    type: o.type,
    id: o.id,
    name: o.name,
    data: await recordData(ctx, api, o.extra),
  })
  await ctx.journal.forget(o.type, pendingId(o.pendingName ?? o.name))
}

/** What `createOwned` does. */
export interface CreateOwned<T> {
  module: string
  type: string
  /** The name the pending record and `lookup` go by. */
  name: string
  /** The name the final record shows (default `name`). */
  recordName?(r: T): string
  data: RecordData
  id(r: T): string
  /** The POST. */
  post(): Promise<T>
  /** Finds the resource by name and tag, when the POST may have been carried out without an answer. */
  lookup(): Promise<T | undefined>
}

/**
 * Creates a resource so that it is never lost or made twice: pending record, POST (resolved by
 * `lookup` if its answer is lost), record with the id. Older records of the same name whose
 * resources are gone are forgotten.
 */
export async function createOwned<T>(ctx: ModuleContext, api: Api, o: CreateOwned<T>): Promise<T> {
  for (const stale of ctx.journal.find(o.module, o.type))
    if (stale.name === o.name && !isPending(stale)) await ctx.journal.forget(o.type, stale.id)
  const pending = pendingId(o.name)
  // The intent is on disk before the request, so a crash in between is taken over, not duplicated.
  await ctx.journal.record({
    type: o.type,
    id: pending,
    name: o.name,
    data: { ...o.data, pending: true },
  })
  let created: T
  try {
    created = await api.client.createResolved(
      () => o.post(),
      () => o.lookup(),
    )
  } catch (e) {
    // Refused for sure: nothing to take over later. Unanswered: leave the intent for the next run.
    if (!(e instanceof OpenStackApiError && e.ambiguous)) await ctx.journal.forget(o.type, pending)
    throw e
  }
  await ctx.journal.record({
    type: o.type,
    id: o.id(created),
    name: o.recordName?.(created) ?? o.name,
    data: o.data,
  })
  await ctx.journal.forget(o.type, pending)
  return created
}

/**
 * The id a journal record stands for: its own, or for a pending create the resource found by
 * name and owner (undefined: the create never happened).
 */
export async function recordTarget(
  r: ResourceRecord,
  lookup: (name: string, ownerTag: string) => Promise<string | undefined>,
): Promise<string | undefined> {
  if (!isPending(r)) return r.id
  const owner = typeof r.data?.['owner'] === 'string' ? r.data['owner'] : undefined
  if (owner === undefined || r.name === undefined) return undefined
  return lookup(r.name, `${TAG_PREFIX}${owner}`)
}
