/**
 * How to reach one inventory host over SSH. The inventory (or a module that creates a VM) fills
 * this in; the connection pool resolves it against ~/.ssh/config and opens the jump chain.
 */
import os from 'node:os'
import path from 'node:path'
import type { PinnedHostKey } from './console-keys.ts'

/**
 * What to do with a host key. A key that differs from a recorded one is refused in every mode.
 * - `strict`: only keys found in known_hosts (or pinned) are accepted.
 * - `accept-new`: an unknown host's key is accepted and appended to the project-local file.
 * - `off`: an unknown host's key is accepted and not recorded.
 */
export type HostKeyChecking = 'strict' | 'accept-new' | 'off'

/** A jump host given inline instead of by inventory name. */
export interface JumpHostSettings extends HostConnectionSettings {
  /** A name for messages (`jump`, `bastion`). */
  name: string
}

/** One hop of `via`: an inventory host name, `[user@]host[:port]`, or inline settings. */
export type ViaHop = string | JumpHostSettings

/**
 * Connection settings of one host.
 * @example
 * const s: HostConnectionSettings = { address: '192.0.2.11', user: 'debian', via: 'jump', privateKey: '~/.ssh/id_ed25519' }
 */
export interface HostConnectionSettings {
  /** IP address or host name (a `Host` alias of ~/.ssh/config works too). */
  address: string
  /** 22 unless set here or in ~/.ssh/config. */
  port?: number | undefined
  /** The login user; ~/.ssh/config's User, else the local user name. */
  user?: string | undefined
  /** Private key file(s), tried in order after the agent; `~` is expanded. */
  privateKey?: string | string[] | undefined
  /** Password authentication, tried last. Never printed. */
  password?: string | undefined
  /** ssh-agent socket; defaults to SSH_AUTH_SOCK, `false` disables the agent. */
  agent?: string | false | undefined
  /**
   * Jump hosts, outermost first. A list is the whole chain; a single inventory name also brings
   * that host's own `via`. `[]` or `'none'` means direct even if ~/.ssh/config has a ProxyJump.
   */
  via?: ViaHop | ViaHop[] | undefined
  /**
   * A command whose stdin/stdout carry the SSH connection instead of a TCP socket (OpenSSH's
   * ProxyCommand; `%h %p %r %n %%` are expanded). Not with `via`.
   */
  proxyCommand?: string | undefined
  /** `strict` by default. */
  hostKeyChecking?: HostKeyChecking | undefined
  /** known_hosts files to read; `['~/.ssh/known_hosts']` by default. */
  knownHostsFiles?: string[] | undefined
  /** The project's own known_hosts: read too, and where accept-new and pinned keys are recorded. */
  projectKnownHosts?: string | undefined
  /**
   * Keys taken from the server's console (see parseConsoleFingerprints), or `SHA256:...` / `ssh-ed25519 AAAA...`
   * strings. When present they decide alone: the server must show one of them.
   */
  pinnedHostKeys?: Array<PinnedHostKey | string> | undefined
  /** TCP connect plus SSH handshake and authentication, the whole jump chain included; 8 s by default. */
  connectTimeoutMs?: number | undefined
  /** SSH-level keepalive interval; 3 s by default (0 disables). */
  keepaliveIntervalMs?: number | undefined
  /** Unanswered keepalives before the connection counts as dropped; 3 by default. */
  keepaliveCountMax?: number | undefined
  /** sudo password used when a command's become carries none (Ansible's become_password). */
  becomePassword?: string | undefined
  /**
   * Seconds the connection keeper holds this host's connection after a run (OpenSSH's
   * ControlPersist); 0 = no keeper. RUNBOOK_SSH_PERSIST (default 60) when unset.
   */
  persistSeconds?: number | undefined
  /** Read ~/.ssh/config for this host (HostName, User, Port, IdentityFile, ProxyJump); true by default. */
  useSshConfig?: boolean | undefined
}

/** Defaults of the settings that have one. */
export const SSH_DEFAULTS = {
  port: 22,
  hostKeyChecking: 'strict' as HostKeyChecking,
  // A dead peer is noticed after about 3 unanswered keepalives (9-12 s) and a reconnect gives up
  // after 8 s: at most 20 s before a host is unreachable (issue 11), where OpenSSH-like 15 s x 3
  // plus 10 s meant over a minute of silence.
  connectTimeoutMs: 8_000,
  keepaliveIntervalMs: 3_000,
  keepaliveCountMax: 3,
} as const

/** `~/x` -> `/home/me/x`; other paths unchanged. */
export function expandHome(p: string): string {
  if (p === '~') return os.homedir()
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2))
  return p
}

/** The default known_hosts files, as OpenSSH reads them for a user. */
export function defaultKnownHostsFiles(): string[] {
  return [path.join(os.homedir(), '.ssh', 'known_hosts')]
}

/** The identity files OpenSSH tries when none is configured. */
export function defaultIdentityFiles(): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => path.join(os.homedir(), '.ssh', f))
}

/** The local user name, the login user when nothing else says. */
export function localUserName(): string {
  try {
    return os.userInfo().username
  } catch {
    return process.env['USER'] ?? 'root'
  }
}

/** `user@address:port`: how messages name an endpoint. */
export function endpointName(e: { user: string; address: string; port: number }): string {
  return `${e.user}@${e.address}${e.port === 22 ? '' : `:${e.port}`}`
}
