import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../../engine/errors.ts'
import { createRegistry } from '../../../engine/module.ts'
import type { RunEvent } from '../../../engine/report/events.ts'
import { builtinModules } from '../../../modules/builtin/index.ts'
import { runYaml } from '../../helpers/run.ts'
import { marker } from './marker-module.ts'
import { registry as allModules } from '../../../modules/index.ts'

const registry = createRegistry([...builtinModules, marker])
type End = Extract<RunEvent, { type: 'task_end' }>
const ends = (events: RunEvent[]): End[] => events.filter((e): e is End => e.type === 'task_end')
const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'rb-exec-'))

describe('executor', () => {
  it('applies, then changes nothing; handlers run once and only on change', async () => {
    const out = tmp()
    const yaml = `
plays:
  - hosts: localhost
    tasks:
      - name: write a
        marker: { path: "{{out}}/a", content: "one" }
        notify: touched
      - name: write b per item
        marker: { path: "{{out}}/b-{{item}}", content: "{{item}}" }
        loop: [x, y]
        register: bs
        notify: touched
      - name: check register
        assert: { that: ["bs.results | length == 2", "bs.results[0].path == out + '/b-x'"] }
    handlers:
      - name: touched
        marker: { path: "{{out}}/handler", content: "{{bs.changed}}" }
`
    const first = await runYaml(yaml, { registry, vars: [`out=${out}`] })
    expect(first.result.ok).toBe(true)
    expect(first.result.hosts.localhost?.changed).toBe(3)
    expect(readFileSync(path.join(out, 'b-y'), 'utf8')).toBe('y')
    expect(readFileSync(path.join(out, 'handler'), 'utf8')).toBe('true')
    expect(ends(first.events).filter((e) => e.handler)).toHaveLength(1)
    const second = await runYaml(yaml, { registry, vars: [`out=${out}`], dir: first.dir })
    expect(second.result.hosts.localhost?.changed).toBe(0)
    expect(ends(second.events).filter((e) => e.handler)).toHaveLength(0)
  })

  it('chains handlers: a handler notifies others; each runs once per flush, earlier ones in another pass', async () => {
    const out = tmp()
    const yaml = `
plays:
  - hosts: localhost
    tasks:
      - name: write a
        copy: { dest: "{{out}}/a", content: "one" }
        notify: render
    handlers:
      - name: restart
        shell: echo restart >> {{out}}/log
      - name: render
        shell: echo render >> {{out}}/log
        notify: [restart, audit]
      - name: audit
        shell: echo audit >> {{out}}/log
        notify: render
      - name: never
        shell: echo never >> {{out}}/log
`
    const first = await runYaml(yaml, { registry: allModules, vars: [`out=${out}`] })
    expect(first.result.ok).toBe(true)
    expect(readFileSync(path.join(out, 'log'), 'utf8')).toBe('render\naudit\nrestart\n')
    const second = await runYaml(yaml, {
      registry: allModules,
      vars: [`out=${out}`],
      dir: first.dir,
    })
    expect(ends(second.events).filter((e) => e.handler)).toHaveLength(0)
    expect(readFileSync(path.join(out, 'log'), 'utf8')).toBe('render\naudit\nrestart\n')
  })

  it('plans without touching anything and counts changes', async () => {
    const out = tmp()
    const { result } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - marker: { path: "{{out}}/a", content: "one" }
      - marker: { path: "{{out}}/b", state: absent }
`,
      { registry, vars: [`out=${out}`], mode: 'plan' },
    )
    expect(result.plan).toEqual({ create: 1, update: 0, delete: 0, run: 0 })
    expect(existsSync(path.join(out, 'a'))).toBe(false)
  })

  it('skips on when, evaluates per item, and honours tags', async () => {
    const out = tmp()
    const { result, events } = await runYaml(
      `
vars:
  nodes: [{ name: a, on: true }, { name: b, on: false }]
plays:
  - hosts: localhost
    tasks:
      - marker: { path: "{{out}}/{{item.name}}", content: x }
        loop: "{{nodes}}"
        when: item.on
      - name: tagged
        marker: { path: "{{out}}/tagged", content: x }
        tags: [later]
`,
      { registry, vars: [`out=${out}`], tags: ['untagged-none'] },
    )
    expect(result.ok).toBe(true)
    expect(ends(events).map((e) => e.task)).toEqual([])
    const all = await runYaml(
      `
vars:
  nodes: [{ name: a, on: true }, { name: b, on: false }]
plays:
  - hosts: localhost
    tasks:
      - marker: { path: "{{out}}/{{item.name}}", content: x }
        loop: "{{nodes}}"
        when: item.on
`,
      { registry, vars: [`out=${out}`] },
    )
    expect(all.result.ok).toBe(true)
    expect(existsSync(path.join(out, 'a'))).toBe(true)
    expect(existsSync(path.join(out, 'b'))).toBe(false)
  })

  it('rescues a failed block and always runs always; failures stop the host otherwise', async () => {
    const out = tmp()
    const { result } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - block:
          - marker: { path: "{{out}}/x", content: x, fail: true }
          - marker: { path: "{{out}}/never", content: x }
        rescue:
          - marker: { path: "{{out}}/rescued", content: "{{failed_result.msg}}" }
        always:
          - marker: { path: "{{out}}/always", content: x }
      - marker: { path: "{{out}}/after", content: x }
`,
      { registry, vars: [`out=${out}`] },
    )
    expect(result.ok).toBe(true)
    expect(readFileSync(path.join(out, 'rescued'), 'utf8')).toMatch(/refused/)
    expect(existsSync(path.join(out, 'never'))).toBe(false)
    expect(existsSync(path.join(out, 'always'))).toBe(true)
    expect(existsSync(path.join(out, 'after'))).toBe(true)
    expect(result.hosts.localhost?.rescued).toBe(1)

    const failing = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - name: breaks
        marker: { path: "{{out}}/y", content: y, fail: true }
      - marker: { path: "{{out}}/not-reached", content: y }
`,
      { registry, vars: [`out=${out}`] },
    )
    expect(failing.result.ok).toBe(false)
    expect(failing.result.errors[0]?.task).toBe('breaks')
    expect(failing.result.errors[0]?.pos?.line).toBe(5)
    expect(existsSync(path.join(out, 'not-reached'))).toBe(false)
  })

  it('ignore_errors, failed_when and changed_when', async () => {
    const out = tmp()
    const { result } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - marker: { path: "{{out}}/a", content: x, fail: true }
        ignore_errors: true
      - marker: { path: "{{out}}/b", content: x }
        changed_when: false
      - name: fails by rule
        marker: { path: "{{out}}/c", content: x }
        failed_when: "result.path == out + '/c'"
`,
      { registry, vars: [`out=${out}`] },
    )
    expect(result.ok).toBe(false)
    expect(result.hosts.localhost).toMatchObject({ ignored: 1, failed: 1, changed: 0, ok: 1 })
  })

  it('retries until a condition holds', async () => {
    const out = tmp()
    const { result, events } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - set_fact: { n: 0 }
      - name: poll
        assert: { that: "true" }
        register: r
        retries: 2
        delay: 0
        until: "false"
`,
      { registry, vars: [`out=${out}`] },
    )
    expect(result.ok).toBe(false)
    expect(result.errors[0]?.message).toMatch(/still false after 3 attempts/)
    expect(events.filter((e) => e.type === 'task_progress')).toHaveLength(2)
  })

  it('shows values known after apply and hosts that do not exist yet in a plan', async () => {
    const out = tmp()
    const { result } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - name: make
        marker: { path: "{{out}}/id", content: new }
        register: made
      - add_host: { name: vm1, groups: [cluster], address: "{{made.id}}" }
  - hosts: cluster
    tasks:
      - name: on the new vm
        marker: { path: "{{out}}/vm", content: x }
`,
      { registry, vars: [`out=${out}`], mode: 'plan' },
    )
    expect(result.ok).toBe(true)
    const deferred = result.changes.filter((c) => c.deferred)
    expect(deferred.map((c) => [c.host, c.task])).toEqual([['vm1', 'on the new vm']])
    expect(result.plan.create).toBe(1)
  })

  it('groups and hostvars follow add_host within the run, on every host', async () => {
    const out = tmp()
    const yaml = `
plays:
  - hosts: localhost
    tasks:
      - name: before
        marker: { path: "{{out}}/before", content: "{{length groups.all}} {{length (default groups.web '')}}" }
      - add_host: { name: web1, groups: [web], vars: { connection: local, role: first } }
      - name: after one
        marker: { path: "{{out}}/one", content: "{{join groups.web ','}} {{hostvars.web1.role}}" }
      - add_host: { name: web2, groups: [web], vars: { connection: local, role: second } }
      - name: after two
        marker: { path: "{{out}}/two", content: "{{join groups.web ','}} {{hostvars.web2.role}}" }
  - hosts: web
    tasks:
      - name: each sees both
        marker: { path: "{{out}}/{{inventory_hostname}}", content: "{{length groups.web}} {{lookup (lookup hostvars inventory_hostname) 'role'}}" }
`
    const r = await runYaml(yaml, { registry, vars: [`out=${out}`] })
    expect(r.result.ok).toBe(true)
    const read = (f: string): string => readFileSync(path.join(out, f), 'utf8')
    expect(read('before')).toBe('0 0')
    expect(read('one')).toBe('web1 first')
    expect(read('two')).toBe('web1,web2 second')
    expect(read('web1')).toBe('2 first')
    expect(read('web2')).toBe('2 second')
  })

  it('redacts secrets from events', async () => {
    const out = tmp()
    const { events } = await runYaml(
      `
vars:
  pw: { secret: true, from_env: PW }
plays:
  - hosts: localhost
    tasks:
      - debug: { msg: "the password is {{pw}}" }
      - marker: { path: "{{out}}/s", content: "pass {{pw}}" }
      - marker: { path: "{{out}}/t", content: "{{pw}}", fail: true }
`,
      { registry, vars: [`out=${out}`], env: { PW: 'hunter2-secret' } },
    )
    const text = JSON.stringify(events)
    expect(text).not.toContain('hunter2-secret')
    expect(text).toContain('***')
    expect(readFileSync(path.join(out, 's'), 'utf8')).toBe('pass hunter2-secret')
  })

  it('refuses a runbook with problems before touching anything', async () => {
    const out = tmp()
    await expect(
      runYaml(
        `
plays:
  - hosts: localhost
    tasks:
      - marker: { path: "{{out}}/a", content: x }
      - marker: { pth: "{{out}}/b" }
`,
        { registry, vars: [`out=${out}`] },
      ),
    ).rejects.toBeInstanceOf(RunbookErrors)
    expect(existsSync(path.join(out, 'a'))).toBe(false)
  })

  it('runs run_once tasks for the first host and shares the result', async () => {
    const out = tmp()
    const { result } = await runYaml(
      `
plays:
  - hosts: all
    tasks:
      - name: once
        marker: { path: "{{out}}/once-{{inventory_hostname}}", content: x }
        run_once: true
        register: once
      - assert: { that: "once.path == out + '/once-a'" }
`,
      {
        registry,
        vars: [`out=${out}`],
        inventory: 'all:\n  hosts:\n    a: { connection: local }\n    b: { connection: local }\n',
      },
    )
    expect(result.ok).toBe(true)
    expect(existsSync(path.join(out, 'once-a'))).toBe(true)
    expect(existsSync(path.join(out, 'once-b'))).toBe(false)
  })
})
