/**
 * Roles: roles/NAME beside the runbook with tasks, handlers, defaults, vars, templates and files,
 * used from a play's `roles:` or a task's `import_role`, validated with the rest and run.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../../engine/errors.ts'
import { prepare } from '../../../engine/prepare.ts'
import { registry } from '../../../modules/index.ts'
import { runYaml } from '../../helpers/run.ts'

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-role-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), text)
  }
  return dir
}

const ROLE = {
  'roles/web/defaults/main.yaml': 'port: 80\ngreeting: hello\nlisten: "0.0.0.0:{{port}}"\n',
  'roles/web/vars/main.yml': 'config_name: web.conf\n',
  'roles/web/tasks/main.yaml': [
    '- name: config from the role template',
    '  template: { src: web.conf.hbs, dest: "{{out}}/{{config_name}}" }',
    '  notify: reload web',
    '- name: a file from the role files',
    '  copy: { src: banner.txt, dest: "{{out}}/banner.txt" }',
    '',
  ].join('\n'),
  'roles/web/handlers/main.yaml': '- name: reload web\n  shell: echo reloaded >> {{out}}/reloads\n',
  'roles/web/templates/web.conf.hbs': 'listen {{listen}}\ngreeting {{greeting}}\n',
  'roles/web/files/banner.txt': 'welcome\n',
}

describe('roles', () => {
  it('runs a role before the play’s tasks: role templates and files found, defaults lowest, handlers joined', async () => {
    const dir = project(ROLE)
    const out = path.join(dir, 'out')
    mkdirSync(out)
    const yaml = `vars: { out: ${out} }
plays:
  - hosts: localhost
    vars: { greeting: from-the-play }
    roles:
      - role: web
        vars: { port: 8080 }
    tasks:
      - name: after the role
        copy: { dest: "{{out}}/after", content: "port {{port}}" }
`
    const first = await runYaml(yaml, { registry, dir, mode: 'apply' })
    expect(first.result.ok, JSON.stringify(first.result.errors)).toBe(true)
    // the entry's vars beat the defaults; the play's vars beat the defaults; the defaults' own template sees them
    expect(readFileSync(path.join(out, 'web.conf'), 'utf8')).toBe(
      'listen 0.0.0.0:8080\ngreeting from-the-play\n',
    )
    expect(readFileSync(path.join(out, 'banner.txt'), 'utf8')).toBe('welcome\n')
    // the defaults are the play's; the entry's vars (port 8080) stay inside the role
    expect(readFileSync(path.join(out, 'after'), 'utf8')).toBe('port 80')
    expect(readFileSync(path.join(out, 'reloads'), 'utf8')).toBe('reloaded\n')
  })

  it('import_role in tasks, applied twice: changes, then nothing; -e beats the defaults', async () => {
    const dir = project(ROLE)
    const out = path.join(dir, 'out')
    mkdirSync(out)
    const yaml = `vars: { out: ${out} }
plays:
  - hosts: localhost
    tasks:
      - debug: { msg: before }
      - name: the web role
        import_role: { name: web }
        when: out is defined
`
    const first = await runYaml(yaml, { registry, dir, mode: 'apply', vars: ['greeting=from-e'] })
    expect(first.result.ok, JSON.stringify(first.result.errors)).toBe(true)
    expect(readFileSync(path.join(out, 'web.conf'), 'utf8')).toBe(
      'listen 0.0.0.0:80\ngreeting from-e\n',
    )
    const again = await runYaml(yaml, { registry, dir, mode: 'apply', vars: ['greeting=from-e'] })
    expect(again.result.hosts.localhost).toMatchObject({ changed: 0 })
    expect(readFileSync(path.join(out, 'reloads'), 'utf8')).toBe('reloaded\n')
  })

  it('a role used twice runs its tasks twice and its handler once; a role that imports itself is refused', async () => {
    const dir = project(ROLE)
    const out = path.join(dir, 'out')
    mkdirSync(out)
    const yaml = `vars: { out: ${out} }
plays:
  - hosts: localhost
    roles: [web]
    tasks:
      - import_role: { name: web }
        vars: { config_name: second.conf }
`
    const r = await runYaml(yaml, { registry, dir, mode: 'apply' })
    expect(r.result.ok, JSON.stringify(r.result.errors)).toBe(true)
    expect(readFileSync(path.join(out, 'web.conf'), 'utf8')).toContain('listen 0.0.0.0:80')
    expect(readFileSync(path.join(out, 'second.conf'), 'utf8')).toContain('listen 0.0.0.0:80')
    expect(readFileSync(path.join(out, 'reloads'), 'utf8')).toBe('reloaded\n')

    const loop = project({
      'roles/loop/tasks/main.yaml': '- import_role: { name: loop }\n',
      'rb.yaml': 'plays:\n  - hosts: localhost\n    roles: [loop]\n',
    })
    const e = (await prepare({
      runbookFile: path.join(loop, 'rb.yaml'),
      registry,
      env: {},
      stateRoot: loop,
    }).catch((x: unknown) => x)) as RunbookErrors
    expect(e.errors.map((x) => [x.message, path.relative(loop, x.pos?.file ?? '')])).toEqual([
      ["role 'loop' imports itself", 'roles/loop/tasks/main.yaml'],
    ])
  })

  it('keeps a role’s vars/ to the role: a play task using one is refused at validation', async () => {
    const dir = project({
      ...ROLE,
      'rb.yaml':
        'plays:\n  - hosts: localhost\n    roles: [web]\n    tasks:\n      - debug: { msg: "{{config_name}}" }\n',
    })
    const e = (await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      vars: ['out=/tmp'],
      stateRoot: dir,
    }).catch((x: unknown) => x)) as RunbookErrors
    expect(e.errors.map((x) => x.message)).toEqual(["undefined variable 'config_name'"])
  })

  it('reports a missing role, a role without tasks or handlers, errors inside role files, and stray keys, before anything runs', async () => {
    const dir = project({
      ...ROLE,
      'roles/web/tasks/main.yaml':
        '- name: typo inside\n  copy: { dset: /tmp/x, content: x }\n- template: { src: nope.hbs, dest: /tmp/y }\n',
      'roles/empty/defaults/main.yaml': 'a: 1\n',
      'rb.yaml': [
        'plays:',
        '  - hosts: localhost',
        '    roles:',
        '      - nosuch',
        '      - empty',
        '      - { role: web, colour: red }',
        '    tasks:',
        '      - import_role: { name: web }',
        '        loop: [1]',
        '      - include_role: { name: web }',
        '',
      ].join('\n'),
    })
    const e = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      stateRoot: dir,
    }).then(
      () => undefined,
      (x: unknown) => x,
    )
    expect(e).toBeInstanceOf(RunbookErrors)
    const errs = (e as RunbookErrors).errors.map((x) => [
      x.message.replaceAll(dir, 'DIR'),
      path.relative(dir, x.pos?.file ?? ''),
      x.pos?.line,
    ])
    expect(errs).toContainEqual([
      "role 'nosuch' not found (looked in DIR/roles/nosuch)",
      'rb.yaml',
      4,
    ])
    expect(errs).toContainEqual([
      "role 'empty' has neither tasks/main.yaml nor handlers/main.yaml (in DIR/roles/empty)",
      'rb.yaml',
      5,
    ])
    expect(
      errs.some(([m, f, l]) => String(m).includes('colour') && f === 'rb.yaml' && l === 6),
    ).toBe(true)
    expect(
      errs.some(
        ([m, f, l]) =>
          String(m).includes("unknown parameter 'dset'") &&
          f === 'roles/web/tasks/main.yaml' &&
          l === 2,
      ),
    ).toBe(true)
    expect(errs).toContainEqual([
      'template: template file nope.hbs not found (looked in DIR/roles/web/templates, DIR/roles/web/files, DIR/roles/web, DIR)',
      'roles/web/tasks/main.yaml',
      3,
    ])
    // a role used twice is checked twice, but each problem is reported once
    expect(errs.filter(([m]) => String(m).includes("unknown parameter 'dset'"))).toHaveLength(1)
    expect(errs).toContainEqual(['include_role (dynamic) is not supported', 'rb.yaml', 10])
    expect(errs).toContainEqual([
      "'loop' does not apply to import_role (only name, when, tags, vars, become, become_user)",
      'rb.yaml',
      9,
    ])
  })
})
