import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { prepare } from '../../../engine/prepare.ts'
import { outline } from '../../../engine/report/outline.ts'
import { registry } from '../../../modules/index.ts'

describe('outline (validate --list-tasks --list-hosts)', () => {
  it('lists each play’s hosts and tasks, with blocks, imports and roles indented and tags inherited', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-outline-'))
    mkdirSync(path.join(dir, 'roles/web/tasks'), { recursive: true })
    writeFileSync(
      path.join(dir, 'roles/web/tasks/main.yaml'),
      '- name: web config\n  debug: { msg: hi }\n',
    )
    writeFileSync(
      path.join(dir, 'inv.yaml'),
      'all:\n  children:\n    web: { hosts: { w1: {}, w2: {} } }\n',
    )
    writeFileSync(
      path.join(dir, 'rb.yaml'),
      [
        'inventory: inv.yaml',
        'plays:',
        '  - name: first',
        '    hosts: localhost',
        '    tasks:',
        '      - name: add one',
        '        add_host: { name: n1, groups: [late] }',
        '  - name: second',
        '    hosts: web:late',
        '    tags: [deploy]',
        '    roles: [web]',
        '    tasks:',
        '      - name: guarded',
        '        block:',
        '          - name: inner',
        '            command: { cmd: "true" }',
        '            loop: [1, 2]',
        '            tags: [x]',
        '        rescue:',
        '          - debug: { msg: rescued }',
        '        when: true',
        '    handlers:',
        '      - name: h',
        '        debug: { msg: h }',
        '',
      ].join('\n'),
    )
    const p = await prepare({
      runbookFile: path.join(dir, 'rb.yaml'),
      registry,
      env: {},
      stateRoot: dir,
      skipSecrets: true,
    })
    expect(outline(p.runbook, p.inventory, { tasks: true, hosts: true })).toEqual([
      'runbook: rb.yaml',
      '',
      'play #1 (localhost): first',
      '  hosts (1): localhost',
      '  tasks:',
      '    add one  (add_host)',
      '',
      'play #2 (web:late): second  tags: [deploy]',
      '  hosts (2): w1, w2  (and the hosts added during the run to late)',
      '  tasks:',
      '    role web:  tags: [deploy]',
      '      web config  (debug)  tags: [deploy]',
      '    guarded:  (when)  tags: [deploy]',
      '      inner  (command, loop)  tags: [deploy, x]',
      '    rescue:',
      '      debug  (debug)  tags: [deploy]',
      '  handlers:',
      '    h  (debug)  tags: [deploy]',
    ])
    expect(outline(p.runbook, p.inventory, { tasks: false, hosts: true, limit: 'w2' })[6]).toBe(
      '  hosts (1): w2  (and the hosts added during the run to late)',
    )
  })
})
