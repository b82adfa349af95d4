import { spawn } from 'node:child_process'

/** What a finished command printed and returned. */
export interface CommandResult {
  stdout: string
  stderr: string
  code: number
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  allowFail?: boolean
  /** Kill the command after this many milliseconds (default 60 s). */
  timeoutMs?: number
}

/**
 * A command of the host side that failed: the command line, its exit code and what it printed.
 * @example try { await run('ip', ['netns', 'add', name]) } catch (e) { if (e instanceof HostCommandError) console.error(e.stderr) }
 */
export class HostCommandError extends Error {
  readonly command: string
  readonly code: number
  readonly stderr: string

  constructor(command: string, code: number, stderr: string) {
    super(`lab hosts: \`${command}\` failed (exit ${code}): ${stderr.trim() || 'no output'}`)
    this.name = 'HostCommandError'
    this.command = command
    this.code = code
    this.stderr = stderr
  }
}

/**
 * Runs a program without a shell and collects its output; throws {@link HostCommandError} on a
 * non-zero exit unless `allowFail`.
 * @example const { stdout } = await run('ip', ['netns', 'list'])
 */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<CommandResult> {
  const line = [cmd, ...args].join(' ')
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: hostEnv() })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new HostCommandError(line, -1, e.message))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const result = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr:
          Buffer.concat(err).toString('utf8') + (signal === null ? '' : ` (killed by ${signal})`),
        code: code ?? -1,
      }
      if (result.code !== 0 && opts.allowFail !== true)
        reject(new HostCommandError(line, result.code, result.stderr))
      else resolve(result)
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(opts.input ?? '')
  })
}

/** Runs a shell script (`sh -ec`) inside a named network namespace, nothing else changed. */
export function runInNetns(
  netns: string,
  script: string,
  opts: RunOptions = {},
): Promise<CommandResult> {
  return run('nsenter', [`--net=/run/netns/${netns}`, '--', 'sh', '-ec', script], opts)
}

/**
 * The environment for every command of the host side: a fixed PATH and C locale, so that output
 * parsing does not depend on the caller's shell.
 */
export function hostEnv(): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C',
    LC_ALL: 'C',
  }
}

/**
 * Quotes a value for a POSIX shell script.
 * @example runInNetns(ns, `ip addr add ${q(addr)} dev ens3`)
 */
export function q(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}
