/**
 * Builds the lab's package mirror: a flat Debian repository (`Packages`, `Packages.gz`, `Release`,
 * `pool/*.deb`) in the lab's state dir, for the packages asked for and everything they depend on.
 * The `.deb` files come from `apt-get download` on the machine into a cache that outlives the lab,
 * so only the first build needs the network. Nothing of the machine's apt configuration changes.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import {
  copyFile,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import {
  chooseVersion,
  controlField,
  isPackageName,
  packagesIndex,
  packagesStanza,
  parsePolicy,
  parseRecursiveDepends,
  poolFileName,
  releaseFile,
  type DebInfo,
  type IndexFile,
  type Selection,
} from './apt-index.ts'

/** What the mirror carries when nobody says otherwise: the seeds' packages, and `hello`, which the machine does not have (so a test can prove a real install). */
export const DEFAULT_MIRROR_PACKAGES: readonly string[] = [
  'keepalived',
  'ipvsadm',
  'nginx-light',
  'hello',
]
/** Where downloaded `.deb` files are kept between labs (`lab down` leaves it). */
export const DEFAULT_MIRROR_CACHE = '/var/cache/runbook-lab'

/** How apt resolves a package list into the exact files to carry (injectable for tests). */
export type Resolver = (
  packages: string[],
  cacheDir: string,
) => Promise<{ selections: Selection[]; unknown: string[] }>
/** How missing files are fetched into a directory (injectable for tests). */
export type Downloader = (selections: Selection[], dir: string) => Promise<void>

/** Options of {@link buildMirror}. */
export interface MirrorBuildOptions {
  /** The repository's root (served as `http://198.51.100.1:PORT/debian/`). */
  dir: string
  /** The cache of `.deb` files and resolutions (default /var/cache/runbook-lab). */
  cacheDir?: string
  /** Packages to carry, with all their dependencies (default {@link DEFAULT_MIRROR_PACKAGES}). */
  packages?: readonly string[]
  log?: (line: string) => void
  resolve?: Resolver
  download?: Downloader
}

/** What a build produced. */
export interface MirrorBuild {
  dir: string
  cacheDir: string
  /** Package files in the mirror. */
  packages: number
  /** Files fetched by this build. */
  downloaded: number
  /** Wanted `name=version` the mirror does not have (download failed, offline). */
  missing: string[]
  /** Names apt does not know on this machine. */
  unknown: string[]
  /** True when the mirror has no package at all. */
  empty: boolean
  /** Why the download failed, when it did. */
  downloadError: string | null
  ms: number
}

function exec(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    // the caller's environment (a proxy apt should use), parsed in the C locale
    const env = { ...process.env, LANG: 'C', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' }
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        resolve({ stdout, stderr: stderr || (err?.message ?? ''), code })
      },
    )
  })
}

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  await writeFile(tmp, data)
  await rename(tmp, file)
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown
  } catch {
    return null
  }
}

/** Size and mtime of apt's inputs on the machine: a resolution is reused until one of them changes. */
async function aptInputs(): Promise<string> {
  const parts: string[] = []
  const add = async (f: string) => {
    const s = await stat(f).catch(() => null)
    parts.push(`${f} ${s?.size ?? '-'} ${s?.mtimeMs ?? '-'}`)
  }
  await add('/var/lib/dpkg/status')
  for (const f of (await readdir('/var/lib/apt/lists').catch(() => [])).sort())
    if (f !== 'lock' && f !== 'partial') await add(join('/var/lib/apt/lists', f))
  return parts.join('\n')
}

const policyOf = async (names: string[]) =>
  parsePolicy((await exec('apt-cache', ['policy', ...names])).stdout)

/**
 * Resolves with the machine's apt (no network): the dependency closure (Depends and Pre-Depends,
 * alternatives included), then one downloadable version each. Cached under `cacheDir` until the
 * request or the machine's apt state changes, as it costs a few seconds.
 */
export const aptResolver: Resolver = async (packages, cacheDir) => {
  const key = createHash('sha256')
    .update(JSON.stringify([...packages].sort()))
    .update(await aptInputs())
    .digest('hex')
  const cacheFile = join(cacheDir, 'resolved.json')
  const cached = (await readJson(cacheFile)) as {
    key?: string
    selections?: Selection[]
    unknown?: string[]
  } | null
  if (cached?.key === key && Array.isArray(cached.selections) && Array.isArray(cached.unknown))
    return { selections: cached.selections, unknown: cached.unknown }

  const asked = await policyOf(packages)
  const known = packages.filter((p) => asked.has(p) && (asked.get(p)?.versions.length ?? 0) > 0)
  const unknown = packages.filter((p) => !known.includes(p))
  let closure: string[] = []
  if (known.length > 0) {
    const deps = await exec('apt-cache', [
      'depends',
      '--recurse',
      '--no-recommends',
      '--no-suggests',
      '--no-conflicts',
      '--no-breaks',
      '--no-replaces',
      '--no-enhances',
      ...known,
    ])
    if (deps.code !== 0) throw new Error(`apt-cache depends failed: ${deps.stderr.trim()}`)
    closure = parseRecursiveDepends(deps.stdout)
  }
  const policy = closure.length > 0 ? await policyOf(closure) : new Map()
  const selections: Selection[] = []
  for (const name of closure) {
    const p = policy.get(name)
    const version = p === undefined ? null : chooseVersion(p)
    if (version !== null) selections.push({ name, version })
  }
  await writeAtomic(cacheFile, `${JSON.stringify({ key, selections, unknown }, null, 2)}\n`)
  return { selections, unknown }
}

/**
 * `apt-get download name=version...` into a fresh directory, then moves the complete files into
 * `dir`, so an interrupted download never leaves a truncated file in the cache. Fails fast when
 * the machine is offline (no retries, short timeouts).
 */
export const aptDownloader: Downloader = async (selections, dir) => {
  // what a killed download left behind (an hour is far longer than any download takes)
  for (const f of await readdir(dir)) {
    const s = f.startsWith('.incoming-') ? await stat(join(dir, f)).catch(() => null) : null
    if (s !== null && Date.now() - s.mtimeMs > 3_600_000)
      await rm(join(dir, f), { recursive: true, force: true })
  }
  const incoming = await mkdtemp(join(dir, '.incoming-'))
  try {
    const r = await exec(
      'apt-get',
      [
        'download',
        '-q',
        '-o',
        'APT::Sandbox::User=root',
        '-o',
        'Acquire::Retries=0',
        '-o',
        'Acquire::http::Timeout=15',
        '-o',
        'Acquire::https::Timeout=15',
        ...selections.map((s) => `${s.name}=${s.version}`),
      ],
      { cwd: incoming, timeoutMs: 15 * 60_000 },
    )
    for (const f of await readdir(incoming)) {
      if (!f.endsWith('.deb')) continue
      if ((await exec('dpkg-deb', ['--info', join(incoming, f)])).code === 0)
        await rename(join(incoming, f), join(dir, f))
    }
    if (r.code !== 0) {
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('E: '))
      const first = (errors[0] ?? r.stderr.trim().split('\n').pop() ?? '')
        .replace(/\s+/g, ' ')
        .trim()
      throw new Error(
        `${first || `apt-get download exited ${r.code}`}${errors.length > 1 ? ` (and ${errors.length - 1} more errors)` : ''}`,
      )
    }
  } finally {
    await rm(incoming, { recursive: true, force: true })
  }
}

function hashFile(file: string): Promise<{ md5: string; sha256: string }> {
  return new Promise((resolve, reject) => {
    const md5 = createHash('md5')
    const sha256 = createHash('sha256')
    createReadStream(file)
      .on('data', (b) => {
        md5.update(b)
        sha256.update(b)
      })
      .on('end', () => resolve({ md5: md5.digest('hex'), sha256: sha256.digest('hex') }))
      .on('error', reject)
  })
}

type DebIndex = Record<string, DebInfo & { mtimeMs: number }>

/**
 * Reads every `.deb` of `debsDir` (control paragraph, size, checksums), reusing what
 * `<cacheDir>/debs.json` remembers for files whose size and mtime did not change.
 * @example const debs = await indexDebs('/var/cache/runbook-lab/debs', '/var/cache/runbook-lab')
 */
export async function indexDebs(debsDir: string, cacheDir: string): Promise<Map<string, DebInfo>> {
  const indexFile = join(cacheDir, 'debs.json')
  const old = ((await readJson(indexFile)) ?? {}) as DebIndex
  const next: DebIndex = {}
  for (const f of (await readdir(debsDir)).filter((n) => n.endsWith('.deb')).sort()) {
    const path = join(debsDir, f)
    const s = await stat(path)
    const prev = old[f]
    if (prev !== undefined && prev.size === s.size && prev.mtimeMs === s.mtimeMs) {
      next[f] = prev
      continue
    }
    const ctl = await exec('dpkg-deb', ['-f', path])
    if (ctl.code !== 0) continue
    next[f] = { control: ctl.stdout, size: s.size, mtimeMs: s.mtimeMs, ...(await hashFile(path)) }
  }
  if (JSON.stringify(old) !== JSON.stringify(next))
    await writeAtomic(indexFile, `${JSON.stringify(next)}\n`)
  return new Map(Object.entries(next))
}

function matches(info: DebInfo, sel: Selection): boolean {
  const [name, arch] = sel.name.split(':')
  const a = controlField(info.control, 'Architecture')
  return (
    controlField(info.control, 'Package') === name &&
    controlField(info.control, 'Version') === sel.version &&
    (arch === undefined || a === arch || a === 'all')
  )
}

/** Puts `src` at `dest` as a hard link (the cache and the state dir share a filesystem), else a copy. */
async function place(src: string, dest: string, size: number): Promise<void> {
  const [a, b] = await Promise.all([stat(src), stat(dest).catch(() => null)])
  if (b !== null && b.ino === a.ino && b.dev === a.dev) return
  if (b !== null && b.size === size) return
  await unlink(dest).catch(() => undefined)
  await link(src, dest).catch(() => copyFile(src, dest))
}

/**
 * Writes the repository at `dir` from the cached files: links the `.deb`s into `pool/`, then the
 * indexes atomically (a VM running `apt-get update` meanwhile sees the old or the new index), then
 * drops pool files no longer listed.
 * @example await publishMirror('/var/lib/runbook-lab/mirror/debian', '/var/cache/runbook-lab/debs', debs)
 */
export async function publishMirror(
  dir: string,
  debsDir: string,
  debs: [file: string, info: DebInfo][],
): Promise<void> {
  const pool = join(dir, 'pool')
  await mkdir(pool, { recursive: true, mode: 0o755 })
  const stanzas: string[] = []
  const keep = new Set<string>()
  for (const [file, info] of debs) {
    const name = controlField(info.control, 'Package') ?? ''
    const version = controlField(info.control, 'Version') ?? ''
    const arch = controlField(info.control, 'Architecture') ?? ''
    const poolName = poolFileName(name, version, arch)
    if (keep.has(poolName)) continue
    keep.add(poolName)
    await place(join(debsDir, file), join(pool, poolName), info.size)
    stanzas.push(packagesStanza(info.control, `pool/${poolName}`, info))
  }
  const packages = Buffer.from(packagesIndex(stanzas))
  const packagesGz = gzipSync(packages, { level: 9 })
  const files: IndexFile[] = [
    { path: 'Packages', size: packages.length, ...digest(packages) },
    { path: 'Packages.gz', size: packagesGz.length, ...digest(packagesGz) },
  ]
  await writeAtomic(join(dir, 'Packages'), packages)
  await writeAtomic(join(dir, 'Packages.gz'), packagesGz)
  await writeAtomic(join(dir, 'Release'), releaseFile(files, new Date()))
  for (const f of await readdir(pool)) if (!keep.has(f)) await rm(join(pool, f), { force: true })
}

function digest(b: Buffer): { md5: string; sha256: string } {
  return {
    md5: createHash('md5').update(b).digest('hex'),
    sha256: createHash('sha256').update(b).digest('hex'),
  }
}

/**
 * Builds or refreshes the mirror: resolves the packages and their dependencies with the machine's
 * apt, downloads what the cache lacks, and publishes the repository. Never fails for want of a
 * network: it then serves what the cache has (possibly nothing) and says so.
 * @example const m = await buildMirror({ dir: '/var/lib/runbook-lab/mirror/debian' }); if (m.empty) ...
 */
export async function buildMirror(opts: MirrorBuildOptions): Promise<MirrorBuild> {
  const t0 = Date.now()
  const log = opts.log ?? (() => undefined)
  const cacheDir = opts.cacheDir ?? DEFAULT_MIRROR_CACHE
  const packages = [...(opts.packages ?? DEFAULT_MIRROR_PACKAGES)]
  const bad = packages.filter((p) => !isPackageName(p))
  if (bad.length > 0) throw new Error(`package mirror: not package names: ${bad.join(', ')}`)
  const debsDir = join(cacheDir, 'debs')
  await mkdir(debsDir, { recursive: true, mode: 0o755 })

  let selections: Selection[] = []
  let unknown: string[] = []
  try {
    ;({ selections, unknown } = await (opts.resolve ?? aptResolver)(packages, cacheDir))
  } catch (e) {
    log(
      `package mirror: cannot resolve ${packages.join(', ')} with apt on this machine: ${e instanceof Error ? e.message : String(e)}`,
    )
  }
  if (unknown.length > 0)
    log(`package mirror: apt on this machine does not know ${unknown.join(', ')}; left out`)

  let debs = await indexDebs(debsDir, cacheDir)
  const find = (sel: Selection) => [...debs].find(([, info]) => matches(info, sel))
  const lacking = selections.filter((s) => find(s) === undefined)
  let downloaded = 0
  let downloadError: string | null = null
  if (lacking.length > 0) {
    const t1 = Date.now()
    log(
      `package mirror: downloading ${lacking.length} package(s) into ${debsDir} (apt-get download)...`,
    )
    try {
      await (opts.download ?? aptDownloader)(lacking, debsDir)
    } catch (e) {
      downloadError = e instanceof Error ? e.message : String(e)
    }
    const before = debs.size
    debs = await indexDebs(debsDir, cacheDir)
    downloaded = Math.max(0, debs.size - before)
    if (downloadError !== null)
      log(`package mirror: the download failed (offline?): ${downloadError}`)
    else
      log(
        `package mirror: downloaded ${downloaded} file(s) in ${((Date.now() - t1) / 1000).toFixed(1)} s`,
      )
  }
  const chosen: [string, DebInfo][] = []
  const missing: string[] = []
  for (const sel of selections) {
    const hit = find(sel)
    if (hit === undefined) missing.push(`${sel.name}=${sel.version}`)
    else chosen.push(hit)
  }
  await publishMirror(opts.dir, debsDir, chosen)
  const ms = Date.now() - t0
  const result: MirrorBuild = {
    dir: opts.dir,
    cacheDir,
    packages: new Set(chosen.map(([f]) => f)).size,
    downloaded,
    missing,
    unknown,
    empty: chosen.length === 0,
    downloadError,
    ms,
  }
  if (result.empty) {
    log(
      `package mirror: EMPTY. No package could be fetched and ${debsDir} has none of ${packages.join(', ')}. ` +
        'apt-get update works in the VMs, but every install fails; run `runbook lab up` again once this machine reaches its apt sources.',
    )
  } else {
    log(
      `package mirror: ${result.packages} packages (${packages.join(', ')} and their dependencies) in ${opts.dir}, built in ${(ms / 1000).toFixed(1)} s`,
    )
    if (missing.length > 0)
      log(
        `package mirror: INCOMPLETE, ${missing.length} package(s) missing: ${missing.slice(0, 8).join(' ')}${missing.length > 8 ? ' ...' : ''}`,
      )
  }
  return result
}
