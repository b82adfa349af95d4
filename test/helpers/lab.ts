import { labOwner, reapStaleLab } from '../../lab/hosts/index.ts'

/**
 * Before a test brings up the machine's one lab: takes down a lab left behind by a process that is
 * gone (an interrupted run), and throws when a lab whose owner still runs is up (a developer's own,
 * or another test run's), which the test must not touch. Returns nothing; throws with the owner.
 */
export async function assertNoLiveLab(): Promise<void> {
  await reapStaleLab()
  const owner = await labOwner()
  if (owner?.live === true) {
    throw new Error(
      `a lab is already up on this machine (state in ${owner.stateDir}, pid ${String(owner.pid)}): take it down first`,
    )
  }
}
