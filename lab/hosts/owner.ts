import { readFile, rm, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { routerExists } from './router.ts'

/**
 * The machine holds one lab (its names are fixed: rbl-router, rbl-fip0, ...). This file says whose
 * it is (the driver's state directory), so that a second lab, or the teardown of another one (a
 * test's afterAll, say), never takes over or destroys a lab that is up.
 */
export const OWNER_FILE = '/run/rbl-lab.owner'

/** The state directory of the lab that is up on this machine, or null when none is. */
export async function labOwner(): Promise<string | null> {
  const owner = (await readFile(OWNER_FILE, 'utf8').catch(() => '')).trim()
  if (owner === '') return null
  // a record without a router is stale (a reboot, or a teardown cut short)
  return (await routerExists()) ? owner : null
}

/** Throws when another state directory's lab is up on this machine. */
export async function assertNotOthers(stateDir: string, doing: string): Promise<void> {
  const owner = await labOwner()
  if (owner !== null && owner !== resolve(stateDir)) {
    throw new Error(`lab hosts: cannot ${doing}: another lab is up on this machine (its state is in ${owner}); take that one down first`)
  }
}

/** Records this state directory as the owner of the machine's lab (after checking nobody else is). */
export async function claimLab(stateDir: string): Promise<void> {
  await assertNotOthers(stateDir, 'set up the lab')
  await writeFile(OWNER_FILE, `${resolve(stateDir)}\n`)
}

/** Forgets the owner (the lab is gone). */
export async function releaseLab(): Promise<void> {
  await rm(OWNER_FILE, { force: true })
}
