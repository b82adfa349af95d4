/**
 * The run's side of the connection keeper: a transport whose channels come from the keeper over
 * its unix socket, so that the persistent shell, the become shells and SFTP work on them as on a
 * channel of a local ssh2 Client. A keeper that is missing is started; one that cannot be reached
 * (or dies) leaves the run on a direct connection, silently.
 */
import { createRequire } from 'node:module'
import net from 'node:net'
import { Duplex, Readable } from 'node:stream'
import type { ClientChannel, SFTPWrapper } from 'ssh2'
import { RunbookError, type ErrorCode } from '../errors.ts'
import type { KeeperReply, KeeperRequest } from './keeper.ts'
import { Frame, FrameReader, encodeFrame, parseBody } from './mux.ts'
import { checkKeeperDir, keeperSocket, spawnKeeper, type PersistOptions } from './persist.ts'
import type { ResolvedEndpoint, SshTransport, TransportEvent } from './transport.ts'

/** How long past the connect timeouts of a chain a keeper may take to answer. */
const KEEPER_PATIENCE_MS = 5000

/** A host's transport: direct, or held by the keeper. */
export type HostTransport = SshTransport | KeeperTransport

/** The keeper cannot be reached: the run goes direct. */
export class KeeperUnavailable extends Error {
  /** True when nothing listens on the socket (a keeper may be started). */
  missing = false
}

/** What SshConnection opens channels with: an ssh2 Client, or a keeper transport. */
export interface ChannelOpener {
  exec(command: string, cb: (err: Error | undefined, channel: ClientChannel) => void): unknown
  sftp(cb: (err: Error | undefined, sftp: SFTPWrapper) => void): unknown
}

/** An open request: the socket, the reply, and the frames that follow. */
interface Opened {
  socket: net.Socket
  reply: KeeperReply
  /** Takes the frames after the reply (those already arrived are replayed). */
  listen(fn: (type: number, body: Buffer) => void): void
}

/**
 * A keeper for one run: connects to its socket, starting a keeper first when none answers (once
 * per run). One instance per pool.
 * @example const link = new KeeperLink(options, passphrase); const r = await link.request({ op: 'status' })
 */
export class KeeperLink {
  private spawned: Promise<boolean> | undefined
  private refused: string | undefined | null = null

  constructor(
    readonly options: PersistOptions,
    private readonly passphrase?: ((keyFile: string) => Promise<string>) | undefined,
  ) {}

  /** Why the keeper's directory must not be used, if it must not. */
  problem(): string | undefined {
    if (this.refused === null) this.refused = checkKeeperDir(this.options.dir)
    return this.refused
  }

  /** Sends a request and waits for its reply; the socket stays open for a channel's frames. */
  async open(req: KeeperRequest, start = true): Promise<Opened> {
    if (this.problem()) throw new KeeperUnavailable(this.problem())
    try {
      return await this.openOnce(req)
    } catch (err) {
      if (!(err instanceof KeeperUnavailable) || !err.missing || !start) throw err
      this.spawned ??= spawnKeeper(this.options)
      if (!(await this.spawned)) throw err
      return this.openOnce(req)
    }
  }

  /** A request whose reply is all there is (status, disconnect, forget, ensure). */
  async request(req: KeeperRequest, start = true): Promise<KeeperReply> {
    const o = await this.open(req, start)
    o.socket.destroy()
    return o.reply
  }

  private openOnce(req: KeeperRequest): Promise<Opened> {
    // A keeper that does not answer in the time its connects may take is hung: go direct. The
    // clock stops while a passphrase is asked (a person is typing).
    const patience =
      (req.chain ?? []).reduce((sum, e) => sum + e.connectTimeoutMs, 0) + KEEPER_PATIENCE_MS
    return new Promise((resolve, reject) => {
      const socket = net.connect(keeperSocket(this.options.dir))
      let state: 'connecting' | 'waiting' | 'open' = 'connecting'
      let timer: NodeJS.Timeout | undefined
      const arm = (): void => {
        clearTimeout(timer)
        timer = setTimeout(() => socket.destroy(), patience)
      }
      arm()
      const early: Array<[number, Buffer]> = []
      let handler: ((type: number, body: Buffer) => void) | undefined
      const reader = new FrameReader((type, body) => {
        if (state === 'open') {
          if (handler) handler(type, body)
          else early.push([type, body])
          return
        }
        if (type === Frame.Ask) {
          clearTimeout(timer)
          const keyFile = String(parseBody(body)['keyFile'] ?? '')
          const ask = this.passphrase
          const answer = ask ? ask(keyFile).catch(() => undefined) : Promise.resolve(undefined)
          void answer.then((value) => {
            arm()
            socket.write(encodeFrame(Frame.Answer, value === undefined ? {} : { value }))
          })
          return
        }
        clearTimeout(timer)
        if (type === Frame.Error) {
          const e = parseBody(body)
          state = 'open'
          socket.destroy()
          // the kept connection cannot take another channel: this run connects on its own
          if (e['busy'] === true) return reject(new KeeperUnavailable(String(e['message'])))
          return reject(
            new RunbookError(
              (typeof e['code'] === 'string' ? e['code'] : 'E_CONNECTION') as ErrorCode,
              String(e['message'] ?? 'the connection keeper failed'),
              {
                host: typeof e['host'] === 'string' ? e['host'] : undefined,
                hint: typeof e['hint'] === 'string' ? e['hint'] : undefined,
              },
            ),
          )
        }
        if (type === Frame.Opened) {
          state = 'open'
          resolve({
            socket,
            reply: parseBody(body) as KeeperReply,
            listen(fn) {
              handler = fn
              for (const [t, b] of early.splice(0)) fn(t, b)
            },
          })
        }
      })
      socket.on('connect', () => {
        state = 'waiting'
        socket.write(encodeFrame(Frame.Open, req))
      })
      socket.on('data', (b: Buffer) => {
        try {
          reader.push(b)
        } catch {
          socket.destroy()
        }
      })
      socket.on('error', () => undefined)
      socket.on('close', () => {
        clearTimeout(timer)
        if (state === 'open') {
          handler?.(Frame.Close, Buffer.from('{"dropped":true,"lost":true}'))
          handler = undefined
          return
        }
        const err = new KeeperUnavailable(
          state === 'connecting' ? 'no keeper listens' : 'the keeper closed the connection',
        )
        err.missing = state === 'connecting'
        reject(err)
      })
    })
  }
}

/**
 * An SSH channel relayed by the keeper, shaped as ssh2's ClientChannel where the shells use it:
 * `data`, `stderr`, `exit`, `close`, write, end, close.
 */
class MuxChannel extends Duplex {
  readonly stderr: Readable
  private finished = false

  constructor(private readonly socket: net.Socket) {
    super({ allowHalfOpen: true })
    this.stderr = new Readable({ read: () => socket.resume() })
  }

  /** Feeds one frame from the keeper. */
  frame(type: number, body: Buffer): void {
    if (type === Frame.Data) {
      if (!this.push(body)) this.socket.pause()
    } else if (type === Frame.Stderr) {
      if (!this.stderr.push(body)) this.socket.pause()
    } else if (type === Frame.Exit) {
      const e = parseBody(body)
      this.emit('exit', e['code'] ?? null, e['signal'] ?? undefined)
    } else if (type === Frame.Close) this.finish()
  }

  override _read(): void {
    this.socket.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return cb()
    this.socket.write(encodeFrame(Frame.Data, chunk), () => cb())
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(Frame.Eof))
    cb()
  }

  /** Closes the channel (the keeper closes the SSH channel and answers with Close). */
  close(): void {
    if (this.finished) return
    if (this.socket.destroyed) return this.finish()
    this.socket.write(encodeFrame(Frame.Close))
  }

  private finish(): void {
    if (this.finished) return
    this.finished = true
    this.push(null)
    this.stderr.push(null)
    this.socket.destroy()
    this.destroy()
  }
}

interface SftpModule {
  SFTP: new (
    client: unknown,
    chanInfo: unknown,
    cfg: unknown,
  ) => SFTPWrapper & {
    push(data: Buffer | null): void
    _init(): void
    outgoing: { state: string }
  }
}

/** ssh2's SFTP client, driven over a relayed subsystem channel instead of its own Client. */
function sftpOver(o: Opened): Promise<SFTPWrapper> {
  const { SFTP } = createRequire(import.meta.url)('ssh2/lib/protocol/SFTP.js') as SftpModule
  const s = o.socket
  const protocol = {
    _remoteIdentRaw: o.reply.ident ?? '',
    channelData: (_id: number, data: Buffer) => {
      if (!s.destroyed) s.write(encodeFrame(Frame.Data, data))
    },
    channelClose: () => {
      if (!s.destroyed) s.write(encodeFrame(Frame.Close))
    },
    channelEOF: () => {
      if (!s.destroyed) s.write(encodeFrame(Frame.Eof))
    },
    channelWindowAdjust: () => undefined,
  }
  const window = Number.MAX_SAFE_INTEGER
  const sftp = new SFTP(
    { _protocol: protocol },
    {
      type: 'session',
      incoming: { id: 0, window, packetSize: 32768, state: 'open' },
      outgoing: { id: 0, window, packetSize: 256 * 1024, state: 'open' },
    },
    {},
  )
  let ended = false
  o.listen((type, body) => {
    if (type === Frame.Data) sftp.push(body)
    else if (type === Frame.Close && !ended) {
      ended = true
      sftp.outgoing.state = 'closed'
      sftp.push(null)
      sftp.emit('close')
      s.destroy()
    }
  })
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error('the SFTP channel closed during its start'))
    sftp.once('ready', () => {
      sftp.removeListener('close', onClose)
      resolve(sftp)
    })
    sftp.once('close', onClose)
    sftp._init()
  })
}

/**
 * The transport of one host chain, held by the keeper. It stands in for the chain's SshTransport
 * in SshConnection; when the keeper cannot be reached it becomes that direct transport.
 * @example const t = new KeeperTransport(key, { chain, link, direct: () => transport, idleMs: 60_000 })
 */
export class KeeperTransport implements ChannelOpener {
  readonly parent = undefined
  /** Increases when the keeper reports a reconnect. */
  private kept = 0
  private direct: SshTransport | undefined
  private live = false
  private keeperGeneration: number | undefined
  private closed = false
  private readonly sockets = new Set<net.Socket>()

  private readonly chain: ResolvedEndpoint[]
  private readonly link: KeeperLink
  private readonly makeDirect: () => Promise<SshTransport>
  private directing: Promise<SshTransport> | undefined
  private readonly idleMs: number
  private readonly onEvent: ((e: TransportEvent) => void) | undefined

  constructor(
    readonly key: string,
    o: {
      chain: ResolvedEndpoint[]
      link: KeeperLink
      /** The direct transport, for when the keeper cannot be reached. */
      direct: () => Promise<SshTransport>
      idleMs: number
      onEvent?: ((e: TransportEvent) => void) | undefined
    },
  ) {
    this.chain = o.chain
    this.link = o.link
    this.makeDirect = o.direct
    this.idleMs = o.idleMs
    this.onEvent = o.onEvent
  }

  get endpoint(): ResolvedEndpoint {
    return this.chain[this.chain.length - 1]!
  }

  get path(): string {
    return this.chain.map((e) => e.label).join(' -> ')
  }

  /**
   * Changes when the connection under the channels was replaced. Going direct is not such a
   * change (the keeper's channels close by themselves, and are reopened for that): the direct
   * connection counts from where the keeper left.
   */
  get generation(): number {
    return this.direct ? this.kept + Math.max(this.direct.generation - 1, 0) : this.kept
  }

  get connected(): boolean {
    return this.direct ? this.direct.connected : !this.closed
  }

  /** Whether channels currently come from the keeper (false once the run went direct). */
  get persisted(): boolean {
    return this.direct === undefined
  }

  /** Connects (the keeper connects, or finds the connection it holds). */
  async ensure(): Promise<ChannelOpener> {
    if (this.closed)
      throw new RunbookError('E_CONNECTION', `connection to ${this.endpoint.label} is closed`, {
        host: this.endpoint.label,
      })
    if (this.direct) return this.direct.ensure()
    if (this.live) return this
    try {
      const reply = await this.link.request(this.request('ensure'))
      this.note(reply)
      this.live = true
      return this
    } catch (err) {
      if (!(err instanceof KeeperUnavailable)) throw err
      return (await this.goDirect()).ensure()
    }
  }

  exec(command: string, cb: (err: Error | undefined, channel: ClientChannel) => void): void {
    this.channel({ ...this.request('channel'), command }).then(
      (o) => {
        const ch = new MuxChannel(o.socket)
        o.listen((t, b) => ch.frame(t, b))
        cb(undefined, ch as unknown as ClientChannel)
      },
      (err: unknown) => this.viaDirect(err, (c) => c.exec(command, cb), cb),
    )
  }

  sftp(cb: (err: Error | undefined, sftp: SFTPWrapper) => void): void {
    this.channel({ ...this.request('channel'), subsystem: 'sftp' })
      .then(sftpOver)
      .then(
        (s) => cb(undefined, s),
        (err: unknown) => this.viaDirect(err, (c) => c.sftp(cb), cb),
      )
  }

  /** Closes this run's channels; the keeper keeps the connection for the next run. */
  async close(): Promise<void> {
    this.closed = true
    for (const s of this.sockets) s.destroy()
    await this.direct?.close()
  }

  /** Closes this run's channels and has the keeper close the connection too (the host is gone). */
  async forget(): Promise<void> {
    await this.close()
    if (!this.direct) await this.link.request(this.request('forget'), false).catch(() => undefined)
  }

  /** Drops the channels as a network failure would. */
  destroy(): void {
    for (const s of this.sockets) s.destroy()
    this.live = false
    this.direct?.destroy()
  }

  private request(op: KeeperRequest['op']): KeeperRequest {
    return { op, chain: this.chain, idleMs: this.idleMs }
  }

  private async channel(req: KeeperRequest): Promise<Opened> {
    const o = await this.link.open(req)
    if (this.closed) {
      // the run ended while the channel opened: it must not keep the run's process alive
      o.socket.destroy()
      throw new RunbookError('E_CONNECTION', `connection to ${this.endpoint.label} is closed`, {
        host: this.endpoint.label,
      })
    }
    this.note(o.reply)
    this.sockets.add(o.socket)
    o.socket.on('close', () => this.sockets.delete(o.socket))
    const listen = o.listen
    o.listen = (fn) =>
      listen((type, body) => {
        // the keeper went away, or the connection dropped: ask again before the next channel
        if (type === Frame.Close && parseBody(body)['dropped'] === true) this.live = false
        fn(type, body)
      })
    return o
  }

  private note(reply: KeeperReply): void {
    for (const e of reply.events ?? []) this.onEvent?.(e)
    if (reply.generation !== undefined && reply.generation !== this.keeperGeneration) {
      // the first reply sets the starting point; later changes are reconnects
      if (this.keeperGeneration !== undefined) this.kept++
      this.keeperGeneration = reply.generation
    }
  }

  private goDirect(): Promise<SshTransport> {
    this.directing ??= this.makeDirect().then((t) => {
      this.direct = t
      return t
    })
    return this.directing
  }

  /** A keeper that is gone leaves the channel to a direct connection; other errors are the channel's. */
  private viaDirect<T>(
    err: unknown,
    open: (c: ChannelOpener) => void,
    cb: (err: Error | undefined, v: T) => void,
  ): void {
    if (!(err instanceof KeeperUnavailable) || this.closed) {
      cb(err instanceof Error ? err : new Error(String(err)), undefined as T)
      return
    }
    this.goDirect()
      .then((t) => t.ensure())
      .then(open, (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), undefined as T))
  }
}
