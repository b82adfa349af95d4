/**
 * Loads the lab's real hosts (lab/hosts, written alongside this API) at run time, so the API also
 * builds and its shape tests run where lab/hosts is absent or cannot work (no root, no netns).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { HostDriver } from '../driver.ts'

const HOSTS_ENTRY = new URL('../hosts/index.ts', import.meta.url)

/** What lab/hosts/index.ts exports that the API uses. */
export interface HostsModule {
  createNamespaceDriver(opts: {
    stateDir: string
    aptMirror?: string
    log?: (line: string) => void
  }): HostDriver
  /** Throws, listing every problem, when the machine cannot run lab hosts: no root, no netns, ... */
  checkHostPrerequisites?: () => Promise<void>
}

function isHostsModule(m: unknown): m is HostsModule {
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof (m as { createNamespaceDriver?: unknown }).createNamespaceDriver === 'function'
  )
}

/** True when lab/hosts/index.ts exists in this tree. */
export function hostsAvailable(): boolean {
  return existsSync(fileURLToPath(HOSTS_ENTRY))
}

/**
 * Import lab/hosts; throws a clear error when it is missing or does not export a driver.
 * @example const hosts = await loadHosts(); const driver = hosts.createNamespaceDriver({ stateDir })
 */
export async function loadHosts(): Promise<HostsModule> {
  if (!hostsAvailable())
    throw new Error(`the lab's hosts are not available: ${fileURLToPath(HOSTS_ENTRY)} is missing`)
  const mod: unknown = await import(HOSTS_ENTRY.href)
  if (!isHostsModule(mod))
    throw new Error(`${fileURLToPath(HOSTS_ENTRY)} does not export createNamespaceDriver`)
  return mod
}

/**
 * Run lab/hosts' prerequisite check (root, tools, network namespaces with nftables, overlayfs);
 * returns its message, or [] when the machine can run the lab.
 */
export async function hostProblems(hosts: HostsModule): Promise<string[]> {
  const check = hosts.checkHostPrerequisites
  if (check === undefined) return basicProblems()
  try {
    await check()
    return []
  } catch (e) {
    return [e instanceof Error ? e.message : String(e)]
  }
}

/** The driver's own directory inside the lab's state dir (it owns and removes it). */
export function hostsStateDir(stateDir: string): string {
  return join(stateDir, 'hosts')
}

/** The checks the API can make itself: root and network namespaces. */
export function basicProblems(): string[] {
  const problems: string[] = []
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    problems.push('the lab needs root (it creates network namespaces, veths and nftables tables)')
  if (!existsSync('/proc/self/ns/net'))
    problems.push('this kernel has no network namespaces (/proc/self/ns/net is missing)')
  return problems
}
