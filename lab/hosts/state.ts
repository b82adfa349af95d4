import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import type { LabPort, VmKind } from '../driver.ts'

const portSchema = z.object({
  id: z.string(),
  mac: z.string(),
  fixedIps: z.array(z.string()),
  allowedAddressPairs: z.array(
    z.object({ ipAddress: z.string(), macAddress: z.string().optional() }),
  ),
  securityGroupIds: z.array(z.string()),
  portSecurityEnabled: z.boolean(),
  deviceId: z.string().nullable(),
})

const recordSchema = z.object({
  id: z.string(),
  short: z.string().regex(/^[0-9a-f]{8}$/),
  name: z.string(),
  hostname: z.string(),
  defaultUser: z.string(),
  // records of labs from before images and kernel VMs boot the same as then
  image: z.string().default('debian-12'),
  kind: z.enum(['namespace', 'kernel']).default('namespace'),
  ramMb: z.number().int().positive().default(192),
  authorizedKeys: z.array(z.string()),
  /** The VM's port as last seen (the spec's, then each snapshot's): rules fall back to it. */
  port: portSchema,
  /** Byte offset in the console log where the latest boot starts. */
  bootOffset: z.number().int().nonnegative(),
  createdAt: z.string(),
})

/** What the driver records of one VM, so that a fresh driver (after a crash) knows it. */
export interface VmRecord {
  id: string
  short: string
  name: string
  hostname: string
  defaultUser: string
  /** Image key (lab/images). */
  image: string
  kind: VmKind
  ramMb: number
  authorizedKeys: string[]
  port: LabPort
  bootOffset: number
  createdAt: string
}

/** Where one VM's files live under the driver's state directory. */
export interface VmPaths {
  dir: string
  record: string
  console: string
  seed: string
  /** Mount point of the VM's disk (a tmpfs). */
  disk: string
}

/** The paths of a VM's files. */
export function vmPaths(stateDir: string, short: string): VmPaths {
  const dir = join(stateDir, 'vms', short)
  return {
    dir,
    record: join(dir, 'vm.json'),
    console: join(dir, 'console.log'),
    seed: join(dir, 'seed'),
    disk: join(dir, 'disk'),
  }
}

/** Writes a file so that a crash leaves either the old or the new content, never a torn one. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, content, { mode: 0o600 })
  await rename(tmp, path)
}

/** Persists a VM record. */
export async function saveRecord(stateDir: string, rec: VmRecord): Promise<void> {
  const p = vmPaths(stateDir, rec.short)
  await mkdir(p.dir, { recursive: true })
  await writeFileAtomic(p.record, `${JSON.stringify(rec, null, 2)}\n`)
}

/** Every VM record under the state directory; unreadable ones are skipped (teardown still finds their names). */
export async function loadRecords(stateDir: string): Promise<VmRecord[]> {
  let shorts: string[]
  try {
    shorts = await readdir(join(stateDir, 'vms'))
  } catch {
    return []
  }
  const out: VmRecord[] = []
  for (const short of shorts.sort()) {
    try {
      const raw: unknown = JSON.parse(await readFile(vmPaths(stateDir, short).record, 'utf8'))
      const parsed = recordSchema.safeParse(raw)
      if (parsed.success) out.push(parsed.data)
    } catch {
      // a VM whose record was never written completely: only its names remain to clean up
    }
  }
  return out
}

/** Removes a VM's directory (console log, seed, record); its disk must be unmounted first. */
export async function removeVmFiles(stateDir: string, short: string): Promise<void> {
  await rm(vmPaths(stateDir, short).dir, { recursive: true, force: true })
}
