/**
 * Neutron list semantics: attribute filters (repeatable, validated like Neutron's filter
 * validation), tag filters, `fields`, sorting, and limit/marker pagination with `*_links`
 * built the way neutron/api/api_common.py builds them.
 */
import { json, neutronError } from '../http.ts'
import type { ApiError, Ctx, Reply } from '../http.ts'
import type { View } from './views.ts'

const RESERVED = new Set(['fields', 'limit', 'marker', 'page_reverse', 'sort_key', 'sort_dir'])

/** The filters the tag extension adds: without it they are invalid, like any unknown attribute. */
const TAG_FILTERS = new Set(['tags', 'tags-any', 'not-tags', 'not-tags-any'])

/** A filter Neutron implements specially (e.g. `fixed_ips=ip_address=X` on ports). */
export type CustomFilter = (item: View, values: string[]) => boolean

/** How to list one collection. */
export interface ListSpec {
  /** `ports` */
  collection: string
  /** Attributes that may be used as plain equality filters. */
  filterable: readonly string[]
  custom?: Record<string, CustomFilter>
  /** Whether Neutron has the tag extension (`hasTags`), which makes the tag filters valid. */
  tags: boolean
  /** The collection's 404 for an unknown marker (Neutron looks the marker up like a GET would). */
  notFound: (id: string) => ApiError
}

function scalarMatches(value: unknown, wanted: string): boolean {
  if (value === null || value === undefined) return wanted === '' || wanted === 'None'
  if (typeof value === 'boolean')
    return ['true', '1', 'yes', 'on'].includes(wanted.toLowerCase()) === value
  return String(value) === wanted
}

function matches(item: View, key: string, values: string[]): boolean {
  const value = item[key]
  if (Array.isArray(value)) return values.some((w) => value.some((v) => scalarMatches(v, w)))
  return values.some((w) => scalarMatches(value, w))
}

function tagList(q: URLSearchParams, key: string): string[] {
  return q
    .getAll(key)
    .flatMap((v) => v.split(','))
    .filter((t) => t !== '')
}

function tagsMatch(item: View, q: URLSearchParams): boolean {
  const tags = Array.isArray(item['tags']) ? (item['tags'] as unknown[]).map(String) : []
  const all = tagList(q, 'tags')
  const any = tagList(q, 'tags-any')
  const notAll = tagList(q, 'not-tags')
  const notAny = tagList(q, 'not-tags-any')
  if (all.length > 0 && !all.every((t) => tags.includes(t))) return false
  if (any.length > 0 && !any.some((t) => tags.includes(t))) return false
  if (notAll.length > 0 && notAll.every((t) => tags.includes(t))) return false
  if (notAny.length > 0 && notAny.some((t) => tags.includes(t))) return false
  return true
}

function compare(a: unknown, b: unknown): number {
  const x =
    a === null || a === undefined ? '' : typeof a === 'object' ? JSON.stringify(a) : String(a)
  const y =
    b === null || b === undefined ? '' : typeof b === 'object' ? JSON.stringify(b) : String(b)
  return x < y ? -1 : x > y ? 1 : 0
}

function pythonUrlencode(q: URLSearchParams): string {
  // Python's urlencode quotes with quote_plus; URLSearchParams does the same for these characters.
  return q.toString()
}

/**
 * Answer a GET on a collection from the items the caller may see.
 * @example return listReply(ctx, { collection: 'ports', filterable: PORT_FILTERS, tags: hasTags(cloud) }, visiblePorts)
 */
export function listReply(ctx: Ctx, spec: ListSpec, items: View[]): Reply {
  const q = ctx.query
  const invalid: string[] = []
  const filters: [string, string[]][] = []
  for (const key of new Set(q.keys())) {
    if (RESERVED.has(key) || (spec.tags && TAG_FILTERS.has(key))) continue
    if (!spec.filterable.includes(key) && spec.custom?.[key] === undefined) invalid.push(key)
    else filters.push([key, q.getAll(key)])
  }
  if (invalid.length > 0) {
    throw neutronError(
      400,
      'HTTPBadRequest',
      `[${invalid.map((k) => `'${k}'`).join(', ')}] is invalid attribute for filtering`,
    )
  }
  let out = items.filter(
    (item) =>
      (!spec.tags || tagsMatch(item, q)) &&
      filters.every(([key, values]) => {
        const custom = spec.custom?.[key]
        return custom !== undefined ? custom(item, values) : matches(item, key, values)
      }),
  )

  const limitRaw = q.get('limit')
  let limit = 0
  if (limitRaw !== null) {
    limit = /^-?\d+$/.test(limitRaw) ? Number(limitRaw) : -1
    if (limit < 0)
      throw neutronError(
        400,
        'BadRequest',
        `Bad limit request: Limit must be an integer 0 or greater and not '${limitRaw}'.`,
      )
  }
  const sortKeys = q.getAll('sort_key')
  const sortDirs = q.getAll('sort_dir')
  if (sortKeys.length !== sortDirs.length && sortDirs.length > 0) {
    throw neutronError(400, 'HTTPBadRequest', 'The number of sort_keys and sort_dirs must be same')
  }
  for (const d of sortDirs) {
    if (d !== 'asc' && d !== 'desc')
      throw neutronError(
        400,
        'HTTPBadRequest',
        `${d} is invalid value for sort_dirs, valid value is 'asc' and 'desc'`,
      )
  }
  const sorts: [string, boolean][] = sortKeys.map((k, i) => [k, (sortDirs[i] ?? 'asc') === 'asc'])
  // Neutron's native pagination always sorts by id last, so markers are stable.
  if (limit > 0 && !sorts.some(([k]) => k === 'id')) sorts.push(['id', true])
  if (sorts.length > 0) {
    out = [...out].sort((a, b) => {
      for (const [k, asc] of sorts) {
        const c = compare(a[k], b[k])
        if (c !== 0) return asc ? c : -c
      }
      return 0
    })
  }

  let links: { rel: string; href: string }[] | null = null
  if (limit > 0) {
    const marker = q.get('marker')
    const reverse = (q.get('page_reverse') ?? 'false').toLowerCase() === 'true'
    let i = reverse ? out.length : 0
    if (marker !== null) {
      const at = out.findIndex((x) => x['id'] === marker)
      if (at < 0 && !items.some((x) => x['id'] === marker)) throw spec.notFound(marker)
      i = at
    }
    if (i < 0) out = []
    else if (reverse) out = out.slice(Math.max(i - limit, 0), i)
    else out = out.slice(marker !== null ? i + 1 : i, (marker !== null ? i + 1 : i) + limit)
    links = []
    const base = `${ctx.baseUrl}${ctx.fullPath}`
    if (!(out.length < limit && !reverse)) {
      const p = new URLSearchParams(q)
      p.delete('marker')
      const last = out[out.length - 1]
      if (last !== undefined) p.set('marker', String(last['id']))
      p.delete('page_reverse')
      links.push({ rel: 'next', href: `${base}?${pythonUrlencode(p)}` })
    }
    if (!(out.length < limit && reverse)) {
      const p = new URLSearchParams(q)
      p.delete('marker')
      const first = out[0]
      if (first !== undefined) p.set('marker', String(first['id']))
      p.set('page_reverse', 'True')
      links.push({ rel: 'previous', href: `${base}?${pythonUrlencode(p)}` })
    }
  }

  const fields = q.getAll('fields').filter((f) => f !== '')
  if (fields.length > 0) out = out.map((item) => pick(item, fields))
  const body: Record<string, unknown> = { [spec.collection]: out }
  if (links !== null) body[`${spec.collection}_links`] = links
  return json(200, body)
}

/** Keep only the requested fields of a resource (`?fields=id&fields=name`). */
export function pick(item: View, fields: string[]): View {
  const out: View = {}
  for (const f of fields) if (f in item) out[f] = item[f]
  return out
}

/** Apply `?fields=` to a single resource (GET /ports/{id}?fields=...). */
export function showFields(ctx: Ctx, item: View): View {
  const fields = ctx.query.getAll('fields').filter((f) => f !== '')
  return fields.length > 0 ? pick(item, fields) : item
}
