/**
 * The service catalog of a Keystone token: pick a service's endpoint by type, region and interface,
 * and give it the API version the client speaks, as catalogs differ (`http://host:9696` or
 * `.../network` for Neutron, `.../v2.1` or `.../v2.1/<project>` for Nova, `.../image` for Glance).
 */
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import type { EndpointInterface } from './config.ts'
import { SERVICE_NAMES, type ServiceType } from './errors.ts'

/** One service of a catalog, as Keystone returns it (only what the client reads). */
export const catalogEntrySchema = z.object({
  type: z.string(),
  name: z.string().optional(),
  endpoints: z.array(
    z.object({
      interface: z.string(),
      url: z.string(),
      region: z.string().nullable().optional(),
      region_id: z.string().nullable().optional(),
    }),
  ),
})

/** A catalog entry. */
export type CatalogEntry = z.infer<typeof catalogEntrySchema>

/** Which endpoint to take. */
export interface EndpointFilter {
  interface: EndpointInterface
  region?: string | undefined
}

/**
 * The URL of a service in the catalog.
 * @example selectEndpoint(catalog, 'network', { interface: 'public', region: 'RegionOne' }) // 'http://127.0.0.1:9696'
 */
export function selectEndpoint(
  catalog: readonly CatalogEntry[],
  type: ServiceType,
  f: EndpointFilter,
): string {
  const services = catalog.filter((s) => s.type === type)
  if (services.length === 0) {
    throw new RunbookError(
      'E_API',
      `the service catalog has no ${type} service (${SERVICE_NAMES[type]})`,
      {
        hint: `it has: ${catalog.map((s) => s.type).join(', ') || 'nothing (an unscoped token?)'}`,
      },
    )
  }
  const all = services.flatMap((s) => s.endpoints)
  const inRegion = all.filter(
    (e) => f.region === undefined || e.region_id === f.region || e.region === f.region,
  )
  const match = inRegion.find(
    (e) => e.interface === f.interface || e.interface === `${f.interface}URL`,
  )
  if (match === undefined) {
    const have = all
      .map(
        (e) => `${e.interface}${(e.region_id ?? e.region) ? ` in ${e.region_id ?? e.region}` : ''}`,
      )
      .join(', ')
    throw new RunbookError(
      'E_API',
      `the service catalog has no ${f.interface} ${type} endpoint${f.region ? ` in region ${f.region}` : ''}`,
      { hint: `it has: ${have}` },
    )
  }
  return match.url
}

/**
 * A service's base URL with the version the client speaks, without a trailing slash:
 * Neutron `/v2.0`, Nova `/v2.1` (a project id after it stays), Glance `/v2`, Keystone `/v3`.
 * @example versionedEndpoint('network', 'http://127.0.0.1:9696/') // 'http://127.0.0.1:9696/v2.0'
 */
export function versionedEndpoint(service: ServiceType, url: string): string {
  const u = url.replace(/\/+$/, '')
  switch (service) {
    case 'network':
      return /\/v2\.0$/.test(u) ? u : `${u}/v2.0`
    case 'image':
      return /\/v2$/.test(u) ? u : `${u}/v2`
    case 'identity':
      if (/\/v3$/.test(u)) return u
      return /\/v2\.0$/.test(u) ? u.replace(/\/v2\.0$/, '/v3') : `${u}/v3`
    case 'compute': {
      // `/v2.1`, `/v2.1/<project>`; the legacy `/v2[/<project>]` serves v2.1 at `/v2.1` in the same API.
      if (/\/v2\.1(\/[^/]+)?$/.test(u)) return u
      const legacy = /^(.*)\/v2(\/[^/]+)?$/.exec(u)
      if (legacy) return `${legacy[1] ?? ''}/v2.1${legacy[2] ?? ''}`
      return `${u}/v2.1`
    }
  }
}
