import { describe, expect, it } from 'vitest'
import { colorsFor, formatChange } from '../../../engine/report/format.ts'
import { unknown } from '../../../engine/vars/unknown.ts'

describe('formatChange', () => {
  const c = colorsFor(process.stdout, false)
  it('prints values known after apply bare, also inside structures', () => {
    const lines = formatChange(
      {
        action: 'create',
        target: 'port kld-vip',
        after: {
          id: unknown('id'),
          fixed_ips: [{ ip_address: '192.0.2.254', subnet_id: unknown('s') }],
        },
      },
      c,
      { diff: false },
    )
    expect(lines).toEqual([
      '  + port kld-vip',
      '      + id        = (known after apply)',
      '      + fixed_ips = [{"ip_address":"192.0.2.254","subnet_id":(known after apply)}]',
    ])
  })
  it('shows only the attributes that change in an update', () => {
    const lines = formatChange(
      { action: 'update', target: 'port p', before: { a: 1, b: 2 }, after: { a: 1, b: 3 } },
      c,
      { diff: false },
    )
    expect(lines).toEqual(['  ~ port p', '      ~ b = 2 -> 3'])
  })
})
