/**
 * The lab's real hosts (lab/hosts: network namespaces, QEMU VMs, nftables) as the lab's entry
 * points use them: the namespace driver behind the HostDriver seam (lab/driver.ts), its
 * prerequisite check and its state directory. The API itself (lab/api) knows only the seam; the
 * daemon and `runbook lab` plug the real hosts in here, with a static import a reader can follow.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { checkHostPrerequisites, createNamespaceDriver } from './hosts/index.ts'

export { createNamespaceDriver }

/**
 * Runs lab/hosts' prerequisite check (root, tools, network namespaces with nftables, overlayfs);
 * returns its message, or [] when the machine can run the lab.
 * @example const problems = [...basicProblems(), ...(await hostProblems())]
 */
export async function hostProblems(): Promise<string[]> {
  try {
    await checkHostPrerequisites()
    return []
  } catch (e) {
    return [e instanceof Error ? e.message : String(e)]
  }
}

/** The driver's own directory inside the lab's state dir (it owns and removes it). */
export function hostsStateDir(stateDir: string): string {
  return join(stateDir, 'hosts')
}

/** The checks that need no tools: root and network namespaces. */
export function basicProblems(): string[] {
  const problems: string[] = []
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    problems.push('the lab needs root (it creates network namespaces, veths and nftables tables)')
  if (!existsSync('/proc/self/ns/net'))
    problems.push('this kernel has no network namespaces (/proc/self/ns/net is missing)')
  return problems
}
