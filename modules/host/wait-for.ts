/**
 * `wait_for`: waits, from the host, until a TCP port accepts (or refuses) connections, a path
 * exists (or not), or a command succeeds.
 */
import { z } from 'zod'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import { parseKv, run, sleep, tail } from './lib/remote.ts'

const params = z
  .strictObject({
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .optional()
      .describe('TCP port to wait for (on `host`)'),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('Address the TCP check connects to, from the host'),
    path: z.string().min(1).optional().describe('A path on the host to wait for'),
    command: z
      .string()
      .min(1)
      .optional()
      .describe('A read-only shell command; the condition holds when its rc is 0'),
    state: z
      .enum(['started', 'stopped', 'present', 'absent'])
      .default('started')
      .describe(
        'started/present: the port accepts, the path exists, the command succeeds; stopped/absent: the opposite',
      ),
    timeout: z.number().positive().default(300).describe('Seconds to wait before the task fails'),
    delay: z
      .number()
      .nonnegative()
      .default(0)
      .describe('Seconds to wait before the first check during apply'),
    sleep: z.number().positive().default(1).describe('Seconds between checks'),
    connect_timeout: z
      .number()
      .positive()
      .default(2)
      .describe('Seconds one TCP connection attempt may take'),
  })
  .refine((p) => [p.port, p.path, p.command].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of `port`, `path` or `command`',
  })

/** wait_for's parameters. */
export type WaitForParams = z.infer<typeof params>

/** The outcome of one check. */
export interface WaitState {
  /** Whether the condition holds (port open, path exists, command rc 0). */
  up: boolean
}

function wantUp(p: WaitForParams): boolean {
  return p.state === 'started' || p.state === 'present'
}

/** The condition for humans: `tcp 127.0.0.1:8080 started`. */
export function describeWait(p: WaitForParams): string {
  if (p.port !== undefined) return `tcp ${p.host}:${p.port} ${p.state}`
  if (p.path !== undefined) return `path ${p.path} ${wantUp(p) ? 'present' : 'absent'}`
  return `command ${p.command ?? ''} ${wantUp(p) ? 'succeeds' : 'fails'}`
}

/** One check, one round trip. bash's /dev/tcp needs nothing installed; nc is the fallback. */
function checkScript(p: WaitForParams): string {
  if (p.path !== undefined) return `if [ -e ${quote(p.path)} ]; then echo up=1; else echo up=0; fi`
  if (p.command !== undefined)
    return `( ${p.command} ) >/dev/null 2>&1 </dev/null && echo up=1 || echo up=0`
  const ct = Math.max(1, Math.ceil(p.connect_timeout))
  const h = quote(p.host)
  return [
    `if command -v bash >/dev/null 2>&1; then timeout ${ct} bash -c 'exec 3<>"/dev/tcp/$0/$1"' ${h} ${p.port} 2>/dev/null`,
    `elif command -v nc >/dev/null 2>&1; then nc -z -w ${ct} ${h} ${p.port} 2>/dev/null`,
    `else echo 'wait_for: neither bash nor nc on the host' >&2; exit 2; fi`,
    'if [ $? -eq 0 ]; then echo up=1; else echo up=0; fi',
  ].join('\n')
}

async function check(ctx: ModuleContext, p: WaitForParams): Promise<WaitState> {
  const r = await run(ctx, checkScript(p), { idempotent: true })
  if (r.rc !== 0)
    throw new RunbookError('E_COMMAND', `wait_for: check failed (rc ${r.rc}): ${tail(r.stderr)}`)
  return { up: parseKv(r.stdout).up === '1' }
}

/**
 * Waits for a port, a path or a command on the host.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const waitFor = defineModule<WaitForParams, WaitState>({
  name: 'wait_for',
  summary: 'Waits until a TCP port, a path or a command on the host reaches the wanted state',
  example: `- wait_for: { port: 22, host: 192.0.2.11, timeout: 120 }`,
  params,
  verifies: true,
  gather: check,
  plan: (p, s) =>
    s.up === wantUp(p)
      ? []
      : [
          {
            action: 'run',
            target: `wait for ${describeWait(p)}`,
            note: `not yet (timeout ${p.timeout} s)`,
          },
        ],
  // Waiting changes nothing on the host, so a successful wait reports changed=false, as Ansible.
  async apply(ctx, p) {
    const started = Date.now()
    const deadline = started + p.timeout * 1000
    if (p.delay > 0) {
      ctx.progress(`waiting ${p.delay} s before the first check of ${describeWait(p)}`)
      await sleep(p.delay * 1000, ctx.signal)
    }
    ctx.progress(`waiting for ${describeWait(p)}`)
    for (;;) {
      if ((await check(ctx, p)).up === wantUp(p)) {
        const elapsed = (Date.now() - started) / 1000
        return {
          changed: false,
          msg: `${describeWait(p)} after ${elapsed.toFixed(1)} s`,
          output: { state: p.state, elapsed },
        }
      }
      if (Date.now() + p.sleep * 1000 > deadline) break
      await sleep(p.sleep * 1000, ctx.signal)
      ctx.progress(
        `waiting for ${describeWait(p)} (${Math.round((Date.now() - started) / 1000)} s of ${p.timeout} s)`,
      )
    }
    throw new RunbookError(
      'E_TIMEOUT',
      `timed out after ${p.timeout} s waiting for ${describeWait(p)}`,
    )
  },
  output: (p, s, changes) => ({ state: p.state, elapsed: changes.length ? unknown('elapsed') : 0 }),
})
