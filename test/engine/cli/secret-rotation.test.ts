/**
 * A rotated secret never shows: the previous value is still in the file on the host, so it would
 * appear in the diff of every plan and apply, and in what a task reads back. Rotates a secret
 * through the real CLI on the controller (template + command) and greps every output path
 * (plan, plan --json, plan --out, apply --diff, apply --json, -v) and every file the tool wrote
 * except the secrets store.
 */
import { spawnSync } from 'node:child_process'
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const BIN = path.resolve('cli/runbook.js')

function cli(dir: string, args: string[], pw: string): { code: number; text: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', AUTH_PASS: pw },
    encoding: 'utf8',
  })
  return { code: r.status ?? -1, text: `${r.stdout}\n${r.stderr}` }
}

/** Every file under dir, except the secrets store. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile() && !f.split(path.sep).includes('secrets'))
}

const RUNBOOK = `
vars:
  auth_pass: { secret: true, from_env: AUTH_PASS }
plays:
  - hosts: localhost
    tasks:
      - name: read before
        shell: { cmd: cat HOST/keepalived.conf || true }
        register: old
        changed_when: false
        check_mode: false
      - name: show old
        debug: { var: old.stdout }
      - name: config
        template: { dest: HOST/keepalived.conf, src: keepalived.conf.hbs }
      - name: read back
        command: { cmd: cat HOST/keepalived.conf }
        register: conf
        changed_when: false
      - name: show
        debug: { var: conf.stdout }
`

describe('a rotated secret', () => {
  it('is masked on both sides of every diff and in everything read back, on every output path', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-rotate-'))
    const host = path.join(dir, 'host')
    mkdirSync(host)
    writeFileSync(path.join(dir, 'runbook.yaml'), RUNBOOK.replaceAll('HOST', host))
    writeFileSync(
      path.join(dir, 'keepalived.conf.hbs'),
      'vrrp_instance VI_1 {\n  state BACKUP\n  authentication {\n    auth_type PASS\n    auth_pass {{auth_pass}}\n  }\n}\n',
    )
    const values = ['First-s3cret-1', 'Second-s3cret-2', 'Third-s3cret-3', 'Fourth-s3cret-4']
    const outputs: string[] = []
    const run = (args: string[], pw: string): string => {
      const r = cli(dir, args, pw)
      expect(r.code, r.text).toBe(0)
      outputs.push(r.text)
      return r.text
    }
    run(['apply', 'runbook.yaml', '--diff', '-v'], values[0] ?? '')
    expect(readFileSync(path.join(host, 'keepalived.conf'), 'utf8')).toContain(values[0])

    // rotation 1: every plan form, then apply --diff
    const plan = run(['plan', 'runbook.yaml'], values[1] ?? '')
    expect(plan).toMatch(/-\s+auth_pass \*\*\*\n/)
    expect(plan).toMatch(/\+\s+auth_pass \*\*\* \(changed\)/)
    expect(plan).toContain('auth_type PASS')
    run(['plan', 'runbook.yaml', '--json'], values[1] ?? '')
    run(['plan', 'runbook.yaml', '--out', 'rotate.plan'], values[1] ?? '')
    const applied = run(['apply', 'runbook.yaml', '--diff', '-v'], values[1] ?? '')
    // read back from the host before the change: the previous value, masked
    expect(applied).toMatch(/show old.*auth_pass \*\*\*/s)

    // rotation 2: apply --json, -v
    const json = run(['apply', 'runbook.yaml', '--diff', '--json', '-v'], values[2] ?? '')
    expect(json).toContain('auth_pass *** (changed)')

    // rotation 3 after the state directory forgot the earlier values: the value on the host is
    // masked by the shape of the line that holds the secret
    const written = () =>
      filesUnder(dir)
        .filter((f) => !f.startsWith(host))
        .map((f) => `${f}\n${readFileSync(f, 'utf8')}`)
    const before = written()
    expect(before.some((f) => f.includes('journal.json'))).toBe(true)
    expect(before.some((f) => f.includes('rotate.plan'))).toBe(true)
    rmSync(path.join(dir, '.runbook'), { recursive: true })
    const forgot = run(['plan', 'runbook.yaml'], values[3] ?? '')
    expect(forgot).toMatch(/-\s+auth_pass \*\*\*\n/)

    const everything = [...outputs, ...before, ...written()].join('\n')
    for (const v of values) expect(everything).not.toContain(v)
  }, 60_000)
})
