import { readFileSync } from 'node:fs'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { runbookJsonSchema } from '../../../engine/runbook/json-schema.ts'
import { registry } from '../../../modules/index.ts'
import { moduleMarkdown } from '../../../engine/cli/modules.ts'

const schema = runbookJsonSchema(registry)
const ajv = new Ajv2020({ strict: false, allErrors: true })
const validate = ajv.compile(schema)

describe('runbook JSON Schema', () => {
  it('accepts a valid runbook and both top-level shapes', () => {
    const rb = parse(`
name: x
vars: { vip: 192.0.2.254 }
plays:
  - hosts: localhost
    tasks:
      - name: t
        template: { dest: /tmp/a, content: "{{vip}}" }
        notify: h
      - shell: echo hi
      - block:
          - debug: { msg: hi }
        rescue:
          - debug: { msg: rescued }
    handlers:
      - name: h
        command: { cmd: "true" }
`)
    expect(validate(rb), JSON.stringify(validate.errors)).toBe(true)
    expect(validate([{ hosts: 'all', tasks: [{ debug: { msg: 'x' } }] }])).toBe(true)
    expect(
      validate({
        plays: [
          { import_playbook: 'other.yaml' },
          { hosts: 'all', tasks: [{ import_tasks: 't.yaml', when: 'x', vars: { a: 1 } }] },
        ],
      }),
    ).toBe(true)
  })

  it('rejects what an editor should underline', () => {
    expect(validate({ plays: [{ hosts: 'all', tasks: [{ apt: { pkgs: 'x' } }] }] })).toBe(false)
    expect(validate({ plays: [{ hosts: 'all', tasks: [{ templte: { dest: '/x' } }] }] })).toBe(
      false,
    )
    expect(validate({ plays: [{ hots: 'all' }] })).toBe(false)
    expect(validate({ plays: [{ import_playbook: 'other.yaml', hosts: 'all' }] })).toBe(false)
  })

  it('is the same as the committed docs/runbook.schema.json and docs/modules.md', () => {
    expect(JSON.parse(readFileSync('docs/runbook.schema.json', 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(schema)),
    )
    const md = readFileSync('docs/modules.md', 'utf8')
    for (const m of registry.values()) expect(md).toContain(moduleMarkdown(m))
  })
})
