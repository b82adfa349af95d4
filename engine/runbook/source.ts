/**
 * YAML sources that remember where every node came from. Everything downstream addresses a node
 * by its path (`['plays', 0, 'tasks', 2, 'apt', 'pkgs']`) and asks the source for its position,
 * so errors print `file:line:col` with the line and a caret.
 */
import { promises as fs } from 'node:fs'
import {
  LineCounter,
  parseDocument,
  isMap,
  isSeq,
  isScalar,
  isPair,
  isNode,
  type Document,
  type Node,
} from 'yaml'
import { RunbookError, type SourcePos } from '../errors.ts'
import { MAX_BYTES, MAX_DEPTH, tooDeep, yamlErrors } from './yaml-errors.ts'

/** A path into a YAML document. */
export type YamlPath = readonly (string | number)[]

/** One parsed YAML file. */
export interface Source {
  file: string
  text: string
  doc: Document.Parsed
  lines: LineCounter
  /** The plain JavaScript value of the document. */
  value: unknown
  /** Not world-readable on the controller: its lines are never printed in an error excerpt. */
  private?: boolean
}

/** All the sources of a run, by file name. */
export class SourceSet {
  private readonly byFile = new Map<string, Source>()
  private readonly texts = new Map<string, string>()

  /** Adds a parsed source. */
  add(src: Source): void {
    this.byFile.set(src.file, src)
  }

  private readonly hidden = new Set<string>()

  /** Adds a file that is not YAML (a template), for error excerpts (none when `hidden`). */
  addText(file: string, text: string, hidden = false): void {
    this.texts.set(file, text)
    if (hidden) this.hidden.add(file)
  }

  /** The text of a file, for error excerpts; none for a file that is not world-readable. */
  text = (file: string): string | undefined =>
    this.hidden.has(file) || this.byFile.get(file)?.private === true
      ? undefined
      : (this.byFile.get(file)?.text ?? this.texts.get(file))

  /** Every file of the run (YAML and templates) with its text. */
  entries(): [string, string][] {
    const out: [string, string][] = [...this.byFile].map(([file, src]) => [file, src.text])
    for (const [file, text] of this.texts) if (!this.byFile.has(file)) out.push([file, text])
    return out
  }

  /** The source of a file. */
  get(file: string): Source | undefined {
    return this.byFile.get(file)
  }
}

/**
 * Parses YAML text; YAML errors become RunbookErrors with positions.
 * @example const { source, errors } = parseYaml('runbook.yaml', text)
 */
export function parseYaml(file: string, text: string): { source: Source; errors: RunbookError[] } {
  const lines = new LineCounter()
  const large = Buffer.byteLength(text) > MAX_BYTES
  const deep = large ? undefined : tooDeep(text)
  if (deep !== undefined || large) {
    // refused before parsing: the parser would take too long or overflow its stack
    const doc = parseDocument('', { lineCounter: new LineCounter() })
    lines.addNewLine(0)
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') lines.addNewLine(i + 1)
    const error =
      deep !== undefined
        ? new RunbookError('E_YAML', `values nest deeper than ${MAX_DEPTH} levels here`, {
            pos: { file, ...lines.linePos(deep) },
          })
        : new RunbookError(
            'E_YAML',
            `the file is larger than ${MAX_BYTES / 1024 / 1024} MB, the limit for a runbook, inventory or var file`,
            {
              pos: { file, line: 1, col: 1 },
              hint: 'split it with import_tasks / import_playbook, or move data to several var files',
            },
          )
    return { source: { file, text, doc, lines, value: undefined }, errors: [error] }
  }
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: false,
    keepSourceTokens: false,
  })
  const errors = yamlErrors(file, text, doc, lines)
  let value: unknown
  if (!errors.length) {
    try {
      value = doc.toJS({ maxAliasCount: 1000 })
    } catch (e) {
      errors.push(
        new RunbookError('E_YAML', `YAML: ${(e as Error).message}`, {
          pos: { file, line: 1, col: 1 },
        }),
      )
    }
  }
  return { source: { file, text, doc, lines, value }, errors }
}

/** Reads and parses a YAML file. */
export async function loadYaml(file: string): Promise<{ source: Source; errors: RunbookError[] }> {
  let text: string
  let hidden: boolean
  try {
    text = await fs.readFile(file, 'utf8')
    hidden = isPrivate((await fs.stat(file)).mode)
  } catch (e) {
    throw new RunbookError(
      'E_USAGE',
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    )
  }
  const parsed = parseYaml(file, text)
  parsed.source.private = hidden
  return parsed
}

/**
 * Whether a file mode keeps the file from other users (0600, 0640): its contents are then never
 * printed, in an error excerpt or a diff.
 * @example isPrivate(0o100600) // true
 */
export function isPrivate(mode: number): boolean {
  return (mode & 0o004) === 0
}

/**
 * The position of the node at `path`. With `key: true`, the position of the map key that holds it
 * (where "unknown parameter" errors should point). Falls back to the nearest existing ancestor.
 */
export function locate(src: Source, path: YamlPath, opts: { key?: boolean } = {}): SourcePos {
  let node: unknown = src.doc.contents
  let best: [number, number] | undefined = rangeOf(node)
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]
    const last = i === path.length - 1
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && keyString(p.key) === String(seg))
      if (!pair) break
      if (last && opts.key) {
        best = rangeOf(pair.key) ?? best
        break
      }
      node = pair.value
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg]
    } else break
    best = rangeOf(node) ?? best
  }
  const offset = best?.[0] ?? 0
  const { line, col } = src.lines.linePos(offset)
  return { file: src.file, line, col }
}

/** The position of a character offset inside the scalar at `path` (for a `{{` inside a string). */
export function locateInScalar(src: Source, path: YamlPath, index: number): SourcePos {
  const base = locate(src, path)
  const node: unknown = src.doc.getIn(path as (string | number)[], true)
  if (!isScalar(node) || typeof node.value !== 'string') return base
  const text = node.value
  const raw = node.range ? src.text.slice(node.range[0], node.range[1]) : ''
  // Only plain and quoted one-line scalars map 1:1 to the source; others point at the scalar.
  if (raw.includes('\n') || text.includes('\n')) return base
  const quoted = raw.startsWith('"') || raw.startsWith("'") ? 1 : 0
  const shift = raw.indexOf(text) >= 0 ? raw.indexOf(text) : quoted
  return { ...base, col: base.col + shift + index }
}

function rangeOf(node: unknown): [number, number] | undefined {
  if (isNode(node) && (node as Node).range) {
    const r = (node as Node).range as [number, number, number]
    return [r[0], r[1]]
  }
  return undefined
}

function keyString(key: unknown): string {
  if (isScalar(key)) return String(key.value)
  return String(key)
}
