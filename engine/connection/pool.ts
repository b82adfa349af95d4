/**
 * One SSH connection per inventory host for the whole run. Hosts behind the same jump host share
 * that jump connection; a jump host that is also a target shares it with itself. Settings are
 * completed from ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyJump, ...) where the
 * settings leave them open: the inventory wins over the ssh config.
 */
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import { parsePinnedHostKey, type PinnedHostKey } from './console-keys.ts'
import { KeeperLink, KeeperTransport, type HostTransport } from './keeper-client.ts'
import { KnownHostsStore } from './known-hosts.ts'
import type { PersistOptions } from './persist.ts'
import {
  SSH_DEFAULTS,
  defaultIdentityFiles,
  endpointName,
  defaultKnownHostsFiles,
  expandHome,
  localUserName,
  type HostConnectionSettings,
  type ViaHop,
} from './settings.ts'
import { SshConnection } from './ssh.ts'
import {
  loadSshConfig,
  lookupSshConfig,
  parseJumpSpec,
  parseProxyJump,
  type SshConfigBlock,
  type SshConfigHost,
} from './ssh-config.ts'
import type {
  ResolvedEndpoint,
  SshTransport,
  TransportEvent,
  TransportShared,
} from './transport.ts'

/** Options of a pool. */
export interface ConnectionPoolOptions {
  /** Asks for the passphrase of an encrypted key file (a prompt or a secret); once per file. */
  passphrase?: ((keyFile: string) => Promise<string>) | undefined
  /** The ssh client config to honour; `~/.ssh/config` by default, `false` for none. */
  sshConfigFile?: string | false | undefined
  /** Settings of an inventory host named in a `via` (jump hosts are usually inventory hosts). */
  resolveHost?: ((name: string) => HostConnectionSettings | undefined) | undefined
  /** Settings every host starts from (e.g. the run's projectKnownHosts and hostKeyChecking). */
  defaults?: Partial<HostConnectionSettings> | undefined
  /** Connects, drops and recorded host keys, for logs and tests. */
  onEvent?: ((e: TransportEvent) => void) | undefined
  /** The connection keeper (ControlPersist); without it every run connects afresh. */
  persist?: PersistOptions | undefined
}

/** A transport as tests and the live view see it. */
export interface TransportInfo {
  key: string
  label: string
  connected: boolean
  /** How many times it connected (1 for a run without drops). */
  generation: number
}

/**
 * Hands out one SshConnection per host name; concurrent callers for a host share one connect.
 * @example
 * const pool = new ConnectionPool({ defaults: { projectKnownHosts: '.runbook/known_hosts' }, resolveHost: (n) => inventory.ssh(n) })
 * const conn = await pool.get('web1', { address: '192.0.2.11', user: 'debian', via: 'jump' })
 * await pool.closeAll()
 */
export class ConnectionPool {
  private readonly connections = new Map<string, Promise<SshConnection>>()
  private readonly transports = new Map<string, HostTransport>()
  private readonly shared: TransportShared
  private readonly keeper: KeeperLink | undefined
  private sshConfig: Promise<SshConfigBlock[]> | undefined
  private closed = false

  constructor(private readonly options: ConnectionPoolOptions = {}) {
    this.shared = {
      knownHosts: new KnownHostsStore(),
      passphrase: options.passphrase,
      passphrases: new Map(),
      keys: new Map(),
      onEvent: options.onEvent,
    }
    this.keeper = options.persist && new KeeperLink(options.persist, options.passphrase)
  }

  /**
   * The connection of `hostName`, connected; the first call's settings are the ones used (given
   * as a function, they are read only when the host has no connection yet).
   */
  get(
    hostName: string,
    settings: HostConnectionSettings | (() => HostConnectionSettings),
  ): Promise<SshConnection> {
    if (this.closed)
      return Promise.reject(
        new RunbookError('E_CONNECTION', 'the connection pool is closed', { host: hostName }),
      )
    let p = this.connections.get(hostName)
    if (!p) {
      let opening: Promise<SshConnection>
      try {
        opening = this.open(hostName, typeof settings === 'function' ? settings() : settings)
      } catch (e) {
        return Promise.reject(e)
      }
      p = opening
      this.connections.set(hostName, opening)
      // A failed connect is not remembered: a later task may find the host up.
      opening.catch(() => {
        if (this.connections.get(hostName) === opening) this.connections.delete(hostName)
      })
    }
    return p
  }

  /**
   * Forgets a host's connection (the VM was deleted or rebuilt): closes it, and its transport and
   * hops unless other hosts still use them. The next `get` connects afresh.
   */
  async drop(hostName: string): Promise<void> {
    const p = this.connections.get(hostName)
    if (!p) return
    this.connections.delete(hostName)
    const conn = await p.catch(() => undefined)
    if (!conn) return
    await conn.close()
    const live = await Promise.all(
      [...this.connections.values()].map((c) => c.catch(() => undefined)),
    )
    const used = new Set<HostTransport>()
    for (const c of live)
      for (let t: HostTransport | undefined = c?.transport; t; t = t.parent) used.add(t)
    for (let t: HostTransport | undefined = conn.transport; t && !used.has(t); t = t.parent) {
      this.transports.delete(t.key)
      // the host is gone or rebuilt: the keeper must not hand its connection to the next run
      if (t instanceof KeeperTransport) await t.forget()
      else await t.close()
    }
  }

  /** Every transport opened so far. */
  info(): TransportInfo[] {
    return [...this.transports.values()].map((t) => ({
      key: t.key,
      label: t.endpoint.label,
      connected: t.connected,
      generation: t.generation,
    }))
  }

  /** The transport a host's connection runs on (tests use it to cut connections). */
  async transportOf(hostName: string): Promise<HostTransport | undefined> {
    const p = this.connections.get(hostName)
    return p ? (await p).transport : undefined
  }

  /** Closes every connection: targets first, then the jump hosts they ran through. */
  async closeAll(): Promise<void> {
    this.closed = true
    const conns = await Promise.allSettled([...this.connections.values()])
    await Promise.all(conns.map((c) => (c.status === 'fulfilled' ? c.value.close() : undefined)))
    const byDepth = [...this.transports.values()].sort((a, b) => depth(b) - depth(a))
    for (const d of [...new Set(byDepth.map(depth))]) {
      await Promise.all(byDepth.filter((t) => depth(t) === d).map((t) => t.close()))
    }
    this.connections.clear()
    this.transports.clear()
  }

  /** How `hostName` is reached: its jump hosts, outermost first, then itself, with ssh config and defaults applied. */
  resolve(hostName: string, settings: HostConnectionSettings): Promise<ResolvedEndpoint[]> {
    return this.resolveChain(hostName, this.withDefaults(settings), [])
  }

  private async open(hostName: string, settings: HostConnectionSettings): Promise<SshConnection> {
    const chain = await this.resolve(hostName, settings)
    const seconds = settings.persistSeconds ?? this.options.persist?.seconds ?? 0
    const transport =
      this.keeper && seconds > 0 && !this.keeper.problem() && persistable(chain)
        ? this.kept(chain, seconds)
        : await this.direct(chain)
    await transport.ensure()
    // No shell is opened ahead: the first command opens the one it needs (the login shell, or
    // only the become shell when every task of the host runs as root).
    return new SshConnection(hostName, transport, {
      becomePassword: settings.becomePassword ?? this.options.defaults?.becomePassword,
    })
  }

  /** The chain's transports in this process, shared with the hosts that use the same hops. */
  private async direct(chain: ResolvedEndpoint[]): Promise<SshTransport> {
    // ssh2 is loaded only for direct connections: a run on kept connections never needs it
    const { SshTransport } = await import('./transport.ts')
    let parent: SshTransport | undefined
    for (const endpoint of chain) {
      // the route is part of the key: the same address through another ProxyCommand is another connection
      const key = `${parent ? `${parent.key}>` : ''}${endpointName(endpoint)}${endpoint.proxyCommand !== undefined ? `|${endpoint.proxyCommand}` : ''}`
      let t = this.transports.get(key)
      if (!t || t instanceof KeeperTransport) {
        t = new SshTransport(key, endpoint, this.shared, parent)
        this.transports.set(key, t)
      }
      parent = t
    }
    return parent!
  }

  /** The chain held by the keeper; the direct chain if the keeper cannot be reached. */
  private kept(chain: ResolvedEndpoint[], seconds: number): KeeperTransport {
    const key = `keeper:${chain.map(endpointName).join('>')}`
    let t = this.transports.get(key)
    if (!(t instanceof KeeperTransport)) {
      t = new KeeperTransport(key, {
        chain,
        link: this.keeper!,
        direct: () => this.direct(chain),
        idleMs: seconds * 1000,
        onEvent: this.options.onEvent,
      })
      this.transports.set(key, t)
    }
    return t
  }

  private withDefaults(s: HostConnectionSettings): HostConnectionSettings {
    const out: Record<string, unknown> = { ...this.options.defaults }
    for (const [k, v] of Object.entries(s)) if (v !== undefined) out[k] = v
    return out as unknown as HostConnectionSettings
  }

  private async config(s: HostConnectionSettings): Promise<SshConfigHost> {
    const file = this.options.sshConfigFile ?? path.join(os.homedir(), '.ssh', 'config')
    if (file === false || s.useSshConfig === false) return { identityFiles: [] }
    this.sshConfig ??= loadSshConfig(file)
    return lookupSshConfig(await this.sshConfig, s.address)
  }

  /** Jump hops (outermost first) and then the host itself. */
  private async resolveChain(
    label: string,
    s: HostConnectionSettings,
    seen: string[],
  ): Promise<ResolvedEndpoint[]> {
    if (seen.includes(label))
      throw new RunbookError(
        'E_INVENTORY',
        `jump hosts form a loop: ${[...seen, label].join(' -> ')}`,
        { host: seen[0] },
      )
    const cfg = await this.config(s)
    const self = this.endpoint(label, s, cfg)
    const via = s.via
    let hops: ResolvedEndpoint[] = []
    if (via !== undefined) {
      if (Array.isArray(via)) {
        for (const hop of via) hops.push(await this.hopEndpoint(hop, s, [...seen, label]))
      } else if (via !== 'none') {
        const { name, settings } = this.hopSettings(via, s)
        hops = await this.resolveChain(name, settings, [...seen, label])
      }
    } else if (s.proxyCommand !== undefined || cfg.proxyCommand !== undefined) {
      // the command reaches the host itself: no hops
    } else if (cfg.proxyJump) {
      const specs = parseProxyJump(cfg.proxyJump)
      for (const [i, spec] of specs.entries()) {
        const name = `${spec.user ? `${spec.user}@` : ''}${spec.host}${spec.port ? `:${spec.port}` : ''}`
        const settings = this.inherit(s, { address: spec.host, port: spec.port, user: spec.user })
        // As `ssh -J a,b`: the first hop keeps its own ProxyJump, the later ones are reached through the list.
        if (i === 0) hops.push(...(await this.resolveChain(name, settings, [...seen, label])))
        else hops.push(this.endpoint(name, { ...settings, via: [] }, await this.config(settings)))
      }
    }
    return [...hops, self]
  }

  /** One hop of a `via` list, without its own jump hosts (the list is the whole chain). */
  private async hopEndpoint(
    hop: ViaHop,
    base: HostConnectionSettings,
    seen: string[],
  ): Promise<ResolvedEndpoint> {
    const { name, settings } = this.hopSettings(hop, base)
    if (seen.includes(name))
      throw new RunbookError(
        'E_INVENTORY',
        `jump hosts form a loop: ${[...seen, name].join(' -> ')}`,
        { host: seen[0] },
      )
    return this.endpoint(name, settings, await this.config(settings))
  }

  /** Settings of a hop: an inventory host, inline settings, or `[user@]host[:port]` inheriting the target's credentials. */
  private hopSettings(
    hop: ViaHop,
    base: HostConnectionSettings,
  ): { name: string; settings: HostConnectionSettings } {
    if (typeof hop !== 'string') return { name: hop.name, settings: this.withDefaults(hop) }
    const known = this.options.resolveHost?.(hop)
    if (known) return { name: hop, settings: this.withDefaults(known) }
    const spec = parseJumpSpec(hop)
    return {
      name: hop,
      settings: this.inherit(base, { address: spec.host, port: spec.port, user: spec.user }),
    }
  }

  /** A hop that is not an inventory host authenticates and checks keys as the host behind it. */
  private inherit(
    base: HostConnectionSettings,
    where: Pick<HostConnectionSettings, 'address' | 'port' | 'user'>,
  ): HostConnectionSettings {
    return this.withDefaults({
      address: where.address,
      port: where.port,
      user: where.user,
      privateKey: base.privateKey,
      agent: base.agent,
      hostKeyChecking: base.hostKeyChecking,
      knownHostsFiles: base.knownHostsFiles,
      projectKnownHosts: base.projectKnownHosts,
      connectTimeoutMs: base.connectTimeoutMs,
      keepaliveIntervalMs: base.keepaliveIntervalMs,
      keepaliveCountMax: base.keepaliveCountMax,
      useSshConfig: base.useSshConfig,
    })
  }

  private endpoint(label: string, s: HostConnectionSettings, cfg: SshConfigHost): ResolvedEndpoint {
    const keys =
      s.privateKey === undefined
        ? undefined
        : Array.isArray(s.privateKey)
          ? s.privateKey
          : [s.privateKey]
    const explicit = keys ?? (cfg.identityFiles.length > 0 ? cfg.identityFiles : undefined)
    const envAgent = process.env['SSH_AUTH_SOCK']
    const agent =
      s.agent === false
        ? undefined
        : (s.agent ?? (cfg.identityAgent === false ? undefined : (cfg.identityAgent ?? envAgent)))
    return {
      label,
      address: cfg.hostName ?? s.address,
      port: s.port ?? cfg.port ?? SSH_DEFAULTS.port,
      user: s.user ?? cfg.user ?? localUserName(),
      privateKeys: (explicit ?? defaultIdentityFiles()).map(expandHome),
      explicitKeys: explicit !== undefined,
      password: s.password,
      agent: agent && existsSync(agent) ? agent : undefined,
      hostKeyChecking:
        s.hostKeyChecking ?? cfg.strictHostKeyChecking ?? SSH_DEFAULTS.hostKeyChecking,
      knownHostsFiles: (
        s.knownHostsFiles ??
        cfg.userKnownHostsFiles ??
        defaultKnownHostsFiles()
      ).map(expandHome),
      projectKnownHosts:
        s.projectKnownHosts === undefined ? undefined : expandHome(s.projectKnownHosts),
      pinned: s.pinnedHostKeys?.map((p) => normalisePin(label, p)),
      connectTimeoutMs: s.connectTimeoutMs ?? cfg.connectTimeoutMs ?? SSH_DEFAULTS.connectTimeoutMs,
      keepaliveIntervalMs:
        s.keepaliveIntervalMs ?? cfg.serverAliveIntervalMs ?? SSH_DEFAULTS.keepaliveIntervalMs,
      keepaliveCountMax:
        s.keepaliveCountMax ?? cfg.serverAliveCountMax ?? SSH_DEFAULTS.keepaliveCountMax,
      proxyCommand: s.via !== undefined ? undefined : (s.proxyCommand ?? cfg.proxyCommand),
    }
  }
}

function normalisePin(host: string, p: PinnedHostKey | string): PinnedHostKey {
  if (typeof p !== 'string') return p
  const pin = parsePinnedHostKey(p)
  if (!pin)
    throw new RunbookError(
      'E_HOST_KEY',
      `pinned host key of ${host} is neither a fingerprint (SHA256:...) nor a public key: '${p.slice(0, 40)}'`,
      { host },
    )
  return pin
}

/** A ProxyCommand runs with the run's environment and directory: such chains stay in the run. */
function persistable(chain: ResolvedEndpoint[]): boolean {
  return chain.every((e) => e.proxyCommand === undefined)
}

function depth(t: HostTransport): number {
  return t.parent ? depth(t.parent) + 1 : 0
}
