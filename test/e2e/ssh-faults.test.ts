/**
 * Dead network paths over real sshd (issue 11, items 5 and 6): the broken hop is blamed, and the
 * total wait before a host is unreachable stays within 20 s with the default settings.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConnectionPool } from '../../engine/connection/pool.ts'
import { startSshHosts, type SshHostsFixture } from '../fixtures/ssh-hosts.ts'

let f: SshHostsFixture
const pools: ConnectionPool[] = []
const figures: Record<string, string> = {}

function newPool(): ConnectionPool {
  const p = new ConnectionPool({ sshConfigFile: false })
  pools.push(p)
  return p
}

beforeAll(async () => {
  f = await startSshHosts({ count: 2, tag: 'flt', rootNet: '198.51.100.144/28' })
})

afterAll(async () => {
  await Promise.allSettled(pools.map((p) => p.closeAll()))
  await f?.teardown()
  console.log(`ssh fault figures: ${JSON.stringify(figures)}`)
})

/** Silently drops every packet of the jump host's outer link, as a dead path does. */
function cutJump(on: boolean): void {
  f.inNs(f.jump, `ip link set eth0 ${on ? 'down' : 'up'}`)
}

describe('a dead jump host', () => {
  it('is named, with the chain, when a new target is reached through it', async () => {
    const pool = newPool()
    const h1 = await pool.get('h1', f.settings(f.hosts[0]!))
    await h1.exec('true')
    cutJump(true)
    try {
      const started = Date.now()
      const err = await pool
        .get('h2', f.settings(f.hosts[1]!))
        .then((c) => c.exec('true'))
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        )
      const took = Date.now() - started
      figures['new target behind a dead jump: error after ms'] = String(took)
      expect(err?.message).toMatch(/jump host jump \(.*\) does not answer \(chain: jump -> h2\)/)
      expect(took).toBeLessThanOrEqual(20_000)
    } finally {
      cutJump(false)
    }
  })

  it('a command on a host behind it fails within 20 s, naming the jump host', async () => {
    const pool = newPool()
    const h1 = await pool.get('h1', f.settings(f.hosts[0]!))
    await h1.exec('true')
    cutJump(true)
    try {
      const started = Date.now()
      const err = await h1.exec('true', { idempotent: true }).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      const took = Date.now() - started
      figures['command behind a dead jump: error after ms'] = String(took)
      expect(err?.message).toMatch(/jump/)
      expect(took).toBeLessThanOrEqual(20_000)
    } finally {
      cutJump(false)
    }
  })
})

describe('waits are visible', () => {
  it('a run says what it waits for and how long at most, and gives up within 20 s', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-wait-'))
    const hostVars = (h: SshHostsFixture['jump']) =>
      `ansible_host: ${h.address}, port: ${h.port}, user: root, private_key: ${f.keyPath}, known_hosts_files: [${f.knownHostsFile}]`
    writeFileSync(
      path.join(dir, 'inventory.yaml'),
      `all:\n  hosts:\n    jump: { ${hostVars(f.jump)} }\n    h1: { ${hostVars(f.hosts[0]!)}, via: jump }\n`,
    )
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      'plays:\n  - hosts: h1\n    tasks:\n      - command: "true"\n',
    )
    cutJump(true)
    try {
      const started = Date.now()
      const r = spawnSync(
        process.execPath,
        [path.resolve('cli/runbook.js'), 'apply', 'runbook.yaml', '-i', 'inventory.yaml', '--json'],
        { cwd: dir, encoding: 'utf8' },
      )
      const took = Date.now() - started
      figures['run against a host behind a dead jump: exit after ms'] = String(took)
      const events = r.stdout
        .split('\n')
        .filter(Boolean)
        .map(
          (l) => JSON.parse(l) as { type: string; message?: string; status?: string; msg?: string },
        )
      expect(events.find((e) => e.type === 'task_progress')?.message).toBe(
        'connecting to h1 via jump (gives up after 8 s)',
      )
      const end = events.find((e) => e.type === 'task_end')
      expect(end?.status).toBe('unreachable')
      expect(end?.msg).toMatch(/jump/)
      expect(took).toBeLessThanOrEqual(20_000)
    } finally {
      cutJump(false)
    }
  })
})

describe('a host just created', () => {
  it('is connected with a bounded, reported retry while its path is not there yet', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-fresh-'))
    const h = f.hosts[1]!
    const common = `user: root, private_key: ${f.keyPath}, known_hosts_files: [${f.knownHostsFile}]`
    writeFileSync(
      path.join(dir, 'inventory.yaml'),
      `all:\n  hosts:\n    jump: { ansible_host: ${f.jump.address}, port: ${f.jump.port}, ${common} }\n`,
    )
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      [
        'plays:',
        '  - hosts: localhost',
        '    tasks:',
        `      - add_host: { name: fresh, groups: [fresh_vms], address: ${h.address}, via: jump, vars: { private_key: ${f.keyPath}, known_hosts_files: [${f.knownHostsFile}] }, user: root }`,
        '  - hosts: fresh_vms',
        '    tasks:',
        '      - command: "true"',
        '',
      ].join('\n'),
    )
    cutJump(true)
    const started = Date.now()
    const child = spawn(
      process.execPath,
      [path.resolve('cli/runbook.js'), 'apply', 'runbook.yaml', '-i', 'inventory.yaml', '--json'],
      { cwd: dir },
    )
    let stdout = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    const restore = setTimeout(() => cutJump(false), 5000)
    const code = await new Promise<number | null>((res) => child.once('exit', res))
    clearTimeout(restore)
    cutJump(false)
    figures['just created host reachable after ms'] = String(Date.now() - started)
    const events = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; message?: string; status?: string })
    expect(code, stdout).toBe(0)
    expect(
      events.some(
        (e) =>
          e.type === 'task_progress' &&
          /fresh was just created: connect attempt 1 failed/.test(e.message ?? ''),
      ),
    ).toBe(true)
  })
})
