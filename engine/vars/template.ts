/**
 * Handlebars rendering for runbooks: no HTML escaping, strict (a missing variable is an error,
 * never an empty string), native values for a lone expression (`"{{nodes}}"` is the list), and
 * unknown values (known after apply) carried through instead of failing.
 */
import Handlebars from 'handlebars'
import { RunbookError } from '../errors.ts'
import { didYouMean } from '../suggest.ts'
import { helperNames, helpers } from './helpers.ts'
import { UNKNOWN_MARK, Unknown, isUnknown, unknown, KNOWN_AFTER_APPLY } from './unknown.ts'

type AstNode = hbs.AST.Node
type Expr = hbs.AST.Expression

const hb = Handlebars.create()
const parsed = new Map<string, hbs.AST.Program>()

/** Whether a string contains template syntax. */
export function isTemplate(s: string): boolean {
  return s.includes('{{')
}

/** Parses a template, caching the AST; syntax errors become E_TEMPLATE. */
export function parseTemplate(template: string): hbs.AST.Program {
  let ast = parsed.get(template)
  if (!ast) {
    try {
      ast = hb.parse(template)
    } catch (e) {
      const last = (e as Error).message.split('\n').slice(-1)[0] ?? ''
      const got = /got '([^']+)'/.exec(last)?.[1]
      throw new RunbookError(
        'E_TEMPLATE',
        `template syntax error${got ? `: unexpected ${got === 'EOF' ? 'end of template' : `'${got}'`}` : `: ${last}`}`,
        { cause: e },
      )
    }
    parsed.set(template, ast)
  }
  return ast
}

/** Where a lookup happens: the context stack (innermost last) and the `@` data of each block. */
interface Frame {
  contexts: unknown[]
  data: Record<string, unknown>
}

function missing(
  part: string,
  i: number,
  parts: string[],
  original: string,
  holders: unknown[],
): RunbookError {
  const known = holders.flatMap((h) => (h !== null && typeof h === 'object' ? Object.keys(h) : []))
  const at = i === 0 ? `'${part}'` : `'${part}' in '${parts.slice(0, i).join('.')}'`
  return new RunbookError(
    'E_UNDEFINED',
    `undefined variable ${at}${i === 0 ? '' : ` (from '${original}')`}`,
    { hint: didYouMean(part, known) },
  )
}

function has(obj: unknown, key: string): boolean {
  return (
    obj !== null &&
    obj !== undefined &&
    typeof obj === 'object' &&
    (isUnknown(obj) || Object.prototype.hasOwnProperty.call(obj, key))
  )
}

/** Strict lookup: a missing name is an error; inside blocks, outer contexts are searched too. */
function lookup(frame: Frame, p: hbs.AST.PathExpression): unknown {
  const parts = p.parts
  if (p.data) {
    const [head = '', ...rest] = parts
    if (head === 'root') return walk(frame.contexts[0], rest, p.original)
    if (!(head in frame.data))
      throw new RunbookError('E_UNDEFINED', `undefined variable '@${head}'`)
    return walk(frame.data[head], rest, p.original)
  }
  const depth = p.depth ?? 0
  const ctxIndex = frame.contexts.length - 1 - depth
  const ctx = frame.contexts[ctxIndex]
  if (parts.length === 0 || p.original === 'this' || p.original.startsWith('this.') || depth > 0)
    return walk(ctx, parts, p.original)
  const head = parts[0] as string
  for (let i = ctxIndex; i >= 0; i--) {
    if (has(frame.contexts[i], head)) return walk(frame.contexts[i], parts, p.original)
  }
  // inside {{#each}}/{{#with}} the names of every enclosing context are candidates
  throw missing(head, 0, parts, p.original, frame.contexts.slice(0, ctxIndex + 1))
}

function walk(start: unknown, parts: string[], original: string): unknown {
  let cur = start
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string
    if (isUnknown(cur)) return cur
    if (!has(cur, part)) throw missing(part, i, parts, original, [cur])
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

/** Evaluates one Handlebars expression natively (path, literal or helper call). */
function evalExpr(e: Expr, frame: Frame): unknown {
  switch (e.type) {
    case 'PathExpression':
      return lookup(frame, e as hbs.AST.PathExpression)
    case 'StringLiteral':
    case 'NumberLiteral':
    case 'BooleanLiteral':
      return (e as hbs.AST.StringLiteral).value
    case 'NullLiteral':
      return null
    case 'UndefinedLiteral':
      return undefined
    case 'SubExpression': {
      const s = e as hbs.AST.SubExpression
      return callHelper(s.path, s.params, frame)
    }
    default:
      throw new RunbookError('E_TEMPLATE', `unsupported expression ${e.type}`)
  }
}

function callHelper(path: Expr, params: Expr[], frame: Frame): unknown {
  const name = (path as hbs.AST.PathExpression).original
  const fn = helpers[name]
  if (!fn)
    throw new RunbookError('E_TEMPLATE', `unknown helper '${name}'`, {
      hint: didYouMean(name, helperNames),
    })
  // `default` must see a missing variable as absent, not fail on it.
  const args = params.map((x, i) => {
    if (name === 'default' && i === 0) {
      try {
        return evalExpr(x, frame)
      } catch (err) {
        if (err instanceof RunbookError && err.code === 'E_UNDEFINED') return undefined
        throw err
      }
    }
    return evalExpr(x, frame)
  })
  if (args.some(isUnknown)) return unknown(name)
  return fn(...args)
}

/** Evaluates a mustache or block head: a path, or a helper call with parameters. */
function evalHead(m: hbs.AST.MustacheStatement | hbs.AST.BlockStatement, frame: Frame): unknown {
  const name = m.path.type === 'PathExpression' ? (m.path as hbs.AST.PathExpression).original : ''
  if (m.params.length > 0 || helpers[name]) return callHelper(m.path, m.params, frame)
  return evalExpr(m.path, frame)
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  return Boolean(v)
}

function stringify(v: unknown): string {
  if (isUnknown(v)) return UNKNOWN_MARK
  if (v === undefined || v === null) return ''
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** Renders a program (a template or a block's body) to text. */
function renderProgram(prog: hbs.AST.Program, frame: Frame): string {
  let out = ''
  for (const st of prog.body) {
    switch (st.type) {
      case 'ContentStatement':
        out += (st as hbs.AST.ContentStatement).value
        break
      case 'CommentStatement':
        break
      case 'MustacheStatement':
        out += stringify(evalHead(st as hbs.AST.MustacheStatement, frame))
        break
      case 'BlockStatement':
        out += renderBlock(st as hbs.AST.BlockStatement, frame)
        break
      default:
        throw new RunbookError('E_TEMPLATE', `unsupported template statement ${st.type}`)
    }
  }
  return out
}

function renderBlock(b: hbs.AST.BlockStatement, frame: Frame): string {
  const name = (b.path as hbs.AST.PathExpression).original
  const arg = b.params[0] ? evalExpr(b.params[0], frame) : undefined
  const inverse = (): string => (b.inverse ? renderProgram(b.inverse, frame) : '')
  if (isUnknown(arg)) return UNKNOWN_MARK
  switch (name) {
    case 'if':
      return truthy(arg) ? renderProgram(b.program, frame) : inverse()
    case 'unless':
      return truthy(arg) ? inverse() : renderProgram(b.program, frame)
    case 'with':
      return arg === undefined || arg === null
        ? inverse()
        : renderProgram(b.program, { contexts: [...frame.contexts, arg], data: frame.data })
    case 'each': {
      const entries: [string | number, unknown][] = Array.isArray(arg)
        ? arg.map((v, i) => [i, v])
        : arg && typeof arg === 'object'
          ? Object.entries(arg)
          : []
      if (entries.length === 0) return inverse()
      const names = b.program.blockParams ?? []
      return entries
        .map(([key, v], i) => {
          const data = {
            ...frame.data,
            index: i,
            key,
            first: i === 0,
            last: i === entries.length - 1,
          }
          const ctx = names.length
            ? {
                ...(frame.contexts[frame.contexts.length - 1] as object),
                [names[0] as string]: v,
                ...(names[1] ? { [names[1]]: key } : {}),
              }
            : v
          return renderProgram(b.program, { contexts: [...frame.contexts, ctx], data })
        })
        .join('')
    }
    default:
      throw new RunbookError('E_TEMPLATE', `unknown block helper '#${name}'`, {
        hint: didYouMean(name, ['if', 'unless', 'each', 'with']),
      })
  }
}

/** A template made of exactly one `{{ ... }}` and nothing else yields the value itself. */
function lone(ast: hbs.AST.Program): hbs.AST.MustacheStatement | undefined {
  const body = ast.body.filter(
    (s) => !(s.type === 'ContentStatement' && (s as hbs.AST.ContentStatement).value.trim() === ''),
  )
  if (body.length !== 1 || body[0]?.type !== 'MustacheStatement') return undefined
  return body[0] as hbs.AST.MustacheStatement
}

/**
 * Renders one string. `"{{nodes}}"` returns the list itself; text with unknown parts returns an
 * Unknown whose `partial` shows the text with `(known after apply)` in their place.
 * @example renderString('{{vip}}/{{prefix}}', { vip: '192.0.2.254', prefix: 24 }) // '192.0.2.254/24'
 */
export function renderString(template: string, scope: Record<string, unknown>): unknown {
  if (!isTemplate(template)) return template
  const ast = parseTemplate(template)
  const frame: Frame = { contexts: [scope], data: {} }
  const single = lone(ast)
  if (single) {
    const v = evalHead(single, frame)
    // whitespace around a string is part of the text (`content: "{{line}}\n"` keeps its newline)
    if (typeof v !== 'string' || ast.body.length === 1) return v
  }
  const out = renderProgram(ast, frame)
  if (out.includes(UNKNOWN_MARK))
    return new Unknown(template, out.split(UNKNOWN_MARK).join(KNOWN_AFTER_APPLY))
  return out
}

/** Renders a template to text (file contents): a lone expression is stringified too. */
export function renderText(template: string, scope: Record<string, unknown>): string | Unknown {
  const v = renderString(template, scope)
  if (isUnknown(v)) return v
  return typeof v === 'string' ? v : stringify(v)
}

/** Renders every string inside a value (objects and lists deeply). */
export function renderDeep(value: unknown, scope: Record<string, unknown>): unknown {
  if (typeof value === 'string') return renderString(value, scope)
  if (Array.isArray(value)) return value.map((v) => renderDeep(v, scope))
  if (value !== null && typeof value === 'object' && !isUnknown(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderDeep(v, scope)]))
  }
  return value
}

/** A reference found in a template, for validation before anything runs. */
export interface TemplateRef {
  /** The root variable name (`nodes` in `nodes.0.name`). */
  root: string
  /** The whole path as written. */
  path: string
  /** Offset of the `{{` of the statement in the template text, when known. */
  index: number
}

/**
 * The variables and helpers a template refers to. Paths inside `#each`/`#with` blocks are
 * relative to the block's item and are not reported.
 */
export function templateRefs(template: string): { vars: TemplateRef[]; helpers: TemplateRef[] } {
  const ast = parseTemplate(template)
  const lineStarts = [0]
  for (let i = 0; i < template.length; i++) if (template[i] === '\n') lineStarts.push(i + 1)
  const offset = (n: AstNode): number => {
    const loc = n.loc
    return loc ? (lineStarts[loc.start.line - 1] ?? 0) + loc.start.column : 0
  }
  const vars: TemplateRef[] = []
  const hs: TemplateRef[] = []
  const visitExpr = (e: Expr, at: number, inBlock: boolean): void => {
    if (e.type === 'PathExpression') {
      const p = e as hbs.AST.PathExpression
      if (
        p.data ||
        p.original === 'this' ||
        p.original.startsWith('this.') ||
        p.original.startsWith('../') ||
        p.parts.length === 0
      )
        return
      if (!inBlock) vars.push({ root: p.parts[0] as string, path: p.original, index: at })
    } else if (e.type === 'SubExpression') {
      const s = e as hbs.AST.SubExpression
      hs.push({
        root: (s.path as hbs.AST.PathExpression).original,
        path: (s.path as hbs.AST.PathExpression).original,
        index: at,
      })
      // `default`'s first argument may be undefined: that is what default is for
      s.params.forEach((x, i) => {
        if (!(
          i === 0 &&
          s.path.type === 'PathExpression' &&
          (s.path as hbs.AST.PathExpression).original === 'default'
        ))
          visitExpr(x, at, inBlock)
      })
      for (const pair of s.hash?.pairs ?? []) visitExpr(pair.value, at, inBlock)
    }
  }
  const visit = (n: AstNode, inBlock: boolean): void => {
    if (n.type === 'Program') for (const s of (n as hbs.AST.Program).body) visit(s, inBlock)
    else if (n.type === 'MustacheStatement' || n.type === 'BlockStatement') {
      const m = n as hbs.AST.MustacheStatement | hbs.AST.BlockStatement
      const at = offset(n)
      const name =
        m.path.type === 'PathExpression' ? (m.path as hbs.AST.PathExpression).original : ''
      const isHelper =
        m.params.length > 0 ||
        (m.hash?.pairs.length ?? 0) > 0 ||
        n.type === 'BlockStatement' ||
        helperNames.has(name)
      if (isHelper) {
        hs.push({ root: name, path: name, index: at })
        m.params.forEach((x, i) => {
          if (!(i === 0 && name === 'default')) visitExpr(x, at, inBlock)
        })
        for (const pair of m.hash?.pairs ?? []) visitExpr(pair.value, at, inBlock)
      } else visitExpr(m.path, at, inBlock)
      if (n.type === 'BlockStatement') {
        const b = n as hbs.AST.BlockStatement
        const scoped = inBlock || name === 'each' || name === 'with'
        visit(b.program, scoped)
        if (b.inverse) visit(b.inverse, inBlock)
      }
    }
  }
  visit(ast, false)
  return { vars, helpers: hs }
}
