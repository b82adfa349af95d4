import { describe, expect, it } from 'vitest'
import { median } from '../../bench/median.ts'

describe('the bench median', () => {
  it('is the middle run, or the mean of the middle two of an even count', () => {
    expect(median([300, 100, 200])).toBe(200)
    expect(median([1727, 1267])).toBe(1497)
    expect(median([4, 1, 3, 2])).toBe(3) // (2 + 3) / 2, rounded
    expect(median([7])).toBe(7)
    expect(median([])).toBeNaN()
  })
})
