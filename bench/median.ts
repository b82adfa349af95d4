/**
 * The median of the bench's runs: the middle one, or the mean of the two middle ones of an even
 * count (two runs at 50 hosts: taking the upper one would report each tool's slower run).
 * @example median([1267, 1727]) // 1497
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? (s[mid] ?? NaN) : Math.round(((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2)
}
