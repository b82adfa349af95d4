/**
 * The architecture as a test: the import graph of the source tree (static imports, `import type`,
 * re-exports and `import()`) has no cycle between files, and the engine knows no module family
 * and no lab. Imports are read with TypeScript's own pre-processor, so no dependency is added.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Every tracked TypeScript file, relative to the repository. */
const files = execFileSync('git', ['ls-files', '*.ts'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f !== '' && !f.endsWith('.d.ts'))
const known = new Set(files)
const sources = new Map(files.map((f) => [f, readFileSync(path.join(ROOT, f), 'utf8')]))

/** What a file imports: every specifier, and the files of the relative ones. */
function importsOf(file: string): { specifiers: string[]; files: string[] } {
  const info = ts.preProcessFile(sources.get(file) ?? '', true, true)
  const specifiers = info.importedFiles.map((i) => i.fileName)
  const targets = specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)))
    .filter((t) => known.has(t))
  return { specifiers, files: targets }
}

const graph = new Map(files.map((f) => [f, importsOf(f).files]))

/** Strongly connected components of more than one file (or a file importing itself): Tarjan. */
function cycles(): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0))
    }
    if (low.get(v) !== index.get(v)) return
    const scc: string[] = []
    for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
      onStack.delete(w)
      scc.push(w)
      if (w === v) break
    }
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort())
  }
  for (const f of files) if (!index.has(f)) visit(f)
  return found
}

/** `import(` whose argument is not a plain string: a reader (and this test) cannot follow it. */
const DYNAMIC = /\bimport\(\s*(?!['"])/

describe('the import graph', () => {
  it('reads the imports it must (a check of the checker)', () => {
    expect(graph.get('engine/execute/executor.ts')).toContain('engine/execute/task.ts')
    expect(graph.get('cli/entry.ts')).toEqual(
      expect.arrayContaining(['engine/cli/main.ts', 'modules/index.ts']),
    )
    expect(files.length).toBeGreaterThan(200)
  })

  it('has no cycle between files', () => {
    expect(cycles()).toEqual([])
  })

  it('finds a cycle when there is one (a check of the checker)', () => {
    const saved = graph.get('engine/execute/task.ts') ?? []
    graph.set('engine/execute/task.ts', [...saved, 'engine/execute/executor.ts'])
    try {
      expect(cycles()).toEqual([['engine/execute/executor.ts', 'engine/execute/task.ts']])
    } finally {
      graph.set('engine/execute/task.ts', saved)
    }
  })

  it('engine/ imports nothing from modules/, lab/ or cli/, statically or with import()', () => {
    const wrong = files
      .filter((f) => f.startsWith('engine/'))
      .flatMap((f) =>
        importsOf(f)
          .files.filter((t) => /^(modules|lab|cli)\//.test(t))
          .map((t) => `${f} -> ${t}`),
      )
    expect(wrong).toEqual([])
  })

  it('engine/ and lab/ import nothing at run time that a reader cannot follow', () => {
    const hidden = files
      .filter((f) => /^(engine|lab)\//.test(f))
      .filter((f) => DYNAMIC.test(sources.get(f) ?? ''))
    expect(hidden).toEqual([])
  })

  it('lab/api reaches the hosts only through the HostDriver seam (lab/driver.ts), never lab/hosts', () => {
    const wrong = files
      .filter((f) => f.startsWith('lab/api/'))
      .flatMap((f) =>
        importsOf(f)
          .files.filter((t) => /^lab\/(hosts\/|real-hosts|daemon|index)/.test(t))
          .map((t) => `${f} -> ${t}`),
      )
    expect(wrong).toEqual([])
  })

  it('modules/ knows no CLI and no lab', () => {
    const wrong = files
      .filter((f) => f.startsWith('modules/'))
      .flatMap((f) =>
        importsOf(f)
          .files.filter((t) => /^(lab|cli|engine\/cli)\//.test(t))
          .map((t) => `${f} -> ${t}`),
      )
    expect(wrong).toEqual([])
  })
})
