import { closeSync, existsSync, fsyncSync, openSync, readFileSync } from 'node:fs'
import { mkdir, open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Coalescer } from './coalesce.ts'
import type { LabState } from './types.ts'

/**
 * Write a file so that a crash leaves either the old or the new content, never a torn one:
 * temp file, fsync, rename over the target, fsync the directory.
 * @example await writeFileAtomic('/var/lib/runbook-lab/api-state.json', text, 0o600)
 */
export async function writeFileAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}`
  const fh = await open(tmp, 'w', mode)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, file)
  const dir = openSync(dirname(file), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/** Read the lab's state file; null when there is none yet. Throws on a file this code did not write. */
export function readState(file: string): LabState | null {
  if (!existsSync(file)) return null
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'))
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    (parsed as { schema?: unknown }).schema !== 1
  ) {
    throw new Error(`${file}: not a runbook lab state file (schema 1)`)
  }
  // Only this module writes the file, always from a LabState, so the shape check above suffices.
  return parsed as LabState
}

/**
 * Persists the in-memory state. Saves coalesce: `save()` resolves once a write that started after
 * the call has reached the disk, so a burst of requests costs one or two writes, not one each.
 * @example const store = new StateStore(file, () => state); await store.save()
 */
export class StateStore {
  private readonly flush: Coalescer

  constructor(
    readonly file: string,
    current: () => LabState,
  ) {
    this.flush = new Coalescer(() =>
      writeFileAtomic(file, `${JSON.stringify(current(), null, 1)}\n`),
    )
  }

  /** Persist the current state; resolves when it (or a later version) is on disk. */
  save(): Promise<void> {
    return this.flush.run()
  }
}
