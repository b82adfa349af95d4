/**
 * `runbook lab up | status | down`: the lab cloud as a background daemon (lab/daemon.ts) with
 * its state in a directory (default /var/lib/runbook-lab, or RUNBOOK_LAB_DIR).
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { basicProblems, createNamespaceDriver, hostProblems, hostsStateDir } from './real-hosts.ts'
import { DEFAULT_PORT, DEFAULT_STATE_DIR, labPaths } from './api/paths.ts'
import type { DaemonInfo, LaunchInfo } from './api/paths.ts'
import { writeFileAtomic } from './api/store.ts'
import { buildMirror, DEFAULT_MIRROR_CACHE, DEFAULT_MIRROR_PACKAGES } from './mirror/build.ts'
import type { MirrorBuild } from './mirror/build.ts'
import { DEFAULT_MIRROR_PORT } from './mirror/server.ts'
import { DEFAULT_IMAGE_CACHE, IMAGE_RECIPES, imageStore } from './images/index.ts'
import { describeAccel, kernelAccel, readAccelChoice, type AccelChoice } from './hosts/kvm-probe.ts'

/** Options shared by up, status and down. */
export interface LabOptions {
  /** API port; default RUNBOOK_LAB_PORT or 8780; 0 picks a free one. */
  port?: number
  /** State dir; default RUNBOOK_LAB_DIR or /var/lib/runbook-lab. */
  stateDir?: string
  /** Real hosts (lab/hosts). false is an API-only mode for tests of the API's shapes. */
  withHosts?: boolean
  /** Where human-readable lines go; default stdout. */
  log?: (line: string) => void
  /** The package mirror for the VMs (hosts on only); false turns it off (or RUNBOOK_LAB_MIRROR=0). */
  mirror?: false | LabMirrorOptions
}

/** What the lab's package mirror carries and where. */
export interface LabMirrorOptions {
  /** Packages, with all their dependencies; default RUNBOOK_LAB_MIRROR_PACKAGES (comma-separated) or keepalived, ipvsadm, nginx-light, hello. */
  packages?: string[]
  /** Where downloaded .deb files are kept across labs; default RUNBOOK_LAB_CACHE_DIR or /var/cache/runbook-lab. */
  cacheDir?: string
  /** Port on 198.51.100.1; default RUNBOOK_LAB_MIRROR_PORT or 8781. */
  port?: number
}

/** The package mirror as `labUp` left it. */
export interface LabMirror extends MirrorBuild {
  /** Where VMs fetch from; null when the daemon could not serve it (see lab.log). */
  url: string | null
}

/** What `labUp` did. */
export interface LabUpResult {
  url: string
  pid: number
  stateDir: string
  cloudsYaml: string
  withHosts: boolean
  alreadyRunning: boolean
  /** `export OS_CLIENT_CONFIG_FILE=... OS_CLOUD=lab` */
  exports: string
  /** The package mirror (null: hosts off, or turned off). */
  mirror: LabMirror | null
}

/** A server as `labStatus` reports it. */
export interface LabServer {
  id: string
  name: string
  status: string
  addresses: string[]
}

/** What `labStatus` found. */
export interface LabStatus {
  running: boolean
  /** A daemon that is recorded but gone (killed): `labDown` still cleans up after it. */
  stale: boolean
  pid: number | null
  url: string | null
  withHosts: boolean | null
  stateDir: string
  servers: LabServer[]
  /** The package mirror's URL, when the daemon serves one. */
  mirrorUrl: string | null
  /** KVM or TCG for kernel VMs (k1.*) on this machine, and why; null before the first probe. */
  kernelVms: AccelChoice | null
}

/** What `labDown` did. */
export interface LabDownResult {
  /** A running daemon was stopped (SIGTERM, or SIGKILL after a grace period). */
  stopped: boolean
  /** The hosts' teardown ran. */
  tornDown: boolean
  stateDir: string
}

const DAEMON = fileURLToPath(new URL('./daemon.ts', import.meta.url))
const REPO = fileURLToPath(new URL('..', import.meta.url))

function resolve(opts: LabOptions): {
  stateDir: string
  port: number
  log: (line: string) => void
} {
  const envPort = process.env['RUNBOOK_LAB_PORT']
  return {
    stateDir: opts.stateDir ?? process.env['RUNBOOK_LAB_DIR'] ?? DEFAULT_STATE_DIR,
    port: opts.port ?? (envPort !== undefined && envPort !== '' ? Number(envPort) : DEFAULT_PORT),
    log: opts.log ?? ((line) => process.stdout.write(`${line}\n`)),
  }
}

function mirrorOptions(opts: LabOptions): Required<LabMirrorOptions> | null {
  if (
    opts.mirror === false ||
    (opts.mirror === undefined && process.env['RUNBOOK_LAB_MIRROR'] === '0')
  )
    return null
  const m = opts.mirror ?? {}
  const envPackages = process.env['RUNBOOK_LAB_MIRROR_PACKAGES']
  const envPort = process.env['RUNBOOK_LAB_MIRROR_PORT']
  const port =
    m.port ?? (envPort !== undefined && envPort !== '' ? Number(envPort) : DEFAULT_MIRROR_PORT)
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`runbook lab up: the mirror port ${String(port)} is not a port`)
  return {
    packages:
      m.packages ??
      (envPackages !== undefined && envPackages.trim() !== ''
        ? envPackages.split(/[\s,]+/).filter((p) => p !== '')
        : [...DEFAULT_MIRROR_PACKAGES]),
    cacheDir: m.cacheDir ?? (process.env['RUNBOOK_LAB_CACHE_DIR'] || DEFAULT_MIRROR_CACHE),
    port,
  }
}

function mirrorLine(info: DaemonInfo, mirror: MirrorBuild | null): string | null {
  if (mirror === null) return null
  if (info.mirrorUrl === null || info.mirrorUrl === undefined)
    return `package mirror: NOT SERVED (${info.mirrorError ?? 'the daemon runs without it; `runbook lab down` and up again'}); apt in new VMs will fail fast`
  return `package mirror for the VMs: ${info.mirrorUrl} (${mirror.empty ? 'EMPTY' : `${mirror.packages} packages`})`
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T
  } catch {
    return null
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v3`, { signal: AbortSignal.timeout(2000) })
    return res.status === 200
  } catch {
    return false
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function exportsLine(cloudsYaml: string): string {
  return `export OS_CLIENT_CONFIG_FILE=${cloudsYaml} OS_CLOUD=lab`
}

/**
 * Start the lab (idempotent): check the machine, start the API daemon detached, wait until it
 * answers. The daemon seeds the cloud (demo project, mynetwork/mysubnet, public, myrouter,
 * flavors, images, security groups) and writes clouds.yaml into the state dir. With hosts, it first
 * builds or refreshes the VMs' package mirror (lab/mirror) from the .deb cache, downloading what
 * the cache lacks; offline, the lab still comes up and says the mirror is empty or incomplete.
 * @example const lab = await labUp({}); console.log(lab.exports)
 */
export async function labUp(opts: LabOptions = {}): Promise<LabUpResult> {
  const { stateDir, port, log } = resolve(opts)
  const withHosts = opts.withHosts ?? true
  const paths = labPaths(stateDir)
  if (withHosts) {
    const problems = [...basicProblems(), ...(await hostProblems())]
    if (problems.length > 0) {
      throw new Error(
        `runbook lab up: this machine cannot run the lab:\n${[...new Set(problems)].map((p) => `  - ${p}`).join('\n')}`,
      )
    }
  }
  const mirrorOpts = withHosts ? mirrorOptions(opts) : null
  let mirror: MirrorBuild | null = null
  if (mirrorOpts !== null) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    mirror = await buildMirror({
      dir: paths.mirror,
      cacheDir: mirrorOpts.cacheDir,
      packages: mirrorOpts.packages,
      log,
    })
  }
  const withUrl = (info: DaemonInfo): LabMirror | null =>
    mirror === null ? null : { ...mirror, url: info.mirrorUrl ?? null }
  const running = readJson<DaemonInfo>(paths.daemon)
  if (running !== null && alive(running.pid) && (await answers(running.url))) {
    if (running.withHosts !== withHosts) {
      throw new Error(
        `runbook lab up: a lab is already running at ${running.url} with hosts ${running.withHosts ? 'on' : 'off'}; run \`runbook lab down\` first`,
      )
    }
    log(`runbook lab is already running at ${running.url} (pid ${running.pid})`)
    const line = mirrorLine(running, mirror)
    if (line !== null) log(line)
    log(exportsLine(running.cloudsYaml))
    return {
      url: running.url,
      pid: running.pid,
      stateDir,
      cloudsYaml: running.cloudsYaml,
      withHosts,
      alreadyRunning: true,
      exports: exportsLine(running.cloudsYaml),
      mirror: withUrl(running),
    }
  }
  const launch = readJson<LaunchInfo>(paths.launch)
  if (launch !== null && alive(launch.pid) && launch.pid !== running?.pid) {
    throw new Error(
      `runbook lab up: a lab daemon (pid ${launch.pid}) is starting or hung; run \`runbook lab down\` first`,
    )
  }
  await rm(paths.daemon, { force: true })

  mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const logFd = openSync(paths.log, 'a', 0o600)
  const args = [
    '--import',
    import.meta.resolve('tsx'),
    DAEMON,
    '--state-dir',
    stateDir,
    '--port',
    String(port),
  ]
  if (!withHosts) args.push('--no-hosts')
  if (mirrorOpts !== null) args.push('--mirror-port', String(mirrorOpts.port))
  const child = spawn(process.execPath, args, {
    cwd: REPO,
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: process.env,
  })
  closeSync(logFd)
  const pid = child.pid
  if (pid === undefined) throw new Error('runbook lab up: could not start the API daemon')
  let exited: number | string | null = null
  child.on('exit', (code, signal) => {
    exited = code ?? signal ?? 'unknown'
  })
  child.unref()
  const info: LaunchInfo = { pid, port, withHosts, startedAt: new Date().toISOString() }
  await writeFileAtomic(paths.launch, `${JSON.stringify(info, null, 2)}\n`, 0o644)

  const deadline = Date.now() + 120_000
  for (;;) {
    if (exited !== null)
      throw new Error(
        `runbook lab up: the API daemon exited (${String(exited)}). ${paths.log}:\n${tail(paths.log)}`,
      )
    const ready = readJson<DaemonInfo>(paths.daemon)
    if (ready !== null && ready.pid === pid && (await answers(ready.url))) {
      log(
        `runbook lab is up at ${ready.url} (pid ${pid}, hosts ${withHosts ? 'on' : 'off'}, state in ${stateDir})`,
      )
      const line = mirrorLine(ready, mirror)
      if (line !== null) log(line)
      log(exportsLine(ready.cloudsYaml))
      return {
        url: ready.url,
        pid,
        stateDir,
        cloudsYaml: ready.cloudsYaml,
        withHosts,
        alreadyRunning: false,
        exports: exportsLine(ready.cloudsYaml),
        mirror: withUrl(ready),
      }
    }
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL')
      throw new Error(
        `runbook lab up: the API daemon did not answer within 120 s. ${paths.log}:\n${tail(paths.log)}`,
      )
    }
    await sleep(50)
  }
}

/**
 * The Keystone request for a project-scoped token from a clouds.yaml `auth` block (password).
 * @example await fetch(`${url}/v3/auth/tokens`, { method: 'POST', body: JSON.stringify(passwordAuthRequest(auth)) })
 */
export function passwordAuthRequest(auth: Record<string, unknown>): Record<string, unknown> {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: {
          user: { name: auth['username'], domain: { name: 'Default' }, password: auth['password'] },
        },
      },
      scope: { project: { name: auth['project_name'], domain: { name: 'Default' } } },
    },
  }
}

interface CloudsFile {
  clouds?: Record<string, { auth?: Record<string, string> }>
}

async function listServers(url: string, cloudsYaml: string): Promise<LabServer[]> {
  const doc = parse(readFileSync(cloudsYaml, 'utf8')) as CloudsFile
  const auth = doc.clouds?.['lab']?.auth
  if (auth === undefined) return []
  const tokenRes = await fetch(`${url}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(passwordAuthRequest(auth)),
  })
  const token = tokenRes.headers.get('x-subject-token')
  if (token === null) return []
  const res = await fetch(`${url}/compute/v2.1/servers/detail`, {
    headers: { 'X-Auth-Token': token },
  })
  const body = (await res.json()) as {
    servers?: {
      id: string
      name: string
      status: string
      addresses: Record<string, { addr: string }[]>
    }[]
  }
  return (body.servers ?? []).map((s) => ({
    id: s.id,
    name: s.name,
    status: s.status,
    addresses: Object.entries(s.addresses).flatMap(([net, list]) =>
      list.map((a) => `${net}=${a.addr}`),
    ),
  }))
}

/**
 * Report whether the lab runs, where, and its servers.
 * @example const st = await labStatus({}); if (!st.running) ...
 */
export async function labStatus(opts: LabOptions = {}): Promise<LabStatus> {
  const { stateDir, log } = resolve(opts)
  const paths = labPaths(stateDir)
  const info = readJson<DaemonInfo>(paths.daemon)
  const launch = readJson<LaunchInfo>(paths.launch)
  const pid = info?.pid ?? launch?.pid ?? null
  const isAlive = pid !== null && alive(pid)
  const running = info !== null && isAlive && (await answers(info.url))
  const status: LabStatus = {
    running,
    stale: pid !== null && !isAlive,
    pid,
    url: info?.url ?? null,
    withHosts: info?.withHosts ?? launch?.withHosts ?? null,
    stateDir,
    servers: [],
    mirrorUrl: running ? (info?.mirrorUrl ?? null) : null,
    kernelVms: await readAccelChoice(imageCacheDir()),
  }
  if (running && info !== null) {
    status.servers = await listServers(info.url, info.cloudsYaml).catch(() => [])
    log(
      `runbook lab: running at ${info.url} (pid ${info.pid}, hosts ${info.withHosts ? 'on' : 'off'}, state in ${stateDir})`,
    )
    log(exportsLine(info.cloudsYaml))
    if (status.mirrorUrl !== null) log(`package mirror: ${status.mirrorUrl}`)
    if (info.withHosts)
      log(
        status.kernelVms === null
          ? 'kernel VMs (k1.*): KVM or TCG not decided yet (a probe at the first k1 server decides)'
          : describeAccel(status.kernelVms),
      )
    if (status.servers.length === 0) log('servers: none')
    else {
      log('servers:')
      const width = Math.max(...status.servers.map((s) => s.name.length))
      for (const s of status.servers)
        log(`  ${s.name.padEnd(width)}  ${s.status.padEnd(7)}  ${s.addresses.join(', ')}`)
    }
  } else if (status.stale) {
    log(
      `runbook lab: not running (daemon pid ${String(pid)} is gone; \`runbook lab down\` cleans up after it)`,
    )
  } else if (isAlive) {
    log(`runbook lab: starting or not answering (pid ${String(pid)})`)
  } else {
    log('runbook lab: not running')
  }
  return status
}

/**
 * Stop the daemon (SIGTERM, SIGKILL after 15 s), tear down everything the hosts made (with a fresh
 * driver, so this works after the daemon was killed), and forget the cloud's state unless
 * `keepState` (then the next `up` brings the same cloud back).
 * @example await labDown({})
 */
export async function labDown(
  opts: LabOptions & { keepState?: boolean } = {},
): Promise<LabDownResult> {
  const { stateDir, log } = resolve(opts)
  const paths = labPaths(stateDir)
  const info = readJson<DaemonInfo>(paths.daemon)
  const launch = readJson<LaunchInfo>(paths.launch)
  let stopped = false
  for (const pid of new Set([info?.pid, launch?.pid].filter((p): p is number => p !== undefined))) {
    if (!alive(pid)) continue
    process.kill(pid, 'SIGTERM')
    const deadline = Date.now() + 15_000
    while (alive(pid) && Date.now() < deadline) await sleep(50)
    if (alive(pid)) {
      process.kill(pid, 'SIGKILL')
      while (alive(pid)) await sleep(20)
    }
    stopped = true
  }
  // Without a record of this lab, tear down only if its hosts left their directory behind.
  const withHosts =
    opts.withHosts ?? info?.withHosts ?? launch?.withHosts ?? existsSync(hostsStateDir(stateDir))
  let tornDown = false
  if (withHosts) {
    await createNamespaceDriver({ stateDir: hostsStateDir(stateDir) }).teardown()
    tornDown = true
  }
  const files = [paths.daemon, paths.launch]
  if (opts.keepState !== true) files.push(paths.state, paths.clouds)
  for (const f of files) await rm(f, { force: true })
  // the mirror's copy is rebuilt from the cache at every up (the cache itself stays)
  await rm(dirname(paths.mirror), { recursive: true, force: true })
  if (existsSync(stateDir))
    log(
      `runbook lab: down${stopped ? ' (daemon stopped)' : ''}${tornDown ? ', hosts removed' : ''}`,
    )
  return { stopped, tornDown, stateDir }
}

/**
 * Builds every image of the lab and its kernel VM disk now, so no server waits for a build, and
 * decides KVM or TCG for kernel VMs (`runbook lab images build`; cached: nothing to do when the
 * recipes did not change and the machine was probed).
 * @example await buildLabImages()
 */
export async function buildLabImages(opts: { log?: (line: string) => void } = {}): Promise<void> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  const store = imageStore({ log })
  for (const r of IMAGE_RECIPES) {
    const img = await store.root(r.key)
    const k = await store.kernel(r.key)
    log(`image ${r.name}: ${img.root} (kernel VMs: ${k.base}, kernel ${k.release})`)
    // the same kernel for every image: one probe decides KVM or TCG for all kernel VMs
    if (r === IMAGE_RECIPES[0])
      await kernelAccel({ imageCacheDir: imageCacheDir(), kernel: k, log })
  }
}

function imageCacheDir(): string {
  return process.env['RUNBOOK_LAB_IMAGE_DIR'] ?? DEFAULT_IMAGE_CACHE
}
