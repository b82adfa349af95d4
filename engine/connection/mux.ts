/**
 * The framing between a run and the connection keeper: one unix-socket connection carries one SSH
 * channel (or one request), as frames of `type (1 byte) | length (4 bytes) | payload`. The socket's
 * own flow control is the channel's window: a side that cannot take more stops reading, the
 * other's writes then wait, and the keeper stops reading the SSH channel in turn.
 */

/** Frame types. Requests and replies carry JSON; data frames carry bytes. */
export const Frame = {
  /** run -> keeper: open a channel, or a control request (JSON). */
  Open: 1,
  /** keeper -> run: the channel is open, with what happened to reach it (JSON). */
  Opened: 2,
  /** keeper -> run: the request failed (JSON: code, message, hint). */
  Error: 3,
  /** keeper -> run: a key file's passphrase is needed (JSON: keyFile). */
  Ask: 4,
  /** run -> keeper: the passphrase, or none (JSON: value?). */
  Answer: 5,
  /** Channel bytes, both ways (stdout from the keeper, stdin to it). */
  Data: 6,
  /** keeper -> run: the channel's stderr. */
  Stderr: 7,
  /** run -> keeper: end of stdin. */
  Eof: 8,
  /** keeper -> run: the command's exit (JSON: code, signal). */
  Exit: 9,
  /** Either way: the channel is closed (keeper -> run, JSON: dropped). */
  Close: 10,
} as const

/** One frame's type. */
export type FrameType = (typeof Frame)[keyof typeof Frame]

const HEADER = 5
/** Large enough for any SFTP packet or shell chunk; a longer length means a corrupt stream. */
const MAX_FRAME = 16 * 1024 * 1024

/**
 * One frame, ready to write.
 * @example socket.write(encodeFrame(Frame.Data, Buffer.from('ls\n')))
 */
export function encodeFrame(type: FrameType, payload: Buffer | string | object = ''): Buffer {
  const body = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload))
  const head = Buffer.allocUnsafe(HEADER)
  head.writeUInt8(type, 0)
  head.writeUInt32BE(body.length, 1)
  return Buffer.concat([head, body])
}

/**
 * Splits a byte stream into frames.
 * @example const reader = new FrameReader((type, body) => ...); socket.on('data', (b) => reader.push(b))
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0)
  /** Chunks not yet joined: a long frame is joined once, when it is complete. */
  private pending: Buffer[] = []
  private pendingLength = 0
  private need = HEADER

  constructor(private readonly onFrame: (type: number, body: Buffer) => void) {}

  /** Feeds bytes; throws on a frame no peer of ours would send. */
  push(chunk: Buffer): void {
    this.pending.push(chunk)
    this.pendingLength += chunk.length
    if (this.buf.length + this.pendingLength < this.need) return
    this.buf = Buffer.concat([this.buf, ...this.pending])
    this.pending = []
    this.pendingLength = 0
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(1)
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes`)
      this.need = HEADER + len
      if (this.buf.length < this.need) return
      const type = this.buf.readUInt8(0)
      const body = this.buf.subarray(HEADER, HEADER + len)
      this.buf = this.buf.subarray(HEADER + len)
      this.need = HEADER
      this.onFrame(type, body)
    }
  }
}

/** A JSON frame body, parsed; an object or nothing. */
export function parseBody(body: Buffer): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'))
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}
