/**
 * The connection keeper: runbook's ControlPersist. One process per local user holds SSH
 * transports (ssh2 Clients, jump hosts included) between runs and opens channels on them for the
 * runs that ask over its unix socket. Only transports persist: every channel (login shell, become
 * shell, SFTP) belongs to the socket connection that asked for it and closes with it. A transport
 * unused for its idle time is closed; the keeper exits when it holds none. It logs nothing.
 */
import { createHash } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import { chmod } from 'node:fs/promises'
import net from 'node:net'
import type { ClientChannel } from 'ssh2'
import { RunbookError } from '../errors.ts'
import { KnownHostsStore, verifyHostKey } from './known-hosts.ts'
import { Frame, FrameReader, encodeFrame, parseBody, type FrameType } from './mux.ts'
import { checkKeeperDir, keeperSocket } from './persist.ts'
import {
  SshTransport,
  type ResolvedEndpoint,
  type TransportEvent,
  type TransportShared,
} from './transport.ts'

/** What a run asks for in its first frame. */
export interface KeeperRequest {
  op: 'ensure' | 'channel' | 'forget' | 'disconnect' | 'status'
  chain?: ResolvedEndpoint[]
  /** For `channel`: the command to exec, or the subsystem (`sftp`). */
  command?: string
  subsystem?: string
  /** How long the chain's transports stay after their last channel. */
  idleMs?: number
}

/** The keeper's answer to an open request. */
export interface KeeperReply {
  /** The target transport's connection count: a new value means it reconnected. */
  generation?: number
  /** The server's identification (SFTP uses it to know OpenSSH's extensions). */
  ident?: string
  /** Connects and recorded host keys this request caused. */
  events?: TransportEvent[]
  /** For `status` and `disconnect`: the keeper's process id. */
  pid?: number
  /** For `status` and `disconnect`: the transports held. */
  held?: Array<{ label: string; path: string; connected: boolean; channels: number }>
}

/** The server refused a channel on a live kept connection. */
class KeeperBusy extends Error {}

/** What one request brings along. */
interface RequestContext {
  peer: Peer
  events: TransportEvent[]
  chain: ResolvedEndpoint[]
  knownHosts: KnownHostsStore
}

/** One held transport. */
interface Held {
  key: string
  transport: SshTransport
  shared: TransportShared
  parent: Held | undefined
  channels: number
  children: number
  idleMs: number
  timer: NodeJS.Timeout | undefined
  /** Where this request's events go. */
  sink: TransportEvent[] | undefined
}

/**
 * The identity of a hop and everything before it, as a hash: who logs in where, through which
 * hops, with which credentials (a password only as its hash) and which host-key rules.
 * @example identityKey(chain) // 'b1946ac9...'
 */
export function identityKey(chain: readonly ResolvedEndpoint[]): string {
  const parts = chain.map((e) => ({
    label: e.label,
    address: e.address,
    port: e.port,
    user: e.user,
    keys: e.privateKeys,
    agent: e.agent ?? null,
    password:
      e.password === undefined ? null : createHash('sha256').update(e.password).digest('hex'),
    checking: e.hostKeyChecking,
    known: e.knownHostsFiles,
    project: e.projectKnownHosts ?? null,
    pinned: e.pinned ?? null,
    proxy: e.proxyCommand ?? null,
    keepalive: [e.keepaliveIntervalMs, e.keepaliveCountMax],
  }))
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex')
}

/** A connection from a run: frames in, a passphrase question out. */
class Peer {
  private readonly answers: Array<(v: string | undefined) => void> = []
  onData: ((type: number, body: Buffer) => void) | undefined
  private readonly reader: FrameReader
  first: Promise<KeeperRequest>

  constructor(readonly socket: net.Socket) {
    let gotFirst: (r: KeeperRequest) => void = () => undefined
    this.first = new Promise((resolve) => (gotFirst = resolve))
    let started = false
    this.reader = new FrameReader((type, body) => {
      if (!started) {
        started = true
        if (type === Frame.Open) gotFirst(parseBody(body) as unknown as KeeperRequest)
        else socket.destroy()
        return
      }
      if (type === Frame.Answer) {
        const v = parseBody(body)['value']
        this.answers.shift()?.(typeof v === 'string' ? v : undefined)
        return
      }
      this.onData?.(type, body)
    })
    socket.on('data', (b: Buffer) => {
      try {
        this.reader.push(b)
      } catch {
        socket.destroy()
      }
    })
    socket.on('close', () => {
      for (const a of this.answers.splice(0)) a(undefined)
    })
  }

  send(type: FrameType, payload?: Buffer | string | object): boolean {
    if (this.socket.destroyed) return false
    return this.socket.write(encodeFrame(type, payload))
  }

  /** Asks the run for a key file's passphrase (it prompts, or has it as a secret). */
  ask(keyFile: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.answers.push((v) =>
        v === undefined ? reject(new Error('no passphrase given')) : resolve(v),
      )
      this.send(Frame.Ask, { keyFile })
    })
  }
}

/** The keeper's state: transports by identity, open sockets. */
class Keeper {
  private readonly held = new Map<string, Held>()
  private readonly knownHosts = new KnownHostsStore()
  private sockets = 0
  private exitTimer: NodeJS.Timeout | undefined

  constructor(private readonly onEmpty: () => void) {}

  async serve(socket: net.Socket): Promise<void> {
    this.sockets++
    clearTimeout(this.exitTimer)
    socket.on('error', () => undefined)
    socket.on('close', () => {
      this.sockets--
      this.maybeExit()
    })
    const peer = new Peer(socket)
    const req = await peer.first
    try {
      if (req.op === 'status' || req.op === 'disconnect') {
        const held = this.list()
        if (req.op === 'disconnect') await this.closeAll()
        peer.send(Frame.Opened, { held, pid: process.pid } satisfies KeeperReply)
        socket.end()
        return
      }
      const chain = req.chain ?? []
      if (chain.length === 0) throw new Error('no chain given')
      if (req.op === 'forget') {
        const h = this.held.get(identityKey(chain))
        if (h) await this.remove(h)
        peer.send(Frame.Opened, {})
        socket.end()
        return
      }
      // one store for every request: its writes to a known_hosts file are serialised
      const knownHosts = this.knownHosts
      knownHosts.refresh()
      const events: TransportEvent[] = []
      const target = await this.ensure(chain, req.idleMs ?? 60_000, knownHosts, peer, events)
      if (req.op === 'ensure') {
        this.release(target, events)
        peer.send(Frame.Opened, this.reply(target, events))
        socket.end()
        return
      }
      await this.channel(target, req, { peer, events, chain, knownHosts })
    } catch (err) {
      const e =
        err instanceof RunbookError
          ? { code: err.code, message: err.message, hint: err.hint, host: err.host }
          : {
              code: 'E_CONNECTION',
              message: err instanceof Error ? err.message : String(err),
              busy: err instanceof KeeperBusy,
            }
      peer.send(Frame.Error, e)
      socket.end()
    }
  }

  /** Sets up a channel on `target` and pipes it to the socket; a stale transport is replaced once. */
  private async channel(target: Held, req: KeeperRequest, ctx: RequestContext): Promise<void> {
    const { peer, events, chain, knownHosts } = ctx
    let ch: ClientChannel
    try {
      ch = await this.openOn(target, req)
    } catch (err) {
      // The server answered "no" (sshd's MaxSessions, say): the connection is alive and the
      // other runs' channels on it stay; this run goes direct, as it would without the keeper.
      if (err instanceof Error && 'reason' in err) {
        this.release(target, events)
        throw new KeeperBusy(err.message)
      }
      // A reused connection that cannot open a channel is dead (host gone, VM rebuilt): never
      // reuse it, connect afresh once. A fresh one that fails says why.
      if (events.some((e) => e.type === 'connect' && e.key === target.key)) {
        this.release(target, events)
        throw err
      }
      this.release(target, events)
      target.transport.destroy()
      await this.remove(target)
      target = await this.ensure(chain, target.idleMs, knownHosts, peer, events)
      try {
        ch = await this.openOn(target, req)
      } catch (err2) {
        this.release(target, events)
        throw err2
      }
    }
    for (let x: Held | undefined = target; x; x = x.parent)
      if (x.sink === events) x.sink = undefined
    const s = peer.socket
    peer.send(Frame.Opened, this.reply(target, events))
    let closed = false
    const resume = (): void => {
      ch.resume()
      ch.stderr.resume()
    }
    ch.on('data', (b: Buffer) => {
      if (!peer.send(Frame.Data, b)) {
        ch.pause()
        s.once('drain', resume)
      }
    })
    ch.stderr.on('data', (b: Buffer) => {
      if (!peer.send(Frame.Stderr, b)) {
        ch.stderr.pause()
        s.once('drain', resume)
      }
    })
    ch.on('exit', (code: number | null, signal?: string) =>
      peer.send(Frame.Exit, { code, signal: signal ?? null }),
    )
    ch.on('close', () => {
      closed = true
      peer.send(Frame.Close, { dropped: !target.transport.connected })
      s.end()
      target.channels--
      this.settle(target)
    })
    peer.onData = (type, body) => {
      if (closed) return
      if (type === Frame.Data) {
        if (!ch.write(body)) {
          s.pause()
          ch.once('drain', () => s.resume())
        }
      } else if (type === Frame.Eof) ch.end()
      else if (type === Frame.Close) ch.close()
    }
    // the run went away (ended or crashed, perhaps while we connected): its shells go with it
    s.on('close', () => {
      if (!closed) ch.close()
    })
    if (s.destroyed) ch.close()
  }

  private openOn(target: Held, req: KeeperRequest): Promise<ClientChannel> {
    return target.transport.ensure().then(
      (client) =>
        new Promise<ClientChannel>((resolve, reject) => {
          const cb = (err: Error | undefined, ch: ClientChannel): void =>
            err ? reject(err) : resolve(ch)
          try {
            if (req.subsystem !== undefined) client.subsys(req.subsystem, cb)
            else client.exec(req.command ?? '/bin/sh', cb)
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)))
          }
        }),
    )
  }

  /**
   * The chain's transports, connected; the target counts one channel until released. A held hop
   * whose accepted key the run's known_hosts or pins no longer accept is closed, not reused.
   */
  private async ensure(
    chain: ResolvedEndpoint[],
    idleMs: number,
    knownHosts: KnownHostsStore,
    peer: Peer,
    events: TransportEvent[],
  ): Promise<Held> {
    let parent: Held | undefined
    for (const [i, ep] of chain.entries()) {
      const key = identityKey(chain.slice(0, i + 1))
      let h = this.held.get(key)
      if (h && !(await this.stillTrusted(h, ep, knownHosts))) {
        await this.remove(h)
        h = undefined
      }
      if (!h) {
        const shared: TransportShared = {
          knownHosts,
          passphrases: new Map(),
          keys: new Map(),
        }
        const created: Held = {
          key,
          transport: new SshTransport(key, ep, shared, parent?.transport),
          shared,
          parent,
          channels: 0,
          children: 0,
          idleMs,
          timer: undefined,
          sink: undefined,
        }
        shared.onEvent = (e) => {
          if (e.type === 'drop' && created.channels === 0 && created.children === 0)
            void this.remove(created)
          created.sink?.push(e)
        }
        h = created
        this.held.set(key, h)
        if (parent) parent.children++
      }
      clearTimeout(h.timer)
      h.shared.knownHosts = knownHosts
      h.shared.passphrase = (file) => peer.ask(file)
      h.sink = events
      h.idleMs = idleMs
      parent = h
    }
    const target = parent!
    target.channels++
    clearTimeout(target.timer)
    try {
      await target.transport.ensure()
    } catch (err) {
      this.release(target, events)
      if (!target.transport.connected) await this.remove(target)
      throw err
    }
    return target
  }

  private async stillTrusted(
    h: Held,
    ep: ResolvedEndpoint,
    knownHosts: KnownHostsStore,
  ): Promise<boolean> {
    const t = h.transport
    if (!t.connected || !t.hostKey) return true
    const files = ep.projectKnownHosts
      ? [...ep.knownHostsFiles, ep.projectKnownHosts]
      : ep.knownHostsFiles
    const verdict = verifyHostKey({
      host: ep.label,
      address: ep.address,
      port: ep.port,
      key: t.hostKey,
      entries: await knownHosts.entries(files),
      pinned: ep.pinned,
      mode: ep.hostKeyChecking,
    })
    return verdict.ok && verdict.record === 'none'
  }

  private release(h: Held, events: TransportEvent[]): void {
    for (let x: Held | undefined = h; x; x = x.parent) if (x.sink === events) x.sink = undefined
    h.channels--
    this.settle(h)
  }

  private reply(target: Held, events: TransportEvent[]): KeeperReply {
    return {
      generation: target.transport.generation,
      ident: target.transport.serverIdent,
      events: events.map((e) => ({ ...e })),
    }
  }

  /** Starts the idle clock of a transport nobody uses. */
  private settle(h: Held): void {
    if (h.channels > 0 || h.children > 0 || this.held.get(h.key) !== h) return
    clearTimeout(h.timer)
    h.timer = setTimeout(() => void this.remove(h), h.idleMs)
  }

  private async remove(h: Held): Promise<void> {
    if (this.held.get(h.key) !== h) return
    this.held.delete(h.key)
    clearTimeout(h.timer)
    // hops behind this one go first
    for (const other of [...this.held.values()]) if (other.parent === h) await this.remove(other)
    await h.transport.close()
    if (h.parent) {
      h.parent.children--
      this.settle(h.parent)
    }
    this.maybeExit()
  }

  private list(): NonNullable<KeeperReply['held']> {
    return [...this.held.values()].map((h) => ({
      label: h.transport.endpoint.label,
      path: h.transport.path,
      connected: h.transport.connected,
      channels: h.channels,
    }))
  }

  async closeAll(): Promise<void> {
    const roots = [...this.held.values()].filter((h) => !h.parent)
    await Promise.all(roots.map((h) => this.remove(h)))
  }

  /** Exits once nothing is held and no run is connected. */
  maybeExit(graceMs = 200): void {
    clearTimeout(this.exitTimer)
    if (this.held.size > 0 || this.sockets > 0) return
    this.exitTimer = setTimeout(() => {
      if (this.held.size === 0 && this.sockets === 0) this.onEmpty()
    }, graceMs)
  }
}

/** Whether a keeper answers on `sock`. */
function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/**
 * Runs the keeper in this process until it holds nothing: listens on the socket of `dir`, prints
 * `ready` on stdout once listening (or once another keeper is found there), and exits.
 * @example await runKeeper(keeperDir(process.env))
 */
export async function runKeeper(dir: string): Promise<void> {
  const problem = checkKeeperDir(dir)
  if (problem) {
    process.exitCode = 2
    return
  }
  const sock = keeperSocket(dir)
  if (await answers(sock)) {
    process.stdout.write('ready\n')
    return
  }
  try {
    unlinkSync(sock)
  } catch {
    // no stale socket
  }
  let server: net.Server | undefined = undefined
  const exit = (): void => {
    server?.close()
    try {
      unlinkSync(sock)
    } catch {
      // already gone
    }
    process.exit(0)
  }
  const keeper = new Keeper(exit)
  server = net.createServer((s) => void keeper.serve(s))
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject)
    server!.listen(sock, () => resolve())
  })
  await chmod(sock, 0o600)
  const stop = (): void => void keeper.closeAll().finally(exit)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('SIGHUP', () => undefined)
  process.stdout.write('ready\n')
  // a keeper nobody talks to goes away
  keeper.maybeExit(5000)
}
