import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { LAB_PREFIX } from './names.ts'
import { listNetns, routerExists } from './router.ts'
import { labLinks, labTables, teardownHosts } from './teardown.ts'

/**
 * The machine holds one lab (its names are fixed: rbl-router, rbl-fip0, ...). This file says whose
 * it is (the driver's state directory) and which process holds it, so that a second lab, or the
 * teardown of another one (a test's afterAll, say), never takes over or destroys a lab that is up,
 * while a lab whose process is gone (killed, or the machine's processes restarted under it) is
 * taken over by the next one instead of blocking it forever.
 */
export const OWNER_FILE = '/run/rbl-lab.owner'

export interface LabOwner {
  /** The owner's state directory. */
  stateDir: string
  /** The process that claimed the lab, when the record names one. */
  pid: number | null
  /** True while that process runs (the same process: its start time is recorded too). */
  live: boolean
}

/** The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null. */
async function startTime(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (stat === null) return null
  // the command name (field 2) is in parentheses and may hold spaces: count from after it
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return fields[19] ?? null
}

async function readOwner(): Promise<LabOwner | null> {
  const text = await readFile(OWNER_FILE, 'utf8').catch(() => '')
  const [dir = '', proc = ''] = text.split('\n')
  if (dir.trim() === '') return null
  const m = /^(\d+) (\d+)$/.exec(proc.trim())
  if (m === null) return { stateDir: dir.trim(), pid: null, live: false }
  const pid = Number(m[1])
  return { stateDir: dir.trim(), pid, live: (await startTime(pid)) === m[2] }
}

/** The lab on this machine and who holds it, or null when none is up. */
export async function labOwner(): Promise<LabOwner | null> {
  const owner = await readOwner()
  // a record without a router is stale (a reboot, or a teardown cut short)
  if (owner === null || !(await routerExists())) return null
  return owner
}

/** True when anything of a lab is on the machine: a namespace, link or nft table named rbl*. */
async function labRemnants(): Promise<boolean> {
  if ((await listNetns()).some((n) => n.startsWith(LAB_PREFIX))) return true
  return (await labLinks()).length > 0 || (await labTables()).length > 0
}

/**
 * Removes a lab nobody holds any more: its owner process is gone, or its pieces are on the machine
 * without an owner record. A lab whose owner runs is left alone. Returns the state directory of
 * the lab taken down ('' when its owner was unknown), or null when there was nothing to do.
 */
export async function reapStaleLab(): Promise<string | null> {
  const owner = await readOwner()
  if (owner?.live === true) return null
  if (owner === null && !(await labRemnants())) return null
  await teardownHosts(owner?.stateDir ?? null)
  await releaseLab()
  return owner?.stateDir ?? ''
}

/**
 * Takes down a lab left behind by a process that is gone, unless it is this state directory's own
 * (which the caller takes over, VMs and all). Call after assertNotOthers.
 */
export async function reapOthers(stateDir: string): Promise<void> {
  const owner = await readOwner()
  if (owner === null || owner.stateDir !== resolve(stateDir)) await reapStaleLab()
}

/** Throws when another state directory's lab is up on this machine and its owner runs. */
export async function assertNotOthers(stateDir: string, doing: string): Promise<void> {
  const owner = await labOwner()
  if (owner !== null && owner.live && owner.stateDir !== resolve(stateDir)) {
    throw new Error(
      `lab hosts: cannot ${doing}: another lab is up on this machine (its state is in ${owner.stateDir}, held by pid ${String(owner.pid)}); take that one down first`,
    )
  }
}

/**
 * Records this state directory, and this process, as the owner of the machine's lab. Another
 * state directory's lab whose owner is gone is taken down first; a live one makes this throw.
 */
export async function claimLab(stateDir: string): Promise<void> {
  await assertNotOthers(stateDir, 'set up the lab')
  await reapOthers(stateDir)
  const tmp = `${OWNER_FILE}.${process.pid}.tmp`
  await writeFile(
    tmp,
    `${resolve(stateDir)}\n${process.pid} ${(await startTime(process.pid)) ?? 0}\n`,
  )
  await rename(tmp, OWNER_FILE)
}

/** Forgets the owner (the lab is gone). */
export async function releaseLab(): Promise<void> {
  await rm(OWNER_FILE, { force: true })
}
