#!/usr/bin/env node
// The `runbook` executable. The engine and the modules run from a bundle that esbuild rebuilds
// (in about 0.2 s) when a source file it was built from is newer than it: that starts several
// times faster than compiling every file through tsx on each run. The bundle is split: the entry
// holds the command line only, and each command, the modules, the SSH stack and the exec command
// are chunks imported on first use, so `runbook --version` loads almost nothing. Files carry
// their content's hash and are never rewritten, so a rebuild never pulls a chunk from under a
// running process that imports it later. The lab, which finds files next to its own sources,
// runs through tsx; so does everything when RUNBOOK_NO_BUNDLE is set or bundling fails.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const cache = path.join(root, 'node_modules', '.cache', 'runbook')
const manifestFile = path.join(cache, 'manifest.json')
const argv = process.argv.slice(2)
const DAY = 24 * 3600 * 1000

/** The current bundle's manifest, if no source it was built from changed since. */
function fresh() {
  try {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'))
    for (const f of m.inputs) if (statSync(path.join(root, f)).mtimeMs > m.built) return undefined
    return m
  } catch {
    return undefined
  }
}

async function rebuild() {
  const { build } = await import('esbuild')
  const built = Date.now()
  const tmp = path.join(cache, `tmp-${process.pid}`)
  const r = await build({
    absWorkingDir: root,
    entryPoints: { cli: 'cli/entry.ts' },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Libraries are bundled too: resolving and reading the hundreds of files of zod, yaml and
    // handlebars costs more than running them. ssh2 (native bindings) and axios (loaded with
    // require by the OpenStack client) stay outside.
    external: ['ssh2', 'esbuild', 'tsx', 'axios'],
    // CommonJS libraries in an ES module bundle call require.
    banner: {
      js: "import { createRequire as __runbookRequire } from 'node:module'; const require = __runbookRequire(import.meta.url);",
    },
    outdir: tmp,
    entryNames: '[name]-[hash]',
    chunkNames: 'chunk-[hash]',
    metafile: true,
    logLevel: 'silent',
  })
  const keep = new Set(['manifest.json'])
  for (const name of readdirSync(tmp)) {
    keep.add(name)
    renameSync(path.join(tmp, name), path.join(cache, name))
  }
  rmSync(tmp, { recursive: true, force: true })
  // dynamic imports are entry points of their own in the metafile: pick the CLI's
  const [entryOut] =
    Object.entries(r.metafile.outputs).find(([, o]) => o.entryPoint === 'cli/entry.ts') ?? []
  const m = {
    entry: path.basename(entryOut),
    built,
    // Sources, npm's record of what it installed (a library changes with `npm install`), and
    // this file (how the bundle is built).
    inputs: [
      ...Object.keys(r.metafile.inputs).filter((f) => !f.startsWith('node_modules/')),
      'node_modules/.package-lock.json',
      'cli/runbook.js',
    ],
  }
  const mtmp = `${manifestFile}.${process.pid}.tmp`
  writeFileSync(mtmp, JSON.stringify(m))
  renameSync(mtmp, manifestFile)
  // Old builds go after a day (a run still going may import one of their chunks).
  for (const name of readdirSync(cache))
    if (!keep.has(name) && statSync(path.join(cache, name)).mtimeMs < built - DAY)
      rmSync(path.join(cache, name), { recursive: true, force: true })
  return m
}

async function bundled() {
  mkdirSync(cache, { recursive: true })
  const m = fresh() ?? (await rebuild())
  return import(pathToFileURL(path.join(cache, m.entry)).href)
}

async function viaTsx() {
  const { register } = await import('tsx/esm/api')
  register()
  return import('./entry.ts')
}

let entry
if (argv[0] === 'lab') {
  const { register } = await import('tsx/esm/api')
  register()
}
try {
  entry = process.env.RUNBOOK_NO_BUNDLE ? await viaTsx() : await bundled()
} catch {
  entry = await viaTsx()
}
process.exitCode = await entry.run(argv, { root })
