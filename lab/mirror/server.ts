/**
 * Serves the lab's package mirror over HTTP to the VMs: GET and HEAD of regular files under the
 * mirror's directory, nothing else (no listings, no symlinks, no dot files, no way out of the
 * directory). The lab API daemon runs it on the machine's end of the floating veth.
 */
import { createReadStream } from 'node:fs'
import { lstat, realpath } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, sep } from 'node:path'

/** The machine's address on the floating range (`rbl-fip0`, lab/hosts' FIP_HOST_ADDR), which every VM reaches. */
export const MIRROR_HOST = '198.51.100.1'
/** The mirror's port unless RUNBOOK_LAB_MIRROR_PORT says otherwise; fixed, as VMs write it down at first boot. */
export const DEFAULT_MIRROR_PORT = 8781
/** The URL path of the repository. */
export const MIRROR_PATH = '/debian'

/**
 * The URL VMs put in their sources.list.
 * @example mirrorUrl(8781) // 'http://198.51.100.1:8781/debian'
 */
export function mirrorUrl(port: number, host = MIRROR_HOST): string {
  return `http://${host}:${port}${MIRROR_PATH}`
}

/**
 * The file a request path names under `root`, or null when it names nothing servable: outside
 * {@link MIRROR_PATH}, a `..` or dot-file segment (raw or percent-encoded), a NUL or backslash,
 * or a malformed escape. Pure; the caller still refuses symlinks and non-files.
 * @example resolveMirrorPath('/srv/m', '/debian/./Packages.gz') // '/srv/m/Packages.gz'
 */
export function resolveMirrorPath(root: string, rawUrl: string): string | null {
  const path = rawUrl.split(/[?#]/)[0] ?? ''
  if (!path.startsWith(`${MIRROR_PATH}/`)) return null
  const segments: string[] = []
  for (const raw of path.slice(MIRROR_PATH.length + 1).split('/')) {
    let seg: string
    try {
      seg = decodeURIComponent(raw)
    } catch {
      return null
    }
    if (seg === '' || seg === '.') continue
    if (seg.startsWith('.') || /[/\\\0]/.test(seg)) return null
    segments.push(seg)
  }
  if (segments.length === 0) return null
  const file = join(root, ...segments)
  return file.startsWith(root.endsWith(sep) ? root : `${root}${sep}`) ? file : null
}

/** Options of {@link startMirrorServer}. */
export interface MirrorServerOptions {
  /** The repository's root directory. */
  dir: string
  host?: string
  /** 0 picks a free port (tests). */
  port?: number
  /** Which peers may fetch (default: the lab's floating range 198.51.100.0/25, where VMs' traffic comes from). */
  allow?: (remoteAddress: string) => boolean
  /** One line per request. */
  log?: (line: string) => void
}

/** A running mirror server. */
export interface MirrorServer {
  url: string
  port: number
  close(): Promise<void>
}

/** True for 198.51.100.0/25: VMs reach the machine masqueraded to the router's address or their floating IP. */
export function fromLab(remoteAddress: string): boolean {
  const m = /^(?:::ffff:)?198\.51\.100\.(\d{1,3})$/.exec(remoteAddress)
  return m?.[1] !== undefined && Number(m[1]) < 128
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  })
  res.end(text)
}

function contentType(file: string): string {
  if (file.endsWith('.deb')) return 'application/vnd.debian.binary-package'
  if (file.endsWith('.gz')) return 'application/gzip'
  return 'text/plain; charset=utf-8'
}

async function handle(
  root: string,
  req: IncomingMessage,
  res: ServerResponse,
  allow: (a: string) => boolean,
): Promise<number> {
  if (!allow(req.socket.remoteAddress ?? '')) {
    reply(res, 403, 'forbidden\n')
    return 403
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    reply(res, 405, 'method not allowed\n')
    return 405
  }
  const file = resolveMirrorPath(root, req.url ?? '/')
  const st = file === null ? null : await lstat(file).catch(() => null)
  // a symlinked directory on the way could lead out of the root: the real path must stay inside
  const real =
    st?.isFile() === true && file !== null ? await realpath(file).catch(() => null) : null
  if (file === null || st === null || real === null || !real.startsWith(`${root}${sep}`)) {
    reply(res, 404, 'not found\n')
    return 404
  }
  res.writeHead(200, {
    'Content-Type': contentType(file),
    'Content-Length': st.size,
    'Last-Modified': st.mtime.toUTCString(),
  })
  if (req.method === 'HEAD') {
    res.end()
    return 200
  }
  await new Promise<void>((resolve) => {
    createReadStream(file)
      .on('error', () => {
        res.destroy()
        resolve()
      })
      .on('end', resolve)
      .pipe(res)
  })
  return 200
}

/**
 * Serves `dir` at `http://HOST:PORT/debian/`. Every component of a path is checked (see
 * {@link resolveMirrorPath}) and the file must be a regular file, not a symlink.
 * @example const m = await startMirrorServer({ dir, host: MIRROR_HOST, port: DEFAULT_MIRROR_PORT })
 */
export async function startMirrorServer(opts: MirrorServerOptions): Promise<MirrorServer> {
  const root = await realpath(opts.dir)
  const host = opts.host ?? MIRROR_HOST
  const allow = opts.allow ?? fromLab
  const server = createServer((req, res) => {
    const t0 = Date.now()
    void handle(root, req, res, allow)
      .catch(() => {
        if (!res.headersSent) reply(res, 500, 'error\n')
        else res.destroy()
        return 500
      })
      .then((status) =>
        opts.log?.(
          `mirror ${req.socket.remoteAddress ?? '?'} ${req.method ?? '?'} ${req.url ?? ''} ${status} ${Date.now() - t0}ms`,
        ),
      )
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? DEFAULT_MIRROR_PORT, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  return {
    url: mirrorUrl(port, host),
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
