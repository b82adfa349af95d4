import { describe, expect, it } from 'vitest'
import { shapeOf } from '../../../lab/conformance/shape.ts'

describe('shapeOf', () => {
  it('lists nested key paths, arrays as []', () => {
    const s = shapeOf({
      port: { id: 'p', fixed_ips: [{ ip_address: '192.0.2.5', subnet_id: 's' }], tags: [] },
    })
    expect(s.keys).toEqual([
      'port',
      'port.fixed_ips',
      'port.fixed_ips[].ip_address',
      'port.fixed_ips[].subnet_id',
      'port.id',
      'port.tags',
    ])
  })

  it('merges the keys of every array element, so element order does not matter', () => {
    const a = shapeOf({ networks: [{ id: '1' }, { id: '2', is_default: false }] })
    const b = shapeOf({ networks: [{ id: '2', is_default: false }, { id: '1' }] })
    expect(a).toEqual(b)
    expect(a.keys).toContain('networks[].is_default')
  })

  it('records non-null types, element types under [], and skips null', () => {
    const s = shapeOf({ r: { port_range_min: 22, protocol: null, security_groups: ['a'] } })
    expect(s.types['r.port_range_min']).toBe('number')
    expect(s.types['r.protocol']).toBeUndefined()
    expect(s.types['r.security_groups[]']).toBe('string')
  })

  it('gives an empty shape for non-objects', () => {
    expect(shapeOf(null)).toEqual({ keys: [], types: {} })
    expect(shapeOf('text')).toEqual({ keys: [], types: {} })
  })
})
