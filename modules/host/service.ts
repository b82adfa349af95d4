/**
 * `service`: a service is running or stopped and starts at boot or not, with systemd or SysV init
 * scripts (detected per host). After acting it checks that the service really is in the claimed
 * state, and fails with the service's own last log lines when it is not.
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { INIT_CACHE_KEY } from './facts.ts'
import {
  actionScript,
  enableScript,
  logScript,
  parseProbe,
  probeScript,
  type InitSystem,
  type ServiceState,
} from './lib/init-system.ts'
import { parseKv, probe, run, sleep, tail } from './lib/remote.ts'

const params = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9@._:-]+$/, 'a service name')
      .describe('Service name (`keepalived`; `keepalived.service` works too)'),
    state: z
      .enum(['started', 'stopped', 'restarted', 'reloaded'])
      .optional()
      .describe(
        'started/stopped: the state to ensure; restarted/reloaded: an action, done on every apply (typically from a handler); on a stopped service both start it',
      ),
    enabled: z.boolean().optional().describe('Whether the service starts at boot'),
    timeout: z
      .number()
      .positive()
      .default(10)
      .describe('Seconds to wait for the service to reach the state after acting'),
    settle: z
      .number()
      .nonnegative()
      .default(1)
      .describe(
        'Seconds the service must stay running after a start before it counts as started (daemons that die on a bad config)',
      ),
  })
  .refine((p) => p.state !== undefined || p.enabled !== undefined, {
    message: 'give `state`, `enabled`, or both',
  })

/** service's parameters. */
export type ServiceParams = z.infer<typeof params>

type Verb = 'start' | 'stop' | 'restart' | 'reload'

async function gatherService(ctx: ModuleContext, p: ServiceParams): Promise<ServiceState> {
  const init = ctx.cache.get(INIT_CACHE_KEY) as InitSystem | undefined
  const s = parseProbe(parseKv(await probe(ctx, probeScript(p.name, init), `service ${p.name}`)))
  ctx.cache.set(INIT_CACHE_KEY, s.init)
  return s
}

/** The verb apply runs for the state change, from the change the plan made. */
function verbOf(c: Change): Verb {
  const after = c.after as { running?: boolean; action?: string } | undefined
  if (after?.action === 'restart' || after?.action === 'reload') return after.action
  return after?.running ? 'start' : 'stop'
}

/**
 * Ensures a service runs (or not) and starts at boot (or not).
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const service = defineModule<ServiceParams, ServiceState>({
  name: 'service',
  summary:
    'A service is started/stopped (or restarted/reloaded) and enabled at boot, with systemd or SysV init',
  example: `- service: { name: keepalived, state: started, enabled: true }`,
  params,
  aliases: { service: 'name' },
  gather: gatherService,
  noop: (p, s) =>
    `${p.name} is ${s.running ? 'running' : 'stopped'}${s.pid !== null ? ` (pid ${s.pid})` : ''}` +
    (p.enabled === undefined ? '' : `, ${s.enabled ? 'enabled' : 'disabled'} at boot`) +
    ` (${s.init})`,
  plan(p, s) {
    const changes: Change[] = []
    const target = `service ${p.name}`
    const note = s.exists
      ? undefined
      : `not installed yet (${s.init}); an earlier task must install it`
    const withNote = (c: Change): Change =>
      note ? { ...c, note: c.note ? `${c.note}; ${note}` : note } : c
    if (p.enabled !== undefined && s.enabled !== p.enabled)
      changes.push(
        withNote({
          action: 'update',
          target: `${target} at boot`,
          key: { kind: 'enabled', name: p.name },
          before: { enabled: s.enabled },
          after: { enabled: p.enabled },
        }),
      )
    const want = p.state
    if (
      (want === 'started' && !s.running) ||
      ((want === 'restarted' || want === 'reloaded') && !s.running)
    ) {
      changes.push(
        withNote({
          action: 'update',
          target,
          key: { kind: 'running', name: p.name },
          before: { running: false },
          after: { running: true },
          ...(want === 'started' ? {} : { note: `${want} requested, not running: start` }),
        }),
      )
    } else if (want === 'stopped' && s.running) {
      changes.push(
        withNote({
          action: 'update',
          target,
          key: { kind: 'running', name: p.name },
          before: { running: true },
          after: { running: false },
        }),
      )
    } else if (want === 'restarted' || want === 'reloaded') {
      // An action, not a state: it cannot converge, so it is a `run` every time it is asked for.
      const action = want === 'restarted' ? 'restart' : 'reload'
      changes.push({
        action: 'run',
        target,
        key: { kind: 'action', name: p.name },
        after: { action },
        note: `${action} (${s.detail})`,
      })
    }
    return changes
  },
  async apply(ctx, p, changes, s) {
    if (!s.exists)
      throw new RunbookError(
        'E_MODULE',
        `service ${p.name} not found (${s.init === 'systemd' ? 'no such unit' : `no /etc/init.d/${p.name}`})`,
      )
    const name = p.name
    for (const c of changes) {
      if (c.key?.kind === 'enabled') {
        const r = await run(ctx, enableScript(s.init, name, p.enabled ?? true))
        if (r.rc !== 0)
          throw new RunbookError(
            'E_COMMAND',
            `cannot ${p.enabled ? 'enable' : 'disable'} ${name}: ${tail(r.stdout + r.stderr)}`,
          )
        continue
      }
      const verb = verbOf(c)
      // Init scripts restart with `stop; sleep 1; start` (Debian's keepalived does) and lose the
      // race against a daemon that needs longer to stop; stop, wait until gone, then start does not.
      const steps: Verb[] = verb === 'restart' && s.init === 'sysv' ? ['stop', 'start'] : [verb]
      for (const step of steps) {
        ctx.progress(`${step} ${name}`)
        const r = await run(ctx, actionScript(s.init, name, step))
        const said = `--- ${s.init === 'systemd' ? 'systemctl' : 'service'} ${name} ${step} (rc ${r.rc}):\n${tail(r.stdout + r.stderr, 10)}`
        await verify(ctx, p, step === 'start' && verb === 'restart' ? 'restart' : step, s, said)
      }
    }
    const now = await gatherService(ctx, p)
    if (p.enabled !== undefined && now.enabled !== p.enabled)
      throw new RunbookError(
        'E_MODULE',
        `service ${name}: enabled is ${String(now.enabled)} after apply, not ${String(p.enabled)}`,
      )
    return { changed: true, output: outputOf(p, now) }
  },
  output: (p, s) => outputOf(p, s),
})

/** Polls until the service is in the state the verb claims, then lets it settle; else fails with its logs. */
async function verify(
  ctx: ModuleContext,
  p: ServiceParams,
  verb: Verb,
  before: ServiceState,
  said: string,
): Promise<void> {
  const wantRunning = verb !== 'stop'
  const deadline = Date.now() + p.timeout * 1000
  let now = await gatherService(ctx, p)
  while (now.running !== wantRunning && Date.now() < deadline) {
    ctx.progress(`waiting for ${p.name} to be ${wantRunning ? 'running' : 'stopped'}`)
    await sleep(250, ctx.signal)
    now = await gatherService(ctx, p)
  }
  if (wantRunning && now.running && p.settle > 0) {
    ctx.progress(`letting ${p.name} settle for ${p.settle} s, then checking it still runs`)
    await sleep(p.settle * 1000, ctx.signal)
    now = await gatherService(ctx, p)
  }
  let problem: string | undefined
  if (now.running !== wantRunning)
    problem = `is ${now.running ? 'still running' : 'not running'} after ${verb} (${now.detail || 'no process'})`
  else if (verb === 'restart' && before.pid !== null && now.pid === before.pid)
    problem = `kept pid ${now.pid} through a restart`
  if (!problem) return
  const logs = await run(ctx, logScript(now.init, p.name), { idempotent: true })
  const log = logs.stdout.trim()
    ? `\n--- last log lines:\n${tail(logs.stdout, 20)}`
    : '\n--- no log lines found for it'
  throw new RunbookError('E_MODULE', `service ${p.name} ${problem}\n${said}${log}`)
}

function outputOf(p: ServiceParams, s: ServiceState | undefined): Record<string, unknown> {
  if (!s) return { name: p.name }
  return {
    name: p.name,
    state: s.running ? 'started' : 'stopped',
    enabled: s.enabled,
    init: s.init,
    pid: s.pid,
    status: s.detail,
  }
}
