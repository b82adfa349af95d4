/**
 * "Did you mean" suggestions for misspelt keys, modules and variables.
 */

/** Damerau-Levenshtein distance (optimal string alignment) between two strings. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [
    i,
    ...Array<number>(b.length).fill(0),
  ])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The closest candidate, if it is close enough to be a likely typo.
 * @example suggest('pkgs', ['name', 'state', 'pkg']) // 'pkg'
 */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestScore = Infinity
  const w = word.toLowerCase()
  for (const c of candidates) {
    const lc = c.toLowerCase()
    let score = editDistance(w, lc)
    if (lc.startsWith(w) || w.startsWith(lc) || lc.endsWith(`.${w}`)) score = Math.min(score, 1)
    if (score < bestScore) {
      best = c
      bestScore = score
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3))
  return best !== undefined && bestScore <= limit ? best : undefined
}

/** The "did you mean" hint for a suggestion, or undefined. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const s = suggest(word, candidates)
  return s === undefined ? undefined : `did you mean '${s}'?`
}
