/**
 * One long-lived `/bin/sh` per host, fed one framed command at a time. sshd sets up a session for
 * every new exec channel (~110 ms); a command written to an open shell costs one round trip.
 *
 * Framing: every command gets a random marker. The shell starts the command in the background in
 * its own session (setsid, so that a timeout can kill its whole process group), prints
 * `<marker>P<pid>` on stdout, waits, then prints `<marker>E<rc>` on stdout and `<marker>E` on
 * stderr. The command's stdin is a base64 heredoc or /dev/null, never the channel itself, so a
 * command can neither eat the next one nor break the framing; the command text is quoted into
 * `/bin/sh -c`, so even a syntax error stays inside it.
 */
import { randomBytes } from 'node:crypto'
import { quote } from './shell.ts'

/** Written once when a shell starts. */
export const SHELL_PRELUDE =
  'unset HISTFILE; rb_ss=; command -v setsid >/dev/null 2>&1 && rb_ss=setsid\n'

/** A fresh marker: long and random enough never to occur in output by chance. */
export function newMarker(): string {
  return `_RB${randomBytes(12).toString('hex')}_`
}

/** What one framed command is made of. */
export interface FramedCommand {
  /** A complete shell command line, e.g. `/bin/sh -c '...'` or a sudo line around it. */
  runner: string
  /** Bytes for the command's standard input. */
  stdin?: Buffer | undefined
  marker: string
  /**
   * The runner is a subshell of the shell (`( eval '...' )`: a fork, no setsid, no /bin/sh), not
   * a process group of its own: for short read-only scripts, which nothing kills by group.
   */
  subshell?: boolean | undefined
}

/**
 * The text written to the shell for one command.
 * @example buildFramedScript({ runner: "/bin/sh -c 'uname -r'", marker: newMarker() })
 */
export function buildFramedScript(cmd: FramedCommand): string {
  const m = quote(cmd.marker)
  const tail = `rb_p=$!; printf '%sP%d\\n' ${m} "$rb_p"; wait "$rb_p"; rb_rc=$?; printf '%sE%d\\n' ${m} "$rb_rc"; printf '%sE\\n' ${m} >&2\n`
  const runner = cmd.subshell ? cmd.runner : `$rb_ss ${cmd.runner}`
  if (!cmd.stdin || cmd.stdin.length === 0) return `${runner} </dev/null &\n${tail}`
  const eof = `RB_IN${cmd.marker}`
  const b64 = cmd.stdin.toString('base64').replace(/.{1,4096}/g, '$&\n')
  return `base64 -d <<'${eof}' | ${runner} &\n${b64}${eof}\n${tail}`
}

/** The outcome of one framed command, as bytes. */
export interface FramedResult {
  rc: number
  stdout: Buffer
  stderr: Buffer
}

/** Collects one stream and finds the marker lines in it, across chunk boundaries. */
class MarkedStream {
  readonly chunks: Buffer[] = []
  length = 0
  /** Marker lines found: kind, the number after it, start and end offsets. */
  readonly found: Array<{ kind: string; value: number | undefined; start: number; end: number }> =
    []
  private carry = ''

  constructor(private readonly marker: string) {}

  // Marker lines are found with indexOf: a RegExp per command (its marker is new each time) made
  // V8 compile a new regular expression for every command, about 0.2 ms each.
  push(chunk: Buffer): void {
    const before = this.length
    this.chunks.push(chunk)
    this.length += chunk.length
    const window = this.carry + chunk.toString('latin1')
    const windowStart = this.length - window.length
    const { marker } = this
    let i = window.indexOf(marker)
    while (i !== -1) {
      const k = i + marker.length
      const kind = window[k]
      let end = k + 1
      while (end < window.length && window.charCodeAt(end) >= 48 && window.charCodeAt(end) <= 57)
        end++
      if ((kind === 'P' || kind === 'E') && window[end] === '\n') {
        const digits = window.slice(k + 1, end)
        if (windowStart + end + 1 > before)
          this.found.push({
            kind,
            value: digits === '' ? undefined : Number(digits),
            start: windowStart + i,
            end: windowStart + end + 1,
          })
        i = window.indexOf(marker, end + 1)
      } else i = window.indexOf(marker, i + 1)
    }
    this.carry = window.slice(-64)
  }

  first(kind: string): { value: number | undefined; start: number; end: number } | undefined {
    return this.found.find((f) => f.kind === kind)
  }

  /** Bytes before `end`, without the ranges in `cut`. */
  slice(end: number, cut: Array<{ start: number; end: number }>): Buffer {
    const all = Buffer.concat(this.chunks, this.length).subarray(0, end)
    const parts: Buffer[] = []
    let pos = 0
    for (const c of cut.filter((c) => c.end <= end).sort((a, b) => a.start - b.start)) {
      parts.push(all.subarray(pos, c.start))
      pos = c.end
    }
    parts.push(all.subarray(pos))
    return Buffer.concat(parts)
  }
}

/**
 * Splits a shell's stdout and stderr into the result of one framed command.
 * @example const r = new FrameReader(marker); r.stdout(chunk); r.stderr(chunk); if (r.done) r.result()
 */
export class FrameReader {
  private readonly out: MarkedStream
  private readonly err: MarkedStream

  constructor(readonly marker: string) {
    this.out = new MarkedStream(marker)
    this.err = new MarkedStream(marker)
  }

  stdout(chunk: Buffer): void {
    this.out.push(chunk)
  }

  stderr(chunk: Buffer): void {
    this.err.push(chunk)
  }

  /** The remote pid (and process group) of the command, once the shell has printed it. */
  get pid(): number | undefined {
    return this.out.first('P')?.value
  }

  get done(): boolean {
    return this.out.first('E') !== undefined && this.err.first('E') !== undefined
  }

  /** Bytes of output so far, for progress and limits. */
  get received(): number {
    return this.out.length + this.err.length
  }

  result(): FramedResult {
    const end = this.out.first('E')
    const errEnd = this.err.first('E')
    if (!end || !errEnd) throw new Error('frame not complete')
    const pid = this.out.first('P')
    return {
      rc: end.value ?? 255,
      stdout: this.out.slice(end.start, pid ? [pid] : []),
      stderr: this.err.slice(errEnd.start, []),
    }
  }
}

/** The part of an ssh2 channel the shell uses. */
export interface ShellChannel {
  write(data: string | Buffer): boolean
  on(event: 'data', listener: (chunk: Buffer) => void): unknown
  on(event: 'close', listener: () => void): unknown
  stderr: { on(event: 'data', listener: (chunk: Buffer) => void): unknown }
  close(): unknown
}

/** Thrown when the shell's channel closes while a command runs (or before it starts). */
export class ShellClosedError extends Error {
  constructor(readonly started: boolean) {
    super(
      started
        ? 'the connection closed while the command ran'
        : 'the connection closed before the command started',
    )
    this.name = 'ShellClosedError'
  }
}

/**
 * A persistent shell on one channel. Commands must not overlap: the caller serialises them.
 * @example const r = await shell.run("/bin/sh -c 'id -u'")
 */
export class RemoteShell {
  closed = false
  private current:
    | {
        reader: FrameReader
        resolve: (r: FramedResult) => void
        reject: (e: Error) => void
        onPid?: ((pid: number) => void) | undefined
        pidSeen: boolean
      }
    | undefined

  constructor(private readonly channel: ShellChannel) {
    channel.on('data', (chunk) => this.onData('out', chunk))
    channel.stderr.on('data', (chunk) => this.onData('err', chunk))
    channel.on('close', () => {
      this.closed = true
      const c = this.current
      this.current = undefined
      c?.reject(new ShellClosedError(true))
    })
    channel.write(SHELL_PRELUDE)
  }

  /** Runs one command line; resolves with its rc and output, rejects with ShellClosedError. */
  run(
    runner: string,
    opts: {
      stdin?: Buffer | undefined
      onPid?: ((pid: number) => void) | undefined
      subshell?: boolean | undefined
    } = {},
  ): Promise<FramedResult> {
    if (this.closed) return Promise.reject(new ShellClosedError(false))
    if (this.current)
      return Promise.reject(new Error('RemoteShell.run called while a command runs'))
    const marker = newMarker()
    return new Promise<FramedResult>((resolve, reject) => {
      this.current = {
        reader: new FrameReader(marker),
        resolve,
        reject,
        onPid: opts.onPid,
        pidSeen: false,
      }
      this.channel.write(
        buildFramedScript({ runner, stdin: opts.stdin, marker, subshell: opts.subshell }),
      )
    })
  }

  /**
   * sshd does not set TCP_NODELAY on sessions without a pty, so the second small packet of a
   * reply (stdout, then stderr) waits for our ACK, which the kernel delays by up to 40 ms. Any
   * byte we send carries that ACK at once; a newline is an empty command to the shell.
   */
  private poke(reader: FrameReader): void {
    if (!reader.done) this.channel.write('\n')
  }

  /** Closes the channel; a running command is rejected. */
  close(): void {
    if (this.closed) return
    this.closed = true
    const c = this.current
    this.current = undefined
    c?.reject(new ShellClosedError(true))
    try {
      this.channel.close()
    } catch {
      // already gone
    }
  }

  private onData(stream: 'out' | 'err', chunk: Buffer): void {
    const c = this.current
    if (!c) return
    if (stream === 'out') c.reader.stdout(chunk)
    else c.reader.stderr(chunk)
    this.poke(c.reader)
    if (!c.pidSeen && c.reader.pid !== undefined) {
      c.pidSeen = true
      c.onPid?.(c.reader.pid)
    }
    if (c.reader.done) {
      this.current = undefined
      c.resolve(c.reader.result())
    }
  }
}
