import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { isUnknown } from '../../../engine/vars/unknown.ts'
import { command } from '../../../modules/host/command.ts'
import { splitArgs } from '../../../modules/host/lib/argv.ts'
import type { GuardState } from '../../../modules/host/lib/run-command.ts'
import { shell } from '../../../modules/host/shell.ts'
import { testContext } from '../../helpers/context.ts'
import { converge, CountingConnection, planTable, type PlanCase } from './harness.ts'

const cases: PlanCase<GuardState>[] = [
  {
    name: 'no guard: always runs',
    params: { cmd: 'echo hi' },
    current: {},
    expected: [
      {
        action: 'run',
        target: 'command echo hi',
        note: 'a command always runs (use creates/removes to make it idempotent)',
      },
    ],
  },
  {
    name: 'creates missing: runs',
    params: { argv: ['touch', '/tmp/x y'], creates: '/tmp/x y' },
    current: { creates: false },
    expected: [
      { action: 'run', target: "command touch '/tmp/x y'", note: '/tmp/x y does not exist' },
    ],
  },
  {
    name: 'idempotent: creates exists',
    params: { cmd: 'touch /tmp/x', creates: '/tmp/x' },
    current: { creates: true },
    expected: [],
  },
  {
    name: 'removes gone: skipped',
    params: { cmd: 'rm /tmp/x', removes: '/tmp/x' },
    current: { removes: false },
    expected: [],
  },
  {
    name: 'removes there: runs',
    params: { cmd: 'rm /tmp/x', removes: '/tmp/x' },
    current: { removes: true },
    expected: [{ action: 'run', target: 'command rm /tmp/x', note: '/tmp/x exists' }],
  },
]

describe('command plan', () => planTable(command, cases))
describe('shell plan', () =>
  planTable(shell, [
    {
      name: 'shell runs',
      params: { cmd: 'ip route | grep default' },
      current: {},
      expected: [
        {
          action: 'run',
          target: 'command ip route | grep default',
          note: 'a command always runs (use creates/removes to make it idempotent)',
        },
      ],
    },
    {
      name: 'idempotent: creates exists',
      params: { cmd: 'date > /tmp/d', creates: '/tmp/d' },
      current: { creates: true },
      expected: [],
    },
  ]))

describe('splitArgs', () => {
  it.each([
    ['a b  c', ['a', 'b', 'c']],
    [`keepalived -f '/etc/my conf'`, ['keepalived', '-f', '/etc/my conf']],
    [`echo "a \\"b\\" $HOME" x\\ y ''`, ['echo', 'a "b" $HOME', 'x y', '']],
    ['ls *.conf | wc', ['ls', '*.conf', '|', 'wc']],
  ])('%s', (line, argv) => expect(splitArgs(line)).toEqual(argv))
  it('refuses an open quote', () => expect(() => splitArgs(`echo 'a`)).toThrow(/unterminated/))
})

describe('command and shell on the local host', () => {
  let dir = ''
  const conn = new CountingConnection(new LocalConnection('localhost'))
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rbt-cmd-'))
  })
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('command with creates runs once, registers output, then is skipped', async () => {
    const ctx = testContext({ conn })
    const marker = path.join(dir, 'made it')
    const r = await converge(command, ctx, conn, {
      argv: ['sh', '-c', 'echo out; echo err >&2; touch "$1"', 'sh', marker],
      creates: marker,
    })
    expect(r.gatherTrips).toBe(1)
    expect(r.result?.output).toMatchObject({
      rc: 0,
      stdout: 'out',
      stderr: 'err',
      stdout_lines: ['out'],
      cmd: ['sh', '-c', 'echo out; echo err >&2; touch "$1"', 'sh', marker],
    })
    expect(r.second).toEqual([])
    expect(
      command.output?.(command.params.parse({ cmd: 'x', creates: marker }), { creates: true }, []),
    ).toMatchObject({ skipped: true, rc: 0 })
  })

  it('command does not expand variables or globs', async () => {
    const ctx = testContext({ conn })
    const p = command.params.parse({ cmd: 'echo $HOME *', chdir: dir })
    const res = await command.apply(ctx, p, command.plan(p, {}), {})
    expect(res.output?.stdout).toBe('$HOME *')
  })

  it('shell runs through /bin/sh with chdir, stdin and env', async () => {
    const ctx = testContext({ conn })
    const p = shell.params.parse({
      cmd: 'cat | tr a-z A-Z; pwd; echo "$GREETING"',
      chdir: dir,
      stdin: 'quiet\n',
      env: { GREETING: 'hi there' },
    })
    const res = await shell.apply(ctx, p, shell.plan(p, {}), {})
    expect(res.output?.stdout_lines).toEqual(['QUIET', dir, 'hi there'])
  })

  it('a non-zero rc fails the task with stderr in the message and the output registered', async () => {
    const ctx = testContext({ conn })
    const p = shell.params.parse({ cmd: 'echo partial; echo broken thing >&2; exit 3' })
    const res = await shell.apply(ctx, p, shell.plan(p, {}), {})
    expect(res.failed).toBe(true)
    expect(res.msg).toMatch(/non-zero return code 3: broken thing/)
    expect(res.output).toMatchObject({ rc: 3, stdout: 'partial' })
  })

  it('removes: runs while the path exists', async () => {
    const ctx = testContext({ conn })
    const f = path.join(dir, 'to-remove')
    await fs.writeFile(f, '')
    const r = await converge(shell, ctx, conn, { cmd: `rm ${f}`, removes: f })
    expect([r.first.length, r.second.length]).toEqual([1, 0])
  })

  it('timeout kills the command and fails', async () => {
    const ctx = testContext({ conn })
    const p = shell.params.parse({ cmd: 'sleep 5', timeout: 0.3 })
    const t0 = Date.now()
    await expect(shell.apply(ctx, p, shell.plan(p, {}), {})).rejects.toThrow(
      /timed out after 0.3 s/,
    )
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it('in a plan, rc and stdout are known after apply', () => {
    const p = shell.params.parse({ cmd: 'true' })
    const out = shell.output?.(p, {}, shell.plan(p, {})) ?? {}
    expect(isUnknown(out.rc)).toBe(true)
  })
})
