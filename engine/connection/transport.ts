/**
 * One SSH connection (an ssh2 Client) to one endpoint, opened directly or through the connection
 * of the previous hop, and re-opened on demand after it drops. It checks the host key before
 * anything else happens and authenticates with the agent, key files and a password, in that order.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { Duplex, type Readable } from 'node:stream'
import ssh2 from 'ssh2'
import type {
  AnyAuthMethod,
  AuthenticationType,
  AuthHandlerMiddleware,
  Client as SshClient,
  ClientChannel,
  ConnectConfig,
  ParsedKey,
} from 'ssh2'
import { RunbookError } from '../errors.ts'
import type { PinnedHostKey } from './console-keys.ts'
import { algorithmsForKeyType, sha256Fingerprint } from './host-key.ts'
import type { KnownHostsStore } from './known-hosts.ts'
import { entryMatchesHost, knownHostName, verifyHostKey } from './known-hosts.ts'
import { endpointName, type HostKeyChecking } from './settings.ts'

export { endpointName }

const { Client, utils } = ssh2

/** Host key algorithms ssh2 negotiates, in its default order. */
const HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]

/** Everything needed to open one hop, after ~/.ssh/config and defaults are applied. */
export interface ResolvedEndpoint {
  /** Inventory name (or jump name), for messages. */
  label: string
  address: string
  port: number
  user: string
  privateKeys: string[]
  /** Whether privateKeys were configured (a missing file is then worth mentioning). */
  explicitKeys: boolean
  password?: string | undefined
  agent?: string | undefined
  hostKeyChecking: HostKeyChecking
  knownHostsFiles: string[]
  projectKnownHosts?: string | undefined
  pinned?: PinnedHostKey[] | undefined
  connectTimeoutMs: number
  keepaliveIntervalMs: number
  keepaliveCountMax: number
  /** OpenSSH's ProxyCommand: the connection runs over this command's stdin/stdout. */
  proxyCommand?: string | undefined
}

/** A private key ready for ssh2, or why it cannot be used. */
export type LoadedKey = { key: ParsedKey } | { problem: string }

/** What transports of one pool share. */
export interface TransportShared {
  knownHosts: KnownHostsStore
  /** Asks for the passphrase of an encrypted key file; each file is asked once per pool. */
  passphrase?: ((keyFile: string) => Promise<string>) | undefined
  passphrases: Map<string, Promise<string | undefined>>
  /** Key files already read and decrypted. */
  keys: Map<string, Promise<LoadedKey>>
  /** Connection events, for logs and tests. */
  onEvent?: ((e: TransportEvent) => void) | undefined
}

/** How long a jump host has to answer a probe after a channel through it failed. */
const JUMP_PROBE_MS = 2000

/** What a transport reports. */
export type TransportEvent =
  | { type: 'connect'; key: string; label: string; ms: number; generation: number }
  | { type: 'drop'; key: string; label: string }
  | { type: 'host-key-recorded'; label: string; file: string; fingerprint: string }

/**
 * A re-openable connection to one endpoint; `parent` is the hop it is reached through.
 * @example const client = await transport.ensure()
 */
export class SshTransport {
  /** Increases at every successful connect; a shell opened on an older generation is stale. */
  generation = 0
  /** The host key the current connection was accepted with (the keeper checks it again on reuse). */
  hostKey: Buffer | undefined
  private client: SshClient | undefined
  private connecting: Promise<SshClient> | undefined
  private closing = false

  constructor(
    readonly key: string,
    readonly endpoint: ResolvedEndpoint,
    private readonly shared: TransportShared,
    readonly parent?: SshTransport,
  ) {}

  /** The chain as messages show it: `jump -> web1`. */
  get path(): string {
    return this.parent ? `${this.parent.path} -> ${this.endpoint.label}` : this.endpoint.label
  }

  get connected(): boolean {
    return this.client !== undefined
  }

  /** The server's identification line (`SSH-2.0-OpenSSH_9.2p1 ...`), once connected. */
  get serverIdent(): string | undefined {
    const c = this.client as unknown as { _protocol?: { _remoteIdentRaw?: string } } | undefined
    return c?._protocol?._remoteIdentRaw
  }

  /** The open client, connecting (and reconnecting the hops before it) when needed. */
  ensure(): Promise<SshClient> {
    if (this.closing)
      return Promise.reject(
        new RunbookError('E_CONNECTION', `connection to ${this.endpoint.label} is closed`, {
          host: this.endpoint.label,
        }),
      )
    if (this.client) return Promise.resolve(this.client)
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined
    })
    return this.connecting
  }

  /** A TCP stream to `address:port` from this endpoint (direct-tcpip), for the next hop. */
  async forwardOut(address: string, port: number): Promise<ClientChannel> {
    const client = await this.ensure()
    return new Promise((resolve, reject) => {
      client.forwardOut('127.0.0.1', 0, address, port, (err, stream) =>
        err ? reject(err) : resolve(stream),
      )
    })
  }

  /** Closes the connection for good. */
  async close(): Promise<void> {
    this.closing = true
    await this.connecting?.catch(() => undefined)
    const client = this.client
    this.client = undefined
    if (!client) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.destroy()
        resolve()
      }, 1000)
      client.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      client.end()
    })
  }

  /**
   * Whether the open connection still answers: a channel request gets a reply (success or
   * refusal) from a live server, none from a dead one.
   */
  responds(ms: number): Promise<boolean> {
    const client = this.client
    if (!client) return Promise.resolve(false)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      try {
        client.exec('true', (err, stream) => {
          clearTimeout(timer)
          if (!err) stream.close()
          resolve(true)
        })
      } catch {
        clearTimeout(timer)
        resolve(false)
      }
    })
  }

  /** Drops the connection as a network failure would (tests and the executor's abort). */
  destroy(): void {
    this.client?.destroy()
  }

  private async connect(): Promise<SshClient> {
    const e = this.endpoint
    const started = Date.now()
    const deadline = started + e.connectTimeoutMs
    const entries = await this.shared.knownHosts.entries(this.knownHostsFiles())
    let sock: Readable | undefined
    let proxy: ProxyProcess | undefined
    if (!this.parent && e.proxyCommand !== undefined) {
      proxy = startProxyCommand(e)
      sock = proxy.stream
    }
    if (this.parent) {
      try {
        sock = await withTimeout(
          this.parent.forwardOut(e.address, e.port),
          deadline - Date.now(),
          `opening a channel to ${e.address}:${e.port}`,
        )
      } catch (err) {
        // the wrong hop must not be blamed: a jump host that no longer answers is the failure
        const jump = this.parent
        if (jump.connected && !(await jump.responds(JUMP_PROBE_MS))) {
          jump.destroy()
          throw new RunbookError(
            'E_CONNECTION',
            `jump host ${jump.endpoint.label} (${endpointName(jump.endpoint)}) does not answer (chain: ${this.path}): ${messageOf(err)}`,
            { host: e.label, cause: err },
          )
        }
        if (err instanceof RunbookError) {
          if (!jump.connected && !err.message.includes(this.path))
            err.message = `${err.message} (chain: ${this.path})`
          throw err
        }
        throw new RunbookError(
          'E_CONNECTION',
          `cannot reach ${endpointName(e)} through ${this.parent.path}: ${messageOf(err)}`,
          { host: e.label, cause: err },
        )
      }
    }
    const client = new Client()
    // errors after a failed handshake (a ProxyCommand's pipe torn down, say) must not go unhandled
    client.on('error', () => undefined)
    const state: { hostKeyError?: RunbookError; tried: string[] } = { tried: [] }
    const config: ConnectConfig = {
      username: e.user,
      readyTimeout: Math.max(1, deadline - Date.now()),
      keepaliveInterval: e.keepaliveIntervalMs,
      keepaliveCountMax: e.keepaliveCountMax,
      algorithms: {
        serverHostKey: this.hostKeyOrder(entries) as NonNullable<
          ConnectConfig['algorithms']
        >['serverHostKey'],
      },
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        this.checkHostKey(key, entries).then(
          (err) => {
            if (err) state.hostKeyError = err
            verify(err === undefined)
          },
          (err: unknown) => {
            state.hostKeyError = new RunbookError(
              'E_HOST_KEY',
              `cannot check the host key of ${e.label}: ${messageOf(err)}`,
              { host: e.label, cause: err },
            )
            verify(false)
          },
        )
      },
      authHandler: this.authHandler(state.tried),
      ...(sock ? { sock } : { host: e.address, port: e.port }),
    }
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => {
          client.removeListener('ready', onReady)
          client.removeListener('close', onClose)
          client.destroy()
          reject(err)
        }
        const onClose = (): void =>
          onError(new Error('the server closed the connection during the handshake'))
        const onReady = (): void => {
          client.removeListener('error', onError)
          client.removeListener('close', onClose)
          resolve()
        }
        client.once('error', onError)
        client.once('close', onClose)
        client.once('ready', onReady)
        client.connect(config)
      })
    } catch (err) {
      ;(sock as ClientChannel | undefined)?.destroy()
      if (state.hostKeyError) throw state.hostKeyError
      if (proxy) throw await proxy.failure(err)
      throw this.connectError(err, state.tried)
    }
    if (proxy) client.on('close', () => proxy.stop())
    client.setNoDelay(true)
    client.on('error', () => undefined)
    // Through a jump host the far end's EOF arrives as a half-closed channel and ssh2 only emits
    // 'end': close our side too, so that 'close' (and the channels' cleanup) follows.
    client.on('end', () => (sock ? (sock as ClientChannel).destroy() : client.destroy()))
    client.on('close', () => {
      if (this.client !== client) return
      this.client = undefined
      this.shared.onEvent?.({ type: 'drop', key: this.key, label: e.label })
    })
    this.client = client
    this.generation++
    this.shared.onEvent?.({
      type: 'connect',
      key: this.key,
      label: e.label,
      ms: Date.now() - started,
      generation: this.generation,
    })
    return client
  }

  private knownHostsFiles(): string[] {
    const e = this.endpoint
    return e.projectKnownHosts ? [...e.knownHostsFiles, e.projectKnownHosts] : e.knownHostsFiles
  }

  /** Known (or pinned) key types first, so that the server shows the key we can check, as OpenSSH does. */
  private hostKeyOrder(entries: Awaited<ReturnType<KnownHostsStore['entries']>>): string[] {
    const name = knownHostName(this.endpoint.address, this.endpoint.port)
    const types = [
      ...(this.endpoint.pinned ?? []).flatMap((p) => (p.type ? [p.type] : [])),
      ...entries
        .filter((x) => x.marker === undefined && entryMatchesHost(x, name))
        .map((x) => x.type),
    ]
    const preferred = [...new Set(types.flatMap(algorithmsForKeyType))].filter((a) =>
      HOST_KEY_ALGORITHMS.includes(a),
    )
    return [...preferred, ...HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))]
  }

  /** undefined when the key is acceptable (recording it when asked), else the error to report. */
  private async checkHostKey(
    key: Buffer,
    entries: Awaited<ReturnType<KnownHostsStore['entries']>>,
  ): Promise<RunbookError | undefined> {
    const e = this.endpoint
    const verdict = verifyHostKey({
      host: e.label,
      address: e.address,
      port: e.port,
      key,
      entries,
      pinned: e.pinned,
      mode: e.hostKeyChecking,
    })
    if (!verdict.ok) return verdict.error.locate({ host: e.label })
    this.hostKey = key
    const file = e.projectKnownHosts ?? e.knownHostsFiles[0]
    if (verdict.record !== 'none' && file) {
      await this.shared.knownHosts.record(
        file,
        knownHostName(e.address, e.port),
        key,
        verdict.record === 'replace',
      )
      this.shared.onEvent?.({
        type: 'host-key-recorded',
        label: e.label,
        file,
        fingerprint: sha256Fingerprint(key),
      })
    }
    return undefined
  }

  /** Agent first, then each key file (asking for a passphrase once), then the password. */
  private authHandler(tried: string[]): AuthHandlerMiddleware {
    const e = this.endpoint
    const steps: Array<() => Promise<AnyAuthMethod | undefined>> = []
    if (e.agent) {
      steps.push(async () => {
        tried.push(`agent (${e.agent})`)
        return { type: 'agent', username: e.user, agent: e.agent! }
      })
    }
    for (const file of e.privateKeys) {
      steps.push(async () => {
        const loaded = await this.loadKey(file)
        if ('problem' in loaded) {
          if (loaded.problem !== 'missing' || e.explicitKeys)
            tried.push(`${file} (${loaded.problem})`)
          return undefined
        }
        tried.push(file)
        return { type: 'publickey', username: e.user, key: loaded.key }
      })
    }
    if (e.password !== undefined) {
      const password = e.password
      steps.push(async () => {
        tried.push('password')
        return { type: 'password', username: e.user, password }
      })
      steps.push(async () => ({
        type: 'keyboard-interactive',
        username: e.user,
        prompt: (
          _name: string,
          _instructions: string,
          _lang: string,
          prompts: unknown[],
          finish: (answers: string[]) => void,
        ) => finish(prompts.map(() => password)),
      }))
    }
    const method: Record<string, AuthenticationType> = {
      agent: 'publickey',
      publickey: 'publickey',
      password: 'password',
      'keyboard-interactive': 'keyboard-interactive',
    }
    let i = 0
    return (methodsLeft, _partial, next) => {
      const advance = async (): Promise<void> => {
        while (i < steps.length) {
          const step = steps[i++]!
          const auth = await step()
          if (!auth) continue
          if (methodsLeft && !methodsLeft.includes(method[auth.type] ?? auth.type)) continue
          next(auth)
          return
        }
        next(false as unknown as AuthenticationType)
      }
      advance().catch(() => next(false as unknown as AuthenticationType))
    }
  }

  /** A key file parsed (and decrypted) once per pool: decrypting an OpenSSH key is slow on purpose. */
  private loadKey(file: string): Promise<LoadedKey> {
    let p = this.shared.keys.get(file)
    if (!p) {
      p = (async (): Promise<LoadedKey> => {
        const data = await fs.readFile(file).catch(() => undefined)
        if (!data) return { problem: 'missing' }
        let parsed = utils.parseKey(data)
        if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message)) {
          const passphrase = await this.passphraseFor(file)
          if (passphrase === undefined) return { problem: 'encrypted, no passphrase given' }
          parsed = utils.parseKey(data, passphrase)
          if (parsed instanceof Error) return { problem: 'wrong passphrase' }
        }
        if (parsed instanceof Error) return { problem: parsed.message }
        const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed
        if (!key || !key.isPrivateKey()) return { problem: 'not a private key' }
        return { key }
      })()
      this.shared.keys.set(file, p)
    }
    return p
  }

  private passphraseFor(file: string): Promise<string | undefined> {
    let p = this.shared.passphrases.get(file)
    if (!p) {
      const ask = this.shared.passphrase
      p = ask ? ask(file).catch(() => undefined) : Promise.resolve(undefined)
      this.shared.passphrases.set(file, p)
    }
    return p
  }

  private connectError(err: unknown, tried: string[]): RunbookError {
    const e = this.endpoint
    const level = (err as { level?: string } | undefined)?.level
    const via = this.parent ? ` through ${this.parent.path}` : ''
    if (level === 'client-authentication') {
      return new RunbookError(
        'E_CONNECTION',
        `authentication failed for ${endpointName(e)}${via}`,
        {
          host: e.label,
          hint: tried.length
            ? `tried: ${tried.join(', ')}`
            : 'no agent, key file or password to try',
          cause: err,
        },
      )
    }
    if (level === 'client-timeout') {
      return new RunbookError(
        'E_CONNECTION',
        `timed out after ${e.connectTimeoutMs} ms connecting to ${endpointName(e)}${via}`,
        { host: e.label, cause: err },
      )
    }
    return new RunbookError(
      'E_CONNECTION',
      `cannot connect to ${endpointName(e)}${via}: ${messageOf(err)}`,
      { host: e.label, cause: err },
    )
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Rejects when `p` takes longer than `ms`; a channel that opens too late is closed. */
function withTimeout<T extends { destroy(): unknown }>(
  p: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false
    const timer = setTimeout(
      () => {
        late = true
        reject(new Error(`timed out ${what}`))
      },
      Math.max(1, ms),
    )
    p.then(
      (v) => {
        clearTimeout(timer)
        if (late) v.destroy()
        else resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** A running ProxyCommand: the stream ssh2 talks over, and how it ended. */
interface ProxyProcess {
  stream: Duplex
  /** The error to report when the handshake failed: the command's exit and stderr when it died. */
  failure(err: unknown): Promise<RunbookError>
  stop(): void
}

/** Expands OpenSSH's ProxyCommand tokens: %h host, %p port, %r user, %n the name as given, %%. */
export function expandProxyCommand(
  command: string,
  e: Pick<ResolvedEndpoint, 'address' | 'port' | 'user' | 'label'>,
): string {
  return command.replace(/%([%hprn])/g, (_, t: string) =>
    t === '%'
      ? '%'
      : t === 'h'
        ? e.address
        : t === 'p'
          ? String(e.port)
          : t === 'r'
            ? e.user
            : e.label,
  )
}

/** Starts `sh -c PROXYCOMMAND` (as OpenSSH does, through the shell) and wraps its pipes as a socket. */
function startProxyCommand(e: ResolvedEndpoint): ProxyProcess {
  const command = expandProxyCommand(e.proxyCommand ?? '', e)
  const child: ChildProcess = spawn('/bin/sh', ['-c', `exec ${command}`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString('utf8')).slice(-2000)
  })
  // 'exit' may come before the last of stderr is read: the reason is resolved once stderr has
  // ended too (or 100 ms after the exit, should a child of the command still hold it open)
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      const why = code ?? signal ?? 'unknown'
      if (child.stderr!.readableEnded) return resolve(why)
      const timer = setTimeout(() => resolve(why), 100)
      child.stderr!.once('end', () => {
        clearTimeout(timer)
        resolve(why)
      })
    })
    child.once('error', (err) => resolve(err.message))
  })
  child.stdin!.on('error', () => undefined)
  const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! })
  stream.on('error', () => undefined)
  return {
    stream,
    async failure(err) {
      const code = await Promise.race([
        exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
      ])
      this.stop()
      const why =
        code === undefined
          ? messageOf(err)
          : `the ProxyCommand exited (${String(code)})${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`
      return new RunbookError(
        'E_CONNECTION',
        `cannot connect to ${endpointName(e)} through ProxyCommand \`${command}\`: ${why}`,
        { host: e.label, cause: err },
      )
    },
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    },
  }
}
