/**
 * One run at a time per runbook and inventory: a lock file created with O_EXCL that names its
 * holder. A lock whose process is gone is stale and taken over.
 */
import { promises as fs } from 'node:fs'
import { hostname } from 'node:os'
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import { processAlive } from '../connection/local.ts'

/** Who holds a lock. */
export interface LockHolder {
  pid: number
  host: string
  command: string
  startedAt: string
}

const alive = processAlive

async function readHolder(file: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as LockHolder
  } catch {
    return undefined
  }
}

/** A held lock; release it when the run ends. */
export interface Lock {
  release(): Promise<void>
  /** Set when a stale lock of a dead process was taken over. */
  tookOverFrom?: LockHolder | undefined
}

/**
 * Takes the lock in `dir`, waiting up to `waitMs` for a live holder to finish; `onWait` is told
 * once, when the wait starts, whom it waits for.
 * @example const lock = await acquireLock(stateDir, 'runbook apply'); try { ... } finally { await lock.release() }
 */
export async function acquireLock(
  dir: string,
  command: string,
  waitMs = 0,
  onWait?: (holder: LockHolder) => void,
): Promise<Lock> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const file = path.join(dir, 'lock')
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command,
    startedAt: new Date().toISOString(),
  }
  const deadline = Date.now() + waitMs
  let tookOverFrom: LockHolder | undefined
  for (;;) {
    try {
      const h = await fs.open(file, 'wx', 0o600)
      await h.writeFile(JSON.stringify(me))
      await h.sync()
      await h.close()
      return {
        tookOverFrom,
        release: async () => {
          const cur = await readHolder(file)
          if (cur?.pid === me.pid) await fs.rm(file, { force: true })
        },
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    const holder = await readHolder(file)
    if (holder && holder.host === me.host && !alive(holder.pid)) {
      // The holder died without releasing: take over. Remove only if it is still that holder's file.
      const again = await readHolder(file)
      if (again?.pid === holder.pid) await fs.rm(file, { force: true })
      tookOverFrom = holder
      continue
    }
    if (!holder) {
      // Being written right now, or empty after a crash between create and write.
      const st = await fs.stat(file).catch(() => undefined)
      if (st && Date.now() - st.mtimeMs > 5000) await fs.rm(file, { force: true })
      await new Promise((r) => setTimeout(r, 50))
      continue
    }
    if (Date.now() >= deadline) {
      throw new RunbookError(
        'E_LOCK',
        `another run of this runbook holds the lock: pid ${holder.pid} on ${holder.host}, \`${holder.command}\`, since ${holder.startedAt}`,
        {
          hint: `wait for it, or use --lock-timeout; if that process is gone, remove ${file}`,
        },
      )
    }
    if (onWait !== undefined) {
      onWait(holder)
      onWait = undefined
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}
