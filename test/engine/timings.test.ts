import { describe, expect, it } from 'vitest'
import { LocalConnection } from '../../engine/connection/local.ts'
import type { ConnectionFactory } from '../../engine/connection/factory.ts'
import type { RunEvent } from '../../engine/report/events.ts'
import { plainColors } from '../../engine/report/format.ts'
import { renderTimings, withTimingData } from '../../engine/report/timings.ts'
import { currentTimings, measure, timedConnections, withTimings } from '../../engine/timings.ts'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('timings', () => {
  it('counts waits in the scope that awaits them, and in the run around it', async () => {
    const seen = await withTimings('run', async () => {
      const run = currentTimings()
      const tasks = await Promise.all(
        ['a', 'b'].map((name) =>
          withTimings('task', async () => {
            await measure('api', () => sleep(20))
            if (name === 'b') await measure('api', () => sleep(20))
            return currentTimings()?.totals(100)
          }),
        ),
      )
      return { run: run?.totals(), tasks }
    })
    expect(seen.tasks.map((t) => t?.api_requests)).toEqual([1, 2])
    expect(seen.tasks[1]?.api_ms).toBeGreaterThanOrEqual(38)
    expect(seen.tasks[1]?.local_ms).toBeLessThanOrEqual(62)
    expect(seen.run?.api_requests).toBe(3)
  })

  it('times the wait for a connection and each command on it (a real local shell)', async () => {
    const local = new LocalConnection('h1')
    const factory: ConnectionFactory = {
      get: async () => (await sleep(15), local),
      drop: async () => undefined,
      closeAll: async () => undefined,
    }
    const t = await withTimings('task', async () => {
      const c = await timedConnections(factory).get('h1', () => ({}))
      expect(c.host).toBe('h1')
      expect((await c.exec('echo hi')).stdout.trim()).toBe('hi')
      await c.readFile('/nonexistent/file')
      return currentTimings()?.totals(1000)
    })
    expect(t?.ssh_wait_ms).toBeGreaterThanOrEqual(14)
    expect(t?.commands).toBe(2)
    expect(t?.commands_ms).toBeGreaterThan(0)
  })

  it('attaches the timings to task_end and the totals to the summary, and prints them', async () => {
    const events: RunEvent[] = []
    await withTimings('run', async () => {
      await withTimings('task', async () => {
        await measure('command', () => sleep(5))
        events.push(
          withTimingData({
            type: 'task_end',
            play: 'p',
            task: 'install',
            host: 'web1',
            status: 'ok',
            changes: [],
            duration_ms: 50,
          }),
        )
      })
      events.push(
        withTimingData({
          type: 'summary',
          ok: true,
          mode: 'plan',
          hosts: {},
          plan: { create: 0, update: 0, delete: 0, run: 0 },
          duration_ms: 60,
          changed: 0,
          failed: 0,
          unreachable: 0,
        }),
      )
    })
    const [end, summary] = events
    expect(end?.type === 'task_end' && end.timings?.commands).toBe(1)
    expect(summary?.type === 'summary' && summary.api_requests).toBe(0)
    const text = renderTimings(events, plainColors)
    expect(text).toMatch(/install\s+web1\s+50 ms\s+0 ms\s+1 \/ \d+ ms/)
    expect(text).toContain('run: 60 ms wall; 1 commands')
  })
})
