/**
 * The shape of a JSON response, independent of its values: key paths and the JSON types found at
 * them. Two clouds that agree on shapes can be driven by the same client code.
 */

/** JSON type names as the comparer reports them. */
export type JsonType = 'object' | 'array' | 'string' | 'number' | 'boolean' | 'null'

/** Key paths of a value and, per path, the set of non-null JSON types seen there. */
export interface Shape {
  /** Sorted paths: `port.fixed_ips[].ip_address`; `[]` stands for every element of an array. */
  keys: string[]
  /** `path -> 'number'` (or `'number|string'` when elements disagree); absent when only null was seen. */
  types: Record<string, string>
}

function typeOf(x: unknown): JsonType {
  if (x === null) return 'null'
  if (Array.isArray(x)) return 'array'
  const t = typeof x
  return t === 'object'
    ? 'object'
    : t === 'number' || t === 'boolean' || t === 'string'
      ? t
      : 'string'
}

/**
 * The shape of a parsed JSON body. Elements of an array are merged (union of their keys), so the
 * shape does not depend on which element a cloud happens to list first.
 * @example shapeOf({ ports: [{ id: 'a' }] }).keys // ['ports', 'ports[].id']
 */
export function shapeOf(body: unknown): Shape {
  const keys = new Set<string>()
  const types = new Map<string, Set<JsonType>>()
  const note = (path: string, x: unknown): void => {
    const t = typeOf(x)
    if (t === 'null') return
    const set = types.get(path) ?? new Set<JsonType>()
    set.add(t)
    types.set(path, set)
  }
  const walk = (x: unknown, path: string): void => {
    if (Array.isArray(x)) {
      for (const el of x) {
        note(`${path}[]`, el)
        walk(el, `${path}[]`)
      }
    } else if (x !== null && typeof x === 'object') {
      for (const [k, v] of Object.entries(x as Record<string, unknown>)) {
        const p = path === '' ? k : `${path}.${k}`
        keys.add(p)
        note(p, v)
        walk(v, p)
      }
    }
  }
  walk(body, '')
  const typeRecord: Record<string, string> = {}
  // `path[]` entries record element types too: a list of ids is not a list of objects.
  for (const [path, set] of [...types.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    typeRecord[path] = [...set].sort().join('|')
  }
  return { keys: [...keys].sort(), types: typeRecord }
}
