/**
 * YAML problems in words a new user understands, at the place that needs fixing: an unclosed quote
 * or bracket where it opens (the parser notices only at the end of the file), an undefined alias
 * where it is used, merge keys and several documents refused clearly, and nesting too deep for any
 * runbook refused before the parser could overflow its stack.
 */
import {
  CST,
  Parser,
  isAlias,
  isCollection,
  isPair,
  isScalar,
  visit,
  type Document,
  type LineCounter,
  type YAMLError,
} from 'yaml'
import { RunbookError } from '../errors.ts'

/** Deeper nesting than this is refused (real runbooks stay well under 20). */
export const MAX_DEPTH = 64

/**
 * Larger files are refused before parsing (docs/writing-runbooks.md, "Limits"): the YAML parser
 * needs seconds for several megabytes, and a real runbook, inventory or var file is a few kB.
 */
export const MAX_BYTES = 1024 * 1024

/** How many YAML errors of one file are shown: the rest are usually consequences of the first. */
const MAX_SHOWN = 3

interface Where {
  file: string
  lines: LineCounter
}

const at = (w: Where, offset: number) => ({ file: w.file, ...w.lines.linePos(offset) })

const yamlError = (w: Where, offset: number, message: string, hint?: string): RunbookError =>
  new RunbookError('E_YAML', message, { pos: at(w, offset), hint })

/**
 * The offset of the first place where brackets or braces nest deeper than MAX_DEPTH, found without
 * parsing (quotes and comments skipped), so that a hostile file cannot overflow the parser.
 */
export function tooDeep(text: string): number | undefined {
  let depth = 0
  let quote = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quote) {
      if (c === '\\' && quote === '"') i++
      else if (c === quote) quote = ''
      else if (c === '\n' && quote === 'plain') quote = ''
      continue
    }
    if (c === '"' || c === "'") {
      // a quote starts a scalar only after a separator; inside a word it is text
      const prev = text[i - 1]
      if (prev === undefined || /[\s:[{,-]/.test(prev)) quote = c
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1] ?? ''))) quote = 'plain'
    else if (c === '[' || c === '{') {
      if (++depth > MAX_DEPTH) return i
    } else if (c === ']' || c === '}') depth = Math.max(0, depth - 1)
  }
  return undefined
}

/** Quotes and flow collections that are opened and never closed, in source order. */
function unclosed(text: string): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = []
  for (const tok of new Parser().parse(text)) {
    if (tok.type !== 'document') continue
    CST.visit(tok, (item) => {
      const v = item.value
      if (v === undefined) return
      if (v.type === 'double-quoted-scalar') {
        const body = v.source.slice(1).replace(/\\[\s\S]/g, '')
        if (!body.endsWith('"'))
          out.push({ offset: v.offset, message: 'this double quote (") is not closed' })
      } else if (v.type === 'single-quoted-scalar') {
        const body = v.source.slice(1).replace(/''/g, '')
        if (!body.endsWith("'"))
          out.push({ offset: v.offset, message: "this single quote (') is not closed" })
      } else if (v.type === 'flow-collection') {
        const open = v.start.source
        const close = open === '[' ? ']' : '}'
        if (!v.end.some((e) => e.source === close))
          out.push({
            offset: v.start.offset,
            message: `this '${open}' is not closed: a matching '${close}' is missing`,
          })
      }
    })
  }
  // a quote swallows the rest of the file, and with it the brackets around it: it comes first
  const quotes = out.filter((o) => o.message.includes('quote'))
  return (quotes.length ? quotes : out).sort((a, b) => a.offset - b.offset).slice(0, 1)
}

function duplicateKey(text: string, offset: number): string {
  const m = /^\s*("[^"]*"|'[^']*'|[^:#\n]+?)\s*:/.exec(text.slice(offset))
  return m?.[1]?.replace(/^["']|["']$/g, '') ?? ''
}

/** One parser error in plain words. */
function translate(w: Where, text: string, e: YAMLError): RunbookError {
  let offset = e.pos[0]
  // a badly indented line: the parser points at the collection, the culprit is the line it stopped at
  if (e.code === 'BAD_INDENT' && w.lines.linePos(e.pos[1]).line > w.lines.linePos(offset).line) {
    offset = e.pos[1]
    while (text[offset] === ' ') offset++
  }
  switch (e.code) {
    case 'MULTIPLE_DOCS':
      return yamlError(
        w,
        offset,
        'a second YAML document starts here: a file holds exactly one document',
        "remove the '---' line, or split the file",
      )
    case 'DUPLICATE_KEY': {
      const key = duplicateKey(text, offset)
      return yamlError(
        w,
        offset,
        `duplicate key${key ? ` '${key}'` : ''}: a key may appear only once in a mapping`,
      )
    }
    case 'TAB_AS_INDENT':
      return yamlError(w, offset, 'a tab is used for indentation: YAML indents with spaces only')
    case 'BAD_INDENT':
    case 'MISSING_CHAR':
    case 'UNEXPECTED_TOKEN':
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      return yamlError(
        w,
        offset,
        `YAML: ${plain(e.message)}`,
        'check the indentation and the quotes on this line and the line above',
      )
    default:
      return yamlError(w, offset, `YAML: ${plain(e.message)}`)
  }
}

/** The parser's message without its own position suffix and excerpt. */
function plain(message: string): string {
  return (message.split('\n')[0] ?? message)
    .replace(/ at line \d+, column \d+:?$/, '')
    .replace(/; please use YAML\.parseAllDocuments\(\)/, '')
}

const UNQUOTED = 'a {{ }} template without quotes: YAML reads {{ as the start of a mapping'
const QUOTE_HINT = 'put the whole value in quotes, e.g. path: "{{dir}}/x"'

/** The offset of the first `{{` that starts a plain (unquoted) value, as in `path: {{out}}/x`. */
function unquotedTemplate(text: string): number | undefined {
  const m = /^[ \t]*(?:- +)?(?:[^\s#'"{[][^#\n]*?:[ \t]+|- +)(\{\{)/m.exec(text)
  return m ? m.index + m[0].length - 2 : undefined
}

/**
 * What most often makes a file unparsable, found on the text itself because the parser blames
 * a line nearby: a tab in the indentation, or `key:value` without a space after the colon.
 */
function likelyCause(w: Where, text: string): RunbookError | undefined {
  const tab = /^[ ]*\t/m.exec(text)
  if (tab)
    return yamlError(
      w,
      tab.index + tab[0].length - 1,
      'a tab is used for indentation: YAML indents with spaces only',
      'replace the tab with spaces (two per level, as on the lines around it)',
    )
  const glued = /^([ \t]*(?:- +)?)([A-Za-z_][\w.-]*):(?![\s:/]|$)(\S.*)$/m.exec(text)
  if (glued)
    return yamlError(
      w,
      glued.index + (glued[1]?.length ?? 0),
      `no space after the colon in '${glued[2]}:${glued[3]}': YAML reads it as one word, not a key and its value`,
      `write '${glued[2]}: ${glued[3]}'`,
    )
  return undefined
}

/** Tags YAML does not know (`!vault`, `!env`): their values would be read as plain text. */
function unknownTags(w: Where, doc: Document.Parsed): RunbookError[] {
  return doc.warnings
    .filter((e) => e.code === 'TAG_RESOLVE_FAILED')
    .map((e) => {
      const tag = /tag[^!]*(![\w!:./-]*)/i.exec(e.message)?.[1] ?? ''
      return yamlError(
        w,
        e.pos[0],
        `unknown YAML tag${tag ? ` '${tag}'` : ''}: runbook reads plain YAML, without tags`,
        tag.includes('vault')
          ? 'there is no vault: declare a secret in the top-level vars instead, e.g. { secret: true, from_env: DB_PASSWORD }'
          : 'remove the tag (and quote the value if it must stay text)',
      )
    })
}

/** The errors of a parsed document, in plain words, the cause first. */
export function yamlErrors(
  file: string,
  text: string,
  doc: Document.Parsed,
  lines: LineCounter,
): RunbookError[] {
  const w = { file, lines }
  if (doc.errors.length) {
    const unquoted = unquotedTemplate(text)
    if (unquoted !== undefined) return [yamlError(w, unquoted, UNQUOTED, QUOTE_HINT)]
    const open = unclosed(text)
    if (open.length) return open.map((o) => yamlError(w, o.offset, o.message))
    const cause = likelyCause(w, text)
    if (cause) return [cause]
    return doc.errors.slice(0, MAX_SHOWN).map((e) => translate(w, text, e))
  }
  const out: RunbookError[] = unknownTags(w, doc)
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) === undefined)
        out.push(
          yamlError(
            w,
            node.range?.[0] ?? 0,
            `alias '*${node.source}' refers to no anchor: define '&${node.source}' before it`,
          ),
        )
    },
    Map(_, map) {
      // duplicate keys found here in one pass (the parser's own check is quadratic in the keys)
      const seen = new Set<string>()
      for (const p of map.items) {
        if (!isScalar(p.key)) continue
        const k = String(p.key.value)
        if (seen.has(k))
          out.push(
            yamlError(
              w,
              p.key.range?.[0] ?? 0,
              `duplicate key '${k}': a key may appear only once in a mapping`,
            ),
          )
        seen.add(k)
      }
      // `msg: {{name}}` is a mapping whose key is the mapping {name}: a template without quotes
      if (map.items.some((p) => isCollection(p.key)))
        out.push(yamlError(w, map.range?.[0] ?? 0, UNQUOTED, QUOTE_HINT))
    },
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.value === '<<')
        out.push(
          yamlError(
            w,
            pair.key.range?.[0] ?? 0,
            "merge keys ('<<') are not supported: write the keys out, or put the shared values in a variable",
          ),
        )
    },
  })
  const deep = depthAt(doc)
  if (deep !== undefined)
    out.push(yamlError(w, deep, `values nest deeper than ${MAX_DEPTH} levels here`))
  return out
}

/** The offset of a node nested deeper than MAX_DEPTH, found without recursion. */
function depthAt(doc: Document.Parsed): number | undefined {
  const stack: [unknown, number][] = [[doc.contents, 0]]
  while (stack.length) {
    const [node, d] = stack.pop() as [unknown, number]
    if (node === null || typeof node !== 'object' || isAlias(node)) continue
    const n = node as { items?: unknown[]; key?: unknown; value?: unknown; range?: number[] }
    if (d > MAX_DEPTH) return n.range?.[0] ?? 0
    if (Array.isArray(n.items))
      for (const it of n.items) {
        if (isPair(it)) stack.push([it.value, d + 1])
        else stack.push([it, d + 1])
      }
  }
  return undefined
}
