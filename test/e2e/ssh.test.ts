/**
 * The SSH connection layer against real sshd: ten hosts in network namespaces reachable only
 * through a jump host (test/fixtures/ssh-hosts.ts). Run alone: `npx vitest run test/e2e/ssh.test.ts`.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Client } from 'ssh2'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseConsoleFingerprints } from '../../engine/connection/console-keys.ts'
import { formatAdhocResult, runAdhoc } from '../../engine/connection/exec-adhoc.ts'
import { sha256Fingerprint } from '../../engine/connection/host-key.ts'
import { ConnectionPool, type ConnectionPoolOptions } from '../../engine/connection/pool.ts'
import { sshConnectionFactory } from '../../engine/connection/ssh-factory.ts'
import type { HostConnectionSettings } from '../../engine/connection/settings.ts'
import type { SshConnection } from '../../engine/connection/ssh.ts'
import { RunbookError } from '../../engine/errors.ts'
import { startSshHosts, type SshHostsFixture, type SshTestHost } from '../fixtures/ssh-hosts.ts'

let f: SshHostsFixture
const pools: ConnectionPool[] = []
const figures: Record<string, string> = {}

/** A pool that afterAll closes even when the test fails. */
function newPool(opts: ConnectionPoolOptions = {}): ConnectionPool {
  const p = new ConnectionPool({ sshConfigFile: false, ...opts })
  pools.push(p)
  return p
}

function h(i: number): SshTestHost {
  return f.hosts[i - 1]!
}

function fp(keyLine: string): string {
  return sha256Fingerprint(Buffer.from(keyLine.split(' ')[1]!, 'base64'))
}

/** A new exec channel per command, as a naive client would do, for the comparison. */
function execChannel(client: Client, command: string): Promise<number> {
  return new Promise((resolve, reject) =>
    client.exec(command, (err, ch) => {
      if (err) return reject(err)
      ch.on('data', () => undefined)
      ch.stderr.on('data', () => undefined)
      ch.on('exit', (code: number) => resolve(code))
    }),
  )
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6
}

function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec))
}

beforeAll(async () => {
  f = await startSshHosts({ count: 10 })
})

afterEach(async () => {
  await Promise.allSettled(pools.splice(0).map((p) => p.closeAll()))
})

afterAll(async () => {
  await Promise.allSettled(pools.splice(0).map((p) => p.closeAll()))
  await f?.teardown()
  if (Object.keys(figures).length)
    console.log(
      `ssh figures:\n${Object.entries(figures)
        .map(([k, v]) => `  ${k}: ${v}`)
        .join('\n')}`,
    )
})

describe('commands through the jump host', () => {
  it('separates stdout, stderr and rc, passes stdin, cwd and env', async () => {
    const conn = await newPool().get('h1', f.settings(h(1)))
    const r = await conn.exec('hostname -I; echo oops >&2; exit 3', { idempotent: true })
    expect(r).toEqual({ rc: 3, stdout: `${h(1).address} \n`, stderr: 'oops\n' })
    expect((await conn.exec('tr a-z A-Z', { stdin: 'hello\nworld' })).stdout).toBe('HELLO\nWORLD')
    expect(
      (await conn.exec('pwd; echo "$GREETING"', { cwd: '/usr', env: { GREETING: "it's me" } }))
        .stdout,
    ).toBe("/usr\nit's me\n")
    const big = await conn.exec(
      'head -c 3000000 /dev/zero | tr "\\0" x; head -c 100000 /dev/zero | tr "\\0" y >&2',
    )
    expect([big.stdout.length, big.stderr.length]).toEqual([3_000_000, 100_000])
    expect((await conn.exec("echo 'unbalanced")).rc).toBe(2)
    expect((await conn.exec('echo still fine')).stdout).toBe('still fine\n')
  })

  it('shares one connect among concurrent callers for a host', async () => {
    const before = f.logins(h(1))
    const pool = newPool()
    const conns = await Promise.all(
      Array.from({ length: 5 }, () => pool.get('h1', f.settings(h(1)))),
    )
    expect(new Set(conns).size).toBe(1)
    expect(f.logins(h(1)) - before).toBe(1)
  })

  it('follows a chain of two jump hosts', async () => {
    const pool = newPool()
    const second = { name: 'h2', ...f.settings(h(2)), via: [] }
    const conn = await pool.get(
      'h3',
      f.settings(h(3), { via: [{ name: 'jump', ...f.settings(f.jump) }, second] }),
    )
    expect((await conn.exec('hostname -I')).stdout.trim()).toBe(h(3).address)
    expect(pool.info().map((t) => t.label)).toEqual(['jump', 'h2', 'h3'])
    expect(f.log(h(3))).toContain(`Connection from ${h(2).address}`)
  })

  it('is reached only through the jump host', async () => {
    expect(() => f.inNs(f.jump, `true`)).not.toThrow()
    const direct = newPool().get('h1-direct', f.settings(h(1), { via: [], connectTimeoutMs: 1500 }))
    await expect(direct).rejects.toMatchObject({ code: 'E_CONNECTION' })
  })

  it('reads and writes files over SFTP, keeping mode and owner', async () => {
    const conn = await newPool().get('h1', f.settings(h(1)))
    const file = path.join(f.dir, 'h1', 'sftp.txt')
    expect(await conn.readFile(file)).toBeNull()
    await conn.writeFile(file, 'one\n')
    expect(statSync(file).mode & 0o7777).toBe(0o644)
    expect((await conn.readFile(file))!.toString()).toBe('one\n')
    const uid = Number((await conn.exec(`id -u ${f.users.nopass.name}`)).stdout)
    await conn.exec(`chown ${uid} ${file} && chmod 0640 ${file}`)
    const bin = Buffer.from(Array.from({ length: 70000 }, (_, i) => i % 256))
    await conn.writeFile(file, bin)
    expect(readFileSync(file)).toEqual(bin)
    expect((await conn.readFile(file))!).toEqual(bin)
    expect([statSync(file).mode & 0o7777, statSync(file).uid]).toEqual([0o640, uid])
    await conn.writeFile(file, 'mode given\n', { mode: 0o600 })
    expect(statSync(file).mode & 0o7777).toBe(0o600)
    expect(readdirSync(path.dirname(file)).filter((n) => n.includes('.rb-'))).toEqual([])
  })
})

describe('become', () => {
  it('uses sudo -n when the user needs no password', async () => {
    const conn = await newPool().get('h2', f.settings(h(2), { user: f.users.nopass.name }))
    expect((await conn.exec('id -un')).stdout).toBe('rbtnp\n')
    expect(
      (await conn.exec('id -un; cat', { become: { method: 'sudo' }, stdin: 'payload' })).stdout,
    ).toBe('root\npayload')
    // A password given anyway must not end up in the command's stdin.
    const r = await conn.exec('cat', {
      become: { method: 'sudo', password: 'not-needed' },
      stdin: 'payload',
    })
    expect(r).toEqual({ rc: 0, stdout: 'payload', stderr: '' })
    expect(
      (await conn.exec('id -un', { become: { method: 'sudo', user: f.users.password.name } }))
        .stdout,
    ).toBe('rbtpw\n')
  })

  it('opens one shell per connection and target user (one sudo), reused by every command', async () => {
    const conn = await newPool().get('h2', f.settings(h(2), { user: f.users.nopass.name }))
    const parent = async (user?: string): Promise<string> =>
      (await conn.exec('echo $PPID', { become: { method: 'sudo', user } })).stdout.trim()
    const t0 = process.hrtime.bigint()
    const first = await parent()
    figures['become: first command (opens the root shell)'] = `${ms(t0).toFixed(0)} ms`
    const t1 = process.hrtime.bigint()
    const roots = new Set<string>()
    for (let i = 0; i < 20; i++) roots.add(await parent())
    figures['become: 20 more commands on the root shell'] = `${ms(t1).toFixed(0)} ms`
    expect([...roots]).toEqual([first])
    // the commands' parent is a root shell, started by the one sudo
    expect(f.inNs(h(2), `ps -o user=,comm= -p ${first}`).trim()).toMatch(/^root\s+sh$/)
    expect(f.inNs(h(2), `ps -o comm= -p $(ps -o ppid= -p ${first})`).trim()).toBe('sudo')
    const other = await parent(f.users.password.name)
    expect(other).not.toBe(first)
    expect(await parent(f.users.password.name)).toBe(other)
    expect(await parent()).toBe(first)
    // the login shell is separate: a command without become runs as the login user
    expect((await conn.exec('id -un')).stdout).toBe('rbtnp\n')
    await conn.close()
    await sleep(300)
    expect(f.inNs(h(2), `ps -o pid= -p ${first},${other} || true`).trim()).toBe('')
  })

  it("sends the password once, at sudo's prompt: never to a command, never echoed", async () => {
    const password = f.users.password.password
    const conn = await newPool().get(
      'h2',
      f.settings(h(2), { user: f.users.password.name, becomePassword: password }),
    )
    const r = await conn.exec('id -un; cat', { become: { method: 'sudo' }, stdin: 'payload' })
    expect(r).toEqual({ rc: 0, stdout: 'root\npayload', stderr: '' })
    const ppid = async (): Promise<string> =>
      (await conn.exec('echo $PPID', { become: { method: 'sudo' } })).stdout
    expect(new Set(await Promise.all([ppid(), ppid(), ppid()])).size).toBe(1)
    const running = conn.exec('sleep 1', { become: { method: 'sudo' } })
    await sleep(400)
    const ps = f.inNs(h(2), 'ps -eo args')
    await running
    expect(ps).toContain('sleep 1')
    expect(ps).not.toContain(password)
    expect(f.log(h(2))).not.toContain(password)
    const again = await conn.exec('echo $((1+1))', { become: { method: 'sudo' } })
    expect(again).toEqual({ rc: 0, stdout: '2\n', stderr: '' })
  })

  it('fails clearly without the password or with a wrong one', async () => {
    const pool = newPool()
    const conn = await pool.get('h2', f.settings(h(2), { user: f.users.password.name }))
    const none = conn.exec('id', { become: { method: 'sudo' } })
    await expect(none).rejects.toMatchObject({
      code: 'E_COMMAND',
      message: expect.stringMatching(/needs a password/),
    })
    const bad = 'Wr0ng-pass-77'
    const wrong = await conn
      .exec('id', { become: { method: 'sudo', password: bad } })
      .catch((e: unknown) => e)
    expect(wrong).toMatchObject({
      code: 'E_COMMAND',
      message: expect.stringMatching(/refused the password/),
    })
    expect(JSON.stringify(wrong, Object.getOwnPropertyNames(wrong))).not.toContain(bad)
    // the same wrong password is not tried again (sudo would count each try and wait)
    const t = process.hrtime.bigint()
    await expect(
      conn.exec('id', { become: { method: 'sudo', password: bad } }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/refused the password/) })
    expect(ms(t)).toBeLessThan(200)
    expect(f.log(h(2))).not.toContain(bad)
    // the right one on the same connection opens the root shell
    const right = { method: 'sudo' as const, password: f.users.password.password }
    expect((await conn.exec('id -un', { become: right })).stdout).toBe('root\n')
  })

  it('becomes root in a runbook with the password from a secret, which no output shows', () => {
    const password = f.users.password.password
    const dir = path.join(f.dir, 'become-cli')
    execFileSync('mkdir', ['-p', dir])
    writeFileSync(
      path.join(dir, 'inventory.yaml'),
      [
        'all:',
        `  vars: { private_key: ${f.keyPath}, ssh_agent: false, known_hosts_files: [${f.knownHostsFile}] }`,
        '  hosts:',
        `    jump: { address: ${f.jump.address}, user: root }`,
        `    h3: { address: ${h(3).address}, user: ${f.users.password.name}, via: jump }`,
        '',
      ].join('\n'),
    )
    writeFileSync(
      path.join(dir, 'become.yaml'),
      [
        'vars:',
        '  become_password: { secret: true, from_env: RB_TEST_SUDO }',
        'plays:',
        '  - hosts: h3',
        '    become: true',
        '    tasks:',
        '      - name: who am I',
        '        command: { cmd: id -un }',
        '        register: who',
        '      - name: a root-only file',
        `        copy: { dest: ${path.join(dir, 'root-only')}, content: "ok\\n", mode: "0600" }`,
        '      - assert: { that: ["who.stdout == \'root\'"] }',
        '',
      ].join('\n'),
    )
    const run = (args: string[], env: Record<string, string>) =>
      spawnSync(process.execPath, [path.resolve('cli/runbook.js'), ...args], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', ...env },
        encoding: 'utf8',
        timeout: 60_000,
      })
    const ok = run(['apply', 'become.yaml', '-i', 'inventory.yaml', '-v'], {
      RB_TEST_SUDO: password,
    })
    expect(ok.stderr).toBe('')
    expect(ok.status).toBe(0)
    expect(ok.stdout).toMatch(/h3\s+ok=1\s+changed=2\s+failed=0/)
    expect(statSync(path.join(dir, 'root-only')).uid).toBe(0)
    const json = run(['apply', 'become.yaml', '-i', 'inventory.yaml', '--json'], {
      RB_TEST_SUDO: password,
    })
    expect(json.status).toBe(0)
    const bad = run(['apply', 'become.yaml', '-i', 'inventory.yaml'], {
      RB_TEST_SUDO: 'Wr0ng-pass-88',
    })
    expect(bad.status).not.toBe(0)
    expect(bad.stdout + bad.stderr).toMatch(/sudo on h3 refused the password to run as root/)
    for (const r of [ok, json]) expect(r.stdout + r.stderr).not.toContain(password)
    expect(bad.stdout + bad.stderr).not.toContain('Wr0ng-pass-88')
    // nor any file the run wrote (besides the secrets store, which keeps a secret's values)
    const leaks = spawnSync('grep', ['-rlF', '--exclude-dir=secrets', password, dir], {
      encoding: 'utf8',
    })
    expect(leaks.stdout).toBe('')
    expect(f.log(h(3))).not.toContain(password)
  })

  it('writes through the atomic script as another user, with owner and mode', async () => {
    const conn = await newPool().get('h2', f.settings(h(2), { user: f.users.nopass.name }))
    const file = path.join(f.dir, 'h2', 'root-only', 'conf')
    await conn.exec(`mkdir -p ${path.dirname(file)} && chmod 0700 ${path.dirname(file)}`, {
      become: { method: 'sudo' },
    })
    await conn.writeFile(file, 'old\n', {
      become: { method: 'sudo' },
      mode: 0o640,
      owner: f.users.password.name,
    })
    const uid = Number((await conn.exec(`id -u ${f.users.password.name}`)).stdout)
    expect([statSync(file).mode & 0o7777, statSync(file).uid]).toEqual([0o640, uid])
    await conn.writeFile(file, 'new\n', { become: { method: 'sudo' } })
    expect([readFileSync(file, 'utf8'), statSync(file).mode & 0o7777, statSync(file).uid]).toEqual([
      'new\n',
      0o640,
      uid,
    ])
    expect((await conn.readFile(file, { become: { method: 'sudo' } }))!.toString()).toBe('new\n')
    await expect(conn.readFile(file)).rejects.toMatchObject({ code: 'E_CONNECTION' })
  })
})

describe('connection reuse and speed', () => {
  it('keeps one TCP connection per host and one to the jump host for 20 commands x 10 hosts', async () => {
    const before = new Map([f.jump, ...f.hosts].map((x) => [x.name, f.logins(x)]))
    const pool = newPool()
    const t0 = process.hrtime.bigint()
    const conns = await Promise.all(f.hosts.map((x) => pool.get(x.name, f.settings(x))))
    const connected = ms(t0)
    await Promise.all(
      conns.map(async (c) => {
        for (let i = 0; i < 20; i++) await c.exec(`test -d /etc && echo ${i}`, { idempotent: true })
      }),
    )
    const cold = ms(t0)
    const t1 = process.hrtime.bigint()
    await Promise.all(
      conns.map(async (c) => {
        for (let i = 0; i < 20; i++) await c.exec(`test -d /etc && echo ${i}`, { idempotent: true })
      }),
    )
    const warm = ms(t1)
    for (const x of f.hosts) {
      expect(f.tcpConnections(x), x.name).toBe(1)
      expect(f.logins(x) - before.get(x.name)!, x.name).toBe(1)
    }
    expect(f.tcpConnections(f.jump)).toBe(1)
    expect(f.logins(f.jump) - before.get('jump')!).toBe(1)
    expect(pool.info().every((t) => t.generation === 1)).toBe(true)
    figures['connect jump + 10 hosts (parallel)'] = `${connected.toFixed(0)} ms`
    figures['20 commands x 10 hosts, connecting included'] = `${cold.toFixed(0)} ms`
    figures['20 commands x 10 hosts, connections open'] = `${warm.toFixed(0)} ms`
    expect(warm).toBeLessThan(2000)
  })

  it('measures connect time and per-command latency, shell against exec channels', async () => {
    const pool = newPool()
    let t = process.hrtime.bigint()
    const c1 = await pool.get('h1', f.settings(h(1)))
    figures['connect jump + h1'] = `${ms(t).toFixed(0)} ms`
    t = process.hrtime.bigint()
    await pool.get('h2', f.settings(h(2)))
    figures['connect h2 through the open jump'] = `${ms(t).toFixed(0)} ms`
    t = process.hrtime.bigint()
    await c1.exec('true')
    figures['first command (opens the shell channel)'] = `${ms(t).toFixed(0)} ms`
    const shell: number[] = []
    for (let i = 0; i < 50; i++) {
      const s = process.hrtime.bigint()
      await c1.exec('true')
      shell.push(ms(s))
    }
    const client = (await c1.transport.ensure()) as Client
    const chan: number[] = []
    for (let i = 0; i < 10; i++) {
      const s = process.hrtime.bigint()
      expect(await execChannel(client, 'true')).toBe(0)
      chan.push(ms(s))
    }
    const median = (xs: number[]): number =>
      [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    figures['per command, persistent shell (median of 50)'] = `${median(shell).toFixed(1)} ms`
    figures['per command, new exec channel (median of 10)'] = `${median(chan).toFixed(1)} ms`
    expect(median(shell)).toBeLessThan(median(chan))
  })
})

describe('host keys', () => {
  it('records a new key with accept-new, then trusts it strictly', async () => {
    const project = path.join(f.dir, 'project-known-hosts')
    const settings = (mode: HostConnectionSettings['hostKeyChecking']): HostConnectionSettings =>
      f.settings(h(3), { knownHostsFiles: [], projectKnownHosts: project, hostKeyChecking: mode })
    await expect(newPool().get('h3', settings('strict'))).rejects.toMatchObject({
      code: 'E_HOST_KEY',
      message: expect.stringMatching(/is unknown/),
    })
    const events: string[] = []
    await newPool({ onEvent: (e) => events.push(e.type) }).get('h3', settings('accept-new'))
    expect(events).toContain('host-key-recorded')
    const recorded = readFileSync(project, 'utf8')
    expect(recorded.trim().split('\n')).toHaveLength(1)
    expect(h(3).hostKeys.map((k) => `${h(3).address} ${k}`)).toContain(recorded.trim())
    const conn = await newPool().get('h3', settings('strict'))
    expect((await conn.exec('echo ok')).stdout).toBe('ok\n')
  })

  it('trusts keys pinned from the console before the first connection', async () => {
    const console_ = [
      'cloud-init[77]: Cloud-init v. 23.1 running modules:final',
      '<14>Nov 22 00:05:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
      ...h(4).hostKeys.map(
        (k) =>
          `<14>Nov 22 00:05:01 cloud-init: 256 ${fp(k)} root@h4 (${k.startsWith('ssh-ed25519') ? 'ED25519' : 'ECDSA'})`,
      ),
      '<14>Nov 22 00:05:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----',
    ].join('\n')
    const pins = parseConsoleFingerprints(console_)
    expect(pins).toHaveLength(2)
    const project = path.join(f.dir, 'pinned-known-hosts')
    const conn = await newPool().get(
      'h4',
      f.settings(h(4), { knownHostsFiles: [], projectKnownHosts: project, pinnedHostKeys: pins }),
    )
    expect((await conn.exec('echo pinned')).stdout).toBe('pinned\n')
    expect(readFileSync(project, 'utf8')).toContain(h(4).address)
    const wrong = parseConsoleFingerprints(
      console_
        .replaceAll(fp(h(4).hostKeys[0]!), fp(h(5).hostKeys[0]!))
        .replaceAll(fp(h(4).hostKeys[1]!), fp(h(5).hostKeys[1]!)),
    )
    const refused = newPool().get(
      'h4',
      f.settings(h(4), { knownHostsFiles: [], pinnedHostKeys: wrong }),
    )
    await expect(refused).rejects.toMatchObject({
      code: 'E_HOST_KEY',
      message: expect.stringMatching(/does not match the keys pinned/),
    })
  })

  it('refuses a changed key in every mode, naming both fingerprints, before any command runs', async () => {
    const host = h(9)
    const oldKeys = [...host.hostKeys]
    await f.rotateHostKeys(host)
    const loginsBefore = f.logins(host)
    const marker = path.join(f.dir, 'h9', 'must-not-exist')
    for (const mode of ['strict', 'accept-new', 'off'] as const) {
      const pool = newPool()
      const err = await pool
        .get('h9', f.settings(host, { hostKeyChecking: mode }))
        .then((c) => c.exec(`touch ${marker}`))
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(err).toBeInstanceOf(RunbookError)
      const e = err as RunbookError
      expect(e.code).toBe('E_HOST_KEY')
      expect(e.host).toBe('h9')
      expect(e.message).toContain(`h9 (${host.address})`)
      expect(e.message).toContain(fp(oldKeys[0]!))
      expect(e.message).toContain(fp(host.hostKeys[0]!))
    }
    expect(existsSync(marker)).toBe(false)
    expect(f.logins(host)).toBe(loginsBefore)
    expect(f.log(host)).not.toMatch(/Accepted publickey/)
  })
})

describe('credentials', () => {
  it('asks for a key passphrase once for all hosts', async () => {
    const asked: string[] = []
    const pool = newPool({ passphrase: async (file) => (asked.push(file), f.keyPassphrase) })
    const [a, b] = await Promise.all(
      [5, 6].map((i) => pool.get(`h${i}`, f.settings(h(i), { privateKey: f.encryptedKeyPath }))),
    )
    expect((await a!.exec('echo a')).stdout + (await b!.exec('echo b')).stdout).toBe('a\nb\n')
    expect(asked).toEqual([f.encryptedKeyPath])
    const wrong = newPool({ passphrase: async () => 'nope' }).get(
      'h5',
      f.settings(h(5), { privateKey: f.encryptedKeyPath }),
    )
    await expect(wrong).rejects.toMatchObject({
      code: 'E_CONNECTION',
      hint: expect.stringMatching(/wrong passphrase/),
    })
  })

  it('authenticates with ssh-agent', async () => {
    const sock = path.join(f.dir, 'agent.sock')
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' })
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(20)
      await new Promise<void>((resolve, reject) => {
        const add = spawn('ssh-add', [f.keyPath], {
          env: { ...process.env, SSH_AUTH_SOCK: sock },
          stdio: 'ignore',
        })
        add.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh-add: ${code}`))))
      })
      const conn = await newPool().get('h6', f.settings(h(6), { privateKey: [], agent: sock }))
      expect((await conn.exec('echo agent')).stdout).toBe('agent\n')
    } finally {
      agent.kill('SIGTERM')
    }
  })

  it('honours ~/.ssh/config: alias, HostName, User, IdentityFile, ProxyJump', async () => {
    const cfg = path.join(f.dir, 'ssh_config')
    writeFileSync(
      cfg,
      [
        'Host rbt-web',
        `  HostName ${h(7).address}`,
        '  User root',
        '  ProxyJump rbt-bastion',
        `  IdentityFile ${f.keyPath}`,
        'Host rbt-bastion',
        `  HostName ${f.jump.address}`,
        '  User root',
        `  IdentityFile ${f.keyPath}`,
        '',
      ].join('\n'),
    )
    const pool = newPool({
      sshConfigFile: cfg,
      defaults: { knownHostsFiles: [f.knownHostsFile], agent: false },
    })
    const conn = await pool.get('web', { address: 'rbt-web' })
    expect((await conn.exec('hostname -I')).stdout.trim()).toBe(h(7).address)
    expect(pool.info().map((t) => t.label)).toEqual(['rbt-bastion', 'web'])
  })
  it('honours ProxyCommand: the connection runs over the system ssh -W through the jump host, and a dead command is named with its stderr', async () => {
    const cfg = path.join(f.dir, 'ssh_config_proxycommand')
    const proxy = `ssh -q -i ${f.keyPath} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${f.knownHostsFile} -W %h:%p root@${f.jump.address}`
    writeFileSync(
      cfg,
      [
        'Host rbt-pc',
        `  HostName ${h(8).address}`,
        '  User root',
        `  IdentityFile ${f.keyPath}`,
        `  ProxyCommand ${proxy}`,
        'Host rbt-pc-broken',
        `  HostName ${h(8).address}`,
        '  ProxyCommand sh -c "echo no route to %h >&2; exit 7"',
        '',
      ].join('\n'),
    )
    const pool = newPool({
      sshConfigFile: cfg,
      defaults: { knownHostsFiles: [f.knownHostsFile], agent: false },
    })
    const conn = await pool.get('pc', { address: 'rbt-pc' })
    expect((await conn.exec('hostname -I')).stdout.trim()).toBe(h(8).address)
    expect((await conn.exec('echo $SSH_CONNECTION')).stdout.split(' ')[0]).toBe('192.0.2.1')
    // no transport of ours to the jump host: the ssh -W process is the way there
    expect(pool.info().map((t) => t.label)).toEqual(['pc'])
    const running = () =>
      execFileSync('pgrep', ['-fc', '--', `-W ${h(8).address}:22 root@${f.jump.address}`], {
        encoding: 'utf8',
      }).trim()
    expect(running()).toBe('1')
    const broken = await pool
      .get('broken', { address: 'rbt-pc-broken', user: 'root', privateKey: f.keyPath })
      .catch((e: unknown) => e)
    expect(String(broken)).toContain(
      `through ProxyCommand \`sh -c "echo no route to ${h(8).address} >&2; exit 7"\`: the ProxyCommand exited (7): no route to ${h(8).address}`,
    )
    await pool.closeAll()
    let left = '1'
    for (let i = 0; i < 50 && left !== '0'; i++) {
      left = (() => {
        try {
          return running()
        } catch {
          return '0'
        }
      })()
      if (left !== '0') await sleep(50)
    }
    expect(left).toBe('0')
  })
})

describe('timeouts and dropped connections', () => {
  it('kills a command that times out and re-opens the shell clean', async () => {
    const conn = await newPool().get('h8', f.settings(h(8)))
    const started = Date.now()
    await expect(conn.exec('sleep 31.25; echo late', { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'E_TIMEOUT',
    })
    expect(Date.now() - started).toBeLessThan(1500)
    expect((await conn.exec('echo next')).stdout).toBe('next\n')
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 200)
    expect(await conn.exec('sleep 33.25', { signal: abort.signal })).toMatchObject({ rc: 137 })
    await sleep(1000)
    expect(f.inNs(h(8), "pgrep -f 'sleep 3[13].25' || true").trim()).toBe('')
    expect((await conn.exec('echo after abort')).stdout).toBe('after abort\n')
  })

  it('kills a timed-out command that runs as root through sudo with a password', async () => {
    const conn = await newPool().get(
      'h8',
      f.settings(h(8), { user: f.users.password.name, becomePassword: f.users.password.password }),
    )
    await expect(
      conn.exec('sleep 32.25', { timeoutMs: 300, become: { method: 'sudo' } }),
    ).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    await sleep(1500)
    expect(f.inNs(h(8), "pgrep -f 'sleep 3[2].25' || true").trim()).toBe('')
    expect((await conn.exec('id -un', { become: { method: 'sudo' } })).stdout).toBe('root\n')
  })

  it('retries an idempotent command once on a new connection', async () => {
    const pool = newPool()
    const conn = await pool.get('h10', f.settings(h(10)))
    await conn.exec('true')
    const running = conn.exec('sleep 1; echo done', { idempotent: true })
    await sleep(300)
    f.killSessions(h(10))
    expect(await running).toMatchObject({ rc: 0, stdout: 'done\n' })
    expect(conn.transport.generation).toBe(2)
    expect(f.tcpConnections(h(10))).toBe(1)
  })

  it('never runs a non-idempotent command twice: it fails saying it may or may not have run', async () => {
    const conn = await newPool().get('h10', f.settings(h(10)))
    const file = path.join(f.dir, 'h10', 'appended')
    await conn.exec('true')
    const running = conn.exec(`sleep 1; echo once >> ${file}`)
    await sleep(300)
    f.killSessions(h(10))
    await expect(running).rejects.toMatchObject({
      code: 'E_CONNECTION',
      message: expect.stringMatching(/may or may not have run/),
    })
    await sleep(1200)
    expect(readFileSync(file, 'utf8')).toBe('once\n')
    expect((await conn.exec(`cat ${file}`)).stdout).toBe('once\n')
  })

  it('re-opens the jump connection too when it drops', async () => {
    const pool = newPool()
    const conn = await pool.get('h10', f.settings(h(10)))
    await conn.exec('true')
    f.killSessions(f.jump)
    await sleep(200)
    expect((await conn.exec('echo back', { idempotent: true })).stdout).toBe('back\n')
    expect(pool.info().map((t) => [t.label, t.generation])).toEqual([
      ['jump', 2],
      ['h10', 2],
    ])
  })

  it('leaves the old file intact when the connection dies mid-write, and converges on the next write', async () => {
    const pool = newPool()
    const host = h(5)
    const conn: SshConnection = await pool.get('h5', f.settings(host))
    const file = path.join(f.dir, 'h5', 'atomic.conf')
    await conn.writeFile(file, 'old\n')
    const writing = conn.writeFile(file, Buffer.alloc(200 * 1024 * 1024, 'n')).then(
      () => 'written',
      (e: unknown) => e,
    )
    const tmpSeen = async (): Promise<boolean> => {
      for (let i = 0; i < 2000; i++) {
        if (readdirSync(path.dirname(file)).some((n) => n.startsWith('.atomic.conf.rb-')))
          return true
        await sleep(2)
      }
      return false
    }
    expect(await tmpSeen()).toBe(true)
    f.stop(host)
    const outcome = await writing
    expect(outcome).toBeInstanceOf(RunbookError)
    expect((outcome as RunbookError).code).toBe('E_CONNECTION')
    expect(readFileSync(file, 'utf8')).toBe('old\n')
    await f.start(host)
    await conn.writeFile(file, 'new\n')
    expect(readFileSync(file, 'utf8')).toBe('new\n')
  })
})

describe('the connection factory', () => {
  it('connects from inventory variables through a jump host named in via, and drops a host', async () => {
    const inventory: Record<string, Record<string, unknown>> = {
      jump: { ansible_host: f.jump.address, ansible_user: 'root' },
      h1: { ansible_host: h(1).address, ansible_user: 'root', via: 'jump' },
    }
    const factory = sshConnectionFactory({
      sshConfigFile: false,
      defaults: { knownHostsFiles: [f.knownHostsFile], agent: false, privateKey: f.keyPath },
    })
    try {
      const varsOf = (name: string) => inventory[name] ?? {}
      const conn = await factory.get('h1', varsOf)
      expect((await conn.exec('hostname -I')).stdout.trim()).toBe(h(1).address)
      const before = f.logins(h(1))
      await factory.drop('h1')
      expect(f.tcpConnections(h(1))).toBe(0)
      const again = await factory.get('h1', varsOf)
      expect(again).not.toBe(conn)
      expect((await again.exec('echo again')).stdout).toBe('again\n')
      expect(f.logins(h(1)) - before).toBe(1)
      expect(f.tcpConnections(f.jump)).toBe(1)
    } finally {
      await factory.closeAll()
    }
  })
})

describe('runbook exec', () => {
  it('runs one command on many hosts at once and prints Ansible-like blocks', async () => {
    const pool = newPool()
    const blocks: string[] = []
    const hosts = [1, 2, 3].map((i) => ({ name: `h${i}`, settings: f.settings(h(i)) }))
    hosts.push({
      name: 'nowhere',
      settings: f.settings(h(1), { address: '192.0.2.99', connectTimeoutMs: 1500 }),
    })
    const results = await runAdhoc(
      hosts,
      'hostname -I | cut -d" " -f1; test "$(hostname -I | cut -d" " -f1)" != 192.0.2.12',
      { pool, write: (b) => blocks.push(b) },
    )
    expect(results.map((r) => r.rc)).toEqual([0, 1, 0, undefined])
    expect(blocks).toContain(`h1 | CHANGED | rc=0 >>\n${h(1).address}\n`)
    expect(blocks).toContain(`h2 | FAILED | rc=1 >>\n${h(2).address}\n`)
    expect(formatAdhocResult(results[3]!)).toMatch(/^nowhere \| UNREACHABLE! => /)
  })
})
