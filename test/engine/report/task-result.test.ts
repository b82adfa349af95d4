import { describe, expect, it } from 'vitest'
import { registry } from '../../../modules/index.ts'
import { runYaml } from '../../helpers/run.ts'

describe('task_end carries the result as data', () => {
  it('numbers stay numbers, secrets are redacted, no_log hides it', async () => {
    const { events } = await runYaml(
      `
vars:
  pw: { secret: true, from_env: PW }
plays:
  - hosts: localhost
    tasks:
      - name: figures
        command: "echo {{pw}}"
        register: out
        changed_when: false
      - name: hidden
        command: "echo x"
        no_log: true
`,
      { registry, env: { PW: 'Result-s3cret' } },
    )
    const ends = events.filter((e) => e.type === 'task_end')
    const figures = ends.find((e) => e.task === 'figures')
    expect(figures?.result).toMatchObject({ rc: 0, stdout: '***', changed: false })
    expect(JSON.stringify(events)).not.toContain('Result-s3cret')
    expect(ends.find((e) => e.task === 'hidden')?.result).toBeUndefined()
  })
})
