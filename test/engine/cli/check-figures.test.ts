/**
 * --json carries a check's measurements as data (its registered `result` on its task_end), so a
 * pipeline can read a failover gap or an LVS spread without parsing the drawing; secrets redacted.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const BIN = path.resolve('cli/runbook.js')

describe('--json figures of checks', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-figures-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('puts a check’s registered result on its task_end as data, secrets redacted', () => {
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      [
        'name: figures',
        'vars:',
        '  token: { secret: true, from_env: FIG_TOKEN }',
        'plays:',
        '  - hosts: localhost',
        '    tasks:',
        '      - name: a check',
        '        wait_for: { path: "' + path.join(dir, 'runbook.yaml') + '", timeout: 2 }',
        '      - name: not a check',
        '        debug: { msg: "token {{token}}" }',
        '',
      ].join('\n'),
    )
    const r = spawnSync(process.execPath, [BIN, 'apply', 'runbook.yaml', '--json'], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', FIG_TOKEN: 'figure-secret-1' },
      encoding: 'utf8',
    })
    expect(r.status, r.stderr).toBe(0)
    const ends = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; task?: string; result?: unknown })
      .filter((e) => e.type === 'task_end')
    const check = ends.find((e) => e.task === 'a check')
    expect(check?.result).toMatchObject({ failed: false })
    expect(typeof check?.result).toBe('object')
    expect(ends.find((e) => e.task === 'not a check')?.result).toMatchObject({ msg: 'token ***' })
    expect(r.stdout).not.toContain('figure-secret-1')
  })
})
