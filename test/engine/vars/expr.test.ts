import { describe, expect, it } from 'vitest'
import { evaluate, evaluateCondition, expressionRefs } from '../../../engine/vars/expr.ts'
import { isUnknown, unknown } from '../../../engine/vars/unknown.ts'

const scope = {
  item: { name: 'kld-vm-1', state: 'MASTER', priority: 120 },
  result: { rc: 0, stdout: 'default via 192.0.2.1 dev ens3', stdout_lines: ['a', 'b'] },
  nodes: [1, 2],
  empty: '',
}

describe('evaluate', () => {
  it.each([
    ["item.state == 'MASTER'", true],
    ["item.state == 'MASTER' and result.rc != 0", false],
    ["item.state == 'BACKUP' or result.rc == 0", true],
    ['not (result.rc == 0)', false],
    ['result.stdout_lines | length > 1', true],
    ["'ens3' in result.stdout", true],
    ['2 in nodes', true],
    ['missing is defined', false],
    ['missing is not defined', true],
    ['item.nope is undefined', true],
    ['item.priority >= 100 && item.priority < 200', true],
    ['result.rc == "0"', true],
    ['True and not False', true],
    ['empty', ''],
    ['nodes[1]', 2],
    ['item["name"]', 'kld-vm-1'],
  ])('%s', (e, want) => {
    expect(evaluate(e, scope)).toEqual(want)
  })

  it('fails on an undefined variable', () => {
    expect(() => evaluate('rsult.rc == 0', scope)).toThrow(/undefined variable 'rsult'.*/)
    expect(() => evaluate('result.code == 0', scope)).toThrow(/result\.code/)
  })

  it('reads templates as booleans', () => {
    expect(evaluateCondition('{{item.state}}', scope)).toBe(true)
    expect(evaluateCondition('{{empty}}', scope)).toBe(false)
  })

  it('is unknown when it depends on an unknown value', () => {
    expect(
      isUnknown(evaluateCondition('server.status == "ACTIVE"', { server: unknown('server') })),
    ).toBe(true)
  })

  it('rejects syntax errors', () => {
    expect(() => evaluate('a ==', {})).toThrow(/cannot parse condition/)
  })
})

describe('expressionRefs', () => {
  it('lists roots, not names guarded by is defined', () => {
    expect(expressionRefs("x is defined and y.z == 'a' and q | length > 0")).toEqual(['y', 'q'])
  })
})
