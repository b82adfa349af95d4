import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { accessSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  becomeFailure,
  becomeShellCommand,
  newBecomeMarks,
  openBecomeShell,
} from '../../../engine/connection/become-shell.ts'
import type { ShellChannel } from '../../../engine/connection/remote-shell.ts'

const marks = { ready: '_RBready_', prompt: '_RBprompt_' }

/** `sh -c command` on this machine, as the channel sshd would give. */
function channelOf(command: string): ShellChannel {
  const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] })
  const ch = new EventEmitter()
  child.stdout.on('data', (c: Buffer) => ch.emit('data', c))
  child.on('exit', () => ch.emit('close'))
  child.stdin.on('error', () => undefined)
  return Object.assign(ch, {
    stderr: child.stderr,
    write: (d: string | Buffer) => child.stdin.write(d),
    close: () => child.stdin.end(),
  }) as unknown as ShellChannel
}

function hasSudo(): boolean {
  try {
    accessSync('/usr/bin/sudo')
    return process.getuid?.() === 0
  } catch {
    return false
  }
}

describe('becomeShellCommand', () => {
  it('uses sudo -n without a password, -S with a random prompt with one', () => {
    // without a password sudo starts the shell itself: the ready marker is its first input line
    expect(becomeShellCommand('root', marks, false)).toBe('sudo -n -H -u root -- /bin/sh')
    // with one, stdin is sudo's until the password: the shell prints the marker as it starts
    expect(becomeShellCommand('post gres', marks, true)).toBe(
      `sudo -S -p _RBprompt_ -H -u 'post gres' -- /bin/sh -c 'printf '\\''%sR\\n'\\'' _RBready_; exec /bin/sh'`,
    )
    const a = newBecomeMarks()
    const b = newBecomeMarks()
    expect(new Set([a.ready, a.prompt, b.ready, b.prompt]).size).toBe(4)
  })
})

describe('becomeFailure', () => {
  it.each([
    ['sudo: a password is required\n', 'closed', /needs a password to run as root/],
    ['Sorry, try again.\n', 'refused', /refused the password/],
    ['sudo: 1 incorrect password attempt\n', 'closed', /refused the password/],
    ['rb is not in the sudoers file.\n', 'closed', /does not allow this login user/],
    [
      'sh: 1: sudo: not found\n',
      'closed',
      /cannot start a shell as root on web1: sh: 1: sudo: not found/,
    ],
    ['', 'timeout', /did not answer/],
  ] as const)('%j (%s)', (stderr, why, message) => {
    const e = becomeFailure('web1', 'root', stderr, why)
    expect(e).toMatchObject({ code: 'E_COMMAND', host: 'web1' })
    expect(e.message).toMatch(message)
  })
})

/** A channel that records what is written to it; the test plays sudo's side. */
function scripted(): ShellChannel & EventEmitter & { written: string[]; stderr: EventEmitter } {
  const ch = new EventEmitter()
  const written: string[] = []
  return Object.assign(ch, {
    stderr: new EventEmitter(),
    written,
    write: (d: string | Buffer) => written.push(d.toString()) > 0,
    close: () => ch.emit('close'),
  }) as unknown as ShellChannel & EventEmitter & { written: string[]; stderr: EventEmitter }
}

describe('openBecomeShell: what it writes while sudo starts', () => {
  it('without a password, the ready line at once (it also carries the ACK sshd waits for)', async () => {
    const ch = scripted()
    const opening = openBecomeShell(ch, { host: 'h', user: 'root', marks, timeoutMs: 5000 })
    expect(ch.written).toEqual([`printf '%sR\\n' _RBready_\n`])
    ch.emit('data', Buffer.from(`${marks.ready}R\n`))
    expect((await opening).askedPassword).toBe(false)
  })

  it('with a password, nothing before sudo’s prompt, then the password once', async () => {
    const ch = scripted()
    const opening = openBecomeShell(ch, {
      host: 'h',
      user: 'root',
      marks,
      password: 'pw',
      timeoutMs: 5000,
    })
    expect(ch.written).toEqual([])
    ch.stderr.emit('data', Buffer.from(marks.prompt))
    expect(ch.written).toEqual(['pw\n'])
    ch.emit('data', Buffer.from(`${marks.ready}R\n`))
    expect((await opening).askedPassword).toBe(true)
  })
})

describe.skipIf(!hasSudo())('openBecomeShell with the real sudo (as root here)', () => {
  it('opens a shell through one sudo and runs framed commands on it', async () => {
    const m = newBecomeMarks()
    const b = await openBecomeShell(channelOf(becomeShellCommand('root', m, false)), {
      host: 'local',
      user: 'root',
      marks: m,
      timeoutMs: 10_000,
    })
    expect(b.askedPassword).toBe(false)
    const one = await b.shell.run(`/bin/sh -c 'id -un; echo $PPID'`)
    const two = await b.shell.run(`/bin/sh -c 'echo $PPID; cat'`, { stdin: Buffer.from('in') })
    const [who, ppid] = one.stdout.toString().split('\n')
    expect(who).toBe('root')
    expect(two.stdout.toString()).toBe(`${ppid}\nin`)
    b.shell.close()
  })

  it('fails clearly when sudo cannot start the shell', async () => {
    const m = newBecomeMarks()
    const opening = openBecomeShell(channelOf(becomeShellCommand('no-such-user-rb', m, false)), {
      host: 'local',
      user: 'no-such-user-rb',
      marks: m,
      timeoutMs: 10_000,
    })
    await expect(opening).rejects.toMatchObject({
      code: 'E_COMMAND',
      message: expect.stringMatching(
        /cannot start a shell as no-such-user-rb on local: .*unknown user/,
      ),
    })
  })
})
