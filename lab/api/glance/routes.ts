/** Glance v2, read-only: what `openstack server create --image NAME` and image list/show need. */
import { glanceVersions } from '../catalog.ts'
import type { Cloud } from '../cloud.ts'
import { glanceError, json } from '../http.ts'
import type { Ctx, Route } from '../http.ts'
import type { ImageRec } from '../types.ts'

/** An image as Glance v2 shows it; custom properties are top-level keys. */
export function imageView(i: ImageRec): Record<string, unknown> {
  return {
    ...i.properties,
    id: i.id,
    name: i.name,
    status: 'active',
    visibility: 'public',
    protected: false,
    os_hidden: false,
    checksum: i.checksum,
    os_hash_algo: 'sha512',
    os_hash_value: null,
    owner: i.owner,
    size: i.size,
    virtual_size: null,
    min_ram: i.minRam,
    min_disk: i.minDisk,
    disk_format: i.diskFormat,
    container_format: i.containerFormat,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
    tags: [...i.tags],
    self: `/v2/images/${i.id}`,
    file: `/v2/images/${i.id}/file`,
    schema: '/v2/schemas/image',
  }
}

function listImages(cloud: Cloud, ctx: Ctx): ReturnType<typeof json> {
  const q = ctx.query
  let items = [...cloud.state.images]
  const name = q.get('name')
  if (name !== null) {
    const names = name.startsWith('in:') ? name.slice(3).split(',') : [name]
    items = items.filter((i) => names.includes(i.name))
  }
  const id = q.get('id')
  if (id !== null) {
    const ids = id.startsWith('in:') ? id.slice(3).split(',') : [id]
    items = items.filter((i) => ids.includes(i.id))
  }
  const status = q.get('status')
  if (status !== null && status !== 'active') items = []
  const visibility = q.get('visibility')
  if (visibility !== null && !['public', 'all'].includes(visibility)) items = []
  for (const [k, val] of q) {
    if (
      [
        'name',
        'id',
        'status',
        'visibility',
        'limit',
        'marker',
        'sort',
        'sort_key',
        'sort_dir',
        'member_status',
        'owner',
        'os_hidden',
      ].includes(k)
    )
      continue
    items = items.filter((i) => i.properties[k] === val)
  }
  items.sort((a, b) =>
    a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1,
  )
  const marker = q.get('marker')
  if (marker !== null) {
    const at = items.findIndex((i) => i.id === marker)
    if (at < 0) throw glanceError(400, `Invalid marker. Image ${marker} could not be found.`)
    items = items.slice(at + 1)
  }
  const limit = Number(q.get('limit') ?? 25)
  if (!Number.isInteger(limit) || limit < 0)
    throw glanceError(400, 'limit param must be an integer')
  const page = items.slice(0, limit)
  const body: Record<string, unknown> = {
    images: page.map(imageView),
    first: '/v2/images',
    schema: '/v2/schemas/images',
  }
  const last = page[page.length - 1]
  if (last !== undefined && items.length > limit) {
    const p = new URLSearchParams(q)
    p.set('marker', last.id)
    body['next'] = `/v2/images?${p.toString()}`
  }
  return json(200, body)
}

/** Glance's routes that need no token (version discovery, answered with 300 like Glance). */
export function glancePublicRoutes(): Route[] {
  return [
    { method: 'GET', pattern: /^\/?$/, handler: (ctx) => json(300, glanceVersions(ctx.baseUrl)) },
    {
      method: 'GET',
      pattern: /^\/versions$/,
      handler: (ctx) => json(200, glanceVersions(ctx.baseUrl)),
    },
  ]
}

/** Glance's authenticated routes, relative to `/image`. */
export function glanceRoutes(cloud: Cloud): Route[] {
  return [
    { method: 'GET', pattern: /^\/v2\/images$/, handler: (ctx) => listImages(cloud, ctx) },
    {
      method: 'GET',
      pattern: /^\/v2\/images\/([^/]+)$/,
      handler: (ctx) => {
        const i = cloud.state.images.find((x) => x.id === ctx.params[0])
        if (i === undefined) throw glanceError(404, `No image found with ID ${ctx.params[0] ?? ''}`)
        return json(200, imageView(i))
      },
    },
  ]
}
