/**
 * One lifecycle for the resources this runbook owns on a cloud, as a Terraform provider's resource
 * (schema + read/create/update/delete) or a Pulumi dynamic provider: a module says how its
 * resource is found, read, planned, created, changed and deleted, and `ownedResource` makes the
 * Module that drives it the same way for all of them:
 *
 * - gather: the module's `read`, whose `own.claim` picks the resource of that name this runbook
 *   manages, takes over one a dead run left untracked and finishes its tagging;
 * - apply: delete (for `delete` and `replace`) and forget; create through the journalled
 *   pending record (`createOwned`), or `update`; then `verify` re-reads and re-plans;
 * - destroy: the record's resource (for a pending create, found by name and owner tag) deleted.
 *
 * The journal records carry the owner (ownership.ts), so a new resource type is one module file:
 * nothing else lists the types.
 */
import { RunbookError } from '../../../engine/errors.ts'
import type { ApplyResult, Module, ModuleContext, ResourceRecord } from '../../../engine/module.ts'
import type { Change } from '../../../engine/plan/change.ts'
import { containsUnknown } from '../../../engine/vars/unknown.ts'
import { apiFor, apiForRecord, type Api } from './cloud.ts'
import {
  claim,
  createOwned,
  ownerOf,
  recordData,
  recordTarget,
  takeOver,
  type Claim,
  type TakeOver,
} from './ownership.ts'

/** Where a hook works: the task's context and its cloud's client. */
export interface At {
  ctx: ModuleContext
  api: Api
}

/** What a hook of one task gets: where, the parameters and the state gather found. */
export interface Call<P, S> extends At {
  p: P
  s: S
  /** Gathers again (the post-condition's read), with the same ownership steps. */
  reread(): Promise<S>
}

/** What `own.claim` is asked. */
export interface ClaimAsk<R> {
  name: string
  adopt: boolean
  /** The resources of that name. */
  candidates: readonly R[]
  /** Whether one carries our mark, when the resource type's `marked` does not say it. */
  marked?(r: R): boolean
  /** Journal data of a taken-over record beyond cloud, project and owner. */
  extra?(r: R): Record<string, unknown>
}

/** The ownership steps `read` may take, bound to the task's context and cloud. */
export interface Own<R> {
  /**
   * The resource named `name` this runbook manages (journalled, tagged, or adopted), taken over
   * when a dead run left it untracked and tagged when it lacks the tag; an error for a foreign one.
   */
  claim(o: ClaimAsk<R>): Promise<Claim<R> | undefined>
  /** Takes over a resource found some other way (a floating IP, by its port). */
  takeOver(o: Omit<TakeOver, 'type'>): Promise<void>
}

/** One create: the name it goes by, its journal data and the POST. */
export interface CreateSpec<C> {
  /** The name the pending record and `find` go by (a port's name; a floating IP's port id). */
  name: string
  /** The name the final record shows (default `name`). */
  recordName?(made: C): string
  /** Journal data beyond cloud, project and owner. */
  extra?: Record<string, unknown>
  post(): Promise<C>
  /** Finds it when the POST's answer is lost (default: `find` by name and owner tag). */
  lookup?(): Promise<C | undefined>
}

/** Parameters every owned resource has: which cloud. */
export interface OnCloud {
  cloud?: string | undefined
}

/**
 * A resource type this runbook owns: the module's own fields (name, params, plan, output...) and
 * the hooks of the lifecycle. R is the resource as read, C what its POST answers (R has all of C).
 */
export interface OwnedResource<P extends OnCloud, S, R extends C, C = R> {
  /** The module's fields; gather, apply, destroy and the controller target come from here. */
  module: Omit<Module<P, S>, 'gather' | 'apply' | 'destroy' | 'target'>
  /** The journal's record type: `port`. */
  type: string
  /** What the messages call it: `port`, `security group`. */
  kind: string
  id(r: C): string
  /** Whether it carries our tag, or the marker it was created with. */
  marked(r: R, ownerTag: string): boolean
  /** What it shows of an owner, for the message about a foreign one. */
  ownerTags?(r: R): readonly string[]
  /** Ours among those going by `name`: a POST's lost answer, a pending record's resource. */
  find?(api: Api, name: string, ownerTag: string): Promise<R | undefined>
  /** Gives one of ours the owner tag when it lacks it (a run died between create and tagging). */
  tag?(at: At, r: R): Promise<void>
  /** gather: the state that matters to `p`, read-only during a plan. */
  read(o: At & { p: P; own: Own<R> }): Promise<S>
  /** The resource gather found (undefined: none). */
  current(s: S): R | undefined
  /** The create (`create` and `replace`): what the POST sends. */
  create(c: Call<P, S>): Promise<CreateSpec<C>>
  /** After the POST: tag it, describe it, wait for it; the resource as the cloud shows it now. */
  created(c: Call<P, S>, made: C): Promise<R | undefined>
  /** An `update` change; the resource as the cloud answered, if it did. */
  update?(c: Call<P, S>, change: Change): Promise<R | undefined>
  /** Deletes it; `p` is undefined for a destroy. */
  remove(at: At, id: string, p: P | undefined): Promise<void>
  /** The post-condition: re-reads, re-plans (an error if anything is left), and the output. */
  verify(c: Call<P, S>, r: R | undefined): Promise<Record<string, unknown>>
  /** What a deletion registers (default `{ id, state: 'absent' }`). */
  removed?(id: string): Record<string, unknown>
  /** A destroy of its own, when the record's resource cannot be found by name and tag. */
  destroy?(at: At, record: ResourceRecord): Promise<void>
}

/** The ownership steps for one task. */
function own<P extends OnCloud, S, R extends C, C>(def: OwnedResource<P, S, R, C>, at: At): Own<R> {
  const { ctx, api } = at
  const takeOne = (o: Omit<TakeOver, 'type'>): Promise<void> =>
    takeOver(ctx, api, { ...o, type: def.type })
  return {
    takeOver: takeOne,
    async claim(o) {
      const owner = ownerOf(ctx)
      const c = claim(
        ctx,
        {
          module: def.module.name,
          type: def.type,
          kind: def.kind,
          name: o.name,
          adopt: o.adopt,
          owner,
          id: (r: R) => def.id(r),
          marked: o.marked ?? ((r) => def.marked(r, owner.tag)),
          ...(def.ownerTags === undefined ? {} : { tags: def.ownerTags }),
        },
        o.candidates,
      )
      if (c === undefined) return undefined
      await takeOne({
        name: o.name,
        id: def.id(c.resource),
        how: c.how,
        extra: o.extra?.(c.resource),
      })
      // A run that died between the create and the tagging: finish it.
      if (c.how !== 'adopt') await def.tag?.(at, c.resource)
      return c
    },
  }
}

/** Creates the resource so that it is never lost or made twice (ownership.ts `createOwned`). */
async function create<P extends OnCloud, S, R extends C, C>(
  def: OwnedResource<P, S, R, C>,
  c: Call<P, S>,
): Promise<R | undefined> {
  const { ctx, api } = c
  const spec = await def.create(c)
  const { tag } = ownerOf(ctx)
  const find = def.find
  const made = await createOwned<C>(ctx, api, {
    module: def.module.name,
    type: def.type,
    name: spec.name,
    ...(spec.recordName === undefined ? {} : { recordName: spec.recordName }),
    data: await recordData(ctx, api, spec.extra),
    id: (x) => def.id(x),
    post: spec.post,
    lookup:
      spec.lookup ??
      (async () => {
        if (find === undefined) throw new Error(`${def.module.name}: no lookup for a lost create`)
        return find(api, spec.name, tag)
      }),
  })
  return def.created(c, made)
}

/**
 * The Module of an owned resource type.
 * @example export const port = ownedResource<PortParams, PortState, Port>({ module: { name: 'openstack.port', params, plan, ... }, type: 'port', kind: 'port', find, read, create, ... })
 */
export function ownedResource<P extends OnCloud, S, R extends C, C = R>(
  def: OwnedResource<P, S, R, C>,
): Module<P, S> {
  if (def.find === undefined && def.destroy === undefined)
    throw new Error(
      `${def.module.name}: an owned resource needs \`find\` or a \`destroy\` of its own`,
    )
  const { module, find, read, current, update, remove, verify, removed, destroy } = def
  const gather = (ctx: ModuleContext, api: Api, p: P): Promise<S> =>
    read({ ctx, api, p, own: own(def, { ctx, api }) })
  return {
    ...module,
    target: 'controller',
    gather: (ctx, p) => gather(ctx, apiFor(ctx, p.cloud), p),
    async apply(ctx, p, changes, s): Promise<ApplyResult> {
      if (containsUnknown(p))
        throw new RunbookError('E_PARAM', 'parameters still contain values known only after apply')
      const api = apiFor(ctx, p.cloud)
      const c: Call<P, S> = { ctx, api, p, s, reread: () => gather(ctx, api, p) }
      const change = changes[0]
      if (change === undefined) return { changed: false, output: module.output?.(p, s, changes) }
      const have = current(s)
      if ((change.action === 'delete' || change.action === 'replace') && have !== undefined) {
        const id = def.id(have)
        await remove({ ctx, api }, id, p)
        await ctx.journal.forget(def.type, id)
        if (change.action === 'delete') return { output: removed?.(id) ?? { id, state: 'absent' } }
      }
      const r =
        change.action === 'create' || change.action === 'replace'
          ? await create(def, c)
          : await update?.(c, change)
      return { output: await verify(c, r) }
    },
    async destroy(ctx, record) {
      const api = await apiForRecord(ctx, record)
      if (destroy !== undefined) return destroy({ ctx, api }, record)
      const id = await recordTarget(record, async (name, tag) => {
        const r = await find?.(api, name, tag)
        return r === undefined ? undefined : def.id(r)
      })
      if (id !== undefined) await remove({ ctx, api }, id, undefined)
    },
  }
}
