/** Neutron v2.0: version discovery, extensions, tags, and the resource routes of the other files. */
import { neutronVersions } from '../catalog.ts'
import { EXTENSIONS } from './extensions.ts'
import type { Cloud } from '../cloud.ts'
import { json, neutronError } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { canSeeNetwork, canSeePort, caller, touch } from './common.ts'
import { l3Routes } from './l3.ts'
import { networkRoutes } from './networks.ts'
import { portRoutes } from './ports.ts'
import { securityRoutes } from './security.ts'

const TAGGABLE: Record<string, string> = {
  networks: 'networks',
  subnets: 'subnets',
  ports: 'ports',
  routers: 'routers',
  floatingips: 'floatingIps',
  'security-groups': 'securityGroups',
}

type Tagged = {
  id: string
  projectId: string
  tags: string[]
  updatedAt: string
  revisionNumber: number
}

function taggedResource(cloud: Cloud, ctx: Ctx): Tagged {
  const auth = caller(ctx)
  const collection = ctx.params[0] ?? ''
  const id = ctx.params[1] ?? ''
  const s = cloud.state
  let found: Tagged | undefined
  switch (collection) {
    case 'networks':
      found = s.networks.find((n) => n.id === id && canSeeNetwork(n, auth))
      break
    case 'ports':
      found = s.ports.find((p) => p.id === id && canSeePort(cloud, p, auth))
      break
    case 'subnets':
      found = s.subnets.find((x) => x.id === id)
      break
    case 'routers':
      found = s.routers.find((x) => x.id === id && (auth.isAdmin || x.projectId === auth.projectId))
      break
    case 'floatingips':
      found = s.floatingIps.find(
        (x) => x.id === id && (auth.isAdmin || x.projectId === auth.projectId),
      )
      break
    case 'security-groups':
      found = s.securityGroups.find(
        (x) => x.id === id && (auth.isAdmin || x.projectId === auth.projectId),
      )
      break
  }
  if (found === undefined)
    throw neutronError(404, 'NotFound', `${collection.replace(/s$/, '')} ${id} could not be found.`)
  return found
}

function tagRoutes(cloud: Cloud): Route[] {
  const kinds = Object.keys(TAGGABLE).join('|')
  const base = new RegExp(`^/v2\\.0/(${kinds})/([^/]+)/tags$`)
  const one = new RegExp(`^/v2\\.0/(${kinds})/([^/]+)/tags/([^/]+)$`)
  const commit = (r: Reply) => cloud.commit().then(() => r)
  return [
    {
      method: 'GET',
      pattern: base,
      handler: (ctx) => json(200, { tags: taggedResource(cloud, ctx).tags }),
    },
    {
      method: 'PUT',
      pattern: base,
      handler: (ctx) => {
        const r = taggedResource(cloud, ctx)
        const tags = (ctx.body as { tags?: unknown } | null)?.tags
        if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string'))
          throw neutronError(400, 'HTTPBadRequest', 'Invalid tags body')
        r.tags = [...new Set(tags as string[])]
        touch(r)
        return commit(json(200, { tags: r.tags }))
      },
    },
    {
      method: 'DELETE',
      pattern: base,
      handler: (ctx) => {
        const r = taggedResource(cloud, ctx)
        r.tags = []
        touch(r)
        return commit({ status: 204 })
      },
    },
    {
      method: 'GET',
      pattern: one,
      handler: (ctx) => {
        const r = taggedResource(cloud, ctx)
        const tag = decodeURIComponent(ctx.params[2] ?? '')
        if (!r.tags.includes(tag))
          throw neutronError(
            404,
            'TagNotFound',
            `Tag ${tag} could not be found for resource ${r.id}.`,
          )
        return { status: 204 }
      },
    },
    {
      method: 'PUT',
      pattern: one,
      handler: (ctx) => {
        const r = taggedResource(cloud, ctx)
        const tag = decodeURIComponent(ctx.params[2] ?? '')
        if (!r.tags.includes(tag)) r.tags.push(tag)
        touch(r)
        return commit({ status: 201 })
      },
    },
    {
      method: 'DELETE',
      pattern: one,
      handler: (ctx) => {
        const r = taggedResource(cloud, ctx)
        const tag = decodeURIComponent(ctx.params[2] ?? '')
        if (!r.tags.includes(tag))
          throw neutronError(
            404,
            'TagNotFound',
            `Tag ${tag} could not be found for resource ${r.id}.`,
          )
        r.tags = r.tags.filter((t) => t !== tag)
        touch(r)
        return commit({ status: 204 })
      },
    },
  ]
}

/** Routes that need no token: Neutron's version document. */
export function neutronPublicRoutes(): Route[] {
  return [
    { method: 'GET', pattern: /^\/?$/, handler: (ctx) => json(200, neutronVersions(ctx.baseUrl)) },
  ]
}

/** All of Neutron's authenticated routes (mounted at `/network`). */
export function neutronRoutes(cloud: Cloud): Route[] {
  const ext = (alias: string, name: string) => ({
    alias,
    name,
    description: name,
    updated: '2013-01-01T10:00:00-00:00',
    links: [],
  })
  return [
    {
      method: 'GET',
      pattern: /^\/v2\.0\/?$/,
      handler: (ctx) => {
        const names: [string, string][] = [
          ['network', 'networks'],
          ['subnet', 'subnets'],
          ['port', 'ports'],
          ['router', 'routers'],
          ['floatingip', 'floatingips'],
          ['security_group', 'security-groups'],
          ['security_group_rule', 'security-group-rules'],
        ]
        return json(200, {
          resources: names.map(([name, collection]) => ({
            name,
            collection,
            links: [{ rel: 'self', href: `${ctx.baseUrl}/network/v2.0/${collection}` }],
          })),
        })
      },
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/extensions$/,
      handler: () =>
        json(200, {
          extensions: EXTENSIONS.filter(([a]) => cloud.neutronExtensions.has(a)).map(([a, n]) =>
            ext(a, n),
          ),
        }),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.0\/extensions\/([^/]+)$/,
      handler: (ctx) => {
        const found = EXTENSIONS.find(
          ([a]) => a === ctx.params[0] && cloud.neutronExtensions.has(a),
        )
        if (found === undefined)
          throw neutronError(
            404,
            'HTTPNotFound',
            `Extension with alias ${ctx.params[0] ?? ''} does not exist`,
          )
        return json(200, { extension: ext(found[0], found[1]) })
      },
    },
    ...networkRoutes(cloud),
    ...portRoutes(cloud),
    ...securityRoutes(cloud),
    ...l3Routes(cloud),
    // Without the tag extension Neutron has no /tags routes: 404, as for any unknown path.
    ...(cloud.neutronExtensions.has('standard-attr-tag') ? tagRoutes(cloud) : []),
  ]
}
