/**
 * The lab's package mirror with real hosts: `labUp` builds it (from /var/cache/runbook-lab, which
 * it fills on the first run), the daemon serves it on 198.51.100.1, and a VM reached over ssh
 * through a floating IP runs the seeds' apt commands against it: `apt-get update`, real installs
 * of keepalived (the image has none) and `hello`, then keepalived already the newest version, ipvsadm. The machine's
 * own apt configuration and dpkg state must not change. Needs root; leaves nothing behind.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { labDown, labUp } from '../../lab/index.ts'
import type { LabUpResult } from '../../lab/index.ts'
import { buildMirror } from '../../lab/mirror/build.ts'
import { labLeftovers, makeSshKit, parseConsoleKeys } from './lab-hosts/fixture.ts'
import type { SshKit } from './lab-hosts/fixture.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'

const HOSTS = process.getuid?.() === 0

/** A digest of every file (path, mode, content) under a directory, symlinks by target. */
function treeDigest(root: string): string {
  const h = createHash('sha256')
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      const st = statSync(p, { throwIfNoEntry: false })
      h.update(`${p} ${st?.mode ?? 'dangling'}\n`)
      if (st?.isDirectory()) walk(p)
      else if (st?.isFile()) h.update(readFileSync(p))
    }
  }
  walk(root)
  return h.digest('hex')
}

const fileDigest = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex')

/** A raw HTTP GET from the machine, the path sent exactly as written. */
function rawGet(host: string, port: number, path: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method, timeout: 5_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

describe.skipIf(!HOSTS)('lab package mirror (real hosts)', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-mirror-'))
  const stateDir = join(work, 'state')
  const lines: string[] = []
  const timings: [string, number][] = []
  const before = { etcApt: '', dpkgStatus: '', hello: false }
  let lab: LabUpResult
  let started = false
  let kit: SshKit
  let fip = ''

  const api = async (
    method: string,
    path: string,
    token: string | null,
    body?: unknown,
  ): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> => {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (token !== null) headers['X-Auth-Token'] = token
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const res = await fetch(`${lab.url}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    })
    const text = await res.text()
    const json = (text === '' ? {} : JSON.parse(text)) as Record<string, unknown>
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    return { status: res.status, headers: res.headers, json }
  }
  const first = (json: Record<string, unknown>, key: string): Record<string, unknown> => {
    const list = json[key] as Record<string, unknown>[] | undefined
    const item = list?.[0]
    if (item === undefined) throw new Error(`no ${key}`)
    return item
  }
  /** Runs on the VM through its floating IP. */
  const vm = (command: string, timeoutMs = 120_000) => kit.run(fip, command, timeoutMs)

  beforeAll(async () => {
    await assertNoLiveLab()
    before.etcApt = treeDigest('/etc/apt')
    before.dpkgStatus = fileDigest('/var/lib/dpkg/status')
    before.hello = spawnSync('dpkg', ['-s', 'hello'], { stdio: 'ignore' }).status === 0
    started = true
    let t0 = Date.now()
    lab = await labUp({ stateDir, port: 0, log: (l) => lines.push(l) })
    timings.push(['labUp (mirror build included)', Date.now() - t0])
    timings.push([
      `  of which the mirror (${lab.mirror?.downloaded ?? 0} downloaded)`,
      lab.mirror?.ms ?? -1,
    ])

    // one VM with the `ssh` group and a floating IP, through the API
    t0 = Date.now()
    kit = await makeSshKit(work, '198.51.100.10', 'debian')
    const auth =
      (
        parse(readFileSync(lab.cloudsYaml, 'utf8')) as {
          clouds: Record<string, { auth: Record<string, string> }>
        }
      ).clouds['lab']?.auth ?? {}
    const tok = await api('POST', '/v3/auth/tokens', null, {
      auth: {
        identity: {
          methods: ['password'],
          password: {
            user: {
              name: auth['username'],
              domain: { name: 'Default' },
              password: auth['password'],
            },
          },
        },
        scope: { project: { name: auth['project_name'], domain: { name: 'Default' } } },
      },
    })
    const token = tok.headers.get('x-subject-token') ?? ''
    await api('POST', '/compute/v2.1/os-keypairs', token, {
      keypair: { name: 'mirror-key', public_key: kit.publicKey },
    })
    const image = first(
      (await api('GET', `/image/v2/images?name=${encodeURIComponent('Debian 12')}`, token)).json,
      'images',
    )
    const net = first(
      (await api('GET', '/network/v2.0/networks?name=mynetwork', token)).json,
      'networks',
    )
    const pub = first(
      (await api('GET', '/network/v2.0/networks?name=public', token)).json,
      'networks',
    )
    const created = await api('POST', '/compute/v2.1/servers', token, {
      server: {
        name: 'kld-mirror-vm',
        imageRef: image['id'],
        flavorRef: '2',
        networks: [{ uuid: net['id'] }],
        key_name: 'mirror-key',
        security_groups: [{ name: 'default' }, { name: 'ssh' }],
      },
    })
    const id = String((created.json['server'] as Record<string, unknown>)['id'])
    for (let i = 0; ; i++) {
      const s = (await api('GET', `/compute/v2.1/servers/${id}`, token)).json['server'] as Record<
        string,
        unknown
      >
      if (s['status'] === 'ACTIVE') break
      if (s['status'] === 'ERROR' || i > 600)
        throw new Error(`server ${String(s['status'])}: ${JSON.stringify(s['fault'])}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const port = first(
      (await api('GET', `/network/v2.0/ports?device_id=${id}`, token)).json,
      'ports',
    )
    const fipRes = await api('POST', '/network/v2.0/floatingips', token, {
      floatingip: { floating_network_id: pub['id'], port_id: port['id'] },
    })
    fip = String((fipRes.json['floatingip'] as Record<string, unknown>)['floating_ip_address'])
    const consoleRes = await api('POST', `/compute/v2.1/servers/${id}/action`, token, {
      'os-getConsoleOutput': { length: null },
    })
    kit.trust(fip, parseConsoleKeys(String(consoleRes.json['output'])).keys)
    timings.push(['VM with floating IP, reachable', Date.now() - t0])
  })

  afterAll(async () => {
    try {
      if (started) {
        const t0 = Date.now()
        await labDown({ stateDir, log: () => undefined })
        timings.push(['labDown', Date.now() - t0])
        expect(await labLeftovers(stateDir)).toEqual([])
        expect(existsSync(join(stateDir, 'mirror'))).toBe(false)
      }
    } finally {
      const width = Math.max(0, ...timings.map(([k]) => k.length))
      console.log(
        `lab mirror timings:\n${timings.map(([k, ms]) => `  ${k.padEnd(width)}  ${ms} ms`).join('\n')}\nlabUp said:\n  ${lines.join('\n  ')}`,
      )
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('builds the mirror at lab up and serves it on 198.51.100.1', () => {
    expect(lab.mirror).not.toBeNull()
    expect(lab.mirror?.empty).toBe(false)
    expect(lab.mirror?.missing).toEqual([])
    expect(lab.mirror?.url).toBe('http://198.51.100.1:8781/debian')
    const index = readFileSync(join(stateDir, 'mirror', 'debian', 'Packages'), 'utf8')
    for (const p of ['hello', 'keepalived', 'ipvsadm', 'libc6'])
      expect(index).toMatch(new RegExp(`^Package: ${p}$`, 'm'))
    expect(lines.join('\n')).toMatch(
      /package mirror for the VMs: http:\/\/198\.51\.100\.1:8781\/debian \(\d+ packages\)/,
    )
  })

  it("points the VM's apt at the lab mirror only, failing fast", async () => {
    const r = await vm(
      'grep -v "^#" /etc/apt/sources.list; ls -A /etc/apt/sources.list.d | wc -l; apt-config dump | grep -E "^Acquire::(Retries|http::Timeout) "',
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().split('\n')).toEqual([
      'deb [trusted=yes] http://198.51.100.1:8781/debian ./',
      '0',
      'Acquire::Retries "0";',
      'Acquire::http::Timeout "5";',
    ])
  })

  it("boots the lab's Debian 12 image, not the machine: no keepalived until apt installs it", async () => {
    const r = await vm(
      '. /etc/os-release; echo "$PRETTY_NAME"; cat /etc/runbook-lab-image; dpkg -s keepalived; echo "dpkg=$?"',
    )
    expect(r.stdout).toMatch(/^Debian GNU\/Linux 12 \(bookworm\)$/m)
    expect(r.stdout).toMatch(/"key":"debian-12"/)
    expect(r.stdout).toMatch(/^dpkg=1$/m)
    expect(r.stderr).toMatch(/package 'keepalived' is not installed/)
  })

  it("runs the seed's `sudo apt update && sudo apt install keepalived`: installed from the mirror", async () => {
    const t0 = Date.now()
    // -y: the seed's operator answers apt's question; ssh without a terminal cannot
    const r = await vm(
      'sudo apt update && sudo DEBIAN_FRONTEND=noninteractive apt install -y keepalived',
    )
    timings.push(['in the VM: apt update && apt install keepalived', Date.now() - t0])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/198\.51\.100\.1:8781\/debian \.\/ (Release|Packages)/)
    expect(r.stdout).toMatch(
      /Get:\d+ http:\/\/198\.51\.100\.1:8781\/debian \.\/ keepalived 1:2\.2\.7/,
    )
    expect(r.stdout).toMatch(/Setting up keepalived \(1:2\.2\.7/)
    expect(r.stderr).not.toMatch(/^(E|Err):/m)
    const s = await vm('dpkg -s keepalived | grep ^Status; ls /usr/sbin/keepalived')
    expect(s.stdout).toMatch(/Status: install ok installed\n\/usr\/sbin\/keepalived/)
  })

  it('apt-get update succeeds against the mirror alone', async () => {
    const r = await vm('sudo apt-get update')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).not.toMatch(/^(Err|W):/m)
    expect(r.stdout).not.toContain('debian.org')
    expect(r.stderr).toBe('')
  })

  it('installs hello from the mirror (a package the machine does not have) and it runs', async () => {
    const t0 = Date.now()
    const r = await vm(
      'sudo DEBIAN_FRONTEND=noninteractive apt-get install -y hello && hello && dpkg -s hello | grep -E "^(Status|Version):"',
    )
    timings.push(['in the VM: apt-get install -y hello', Date.now() - t0])
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
    expect(r.stdout).toMatch(/Get:\d+ http:\/\/198\.51\.100\.1:8781\/debian \.\/ hello 2\.10/)
    expect(r.stdout).toContain('Hello, world!')
    expect(r.stdout).toContain('Status: install ok installed')
  })

  it('says keepalived is already the newest version; simulates ipvsadm', async () => {
    const k = await vm('sudo apt-get install keepalived')
    expect(k.code, k.stderr).toBe(0)
    expect(k.stdout).toMatch(/keepalived is already the newest version/)
    const i = await vm('apt-get -s install ipvsadm')
    expect(i.code, i.stderr).toBe(0)
    expect(i.stdout).toMatch(/ipvsadm is already the newest version|Inst ipvsadm/)
  })

  it('left the machine alone: /etc/apt, dpkg status, no hello', () => {
    expect(treeDigest('/etc/apt')).toBe(before.etcApt)
    expect(fileDigest('/var/lib/dpkg/status')).toBe(before.dpkgStatus)
    expect(spawnSync('dpkg', ['-s', 'hello'], { stdio: 'ignore' }).status === 0).toBe(before.hello)
  })

  it('serves only files under the mirror, only on the lab address', async () => {
    expect(await rawGet('198.51.100.1', 8781, '/debian/Release')).toBe(200)
    for (const p of [
      '/debian/../api-state.json',
      '/debian/%2e%2e/api-state.json',
      '/debian/pool/..%2f..%2fclouds.yaml',
      '/debian/pool',
      '/api-state.json',
    ]) {
      expect(await rawGet('198.51.100.1', 8781, p)).toBe(404)
    }
    expect(await rawGet('198.51.100.1', 8781, '/debian/Release', 'POST')).toBe(405)
    await expect(rawGet('127.0.0.1', 8781, '/debian/Release')).rejects.toThrow(/ECONNREFUSED/)
  })

  it('a second build needs no network: everything comes from the cache', async () => {
    const t0 = Date.now()
    const m = await buildMirror({
      dir: join(work, 'again', 'debian'),
      download: () => Promise.reject(new Error('no network in this test')),
    })
    timings.push(['mirror build from the cache (no network)', Date.now() - t0])
    expect(m).toMatchObject({ empty: false, missing: [], downloaded: 0, downloadError: null })
    expect(m.packages).toBe(lab.mirror?.packages)
  })

  it('fails fast when the mirror does not answer', async () => {
    const t0 = Date.now()
    // a port nothing listens on, with a list directory of its own so the real lists stay
    const r = await vm(
      'echo "deb [trusted=yes] http://198.51.100.1:8799/debian ./" > /tmp/dead.list; mkdir -p /tmp/lists/partial; sudo apt-get update -o Dir::Etc::SourceList=/tmp/dead.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=/tmp/lists; echo "rc=$?"',
      30_000,
    )
    expect(r.stdout).toMatch(/rc=\d+/)
    expect(r.stdout + r.stderr).toMatch(/Err:|Failed to fetch|Could not connect/)
    expect(Date.now() - t0).toBeLessThan(20_000)
  })
})

describe.skipIf(!HOSTS)('lab package mirror, offline with an empty cache', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-lab-mirror-off-'))
  const stateDir = join(work, 'state')
  const lines: string[] = []
  let lab: LabUpResult
  let started = false

  beforeAll(async () => {
    await assertNoLiveLab()
    // "offline": apt's downloads go to a proxy that refuses every connection
    const saved = process.env['http_proxy']
    process.env['http_proxy'] = 'http://127.0.0.1:9'
    try {
      started = true
      lab = await labUp({
        stateDir,
        port: 0,
        mirror: { cacheDir: join(work, 'empty-cache') },
        log: (l) => lines.push(l),
      })
    } finally {
      if (saved === undefined) delete process.env['http_proxy']
      else process.env['http_proxy'] = saved
    }
  })

  afterAll(async () => {
    try {
      if (started) {
        await labDown({ stateDir, log: () => undefined })
        expect(await labLeftovers(stateDir)).toEqual([])
      }
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('still comes up, and says clearly that the mirror is empty', async () => {
    expect(lab.mirror).toMatchObject({
      empty: true,
      packages: 0,
      url: 'http://198.51.100.1:8781/debian',
    })
    expect(lab.mirror?.downloadError).toMatch(/127\.0\.0\.1:9/)
    const said = lines.join('\n')
    expect(said).toMatch(/package mirror: the download failed \(offline\?\)/)
    expect(said).toMatch(/package mirror: EMPTY\. No package could be fetched/)
    expect(said).toMatch(
      /package mirror for the VMs: http:\/\/198\.51\.100\.1:8781\/debian \(EMPTY\)/,
    )
    // an empty but valid repository: apt-get update in a VM succeeds, installs find nothing
    expect(await rawGet('198.51.100.1', 8781, '/debian/Release')).toBe(200)
    expect(await rawGet('198.51.100.1', 8781, '/debian/Packages')).toBe(200)
  })
})
