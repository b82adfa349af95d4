/**
 * Where the connection keeper lives and how it is started: a unix socket in a directory only the
 * local user may enter, and a detached process that inherits nothing secret. See keeper.ts for the
 * process itself and keeper-client.ts for the run's side.
 */
import { spawn } from 'node:child_process'
import { lstatSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { RunbookError } from '../errors.ts'

/** How long an unused connection is kept, as OpenSSH's ControlPersist default in Ansible. */
export const PERSIST_DEFAULT_SECONDS = 60

/** How a pool reaches the keeper. */
export interface PersistOptions {
  /** Idle seconds before the keeper closes a connection; 0 turns persistence off. */
  seconds: number
  /** The keeper's directory (see keeperDir). */
  dir: string
  /** argv that starts a keeper (`node cli/runbook.cjs __keeper`). */
  command: string[]
}

/**
 * RUNBOOK_SSH_PERSIST in seconds (the default when unset); a value that is not a number is refused.
 * @example persistSecondsFromEnv({ RUNBOOK_SSH_PERSIST: '0' }) // 0
 */
export function persistSecondsFromEnv(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env['RUNBOOK_SSH_PERSIST']
  if (raw === undefined || raw.trim() === '') return PERSIST_DEFAULT_SECONDS
  if (!/^\d+$/.test(raw.trim()))
    throw new RunbookError(
      'E_PARAM',
      `RUNBOOK_SSH_PERSIST must be a number of seconds (0 turns it off), not '${raw}'`,
    )
  return Number(raw.trim())
}

/**
 * The keeper's directory: RUNBOOK_KEEPER_DIR, else `$XDG_RUNTIME_DIR/runbook`, else `/tmp/runbook-$UID`.
 * @example keeperDir(process.env) // '/run/user/1000/runbook'
 */
export function keeperDir(env: Readonly<Record<string, string | undefined>>): string {
  const set = env['RUNBOOK_KEEPER_DIR']
  if (set) return path.resolve(set)
  const xdg = env['XDG_RUNTIME_DIR']
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'runbook')
  return path.join('/tmp', `runbook-${process.getuid?.() ?? 'user'}`)
}

/** The socket in a keeper directory. */
export function keeperSocket(dir: string): string {
  return path.join(dir, 'keeper.sock')
}

/**
 * Creates the directory (0700) when missing, then says why it must not be used, if it must not: not
 * a plain directory, not the user's, or open to others. Anyone who can reach the socket can use the
 * user's SSH connections, so nothing less is accepted.
 * @example const problem = checkKeeperDir('/tmp/runbook-1000') // undefined when safe
 */
export function checkKeeperDir(dir: string): string | undefined {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      return `cannot create ${dir}: ${(err as Error).message}`
  }
  const uid = process.getuid?.()
  const st = lstatSync(dir)
  if (!st.isDirectory()) return `${dir} is not a directory`
  if (uid !== undefined && st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not ${uid}`
  if ((st.mode & 0o077) !== 0)
    return `${dir} has mode ${(st.mode & 0o777).toString(8)}; it must be 700`
  try {
    const sock = lstatSync(keeperSocket(dir))
    if (!sock.isSocket()) return `${keeperSocket(dir)} is not a socket`
    if (uid !== undefined && sock.uid !== uid)
      return `${keeperSocket(dir)} belongs to uid ${sock.uid}, not ${uid}`
  } catch {
    // no socket yet
  }
  return undefined
}

/** Variables the keeper may see: nothing of the run's (OS_PASSWORD and the like stay out). */
const KEEPER_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'TMPDIR', 'RUNBOOK_NO_BUNDLE']

/**
 * Starts a keeper, detached, and waits until it listens (it prints `ready`); false when it did not
 * come up in time. Its argv is `command` alone and its environment a short allow-list.
 * @example await spawnKeeper(options)
 */
export function spawnKeeper(o: PersistOptions, timeoutMs = 5000): Promise<boolean> {
  const env: Record<string, string> = { RUNBOOK_KEEPER_DIR: o.dir }
  for (const k of KEEPER_ENV) {
    const v = process.env[k]
    if (v !== undefined) env[k] = v
  }
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(o.command[0]!, o.command.slice(1), {
        detached: true,
        stdio: ['ignore', 'pipe', 'ignore'],
        env,
        cwd: '/',
      })
    } catch {
      return resolve(false)
    }
    let out = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      child.stdout?.removeAllListeners('data')
      child.stdout?.destroy()
      child.removeAllListeners('exit')
      child.unref()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), timeoutMs)
    child.on('error', () => done(false))
    child.on('exit', () => done(false))
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString('utf8')
      if (out.includes('ready\n')) done(true)
    })
  })
}
