import { describe, expect, it } from 'vitest'
import { bars, drawTimeline, timeline } from '../../../../modules/keepalived/lib/draw.ts'

const nodes = ['lvs-director-1', 'lvs-director-2']
// the VIP on director 1, then (at 2000) on nobody, then on 2 (2300), then on both (3000), then 1
const samples = [
  { at: 900, holders: ['lvs-director-1'] },
  { at: 2000, holders: [] },
  { at: 2300, holders: ['lvs-director-2'] },
  { at: 3000, holders: ['lvs-director-1', 'lvs-director-2'] },
  { at: 3200, holders: ['lvs-director-1'] },
]
const every = (from: number, to: number, step: number): number[] =>
  Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step)

describe('timeline', () => {
  it.each([
    {
      name: 'replies throughout: the holder, slot by slot',
      replies: every(1000, 3500, 100),
      want: '1111111111···2222222++111',
    },
    {
      name: 'a silence from 1900 to 2600 is marked where it was',
      replies: [...every(1000, 1900, 100), ...every(2600, 3500, 100)],
      want: '111111111×××××××2222++111',
    },
    {
      name: 'probes every 200 ms are not a gap (gapAfterMs 500)',
      replies: every(1000, 1900, 200),
      want: '1111111111',
      to: 2000,
    },
    {
      name: 'silence at the end counts',
      replies: every(1000, 1400, 100),
      want: '1111××××××',
      to: 2000,
    },
  ])('$name', ({ replies, want, to }) => {
    const line = timeline({ replies, samples, nodes, from: 1000, to: to ?? 3500, gapAfterMs: 500 })
    expect(line).toBe(want)
  })

  it('draws one line with the longest gap and a legend', () => {
    const s = drawTimeline({
      label: 'http',
      replies: [1000, 1100, 1900],
      samples,
      nodes,
      from: 1000,
      to: 2000,
      gapAfterMs: 500,
      maxGapMs: 800,
    })
    expect(s.split('\n')).toHaveLength(1)
    expect(s).toBe(
      'http 1××××××××1  longest gap 800 ms  (1 char = 100 ms; VIP on 1=lvs-director-1 2=lvs-director-2; × no reply)',
    )
  })
})

describe('bars', () => {
  it('scales to the largest count, with counts and shares', () => {
    expect(bars({ 'lvs-real-1': 10, 'lvs-real-2': 5, 'lvs-real-3': 0 }, 10)).toBe(
      [
        'lvs-real-1 ██████████  10 (67%)',
        'lvs-real-2 █████        5 (33%)',
        'lvs-real-3              0 (0%)',
      ].join('\n'),
    )
  })
})
