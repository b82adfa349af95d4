import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const BIN = path.resolve('cli/runbook.js')
const SECRET = 'Sup3r-s3cret-pass'

function cli(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', KA_PASS: SECRET, ...env },
    encoding: 'utf8',
  })
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
}

function project(runbook: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-cli-'))
  writeFileSync(path.join(dir, 'runbook.yaml'), runbook.replaceAll('OUT', dir))
  return dir
}

const LOCAL = `
name: local demo
vars:
  vip: 192.0.2.254
  auth_pass: { secret: true, from_env: KA_PASS }
plays:
  - name: local files
    hosts: localhost
    tasks:
      - name: Render config
        template:
          dest: OUT/keepalived.conf
          content: |
            virtual_ipaddress { {{vip}}/24 }
            auth_pass {{auth_pass}}
        notify: reload
      - name: Make a marker once
        command:
          cmd: touch OUT/marker
          creates: OUT/marker
    handlers:
      - name: reload
        shell: echo reloaded >> OUT/handler.log
`

describe('runbook CLI', () => {
  it('runs 30 hosts at once with nothing on stderr (every command in flight listens to the run’s abort)', () => {
    const dir = project(`
plays:
  - hosts: all
    tasks:
      - name: wait a little on every host at once
        command: sleep 0.3
`)
    const hosts = Array.from({ length: 30 }, (_, i) => `    h${i}: { connection: local }`)
    writeFileSync(path.join(dir, 'inventory.yaml'), `all:\n  hosts:\n${hosts.join('\n')}\n`)
    const r = cli(dir, ['apply', 'runbook.yaml', '-i', 'inventory.yaml', '-f', '30'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/h29\s+ok=0\s+changed=1\s+failed=0/)
  })

  it('rejects a malformed runbook with every problem located, and runs nothing', () => {
    const dir = project(`
plays:
  - hosts: localhost
    tasks:
      - name: would write
        copy: { dest: OUT/written, content: x }
      - name: Install keepalived
        apt: { pkgs: keepalived }
      - name: typo module
        templte: { dest: /tmp/x }
      - name: wrong type
        wait_for: { port: "not a port", timeout: 1 }
      - debug: { msg: "{{undefined_thing}}" }
      - debug: { msg: "{{#each}}" }
`)
    const r = cli(dir, ['apply', 'runbook.yaml'])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(
      /runbook\.yaml:8:16: task "Install keepalived": apt: unknown parameter 'pkgs'/,
    )
    expect(r.err).toMatch(
      /runbook\.yaml:10:9: task "typo module": unknown module 'templte' \(did you mean 'template'\?\)/,
    )
    expect(r.err).toMatch(/runbook\.yaml:12:27: task "wrong type": wait_for: /)
    expect(r.err).toMatch(/runbook\.yaml:13:\d+: .*undefined variable 'undefined_thing'/)
    expect(r.err).toMatch(/runbook\.yaml:14:23: .*template syntax error/)
    expect(r.err).toMatch(/\^/)
    expect(existsSync(path.join(dir, 'written'))).toBe(false)
    const bad = project('plays:\n  - hosts: localhost\n    tasks: [\n')
    const y = cli(bad, ['validate', 'runbook.yaml'])
    expect(y.code).toBe(1)
    // reported where the bracket opens, not at the end of the file
    expect(y.err).toMatch(/runbook\.yaml:3:12: this '\[' is not closed/)
  })

  it('applies a local runbook, then reports changed=0, and plan exits 0', () => {
    const dir = project(LOCAL)
    expect(cli(dir, ['plan', 'runbook.yaml', '--detailed-exitcode']).code).toBe(2)
    const first = cli(dir, ['apply', 'runbook.yaml'])
    expect(first.code).toBe(0)
    expect(first.out).toMatch(/changed=3/)
    expect(readFileSync(path.join(dir, 'handler.log'), 'utf8')).toBe('reloaded\n')
    const second = cli(dir, ['apply', 'runbook.yaml'])
    expect(second.code).toBe(0)
    expect(second.out).toMatch(/localhost\s+ok=2\s+changed=0/)
    expect(readFileSync(path.join(dir, 'handler.log'), 'utf8')).toBe('reloaded\n')
    const plan = cli(dir, ['plan', 'runbook.yaml', '--detailed-exitcode'])
    expect(plan.code).toBe(0)
    expect(plan.out).toMatch(/No changes/)
  })

  it('writes NDJSON with --json, ending in the summary', () => {
    const dir = project(LOCAL)
    const r = cli(dir, ['apply', 'runbook.yaml', '--json'])
    expect(r.code).toBe(0)
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; changed?: number })
    expect(lines.length).toBeGreaterThan(4)
    const last = lines[lines.length - 1]
    expect(last?.type).toBe('summary')
    expect(last?.changed).toBe(3)
    expect(lines.filter((l) => l.type === 'summary')).toHaveLength(1)
  })

  it('never prints a secret: plan, apply --diff, --json, errors', () => {
    const dir = project(`
vars:
  auth_pass: { secret: true, from_env: KA_PASS }
plays:
  - hosts: localhost
    tasks:
      - name: Render config
        template:
          dest: OUT/keepalived.conf
          content: "auth_pass {{auth_pass}}\\n"
      - name: fails loudly
        shell: echo "the pass is {{auth_pass}}" >&2; exit 3
`)
    const outputs = [
      cli(dir, ['plan', 'runbook.yaml']),
      cli(dir, ['apply', 'runbook.yaml', '--diff']),
      cli(dir, ['apply', 'runbook.yaml', '--json', '--diff']),
      cli(dir, ['plan', 'runbook.yaml', '--json']),
    ]
    expect(outputs[1]?.code).toBe(1)
    for (const o of outputs) {
      expect(o.out + o.err).not.toContain(SECRET)
    }
    expect(outputs[1]?.out + (outputs[1]?.err ?? '')).toMatch(/the pass is \*\*\*/)
    expect(readFileSync(path.join(dir, 'keepalived.conf'), 'utf8')).toContain(SECRET)
    const journal = readFileSync(
      path.join(
        dir,
        '.runbook',
        readdirSync(path.join(dir, '.runbook'))[0] as string,
        'journal.json',
      ),
      'utf8',
    )
    expect(journal).not.toContain(SECRET)
  })

  it(
    'lets only one of two concurrent applies run; the journal stays valid',
    { timeout: 60_000 },
    async () => {
      const dir = project(
        `
plays:
  - hosts: localhost
    tasks:
      - name: slow
        shell: sleep 8; echo done > OUT/slow
        args_placeholder: true
`.replace('        args_placeholder: true\n', ''),
      )
      const start = (): Promise<{ code: number; err: string }> =>
        new Promise((resolve) => {
          const p = spawn(process.execPath, [BIN, 'apply', 'runbook.yaml'], {
            cwd: dir,
            env: { ...process.env, NO_COLOR: '1' },
          })
          let err = ''
          p.stderr.on('data', (b: Buffer) => (err += b.toString()))
          p.on('exit', (code) => resolve({ code: code ?? -1, err }))
        })
      const a = start()
      const lockFile = (): string | undefined => {
        const root = path.join(dir, '.runbook')
        if (!existsSync(root)) return undefined
        const sub = readdirSync(root)[0]
        return sub && existsSync(path.join(root, sub, 'lock'))
          ? path.join(root, sub, 'lock')
          : undefined
      }
      for (let i = 0; i < 200 && !lockFile(); i++) await new Promise((r) => setTimeout(r, 50))
      expect(lockFile()).toBeDefined()
      const b = await start()
      const first = await a
      expect(first.code).toBe(0)
      expect(b.code).toBe(1)
      expect(b.err).toMatch(/another run of this runbook holds the lock: pid \d+/)
      const stateDir = path.join(
        dir,
        '.runbook',
        readdirSync(path.join(dir, '.runbook'))[0] as string,
      )
      const journal = JSON.parse(readFileSync(path.join(stateDir, 'journal.json'), 'utf8')) as {
        runs: { status: string }[]
      }
      expect(journal.runs.map((r) => r.status)).toEqual(['ok'])
      const waited = spawnSync(
        process.execPath,
        [BIN, 'apply', 'runbook.yaml', '--lock-timeout', '10'],
        { cwd: dir, encoding: 'utf8' },
      )
      expect(waited.status).toBe(0)
    },
  )

  it('apply --check changes nothing; destroy removes what apply created, newest first', () => {
    const dir = project(`
plays:
  - hosts: localhost
    tasks:
      - file: { path: OUT/made, state: directory }
      - copy: { dest: OUT/made/a.conf, content: "a\\n" }
      - copy: { dest: OUT/preexisting, content: "changed\\n" }
`)
    writeFileSync(path.join(dir, 'preexisting'), 'old\n')
    const check = cli(dir, ['apply', 'runbook.yaml', '--check'])
    expect(check.code).toBe(0)
    expect(existsSync(path.join(dir, 'made'))).toBe(false)
    expect(cli(dir, ['apply', 'runbook.yaml']).code).toBe(0)
    expect(readFileSync(path.join(dir, 'made', 'a.conf'), 'utf8')).toBe('a\n')
    const plan = cli(dir, ['plan', 'runbook.yaml', '--destroy'])
    expect(plan.out).toMatch(/- file .*made\/a\.conf/)
    expect(plan.out).toMatch(/Plan: 0 to create, 0 to change, 2 to destroy/)
    const refused = cli(dir, ['destroy', 'runbook.yaml'])
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(/--auto-approve/)
    expect(existsSync(path.join(dir, 'made', 'a.conf'))).toBe(true)
    const d = cli(dir, ['destroy', 'runbook.yaml', '--auto-approve'])
    expect(d.code).toBe(0)
    expect(existsSync(path.join(dir, 'made'))).toBe(false)
    expect(readFileSync(path.join(dir, 'preexisting'), 'utf8')).toBe('changed\n')
    expect(cli(dir, ['destroy', 'runbook.yaml', '--auto-approve']).out).toMatch(
      /Nothing to destroy/,
    )
  })
})
