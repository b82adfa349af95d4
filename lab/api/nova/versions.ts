/**
 * Nova's microversions as the lab knows them: parsing, the releases a maximum stands for, and the
 * check of a lab's configured maximum (lab/api/cloud.ts reads it without Nova's views).
 */
import { NOVA_MAX_VERSION, NOVA_MIN_VERSION } from '../catalog.ts'

/** A microversion as [major, minor]. */
export type Microversion = readonly [number, number]

/** `2.47` -> [2, 47], or null. */
export function parseVersion(s: string): Microversion | null {
  const m = /^(\d+)\.(\d+)$/.exec(s.trim())
  return m === null ? null : [Number(m[1]), Number(m[2])]
}

/** a >= b */
export function atLeast(v: Microversion, minor: number): boolean {
  return v[0] > 2 || (v[0] === 2 && v[1] >= minor)
}

/** The lab's lowest microversion. */
export const MIN = parseVersion(NOVA_MIN_VERSION) ?? [2, 1]
/** The lab's highest microversion. */
export const MAX = parseVersion(NOVA_MAX_VERSION) ?? [2, 1]

/** The highest microversion of each release the lab can stand for (Nova's REST API history). */
export const NOVA_RELEASES: readonly (readonly [max: string, release: string])[] = [
  ['2.25', 'Mitaka'],
  ['2.38', 'Newton'],
  ['2.42', 'Ocata'],
  ['2.53', 'Pike'],
  ['2.60', 'Queens'],
  ['2.65', 'Rocky'],
  ['2.72', 'Stein'],
  ['2.79', 'Train'],
  ['2.87', 'Ussuri / Victoria'],
  ['2.88', 'Wallaby'],
  ['2.90', 'Xena / Yoga'],
  ['2.93', 'Zed'],
  ['2.95', '2023.1 Antelope'],
  ['2.96', '2023.2 Bobcat / 2024.1 Caracal / 2024.2 Dalmatian'],
  ['2.100', '2025.1 Epoxy'],
]

/** Which Nova release a maximum microversion stands for: `2.93` -> `Zed`. */
export function novaRelease(max: string): string {
  const v = parseVersion(max)
  if (v === null) return 'unknown'
  const found = NOVA_RELEASES.find(([m]) => {
    const r = parseVersion(m) ?? [2, 1]
    return r[0] * 10000 + r[1] >= v[0] * 10000 + v[1]
  })
  return found === undefined
    ? 'newer than 2025.1'
    : found[0] === max
      ? found[1]
      : `before ${found[1]}`
}

/**
 * A lab maximum microversion, checked: between 2.1 and the lab's own 2.100.
 * @example checkedMaxVersion('2.37') // '2.37'
 */
export function checkedMaxVersion(raw: string | undefined): string {
  if (raw === undefined || raw === '') return NOVA_MAX_VERSION
  const v = parseVersion(raw)
  if (v === null || v[0] !== 2 || v[1] < MIN[1] || v[1] > MAX[1])
    throw new Error(
      `Nova maximum microversion '${raw}': give one from ${NOVA_MIN_VERSION} to ${NOVA_MAX_VERSION}`,
    )
  return `${v[0]}.${v[1]}`
}
