/**
 * A persistent shell as another user (become): one `sudo` per connection and target user, not one
 * per command. sudo starts `/bin/sh`, which first prints a ready marker, then reads framed
 * commands as the login shell does (remote-shell.ts).
 *
 * Without a password sudo runs with `-n` and fails at once when it would ask. With one it runs with
 * `-S` and a random prompt on stderr: the password is written once, only when that prompt appears
 * (never with NOPASSWD), and a second prompt means sudo refused it. The password is never on a
 * command line, in output or in an error.
 */
import { RunbookError } from '../errors.ts'
import { newMarker, RemoteShell, type ShellChannel } from './remote-shell.ts'
import { quote } from './shell.ts'

/** A become shell ready for commands, and whether sudo asked for the password to open it. */
export interface BecomeShell {
  shell: RemoteShell
  askedPassword: boolean
}

/** The markers one opening watches for. */
export interface BecomeMarks {
  /** Printed on stdout by the shell sudo started: authentication is over. */
  ready: string
  /** sudo's password prompt on stderr. */
  prompt: string
}

/** Fresh random markers for one opening. */
export function newBecomeMarks(): BecomeMarks {
  return { ready: newMarker(), prompt: newMarker() }
}

/**
 * The command line that starts a shell as `user`. Without a password sudo starts `/bin/sh` itself,
 * and the ready marker is the first line written to it (`readyLine`): sudo -n reads no stdin. With
 * one, stdin is sudo's until it has the password, so the shell prints the marker as it starts
 * (one `/bin/sh -c` more).
 * @example becomeShellCommand('root', newBecomeMarks(), false) // sudo -n -H -u root -- /bin/sh
 */
export function becomeShellCommand(user: string, marks: BecomeMarks, password: boolean): string {
  if (!password) return `sudo -n -H -u ${quote(user)} -- /bin/sh`
  const start = `printf '%sR\\n' ${quote(marks.ready)}; exec /bin/sh`
  return `sudo -S -p ${quote(marks.prompt)} -H -u ${quote(user)} -- /bin/sh -c ${quote(start)}`
}

/** What the shell is told first when sudo needs no password: print the ready marker. */
export function readyLine(marks: BecomeMarks): string {
  return `printf '%sR\\n' ${quote(marks.ready)}\n`
}

/** What a failed opening is reported as; sudo's own words decide which. */
export function becomeFailure(
  host: string,
  user: string,
  stderr: string,
  why: 'closed' | 'refused' | 'timeout',
): RunbookError {
  const fail = (message: string, hint?: string): RunbookError =>
    new RunbookError('E_COMMAND', `become: ${message}`, { host, ...(hint ? { hint } : {}) })
  if (
    why === 'refused' ||
    /incorrect password|Sorry, try again|no password was provided/.test(stderr)
  )
    return fail(`sudo on ${host} refused the password to run as ${user}`)
  if (/a password is required|a terminal is required/.test(stderr))
    return fail(
      `sudo on ${host} needs a password to run as ${user}`,
      "set the host's become password (a secret)",
    )
  if (/not in the sudoers file|not allowed to (execute|run)|may not run sudo/.test(stderr))
    return fail(`sudo on ${host} does not allow this login user to run commands as ${user}`)
  if (why === 'timeout') return fail(`sudo on ${host} did not answer (running as ${user})`)
  const said = stderr.trim().split('\n').slice(-2).join(' / ')
  return fail(`cannot start a shell as ${user} on ${host}${said ? `: ${said}` : ''}`)
}

/** Options of one opening. */
export interface OpenBecomeOptions {
  host: string
  user: string
  marks: BecomeMarks
  /** Sent once, at sudo's prompt. */
  password?: string | undefined
  timeoutMs: number
}

/**
 * Waits on the channel of `becomeShellCommand` until the shell is ready (or sudo fails), answering
 * sudo's prompt once.
 * @example const b = await openBecomeShell(channel, { host: 'web1', user: 'root', marks, timeoutMs: 30000 })
 */
export function openBecomeShell(channel: ShellChannel, o: OpenBecomeOptions): Promise<BecomeShell> {
  return new Promise<BecomeShell>((resolve, reject) => {
    let out = ''
    let err = ''
    let prompts = 0
    let settled = false
    const finish = (result: BecomeShell | RunbookError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (result instanceof RunbookError) {
        try {
          channel.close()
        } catch {
          // already gone
        }
        reject(result)
      } else resolve(result)
    }
    const cleanErr = (): string => err.split(o.marks.prompt).join('')
    const timer = setTimeout(
      () => finish(becomeFailure(o.host, o.user, cleanErr(), 'timeout')),
      o.timeoutMs,
    )
    channel.on('data', (chunk) => {
      if (settled) return
      out += chunk.toString('latin1')
      if (out.includes(`${o.marks.ready}R\n`))
        finish({ shell: new RemoteShell(channel), askedPassword: prompts > 0 })
    })
    channel.stderr.on('data', (chunk) => {
      if (settled) return
      err += chunk.toString('latin1')
      const seen = err.split(o.marks.prompt).length - 1
      if (seen <= prompts) return
      prompts = seen
      if (prompts > 1 || o.password === undefined)
        return finish(becomeFailure(o.host, o.user, cleanErr(), 'refused'))
      channel.write(`${o.password}\n`)
    })
    channel.on('close', () => finish(becomeFailure(o.host, o.user, cleanErr(), 'closed')))
    // Without a password the shell sudo starts reads its first line from here: the command that
    // prints the ready marker. Written at once, it also carries the ACK of sshd's answer to the
    // exec, which would otherwise wait up to 40 ms (delayed ACK; no TCP_NODELAY without a pty),
    // and the ready line behind it. With a password nothing is written before sudo's prompt.
    if (o.password === undefined) channel.write(readyLine(o.marks))
  })
}
