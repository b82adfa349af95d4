/**
 * A host over SSH: commands through one persistent shell per host (one round trip each), files
 * read in one round trip and written atomically over SFTP (or through the shell when another
 * user must write them). A dropped connection is re-opened on the next use; a command cut off by
 * the drop is retried only when it is idempotent.
 */
import { randomBytes } from 'node:crypto'
import type { SFTPWrapper, Stats } from 'ssh2'
import { RunbookError } from '../errors.ts'
import {
  becomeShellCommand,
  newBecomeMarks,
  openBecomeShell,
  type BecomeShell,
} from './become-shell.ts'
import { RemoteShell, ShellClosedError, type FramedResult } from './remote-shell.ts'
import { atomicWriteScript, quote } from './shell.ts'
import type { ChannelOpener, HostTransport } from './keeper-client.ts'
import type {
  BecomeOptions,
  Connection,
  ExecOptions,
  ExecResult,
  WriteFileOptions,
} from './types.ts'

/** How sudo is asked on one shell for one target user. */
type SudoMode = 'nopass' | 'pass'

/** Per-connection options the pool passes on from the host's settings. */
export interface SshConnectionOptions {
  /** sudo password used when a become has none. */
  becomePassword?: string | undefined
}

/** The command text a caller gave, shortened for messages. */
function brief(command: string): string {
  const line = command.trim().split('\n')[0] ?? ''
  return line.length > 60 || command.trim().includes('\n') ? `${line.slice(0, 60)}...` : line
}

/** The script run under /bin/sh -c: cwd and environment first, so they also apply under sudo. */
export function innerScript(command: string, opts: Pick<ExecOptions, 'cwd' | 'env'>): string {
  const lines: string[] = []
  if (opts.cwd) lines.push(`cd ${quote(opts.cwd)} || exit 1`)
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new RunbookError('E_PARAM', `invalid environment variable name '${k}'`)
    lines.push(`export ${k}=${quote(v)}`)
  }
  lines.push(command)
  return lines.join('\n')
}

/** A word as `quote` writes it: plain characters and single-quoted runs. */
const WORD = String.raw`(?:[A-Za-z0-9_@%+=:,./-]|'[^'\n]*'|\\')+`
const PLAIN_EXEC = new RegExp(`^exec ([A-Za-z0-9_./-]+(?: ${WORD})*)$`)
const RESERVED =
  /^(if|then|else|elif|fi|do|done|case|esac|while|until|for|in|function|select|time)$/

/**
 * How the persistent shell starts a command: a command that is only `exec` of quoted words (what
 * `command` sends) is started as those words, one process less than `/bin/sh -c 'exec …'`; any
 * other script runs in its own `/bin/sh -c`, so that it cannot change the persistent shell.
 * @example runnerOf("exec ip route show default") // 'ip route show default'
 * @example runnerOf('cd /tmp && ls') // "/bin/sh -c 'cd /tmp && ls'"
 */
export function runnerOf(inner: string): string {
  const words = PLAIN_EXEC.exec(inner)?.[1]
  if (words !== undefined && !RESERVED.test(words.split(' ')[0] ?? '')) return words
  return `/bin/sh -c ${quote(inner)}`
}

/**
 * One command as `user` through its own sudo: only the kill of a timed-out become command, whose
 * become shell is blocked in `wait`. With a password, `-k` makes sudo always read it from stdin.
 */
export function sudoLine(inner: string, user: string, mode: SudoMode): string {
  const flags = mode === 'pass' ? `-k -S -p ''` : '-n'
  return `sudo ${flags} -H -u ${quote(user)} -- /bin/sh -c ${quote(inner)}`
}

/**
 * A become shell of one target user on one connection (generation): opening, open, or failed with
 * the password it was given.
 */
interface BecomeEntry {
  generation: number
  password: string | undefined
  opening: Promise<BecomeShell>
  open?: BecomeShell | undefined
}

/** The login shell of one connection (generation). */
interface ShellState {
  shell: RemoteShell
  generation: number
}

/**
 * A Connection over SSH; get one from ConnectionPool.get.
 * @example const conn = await pool.get('web1', settings); await conn.exec('uname -r', { idempotent: true })
 */
export class SshConnection implements Connection {
  readonly kind = 'ssh' as const
  private queue: Promise<unknown> = Promise.resolve()
  private state: ShellState | undefined
  private opening: Promise<ShellState> | undefined
  /** Become shells by target user; they do not wait for the login shell, nor it for them. */
  private readonly becomes = new Map<string, BecomeEntry>()
  private sftp: { sftp: SFTPWrapper; generation: number; closed: boolean } | undefined
  private sftpOpening: Promise<SFTPWrapper> | undefined
  private closed = false

  constructor(
    readonly host: string,
    readonly transport: HostTransport,
    private readonly opts: SshConnectionOptions = {},
  ) {}

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.run(command, opts).then((r) => ({
      rc: r.rc,
      stdout: r.stdout.toString('utf8'),
      stderr: r.stderr.toString('utf8'),
    }))
  }

  async readFile(
    file: string,
    opts: { become?: BecomeOptions | undefined } = {},
  ): Promise<Buffer | null> {
    const q = quote(file)
    // `[ -e ]` is also false behind a directory we may not enter: only ENOENT means "no file".
    const script = [
      `if [ -e ${q} ]; then printf F; exec cat -- ${q}; fi`,
      `rb_e=$(LC_ALL=C cat -- ${q} 2>&1 >/dev/null) && { printf F; exec cat -- ${q}; }`,
      `case $rb_e in *'No such file or directory'*) printf M ;; *) printf '%s\n' "$rb_e" >&2; exit 1 ;; esac`,
    ].join('\n')
    const r = await this.run(script, { become: opts.become, idempotent: true })
    if (r.rc !== 0)
      throw new RunbookError(
        'E_CONNECTION',
        `cannot read ${file} on ${this.host}: ${r.stderr.toString('utf8').trim()}`,
        { host: this.host },
      )
    return r.stdout[0] === 0x46 ? r.stdout.subarray(1) : null
  }

  async writeFile(file: string, data: string | Buffer, opts: WriteFileOptions = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    const become = this.become(opts.become)
    if (become || opts.owner || opts.group) {
      const r = await this.run(atomicWriteScript(file, opts), {
        become,
        stdin: buf,
        idempotent: true,
      })
      if (r.rc !== 0)
        throw new RunbookError(
          'E_CONNECTION',
          `cannot write ${file} on ${this.host}: ${r.stderr.toString('utf8').trim()}`,
          { host: this.host },
        )
      return
    }
    try {
      await this.sftpWrite(file, buf, opts.mode)
    } catch (err) {
      if (!(err instanceof SftpDropped)) throw err
      // The write is idempotent: do it once more on a new connection, after removing the temp file.
      await this.sftpWrite(file, buf, opts.mode, err.tmp)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.state?.shell.close()
    this.state = undefined
    for (const b of this.becomes.values()) b.open?.shell.close()
    this.becomes.clear()
    this.sftp?.sftp.end()
    this.sftp = undefined
  }

  /** Commands run one at a time: the shell is one. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  /** The become to use: none when we already log in as the user asked for, the host's password when it has none. */
  private become(b: BecomeOptions | undefined): BecomeOptions | undefined {
    if (!b || (b.user ?? 'root') === this.transport.endpoint.user) return undefined
    return b.password === undefined && this.opts.becomePassword !== undefined
      ? { ...b, password: this.opts.becomePassword }
      : b
  }

  private run(command: string, opts: ExecOptions): Promise<FramedResult> {
    if (this.closed)
      return Promise.reject(
        new RunbookError('E_CONNECTION', `connection to ${this.host} is closed`, {
          host: this.host,
        }),
      )
    return this.serial(async () => {
      try {
        return await this.runOnce(command, opts)
      } catch (err) {
        if (!(err instanceof ShellClosedError)) throw err
        if (err.started && !opts.idempotent) {
          throw new RunbookError(
            'E_CONNECTION',
            `the connection to ${this.host} dropped while \`${brief(command)}\` ran: it may or may not have run, and it is not retried because the step is not idempotent`,
            { host: this.host, cause: err },
          )
        }
      }
      try {
        return await this.runOnce(command, opts)
      } catch (err) {
        if (!(err instanceof ShellClosedError)) throw err
        throw new RunbookError(
          'E_CONNECTION',
          `the connection to ${this.host} dropped twice while \`${brief(command)}\` ran`,
          { host: this.host, cause: err },
        )
      }
    })
  }

  private async runOnce(command: string, opts: ExecOptions): Promise<FramedResult> {
    const become = this.become(opts.become)
    const inner = innerScript(command, opts)
    const stdin =
      opts.stdin === undefined
        ? undefined
        : typeof opts.stdin === 'string'
          ? Buffer.from(opts.stdin)
          : opts.stdin
    // a probe (idempotent, no timeout to enforce by killing its group) runs in a subshell of the
    // persistent shell: a fork instead of setsid and /bin/sh, the most frequent command of a run
    const subshell = opts.idempotent === true && !opts.timeoutMs
    const runner = subshell ? `( eval ${quote(inner)} )` : runnerOf(inner)
    const elevated = become
      ? await this.becomeShell(become.user ?? 'root', become.password)
      : undefined
    const state = elevated ? undefined : await this.openShell()
    const shell = elevated?.shell ?? state!.shell
    const mode: SudoMode | undefined = elevated && (elevated.askedPassword ? 'pass' : 'nopass')
    if (opts.signal?.aborted)
      return { rc: 137, stdout: Buffer.alloc(0), stderr: Buffer.from('aborted\n') }
    let ended: 'timeout' | 'abort' | undefined
    let pidSeen: (pid: number) => void = () => undefined
    const pidKnown = new Promise<number | undefined>((resolve) => {
      pidSeen = resolve
      setTimeout(() => resolve(undefined), 5000).unref()
    })
    let interrupt: (err: Error) => void = () => undefined
    const interrupted = new Promise<never>((_, reject) => (interrupt = reject))
    // A stopped command fails at once; its shell is retired, and closed only once the command's
    // process group is known and killed (on a slow host the pid may still be on its way).
    const stop = (why: 'timeout' | 'abort'): void => {
      if (ended) return
      ended = why
      // only this shell is retired: it is blocked in `wait`; the others are idle
      if (state && this.state === state) this.state = undefined
      if (become) {
        const user = become.user ?? 'root'
        if (this.becomes.get(user)?.open === elevated) this.becomes.delete(user)
      }
      void pidKnown.then((pid) => {
        this.killRemote(pid, become, mode)
        shell.close()
      })
      interrupt(new Error(why))
    }
    const timer = opts.timeoutMs ? setTimeout(() => stop('timeout'), opts.timeoutMs) : undefined
    const onAbort = (): void => stop('abort')
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const running = shell.run(runner, { stdin, onPid: pidSeen, subshell })
      running.catch(() => undefined)
      return await Promise.race([running, interrupted])
    } catch (err) {
      if (ended === 'timeout')
        throw new RunbookError(
          'E_TIMEOUT',
          `\`${brief(command)}\` timed out after ${opts.timeoutMs} ms on ${this.host}`,
          { host: this.host },
        )
      if (ended === 'abort')
        return { rc: 137, stdout: Buffer.alloc(0), stderr: Buffer.from('aborted\n') }
      throw err
    } finally {
      if (timer) clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * The shell of `user` on this connection: opened once (one sudo) and reused by every later
   * command. A failed opening is remembered with its password, so that a wrong password is not
   * tried again on every task (sudo would count each try); another password opens anew.
   */
  private async becomeShell(user: string, password: string | undefined): Promise<BecomeShell> {
    const client = await this.transport.ensure()
    const generation = this.transport.generation
    const known = this.becomes.get(user)
    if (known?.generation === generation) {
      if (known.open && !known.open.shell.closed) return known.open
      if (!known.open && known.password === password) return known.opening
    }
    known?.open?.shell.close()
    const entry: BecomeEntry = {
      generation,
      password,
      opening: this.openBecome(client, generation, user, password),
    }
    this.becomes.set(user, entry)
    entry.open = await entry.opening
    return entry.open
  }

  private async openBecome(
    client: ChannelOpener,
    generation: number,
    user: string,
    password: string | undefined,
  ): Promise<BecomeShell> {
    const marks = newBecomeMarks()
    const channel = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
      client.exec(becomeShellCommand(user, marks, password !== undefined), (err, ch) =>
        err ? reject(err) : resolve(ch),
      )
    }).catch((err: unknown) => {
      throw new RunbookError(
        'E_CONNECTION',
        `cannot start a shell as ${user} on ${this.host}: ${err instanceof Error ? err.message : String(err)}`,
        { host: this.host, cause: err },
      )
    })
    try {
      return await openBecomeShell(channel, {
        host: this.host,
        user,
        marks,
        password,
        timeoutMs: Math.max(this.transport.endpoint.connectTimeoutMs, 30_000),
      })
    } catch (err) {
      // the connection dropped under sudo: not sudo's answer, the next connection tries again
      if (!this.transport.connected || this.transport.generation !== generation)
        throw new ShellClosedError(false)
      throw err
    }
  }

  /** The shell of the current connection, (re)connecting and (re)opening it when needed. */
  private openShell(): Promise<ShellState> {
    const s = this.state
    if (
      s &&
      !s.shell.closed &&
      s.generation === this.transport.generation &&
      this.transport.connected
    )
      return Promise.resolve(s)
    this.opening ??= (async () => {
      s?.shell.close()
      const client = await this.transport.ensure()
      const generation = this.transport.generation
      const channel = await new Promise<import('ssh2').ClientChannel>((resolve, reject) => {
        client.exec('/bin/sh', (err, ch) => (err ? reject(err) : resolve(ch)))
      }).catch((err: unknown) => {
        throw new RunbookError(
          'E_CONNECTION',
          `cannot start a shell on ${this.host}: ${err instanceof Error ? err.message : String(err)}`,
          { host: this.host, cause: err },
        )
      })
      const state: ShellState = { shell: new RemoteShell(channel), generation }
      this.state = state
      return state
    })().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  /**
   * Kills a command's process group from a separate channel (the shell itself is blocked in
   * `wait`), as the login user and, for become, through sudo as well.
   */
  private killRemote(
    pid: number | undefined,
    become: BecomeOptions | undefined,
    mode: SudoMode | undefined,
  ): void {
    if (pid === undefined || !this.transport.connected) return
    // `kill -s SIG -- -PGID` is the form every POSIX shell accepts (dash rejects `kill -TERM --`).
    // a subshell's pid is no group: then the pid itself
    const kill = `kill -s TERM -- -${pid} 2>/dev/null || kill -s TERM ${pid} 2>/dev/null; sleep 0.2; kill -s KILL -- -${pid} 2>/dev/null || kill -s KILL ${pid} 2>/dev/null; true`
    const cmds: Array<{ line: string; stdin?: string }> = [{ line: `/bin/sh -c ${quote(kill)}` }]
    if (become && mode)
      cmds.push({
        line: sudoLine(kill, become.user ?? 'root', mode),
        ...(mode === 'pass' ? { stdin: `${become.password}\n` } : {}),
      })
    this.transport
      .ensure()
      .then((client) => {
        for (const c of cmds) {
          client.exec(c.line, (err, ch) => {
            if (err) return
            ch.on('data', () => undefined)
            ch.stderr.on('data', () => undefined)
            ch.end(c.stdin ?? '')
          })
        }
      })
      .catch(() => undefined)
  }

  private getSftp(): Promise<SFTPWrapper> {
    const cur = this.sftp
    if (
      cur &&
      !cur.closed &&
      cur.generation === this.transport.generation &&
      this.transport.connected
    )
      return Promise.resolve(cur.sftp)
    this.sftpOpening ??= this.openSftp().finally(() => {
      this.sftpOpening = undefined
    })
    return this.sftpOpening
  }

  private async openSftp(): Promise<SFTPWrapper> {
    const client = await this.transport.ensure()
    const generation = this.transport.generation
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) =>
      client.sftp((err, s) => (err ? reject(err) : resolve(s))),
    ).catch((err: unknown) => {
      throw new RunbookError(
        'E_CONNECTION',
        `cannot start SFTP on ${this.host}: ${err instanceof Error ? err.message : String(err)}`,
        { host: this.host, cause: err },
      )
    })
    const entry = { sftp, generation, closed: false }
    sftp.on('close', () => (entry.closed = true))
    sftp.on('error', () => (entry.closed = true))
    this.sftp = entry
    return sftp
  }

  /** Temp file in the same directory, written, chmod/chown as the old file, fsync, posix-rename. */
  private async sftpWrite(
    file: string,
    data: Buffer,
    mode: number | undefined,
    staleTmp?: string,
  ): Promise<void> {
    const sftp = await this.getSftp()
    const entry = this.sftp!
    // A request sent on a closed SFTP channel never gets an answer: fail it instead.
    const call = <T>(
      fn: (cb: (err: Error | undefined | null, v?: T) => void) => void,
    ): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (entry.closed) return reject(new Error('the SFTP channel closed'))
        const onClose = (): void => reject(new Error('the SFTP channel closed'))
        sftp.once('close', onClose)
        fn((err, v) => {
          sftp.removeListener('close', onClose)
          if (err) reject(err)
          else resolve(v as T)
        })
      })
    if (staleTmp) await call((cb) => sftp.unlink(staleTmp, cb)).catch(() => undefined)
    const slash = file.lastIndexOf('/')
    const dir = slash < 0 ? '.' : file.slice(0, slash) || '/'
    const tmp = `${dir === '/' ? '' : dir}/.${file.slice(slash + 1)}.rb-${randomBytes(4).toString('hex')}`
    const fail = (err: unknown): never => {
      if (entry.closed) throw new SftpDropped(tmp)
      throw new RunbookError(
        'E_CONNECTION',
        `cannot write ${file} on ${this.host}: ${err instanceof Error ? err.message : String(err)}`,
        { host: this.host, cause: err },
      )
    }
    let old: Stats | undefined
    try {
      old = await call<Stats>((cb) => sftp.stat(file, cb))
    } catch (err) {
      if ((err as { code?: number }).code !== 2) fail(err)
    }
    let handle: Buffer
    try {
      handle = await call<Buffer>((cb) => sftp.open(tmp, 'wx', { mode: 0o600 }, cb))
    } catch (err) {
      return fail(err)
    }
    try {
      await writeAll(sftp, handle, data)
      await call((cb) => sftp.fchmod(handle, mode ?? (old ? old.mode & 0o7777 : 0o644), cb))
      if (old) await call((cb) => sftp.fchown(handle, old.uid, old.gid, cb)).catch(() => undefined)
      await call((cb) => sftp.ext_openssh_fsync(handle, cb)).catch((err: unknown) => {
        if (!/does not support/.test(String(err))) throw err
      })
      await call((cb) => sftp.close(handle, cb))
    } catch (err) {
      await call((cb) => sftp.close(handle, cb)).catch(() => undefined)
      await call((cb) => sftp.unlink(tmp, cb)).catch(() => undefined)
      return fail(err)
    }
    try {
      await call((cb) => sftp.ext_openssh_rename(tmp, file, cb))
    } catch (err) {
      if (entry.closed) return fail(err)
      if (!/does not support/.test(String(err))) {
        await call((cb) => sftp.unlink(tmp, cb)).catch(() => undefined)
        return fail(err)
      }
      const r = await this.run(`mv -f ${quote(tmp)} ${quote(file)}`, { idempotent: true })
      if (r.rc !== 0) fail(new Error(r.stderr.toString('utf8').trim()))
    }
  }
}

/** The SFTP channel closed under a write; `tmp` may be left on the host. */
class SftpDropped extends Error {
  constructor(readonly tmp: string) {
    super('the connection closed during the write')
  }
}

/** Writes `data` at offset 0 with a few requests in flight, as ssh2's fastPut does. */
function writeAll(sftp: SFTPWrapper, handle: Buffer, data: Buffer): Promise<void> {
  const chunk = 64 * 1024
  const inFlight = 8
  return new Promise<void>((resolve, reject) => {
    let next = 0
    let active = 0
    let failed = false
    const pump = (): void => {
      if (failed) return
      if (next >= data.length && active === 0) return resolve()
      while (active < inFlight && next < data.length) {
        const off = next
        const len = Math.min(chunk, data.length - off)
        next += len
        active++
        sftp.write(handle, data, off, len, off, (err) => {
          active--
          if (err) {
            failed = true
            return reject(err)
          }
          pump()
        })
      }
    }
    if (data.length === 0) return resolve()
    pump()
  })
}
