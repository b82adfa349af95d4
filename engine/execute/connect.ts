/**
 * How a task reaches a host during a run: the controller itself for localhost, otherwise the
 * run's pool; a slow connect shows what it waits for, and a VM this run just created is retried
 * for a bounded time while it boots.
 */
import { isLocalHost } from '../connection/factory.ts'
import type { LocalConnection } from '../connection/local.ts'
import { SSH_DEFAULTS } from '../connection/settings.ts'
import type { Connection } from '../connection/types.ts'
import { toRunbookError } from '../errors.ts'
import { containsUnknown, UnknownValueError } from '../vars/unknown.ts'
import type { UnreachableReason } from '../module.ts'
import type { RunState } from './types.ts'

const CONNECTION_KEYS = [
  'address',
  'ansible_host',
  'port',
  'ansible_port',
  'user',
  'ansible_user',
  'via',
]
/** A connect still going after this long is shown in the live view. */
const CONNECT_NOTICE_MS = 1500
/** How long a connect to a host added in this run (a VM just created) is retried. */
const JUST_CREATED_WAIT_MS = 60_000

/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Whether a host's address is still unknown (a VM not created yet, during a plan), itself or
 * through a jump host.
 * @example pending(run, 'web-1') // true while web-1's address is known only after apply
 */
export function pending(run: RunState, host: string, seen = new Set<string>()): boolean {
  if (seen.has(host)) return false
  seen.add(host)
  const vars = run.varsOf(host)
  for (const k of CONNECTION_KEYS) {
    const v = Object.prototype.hasOwnProperty.call(vars, k) ? vars[k] : undefined
    if (containsUnknown(v)) return true
  }
  const via = vars.via
  const jumps = Array.isArray(via) ? via : typeof via === 'string' ? [via] : []
  return jumps.some((j) => typeof j === 'string' && pending(run, j, seen))
}

/** What a connector needs besides the run. */
export interface ConnectorOptions {
  /** The controller's own connection. */
  local: LocalConnection
  /** During a plan, a host whose address is unknown is a value known after apply. */
  plan: boolean
  progress(message: string): void
  /** Why a host is unreachable, when a module knows (its server is SHUTOFF). */
  explain?: (name: string) => Promise<UnreachableReason | undefined>
}

/**
 * The `connectTo` of a task's context.
 * @example const connect = connector(run, { local, plan: false, progress }); await connect('lvs-1')
 */
export function connector(
  run: RunState,
  o: ConnectorOptions,
): (name: string) => Promise<Connection> {
  return async (name) => {
    if (name === 'localhost' && isLocalHost(name, run.varsOf(name))) return o.local
    if (o.plan && pending(run, name)) throw new UnknownValueError(`host ${name}`)
    const slow = setTimeout(() => o.progress(slowNotice(run, name)), CONNECT_NOTICE_MS)
    try {
      return await connectRetrying(run, name, o)
    } finally {
      clearTimeout(slow)
    }
  }
}

/** What a connect that takes a while waits for, and how long at most. */
function slowNotice(run: RunState, name: string): string {
  const vars = run.varsOf(name)
  const via = Array.isArray(vars.via) ? vars.via.join(' -> ') : vars.via
  const limit =
    typeof vars.connect_timeout === 'number'
      ? vars.connect_timeout
      : SSH_DEFAULTS.connectTimeoutMs / 1000
  return `connecting to ${name}${typeof via === 'string' && via ? ` via ${via}` : ''} (gives up after ${limit} s)`
}

/**
 * A VM just (re)created may not answer yet (booting, or the jump host still has the old MAC of
 * its address): retried within a bounded wait, each attempt reported.
 */
async function connectRetrying(
  run: RunState,
  name: string,
  o: ConnectorOptions,
): Promise<Connection> {
  const fresh = run.addedHosts.has(name)
  const started = Date.now()
  const varsOf = (host: string): Record<string, unknown> => run.varsOf(host)
  for (let attempt = 1; ; attempt++) {
    try {
      return await run.opts.connections.get(name, varsOf)
    } catch (e) {
      const err = toRunbookError(e, 'E_CONNECTION', { host: name })
      const waited = Math.round((Date.now() - started) / 1000)
      // a module may know why (its server is SHUTOFF): said instead of the channel's timeout
      const why = err.code === 'E_CONNECTION' ? await o.explain?.(name) : undefined
      if (why !== undefined) {
        err.message = `${why.message} (${err.message})`
        err.hint = why.hint ?? err.hint
      }
      if (
        !fresh ||
        why?.lasting === true ||
        err.code !== 'E_CONNECTION' ||
        Date.now() - started > JUST_CREATED_WAIT_MS
      ) {
        if (attempt > 1)
          err.message = `${err.message} (gave up after ${attempt} attempts in ${waited} s: ${name} was just created)`
        throw err
      }
      o.progress(
        `${name} was just created: connect attempt ${attempt} failed (${err.message}); retrying, ${waited} s of at most ${JUST_CREATED_WAIT_MS / 1000} s`,
      )
      await sleep(2000)
    }
  }
}
