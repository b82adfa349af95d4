/**
 * import_tasks and import_playbook: files read at load time, validated with the rest (errors point
 * into the imported file), and run in place.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../../engine/errors.ts'
import { prepare } from '../../../engine/prepare.ts'
import type { Block, Task } from '../../../engine/runbook/types.ts'
import { registry } from '../../../modules/index.ts'
import { runYaml } from '../../helpers/run.ts'

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-imp-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), text.replaceAll('OUT', dir))
  }
  return dir
}

async function errorsOf(dir: string): Promise<[string, string, number, number][]> {
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
  return (e as RunbookErrors).errors.map((x) => [
    x.message,
    path.relative(dir, x.pos?.file ?? ''),
    x.pos?.line ?? 0,
    x.pos?.col ?? 0,
  ])
}

describe('import_tasks', () => {
  it('puts the file’s tasks in place as a block carrying the entry’s when, tags and vars', async () => {
    const dir = project({
      'rb.yaml':
        'plays:\n  - hosts: localhost\n    tasks:\n      - debug: { msg: first }\n      - name: node setup\n        import_tasks: tasks/node.yaml\n        vars: { role: MASTER }\n        when: enabled\n        tags: [node]\n      - debug: { msg: last }\n',
      'tasks/node.yaml':
        '- name: say role\n  debug: { msg: "{{role}}" }\n- import_tasks: more.yaml\n',
      'tasks/more.yaml': '- name: deeper\n  debug: { msg: deep }\n',
    })
    const p = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      vars: ['enabled=yes'],
      stateRoot: dir,
    })
    const steps = p.runbook.plays[0]?.tasks ?? []
    expect(steps.map((s) => s.kind)).toEqual(['task', 'block', 'task'])
    const imp = steps[1] as Block
    expect([imp.name, imp.when, imp.tags, imp.vars]).toEqual([
      'node setup',
      ['enabled'],
      ['node'],
      { role: 'MASTER' },
    ])
    expect(imp.block.map((s) => s.name)).toEqual(['say role', 'import_tasks more.yaml'])
    const say = imp.block[0] as Task
    expect([path.relative(dir, say.file), say.path]).toEqual(['tasks/node.yaml', [0]])
    const deeper = (imp.block[1] as Block).block[0] as Task
    expect(path.relative(dir, deeper.file)).toBe('tasks/more.yaml')
    expect(deeper.via).toMatch(/rb\.yaml#plays\.0\.tasks\.1>.*node\.yaml#1>$/)
  })

  it('runs the imported tasks in order; the same file imported twice keeps its two runs apart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-imp-'))
    writeFileSync(
      path.join(dir, 'write.yaml'),
      '- name: write {{which}}\n  copy: { dest: "{{out}}/{{which}}.txt", content: "file {{which}}" }\n  run_once: true\n',
    )
    const yaml = `vars: { out: ${dir} }\nplays:\n  - hosts: localhost\n    tasks:\n      - import_tasks: write.yaml\n        vars: { which: a }\n      - import_tasks: write.yaml\n        vars: { which: b }\n      - import_tasks: write.yaml\n        vars: { which: c }\n        when: false\n`
    const first = await runYaml(yaml, { registry, dir, mode: 'apply' })
    expect(first.result.ok).toBe(true)
    expect(readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('file a')
    expect(readFileSync(path.join(dir, 'b.txt'), 'utf8')).toBe('file b')
    expect(() => readFileSync(path.join(dir, 'c.txt'))).toThrow()
    const again = await runYaml(yaml, { registry, dir, mode: 'apply' })
    expect(again.result.hosts.localhost).toMatchObject({ changed: 0 })
  })

  it('an error inside the imported file points into that file, with the task', async () => {
    const dir = project({
      'rb.yaml': 'plays:\n  - hosts: localhost\n    tasks:\n      - import_tasks: t.yaml\n',
      't.yaml':
        '- name: bad one\n  debug: { mgs: hi }\n- name: undefined var\n  debug: { msg: "{{nope}}" }\n',
    })
    const errs = await errorsOf(dir)
    expect(errs).toHaveLength(2)
    expect(errs[0]?.slice(1)).toEqual(['t.yaml', 2, 12])
    expect(errs[0]?.[0]).toMatch(/mgs/)
    expect(errs[1]).toEqual(["undefined variable 'nope'", 't.yaml', 4, 18])
  })

  it('refuses a missing file, a cycle, stray keywords, loops and include_tasks, each at its place, and runs nothing', async () => {
    const dir = project({
      'rb.yaml': [
        'plays:',
        '  - hosts: localhost',
        '    tasks:',
        '      - import_tasks: nope.yaml',
        '      - import_tasks: a.yaml',
        '      - import_tasks: ok.yaml',
        '        loop: [1, 2]',
        '        colour: red',
        '      - include_tasks: ok.yaml',
        '      - import_tasks: notalist.yaml',
        '    handlers:',
        '      - name: h',
        '        import_tasks: ok.yaml',
        '',
      ].join('\n'),
      'a.yaml': '- import_tasks: b.yaml\n',
      'b.yaml': '- import_tasks: a.yaml\n',
      'ok.yaml': '- copy: { dest: OUT/must-not-exist, content: x }\n',
      'notalist.yaml': 'debug: { msg: hi }\n',
    })
    const errs = await errorsOf(dir)
    // in file/line order: the runbook's own problems, then those of the files it imports
    expect(errs).toEqual([
      ['import_tasks: cannot read nope.yaml: no such file', 'rb.yaml', 4, 23],
      [
        "'loop' does not apply to import_tasks (only name, when, tags, vars, become, become_user)",
        'rb.yaml',
        7,
        9,
      ],
      ["unknown keyword 'colour' beside import_tasks", 'rb.yaml', 8, 9],
      ['include_tasks (dynamic) is not supported', 'rb.yaml', 9, 9],
      ['import_tasks is for tasks, not handlers', 'rb.yaml', 13, 9],
      ['import_tasks: import cycle a.yaml -> b.yaml -> a.yaml', 'b.yaml', 1, 17],
      ['a tasks file is a list of tasks', 'notalist.yaml', 1, 1],
    ])
    expect(() => readFileSync(path.join(dir, 'must-not-exist'))).toThrow()
  })
})

describe('import_playbook', () => {
  it('brings in another runbook’s plays, in order, with its top-level vars folded into each', async () => {
    const dir = project({
      'rb.yaml':
        'vars: { who: main }\nplays:\n  - name: mine\n    hosts: localhost\n    tasks: [{ debug: { msg: "{{who}}" } }]\n  - import_playbook: sub/other.yaml\n',
      'sub/other.yaml':
        'vars: { who: other, only_there: 1 }\nplays:\n  - name: theirs\n    hosts: localhost\n    vars: { who: play }\n    tasks: [{ debug: { msg: "{{who}} {{only_there}}" } }]\n  - name: theirs too\n    hosts: localhost\n    tasks: [{ import_tasks: t.yaml }]\n',
      'sub/t.yaml': '- debug: { msg: "{{who}}" }\n',
    })
    const p = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      stateRoot: dir,
    })
    expect(p.runbook.plays.map((pl) => [pl.name, pl.vars])).toEqual([
      ['mine', {}],
      ['theirs', { who: 'play', only_there: 1 }],
      ['theirs too', { who: 'other', only_there: 1 }],
    ])
    expect(path.relative(dir, p.runbook.plays[1]?.file ?? '')).toBe('sub/other.yaml')
  })

  it('an imported runbook’s secrets become the importing runbook’s secrets, not plain play vars', async () => {
    const dir = project({
      'rb.yaml':
        'vars: { mine: { secret: true, from_env: MINE } }\nplays:\n  - import_playbook: other.yaml\n',
      'other.yaml':
        'vars: { pw: { secret: true, from_env: PW }, mine: { secret: true, from_env: NOPE }, who: x }\nplays:\n  - hosts: localhost\n    tasks: [{ debug: { msg: "{{pw}}" } }]\n',
    })
    const p = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: { PW: 'imported-pw', MINE: 'main-pw', NOPE: 'not-this' },
      stateRoot: dir,
    })
    expect(p.secretVars).toEqual({ pw: 'imported-pw', mine: 'main-pw' })
    expect(p.runbook.plays[0]?.vars).toEqual({ who: 'x' })
  })

  it('an error in the imported runbook points there; unknown keywords beside it are refused', async () => {
    const dir = project({
      'rb.yaml': 'plays:\n  - import_playbook: other.yaml\n    hosts: all\n',
      'other.yaml': 'plays:\n  - hosts: localhost\n    taks: []\n',
    })
    const errs = await errorsOf(dir)
    expect(errs.map((e) => [e[0].replace(/ \(.*$/, ''), e[1], e[2]])).toEqual([
      ["unknown import_playbook keyword 'hosts'", 'rb.yaml', 3],
      ["unknown play keyword 'taks'", 'other.yaml', 3],
    ])
  })
})
