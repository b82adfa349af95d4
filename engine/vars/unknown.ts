/**
 * Values that exist only after apply (the id of a VM not yet created). A plan carries them as
 * `(known after apply)` instead of failing, so a dry run of a fresh cloud shows every step.
 */

/** What a renderer prints for a value not known until apply. */
export const KNOWN_AFTER_APPLY = '(known after apply)'

/** Marker that a string rendered from templates touched an unknown value. */
export const UNKNOWN_MARK = '\u0000known-after-apply\u0000'

/**
 * A value known only after apply.
 * @example const id = new Unknown('servers.results.0.id')
 */
export class Unknown {
  constructor(
    /** Where it comes from, for messages. */
    readonly source: string = '',
    /** For strings rendered from a template: the text with the unknown parts marked. */
    readonly partial?: string,
  ) {}
  toString(): string {
    return UNKNOWN_MARK
  }
  toJSON(): string {
    return KNOWN_AFTER_APPLY
  }
}

/**
 * An unknown value that templates can look into: any property of it is unknown too, so
 * `{{servers.results.0.id}}` renders as unknown rather than failing as undefined.
 * @example const servers = unknown('servers'); isUnknown(servers.results) // true
 */
export function unknown(source = ''): Unknown {
  return makeProxy(new Unknown(source))
}

function makeProxy(u: Unknown): Unknown {
  return new Proxy(u, {
    get(target, key, receiver) {
      if (typeof key === 'symbol' || key in target) {
        const v: unknown = Reflect.get(target, key, receiver)
        return typeof v === 'function' ? (v as () => unknown).bind(target) : v
      }
      return unknown(target.source ? `${target.source}.${key}` : key)
    },
    has: () => true,
    getOwnPropertyDescriptor(target, key) {
      if (typeof key === 'symbol' || Object.prototype.hasOwnProperty.call(target, key))
        return Reflect.getOwnPropertyDescriptor(target, key)
      return {
        configurable: true,
        enumerable: false,
        writable: false,
        value: unknown(`${target.source}.${key}`),
      }
    },
  })
}

/** Whether a value is unknown. */
export function isUnknown(v: unknown): v is Unknown {
  return v instanceof Unknown
}

/** Whether a value contains an unknown anywhere inside it. */
export function containsUnknown(v: unknown): boolean {
  if (v instanceof Unknown) return true
  if (Array.isArray(v)) return v.some(containsUnknown)
  if (v !== null && typeof v === 'object') return Object.values(v).some(containsUnknown)
  return false
}

/** A deep copy of `v` in which unknowns print as `(known after apply)`. */
export function showUnknowns(v: unknown): unknown {
  if (v instanceof Unknown) return KNOWN_AFTER_APPLY
  if (Array.isArray(v)) return v.map(showUnknowns)
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, showUnknowns(x)]))
  return v
}

/** Thrown during a plan when a module needs a value that is known only after apply. */
export class UnknownValueError extends Error {
  constructor(
    readonly what: string,
    readonly partial?: string,
  ) {
    super(`${what} is known only after apply`)
    this.name = 'UnknownValueError'
  }
}
