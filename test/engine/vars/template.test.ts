import { describe, expect, it } from 'vitest'
import { RunbookError } from '../../../engine/errors.ts'
import { renderDeep, renderString, templateRefs } from '../../../engine/vars/template.ts'
import { isUnknown, unknown, Unknown } from '../../../engine/vars/unknown.ts'

const scope = {
  vip: '192.0.2.254',
  prefix: 24,
  nodes: [
    { name: 'kld-vm-1', state: 'MASTER', priority: 120 },
    { name: 'kld-vm-2', state: 'BACKUP', priority: 90 },
  ],
  html: '<a & b>',
  flag: false,
  results: [{ facts: { rs: { port: 80 } } }, { facts: { rs: { port: 8080 } } }],
}

describe('renderString', () => {
  it.each([
    ['{{vip}}/{{prefix}}', '192.0.2.254/24'],
    ['{{html}}', '<a & b>'],
    ['{{#each nodes}}{{name}}={{priority}};{{/each}}', 'kld-vm-1=120;kld-vm-2=90;'],
    ['{{#each nodes}}{{@index}}:{{vip}} {{/each}}', '0:192.0.2.254 1:192.0.2.254 '],
    ['{{#if flag}}yes{{else}}no{{/if}}', 'no'],
    ['{{upper (lookup nodes.[0] "state")}}', 'MASTER'],
    ['x {{join (map nodes "name") ","}}', 'x kld-vm-1,kld-vm-2'],
    ['{{default missing "d"}}', 'd'],
    ['{{ip_network "192.0.2.254/24"}}', '192.0.2.0/24'],
    // keepalived's HTTP_GET digest of a page: what genhash prints for a body of 'kld-vm-1'
    ['{{md5 (lookup nodes.[0] "name")}}', '24fd9a7f380b595ec02d7c0ee0c123f8'],
    ['{{join (map results "facts.rs.port") ","}}', '80,8080'],
  ])('%s', (t, want) => {
    expect(renderString(t, scope)).toBe(want)
  })

  it('returns native values for a lone expression', () => {
    expect(renderString('{{nodes}}', scope)).toEqual(scope.nodes)
    expect(renderString('{{prefix}}', scope)).toBe(24)
    expect(renderString(' {{ flag }} ', scope)).toBe(false)
  })

  it('keeps the whitespace around a lone expression whose value is text (a block scalar’s newline)', () => {
    expect(renderString('{{vip}}\n', scope)).toBe(`${String(scope.vip)}\n`)
    expect(renderString('  {{vip}}', scope)).toBe(`  ${String(scope.vip)}`)
    expect(renderString('{{vip}}', scope)).toBe(scope.vip)
  })

  it('fails on a missing variable instead of rendering an empty string', () => {
    expect(() => renderString('addr {{vpi}}', scope)).toThrowError(RunbookError)
    expect(() => renderString('addr {{vpi}}', scope)).toThrow(/undefined variable 'vpi'/)
    expect(() => renderString('{{nodes.0.nme}}', scope)).toThrow(/'nme' in 'nodes.0'/)
    expect(() => renderString('{{join missing ","}}', scope)).toThrow(
      /undefined variable 'missing'/,
    )
  })

  it('suggests the closest name', () => {
    try {
      renderString('{{vpi}}', scope)
      expect.unreachable()
    } catch (e) {
      expect((e as RunbookError).hint).toBe("did you mean 'vip'?")
    }
  })

  it('carries unknown values through instead of failing', () => {
    const s = { ...scope, server: unknown('server') }
    expect(isUnknown(renderString('{{server.id}}', s))).toBe(true)
    const partial = renderString('port {{server.ports.0.id}} of {{vip}}', s)
    expect(partial).toBeInstanceOf(Unknown)
    expect((partial as Unknown).partial).toBe('port (known after apply) of 192.0.2.254')
  })

  it('renders deep structures', () => {
    expect(renderDeep({ a: ['{{vip}}', { b: '{{prefix}}' }], c: 3 }, scope)).toEqual({
      a: ['192.0.2.254', { b: 24 }],
      c: 3,
    })
  })

  it('rejects unknown helpers', () => {
    expect(() => renderString('{{frobnicate vip}}', scope)).toThrow(/unknown helper 'frobnicate'/)
  })
})

describe('templateRefs', () => {
  it('lists root variables outside blocks and helpers', () => {
    const r = templateRefs(
      'a {{vip}} {{#each nodes}}{{name}}{{/each}} {{join (map nodes "name") sep}}',
    )
    expect(r.vars.map((v) => v.root)).toEqual(['vip', 'nodes', 'nodes', 'sep'])
    expect(r.helpers.map((h) => h.root)).toEqual(['each', 'join', 'map'])
    expect(r.vars[0]?.index).toBe(2)
  })
})
