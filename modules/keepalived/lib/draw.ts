/**
 * Terminal drawings of what a check saw, for an operator who would rather look than read: a
 * one-line timeline of a failover (replies per 100 ms, who held the VIP, the gap marked) and the
 * spread of requests over real servers as a small bar chart. Plain text: the console reporter
 * colours the glyphs on a TTY only (engine/report/console.ts, `paintDrawing`).
 */

/** Width of one timeline slot in ms. */
export const SLOT_MS = 100

/** One sample of the VIP's holder (controller clock, epoch ms). */
export interface HolderSample {
  at: number
  holders: string[]
}

/** Glyphs: a slot inside a silence, a slot when no node held the VIP, two nodes holding it. */
export const GLYPH = { gap: '×', none: '·', split: '+' } as const

/**
 * The timeline in one line, one character per 100 ms from `from` to `to`: the node that held the
 * VIP (its 1-based index in `nodes`), `+` when two did, `·` when none did, and `×` wherever the
 * client got no reply for longer than `gapAfterMs` (a silence, not just the pause between probes).
 * @example timeline({ replies: [1000, 1200, 2500], samples: [{ at: 900, holders: ['a'] }], nodes: ['a', 'b'], from: 1000, to: 2600, gapAfterMs: 500 })
 * // '111××××××××××111'
 */
export function timeline(t: {
  replies: readonly number[]
  samples: readonly HolderSample[]
  nodes: readonly string[]
  from: number
  to: number
  gapAfterMs: number
}): string {
  const slots = Math.max(1, Math.ceil((t.to - t.from) / SLOT_MS))
  const replies = [...t.replies].sort((a, b) => a - b)
  // silences: from a reply (or the start) to the next (or the end), when longer than gapAfterMs
  const edges = [t.from, ...replies, t.to]
  const silences: [number, number][] = []
  for (let i = 1; i < edges.length; i++) {
    const a = edges[i - 1] ?? 0
    const b = edges[i] ?? 0
    if (b - a > t.gapAfterMs) silences.push([a, b])
  }
  const samples = [...t.samples].sort((a, b) => a.at - b.at)
  const holderAt = (at: number): string[] => {
    let h: string[] = samples[0]?.holders ?? []
    for (const s of samples) {
      if (s.at > at) break
      h = s.holders
    }
    return h
  }
  let line = ''
  for (let i = 0; i < slots; i++) {
    const mid = t.from + i * SLOT_MS + SLOT_MS / 2
    if (silences.some(([a, b]) => mid > a && mid < b)) {
      line += GLYPH.gap
      continue
    }
    const h = holderAt(mid)
    line +=
      h.length === 0
        ? GLYPH.none
        : h.length > 1
          ? GLYPH.split
          : String(t.nodes.indexOf(h[0] ?? '') + 1 || '?').slice(-1)
  }
  return line
}

/**
 * A check's timeline as it is shown: `label <timeline> gap N ms`, then the legend.
 * @example drawTimeline({ label: 'http', replies, samples, nodes: ['a', 'b'], from, to, gapAfterMs: 500, maxGapMs: 800 })
 */
export function drawTimeline(
  t: Parameters<typeof timeline>[0] & { label: string; maxGapMs: number },
): string {
  const legend = t.nodes.map((n, i) => `${i + 1}=${n}`).join(' ')
  return `${t.label.padEnd(4)} ${timeline(t)}  longest gap ${t.maxGapMs} ms  (1 char = ${SLOT_MS} ms; VIP on ${legend}; ${GLYPH.gap} no reply)`
}

/**
 * A horizontal bar per name, scaled to `width` for the largest count.
 * @example bars({ 'lvs-real-1': 10, 'lvs-real-2': 10, 'lvs-real-3': 0 }, 20)
 */
export function bars(counts: Readonly<Record<string, number>>, width = 20): string {
  const names = Object.keys(counts)
  const max = Math.max(1, ...Object.values(counts))
  const w = Math.max(...names.map((n) => n.length), 1)
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  return names
    .map((n) => {
      const c = counts[n] ?? 0
      const len = c === 0 ? 0 : Math.max(1, Math.round((c / max) * width))
      const pct = total ? Math.round((c / total) * 100) : 0
      return `${n.padEnd(w)} ${'█'.repeat(len)}${' '.repeat(width - len)} ${String(c).padStart(3)} (${pct}%)`
    })
    .join('\n')
}
