import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { classify, compare, readKnownDifferences } from '../../../lab/conformance/compare.ts'
import type { SequenceResult, StepRecord } from '../../../lab/conformance/recorder.ts'
import { errorTypeOf } from '../../../lab/conformance/recorder.ts'
import { shapeOf } from '../../../lab/conformance/shape.ts'

function step(
  id: string,
  status: number,
  body: unknown,
  facts: StepRecord['facts'] = {},
): StepRecord {
  return {
    id,
    request: `GET /${id}`,
    status,
    errorType: errorTypeOf(body),
    shape: shapeOf(body),
    facts,
    ms: 1,
  }
}

function result(target: string, steps: StepRecord[]): SequenceResult {
  return { target, startedAt: '', durationMs: 0, steps, exchanges: {} }
}

describe('compare', () => {
  it('finds nothing between equal shapes with different values', () => {
    const real = result('real', [step('a', 200, { port: { id: '1', name: 'x' } }, { count: 1 })])
    const lab = result('lab', [step('a', 200, { port: { id: '2', name: 'y' } }, { count: 1 })])
    expect(compare(real, lab)).toEqual([])
  })

  it('reports status, error type, missing and extra keys (topmost only), types and facts', () => {
    const real = result('real', [
      step('a', 409, {
        NeutronError: { type: 'IpAddressAlreadyAllocated', message: 'm', detail: '' },
      }),
      step(
        'b',
        200,
        { port: { id: '1', binding: { a: 1, b: 2 }, port_range_min: 22 } },
        { count: 1 },
      ),
    ])
    const lab = result('lab', [
      step('a', 400, { NeutronError: { type: 'BadRequest', message: 'm', detail: '' } }),
      step('b', 200, { port: { id: '1', extra: true, port_range_min: '22' } }, { count: 2 }),
    ])
    expect(compare(real, lab)).toEqual([
      { step: 'a', kind: 'status', real: '409', lab: '400' },
      { step: 'a', kind: 'error-type', real: 'IpAddressAlreadyAllocated', lab: 'BadRequest' },
      { step: 'b', kind: 'missing-key', key: 'port.binding', real: 'present', lab: 'absent' },
      { step: 'b', kind: 'extra-key', key: 'port.extra', real: 'absent', lab: 'present' },
      { step: 'b', kind: 'type', key: 'port.port_range_min', real: 'number', lab: 'string' },
      { step: 'b', kind: 'fact', key: 'count', real: '1', lab: '2' },
    ])
  })

  it('reports steps only one side ran', () => {
    const diffs = compare(result('real', [step('a', 200, {})]), result('lab', [step('b', 200, {})]))
    expect(diffs.map((d) => `${d.step}:${d.real}/${d.lab}`)).toEqual([
      'a:ran/missing',
      'b:missing/ran',
    ])
  })
})

describe('classify and readKnownDifferences', () => {
  const doc = [
    '# The lab',
    '',
    '## Conformance differences',
    '',
    '```yaml',
    '- step: "neutron.*"',
    '  kind: missing-key',
    '  key: "*.standard_attr_id"',
    '  reason: Neutron leaks an internal column into embedded rules.',
    '- step: neutron.port.show',
    '  kind: status',
    '  real: 200',
    '  lab: 404',
    '  reason: only this exact pair of statuses is justified.',
    '- step: never.matches',
    '  kind: fact',
    '  reason: an entry that matches nothing is reported as unused.',
    '```',
  ].join('\n')
  const dir = mkdtempSync(join(tmpdir(), 'rb-conf-'))
  const file = join(dir, 'lab.md')
  writeFileSync(file, doc)

  it('parses the yaml block under the heading', () => {
    expect(readKnownDifferences(file)).toHaveLength(3)
    expect(readKnownDifferences(join(dir, 'absent.md'))).toEqual([])
  })

  it('justifies matching differences by glob and exact values, and reports the rest', () => {
    const known = readKnownDifferences(file)
    const v = classify(
      [
        {
          step: 'neutron.security-group.create',
          kind: 'missing-key',
          key: 'security_group.security_group_rules[].standard_attr_id',
          real: 'present',
          lab: 'absent',
        },
        { step: 'neutron.port.show', kind: 'status', real: '200', lab: '404' },
        { step: 'neutron.port.show', kind: 'status', real: '200', lab: '500' },
      ],
      known,
    )
    expect(v.justified).toHaveLength(2)
    expect(v.unexpected).toEqual([
      { step: 'neutron.port.show', kind: 'status', real: '200', lab: '500' },
    ])
    expect(v.unused.map((k) => k.step)).toEqual(['never.matches'])
  })
})
