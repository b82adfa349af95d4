import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  selectEndpoint,
  versionedEndpoint,
  type CatalogEntry,
} from '../../../../modules/openstack/client/catalog.ts'
import { OpenStackApiError, parseFault } from '../../../../modules/openstack/client/errors.ts'
import { parseToken } from '../../../../modules/openstack/client/keystone.ts'

const SAMPLES = path.resolve('test/fixtures/openstack-samples')
const GOLDEN = path.resolve('lab/conformance/golden')
const json = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'))
const catalogOf = (body: unknown): CatalogEntry[] => parseToken('t', body).catalog

describe('service catalog', () => {
  const official = catalogOf(json(path.join(SAMPLES, 'keystone-token-resp.json')))
  const real = catalogOf(
    (json(path.join(GOLDEN, 'keystone.auth.password.json')) as { body: unknown }).body,
  )

  it.each([
    [
      'real Neutron (no version in the catalog)',
      real,
      'network',
      'public',
      undefined,
      'http://127.0.0.1:9696/v2.0',
    ],
    [
      'the api-ref sample, public network',
      official,
      'network',
      'public',
      'RegionOne',
      'http://23.253.248.171:9696/v2.0',
    ],
    [
      'the api-ref sample, internal compute (project id kept)',
      official,
      'compute',
      'internal',
      'RegionOne',
      'http://23.253.248.171:8774/v2.1/a6944d763bf64ee6a275f1263fae0352',
    ],
    [
      'the api-ref sample, image',
      official,
      'image',
      'public',
      undefined,
      'http://23.253.248.171:9292/v2',
    ],
  ] as const)('%s', (...[_name, catalog, type, iface, region, want]) => {
    expect(
      versionedEndpoint(type, selectEndpoint(catalog, type, { interface: iface, region })),
    ).toBe(want)
  })

  it('says which endpoints exist when none matches', () => {
    expect(() => selectEndpoint(real, 'compute', { interface: 'public' })).toThrow(
      /no compute service/,
    )
    expect(() =>
      selectEndpoint(real, 'network', { interface: 'public', region: 'Elsewhere' }),
    ).toThrow(/no public network endpoint in region Elsewhere/)
  })

  it.each([
    ['network', 'http://h:9696', 'http://h:9696/v2.0'],
    ['network', 'http://h/network/', 'http://h/network/v2.0'],
    ['network', 'http://h/network/v2.0/', 'http://h/network/v2.0'],
    ['compute', 'http://h:8774/v2.1', 'http://h:8774/v2.1'],
    [
      'compute',
      'http://h:8774/v2.1/0123456789abcdef0123456789abcdef',
      'http://h:8774/v2.1/0123456789abcdef0123456789abcdef',
    ],
    [
      'compute',
      'http://h:8774/v2/0123456789abcdef0123456789abcdef',
      'http://h:8774/v2.1/0123456789abcdef0123456789abcdef',
    ],
    ['compute', 'http://h/compute', 'http://h/compute/v2.1'],
    ['image', 'http://h:9292', 'http://h:9292/v2'],
    ['image', 'http://h/image/v2/', 'http://h/image/v2'],
    ['identity', 'http://h/identity', 'http://h/identity/v3'],
    ['identity', 'http://h:5000/v3/', 'http://h:5000/v3'],
    ['identity', 'http://h:5000/v2.0', 'http://h:5000/v3'],
  ] as const)('%s %s -> %s', (service, url, want) => {
    expect(versionedEndpoint(service, url)).toBe(want)
  })
})

describe('error envelopes', () => {
  it.each([
    [
      'neutron-error-ipaddress-already-allocated-409.json',
      {
        type: 'IpAddressAlreadyAllocated',
        message:
          'IP address 10.250.14.112 already allocated in subnet 9519c0c5-0c09-48ee-89a1-90ff7bb8fd9c',
      },
    ],
    [
      'neutron-error-network-not-found-404.json',
      {
        type: 'NetworkNotFound',
        message: 'Network 7bc1d12f-5ef6-4177-aa87-c2a5c74aa40b could not be found',
      },
    ],
    [
      'nova-error-itemnotfound-404.json',
      { type: 'itemNotFound', message: 'Aggregate agg_h1 could not be found.' },
    ],
    [
      'keystone-error-401.json',
      { type: 'Unauthorized', message: 'The request you have made requires authentication.' },
    ],
  ])('%s', (file, want) => {
    expect(parseFault(json(path.join(SAMPLES, file)))).toEqual(want)
  })

  it('reads Glance, webob HTML and plain text', () => {
    expect(
      parseFault({
        code: '404 Not Found',
        title: 'Not Found',
        message: 'No image found with ID x',
      }),
    ).toEqual({ type: 'Not Found', message: 'No image found with ID x' })
    expect(
      parseFault(
        '<html><body><h1>503 Service Unavailable</h1>No server is available.</body></html>',
      ),
    ).toEqual({ message: '503 Service Unavailable No server is available.' })
    expect(parseFault('', 'HTTP 502')).toEqual({ message: 'HTTP 502' })
  })

  it('says service, status, type, message and request', () => {
    const body = (
      json(path.join(GOLDEN, 'neutron.port.create-duplicate-ip.json')) as { body: unknown }
    ).body
    const e = new OpenStackApiError({
      service: 'network',
      method: 'POST',
      path: '/v2.0/ports',
      status: 409,
      fault: parseFault(body),
    })
    expect(e.message).toBe(
      'Neutron 409 IpAddressAlreadyAllocated: IP address 192.0.2.240 already allocated in subnet 2107727c-99df-44af-9bcf-7cf25c53ed00 (POST /v2.0/ports)',
    )
    expect(e.code).toBe('E_API')
  })
})
