/**
 * Safe by default: a secret declared wrongly never reaches a rendered file, system directories are
 * not removed unless the task says so, sources outside the runbook's tree only when allowed, and
 * private controller files are never shown in a diff. Runs the real CLI on this machine.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../../../engine/cli/main.ts'
import { localOnlyFactory } from '../../../engine/connection/factory.ts'
import { isSystemPath } from '../../../engine/values.ts'
import { registry } from '../../../modules/index.ts'
import { planContentFile, wanted } from '../../../modules/host/lib/content-file.ts'

function sink(): NodeJS.WriteStream & { text: string } {
  const s = {
    text: '',
    isTTY: false,
    write(chunk: string | Uint8Array): boolean {
      s.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      return true
    },
  }
  return s as unknown as NodeJS.WriteStream & { text: string }
}

async function run(dir: string, args: string[]): Promise<{ code: number; text: string }> {
  const out = sink()
  const err = sink()
  const code = await main([...args, '--no-color', '--state-dir', path.join(dir, '.runbook')], {
    registry: async () => registry,
    connections: () => localOnlyFactory(),
    out,
    err,
  })
  return { code, text: err.text + out.text }
}

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-safe-'))
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
    writeFileSync(path.join(dir, rel), text.replaceAll('OUT', path.join(dir, 'out')))
  }
  return dir
}

describe('a secret declared wrongly never ends up in a rendered file', () => {
  it.each([
    [
      'secret: yes',
      'vars:\n  pw: { secret: yes, from_env: RB_TEST_PW }\nplays:\n  - hosts: localhost\n    tasks:\n',
    ],
    [
      'two sources',
      'vars:\n  pw: { secret: true, from_env: RB_TEST_PW, generate: 12 }\nplays:\n  - hosts: localhost\n    tasks:\n',
    ],
    [
      'in play vars',
      'plays:\n  - hosts: localhost\n    vars:\n      pw: { secret: true, from_env: RB_TEST_PW }\n    tasks:\n',
    ],
    [
      'no secret key',
      'vars:\n  pw: { from_env: RB_TEST_PW }\nplays:\n  - hosts: localhost\n    tasks:\n',
    ],
  ])('%s: apply refuses and writes nothing', async (_name, head) => {
    const dir = project({
      'runbook.yaml': `${head}      - copy: { dest: OUT/pw.txt, content: "pw={{pw}}" }\n      - template: { src: t.hbs, dest: OUT/pw.conf }\n`,
      't.hbs': 'pw={{pw}}\n',
    })
    mkdirSync(path.join(dir, 'out'))
    process.env.RB_TEST_PW = 'hunter2-not-for-files'
    try {
      const r = await run(dir, ['apply', path.join(dir, 'runbook.yaml')])
      expect(r.code, r.text).not.toBe(0)
      expect(r.text).toMatch(/secret/)
      expect(r.text).not.toContain('hunter2-not-for-files')
      expect(existsSync(path.join(dir, 'out/pw.txt'))).toBe(false)
      expect(existsSync(path.join(dir, 'out/pw.conf'))).toBe(false)
    } finally {
      delete process.env.RB_TEST_PW
    }
  })
})

describe('file state: absent on system paths', () => {
  it.each([
    ['/', true],
    ['/etc', true],
    ['/etc/', true],
    ['//usr/./', true],
    ['/home/../var', true],
    ['/etc/keepalived', false],
    ['/tmp/x/..', true],
    ['/srv/app', false],
  ])('%s is a system path: %s', (p, expected) => {
    expect(isSystemPath(p)).toBe(expected)
  })

  it('is allowed with allow_system_path: true (validate passes)', async () => {
    const dir = project({
      'runbook.yaml':
        'plays:\n  - hosts: localhost\n    tasks:\n      - file: { path: /srv, state: absent, allow_system_path: true }\n',
    })
    const r = await run(dir, ['validate', path.join(dir, 'runbook.yaml')])
    expect(r.code, r.text).toBe(0)
  })
})

describe('sources outside the runbook tree', () => {
  it('are accepted when allow_sources lists their directory', async () => {
    const outside = mkdtempSync(path.join(tmpdir(), 'rb-outside-'))
    writeFileSync(path.join(outside, 'motd'), 'hello\n')
    const dir = project({
      'runbook.yaml': `allow_sources: [${outside}]\nplays:\n  - hosts: localhost\n    tasks:\n      - copy: { src: ${outside}/motd, dest: OUT/motd }\n`,
    })
    expect((await run(dir, ['validate', path.join(dir, 'runbook.yaml')])).code).toBe(0)
    const refused = project({
      'runbook.yaml': `plays:\n  - hosts: localhost\n    tasks:\n      - copy: { src: ${outside}/motd, dest: OUT/motd }\n`,
    })
    const r = await run(refused, ['validate', path.join(refused, 'runbook.yaml')])
    expect(r.code).toBe(1)
    expect(r.text).toMatch(/outside the runbook's directory/)
  })
})

describe('private controller files are never shown in a diff', () => {
  it('plans a checksum and size instead of the content', () => {
    const text = 'password=hunter2\n'
    const changes = planContentFile(
      { dest: '/etc/app.conf', backup: false },
      { want: wanted(text, true), have: { type: 'absent', parentExists: true } },
    )
    expect(changes[0]?.diff).toBeUndefined()
    expect(changes[0]?.note).toMatch(/not world-readable\): sha256 [0-9a-f]{64}, 17 bytes/)
    expect(JSON.stringify(changes)).not.toContain('hunter2')
  })

  it('a 0600 source copied with plan shows no line of it', async () => {
    const dir = project({
      'runbook.yaml':
        'plays:\n  - hosts: localhost\n    tasks:\n      - copy: { src: secret.env, dest: OUT/app.env }\n',
      'secret.env': 'TOKEN=hunter2-private\n',
    })
    chmodSync(path.join(dir, 'secret.env'), 0o600)
    mkdirSync(path.join(dir, 'out'))
    const r = await run(dir, ['plan', path.join(dir, 'runbook.yaml')])
    expect(r.code, r.text).toBe(0)
    expect(r.text).toMatch(/content not shown/)
    expect(r.text).not.toContain('hunter2-private')
  })
})

describe('a templated path known before the run', () => {
  it('is judged at validate by what it renders to (-e, vars, loop items)', async () => {
    const dir = project({
      'runbook.yaml': [
        'vars:',
        '  base: /usr',
        'plays:',
        '  - hosts: localhost',
        '    tasks:',
        '      - file: { path: "/{{ x }}", state: absent }',
        '      - file: { path: "{{ base }}", state: absent }',
        '      - file: { path: "{{ item }}", state: absent }',
        '        loop: [/tmp/rb-safe-x, /home]',
        '      - file: { path: "{{ base }}/share/rb-x", state: absent }',
        '',
      ].join('\n'),
    })
    const r = await run(dir, ['validate', path.join(dir, 'runbook.yaml'), '-e', 'x=etc'])
    expect(r.code).toBe(1)
    expect(r.text).toMatch(/runbook\.yaml:6:\d+: .*refusing to remove \/etc/)
    expect(r.text).toMatch(/'\/\{\{ x \}\}' renders to '\/etc' before the run/)
    expect(r.text).toMatch(/runbook\.yaml:7:\d+: .*refusing to remove \/usr/)
    expect(r.text).toMatch(/runbook\.yaml:8:\d+: .*refusing to remove \/home.*\(loop item 1\)/)
    expect(r.text).not.toMatch(/rb-safe-x|share\/rb-x/)
    expect(r.text).toMatch(/3 problems/)
  })
})

describe('a templated value under a condition', () => {
  it('is not judged when the condition may not hold (the value is right only when it runs)', async () => {
    const dir = project({
      'runbook.yaml': [
        'vars:',
        '  stop_vm: ""',
        '  base: /etc',
        'plays:',
        '  - hosts: localhost',
        '    tasks:',
        '      - name: empty only when skipped',
        '        openstack.server: { name: "{{ stop_vm }}", state: stopped }',
        '        when: stop_vm != ""',
        '      - block:',
        '          - file: { path: "{{ base }}", state: absent }',
        '        when: inventory_hostname == "nowhere"',
        '',
      ].join('\n'),
    })
    const r = await run(dir, ['validate', path.join(dir, 'runbook.yaml')])
    expect(r.code, r.text).toBe(0)
  })
})

describe('a failed plan', () => {
  it('never prints "No changes" first', async () => {
    // set_fact makes the path known only during the run: validation cannot see it, plan does
    const dir = project({
      'runbook.yaml':
        'plays:\n  - hosts: localhost\n    tasks:\n      - set_fact: { x: etc }\n      - file: { path: "/{{ x }}", state: absent }\n',
    })
    const r = await run(dir, ['plan', path.join(dir, 'runbook.yaml')])
    expect(r.code).toBe(1)
    expect(r.text).toMatch(/refusing to remove \/etc/)
    expect(r.text).toMatch(/The plan failed: nothing was changed/)
    expect(r.text).not.toMatch(/No changes/)
  })
})

describe('--allow-source', () => {
  it('allows a source directory from the command line', async () => {
    const outside = mkdtempSync(path.join(tmpdir(), 'rb-outside-'))
    writeFileSync(path.join(outside, 'motd'), 'hello\n')
    const dir = project({
      'runbook.yaml': `plays:\n  - hosts: localhost\n    tasks:\n      - copy: { src: ${outside}/motd, dest: OUT/motd }\n      - import_tasks: ${outside}/t.yaml\n`,
    })
    writeFileSync(path.join(outside, 't.yaml'), '- debug: { msg: hi }\n')
    const refused = await run(dir, ['validate', path.join(dir, 'runbook.yaml')])
    expect(refused.code).toBe(1)
    expect(refused.text.match(/outside the runbook's directory/g)?.length).toBe(2)
    const r = await run(dir, [
      'validate',
      path.join(dir, 'runbook.yaml'),
      '--allow-source',
      outside,
    ])
    expect(r.code, r.text).toBe(0)
  })
})
