/**
 * The owned-resource lifecycle on a resource type that exists nowhere else: a "widget" kept in
 * this test's memory (the lab only authenticates). One `ownedResource` definition is all it takes:
 * its records carry the owner that `ownerOf` reads back (no list of types), a second run is in
 * sync, a run killed after the POST is taken over, `destroy` finds a pending create by name and
 * tag, a foreign widget of that name is refused, and `absent` deletes and forgets.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { ModuleContext } from '../../../../engine/module.ts'
import type { Change } from '../../../../engine/plan/change.ts'
import { ownedResource } from '../../../../modules/openstack/lib/owned.ts'
import { ownerOf, type ClaimKind } from '../../../../modules/openstack/lib/ownership.ts'
import { adoptParam, cloudParam, stateParam } from '../../../../modules/openstack/lib/params.ts'
import { dyingAfterPost, Runs, startCloud, type TestCloud } from '../harness.ts'

interface Widget {
  id: string
  name: string
  tags: string[]
}

const params = z.strictObject({
  name: z.string().min(1),
  state: stateParam,
  adopt: adoptParam,
  cloud: cloudParam,
})
type WidgetParams = z.infer<typeof params>
interface WidgetState {
  widget: Widget | undefined
  how: ClaimKind | undefined
}

/** The widgets' "cloud", and what was asked of it. */
const widgets = new Map<string, Widget>()
let posts = 0

const named = (name: string): Widget[] => [...widgets.values()].filter((w) => w.name === name)

function planWidget(p: WidgetParams, s: WidgetState): Change[] {
  const target = `widget ${p.name}`
  if (p.state === 'absent')
    return s.widget === undefined ? [] : [{ action: 'delete', target, before: { id: s.widget.id } }]
  return s.widget === undefined ? [{ action: 'create', target, after: { name: p.name } }] : []
}

const widget = ownedResource<WidgetParams, WidgetState, Widget>({
  module: {
    name: 'openstack.test_widget',
    summary: 'A widget (test only)',
    example: '- openstack.test_widget: { name: w }',
    params,
    plan: planWidget,
    output: (p, s) => ({ id: s?.widget?.id, name: p.name }),
  },
  type: 'widget',
  kind: 'widget',
  id: (w) => w.id,
  marked: (w, tag) => w.tags.includes(tag),
  ownerTags: (w) => w.tags,
  find: async (_api, name, tag) => named(name).find((w) => w.tags.includes(tag)),
  async read({ p, own }) {
    const c = await own.claim({ name: p.name, adopt: p.adopt, candidates: named(p.name) })
    return { widget: c?.resource, how: c?.how }
  },
  current: (s) => s.widget,
  async create({ ctx, p }) {
    const tag = ownerOf(ctx).tag
    return {
      name: p.name,
      post: async () => {
        posts++
        const w = { id: randomUUID(), name: p.name, tags: [tag] }
        widgets.set(w.id, w)
        return w
      },
    }
  },
  created: async (_c, made) => made,
  remove: async (_at, id) => {
    widgets.delete(id)
  },
  async verify({ p, reread }) {
    const now = await reread()
    if (now.widget === undefined || planWidget(p, now).length > 0)
      throw new Error(`widget ${p.name}: not there`)
    return { id: now.widget.id, name: p.name }
  },
})

async function applyOnce(ctx: ModuleContext, raw: Record<string, unknown>): Promise<unknown> {
  const p = widget.params.parse(raw)
  const s = await widget.gather(ctx, p)
  return (await widget.apply(ctx, p, widget.plan(p, s), s)).output
}

describe('ownedResource: a new resource type is one definition', () => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud()
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('creates and journals with the owner, which the next run reads back; then in sync; absent deletes', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    posts = 0
    const out = (await applyOnce(runs.next().ctx(widget.name), { name: 'w1' })) as {
      id: string
    }
    expect(posts).toBe(1)
    expect(runs.records).toHaveLength(1)
    const owner = runs.records[0]?.data?.['owner']
    expect(typeof owner).toBe('string')
    expect(runs.records[0]).toMatchObject({ module: 'openstack.test_widget', id: out.id })
    // Only this widget's record says who owns: the next run is the same owner.
    const ctx = runs.next().ctx(widget.name)
    expect(ownerOf(ctx).id).toBe(owner)
    const p = widget.params.parse({ name: 'w1' })
    const s = await widget.gather(ctx, p)
    expect(s.how).toBe('journal')
    expect(widget.plan(p, s)).toEqual([])

    const gone = await applyOnce(runs.next().ctx(widget.name), { name: 'w1', state: 'absent' })
    expect(gone).toEqual({ id: out.id, state: 'absent' })
    expect(named('w1')).toEqual([])
    expect(runs.records).toEqual([])
  })

  it('takes over a widget whose run died after the POST, and never makes a second', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    posts = 0
    await expect(
      applyOnce(dyingAfterPost(runs.next().ctx(widget.name)), { name: 'w2' }),
    ).rejects.toThrow('killed -9')
    expect(runs.records.map((r) => r.id)).toEqual(['pending:w2'])
    const p = widget.params.parse({ name: 'w2' })
    const s = await widget.gather(runs.next().ctx(widget.name), p)
    expect(s.how).toBe('tag')
    expect(widget.plan(p, s)).toEqual([])
    expect(runs.records.map((r) => [r.id, r.name])).toEqual([[s.widget?.id, 'w2']])
    expect(posts).toBe(1)
    expect(named('w2')).toHaveLength(1)
  })

  it('destroy of a pending record finds the widget by name and owner tag', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    await expect(
      applyOnce(dyingAfterPost(runs.next().ctx(widget.name)), { name: 'w3' }),
    ).rejects.toThrow('killed -9')
    const [pending] = runs.records
    expect(pending?.id).toBe('pending:w3')
    expect(named('w3')).toHaveLength(1)
    if (pending) await widget.destroy?.(runs.next().ctx(widget.name), pending)
    expect(named('w3')).toEqual([])
  })

  it('refuses a widget of that name that is not ours, naming the other runbook', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    widgets.set('foreign', { id: 'foreign', name: 'w4', tags: ['runbook:someoneelse'] })
    const p = widget.params.parse({ name: 'w4' })
    await expect(widget.gather(runs.next().ctx(widget.name), p)).rejects.toThrow(
      "a widget named 'w4' already exists (foreign) and was not created by this runbook (it carries runbook:someoneelse, another runbook's tag)",
    )
    const adopted = await widget.gather(
      runs.ctx(widget.name),
      widget.params.parse({ name: 'w4', adopt: true }),
    )
    expect(adopted.how).toBe('adopt')
  })
})
