/**
 * Saved plans through the CLI: `plan --out FILE`, then `apply FILE` applies exactly that plan, or
 * refuses (changing nothing) when a file it read changed or the hosts drifted since.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const BIN = path.resolve('cli/runbook.js')
const SECRET = 'Plan-s3cret-value'

function cli(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', PW: SECRET, ...env },
    encoding: 'utf8',
  })
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
}

const RUNBOOK = `
vars:
  pw: { secret: true, from_env: PW }
  port: 80
plays:
  - hosts: localhost
    tasks:
      - name: config
        template: { dest: OUT/app.conf, src: app.conf.hbs }
      - name: marker
        command: { cmd: touch OUT/marker, creates: OUT/marker }
`

function project(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-plan-'))
  writeFileSync(path.join(dir, 'runbook.yaml'), RUNBOOK.replaceAll('OUT', dir))
  writeFileSync(path.join(dir, 'app.conf.hbs'), 'port {{port}}\npass {{pw}}\n')
  return dir
}

describe('saved plans', () => {
  it('plan --out then apply FILE applies exactly the plan, with its options; the file holds no secret', () => {
    const dir = project()
    const plan = cli(dir, ['plan', 'runbook.yaml', '-e', 'port=8080', '--out', 'tf.plan'])
    expect(plan.code, plan.err).toBe(0)
    expect(plan.out).toContain('Saved the plan to tf.plan')
    const text = readFileSync(path.join(dir, 'tf.plan'), 'utf8')
    expect(text).not.toContain(SECRET)
    expect(text).toContain('+port 8080')
    expect(statSync(path.join(dir, 'tf.plan')).mode & 0o777).toBe(0o600)
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)

    const apply = cli(dir, ['apply', 'tf.plan'])
    expect(apply.code, apply.err).toBe(0)
    expect(apply.out).toContain('The saved plan tf.plan still holds (2 changes); applying it.')
    // the -e given to plan is the one applied
    expect(readFileSync(path.join(dir, 'app.conf'), 'utf8')).toBe(`port 8080\npass ${SECRET}\n`)
    expect(apply.out + apply.err).not.toContain(SECRET)

    // applied once, the plan no longer holds: a second apply refuses and changes nothing
    writeFileSync(path.join(dir, 'app.conf'), 'port 8080\npass edited by hand\n')
    const again = cli(dir, ['apply', 'tf.plan'])
    expect(again.code).toBe(1)
    expect(again.err).toMatch(
      /the saved plan tf\.plan is stale: the infrastructure changed since it was made/,
    )
    expect(again.err).toContain('planned, not needed now: play 0 / marker / localhost')
    expect(readFileSync(path.join(dir, 'app.conf'), 'utf8')).toBe(
      'port 8080\npass edited by hand\n',
    )
  })

  it('refuses when a file the plan read changed: the runbook, or a template', () => {
    const dir = project()
    expect(cli(dir, ['plan', 'runbook.yaml', '-o', 'a.plan']).code).toBe(0)
    writeFileSync(path.join(dir, 'app.conf.hbs'), 'port {{port}}\n')
    const r = cli(dir, ['apply', 'a.plan'])
    expect(r.code).toBe(1)
    expect(r.err).toContain(
      `the saved plan a.plan is stale: files changed since it was made:\n  ${path.join(dir, 'app.conf.hbs')}: changed`,
    )
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)
    expect(existsSync(path.join(dir, 'marker'))).toBe(false)
    writeFileSync(path.join(dir, 'app.conf.hbs'), 'port {{port}}\npass {{pw}}\n')
    expect(cli(dir, ['plan', 'runbook.yaml', '-o', 'b.plan']).code).toBe(0)
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      `${readFileSync(path.join(dir, 'runbook.yaml'), 'utf8')}\n# edited\n`,
    )
    const rb = cli(dir, ['apply', 'b.plan'])
    expect(rb.code).toBe(1)
    expect(rb.err).toContain(`${path.join(dir, 'runbook.yaml')}: changed`)
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)
  })

  it('refuses when a secret changed (the content digest in the plan moves), and when the hosts drifted', () => {
    const dir = project()
    expect(cli(dir, ['plan', 'runbook.yaml', '-o', 'a.plan']).code).toBe(0)
    const r = cli(dir, ['apply', 'a.plan'], { PW: 'another-secret' })
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/needed now, not planned: play 0 \/ config \/ localhost/)
    expect(r.err).not.toContain('another-secret')
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)
    writeFileSync(path.join(dir, 'marker'), '')
    const drift = cli(dir, ['apply', 'a.plan'])
    expect(drift.code).toBe(1)
    expect(drift.err).toContain('planned, not needed now: play 0 / marker / localhost')
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)
  })

  it('a secret set with -e is redacted like the others, and never stored in a saved plan', () => {
    const dir = project()
    const r = cli(dir, ['apply', 'runbook.yaml', '-e', 'pw=Given-On-The-Command-Line', '--diff'])
    expect(r.code, r.err).toBe(0)
    expect(readFileSync(path.join(dir, 'app.conf'), 'utf8')).toBe(
      'port 80\npass Given-On-The-Command-Line\n',
    )
    expect(r.out + r.err).not.toContain('Given-On-The-Command-Line')
    expect(r.out).toContain('+pass ***')
    const p = cli(dir, ['plan', 'runbook.yaml', '-e', 'pw=Another-One', '--out', 's.plan'])
    expect(p.code).toBe(1)
    expect(p.err).toContain('not saving the plan: -e sets the secret pw')
    expect(p.out + p.err).not.toContain('Another-One')
    expect(existsSync(path.join(dir, 's.plan'))).toBe(false)
  })

  it('runbook show prints a saved plan with what it was made from', () => {
    const dir = project()
    expect(cli(dir, ['plan', 'runbook.yaml', '-e', 'port=81', '--out', 'a.plan']).code).toBe(0)
    const r = cli(dir, ['show', 'a.plan'])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(
      new RegExp(
        `^Saved plan a\\.plan, made \\S+: ${path.join(dir, 'runbook.yaml').replaceAll('.', '\\.')} -e port=81\n`,
      ),
    )
    expect(r.out).toContain('+port 81')
    expect(r.out).toContain('Plan: 1 to create, 0 to change, 0 to destroy, 1 to run.')
    expect(r.out).not.toContain(SECRET)
    expect(cli(dir, ['show', 'runbook.yaml']).err).toContain(
      'runbook.yaml is not a plan saved by `runbook plan --out`',
    )
  })

  it('does not take run options beside a saved plan, nor --out with --destroy', () => {
    const dir = project()
    expect(cli(dir, ['plan', 'runbook.yaml', '-o', 'a.plan']).code).toBe(0)
    const r = cli(dir, ['apply', 'a.plan', '-e', 'port=1', '--limit', 'localhost', '--check'])
    expect(r.code).toBe(1)
    expect(r.err).toContain(
      'a saved plan carries its own options: --var, --limit, --check cannot be given with it',
    )
    expect(existsSync(path.join(dir, 'app.conf'))).toBe(false)
    expect(cli(dir, ['plan', 'runbook.yaml', '--destroy', '-o', 'd.plan']).err).toContain(
      'plan --out saves an apply plan; it does not go with --destroy',
    )
    writeFileSync(path.join(dir, 'bad.plan'), '{"format": "runbook-plan", "version": 9}')
    expect(cli(dir, ['apply', 'bad.plan']).err).toContain(
      'bad.plan: a saved plan of an unknown version or damaged',
    )
  })
})
