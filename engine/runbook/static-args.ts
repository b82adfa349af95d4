/**
 * A task's parameters as far as they are known before the run. Top-level vars, var files and `-e`
 * values are known; everything a host, a play, a registered result, a fact or a secret may set is
 * not. Templated parameters render against what is known, so validation can judge
 * `path: "{{base}}"` by the `/etc` it will be, and a loop over a literal list by each of its items.
 * A parameter that touches anything unknown keeps its template and is judged at plan time.
 */
import { makeScope } from '../execute/scope.ts'
import { containsUnknown, unknown } from '../vars/unknown.ts'
import { isTemplate, renderString } from '../vars/template.ts'
import { hasTemplate } from './shape.ts'

/** At most this many items of a loop known before the run are rendered one by one. */
export const STATIC_LOOP_LIMIT = 64

/**
 * A scope of the values known before the run: any other name is unknown (known after apply), so a
 * template touching it renders to an unknown rather than failing. With `claimed`, only those other
 * names are unknown and the rest are absent, so a template that names something that exists
 * nowhere fails as it would at run time.
 * @example staticScope({ base: '/etc' }, new Set()).base // '/etc'
 */
export function staticScope(
  values: Readonly<Record<string, unknown>>,
  unknownNames: ReadonlySet<string>,
  claimed?: ReadonlySet<string>,
): Record<string, unknown> {
  const known = Object.fromEntries(Object.entries(values).filter(([k]) => !unknownNames.has(k)))
  // known values render lazily against everything (what they name may be known only at run time)
  const scope = makeScope([{ vars: known, templated: true }], () => everything)
  const everything = viewOf(scope)
  return viewOf(scope, claimed)
}

/**
 * The same known values seen with another set of claimed names (see staticScope).
 * @example const strict = viewOf(scope, new Set(['inventory_hostname']))
 */
export function viewOf(
  scope: Record<string, unknown>,
  claimed?: ReadonlySet<string>,
): Record<string, unknown> {
  const base = (scope as { [BASE]?: Record<string, unknown> })[BASE] ?? scope
  const other = (key: string): boolean => !claimed || claimed.has(key)
  return new Proxy(base, {
    get: (target, key, receiver) => {
      if (key === BASE) return base
      if (typeof key === 'symbol' || key in target) return Reflect.get(target, key, receiver)
      return other(key) ? unknown(key) : undefined
    },
    has: (target, key) => (typeof key === 'symbol' ? key in target : key in target || other(key)),
    ownKeys: (target) => [...new Set([...Reflect.ownKeys(target), ...(claimed ?? [])])],
    getOwnPropertyDescriptor: (target, key) =>
      typeof key === 'symbol' || key in target
        ? Reflect.getOwnPropertyDescriptor(target, key)
        : other(key)
          ? { configurable: true, enumerable: true, writable: false, value: unknown(key) }
          : undefined,
  })
}

const BASE = Symbol('known values')

/** `scope` with names bound on top (a loop's item and index). */
export function withNames(
  scope: Record<string, unknown>,
  names: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  return new Proxy(scope, {
    get: (target, key, receiver) =>
      typeof key === 'string' && Object.prototype.hasOwnProperty.call(names, key)
        ? names[key]
        : Reflect.get(target, key, receiver),
    has: () => true,
    getOwnPropertyDescriptor: (target, key) =>
      typeof key === 'string' && Object.prototype.hasOwnProperty.call(names, key)
        ? { configurable: true, enumerable: true, writable: false, value: names[key] }
        : Reflect.getOwnPropertyDescriptor(target, key),
  })
}

/**
 * Renders every template inside `value` that is fully known; a template that touches an unknown
 * value, or fails to render (reported elsewhere), is kept as written.
 * @example renderKnown({ path: '{{base}}', mode: '{{m}}' }, scope) // { path: '/etc', mode: '{{m}}' }
 */
export function renderKnown(value: unknown, scope: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    if (!isTemplate(value)) return value
    try {
      const v = renderString(value, scope)
      return containsUnknown(v) || hasTemplate(v) ? value : v
    } catch {
      return value
    }
  }
  if (Array.isArray(value)) return value.map((v) => renderKnown(v, scope))
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderKnown(v, scope)]))
  return value
}

/**
 * The items of a loop when they are known before the run (a literal list, or a template that
 * renders to a list from known values), else undefined.
 * @example staticLoop(['a', 'b'], scope) // ['a', 'b']
 */
export function staticLoop(loop: unknown, scope: Record<string, unknown>): unknown[] | undefined {
  const items = renderKnown(loop, scope)
  if (!Array.isArray(items)) return undefined
  return items.slice(0, STATIC_LOOP_LIMIT)
}
