/**
 * What `command` and `shell` share: `creates`/`removes` decide in gather whether the command still
 * has to run; apply runs it and registers rc/stdout/stderr. A command cannot tell whether it would
 * change anything, so without creates/removes the plan always says it will run.
 */
import { z } from 'zod'
import { quote } from '../../../engine/connection/shell.ts'
import { RunbookError } from '../../../engine/errors.ts'
import type { ApplyResult, ModuleContext } from '../../../engine/module.ts'
import type { Change } from '../../../engine/plan/change.ts'
import { unknown } from '../../../engine/vars/unknown.ts'
import { parseKv, probe, run, tail } from './remote.ts'

/** Parameters common to command and shell. */
export const runParams = {
  creates: z
    .string()
    .min(1)
    .optional()
    .describe('A path; when it exists the command is not run (relative to `chdir`)'),
  removes: z
    .string()
    .min(1)
    .optional()
    .describe('A path; when it does not exist the command is not run (relative to `chdir`)'),
  chdir: z.string().min(1).optional().describe('Directory to run the command in'),
  stdin: z.string().optional().describe('Text written to the command’s standard input'),
  timeout: z
    .number()
    .positive()
    .optional()
    .describe('Seconds after which the command is killed and the task fails'),
  env: z
    .record(z.string(), z.string())
    .optional()
    .describe('Environment variables for the command'),
}

/** The parameters the shared code reads. */
export interface RunParams {
  creates?: string | undefined
  removes?: string | undefined
  chdir?: string | undefined
  stdin?: string | undefined
  timeout?: number | undefined
  env?: Record<string, string> | undefined
}

/** Whether the guard paths exist (only those given). */
export interface GuardState {
  creates?: boolean
  removes?: boolean
}

/** One round trip for `creates`/`removes`, none when neither is given. */
export async function gatherGuards(ctx: ModuleContext, p: RunParams): Promise<GuardState> {
  if (p.creates === undefined && p.removes === undefined) return {}
  const lines = p.chdir ? [`cd ${quote(p.chdir)} 2>/dev/null`] : []
  if (p.creates !== undefined)
    lines.push(`if [ -e ${quote(p.creates)} ]; then echo creates=1; else echo creates=0; fi`)
  if (p.removes !== undefined)
    lines.push(`if [ -e ${quote(p.removes)} ]; then echo removes=1; else echo removes=0; fi`)
  const kv = parseKv(await probe(ctx, lines.join('\n'), 'creates/removes'))
  const s: GuardState = {}
  if (kv.creates !== undefined) s.creates = kv.creates === '1'
  if (kv.removes !== undefined) s.removes = kv.removes === '1'
  return s
}

/** Why the command is skipped, or undefined when it must run. */
export function skipReason(p: RunParams, s: GuardState | undefined): string | undefined {
  if (p.creates !== undefined && s?.creates === true) return `skipped, since ${p.creates} exists`
  if (p.removes !== undefined && s?.removes === false)
    return `skipped, since ${p.removes} does not exist`
  return undefined
}

/** A `run` change unless creates/removes say it is done. */
export function planRun(p: RunParams, s: GuardState, display: string): Change[] {
  if (skipReason(p, s)) return []
  const note =
    p.creates !== undefined
      ? `${p.creates} does not exist`
      : p.removes !== undefined
        ? `${p.removes} exists`
        : 'a command always runs (use creates/removes to make it idempotent)'
  return [{ action: 'run', target: `command ${display}`, note }]
}

/** Runs the script on the host; a non-zero rc is a failed task (with the output registered). */
export async function applyRun(
  ctx: ModuleContext,
  p: RunParams,
  script: string,
  cmd: string | string[],
): Promise<ApplyResult> {
  const env = Object.entries(p.env ?? {}).map(([k, v]) => `export ${k}=${quote(v)}`)
  const cd = p.chdir ? [`cd ${quote(p.chdir)} || exit 1`] : []
  const started = Date.now()
  let r
  try {
    r = await run(ctx, [...env, ...cd, script].join('\n'), {
      stdin: p.stdin,
      timeoutMs: p.timeout === undefined ? undefined : p.timeout * 1000,
    })
  } catch (e) {
    if (e instanceof RunbookError && e.code === 'E_TIMEOUT')
      throw new RunbookError(
        'E_TIMEOUT',
        `command timed out after ${p.timeout} s: ${display(cmd)}`,
        { cause: e },
      )
    throw e
  }
  const stdout = r.stdout.replace(/\n$/, '')
  const stderr = r.stderr.replace(/\n$/, '')
  const output = {
    cmd,
    rc: r.rc,
    stdout,
    stderr,
    stdout_lines: lines(stdout),
    stderr_lines: lines(stderr),
    elapsed: (Date.now() - started) / 1000,
  }
  if (r.rc !== 0)
    return {
      changed: true,
      failed: true,
      msg: `non-zero return code ${r.rc}${stderr ? `: ${tail(stderr, 10)}` : ''}`,
      output,
    }
  const guard =
    p.creates !== undefined ? await gatherGuards(ctx, { creates: p.creates, chdir: p.chdir }) : {}
  const msg =
    guard.creates === false
      ? `the command succeeded but did not create ${p.creates}: it will run again next time`
      : undefined
  return { changed: true, output, ...(msg ? { msg } : {}) }
}

/** register's value when nothing ran, or before apply (rc/stdout known after apply). */
export function runOutput(
  p: RunParams,
  s: GuardState | undefined,
  changes: Change[],
  cmd: string | string[],
): Record<string, unknown> {
  const reason = changes.length === 0 ? skipReason(p, s) : undefined
  if (reason)
    return {
      cmd,
      rc: 0,
      stdout: '',
      stderr: '',
      stdout_lines: [],
      stderr_lines: [],
      skipped: true,
      msg: reason,
    }
  return {
    cmd,
    rc: unknown('rc'),
    stdout: unknown('stdout'),
    stderr: unknown('stderr'),
    stdout_lines: unknown('stdout_lines'),
    stderr_lines: unknown('stderr_lines'),
  }
}

function lines(s: string): string[] {
  return s === '' ? [] : s.split('\n')
}

/** A command for humans. */
export function display(cmd: string | string[]): string {
  return typeof cmd === 'string' ? cmd : cmd.map(quote).join(' ')
}
