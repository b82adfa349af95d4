import { describe, expect, it } from 'vitest'
import {
  formatAdhocResult,
  runAdhoc,
  summarizeAdhoc,
} from '../../../engine/connection/exec-adhoc.ts'
import type { ConnectionPool } from '../../../engine/connection/pool.ts'
import type { Connection } from '../../../engine/connection/types.ts'
import { RunbookError } from '../../../engine/errors.ts'

/** A pool whose hosts answer from a table; `down` hosts are unreachable. */
function fakePool(
  answers: Record<string, { rc: number; stdout: string; stderr: string; delay: number } | 'down'>,
): ConnectionPool {
  return {
    async get(name: string) {
      const a = answers[name]
      if (a === 'down' || !a)
        throw new RunbookError('E_CONNECTION', `cannot connect to root@${name}: ECONNREFUSED`, {
          host: name,
        })
      const conn: Partial<Connection> = {
        host: name,
        exec: async () => {
          await new Promise((r) => setTimeout(r, a.delay))
          return { rc: a.rc, stdout: a.stdout, stderr: a.stderr }
        },
      }
      return conn
    },
  } as unknown as ConnectionPool
}

describe('runAdhoc', () => {
  it('streams blocks as hosts finish and returns results in host order', async () => {
    const blocks: string[] = []
    const pool = fakePool({
      slow: { rc: 0, stdout: 'up 1 day\n', stderr: '', delay: 50 },
      fast: { rc: 2, stdout: '', stderr: 'no such file', delay: 1 },
      gone: 'down',
    })
    const hosts = ['slow', 'fast', 'gone'].map((name) => ({ name, settings: { address: name } }))
    const results = await runAdhoc(hosts, 'uptime', { pool, write: (b) => blocks.push(b) })
    expect(results.map((r) => r.host)).toEqual(['slow', 'fast', 'gone'])
    expect(blocks[blocks.length - 1]).toBe('slow | CHANGED | rc=0 >>\nup 1 day\n')
    expect(blocks).toContain('fast | FAILED | rc=2 >>\nno such file\n')
    expect(blocks).toContain('gone | UNREACHABLE! => cannot connect to root@gone: ECONNREFUSED\n')
    expect(summarizeAdhoc(results)).toBe('ok=1 failed=1 unreachable=1')
  })

  it('keeps to the forks limit', async () => {
    let running = 0
    let peak = 0
    const pool = {
      async get(name: string) {
        return {
          host: name,
          exec: async () => {
            peak = Math.max(peak, ++running)
            await new Promise((r) => setTimeout(r, 10))
            running--
            return { rc: 0, stdout: '', stderr: '' }
          },
        }
      },
    } as unknown as ConnectionPool
    const hosts = Array.from({ length: 12 }, (_, i) => ({
      name: `h${i}`,
      settings: { address: `h${i}` },
    }))
    await runAdhoc(hosts, 'true', { pool, forks: 3 })
    expect(peak).toBe(3)
  })
})

describe('formatAdhocResult', () => {
  it('prints an empty body for a silent success and adds missing newlines', () => {
    expect(formatAdhocResult({ host: 'a', rc: 0, stdout: '', stderr: '', ms: 1 })).toBe(
      'a | CHANGED | rc=0 >>\n',
    )
    expect(formatAdhocResult({ host: 'a', rc: 0, stdout: 'x', stderr: 'y', ms: 1 })).toBe(
      'a | CHANGED | rc=0 >>\nx\ny\n',
    )
  })
})
