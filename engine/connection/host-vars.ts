/**
 * The host variables that say how to connect, and the connection settings read from them. Kept
 * apart from the SSH factory so that checking an inventory (`runbook validate`) does not load the
 * SSH stack.
 */
import { z } from 'zod'
import { RunbookError } from '../errors.ts'
import { hostAddress } from '../values.ts'
import { parseConsoleFingerprints, type PinnedHostKey } from './console-keys.ts'
import type { HostConnectionSettings, HostKeyChecking } from './settings.ts'

const text = z.string().min(1)
const port = z.union([
  z.number().int().min(1).max(65535),
  z.string().regex(/^\d+$/).transform(Number),
])
const pin = z.union([
  text,
  z.object({ fingerprint: text, type: text.optional(), key: text.optional() }),
])

/** The host variables that say how to connect (checked at load too); unknown keys are left to the modules. */
export const connectionVars = z.object({
  address: hostAddress.optional(),
  ansible_host: hostAddress.optional(),
  port: port.optional(),
  ansible_port: port.optional(),
  user: text.optional(),
  ansible_user: text.optional(),
  private_key: z.union([text, z.array(text)]).optional(),
  ansible_ssh_private_key_file: z.union([text, z.array(text)]).optional(),
  password: text.optional(),
  ansible_password: text.optional(),
  via: z.union([text, z.array(text)]).optional(),
  /** OpenSSH's ProxyCommand (`ssh -W %h:%p bastion`); not with `via`. */
  proxy_command: text.optional(),
  host_key_checking: z.union([z.enum(['strict', 'accept-new', 'off']), z.boolean()]).optional(),
  known_hosts_files: z.array(text).optional(),
  /** Pins: fingerprints, public key lines, or a whole console log with cloud-init's blocks. */
  pinned_host_keys: z.union([text, z.array(pin)]).optional(),
  become_password: text.optional(),
  ansible_become_password: text.optional(),
  ansible_become_pass: text.optional(),
  /** Seconds, as Ansible's timeout. */
  connect_timeout: z.number().positive().optional(),
  /** Seconds between SSH keepalives (OpenSSH's ServerAliveInterval); 0 disables them. */
  keepalive_interval: z.number().min(0).optional(),
  /** Unanswered keepalives before the connection counts as dead (ServerAliveCountMax). */
  keepalive_count_max: z.number().int().positive().optional(),
  ssh_agent: z.union([text, z.literal(false)]).optional(),
  /** Seconds the connection keeper holds the connection after a run (ControlPersist); 0 = off. */
  ssh_persist: z.number().int().min(0).optional(),
})

const CONNECTION_KEYS = Object.keys(connectionVars.shape)

/** The connection variables among a host's variables, in a fixed order. */
function pick(vars: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    CONNECTION_KEYS.flatMap((k) => (vars[k] === undefined ? [] : [[k, vars[k]]])),
  )
}

/**
 * Connection settings from a host's variables.
 * @example settingsFromVars('web1', { ansible_host: '192.0.2.11', ansible_user: 'debian', via: 'jump' })
 */
export function settingsFromVars(
  host: string,
  vars: Readonly<Record<string, unknown>>,
): HostConnectionSettings {
  return fromPicked(host, pick(vars))
}

/**
 * `settingsFromVars` that reads each host's settings once while its connection variables stay the
 * same (a run asks for a jump host's settings once per host behind it, and at every connect).
 * @example const settingsOf = settingsMemo(); settingsOf('web1', vars) === settingsOf('web1', vars) // true
 */
export function settingsMemo(): (
  host: string,
  vars: Readonly<Record<string, unknown>>,
) => HostConnectionSettings {
  const memo = new Map<string, { key: string; settings: HostConnectionSettings }>()
  return (host, vars) => {
    const picked = pick(vars)
    const key = JSON.stringify(picked)
    const known = memo.get(host)
    if (known?.key === key) return known.settings
    const settings = fromPicked(host, picked)
    memo.set(host, { key, settings })
    return settings
  }
}

function fromPicked(host: string, picked: Record<string, unknown>): HostConnectionSettings {
  const parsed = connectionVars.safeParse(picked)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new RunbookError(
      'E_INVENTORY',
      `host ${host}: connection variable '${issue?.path.join('.')}': ${issue?.message}`,
      { host },
    )
  }
  const v = parsed.data
  if (v.via !== undefined && v.proxy_command !== undefined) {
    throw new RunbookError(
      'E_INVENTORY',
      `host ${host}: give either 'via' or 'proxy_command', not both`,
      { host },
    )
  }
  const checking: HostKeyChecking | undefined =
    v.host_key_checking === true
      ? 'strict'
      : v.host_key_checking === false
        ? 'off'
        : v.host_key_checking
  const pins: Array<PinnedHostKey | string> | undefined =
    typeof v.pinned_host_keys === 'string'
      ? v.pinned_host_keys.includes('-----BEGIN SSH HOST KEY')
        ? parseConsoleFingerprints(v.pinned_host_keys)
        : [v.pinned_host_keys]
      : v.pinned_host_keys
  return {
    address: v.address ?? v.ansible_host ?? host,
    port: v.port ?? v.ansible_port,
    user: v.user ?? v.ansible_user,
    privateKey: v.private_key ?? v.ansible_ssh_private_key_file,
    password: v.password ?? v.ansible_password,
    via: v.via,
    proxyCommand: v.proxy_command,
    hostKeyChecking: checking,
    knownHostsFiles: v.known_hosts_files,
    pinnedHostKeys: pins,
    becomePassword: v.become_password ?? v.ansible_become_password ?? v.ansible_become_pass,
    connectTimeoutMs: v.connect_timeout === undefined ? undefined : v.connect_timeout * 1000,
    keepaliveIntervalMs:
      v.keepalive_interval === undefined ? undefined : v.keepalive_interval * 1000,
    keepaliveCountMax: v.keepalive_count_max,
    agent: v.ssh_agent,
    persistSeconds: v.ssh_persist,
  }
}
