/**
 * Checks module parameters against their zod schema before anything runs, when some values are
 * still templates: unknown parameters (with "did you mean"), missing required ones, and wrong
 * types of literal values. Templated values are checked again, fully, once rendered.
 */
import type { z } from 'zod'
import { didYouMean } from '../suggest.ts'
import { describeIssue } from '../values.ts'
import { isTemplate } from '../vars/template.ts'

/** One problem in a parameter value, with the path to it. */
export interface ShapeIssue {
  path: (string | number)[]
  message: string
  hint?: string | undefined
  /** Point at the key rather than the value (unknown parameters). */
  atKey?: boolean
}

interface Def {
  type: string
  innerType?: z.ZodType
  in?: z.ZodType
  shape?: Record<string, z.ZodType>
  catchall?: z.ZodType
  element?: z.ZodType
  options?: z.ZodType[]
  valueType?: z.ZodType
  getter?: () => z.ZodType
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def

/** Whether a value contains a template anywhere. */
export function hasTemplate(v: unknown): boolean {
  if (typeof v === 'string') return isTemplate(v)
  if (Array.isArray(v)) return v.some(hasTemplate)
  if (v !== null && typeof v === 'object') return Object.values(v).some(hasTemplate)
  return false
}

function optional(s: z.ZodType): boolean {
  const t = defOf(s).type
  return (
    t === 'optional' ||
    t === 'default' ||
    t === 'prefault' ||
    t === 'catch' ||
    (t === 'pipe' && optional(defOf(s).in as z.ZodType))
  )
}

function check(
  schema: z.ZodType,
  value: unknown,
  path: (string | number)[],
  aliases: Readonly<Record<string, string>>,
  out: ShapeIssue[],
): void {
  if (typeof value === 'string' && isTemplate(value)) return
  const def = defOf(schema)
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
      if (value === undefined && def.type !== 'nonoptional') return
      return check(def.innerType as z.ZodType, value, path, aliases, out)
    case 'nullable':
      if (value === null) return
      return check(def.innerType as z.ZodType, value, path, aliases, out)
    case 'pipe':
      return check(def.in as z.ZodType, value, path, aliases, out)
    case 'lazy':
      return check((def.getter as () => z.ZodType)(), value, path, aliases, out)
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        out.push({
          path,
          message: `expected a mapping, got ${Array.isArray(value) ? 'a list' : typeof value}`,
        })
        return
      }
      const shape = def.shape ?? {}
      const strict = def.catchall !== undefined && defOf(def.catchall).type === 'never'
      const obj = value as Record<string, unknown>
      for (const k of Object.keys(obj)) {
        const key = path.length === 0 ? (aliases[k] ?? k) : k
        if (!(key in shape) && strict) {
          out.push({
            path: [...path, k],
            message: `unknown parameter '${k}'`,
            hint: didYouMean(k, [
              ...Object.keys(shape),
              ...(path.length === 0 ? Object.keys(aliases) : []),
            ])?.replace(
              /'([^']+)'/,
              (_, s: string) => `'${path.length === 0 ? (aliases[s] ?? s) : s}'`,
            ),
            atKey: true,
          })
        }
      }
      for (const [k, s] of Object.entries(shape)) {
        const present = Object.keys(obj).find(
          (x) => (path.length === 0 ? (aliases[x] ?? x) : x) === k,
        )
        if (present === undefined) {
          if (!optional(s)) out.push({ path, message: `missing required parameter '${k}'` })
          continue
        }
        check(s, obj[present], [...path, present], aliases, out)
      }
      return
    }
    case 'array':
      if (!Array.isArray(value)) {
        out.push({
          path,
          message: `expected a list, got ${value === null ? 'null' : typeof value}`,
        })
        return
      }
      value.forEach((v, i) => check(def.element as z.ZodType, v, [...path, i], aliases, out))
      return
    case 'record':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        out.push({ path, message: 'expected a mapping' })
        return
      }
      for (const [k, v] of Object.entries(value))
        check(def.valueType as z.ZodType, v, [...path, k], aliases, out)
      return
    case 'union': {
      const tries = (def.options ?? []).map((o) => {
        const issues: ShapeIssue[] = []
        check(o, value, path, aliases, issues)
        return issues
      })
      if (tries.some((t) => t.length === 0)) return
      // the branch of the value's own type says what is wrong with it, not "expected a number"
      const typeOnly = (t: ShapeIssue[]): number =>
        t.every((i) => i.message.startsWith('expected ')) ? 1 : 0
      const best = tries.sort((a, b) => typeOnly(a) - typeOnly(b) || a.length - b.length)[0]
      if (best) out.push(...best)
      return
    }
    default: {
      if (hasTemplate(value)) return
      const r = schema.safeParse(value)
      if (!r.success) {
        const issue = r.error.issues[0]
        out.push({
          path: [...path, ...((issue?.path ?? []) as (string | number)[])],
          message: describeIssue(issue, value),
        })
      }
    }
  }
}

/**
 * Problems in `args` for `schema`, as far as they can be told before rendering.
 * @example checkShape(z.strictObject({ name: z.string() }), { nme: 'x' }, {})
 */
export function checkShape(
  schema: z.ZodType,
  args: unknown,
  aliases: Readonly<Record<string, string>> = {},
): ShapeIssue[] {
  const out: ShapeIssue[] = []
  check(schema, args, [], aliases, out)
  if (out.length === 0 && !hasTemplate(args)) {
    const normalized =
      args !== null && typeof args === 'object' && !Array.isArray(args)
        ? Object.fromEntries(Object.entries(args).map(([k, v]) => [aliases[k] ?? k, v]))
        : args
    const r = schema.safeParse(normalized)
    if (!r.success) {
      const issue = r.error.issues[0]
      out.push({
        path: (issue?.path ?? []) as (string | number)[],
        message: describeIssue(issue),
      })
    }
  }
  return out
}

function coerceLeaf(schema: z.ZodType, value: unknown): unknown {
  if (schema.safeParse(value).success) return value
  if (typeof value === 'number' || typeof value === 'boolean') {
    if (schema.safeParse(String(value)).success) return String(value)
  }
  if (typeof value === 'string') {
    const t = value.trim()
    if (t !== '' && !Number.isNaN(Number(t)) && schema.safeParse(Number(t)).success)
      return Number(t)
    const lower = t.toLowerCase()
    if ((lower === 'true' || lower === 'yes') && schema.safeParse(true).success) return true
    if ((lower === 'false' || lower === 'no') && schema.safeParse(false).success) return false
  }
  return value
}

/**
 * Rendered parameters adjusted to their schema where a template produced the right value in the
 * wrong type: `"{{port}}"` rendered from the text "22" where a number is expected, or a lone
 * `{{changed}}` (a boolean) where text is expected. Everything else is left as it is.
 */
export function coerceParams(schema: z.ZodType, value: unknown): unknown {
  const def = defOf(schema)
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
    case 'nullable':
      return value === undefined || value === null
        ? value
        : coerceParams(def.innerType as z.ZodType, value)
    case 'pipe':
      return coerceParams(def.in as z.ZodType, value)
    case 'lazy':
      return coerceParams((def.getter as () => z.ZodType)(), value)
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
      const shape = def.shape ?? {}
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, shape[k] ? coerceParams(shape[k], v) : v]),
      )
    }
    case 'array':
      return Array.isArray(value)
        ? value.map((v) => coerceParams(def.element as z.ZodType, v))
        : value
    case 'record':
      return value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(
            Object.entries(value).map(([k, v]) => [k, coerceParams(def.valueType as z.ZodType, v)]),
          )
        : value
    case 'union': {
      if (schema.safeParse(value).success) return value
      for (const o of def.options ?? []) {
        const c = coerceParams(o, value)
        if (o.safeParse(c).success) return c
      }
      return value
    }
    default:
      return coerceLeaf(schema, value)
  }
}
