/**
 * `labUp` / `labStatus` / `labDown` with the real daemon (hosts off, so it runs beside other
 * labs): idempotent up, status, a daemon killed with SIGKILL (status says so, up brings the same
 * cloud back, down cleans up), and a clear refusal without root.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { processAlive as alive } from '../../engine/connection/local.ts'
import { labDown, labStatus, labUp } from '../../lab/index.ts'
import { labLeftovers } from './lab-hosts/fixture.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const HOSTS = process.env['RUNBOOK_LAB_E2E_HOSTS'] !== '0' && process.getuid?.() === 0

async function demoToken(url: string, cloudsYaml: string): Promise<string> {
  const text = readFileSync(cloudsYaml, 'utf8')
  const password = /password: (\S+)/.exec(text)?.[1] ?? ''
  const auth = await fetch(`${url}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'demo', domain: { name: 'Default' }, password } },
        },
        scope: { project: { name: 'demo', domain: { name: 'Default' } } },
      },
    }),
  })
  return auth.headers.get('x-subject-token') ?? ''
}

async function portIds(url: string, cloudsYaml: string): Promise<string[]> {
  const token = await demoToken(url, cloudsYaml)
  const res = await fetch(`${url}/network/v2.0/ports?name=kept`, {
    headers: { 'X-Auth-Token': token },
  })
  const body = (await res.json()) as { ports: { id: string }[] }
  return body.ports.map((p) => p.id)
}

async function createPort(url: string, cloudsYaml: string): Promise<void> {
  const token = await demoToken(url, cloudsYaml)
  const nets = (await (
    await fetch(`${url}/network/v2.0/networks?name=mynetwork`, {
      headers: { 'X-Auth-Token': token },
    })
  ).json()) as { networks: { id: string }[] }
  const res = await fetch(`${url}/network/v2.0/ports`, {
    method: 'POST',
    headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ port: { network_id: nets.networks[0]?.id, name: 'kept' } }),
  })
  expect(res.status).toBe(201)
}

describe('lab daemon: up, status, down', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-daemon-'))
  const stateDir = join(work, 'state')
  const quiet = { log: () => undefined }

  afterAll(async () => {
    await labDown({ stateDir, withHosts: false, ...quiet })
    rmSync(work, { recursive: true, force: true })
  })

  it('starts once, reports itself, and is idempotent', async () => {
    const lines: string[] = []
    const up = await labUp({ stateDir, port: 0, withHosts: false, log: (l) => lines.push(l) })
    expect(up.alreadyRunning).toBe(false)
    expect(up.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(lines.join('\n')).toContain(
      `export OS_CLIENT_CONFIG_FILE=${join(stateDir, 'clouds.yaml')} OS_CLOUD=lab`,
    )
    expect(readFileSync(up.cloudsYaml, 'utf8')).toContain(`auth_url: ${up.url}/v3`)
    const again = await labUp({ stateDir, port: 0, withHosts: false, ...quiet })
    expect(again).toMatchObject({ alreadyRunning: true, pid: up.pid, url: up.url })
    const st = await labStatus({ stateDir, ...quiet })
    expect(st).toMatchObject({
      running: true,
      stale: false,
      pid: up.pid,
      url: up.url,
      withHosts: false,
      servers: [],
    })
    await createPort(up.url, up.cloudsYaml)
  })

  it('after SIGKILL: status says stale, up brings the same cloud back', async () => {
    const before = await labStatus({ stateDir, ...quiet })
    const pid = before.pid ?? 0
    const ids = await portIds(before.url ?? '', join(stateDir, 'clouds.yaml'))
    expect(ids).toHaveLength(1)
    process.kill(pid, 'SIGKILL')
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20))
    const lines: string[] = []
    const st = await labStatus({ stateDir, log: (l) => lines.push(l) })
    expect(st).toMatchObject({ running: false, stale: true })
    expect(lines.join('\n')).toContain('runbook lab down')
    const up = await labUp({ stateDir, port: 0, withHosts: false, ...quiet })
    expect(up.pid).not.toBe(pid)
    expect(await portIds(up.url, up.cloudsYaml)).toEqual(ids)
  })

  it('down stops the daemon and forgets the cloud; a second down is harmless', async () => {
    const st = await labStatus({ stateDir, ...quiet })
    const down = await labDown({ stateDir, withHosts: false, ...quiet })
    expect(down.stopped).toBe(true)
    expect(alive(st.pid ?? 0)).toBe(false)
    for (const f of ['daemon.json', 'launch.json', 'api-state.json', 'clouds.yaml'])
      expect(existsSync(join(stateDir, f))).toBe(false)
    expect((await labStatus({ stateDir, ...quiet })).running).toBe(false)
    expect((await labDown({ stateDir, withHosts: false, ...quiet })).stopped).toBe(false)
  })

  it.skipIf(process.getuid?.() !== 0)(
    'refuses at once, with a clear message, without root',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'rb-lab-nonroot-'))
      chmodSync(dir, 0o777)
      try {
        const started = Date.now()
        const out = await new Promise<{ code: number; stderr: string }>((resolve) => {
          execFile(
            'setpriv',
            [
              '--reuid=65534',
              '--regid=65534',
              '--clear-groups',
              process.execPath,
              'cli/runbook.js',
              'lab',
              'up',
              '--state-dir',
              join(dir, 's'),
            ],
            { cwd: REPO, env: { ...process.env, HOME: dir, TMPDIR: dir } },
            (err, _stdout, stderr) =>
              resolve({
                code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1,
                stderr,
              }),
          )
        })
        expect(out.code).toBe(1)
        expect(out.stderr).toContain('runbook lab up: this machine cannot run the lab')
        expect(out.stderr).toContain('root')
        expect(Date.now() - started).toBeLessThan(20_000)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )
})

describe.skipIf(!HOSTS)('lab daemon with real hosts: down after SIGKILL', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-kill-'))
  const stateDir = join(work, 'state')
  let started = false

  afterAll(async () => {
    // A lab that never started (another one was up) has nothing to take down.
    if (started) await labDown({ stateDir, withHosts: true, log: () => undefined })
    rmSync(work, { recursive: true, force: true })
  })

  /** Brings a lab up in `dir` with one ACTIVE server; returns the daemon's pid. */
  const labWithServer = async (dir: string): Promise<number> => {
    const up = await labUp({ stateDir: dir, port: 0, withHosts: true, log: () => undefined })
    const token = await demoToken(up.url, up.cloudsYaml)
    const get = async (path: string) =>
      (await (
        await fetch(`${up.url}${path}`, { headers: { 'X-Auth-Token': token } })
      ).json()) as Record<string, unknown>
    const net = (
      (await get('/network/v2.0/networks?name=mynetwork'))['networks'] as { id: string }[]
    )[0]?.id
    const image = ((await get('/image/v2/images?name=Debian+12'))['images'] as { id: string }[])[0]
      ?.id
    const res = await fetch(`${up.url}/compute/v2.1/servers`, {
      method: 'POST',
      headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        server: { name: 'victim', imageRef: image, flavorRef: '1', networks: [{ uuid: net }] },
      }),
    })
    const id = ((await res.json()) as { server: { id: string } }).server.id
    const deadline = Date.now() + 120_000
    for (;;) {
      const status = ((await get(`/compute/v2.1/servers/${id}`))['server'] as { status: string })
        .status
      if (status === 'ACTIVE') break
      if (status === 'ERROR' || Date.now() > deadline) throw new Error(`server is ${status}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    return up.pid
  }
  const killDaemon = async (pid: number) => {
    process.kill(pid, 'SIGKILL')
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20))
  }

  it('removes every VM, namespace, interface, nft table and mount after the daemon was killed', async () => {
    await assertNoLiveLab()
    started = true
    const pid = await labWithServer(stateDir)
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toMatch(/^rbl/m)
    await killDaemon(pid)
    const down = await labDown({ stateDir, log: () => undefined })
    expect(down).toMatchObject({ stopped: false, tornDown: true })
    expect(await labLeftovers(join(stateDir, 'hosts'))).toEqual([])
  })

  it('a lab left by a killed daemon is taken over by the next lab up, in another state directory', async () => {
    const other = join(work, 'other')
    await killDaemon(await labWithServer(stateDir))
    const leftVms =
      execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).match(/^rbl-vm-\S+/gm) ?? []
    expect(leftVms).toHaveLength(1)
    // a live owner is refused; a dead one is taken down by the next lab
    await labUp({ stateDir: other, port: 0, withHosts: true, log: () => undefined })
    try {
      const now = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      for (const ns of leftVms) expect(now).not.toContain(ns)
      // the old lab's VM disks are unmounted and removed
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(stateDir, 'hosts'))
      expect(existsSync(join(stateDir, 'hosts', 'vms'))).toBe(false)
      expect((await labStatus({ stateDir: other, log: () => undefined })).running).toBe(true)
      await expect(
        labUp({ stateDir, port: 0, withHosts: true, log: () => undefined }),
      ).rejects.toThrow(/another lab is up on this machine/)
    } finally {
      await labDown({ stateDir: other, log: () => undefined })
      await labDown({ stateDir, log: () => undefined })
    }
    expect(await labLeftovers(join(other, 'hosts'))).toEqual([])
    expect(await labLeftovers(join(stateDir, 'hosts'))).toEqual([])
  })
})
