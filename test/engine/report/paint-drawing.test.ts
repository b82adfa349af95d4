import pc from 'picocolors'
import { describe, expect, it } from 'vitest'
import { paintDrawing } from '../../../engine/report/console.ts'

describe('paintDrawing', () => {
  const line = 'http 11×××22··1  longest gap 300 ms'
  it('leaves the text alone without colours (not a TTY)', () => {
    expect(paintDrawing(line, pc.createColors(false))).toBe(line)
    expect(paintDrawing('a ████  3 (100%)', pc.createColors(false))).toBe('a ████  3 (100%)')
  })
  it('colours gaps red, empty slots dim and bars green on a TTY', () => {
    const c = pc.createColors(true)
    const painted = paintDrawing(`${line} █`, c)
    expect(painted).toContain(c.red('×××'))
    expect(painted).toContain(c.dim('··'))
    expect(painted).toContain(c.green('█'))
    expect(painted.split(c.red('×××')).join('×××')).not.toBe(painted)
  })
})
