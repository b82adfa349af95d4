import { readdir, readFile, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from './exec.ts'
import { LAB_PREFIX } from './names.ts'
import { listNetns } from './router.ts'
import { killVmProcesses, mountsBySource } from './vm.ts'

/**
 * PIDs of processes whose root filesystem is a lab VM's overlay (source `rbl-root-*`): VM
 * processes that left the VM's network namespace still show up here.
 */
export async function strayVmProcesses(): Promise<number[]> {
  const out: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      const info = await readFile(`/proc/${entry}/mountinfo`, 'utf8')
      if (/^\S+ \S+ \S+ \S+ \/ .* - overlay rbl-root-/m.test(info)) out.push(Number(entry))
    } catch {
      // gone, or a kernel thread
    }
  }
  return out
}

/** The machine's links named rbl*. */
export async function labLinks(): Promise<string[]> {
  const links = await run('ip', ['-o', 'link', 'show'], { allowFail: true })
  return [...links.stdout.matchAll(/^\d+: ([^:@\s]+)[:@]/gm)]
    .map((m) => m[1] ?? '')
    .filter((n) => n.startsWith(LAB_PREFIX))
}

/** The machine's nft tables named rbl*, as [family, name]. */
export async function labTables(): Promise<Array<[string, string]>> {
  const tables = await run('nft', ['list', 'tables'], { allowFail: true })
  return [...tables.stdout.matchAll(/^table (\S+) (\S+)$/gm)].flatMap(
    (m): Array<[string, string]> => (m[1] && m[2]?.startsWith(LAB_PREFIX) ? [[m[1], m[2]]] : []),
  )
}

async function killStrays(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const pids = await strayVmProcesses()
    if (pids.length === 0) return
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 30))
  }
}

/**
 * Removes everything the lab's hosts made on the machine, from what is on the machine itself (names
 * starting `rbl`, mounts under the state directory, processes in lab namespaces or on lab overlays),
 * so it works with a fresh driver after the daemon was SIGKILLed. Idempotent.
 */
export async function teardownHosts(stateDir: string | null): Promise<void> {
  const errors: string[] = []
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f()
    } catch (e) {
      errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  const labNetns = (await listNetns()).filter((n) => n.startsWith(LAB_PREFIX))
  // VMs first (their init takes the PID namespace down), then whatever else runs in a lab netns
  for (const ns of labNetns.sort(
    (a, b) => Number(b.startsWith('rbl-vm-')) - Number(a.startsWith('rbl-vm-')),
  )) {
    await attempt(`stop processes in ${ns}`, () => killVmProcesses(ns, 0))
  }
  await attempt('stop stray VM processes', killStrays)
  for (const ns of labNetns)
    await attempt(`delete netns ${ns}`, () => run('ip', ['netns', 'del', ns]))

  // a veth whose peer was in a deleted namespace goes away on its own, a little later
  for (const name of await labLinks())
    await attempt(`delete link ${name}`, async () => {
      const r = await run('ip', ['link', 'del', name], { allowFail: true })
      if (r.code !== 0 && !/Cannot find device/.test(r.stderr))
        throw new Error(`\`ip link del ${name}\` failed: ${r.stderr.trim()}`)
    })
  for (const [family, name] of await labTables())
    await attempt(`delete nft table ${family} ${name}`, () =>
      run('nft', ['delete', 'table', family, name]),
    )

  // without a state directory (a lab whose owner is unknown), only the lab's own overlay mounts
  const vmsDir = stateDir === null ? null : join(stateDir, 'vms')
  const inVms = (t: string) => vmsDir !== null && (t === vmsDir || t.startsWith(`${vmsDir}/`))
  for (const target of await mountsBySource((s, t) => s.startsWith(`${LAB_PREFIX}-`) || inVms(t))) {
    await attempt(`unmount ${target}`, () => run('umount', ['-l', target]))
  }
  const stillMounted = await mountsBySource((_s, t) => inVms(t))
  if (stillMounted.length > 0) errors.push(`still mounted: ${stillMounted.join(', ')}`)
  else if (vmsDir !== null)
    await attempt('remove VM files', () => rm(vmsDir, { recursive: true, force: true }))
  if (stateDir !== null) await rmdir(stateDir).catch(() => undefined)

  if (errors.length > 0)
    throw new Error(`lab hosts: teardown left things behind:\n  ${errors.join('\n  ')}`)
}
