#!/usr/bin/env node
// The `runbook` executable. The engine and the modules run from one CommonJS bundle that esbuild
// rebuilds (in about 0.3 s) when a source file it was built from is newer than it, compiled with
// a V8 code cache (docs/performance.md has the figures):
// - one file read by `vm.Script` starts faster than Node's ES module loader resolving, reading
//   and linking a graph of chunks; the parts of the program stay lazy inside it (esbuild turns
//   each `import()` into a module initialised on first use), so `validate` builds no SSH stack
//   and no HTTP client;
// - the code cache is V8's bytecode for the functions a previous run compiled, so a run skips
//   parsing and compiling them. There is one per weight of command (`validate`; `plan`, `apply`:
//   each compiles more of the program, and a larger cache costs more to read), named after the
//   bundle, whose name carries its content's hash. The first run of a weight writes it after its
//   command (a temporary file, then a rename); V8 rejects a cache made from another source or by
//   another V8 or with other flags, and that run writes a new one;
// - the commands that print and exit (`--version`, `--help`) run from a second, small bundle of
//   the same entry without its import()s: commander and the command line, with its own cache.
// Files are never rewritten in place, so a rebuild never pulls a file from under a running
// process. The lab, which finds files next to its own sources and imports them by URL, runs
// through tsx; so does everything when RUNBOOK_NO_BUNDLE is set or bundling fails.
//
// This file is CommonJS, and what the `runbook` launcher (cli/runbook) starts: node's ES module
// loader, which a .js file of this package would start, costs about 6 ms of every command.
// `node cli/runbook.js` (an ES module that loads this file) works too.
'use strict'
const { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } = require('node:fs')
const { writeFileSync } = require('node:fs')
const { isBuiltin } = require('node:module')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const vm = require('node:vm')

// cli/runbook (the sh launcher) hands NODE_EXTRA_CA_CERTS over as RUNBOOK_EXTRA_CA_CERTS, so that
// node did not parse that CA bundle as it started. It goes back into the environment, for every
// process runbook starts; the OpenStack client adds those CAs to its own when it connects.
const deferredCaCerts = process.env.RUNBOOK_EXTRA_CA_CERTS
if (deferredCaCerts !== undefined) {
  delete process.env.RUNBOOK_EXTRA_CA_CERTS
  process.env.NODE_EXTRA_CA_CERTS = deferredCaCerts
  globalThis.__runbookDeferredCaCerts = deferredCaCerts
}

// with its trailing separator, as the manifest's inputs are joined to it
const root = path.join(__dirname, '..') + path.sep
const cache = path.join(root, 'node_modules', '.cache', 'runbook')
const manifestFile = path.join(cache, 'manifest.json')
const argv = process.argv.slice(2)
const DAY = 24 * 3600 * 1000
const FORMAT = 4
/** What the bundle's code sees: CommonJS's five, the entry's URL (import.meta.url), the tracer. */
const PARAMS = 'exports, require, module, __filename, __dirname, __runbookEntryUrl, __runbookTrace'

/** The commands that print and exit: they run from the small bundle (commander and main.ts). */
const light =
  argv.length === 0 ||
  (argv.length === 1 && ['--version', '-V', '--help', '-h', 'help'].includes(argv[0]))

/** How much of the program a command runs, which decides the code cache it reads. */
const weight = { validate: 1, modules: 1, schema: 1, plan: 2, apply: 2, destroy: 2, exec: 2 }

/** The current bundle's manifest, if no source it was built from changed since. */
function fresh() {
  try {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'))
    if (m.format !== FORMAT) return undefined
    for (const f of m.inputs) if (statSync(root + f).mtimeMs > m.built) return undefined
    return m
  } catch {
    return undefined
  }
}

// zod's namespace exports every locale's messages (half of zod's size, parsed on each start);
// runbook uses only the English one, which zod installs by default.
const zodLocales = {
  name: 'zod-locales',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (a) =>
      a.importer.includes(`${path.sep}zod${path.sep}`)
        ? {
            path: path.join(path.dirname(a.importer), '..', 'locales', 'en-only.js'),
            namespace: 'zod-en',
          }
        : undefined,
    )
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, (a) => ({
      contents: "export { default as en } from './en.js'",
      resolveDir: path.dirname(a.path),
    }))
  },
}

// The small bundle, for the commands that print and exit: the command line alone, with every
// import() left out (none of them is reached by `--version` or `--help`).
const noLazy = {
  name: 'no-lazy',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (a) =>
      a.kind === 'dynamic-import' ? { path: a.path, external: true } : undefined,
    )
  },
}

/**
 * Stores a bundle as the function load() calls, in ASCII (\u escapes; esbuild leaves some
 * characters in regular expressions and comments), so that it is read as latin1 and compiled as
 * it is: UTF-8 decoding and wrapping 2 MB cost about 8 ms a run.
 */
function asFunction(file) {
  const code = readFileSync(file, 'utf8').replace(
    /[^\x00-\x7f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  writeFileSync(file, `(function (${PARAMS}) {${code}\n})`)
}

async function rebuild() {
  const { build } = await import('esbuild')
  const built = Date.now()
  const tmp = path.join(cache, `tmp-${process.pid}`)
  const options = (name, plugins) => ({
    absWorkingDir: root,
    entryPoints: { [name]: 'cli/entry.ts' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Libraries are bundled too (zod, yaml, handlebars, axios): resolving and reading their
    // hundreds of files costs more than running them, and the code cache covers them. ssh2
    // (native bindings) stays outside.
    external: ['ssh2', 'esbuild', 'tsx'],
    // the bundle is run by load() below, which passes the entry's own URL
    define: { 'import.meta.url': '__runbookEntryUrl' },
    outdir: tmp,
    entryNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'silent',
    plugins,
  })
  const [r, small] = await Promise.all([
    build(options('cli', [zodLocales])),
    build(options('light', [noLazy])),
  ])
  const entryOf = (result) =>
    Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === 'cli/entry.ts')?.[0]
  const entryOut = entryOf(r)
  const lightOut = entryOf(small)
  asFunction(path.join(root, entryOut))
  asFunction(path.join(root, lightOut))
  const keep = new Set(['manifest.json'])
  for (const name of readdirSync(tmp)) {
    keep.add(name)
    renameSync(path.join(tmp, name), path.join(cache, name))
  }
  rmSync(tmp, { recursive: true, force: true })
  const m = {
    format: FORMAT,
    entry: path.basename(entryOut),
    light: path.basename(lightOut),
    built,
    // Sources, npm's record of what it installed (a library changes with `npm install`), and
    // this file (how the bundle is built).
    inputs: [
      ...Object.keys(r.metafile.inputs).filter((f) => !/^node_modules\/|^zod-en:/.test(f)),
      'node_modules/.package-lock.json',
      'cli/runbook.cjs',
    ],
  }
  const mtmp = `${manifestFile}.${process.pid}.tmp`
  writeFileSync(mtmp, JSON.stringify(m))
  renameSync(mtmp, manifestFile)
  // Old builds go after a day (a run still going may read one of their code caches).
  for (const name of readdirSync(cache))
    if (
      !keep.has(name) &&
      !name.startsWith(`${m.entry}.`) &&
      !name.startsWith(`${m.light}.`) &&
      statSync(path.join(cache, name)).mtimeMs < built - DAY
    )
      rmSync(path.join(cache, name), { recursive: true, force: true })
  return m
}

// RUNBOOK_TRACE_MODULES=<file>: the run writes there the bundled modules it initialised and the
// libraries it required, one a line (test/cli/entry.test.ts checks what each command loads).
const traceFile = process.env.RUNBOOK_TRACE_MODULES
const INIT = 'return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;'
const REQUIRE =
  'return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;'

/** The bundle's source, with esbuild's module initialisers reporting to `trace` when tracing. */
function source(file, trace) {
  const code = readFileSync(file, 'latin1')
  if (!trace) return code
  // the small bundle has CommonJS modules (commander) only; the large one both kinds
  if (!code.includes(REQUIRE)) throw new Error('no module initialisers')
  return code
    .replace(INIT, `fn && __runbookTrace(__getOwnPropNames(fn)[0]); ${INIT}`)
    .replace(REQUIRE, `mod || __runbookTrace(__getOwnPropNames(cb)[0]); ${REQUIRE}`)
}

/** Runs the bundle; `save` writes the code cache after the command if there was none or V8 refused it. */
function load(file) {
  const loaded = []
  const code = source(file, traceFile ? loaded : undefined)
  const w = weight[argv[0]] ?? 0
  const cacheFile = `${file}.${w}.v8`
  let cached
  try {
    if (!traceFile) cached = readFileSync(cacheFile)
  } catch {
    // the first run of this weight with this bundle
  }
  const script = new vm.Script(code, { filename: file, cachedData: cached })
  const req = traceFile
    ? (id) => {
        if (!isBuiltin(id)) loaded.push(id)
        return require(id)
      }
    : require
  if (traceFile) process.on('exit', () => writeFileSync(traceFile, loaded.join('\n')))
  const mod = { exports: {} }
  script.runInThisContext()(
    mod.exports,
    req,
    mod,
    file,
    path.dirname(file),
    pathToFileURL(path.join(root, 'cli', 'entry.ts')).href,
    (name) => loaded.push(name),
  )
  const save = async () => {
    if (traceFile || (cached && !script.cachedDataRejected)) return
    // The cache holds what this run compiled, and the next runs of its weight read it: a run of
    // a host-only runbook loads no OpenStack or keepalived module, so they are loaded first.
    if (!light) await mod.exports.warm?.().catch(() => undefined)
    const tmp = `${cacheFile}.${process.pid}.tmp`
    try {
      writeFileSync(tmp, script.createCachedData())
      renameSync(tmp, cacheFile)
    } catch {
      // a read-only tree or a full disk: the next run compiles again
      rmSync(tmp, { force: true })
    }
  }
  return { ...mod.exports, save }
}

async function bundled() {
  mkdirSync(cache, { recursive: true })
  const m = fresh() ?? (await rebuild())
  return load(path.join(cache, light ? m.light : m.entry))
}

async function viaTsx() {
  const { register } = await import('tsx/esm/api')
  register()
  return import('./entry.ts')
}

async function main() {
  let entry
  try {
    // the lab imports its TypeScript sources by URL, which code run by vm cannot: it runs via tsx
    entry = process.env.RUNBOOK_NO_BUNDLE || argv[0] === 'lab' ? await viaTsx() : await bundled()
  } catch {
    entry = await viaTsx()
  }
  process.exitCode = await entry.run(argv, { root })
  await entry.save?.()
}

main().catch((e) => {
  // as an uncaught error would: the stack on stderr, exit status 1
  process.exitCode = 1
  console.error(e)
})
