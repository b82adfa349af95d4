import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const BIN = path.resolve('cli/runbook.js')
const CACHE = path.resolve('node_modules/.cache/runbook')

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? tsFiles(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  )
}

/** Specifiers a file imports at run time (static imports and import()), not `import type`. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const statics = [...text.matchAll(/^import (?!type )[^'"]*?from '([^']+)'/gm)].map((m) => m[1])
  const dynamic = [...text.matchAll(/import\(\s*['"`]([^'"`]+)/g)].map((m) => m[1])
  return [...statics, ...dynamic].filter((s): s is string => s !== undefined)
}

describe('the composition root', () => {
  it('is outside the engine: nothing under engine/ imports modules/ or lab/', () => {
    const offenders = tsFiles('engine').flatMap((f) =>
      runtimeImports(f)
        .filter((s) => /(^|\/)(modules|lab)\//.test(s) && s.startsWith('.'))
        .map((s) => `${f}: ${s}`),
    )
    // also type-only and computed references: any mention of the directories in an import
    const mentions = tsFiles('engine').filter((f) =>
      /from '(\.\.\/)+(modules|lab)\/|import\([^)]*(modules|lab)\//.test(readFileSync(f, 'utf8')),
    )
    expect(offenders).toEqual([])
    expect(mentions).toEqual([])
  })

  it('the CLI and its commands do not import each other at load time', () => {
    expect(runtimeImports('engine/cli/commands.ts').filter((s) => s.includes('main'))).toEqual([])
    const mainStatic = [
      ...readFileSync('engine/cli/main.ts', 'utf8').matchAll(/^import (?!type )[^']*'([^']+)'/gm),
    ].map((m) => m[1])
    expect(mainStatic.filter((s) => s?.includes('commands'))).toEqual([])
  })

  it('starts without the engine: the entry chunk loads commander and node built-ins only', () => {
    const r = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    const manifest = JSON.parse(readFileSync(path.join(CACHE, 'manifest.json'), 'utf8')) as {
      entry: string
      inputs: string[]
    }
    // the entry's static import graph: its own chunks, and no library outside them
    const loaded = new Set<string>()
    const external = new Set<string>()
    const walk = (file: string): void => {
      if (loaded.has(file)) return
      loaded.add(file)
      const text = readFileSync(path.join(CACHE, file), 'utf8')
      for (const m of text.matchAll(/^import [^"]*?from "([^"]+)"|^import "([^"]+)"/gm)) {
        const s = m[1] ?? m[2] ?? ''
        if (s.startsWith('./')) walk(s.slice(2))
        else if (!s.startsWith('node:')) external.add(s)
      }
    }
    walk(manifest.entry)
    expect([...external]).toEqual([])
    const size = [...loaded].reduce((n, f) => n + readFileSync(path.join(CACHE, f)).length, 0)
    // commander and the command line (about 140 kB); the engine, zod and yaml are over 1 MB
    expect(size).toBeLessThan(300_000)
    // the rebuild check covers the sources, the installed libraries and the bin itself
    expect(manifest.inputs).toEqual(
      expect.arrayContaining(['cli/entry.ts', 'engine/cli/main.ts', 'cli/runbook.js']),
    )
  })
})
