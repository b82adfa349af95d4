import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { RunEvent } from '../../../engine/report/events.ts'
import { consoleReporter } from '../../../engine/report/console.ts'
import { colorsFor } from '../../../engine/report/format.ts'
import { registry } from '../../../modules/index.ts'
import { runYaml } from '../../helpers/run.ts'

type End = Extract<RunEvent, { type: 'task_end' }>

function printed(events: RunEvent[], verbose: boolean): string {
  let text = ''
  const out = new Writable({
    write(chunk: Buffer, _e, cb) {
      text += chunk.toString()
      cb()
    },
  })
  const r = consoleReporter({
    out,
    colors: colorsFor(process.stdout, false),
    live: false,
    diff: false,
    verbose,
  })
  for (const e of events) r.sink(e)
  return text
}

describe('a task in sync says why (the module noop reason)', () => {
  it('carries it in task_end and prints it with --verbose only', async () => {
    // Read-only on this machine: bash is installed, so apt plans nothing and applies nothing.
    const { result, events } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - name: bash is there
        apt: { name: bash }
      - name: a changed task has no reason
        command: { cmd: "true" }
`,
      { registry },
    )
    expect(result.ok).toBe(true)
    const ends = events.filter((e): e is End => e.type === 'task_end')
    expect(ends[0]?.status).toBe('ok')
    expect(ends[0]?.noop).toMatch(/^bash \S+ is installed$/)
    expect(ends[1]?.noop).toBeUndefined()
    expect(printed(events, true)).toMatch(/bash is there .*\n\s+bash \S+ is installed/)
    expect(printed(events, false)).not.toContain('is installed')
  })
})
