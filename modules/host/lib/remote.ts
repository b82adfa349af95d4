/**
 * How host modules talk to a host: one shell script per round trip, whose output is read as
 * `key=value` lines and named sections, so a gather is a single exec.
 */
import type { ExecOptions, ExecResult } from '../../../engine/connection/types.ts'
import { RunbookError } from '../../../engine/errors.ts'
import type { ModuleContext } from '../../../engine/module.ts'

/** Options of a script run on the host. */
export interface RunOptions extends Omit<ExecOptions, 'become'> {
  /** What the script is for, in error messages. */
  what?: string
}

/**
 * Runs a script on the task's host with the task's become.
 * @example const r = await run(ctx, 'cat /proc/sys/net/ipv4/ip_forward', { idempotent: true })
 */
export async function run(
  ctx: ModuleContext,
  script: string,
  opts: RunOptions = {},
): Promise<ExecResult> {
  const conn = await ctx.conn()
  const { what: _what, ...exec } = opts
  return conn.exec(script, { ...exec, become: ctx.become, signal: opts.signal ?? ctx.signal })
}

/**
 * Runs a read-only probe script and fails on a non-zero rc with its stderr.
 * @example const kv = parseKv(await probe(ctx, 'echo a=1', 'facts'))
 */
export async function probe(ctx: ModuleContext, script: string, what: string): Promise<string> {
  const r = await run(ctx, script, { idempotent: true })
  if (r.rc !== 0)
    throw new RunbookError(
      'E_COMMAND',
      `${what}: probe failed (rc ${r.rc}): ${tail(r.stderr || r.stdout)}`,
    )
  return r.stdout
}

/**
 * Reads `key=value` lines (the first `=` splits; later keys win). Lines without `=` are ignored.
 * @example parseKv('a=1\nb=x=y\n') // { a: '1', b: 'x=y' }
 */
export function parseKv(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** The marker line that starts a section in a probe's output. */
export const SECTION = '@@rb:'

/**
 * Splits output made of `@@rb:name` marker lines followed by free text (JSON, raw files).
 * @example sections('@@rb:a\n{}\n@@rb:b\nx\n') // { a: '{}', b: 'x' }
 */
export function sections(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  let name: string | undefined
  let buf: string[] = []
  const flush = (): void => {
    if (name !== undefined) out[name] = buf.join('\n').replace(/\n$/, '')
  }
  for (const line of text.split('\n')) {
    if (line.startsWith(SECTION)) {
      flush()
      name = line.slice(SECTION.length).trim()
      buf = []
    } else if (name !== undefined) buf.push(line)
  }
  flush()
  return out
}

/** Shell line that prints a section marker. */
export function sectionLine(name: string): string {
  return `echo '${SECTION}${name}'`
}

/** The last lines of a command's output, for error messages. */
export function tail(text: string, lines = 20): string {
  const all = text.trimEnd().split('\n')
  return all.slice(-lines).join('\n')
}

/** Decodes base64 printed by a probe (empty when absent). */
export function fromBase64(b64: string | undefined): string {
  return b64 ? Buffer.from(b64, 'base64').toString('utf8') : ''
}

/** Sleeps, waking early (with an error) when the run is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RunbookError('E_MODULE', 'aborted'))
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new RunbookError('E_MODULE', 'aborted'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
