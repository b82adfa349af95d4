import { describe, expect, it } from 'vitest'
import { LocalConnection } from '../../engine/connection/local.ts'
import type { Connection } from '../../engine/connection/types.ts'
import { moduleContext } from '../../engine/execute/context.ts'
import type { RunEvent } from '../../engine/report/events.ts'
import { plainColors } from '../../engine/report/format.ts'
import { renderTimings, withRunTotals } from '../../engine/report/timings.ts'
import { measure, Timings } from '../../engine/timings.ts'
import { registry } from '../../modules/index.ts'
import { runYaml } from '../helpers/run.ts'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A context for one task on host h1, whose connection is `conn` after `delayMs`. */
function contextFor(conn: Connection, timings: Timings, delayMs = 0) {
  return moduleContext({
    host: 'h1',
    module: 'command',
    task: 't',
    vars: {},
    baseDir: '.',
    check: false,
    become: undefined,
    conn: async () => (await sleep(delayMs), conn),
    connectTo: async () => conn,
    records: undefined,
    inventory: { addHost: () => undefined, hostVars: () => undefined },
    cache: new Map(),
    shared: new Map(),
    progress: () => undefined,
    timings,
    secret: () => undefined,
  })
}

/** A real local shell that says it is an SSH connection (what the run's pool gives). */
function remoteLike(host: string): Connection {
  const local = new LocalConnection(host)
  return {
    host,
    kind: 'ssh',
    exec: (c, o) => local.exec(c, o),
    readFile: (p, o) => local.readFile(p, o),
    writeFile: (p, d, o) => local.writeFile(p, d, o),
    close: () => local.close(),
  }
}

describe('timings', () => {
  it('counts waits in the scope that awaits them, and in the run around it', async () => {
    const run = new Timings()
    const tasks = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const t = new Timings(run)
        await measure(t, 'api', () => sleep(20))
        if (name === 'b') await measure(t, 'api', () => sleep(20))
        return t.totals(100)
      }),
    )
    expect(tasks.map((t) => t.api_requests)).toEqual([1, 2])
    expect(tasks[1]?.api_ms).toBeGreaterThanOrEqual(38)
    expect(tasks[1]?.local_ms).toBeLessThanOrEqual(62)
    expect(run.totals().api_requests).toBe(3)
    // a failed wait counts too
    const t = new Timings()
    await expect(measure(t, 'command', () => Promise.reject(new Error('x')))).rejects.toThrow('x')
    expect(t.commands).toBe(1)
  })

  it("times a task's wait for a connection and each command on it (a real shell)", async () => {
    const t = new Timings()
    const c = await contextFor(remoteLike('h1'), t, 15).conn()
    expect(c.host).toBe('h1')
    expect(c.kind).toBe('ssh')
    expect((await c.exec('echo hi')).stdout.trim()).toBe('hi')
    expect(await c.readFile('/nonexistent/file')).toBeNull()
    const totals = t.totals(1000)
    expect(totals.ssh_wait_ms).toBeGreaterThanOrEqual(14)
    expect(totals.commands).toBe(2)
    expect(totals.commands_ms).toBeGreaterThan(0)
  })

  it("does not count the controller's own shell as SSH or remote commands", async () => {
    const t = new Timings()
    const c = await contextFor(new LocalConnection('localhost'), t).conn()
    expect((await c.exec('echo hi')).stdout.trim()).toBe('hi')
    expect(t.totals()).toMatchObject({ ssh_wait_ms: 0, commands: 0 })
  })

  it("gives every task_end of a real run its own task's timings", async () => {
    const { events } = await runYaml(
      `plays:
  - hosts: localhost
    tasks:
      - name: one
        command: "true"
      - name: two
        command: sleep 0.05
`,
      { registry },
    )
    const ends = events.filter((e) => e.type === 'task_end')
    expect(ends.map((e) => e.type === 'task_end' && e.task)).toEqual(['one', 'two'])
    for (const e of ends) {
      if (e.type !== 'task_end') continue
      expect(e.timings).toMatchObject({ ssh_wait_ms: 0, commands: 0, api_requests: 0 })
      // what is not waiting is local work: the controller's command, here
      expect(e.timings?.local_ms).toBe(e.duration_ms)
    }
    const two = ends[1]
    expect(two?.type === 'task_end' && two.duration_ms).toBeGreaterThanOrEqual(45)
  })

  it('attaches the run totals to the summary, and prints the table', async () => {
    const events: RunEvent[] = []
    const run = new Timings()
    const task = new Timings(run)
    await measure(task, 'command', () => sleep(5))
    events.push({
      type: 'task_end',
      play: 'p',
      task: 'install',
      host: 'web1',
      status: 'ok',
      changes: [],
      duration_ms: 50,
      timings: task.totals(50),
    })
    events.push(
      withRunTotals(
        {
          type: 'summary',
          ok: true,
          mode: 'plan',
          hosts: {},
          plan: { create: 0, update: 0, delete: 0, run: 0 },
          duration_ms: 60,
          changed: 0,
          failed: 0,
          unreachable: 0,
        },
        run,
      ),
    )
    // other events pass as they are
    const start: RunEvent = { type: 'task_start', play: 'p', task: 'install', host: 'web1' }
    expect(withRunTotals(start, run)).toBe(start)
    const [end, summary] = events
    expect(end?.type === 'task_end' && end.timings?.commands).toBe(1)
    expect(summary?.type === 'summary' && summary.api_requests).toBe(0)
    expect(summary?.type === 'summary' && summary.timings?.commands).toBe(1)
    const text = renderTimings(events, plainColors)
    expect(text).toMatch(/install\s+web1\s+50 ms\s+0 ms\s+1 \/ \d+ ms/)
    expect(text).toContain('run: 60 ms wall; 1 commands')
  })
})
