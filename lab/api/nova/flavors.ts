/** Nova flavors: list, detail, show, extra specs; create and delete for admins. */
import type { Cloud } from '../cloud.ts'
import { asObject, json, novaError } from '../http.ts'
import type { Ctx, Route } from '../http.ts'
import { uuid } from '../ids.ts'
import { invalid, who } from './create.ts'
import { flavorDetail, flavorSummary } from './views.ts'
import type { Microversion } from './versions.ts'
import type { FlavorRec } from '../types.ts'

/** Nova's flavor routes. */
export function flavorRoutes(cloud: Cloud, mv: (ctx: Ctx) => Microversion): Route[] {
  const visible = (ctx: Ctx) => {
    const auth = who(ctx)
    const minRam = Number(ctx.query.get('minRam') ?? 0)
    const minDisk = Number(ctx.query.get('minDisk') ?? 0)
    return cloud.state.flavors.filter(
      (f) => (f.isPublic || auth.isAdmin) && f.ram >= minRam && f.disk >= minDisk,
    )
  }
  const one = (ctx: Ctx) => {
    const f = cloud.state.flavors.find((x) => x.id === ctx.params[0])
    if (f === undefined) throw novaError(404, `Flavor ${ctx.params[0] ?? ''} could not be found.`)
    return f
  }
  return [
    {
      method: 'GET',
      pattern: /^\/flavors$/,
      handler: (ctx) =>
        json(200, { flavors: visible(ctx).map((f) => flavorSummary(f, mv(ctx), ctx.baseUrl)) }),
    },
    {
      method: 'GET',
      pattern: /^\/flavors\/detail$/,
      handler: (ctx) =>
        json(200, { flavors: visible(ctx).map((f) => flavorDetail(f, mv(ctx), ctx.baseUrl)) }),
    },
    {
      method: 'GET',
      pattern: /^\/flavors\/([^/]+)$/,
      handler: (ctx) => json(200, { flavor: flavorDetail(one(ctx), mv(ctx), ctx.baseUrl) }),
    },
    {
      method: 'GET',
      pattern: /^\/flavors\/([^/]+)\/os-extra_specs$/,
      handler: (ctx) => json(200, { extra_specs: { ...one(ctx).extraSpecs } }),
    },
    {
      method: 'POST',
      pattern: /^\/flavors$/,
      handler: async (ctx) => {
        const auth = who(ctx)
        if (!auth.isAdmin)
          throw novaError(
            403,
            "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.",
          )
        const f = asObject(asObject(ctx.body)?.['flavor'])
        if (f === null || typeof f['name'] !== 'string')
          throw invalid('flavor', ctx.body, "'name' is a required property")
        const id = f['id'] === undefined || f['id'] === null ? uuid() : String(f['id'])
        if (cloud.state.flavors.some((x) => x.id === id || x.name === f['name']))
          throw novaError(409, `Flavor with name ${String(f['name'])} already exists.`)
        const flavor: FlavorRec = {
          id,
          name: f['name'],
          ram: Number(f['ram'] ?? 0),
          vcpus: Number(f['vcpus'] ?? 1),
          disk: Number(f['disk'] ?? 0),
          ephemeral: Number(f['OS-FLV-EXT-DATA:ephemeral'] ?? 0),
          swap: Number(f['swap'] ?? 0) || 0,
          rxtxFactor: Number(f['rxtx_factor'] ?? 1),
          isPublic: f['os-flavor-access:is_public'] !== false,
          disabled: false,
          description: typeof f['description'] === 'string' ? f['description'] : null,
          extraSpecs: {},
        }
        cloud.state.flavors.push(flavor)
        await cloud.commit()
        return json(200, { flavor: flavorDetail(flavor, mv(ctx), ctx.baseUrl) })
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/flavors\/([^/]+)$/,
      handler: async (ctx) => {
        if (!who(ctx).isAdmin)
          throw novaError(
            403,
            "Policy doesn't allow os_compute_api:os-flavor-manage:delete to be performed.",
          )
        const f = one(ctx)
        cloud.state.flavors = cloud.state.flavors.filter((x) => x.id !== f.id)
        await cloud.commit()
        return { status: 202 }
      },
    },
  ]
}
