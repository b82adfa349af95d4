import { spawn, spawnSync } from 'node:child_process'
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

// what the launcher (cli/runbook) starts
const BIN = path.resolve('cli/runbook.cjs')
const CACHE = path.resolve('node_modules/.cache/runbook')

/** The bundle's manifest: its file, when it was built, and what it was built from. */
function manifest(): { entry: string; light: string; built: number; inputs: string[] } {
  return JSON.parse(readFileSync(path.join(CACHE, 'manifest.json'), 'utf8')) as {
    entry: string
    light: string
    built: number
    inputs: string[]
  }
}

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

  it('builds the bundle from every source, the installed libraries and the bin itself', () => {
    const r = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    expect(manifest().inputs).toEqual(
      expect.arrayContaining([
        'cli/entry.ts',
        'engine/cli/main.ts',
        'engine/connection/ssh.ts',
        'modules/index.ts',
        'node_modules/.package-lock.json',
        'cli/runbook.cjs',
      ]),
    )
    // and a bundle no input is newer than is used as it is: not rebuilt
    const built = manifest().built
    expect(spawnSync(process.execPath, [BIN, '--version']).status).toBe(0)
    expect(manifest().built).toBe(built)
  })

  it('rebuilds the bundle when a source is edited after it was built', () => {
    const file = 'engine/cli/runbook-name.ts'
    const before = statSync(file)
    spawnSync(process.execPath, [BIN, '--version'])
    const built = manifest().built
    try {
      const edited = new Date(Math.max(Date.now(), built + 1000))
      utimesSync(file, edited, edited)
      const r = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' })
      expect(r.status).toBe(0)
      expect(manifest().built).toBeGreaterThanOrEqual(edited.getTime() - 1000)
      expect(manifest().built).toBeGreaterThan(built)
    } finally {
      utimesSync(file, before.atime, before.mtime)
    }
  })

  it('writes the code cache safely when runs start together, and replaces one V8 refuses', async () => {
    spawnSync(process.execPath, [BIN, '--version'])
    // --version runs from the small bundle (the command line alone)
    const cacheFile = path.join(CACHE, `${manifest().light}.0.v8`)
    rmSync(cacheFile, { force: true })
    const runs = await Promise.all(
      [1, 2, 3, 4].map(
        () =>
          new Promise<{ code: number | null; out: string; pid: number | undefined }>((resolve) => {
            const c = spawn(process.execPath, [BIN, '--version'])
            let out = ''
            c.stdout.on('data', (d: Buffer) => (out += d.toString()))
            c.on('close', (code) => resolve({ code, out, pid: c.pid }))
          }),
      ),
    )
    expect(runs.map((r) => [r.code, r.out.trim()])).toEqual(
      runs.map(() => [0, expect.stringMatching(/^\d+\.\d+\.\d+$/)]),
    )
    expect(statSync(cacheFile).size).toBeGreaterThan(5_000)
    // each run wrote a temporary file and renamed it; none is left behind
    const tmps = new Set(runs.map((r) => `${path.basename(cacheFile)}.${r.pid}.tmp`))
    expect(readdirSync(CACHE).filter((f) => tmps.has(f))).toEqual([])
    // a cache V8 refuses (another V8, a damaged file) is replaced by the next run
    writeFileSync(cacheFile, 'not a code cache')
    const r = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    expect(statSync(cacheFile).size).toBeGreaterThan(5_000)
  })
})

/** The bundled modules a command initialises and the libraries it requires (RUNBOOK_TRACE_MODULES). */
function loadedBy(args: string[]): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'runbook-trace-'))
  try {
    const trace = path.join(dir, 'loaded.txt')
    const r = spawnSync(process.execPath, [BIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, RUNBOOK_TRACE_MODULES: trace },
    })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    return readFileSync(trace, 'utf8').split('\n').filter(Boolean)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const library = (name: string) => (m: string) => m === name || m.startsWith(`node_modules/${name}/`)

describe('start-up loads what the command needs and nothing more', () => {
  it('--version runs commander and the command line: no engine, no module, no library', () => {
    const loaded = loadedBy(['--version'])
    expect(loaded.some(library('commander'))).toBe(true)
    expect(loaded.filter((m) => !library('commander')(m))).toEqual([])
  })

  it('validate reads the runbook without the SSH stack, the OpenStack HTTP client or the lab', () => {
    const loaded = loadedBy(['validate', 'runbooks/vip-keepalived.yaml'])
    // what validate does need, so that the trace is known to work
    for (const m of [
      'engine/cli/commands.ts',
      'engine/runbook/validate.ts',
      'modules/catalog.ts',
      // the runbook names modules of both families loaded on demand
      'modules/openstack/index.ts',
      'modules/keepalived/index.ts',
    ])
      expect(loaded).toContain(m)
    expect(loaded.some(library('yaml'))).toBe(true)
    expect(loaded.some(library('zod'))).toBe(true)
    for (const lib of ['ssh2', 'axios', 'esbuild', 'tsx'])
      expect(loaded.filter(library(lib)), lib).toEqual([])
    expect(
      loaded.filter((m) => /^engine\/connection\/(ssh|pool|ssh-factory)\.ts$/.test(m)),
    ).toEqual([])
    expect(loaded.filter((m) => m.startsWith('lab/'))).toEqual([])
  })

  it('a runbook of host tasks loads neither the OpenStack nor the keepalived family', () => {
    const loaded = loadedBy(['validate', 'runbooks/local-demo.yaml'])
    expect(loaded).toContain('modules/host/index.ts')
    expect(loaded.filter((m) => /^modules\/(openstack|keepalived)\//.test(m))).toEqual([])
    expect(loaded).not.toContain('modules/index.ts')
  })
})
