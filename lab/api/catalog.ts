/**
 * The service catalog and the version-discovery documents keystoneauth and openstacksdk probe.
 * All services share one port; the path tells them apart, as in devstack:
 * `/v3` (identity), `/compute/v2.1`, `/network` (`/v2.0` below it), `/image` (`/v2` below it).
 */
import { stableId } from './ids.ts'

/** The lab's only region. */
export const REGION = 'RegionOne'

/** Nova's microversion range. */
export const NOVA_MIN_VERSION = '2.1'
/** The highest microversion whose response shapes the lab implements. */
export const NOVA_MAX_VERSION = '2.100'

/** One catalog service with its endpoints, as in a Keystone token. */
export interface CatalogEntry {
  id: string
  type: string
  name: string
  endpoints: { id: string; interface: string; region: string; region_id: string; url: string }[]
}

const SERVICES: { type: string; name: string; path: string }[] = [
  { type: 'identity', name: 'keystone', path: '/v3' },
  { type: 'compute', name: 'nova', path: '/compute/v2.1' },
  { type: 'network', name: 'neutron', path: '/network' },
  { type: 'image', name: 'glance', path: '/image' },
]

/**
 * The catalog of a project-scoped token: public and internal endpoints of every service.
 * @example catalog('http://127.0.0.1:8780')[1].endpoints[0].url === 'http://127.0.0.1:8780/compute/v2.1'
 */
export function catalog(endpoint: string): CatalogEntry[] {
  return SERVICES.map((s) => ({
    id: stableId(`service:${s.type}`),
    type: s.type,
    name: s.name,
    endpoints: ['public', 'internal'].map((iface) => ({
      id: stableId(`endpoint:${s.type}:${iface}`),
      interface: iface,
      region: REGION,
      region_id: REGION,
      url: `${endpoint}${s.path}`,
    })),
  }))
}

const KEYSTONE_MEDIA = [
  { base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' },
]

/** Keystone's v3 version document (Keystone 22 speaks v3.14). */
export function keystoneVersion(base: string): Record<string, unknown> {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${base}/v3/` }],
    'media-types': KEYSTONE_MEDIA,
  }
}

/** GET / : Keystone answers 300 Multiple Choices with its versions. */
export function keystoneVersions(base: string): Record<string, unknown> {
  return { versions: { values: [keystoneVersion(base)] } }
}

/** Nova's v2.1 version document. */
export function novaVersion(base: string, max = NOVA_MAX_VERSION): Record<string, unknown> {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: max,
    min_version: NOVA_MIN_VERSION,
    updated: '2013-07-23T11:33:21Z',
    links: [
      { rel: 'self', href: `${base}/compute/v2.1/` },
      { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' },
    ],
    'media-types': [
      { base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' },
    ],
  }
}

/** GET /compute/ : Nova lists v2.0 (deprecated) and v2.1. */
export function novaVersions(base: string, max = NOVA_MAX_VERSION): Record<string, unknown> {
  const v21 = novaVersion(base, max)
  return {
    versions: [
      {
        id: 'v2.0',
        status: 'DEPRECATED',
        version: '',
        min_version: '',
        updated: '2025-07-04T12:00:00Z',
        links: [{ rel: 'self', href: `${base}/compute/v2/` }],
      },
      {
        id: v21['id'],
        status: v21['status'],
        version: v21['version'],
        min_version: v21['min_version'],
        updated: v21['updated'],
        links: [{ rel: 'self', href: `${base}/compute/v2.1/` }],
      },
    ],
  }
}

/** GET /network/ : Neutron's only version. */
export function neutronVersions(base: string): Record<string, unknown> {
  return {
    versions: [
      { id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${base}/network/v2.0/` }] },
    ],
  }
}

/** GET /image/ : Glance's versions (Glance answers 300 Multiple Choices). */
export function glanceVersions(base: string): Record<string, unknown> {
  const ids = [
    'v2.16',
    'v2.15',
    'v2.9',
    'v2.7',
    'v2.6',
    'v2.5',
    'v2.4',
    'v2.3',
    'v2.2',
    'v2.1',
    'v2.0',
  ]
  return {
    versions: ids.map((id, i) => ({
      id,
      status: i === 0 ? 'CURRENT' : 'SUPPORTED',
      links: [{ rel: 'self', href: `${base}/image/v2/` }],
    })),
  }
}
