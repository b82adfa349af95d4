import { describe, expect, it } from 'vitest'
import { planDrift } from '../../../engine/plan/saved.ts'

describe('planDrift', () => {
  it('is empty for the same changes in another order', () => {
    expect(planDrift(['b', 'a', 'a'], ['a', 'b', 'a'])).toEqual([])
  })

  it('counts repeated changes: one of two identical ones gone is a difference', () => {
    expect(planDrift(['p / t / h\n  + x', 'p / t / h\n  + x'], ['p / t / h\n  + x'])).toEqual([
      'planned, not needed now: p / t / h\n    + x',
    ])
  })

  it('lists what is planned and no longer needed, then what is needed and was not planned', () => {
    expect(planDrift(['old'], ['new', 'new'])).toEqual([
      'planned, not needed now: old',
      'needed now, not planned: new',
      'needed now, not planned: new',
    ])
  })
})
