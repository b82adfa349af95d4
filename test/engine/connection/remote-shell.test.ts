import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { afterAll, describe, expect, it } from 'vitest'
import {
  FrameReader,
  RemoteShell,
  ShellClosedError,
  buildFramedScript,
  newMarker,
  type ShellChannel,
} from '../../../engine/connection/remote-shell.ts'
import { quote } from '../../../engine/connection/shell.ts'
import { innerScript, runnerOf, sudoLine } from '../../../engine/connection/ssh.ts'

describe('FrameReader', () => {
  const marker = newMarker()
  const out = Buffer.concat([
    Buffer.from('hello '),
    Buffer.from(`${marker}P4242\n`),
    Buffer.from('world\x00\xff'),
    Buffer.from(`${marker}E3\nstray output`),
  ])
  const err = Buffer.from(`warn\n${marker}E\n`)

  it('finds pid, rc and both ends whatever the chunking', () => {
    for (let cut = 1; cut < out.length; cut++) {
      const r = new FrameReader(marker)
      r.stderr(err.subarray(0, 7))
      r.stdout(out.subarray(0, cut))
      expect(r.done).toBe(false)
      r.stdout(out.subarray(cut))
      r.stderr(err.subarray(7))
      expect(r.done).toBe(true)
      expect(r.pid).toBe(4242)
      const res = r.result()
      expect(res.rc).toBe(3)
      expect(res.stdout).toEqual(Buffer.from('hello world\x00\xff'))
      expect(res.stderr.toString()).toBe('warn\n')
    }
  })

  it('works byte by byte', () => {
    const r = new FrameReader(marker)
    for (const b of out) r.stdout(Buffer.from([b]))
    for (const b of err) r.stderr(Buffer.from([b]))
    expect(r.result().stdout).toEqual(Buffer.from('hello world\x00\xff'))
  })

  it('takes only whole marker lines, among near misses, whatever the chunking', () => {
    // a marker not followed by P/E, digits without a newline, a marker right before the real
    // line: all stay in the output
    const noise = `${marker}X1\n${marker}E12 \n${marker}P${marker}P77\n`
    const all = Buffer.from(`${noise}${marker}E5\n`)
    for (let cut = 1; cut < all.length; cut++) {
      const r = new FrameReader(marker)
      r.stdout(all.subarray(0, cut))
      r.stdout(all.subarray(cut))
      r.stderr(Buffer.from(`${marker}E\n`))
      expect(r.done).toBe(true)
      expect(r.pid).toBe(77)
      const res = r.result()
      expect(res.rc).toBe(5)
      expect(res.stdout.toString()).toBe(`${marker}X1\n${marker}E12 \n${marker}P`)
    }
  })

  it("ignores another command's marker", () => {
    const r = new FrameReader(marker)
    r.stdout(Buffer.from(`${newMarker()}E0\n`))
    r.stderr(err)
    expect(r.done).toBe(false)
  })
})

describe('buildFramedScript', () => {
  it('feeds stdin as a base64 heredoc and otherwise /dev/null', () => {
    const m = newMarker()
    expect(buildFramedScript({ runner: 'true', marker: m })).toContain('$rb_ss true </dev/null &')
    const s = buildFramedScript({ runner: 'cat', marker: m, stdin: Buffer.from('x'.repeat(10000)) })
    expect(s).toContain(`base64 -d <<'RB_IN${m}' | $rb_ss cat &`)
    expect(Math.max(...s.split('\n').map((l) => l.length))).toBeLessThanOrEqual(4096)
  })
})

describe('innerScript and sudoLine', () => {
  it('puts cwd and env inside the script, so they survive sudo', () => {
    expect(innerScript('pwd', { cwd: '/tmp/a b', env: { A: "it's" } })).toBe(
      "cd '/tmp/a b' || exit 1\nexport A='it'\\''s'\npwd",
    )
    expect(() => innerScript('x', { env: { 'A-B': '1' } })).toThrow(/invalid environment variable/)
  })

  it('asks sudo for the password only in pass mode, always with -k', () => {
    expect(sudoLine('id', 'root', 'nopass')).toBe('sudo -n -H -u root -- /bin/sh -c id')
    expect(sudoLine('id -u', 'postgres', 'pass')).toBe(
      "sudo -k -S -p '' -H -u postgres -- /bin/sh -c 'id -u'",
    )
  })
})

/** A local /bin/sh standing in for the SSH channel: the framing is the same. */
function localChannel(): ShellChannel & { kill(): void } {
  const child = spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'pipe'] })
  const ch = new EventEmitter()
  child.stdout.on('data', (c: Buffer) => ch.emit('data', c))
  child.on('exit', () => ch.emit('close'))
  child.stdin.on('error', () => undefined)
  return Object.assign(ch, {
    write: (d: string | Buffer) => child.stdin.write(d),
    stderr: child.stderr,
    close: () => child.stdin.end(),
    kill: () => child.kill('SIGKILL'),
  }) as unknown as ShellChannel & { kill(): void }
}

describe('RemoteShell over a local sh', () => {
  const channel = localChannel()
  const shell = new RemoteShell(channel)
  const run = (cmd: string, stdin?: string | Buffer) =>
    shell.run(`/bin/sh -c ${quote(cmd)}`, {
      stdin: typeof stdin === 'string' ? Buffer.from(stdin) : stdin,
    })
  afterAll(() => shell.close())

  it('separates stdout, stderr and rc', async () => {
    const r = await run('echo out; echo err >&2; exit 7')
    expect([r.rc, r.stdout.toString(), r.stderr.toString()]).toEqual([7, 'out\n', 'err\n'])
  })

  it('passes stdin and never lets a command read the next one', async () => {
    const r = await run('cat; read x; echo "x=$x"', 'line1\nline2')
    expect(r.stdout.toString()).toBe('line1\nline2x=\n')
    expect((await run('echo still framed')).stdout.toString()).toBe('still framed\n')
  })

  it('keeps a syntax error inside the command', async () => {
    const r = await run("echo 'unbalanced")
    expect(r.rc).toBe(2)
    expect((await run('echo ok')).stdout.toString()).toBe('ok\n')
  })

  it('carries binary and large outputs', async () => {
    const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    expect((await run('cat', bin)).stdout).toEqual(bin)
    const big = await run('head -c 5000000 /dev/zero | tr "\\0" a')
    expect(big.stdout.length).toBe(5_000_000)
  })

  it('starts an exec of quoted words without a /bin/sh between, with the same argv and rc', async () => {
    const argvs = [
      [
        'printf',
        '[%s]',
        'a b',
        "it's",
        '$HOME',
        '*',
        '',
        '~',
        'x=1',
        '"q"',
        'back\\slash',
        ';',
        '|',
      ],
      ['sh', '-c', 'echo "$0:$1"; exit 3', 'zero', 'one two'],
      ['/bin/echo', '-n', '%d', '@x', 'a,b:c'],
      ['nosuchprogram-rb', 'x'],
    ]
    for (const argv of argvs) {
      const inner = `exec ${argv.map(quote).join(' ')}`
      const direct = runnerOf(inner)
      expect(direct).not.toMatch(/^\/bin\/sh -c/)
      const [a, b] = [await shell.run(direct), await shell.run(`/bin/sh -c ${quote(inner)}`)]
      expect([a.rc, a.stdout.toString()]).toEqual([b.rc, b.stdout.toString()])
    }
    expect((await shell.run(runnerOf('exec nosuchprogram-rb'))).rc).toBe(127)
    // its own process group all the same
    const grp = await shell.run(runnerOf(`exec sh -c ${quote('ps -o pgid= -p $$')}`))
    expect(grp.stdout.toString().trim()).not.toBe('')
    // anything else keeps its own shell: expansions, several commands, assignments, keywords
    for (const inner of [
      'exec echo $HOME',
      'cd /tmp && exec ls',
      'exec FOO=1 env',
      'exec echo a\nexec echo b',
      'exec if true',
      "exec echo 'a\nb'",
      'echo x',
    ])
      expect(runnerOf(inner)).toBe(`/bin/sh -c ${quote(inner)}`)
  })

  it('runs a probe in a subshell: its exit, variables, cd and syntax errors stay in it', async () => {
    const sub = (script: string, stdin?: string) =>
      shell.run(`( eval ${quote(script)} )`, {
        subshell: true,
        stdin: stdin === undefined ? undefined : Buffer.from(stdin),
      })
    const a = await sub('x=leaked; cd /; set -- a b; echo "$#:$(pwd)"; exit 4')
    expect([a.rc, a.stdout.toString()]).toEqual([4, '2:/\n'])
    const b = await sub('echo "x=${x:-unset} $(pwd)"')
    expect(b.stdout.toString()).toBe(`x=unset ${process.cwd()}\n`)
    const bad = await sub("echo 'unbalanced")
    expect(bad.rc).toBe(2)
    expect((await sub('cat', 'in\n')).stdout.toString()).toBe('in\n')
    expect((await sub('printf "%s\\n" one; echo two >&2')).stderr.toString()).toBe('two\n')
    // the shell itself goes on framing commands
    expect((await run('echo after')).stdout.toString()).toBe('after\n')
  })

  it('runs each command in its own process group', async () => {
    const grp = await run('test "$(ps -o pgid= -p $$ | tr -d " ")" = "$$" && echo leader')
    expect(grp.stdout.toString()).toBe('leader\n')
  })

  it('rejects a running command when the channel closes', async () => {
    const ch = localChannel()
    const s = new RemoteShell(ch)
    const p = s.run(`/bin/sh -c ${quote('sleep 1')}`)
    setTimeout(() => ch.kill(), 100)
    await expect(p).rejects.toBeInstanceOf(ShellClosedError)
    await expect(s.run('true')).rejects.toMatchObject({ started: false })
  })
})
