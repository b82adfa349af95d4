/**
 * The condition language of `when`, `until`, `changed_when`, `failed_when` and `assert`: what an
 * Ansible user writes (`item.state == 'MASTER' and result.rc != 0`, `x is defined`,
 * `result.stdout | length > 0`), parsed by jsep and evaluated here without `eval`.
 * A condition written as a template (`"{{is_master}}"`) is rendered and read as a boolean.
 */
import jsep from 'jsep'
import { RunbookError } from '../errors.ts'
import { didYouMean } from '../suggest.ts'
import { helpers } from './helpers.ts'
import { isTemplate, renderString } from './template.ts'
import { isUnknown, unknown } from './unknown.ts'

jsep.addBinaryOp('or', 1)
jsep.addBinaryOp('and', 2)
jsep.addBinaryOp('in', 7)
jsep.addBinaryOp('is', 7)
jsep.addUnaryOp('not')
jsep.removeBinaryOp('|')
jsep.addBinaryOp('|', 12)
jsep.addLiteral('True', true)
jsep.addLiteral('False', false)
jsep.addLiteral('None', null)

type Node = jsep.Expression
type Scope = Record<string, unknown>

const cache = new Map<string, Node>()

/** Parses an expression; syntax errors are E_EXPRESSION. */
export function parseExpression(source: string): Node {
  let ast = cache.get(source)
  if (!ast) {
    try {
      ast = jsep(source)
    } catch (e) {
      throw new RunbookError(
        'E_EXPRESSION',
        `cannot parse condition '${source}': ${(e as Error).message}`,
      )
    }
    cache.set(source, ast)
  }
  return ast
}

class Missing {
  constructor(
    readonly name: string,
    readonly hint?: string,
  ) {}
}

function member(obj: unknown, key: unknown, path: string): unknown {
  if (isUnknown(obj)) return obj
  if (obj instanceof Missing) return obj
  if (obj === null || obj === undefined) return new Missing(path)
  if (typeof obj === 'string' && typeof key === 'number') return obj[key]
  if (typeof obj !== 'object' || !Object.prototype.hasOwnProperty.call(obj, String(key))) {
    return new Missing(
      path,
      typeof obj === 'object' ? didYouMean(String(key), Object.keys(obj)) : undefined,
    )
  }
  return (obj as Record<string, unknown>)[String(key)]
}

function nameOf(n: Node): string {
  if (n.type === 'Identifier') return (n as jsep.Identifier).name
  if (n.type === 'MemberExpression') {
    const m = n as jsep.MemberExpression
    const prop = m.computed
      ? `[${JSON.stringify((m.property as jsep.Literal).value ?? '?')}]`
      : `.${(m.property as jsep.Identifier).name}`
    return `${nameOf(m.object)}${prop}`
  }
  return '?'
}

function strict(v: unknown): unknown {
  if (v instanceof Missing)
    throw new RunbookError('E_UNDEFINED', `undefined variable '${v.name}'`, { hint: v.hint })
  return v
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'string') return !['', 'false', 'False', 'no', '0'].includes(v.trim())
  return Boolean(v)
}

function callFn(name: string, args: unknown[]): unknown {
  const fn = helpers[name]
  if (!fn)
    throw new RunbookError('E_EXPRESSION', `unknown function or filter '${name}'`, {
      hint: didYouMean(name, Object.keys(helpers)),
    })
  if (args.some(isUnknown)) return unknown(name)
  return fn(...args)
}

function ev(n: Node, scope: Scope): unknown {
  switch (n.type) {
    case 'Literal':
      return (n as jsep.Literal).value
    case 'Identifier': {
      const name = (n as jsep.Identifier).name
      if (name === 'true' || name === 'false') return name === 'true'
      return Object.prototype.hasOwnProperty.call(scope, name)
        ? scope[name]
        : new Missing(name, didYouMean(name, Object.keys(scope)))
    }
    case 'MemberExpression': {
      const m = n as jsep.MemberExpression
      const obj = ev(m.object, scope)
      const key = m.computed ? strict(ev(m.property, scope)) : (m.property as jsep.Identifier).name
      return member(obj, key, nameOf(n))
    }
    case 'ArrayExpression':
      return (n as jsep.ArrayExpression).elements.map((e) => (e ? strict(ev(e, scope)) : null))
    case 'UnaryExpression': {
      const u = n as jsep.UnaryExpression
      const v = strict(ev(u.argument, scope))
      if (isUnknown(v)) return v
      if (u.operator === '!' || u.operator === 'not') return !truthy(v)
      if (u.operator === '-') return -(v as number)
      if (u.operator === '+') return +(v as number)
      throw new RunbookError('E_EXPRESSION', `unsupported operator '${u.operator}'`)
    }
    case 'CallExpression': {
      const c = n as jsep.CallExpression
      if (c.callee.type !== 'Identifier')
        throw new RunbookError('E_EXPRESSION', 'only named functions can be called')
      return callFn(
        (c.callee as jsep.Identifier).name,
        c.arguments.map((a) => strict(ev(a, scope))),
      )
    }
    case 'ConditionalExpression': {
      const c = n as jsep.ConditionalExpression
      const t = strict(ev(c.test, scope))
      if (isUnknown(t)) return t
      return truthy(t) ? strict(ev(c.consequent, scope)) : strict(ev(c.alternate, scope))
    }
    case 'BinaryExpression':
      return binary(n as jsep.BinaryExpression, scope)
    default:
      throw new RunbookError('E_EXPRESSION', `unsupported expression ${n.type}`)
  }
}

function binary(b: jsep.BinaryExpression, scope: Scope): unknown {
  const op = b.operator
  if (op === 'is') return test(b, scope)
  if (op === '|') {
    const input = strict(ev(b.left, scope))
    if (b.right.type === 'Identifier') return callFn((b.right as jsep.Identifier).name, [input])
    if (b.right.type === 'CallExpression') {
      const c = b.right as jsep.CallExpression
      return callFn((c.callee as jsep.Identifier).name, [
        input,
        ...c.arguments.map((a) => strict(ev(a, scope))),
      ])
    }
    throw new RunbookError('E_EXPRESSION', 'a filter after | must be a name or a call')
  }
  const l = strict(ev(b.left, scope))
  if (op === '&&' || op === 'and') {
    if (isUnknown(l)) return l
    return truthy(l) ? truthy(strict(ev(b.right, scope))) : false
  }
  if (op === '||' || op === 'or') {
    if (isUnknown(l)) return l
    return truthy(l) ? true : truthy(strict(ev(b.right, scope)))
  }
  const r = strict(ev(b.right, scope))
  if (isUnknown(l) || isUnknown(r)) return unknown(op)
  switch (op) {
    case '==':
    case '===':
      return (
        l === r ||
        (l !== null &&
          r !== null &&
          typeof l !== 'object' &&
          String(l) === String(r) &&
          (typeof l === 'number' || typeof r === 'number'))
      )
    case '!=':
    case '!==':
      return !(
        l === r ||
        (l !== null &&
          r !== null &&
          typeof l !== 'object' &&
          String(l) === String(r) &&
          (typeof l === 'number' || typeof r === 'number'))
      )
    case '<':
      return (l as number) < (r as number)
    case '>':
      return (l as number) > (r as number)
    case '<=':
      return (l as number) <= (r as number)
    case '>=':
      return (l as number) >= (r as number)
    case '+':
      return typeof l === 'number' && typeof r === 'number' ? l + r : `${String(l)}${String(r)}`
    case '-':
      return (l as number) - (r as number)
    case '*':
      return (l as number) * (r as number)
    case '/':
      return (l as number) / (r as number)
    case '%':
      return (l as number) % (r as number)
    case 'in':
      if (Array.isArray(r)) return r.includes(l)
      if (typeof r === 'string') return r.includes(String(l))
      if (r !== null && typeof r === 'object')
        return Object.prototype.hasOwnProperty.call(r, String(l))
      return false
    default:
      throw new RunbookError('E_EXPRESSION', `unsupported operator '${op}'`)
  }
}

/** `x is defined`, `x is not defined`, `x is undefined`, `x is none`, `x is string`... */
/** The tests `x is ...` knows. */
const TESTS = ['defined', 'undefined', 'none', 'None', 'null', 'string', 'number', 'true', 'false']

/** The name of the test in `x is NAME` / `x is not NAME`. */
function testName(right: Node): string {
  const r =
    right.type === 'UnaryExpression' && (right as jsep.UnaryExpression).operator === 'not'
      ? (right as jsep.UnaryExpression).argument
      : right
  return r.type === 'Identifier'
    ? (r as jsep.Identifier).name
    : r.type === 'Literal'
      ? String((r as jsep.Literal).raw)
      : ''
}

/**
 * What an expression calls that does not exist, found without evaluating it: unknown functions
 * and filters, method calls (`x.startswith('a')`: Jinja/Python, not runbook), unknown tests.
 * @example expressionProblems("lenght(nodes) > 1") // [{ message: "unknown function 'lenght'", hint: "did you mean 'length'?" }]
 */
export function expressionProblems(source: string): { message: string; hint?: string }[] {
  const out: { message: string; hint?: string }[] = []
  const fn = (name: string, what: string): void => {
    if (!helpers[name])
      out.push({
        message: `unknown ${what} '${name}'`,
        hint:
          didYouMean(name, Object.keys(helpers)) ?? `see the helpers in docs/writing-runbooks.md`,
      })
  }
  const visit = (n: Node | null | undefined): void => {
    if (!n) return
    switch (n.type) {
      case 'CallExpression': {
        const c = n as jsep.CallExpression
        if (c.callee.type === 'Identifier') fn((c.callee as jsep.Identifier).name, 'function')
        else if (c.callee.type === 'MemberExpression') {
          const m = c.callee as jsep.MemberExpression
          const method = m.computed ? '' : (m.property as jsep.Identifier).name
          out.push({
            message: `'.${method}(...)' is a method call: conditions call functions, not methods`,
            hint: helpers[method]
              ? `write ${method}(x, ...) instead of x.${method}(...)`
              : `use a function such as contains(x, 'a'), lower(x), length(x)`,
          })
          visit(m.object)
        }
        c.arguments.forEach(visit)
        return
      }
      case 'BinaryExpression': {
        const b = n as jsep.BinaryExpression
        if (b.operator === 'is') {
          const name = testName(b.right)
          if (!TESTS.includes(name))
            out.push({ message: `unknown test 'is ${name}'`, hint: didYouMean(name, TESTS) })
          return visit(b.left)
        }
        if (b.operator === '|') {
          visit(b.left)
          if (b.right.type === 'Identifier') fn((b.right as jsep.Identifier).name, 'filter')
          else if (b.right.type === 'CallExpression') {
            const c = b.right as jsep.CallExpression
            if (c.callee.type === 'Identifier') fn((c.callee as jsep.Identifier).name, 'filter')
            c.arguments.forEach(visit)
          }
          return
        }
        visit(b.left)
        return visit(b.right)
      }
      case 'MemberExpression': {
        const m = n as jsep.MemberExpression
        visit(m.object)
        if (m.computed) visit(m.property)
        return
      }
      case 'UnaryExpression':
        return visit((n as jsep.UnaryExpression).argument)
      case 'ArrayExpression':
        return (n as jsep.ArrayExpression).elements.forEach(visit)
      case 'ConditionalExpression': {
        const c = n as jsep.ConditionalExpression
        visit(c.test)
        visit(c.consequent)
        return visit(c.alternate)
      }
      default:
        return
    }
  }
  visit(parseExpression(source))
  return out
}

function test(b: jsep.BinaryExpression, scope: Scope): unknown {
  let right = b.right
  let negate = false
  if (right.type === 'UnaryExpression' && (right as jsep.UnaryExpression).operator === 'not') {
    negate = true
    right = (right as jsep.UnaryExpression).argument
  }
  const name =
    right.type === 'Identifier'
      ? (right as jsep.Identifier).name
      : right.type === 'Literal'
        ? String((right as jsep.Literal).raw)
        : ''
  const v = ev(b.left, scope)
  let result: boolean
  switch (name) {
    case 'defined':
      result = !(v instanceof Missing)
      break
    case 'undefined':
      result = v instanceof Missing
      break
    case 'none':
    case 'None':
    case 'null':
      result = strict(v) === null
      break
    case 'string':
      result = typeof strict(v) === 'string'
      break
    case 'number':
      result = typeof strict(v) === 'number'
      break
    case 'true':
      result = strict(v) === true
      break
    case 'false':
      result = strict(v) === false
      break
    default:
      throw new RunbookError('E_EXPRESSION', `unknown test 'is ${name}'`, {
        hint: didYouMean(name, TESTS),
      })
  }
  return negate ? !result : result
}

/**
 * Evaluates an expression to a value. Templates (`{{...}}`) are rendered instead.
 * @example evaluate("item.state == 'MASTER'", { item: { state: 'MASTER' } }) // true
 */
export function evaluate(source: string, scope: Scope): unknown {
  if (isTemplate(source)) return renderString(source, scope)
  return strict(ev(parseExpression(source), scope))
}

/** Evaluates a condition to true/false, or an Unknown when it depends on values known after apply. */
export function evaluateCondition(
  source: string | boolean,
  scope: Scope,
): boolean | ReturnType<typeof unknown> {
  if (typeof source === 'boolean') return source
  const v = evaluate(source, scope)
  if (isUnknown(v)) return v
  return truthy(v)
}

/** The root variable names an expression refers to (not inside `is defined` tests). */
export function expressionRefs(source: string): string[] {
  const refs: string[] = []
  const visit = (n: Node | null | undefined, guarded: boolean): void => {
    if (!n) return
    switch (n.type) {
      case 'Identifier':
        if (!guarded) refs.push((n as jsep.Identifier).name)
        return
      case 'MemberExpression': {
        const m = n as jsep.MemberExpression
        visit(m.object, guarded)
        if (m.computed) visit(m.property, guarded)
        return
      }
      case 'BinaryExpression': {
        const b = n as jsep.BinaryExpression
        if (b.operator === 'is') return visit(b.left, true)
        visit(b.left, guarded)
        if (b.operator === '|') {
          if (b.right.type === 'CallExpression')
            for (const a of (b.right as jsep.CallExpression).arguments) visit(a, guarded)
          return
        }
        return visit(b.right, guarded)
      }
      case 'UnaryExpression':
        return visit((n as jsep.UnaryExpression).argument, guarded)
      case 'CallExpression':
        for (const a of (n as jsep.CallExpression).arguments) visit(a, guarded)
        return
      case 'ArrayExpression':
        for (const e of (n as jsep.ArrayExpression).elements) visit(e, guarded)
        return
      case 'ConditionalExpression': {
        const c = n as jsep.ConditionalExpression
        visit(c.test, guarded)
        visit(c.consequent, guarded)
        visit(c.alternate, guarded)
        return
      }
      default:
        return
    }
  }
  visit(parseExpression(source), false)
  return refs.filter((r) => !['true', 'false'].includes(r))
}
