import { describe, expect, it } from 'vitest'
import {
  STATIC_LOOP_LIMIT,
  renderKnown,
  staticLoop,
  staticScope,
  withNames,
} from '../../../engine/runbook/static-args.ts'

describe('staticScope', () => {
  it('renders known values, templated ones through each other', () => {
    const s = staticScope({ root: '/var', data: '{{root}}/lib', n: 3 }, new Set())
    expect(s.data).toBe('/var/lib')
    expect(s.n).toBe(3)
  })

  it('treats names set during the run (or secrets) as unknown, even with a top-level value', () => {
    const s = staticScope({ base: '/etc', token: 'x' }, new Set(['base', 'token']))
    expect(renderKnown('{{base}}', s)).toBe('{{base}}')
    expect(renderKnown('{{token}}', s)).toBe('{{token}}')
  })

  it('treats names it has never heard of as unknown, not as errors', () => {
    const s = staticScope({}, new Set())
    expect(renderKnown({ path: '/srv/{{inventory_hostname}}' }, s)).toEqual({
      path: '/srv/{{inventory_hostname}}',
    })
  })
})

describe('renderKnown', () => {
  const s = staticScope({ base: '/etc', list: [1, 2], m: { a: 'b' } }, new Set(['h']))

  it('renders leaves that are fully known and keeps the others as written', () => {
    expect(renderKnown({ a: '{{base}}/x', b: '{{h}}/x', c: ['{{list}}', 4], d: 5 }, s)).toEqual({
      a: '/etc/x',
      b: '{{h}}/x',
      c: [[1, 2], 4],
      d: 5,
    })
  })

  it('returns native values for a lone expression', () => {
    expect(renderKnown('{{m}}', s)).toEqual({ a: 'b' })
  })

  it('keeps a template that fails to render (reported by the template checks)', () => {
    expect(renderKnown('{{#if}}', s)).toBe('{{#if}}')
    expect(renderKnown('{{nosuchhelper base 1}}', s)).toBe('{{nosuchhelper base 1}}')
  })
})

describe('staticLoop', () => {
  const s = staticScope({ dirs: ['/a', '/b'], one: 'x' }, new Set(['late']))

  it('reads a literal list and a list from a known var', () => {
    expect(staticLoop(['/x', '{{one}}'], s)).toEqual(['/x', 'x'])
    expect(staticLoop('{{dirs}}', s)).toEqual(['/a', '/b'])
  })

  it('gives up on anything not known to be a list', () => {
    expect(staticLoop('{{late}}', s)).toBeUndefined()
    expect(staticLoop('{{one}}', s)).toBeUndefined()
  })

  it('stops at the limit', () => {
    const many = Array.from({ length: STATIC_LOOP_LIMIT + 10 }, (_, i) => i)
    expect(staticLoop(many, s)).toHaveLength(STATIC_LOOP_LIMIT)
  })

  it('binds the item over the scope', () => {
    expect(renderKnown('{{item}}:{{one}}', withNames(s, { item: 7 }))).toBe('7:x')
  })
})
