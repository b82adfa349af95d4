import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createRegistry, defineModule } from '../../../engine/module.ts'
import type { RunEvent } from '../../../engine/report/events.ts'
import { runYaml } from '../../helpers/run.ts'

/** A module that reports what it sees of the run's environment. */
const probe = defineModule({
  name: 'env_probe',
  summary: 'Reports two environment variables',
  example: '- env_probe: {}',
  params: z.strictObject({}),
  gather: async (ctx) => ({ probe: ctx.env['RB_PROBE'] ?? null, path: ctx.env['PATH'] ?? null }),
  plan: () => [],
  apply: async () => ({ changed: false }),
  output: (_p, current) => ({ ...current }),
})

type End = Extract<RunEvent, { type: 'task_end' }>

describe("a module sees the run's environment, not the process's", () => {
  it('gets what the run was given, and nothing else', async () => {
    expect(process.env['PATH']).toBeDefined()
    const { events } = await runYaml(
      `
plays:
  - hosts: localhost
    tasks:
      - name: look
        env_probe: {}
`,
      { registry: createRegistry([probe]), env: { RB_PROBE: 'given' } },
    )
    const end = events.find((e): e is End => e.type === 'task_end' && e.task === 'look')
    expect(end?.result).toMatchObject({ probe: 'given', path: null })
  })
})
