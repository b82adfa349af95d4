/**
 * The controller itself as a host: commands through /bin/sh, files through node:fs.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import { atomicWriteScript, quote, wrapBecome } from './shell.ts'
import type {
  BecomeOptions,
  Connection,
  ExecOptions,
  ExecResult,
  WriteFileOptions,
} from './types.ts'

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** sudo is pointless when we already are the user asked for. */
function needsSudo(become: BecomeOptions | undefined): boolean {
  return become !== undefined && !(isRoot && (become.user ?? 'root') === 'root')
}

/**
 * Runs on the machine the engine runs on.
 * @example const conn = new LocalConnection('localhost'); await conn.exec('uname -r')
 */
export class LocalConnection implements Connection {
  readonly kind = 'local' as const
  private sudoAsks: Promise<boolean> | undefined
  constructor(readonly host: string = 'localhost') {}

  /** Whether sudo asks for a password here; with NOPASSWD it must not be sent (it would reach the command). */
  private async sudoNeedsPassword(): Promise<boolean> {
    this.sudoAsks ??= this.run('sudo -n true', {}).then((r) => r.rc !== 0)
    return this.sudoAsks
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    let become = needsSudo(opts.become) ? opts.become : undefined
    if (become?.password !== undefined && !(await this.sudoNeedsPassword()))
      become = { ...become, password: undefined }
    return this.run(command, { ...opts, become })
  }

  private run(command: string, opts: ExecOptions): Promise<ExecResult> {
    const become = opts.become
    const script = wrapBecome(command, become)
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', script], {
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      })
      const out: Buffer[] = []
      const err: Buffer[] = []
      let timedOut = false
      const kill = (): void => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL')
        } catch {
          child.kill('SIGKILL')
        }
      }
      const timer = opts.timeoutMs
        ? setTimeout(() => ((timedOut = true), kill()), opts.timeoutMs)
        : undefined
      const onAbort = (): void => kill()
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      child.stdout.on('data', (b: Buffer) => out.push(b))
      child.stderr.on('data', (b: Buffer) => err.push(b))
      child.on('error', (e) => {
        if (timer) clearTimeout(timer)
        reject(new RunbookError('E_CONNECTION', `cannot run /bin/sh: ${e.message}`, { cause: e }))
      })
      child.on('close', (code, sig) => {
        if (timer) clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        if (timedOut) {
          reject(new RunbookError('E_TIMEOUT', `command timed out after ${opts.timeoutMs} ms`))
          return
        }
        resolve({
          rc: code ?? (sig ? 128 + 9 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        })
      })
      child.stdin.on('error', () => undefined)
      const stdin =
        become?.password !== undefined
          ? Buffer.concat([Buffer.from(`${become.password}\n`), Buffer.from(opts.stdin ?? '')])
          : opts.stdin
      child.stdin.end(stdin ?? '')
    })
  }

  async readFile(
    file: string,
    opts: { become?: BecomeOptions | undefined } = {},
  ): Promise<Buffer | null> {
    if (needsSudo(opts.become)) {
      const q = quote(file)
      const r = await this.exec(`if [ -e ${q} ]; then base64 -w0 < ${q}; else printf MISSING; fi`, {
        become: opts.become,
        idempotent: true,
      })
      if (r.rc !== 0)
        throw new RunbookError('E_CONNECTION', `cannot read ${file}: ${r.stderr.trim()}`)
      return r.stdout === 'MISSING' ? null : Buffer.from(r.stdout, 'base64')
    }
    try {
      return await fs.readFile(file)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new RunbookError('E_CONNECTION', `cannot read ${file}: ${(e as Error).message}`, {
        cause: e,
      })
    }
  }

  async writeFile(file: string, data: string | Buffer, opts: WriteFileOptions = {}): Promise<void> {
    if (needsSudo(opts.become) || ((opts.owner || opts.group) && !isRoot)) {
      const r = await this.exec(atomicWriteScript(file, opts), { become: opts.become, stdin: data })
      if (r.rc !== 0)
        throw new RunbookError('E_CONNECTION', `cannot write ${file}: ${r.stderr.trim()}`)
      return
    }
    await writeFileAtomic(file, data, opts)
  }

  async close(): Promise<void> {}
}

/** The temp file of an atomic write: named after its writer's pid, so a dead writer's is known. */
export function atomicTempName(file: string, pid = process.pid): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.rb-${pid}-${randomBytes(4).toString('hex')}`,
  )
}

/**
 * Removes the temp files that writers killed mid-write left next to `file` (their pid is gone),
 * and of older versions, whose names carry no pid, when older than a minute. Returns their names.
 * @example await removeStaleTemps('/s/journal.json') // ['.journal.json.rb-4242-1a2b3c4d']
 */
export async function removeStaleTemps(file: string): Promise<string[]> {
  const dir = path.dirname(file)
  const prefix = `.${path.basename(file)}.rb-`
  let names: string[]
  try {
    names = (await fs.readdir(dir)).filter((n) => n.startsWith(prefix))
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length))
    const stale = m
      ? !processAlive(Number(m[1]))
      : Date.now() - ((await fs.stat(path.join(dir, name)).catch(() => undefined))?.mtimeMs ?? 0) >
        60_000
    if (!stale) continue
    await fs.rm(path.join(dir, name), { force: true })
    removed.push(name)
  }
  return removed
}

/** Whether a process of this machine is alive (EPERM: alive, of another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Node-side atomic replace: temp file in the same directory, fsync, keep mode/owner, rename. */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  opts: { mode?: number | undefined; owner?: string | undefined; group?: string | undefined } = {},
): Promise<void> {
  const tmp = atomicTempName(file)
  let old: import('node:fs').Stats | undefined
  try {
    old = await fs.stat(file)
  } catch {
    old = undefined
  }
  const handle = await fs.open(tmp, 'wx', opts.mode ?? (old ? old.mode & 0o7777 : 0o644))
  try {
    await handle.writeFile(data)
    await handle.chmod(opts.mode ?? (old ? old.mode & 0o7777 : 0o644))
    if (opts.owner || opts.group) {
      const ids = await resolveIds(opts.owner, opts.group)
      await handle.chown(ids.uid ?? old?.uid ?? -1, ids.gid ?? old?.gid ?? -1)
    } else if (old && isRoot) {
      await handle.chown(old.uid, old.gid)
    }
    await handle.sync()
  } catch (e) {
    await handle.close()
    await fs.rm(tmp, { force: true })
    throw e
  }
  await handle.close()
  try {
    await fs.rename(tmp, file)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e
  }
  // a writer killed between its temp file and the rename left one here: the file is ours again
  await removeStaleTemps(file).catch(() => [])
}

/** Numeric ids for user and group names, read through `id` and `getent`. */
async function resolveIds(
  owner: string | undefined,
  group: string | undefined,
): Promise<{ uid?: number; gid?: number }> {
  const conn = new LocalConnection()
  const out: { uid?: number; gid?: number } = {}
  if (owner) {
    const r = await conn.exec(`id -u ${quote(owner)}`)
    if (r.rc !== 0) throw new RunbookError('E_MODULE', `unknown user '${owner}'`)
    out.uid = Number(r.stdout.trim())
  }
  if (group) {
    const r = await conn.exec(`getent group ${quote(group)} | cut -d: -f3`)
    if (r.rc !== 0 || !r.stdout.trim())
      throw new RunbookError('E_MODULE', `unknown group '${group}'`)
    out.gid = Number(r.stdout.trim())
  }
  return out
}
