/**
 * Builds the lab's images with `debootstrap` from Debian's archive into a cache that outlives the
 * lab (`lab down` leaves it): `<cache>/images/<key>-<hash>/root`. A build goes to a temporary
 * directory and is renamed into place when complete, so an interrupted build is never used.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from '../hosts/exec.ts'
import { recipeHash, type ImageRecipe } from './recipe.ts'

/** Where built images are kept across labs. */
export const DEFAULT_IMAGE_CACHE = '/var/cache/runbook-lab/images'

/** A built image on disk. */
export interface BuiltImage {
  recipe: ImageRecipe
  hash: string
  /** `<cache>/<key>-<hash>` */
  dir: string
  /** The root filesystem (the overlay's lower layer for namespace VMs). */
  root: string
  /** Whether this call built it (false: it came from the cache). */
  built: boolean
}

/** Options of {@link ensureImage}. */
export interface ImageBuildOptions {
  cacheDir?: string
  /** Progress lines. */
  log?: (line: string) => void
  /** Debian mirror for debootstrap; default the one the machine's apt uses. */
  mirror?: string
}

/** The Debian mirror the machine's apt is configured with (debootstrap fetches from it). */
export function machineDebianMirror(): string {
  const env = process.env['RUNBOOK_LAB_DEBIAN_MIRROR']
  if (env !== undefined && env !== '') return env
  const files: string[] = []
  const dir = '/etc/apt/sources.list.d'
  if (existsSync(dir))
    for (const f of readdirSync(dir)) if (/\.(sources|list)$/.test(f)) files.push(join(dir, f))
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list')
  for (const f of files) {
    const text = readFileSync(f, 'utf8')
    for (const m of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(https?:\/\/\S+)/gm)) {
      const url = m[1] ?? ''
      if (!/security/.test(url)) return url.replace(/\/$/, '')
    }
  }
  return 'http://deb.debian.org/debian'
}

/** Where an image of this recipe lives in the cache (built or not). */
export function imagePaths(cacheDir: string, r: ImageRecipe): { dir: string; root: string } {
  const dir = join(cacheDir, `${r.key}-${recipeHash(r)}`)
  return { dir, root: join(dir, 'root') }
}

/** Runs a long command, calling `onLine` with each line it prints. */
function runStreaming(
  cmd: string,
  args: string[],
  onLine: (line: string) => void,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const tail: string[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    const take = (b: Buffer) => {
      for (const line of b.toString('utf8').split('\n')) {
        if (line.trim() === '') continue
        tail.push(line)
        if (tail.length > 20) tail.shift()
        onLine(line)
      }
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else
        reject(
          new Error(
            `\`${cmd} ${args.join(' ')}\` failed (${signal ?? `exit ${String(code)}`}):\n${tail.join('\n')}`,
          ),
        )
    })
  })
}

/** Makes the fresh root a cloud image: no host keys, no machine id, no apt lists or caches. */
async function finishRoot(root: string, r: ImageRecipe, hash: string): Promise<void> {
  for (const f of await readdir(join(root, 'etc/ssh')))
    if (f.startsWith('ssh_host_')) await rm(join(root, 'etc/ssh', f))
  await writeFile(join(root, 'etc/hostname'), 'localhost\n')
  await writeFile(join(root, 'etc/machine-id'), '')
  await writeFile(join(root, 'etc/resolv.conf'), '')
  await rm(join(root, 'var/lib/apt/lists'), { recursive: true, force: true })
  await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true })
  await rm(join(root, 'var/cache/apt/archives'), { recursive: true, force: true })
  await mkdir(join(root, 'var/cache/apt/archives/partial'), { recursive: true })
  await rm(join(root, 'var/log/bootstrap.log'), { force: true })
  await writeFile(
    join(root, 'etc/runbook-lab-image'),
    `${JSON.stringify({ name: r.name, key: r.key, hash, builtAt: new Date().toISOString() })}\n`,
  )
}

/**
 * The image of a recipe, built now if the cache does not have it (about a minute: debootstrap
 * downloads and unpacks ~100 packages). Prints a progress line every 10 s while building.
 * @example const img = await ensureImage(DEBIAN_12, { log: console.log }); img.root
 */
export async function ensureImage(
  r: ImageRecipe,
  opts: ImageBuildOptions = {},
): Promise<BuiltImage> {
  const cacheDir = opts.cacheDir ?? process.env['RUNBOOK_LAB_IMAGE_DIR'] ?? DEFAULT_IMAGE_CACHE
  const hash = recipeHash(r)
  const { dir, root } = imagePaths(cacheDir, r)
  if (existsSync(join(root, 'etc/runbook-lab-image')))
    return { recipe: r, hash, dir, root, built: false }
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  await mkdir(cacheDir, { recursive: true, mode: 0o755 })
  const tmp = join(cacheDir, `.build-${r.key}-${hash}-${process.pid}`)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  const mirror = opts.mirror ?? machineDebianMirror()
  const started = Date.now()
  let last = ''
  let steps = 0
  log(
    `image ${r.name}: building (debootstrap --variant=${r.variant} ${r.suite} from ${mirror}, about a minute)`,
  )
  const ticker = setInterval(() => {
    log(
      `image ${r.name}: ${Math.round((Date.now() - started) / 1000)} s, ${steps} steps, ${last.slice(0, 100)}`,
    )
  }, 10_000)
  try {
    await runStreaming(
      'debootstrap',
      [
        `--variant=${r.variant}`,
        `--include=${r.packages.join(',')}`,
        r.suite,
        join(tmp, 'root'),
        mirror,
      ],
      (line) => {
        if (line.startsWith('I: ')) {
          steps++
          last = line.slice(3)
        }
      },
      15 * 60_000,
    )
    await finishRoot(join(tmp, 'root'), r, hash)
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
    // older builds of this image (another recipe hash) are never used again
    for (const f of await readdir(cacheDir))
      if (f.startsWith(`${r.key}-`) && join(cacheDir, f) !== dir)
        await rm(join(cacheDir, f), { recursive: true, force: true })
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw new Error(
      `image ${r.name}: the build failed: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    )
  } finally {
    clearInterval(ticker)
  }
  const { stdout } = await run('du', ['-sm', root], { allowFail: true })
  log(
    `image ${r.name}: built in ${Math.round((Date.now() - started) / 1000)} s (${stdout.split('\t')[0] ?? '?'} MB) in ${dir}`,
  )
  return { recipe: r, hash, dir, root, built: true }
}
