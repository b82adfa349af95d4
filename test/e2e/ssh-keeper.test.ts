/**
 * The connection keeper (runbook's ControlPersist) against real sshd behind a jump host: a second
 * run reuses the connections, faults never reuse a dead or untrusted one, and the keeper goes away
 * when idle, on disconnect, or when killed (the run then connects directly).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { KeeperLink, KeeperTransport } from '../../engine/connection/keeper-client.ts'
import { processAlive as alive } from '../../engine/connection/local.ts'
import { keeperSocket, type PersistOptions } from '../../engine/connection/persist.ts'
import { ConnectionPool } from '../../engine/connection/pool.ts'
import type { TransportEvent } from '../../engine/connection/transport.ts'
import { RunbookError } from '../../engine/errors.ts'
import { startSshHosts, type SshHostsFixture } from '../fixtures/ssh-hosts.ts'

const CLI = path.resolve('cli/runbook.js')

let f: SshHostsFixture
let base: string
const pools: ConnectionPool[] = []
const dirs: string[] = []

function persist(seconds = 60, dir?: string): PersistOptions {
  if (!dir) {
    dir = path.join(base, `k${dirs.length}`)
    dirs.push(dir)
  }
  return { seconds, dir, command: [process.execPath, CLI, '__keeper'] }
}

/** One "run": a pool with the keeper, closed by afterEach if the test does not. */
function run(p: PersistOptions, events: TransportEvent[] = [], passphrase?: () => Promise<string>) {
  const pool = new ConnectionPool({
    sshConfigFile: false,
    persist: p,
    onEvent: (e) => events.push(e),
    ...(passphrase ? { passphrase } : {}),
  })
  pools.push(pool)
  return pool
}

function keeperPid(p: PersistOptions): Promise<number | undefined> {
  return new KeeperLink(p)
    .request({ op: 'status' }, false)
    .then((r) => r.pid)
    .catch(() => undefined)
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return cond()
}

const h1 = (): SshHostsFixture['hosts'][number] => f.hosts[0]!
const h2 = (): SshHostsFixture['hosts'][number] => f.hosts[1]!

beforeAll(async () => {
  f = await startSshHosts({ count: 2, tag: 'kpr', rootNet: '198.51.100.160/28' })
  base = mkdtempSync(path.join(os.tmpdir(), 'rb-keeper-'))
})

afterEach(async () => {
  await Promise.allSettled(pools.splice(0).map((p) => p.closeAll()))
  for (const d of dirs) {
    const pid = await keeperPid(persist(60, d))
    await new KeeperLink(persist(60, d)).request({ op: 'disconnect' }, false).catch(() => undefined)
    if (pid) await until(() => !alive(pid), 3000)
  }
})

afterAll(async () => {
  await f?.teardown()
  if (base) rmSync(base, { recursive: true, force: true })
})

describe('reuse', () => {
  it('a second run reuses the target and jump connections: no new login, no handshake', async () => {
    const p = persist()
    const first: TransportEvent[] = []
    const r1 = run(p, first)
    const c1 = await r1.get('h1', f.settings(h1()))
    const c2 = await r1.get('h2', f.settings(h2()))
    expect((await c1.exec('hostname -I', { idempotent: true })).stdout).toContain(h1().address)
    expect((await c2.exec('echo two')).stdout).toBe('two\n')
    expect(c1.transport).toBeInstanceOf(KeeperTransport)
    await r1.closeAll()
    expect(first.filter((e) => e.type === 'connect').map((e) => 'label' in e && e.label)).toEqual(
      expect.arrayContaining(['h1', 'h2', 'jump']),
    )
    const logins = [f.logins(f.jump), f.logins(h1()), f.logins(h2())]
    // one jump connection for both hosts, as without the keeper
    expect(f.tcpConnections(f.jump)).toBe(1)

    const second: TransportEvent[] = []
    const r2 = run(p, second)
    const d1 = await r2.get('h1', f.settings(h1()))
    const d2 = await r2.get('h2', f.settings(h2()))
    const r = await d1.exec('echo out; echo err >&2; exit 3')
    expect(r).toEqual({ rc: 3, stdout: 'out\n', stderr: 'err\n' })
    expect((await d1.exec('cat', { stdin: 'in' })).stdout).toBe('in')
    expect((await d2.exec('pwd', { cwd: '/tmp' })).stdout).toBe('/tmp\n')
    await r2.closeAll()
    expect(second.filter((e) => e.type === 'connect')).toEqual([])
    expect([f.logins(f.jump), f.logins(h1()), f.logins(h2())]).toEqual(logins)
  })

  it('hosts connecting at once record their pinned keys in the project known_hosts, none lost', async () => {
    const project = path.join(base, `known_hosts.${dirs.length}`)
    // stale keys (each host's the other's), as after VMs were rebuilt: both are replaced at once
    writeFileSync(
      project,
      `${h1().address} ${h2().hostKeys[0]}\n${h2().address} ${h1().hostKeys[0]}\n`,
    )
    const r1 = run(persist())
    const conns = await Promise.all(
      [h1(), h2()].map((h) =>
        r1.get(
          h.name,
          f.settings(h, {
            knownHostsFiles: [],
            pinnedHostKeys: h.hostKeys,
            projectKnownHosts: project,
          }),
        ),
      ),
    )
    for (const c of conns) expect((await c.exec('echo ok')).stdout).toBe('ok\n')
    const text = readFileSync(project, 'utf8')
    const recorded = (h: typeof f.jump): boolean =>
      h.hostKeys.some((k) => text.includes(`${h.address} ${k.split(' ').slice(0, 2).join(' ')}`))
    expect([recorded(h1()), recorded(h2())]).toEqual([true, true])
  })

  it('files over SFTP and become shells work on kept connections; no shell survives the run', async () => {
    const p = persist()
    const settings = f.settings(h1(), { user: f.users.password.name })
    const r1 = run(p)
    const c = await r1.get('h1', settings)
    const big = Buffer.alloc(300_000, 'x')
    await c.writeFile('/tmp/rb-keeper-big', big, { mode: 0o640 })
    expect((await c.readFile('/tmp/rb-keeper-big'))?.equals(big)).toBe(true)
    expect(f.inNs(h1(), 'stat -c %a /tmp/rb-keeper-big').trim()).toBe('640')
    const uid = (await c.exec('id -u')).stdout.trim()
    expect(uid).not.toBe('0')
    const become = { method: 'sudo' as const, password: 'rbt-sudo-Secret-42' }
    expect((await c.exec('id -u', { become })).stdout).toBe('0\n')
    await c.writeFile('/root/rb-keeper', 'root only\n', { become })
    expect((await c.readFile('/root/rb-keeper', { become }))?.toString()).toBe('root only\n')
    // the run's shells (login and root) are gone, the transport stays
    const user = uid
    const left = (): string =>
      execFileSync('sh', ['-c', `pgrep -u ${user} -x sh; pgrep -U ${user} -x sudo; true`], {
        encoding: 'utf8',
      }).trim()
    expect(left()).not.toBe('')
    await r1.closeAll()
    expect(await until(() => left() === '', 3000)).toBe(true)
    const r2 = run(p)
    const again = await r2.get('h1', settings)
    expect((await again.exec('id -u', { become })).stdout).toBe('0\n')
    await r2.closeAll()
  })

  it('streams large output with backpressure intact', async () => {
    const r1 = run(persist())
    const c = await r1.get('h1', f.settings(h1()))
    const r = await c.exec('head -c 5000000 /dev/zero | tr "\\0" a')
    expect(r.stdout.length).toBe(5_000_000)
  })
})

describe('figures', () => {
  it('a kept connection is ready in milliseconds; a command costs about what it costs directly', async () => {
    const ms = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
    const measure = async (pool: ConnectionPool): Promise<{ get: number; cmd: number }> => {
      const t = process.hrtime.bigint()
      const c = await pool.get('h1', f.settings(h1()))
      await c.exec('true')
      const get = ms(t)
      const each: number[] = []
      for (let i = 0; i < 30; i++) {
        const s = process.hrtime.bigint()
        await c.exec('true')
        each.push(ms(s))
      }
      await pool.closeAll()
      return { get, cmd: median(each) }
    }
    const direct = await measure(new ConnectionPool({ sshConfigFile: false }))
    const p = persist()
    await measure(run(p))
    const kept = await measure(run(p))
    console.log(
      `keeper figures: first command on a new connection ${direct.get.toFixed(0)} ms, on a kept one ${kept.get.toFixed(0)} ms; per command ${direct.cmd.toFixed(1)} ms direct, ${kept.cmd.toFixed(1)} ms kept`,
    )
    expect(kept.get).toBeLessThan(direct.get)
  })
})

describe('faults', () => {
  it('a kept connection that died (host rebooted) is replaced, not reused', async () => {
    const p = persist()
    const r1 = run(p)
    await (await r1.get('h1', f.settings(h1()))).exec('true')
    await r1.closeAll()
    const before = f.logins(h1())
    f.killSessions(h1())
    const events: TransportEvent[] = []
    const r2 = run(p, events)
    const c = await r2.get('h1', f.settings(h1()))
    expect((await c.exec('echo alive')).stdout).toBe('alive\n')
    expect(f.logins(h1())).toBe(before + 1)
    expect(events.filter((e) => e.type === 'connect').map((e) => 'label' in e && e.label)).toEqual([
      'h1',
    ])
  })

  it("a kept connection full of other runs' sessions (sshd MaxSessions) sends a run direct, and theirs stay", async () => {
    const p = persist()
    // the fixture's sshd allows 50 sessions per connection; each run holds one (its shell)
    const runs = Array.from({ length: 52 }, () => run(p))
    const conns = []
    const shells: string[] = []
    for (const r of runs) {
      const c = await r.get('h1', f.settings(h1()))
      // the login shell's pid: the same shell answers later only if its channel survived
      shells.push((await c.exec('echo $PPID')).stdout)
      conns.push(c)
    }
    const direct = conns.filter((c) => !(c.transport as KeeperTransport).persisted)
    expect(direct.length).toBeGreaterThan(0)
    const again = []
    for (const c of conns) again.push((await c.exec('echo $PPID')).stdout)
    expect(again).toEqual(shells)
  })

  it('a connection whose key the known_hosts no longer accept is not reused', async () => {
    const p = persist()
    const r1 = run(p)
    await (await r1.get('h1', f.settings(h1()))).exec('true')
    await r1.closeAll()
    // the user now pins another key for h1: the kept connection must not count as checked
    const other = f.hosts[1]!.hostKeys[0]!
    const pinned = f.settings(h1(), { pinnedHostKeys: [other] })
    const err = await run(p)
      .get('h1', pinned)
      .catch((e: unknown) => e)
    expect((err as RunbookError).code).toBe('E_HOST_KEY')
  })

  it('a keeper killed in the middle of a run leaves the run on a direct connection, silently', async () => {
    const p = persist()
    const r1 = run(p)
    const c = await r1.get('h1', f.settings(h1()))
    expect((await c.exec('echo a')).stdout).toBe('a\n')
    const pid = await keeperPid(p)
    expect(pid).toBeGreaterThan(0)
    process.kill(pid!, 'SIGKILL')
    await until(() => !alive(pid!), 2000)
    expect((await c.exec('echo b', { idempotent: true })).stdout).toBe('b\n')
    expect((c.transport as KeeperTransport).persisted).toBe(false)
    await r1.closeAll()
    // a socket left behind by the dead keeper does not stop the next run
    expect(existsSync(keeperSocket(p.dir))).toBe(true)
    const r2 = run(p)
    expect((await (await r2.get('h1', f.settings(h1()))).exec('echo c')).stdout).toBe('c\n')
    expect(((await r2.transportOf('h1')) as KeeperTransport).persisted).toBe(true)
  })

  it('a keeper that accepts and never answers (hung) leaves the run direct after its patience', async () => {
    const p = persist()
    execFileSync('mkdir', ['-m', '700', p.dir])
    const hung = net.createServer(() => undefined)
    await new Promise<void>((r) => hung.listen(keeperSocket(p.dir), r))
    try {
      const t = Date.now()
      const c = await run(p).get('h1', f.settings(h1(), { connectTimeoutMs: 1000 }))
      expect((await c.exec('echo direct')).stdout).toBe('direct\n')
      expect((c.transport as KeeperTransport).persisted).toBe(false)
      // jump 8 s + h1 1 s + 5 s, once: no second wait for a keeper started anew
      expect(Date.now() - t).toBeLessThan(20_000)
    } finally {
      hung.close()
    }
  }, 40_000)

  it('the keeper exits after the idle time, and on disconnect', async () => {
    const p = persist(1)
    const r1 = run(p)
    await (await r1.get('h1', f.settings(h1()))).exec('true')
    const pid = (await keeperPid(p))!
    await r1.closeAll()
    expect(alive(pid)).toBe(true)
    expect(await until(() => !alive(pid), 4000)).toBe(true)
    expect(existsSync(keeperSocket(p.dir))).toBe(false)
    expect(f.tcpConnections(f.jump)).toBe(0)

    const q = persist(60)
    const r2 = run(q)
    await (await r2.get('h2', f.settings(h2()))).exec('true')
    await r2.closeAll()
    const pid2 = (await keeperPid(q))!
    const reply = await new KeeperLink(q).request({ op: 'disconnect' }, false)
    expect(reply.held?.map((h) => h.label).sort()).toEqual(['h2', 'jump'])
    expect(await until(() => !alive(pid2), 3000)).toBe(true)
    expect(await until(() => f.tcpConnections(f.jump) === 0, 3000)).toBe(true)
  })
})

describe('runbook disconnect', () => {
  it('closes every kept connection and ends the keeper, as ssh -O exit', async () => {
    const p = persist()
    const r1 = run(p)
    await (await r1.get('h1', f.settings(h1()))).exec('true')
    await r1.closeAll()
    const pid = (await keeperPid(p))!
    const cli = (): string =>
      execFileSync(process.execPath, [CLI, 'disconnect'], {
        encoding: 'utf8',
        env: { ...process.env, RUNBOOK_KEEPER_DIR: p.dir },
      })
    expect(cli()).toBe('closed 2 kept connections\n')
    expect(await until(() => !alive(pid), 3000)).toBe(true)
    // nothing running: nothing to close, and no keeper started for it
    expect(cli()).toBe('closed 0 kept connections\n')
    expect(await keeperPid(p)).toBeUndefined()
  })
})

describe('the CLI', () => {
  it('a second `runbook apply` reuses the kept connections; files go over SFTP on them', () => {
    const p = persist()
    const work = mkdtempSync(path.join(base, 'cli-'))
    const common = `user: root, private_key: ${f.keyPath}, ssh_agent: false, known_hosts_files: [${f.knownHostsFile}]`
    writeFileSync(
      path.join(work, 'inventory.yaml'),
      [
        'all:',
        '  hosts:',
        `    jump: { address: ${f.jump.address}, ${common} }`,
        `    h1: { address: ${h1().address}, via: jump, ${common} }`,
        '',
      ].join('\n'),
    )
    writeFileSync(
      path.join(work, 'copy.yaml'),
      [
        'plays:',
        '  - hosts: h1',
        '    tasks:',
        '      - name: a file',
        '        copy: { content: "kept {{ n }}\\n", dest: /tmp/rb-keeper-cli, mode: "0600" }',
        '',
      ].join('\n'),
    )
    const apply = (n: number): string => {
      const r = spawnSync(
        process.execPath,
        [CLI, 'apply', 'copy.yaml', '-i', 'inventory.yaml', '-e', `n=${n}`],
        {
          cwd: work,
          encoding: 'utf8',
          env: {
            ...process.env,
            NO_COLOR: '1',
            RUNBOOK_SSH_PERSIST: '60',
            RUNBOOK_KEEPER_DIR: p.dir,
          },
        },
      )
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0)
      return f.inNs(h1(), 'cat /tmp/rb-keeper-cli')
    }
    expect(apply(1)).toBe('kept 1\n')
    const logins = [f.logins(f.jump), f.logins(h1())]
    expect(apply(2)).toBe('kept 2\n')
    expect([f.logins(f.jump), f.logins(h1())]).toEqual(logins)
  })
})

describe('security', () => {
  it("secrets never reach the keeper's argv or environment", async () => {
    const p = persist()
    const secretEnv = 'rbt-env-Secret-77'
    process.env['OS_PASSWORD'] = secretEnv
    try {
      const asked: string[] = []
      const r1 = run(p, [], async () => {
        asked.push('x')
        return f.keyPassphrase
      })
      const c = await r1.get('h1', f.settings(h1(), { privateKey: f.encryptedKeyPath }))
      expect((await c.exec('id -u', { become: { method: 'sudo' } })).stdout).toBe('0\n')
      expect(asked).toEqual(['x'])
      const pid = (await keeperPid(p))!
      const cmdline = readFileSync(`/proc/${pid}/cmdline`)
      const environ = readFileSync(`/proc/${pid}/environ`)
      for (const secret of [f.keyPassphrase, secretEnv, 'rbt-sudo-Secret-42']) {
        expect(cmdline.includes(secret)).toBe(false)
        expect(environ.includes(secret)).toBe(false)
      }
      // nothing written next to the socket but the socket
      expect(execFileSync('ls', ['-A', p.dir], { encoding: 'utf8' }).trim()).toBe('keeper.sock')
    } finally {
      delete process.env['OS_PASSWORD']
    }
  })

  it('a keeper directory open to others or owned by another user is refused: the run goes direct', async () => {
    for (const spoil of [
      (d: string) => chmodSync(d, 0o755),
      (d: string) => chownSync(d, 65534, 65534),
    ]) {
      const p = persist()
      execFileSync('mkdir', ['-m', '700', p.dir])
      spoil(p.dir)
      const events: TransportEvent[] = []
      const r = run(p, events)
      const c = await r.get('h1', f.settings(h1()))
      expect((await c.exec('echo ok')).stdout).toBe('ok\n')
      expect(c.transport).not.toBeInstanceOf(KeeperTransport)
      expect(existsSync(keeperSocket(p.dir))).toBe(false)
      await r.closeAll()
    }
  })
})

// last: h2 keeps its new host key
describe('a rebuilt host', () => {
  it('a host that came back with a new host key is refused, not reached over the old connection', async () => {
    const p = persist()
    const r1 = run(p)
    await (await r1.get('h2', f.settings(h2()))).exec('true')
    await r1.closeAll()
    await f.rotateHostKeys(h2())
    const r2 = run(p)
    const err = await r2.get('h2', f.settings(h2())).then(
      async (c) => c.exec('true'),
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(RunbookError)
    expect((err as RunbookError).code).toBe('E_HOST_KEY')
  })
})
