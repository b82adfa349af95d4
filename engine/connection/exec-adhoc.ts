/**
 * `runbook exec <inventory> <pattern> -- <command>`: one command on many hosts at once, through
 * the connection pool, printed host by host as each finishes, in the shape Ansible's ad-hoc
 * `shell` output has (`web1 | CHANGED | rc=0 >>`).
 */
import PQueue from 'p-queue'
import pc from 'picocolors'
import { toRunbookError, type RunbookError } from '../errors.ts'
import type { ConnectionPool } from './pool.ts'
import type { HostConnectionSettings } from './settings.ts'
import type { BecomeOptions } from './types.ts'

/** A host to run on. */
export interface AdhocHost {
  name: string
  settings: HostConnectionSettings
}

/** What happened on one host: a result, or the error that kept the command from running. */
export interface AdhocResult {
  host: string
  rc?: number | undefined
  stdout?: string | undefined
  stderr?: string | undefined
  /** Set when the host was unreachable or the command could not finish (timeout, dropped connection). */
  error?: RunbookError | undefined
  ms: number
}

/** Options of runAdhoc. */
export interface AdhocOptions {
  pool: ConnectionPool
  /** Hosts at once; 10 by default, as Ansible's forks. */
  forks?: number | undefined
  become?: BecomeOptions | undefined
  timeoutMs?: number | undefined
  stdin?: string | undefined
  /** Receives each host's block as soon as the host finishes (e.g. process.stdout.write). */
  write?: ((block: string) => void) | undefined
  color?: boolean | undefined
  signal?: AbortSignal | undefined
}

/**
 * Runs `command` on every host, `forks` at a time; results in the order of `hosts`.
 * @example
 * const results = await runAdhoc(hosts, 'uptime', { pool, write: (s) => process.stdout.write(s) })
 * process.exitCode = results.every((r) => r.rc === 0) ? 0 : 2
 */
export async function runAdhoc(
  hosts: AdhocHost[],
  command: string,
  opts: AdhocOptions,
): Promise<AdhocResult[]> {
  const queue = new PQueue({ concurrency: Math.max(1, opts.forks ?? 10) })
  const results = await Promise.all(
    hosts.map((h) =>
      queue.add(async (): Promise<AdhocResult> => {
        const started = Date.now()
        let result: AdhocResult
        try {
          const conn = await opts.pool.get(h.name, h.settings)
          const r = await conn.exec(command, {
            become: opts.become,
            timeoutMs: opts.timeoutMs,
            stdin: opts.stdin,
            signal: opts.signal,
          })
          result = {
            host: h.name,
            rc: r.rc,
            stdout: r.stdout,
            stderr: r.stderr,
            ms: Date.now() - started,
          }
        } catch (err) {
          result = {
            host: h.name,
            error: toRunbookError(err, 'E_CONNECTION', { host: h.name }),
            ms: Date.now() - started,
          }
        }
        opts.write?.(formatAdhocResult(result, opts.color ?? false))
        return result
      }),
    ),
  )
  return results
}

/**
 * One host's block: `name | CHANGED | rc=0 >>` and the output, `FAILED` for a non-zero rc,
 * `UNREACHABLE!` when it never ran.
 */
export function formatAdhocResult(r: AdhocResult, color = false): string {
  const paint = color ? pc : { yellow: (s: string) => s, red: (s: string) => s }
  if (r.error) {
    const unreachable = r.error.code === 'E_CONNECTION' || r.error.code === 'E_HOST_KEY'
    const head = `${r.host} | ${unreachable ? 'UNREACHABLE!' : 'FAILED!'} => ${r.error.message}${r.error.hint ? ` (${r.error.hint})` : ''}`
    return `${paint.red(head)}\n`
  }
  const ok = r.rc === 0
  const head = `${r.host} | ${ok ? 'CHANGED' : 'FAILED'} | rc=${r.rc} >>`
  const body = [r.stdout ?? '', r.stderr ?? '']
    .filter((s) => s !== '')
    .map((s) => (s.endsWith('\n') ? s : `${s}\n`))
    .join('')
  return `${ok ? paint.yellow(head) : paint.red(head)}\n${body}`
}

/** `ok=3 failed=1 unreachable=0`, for the last line. */
export function summarizeAdhoc(results: AdhocResult[]): string {
  const unreachable = results.filter((r) => r.error).length
  const ok = results.filter((r) => !r.error && r.rc === 0).length
  return `ok=${ok} failed=${results.length - ok - unreachable} unreachable=${unreachable}`
}
