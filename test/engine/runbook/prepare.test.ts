import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../../engine/errors.ts'
import { prepare } from '../../../engine/prepare.ts'
import { registry } from '../../../modules/index.ts'

function write(text: string, name = 'rb.yaml'): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-prep-'))
  writeFileSync(path.join(dir, name), text)
  return path.join(dir, name)
}

describe('prepare', () => {
  it('asks for a prompted secret and registers it for redaction', async () => {
    const file = write(
      'vars:\n  pw: { secret: true, prompt: "Password" }\nplays:\n  - hosts: localhost\n    tasks: [{ debug: { msg: "{{pw}}" } }]\n',
    )
    const asked: string[] = []
    const p = await prepare({
      runbookFile: file,
      registry,
      env: {},
      prompt: async (q) => (asked.push(q), 'typed-secret'),
      stateRoot: path.dirname(file),
    })
    expect(asked).toEqual(['Password'])
    expect(p.secretVars.pw).toBe('typed-secret')
    expect(p.redactor.text('x typed-secret y')).toBe('x *** y')
    expect(p.runbook.vars).not.toHaveProperty('pw')
  })

  it('reports a missing secret with the position of its declaration', async () => {
    const file = write(
      'vars:\n  a: 1\n  pw: { secret: true, from_env: NOT_SET_ANYWHERE }\nplays:\n  - hosts: localhost\n    tasks: []\n',
    )
    const e = await prepare({
      runbookFile: file,
      registry,
      env: {},
      stateRoot: path.dirname(file),
    }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RunbookErrors)
    const err = (e as RunbookErrors).errors[0]
    expect(err?.message).toMatch(/NOT_SET_ANYWHERE is not set/)
    expect(err?.pos).toMatchObject({ line: 3, col: 7 })
  })

  it('takes the inventory named by the runbook, and --var values over everything', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-prep-'))
    writeFileSync(path.join(dir, 'inv.yaml'), 'all:\n  hosts:\n    web1: { connection: local }\n')
    writeFileSync(path.join(dir, 'vars.yaml'), 'port: 8080\n')
    writeFileSync(
      path.join(dir, 'rb.yaml'),
      'inventory: inv.yaml\nvars: { port: 80 }\nplays:\n  - hosts: web1\n    tasks: [{ debug: { msg: "{{port}} {{extra}}" } }]\n',
    )
    const p = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      varFiles: [path.join(dir, 'vars.yaml')],
      vars: ['extra=x', 'list=[1, 2]'],
      env: {},
      stateRoot: dir,
    })
    expect(p.inventory.match('all')).toEqual(['web1'])
    expect(p.extraVars).toEqual({ port: 8080, extra: 'x', list: [1, 2] })
  })

  it('checks template files before anything runs, pointing into the template', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-prep-'))
    writeFileSync(path.join(dir, 'k.hbs'), 'router_id {{upper name}}\n  vip {{vpi}}/{{extra}}\n')
    writeFileSync(
      path.join(dir, 'rb.yaml'),
      'vars: { vip: 1, name: n }\nplays:\n  - hosts: localhost\n    tasks:\n      - template: { src: k.hbs, dest: /tmp/x, vars: { extra: 1 } }\n      - template: { src: nope.hbs, dest: /tmp/y }\n',
    )
    const e = (await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      stateRoot: dir,
    }).catch((x: unknown) => x)) as RunbookErrors
    expect(
      e.errors.map((x) => [
        x.message,
        x.pos?.file.endsWith('k.hbs') ? 'k.hbs' : 'rb.yaml',
        x.pos?.line,
        x.pos?.col,
      ]),
    ).toEqual([
      ["undefined variable 'vpi'", 'k.hbs', 2, 7],
      ['template: template file nope.hbs not found (looked in ' + dir + ')', 'rb.yaml', 6, 26],
    ])
  })
})
