/**
 * No wait of several seconds is silent: a command that runs longer than SLOW_NOTICE_MS says on its
 * task's live line what it waits for (real commands through the real pipeline); a helper shared
 * by tasks (an API client) reports to the task that awaits it, through the task's view of it.
 */
import { describe, expect, it } from 'vitest'
import { commandBrief, whileSlow } from '../../engine/progress.ts'
import { registry } from '../../modules/index.ts'
import type { Connection } from '../../engine/connection/types.ts'
import { taskConnection, Timings } from '../../engine/timings.ts'
import { runYaml } from '../helpers/run.ts'

describe('progress of slow waits', () => {
  it('a command running for more than 3 s is said on its task line, a quick one is not', async () => {
    const { events, result } = await runYaml(
      `plays:
  - hosts: localhost
    tasks:
      - name: slow
        command: sleep 3.5
      - name: quick
        command: "true"
`,
      { registry },
    )
    expect(result.ok).toBe(true)
    const progress = events.filter((e) => e.type === 'task_progress')
    expect(progress).toEqual([
      {
        type: 'task_progress',
        task: 'slow',
        host: 'localhost',
        message: 'waiting for `exec sleep 3.5` on localhost',
      },
    ])
  }, 20_000)

  it('reports a slow wait to the sink it is given, and only a slow one', async () => {
    const a: string[] = []
    const b: string[] = []
    await Promise.all([
      whileSlow(
        (m) => a.push(m),
        'x',
        () => new Promise((r) => setTimeout(r, 60)),
        20,
      ),
      whileSlow(
        (m) => b.push(m),
        'y',
        () => new Promise((r) => setTimeout(r, 1)),
        40,
      ),
    ])
    expect(a).toEqual(['waiting for x'])
    expect(b).toEqual([])
    // with no sink (no task) nothing is reported and nothing fails
    expect(await whileSlow(undefined, 'z', async () => 1, 0)).toBe(1)
  })

  it('a file transfer awaited for more than 3 s is said too (a slow link to the host)', async () => {
    // a link slow enough to take seconds cannot be made on this machine: the connection's
    // transfer is delayed, the wrapper around it is the real one every run uses
    const slow = (ms: number) => () => new Promise<void>((r) => setTimeout(r, ms))
    const conn = {
      host: 'far',
      kind: 'ssh',
      exec: async () => ({ rc: 0, stdout: '', stderr: '' }),
      readFile: async () => {
        await slow(3200)()
        return Buffer.from('x')
      },
      writeFile: slow(3200),
      close: async () => undefined,
    } as unknown as Connection
    const lines: string[] = []
    const timings = new Timings()
    const c = taskConnection(conn, { timings, progress: (m) => lines.push(m) })
    await c.writeFile('/etc/app.conf', 'abc')
    await c.readFile('/etc/app.conf')
    expect(timings.commands).toBe(2)
    expect(lines).toEqual([
      'waiting for writing /etc/app.conf (3 bytes) to far',
      'waiting for reading /etc/app.conf from far',
    ])
  }, 20_000)

  it('shows a command by its first line, folded and cut', () => {
    expect(commandBrief('apt-get   install -y keepalived')).toBe('apt-get install -y keepalived')
    expect(commandBrief('set -e\necho 1')).toBe('set -e …')
    expect(commandBrief('x'.repeat(70))).toBe(`${'x'.repeat(60)} …`)
  })
})
