import { mkdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { HostDriver, LabPort, NetworkSnapshot, VmBoot, VmSpec } from '../driver.ts'
import { DEFAULT_IMAGE_CACHE, imageStore, type KernelDisk } from '../images/index.ts'
import { run } from './exec.ts'
import { describeAccel, kernelAccel, readAccelChoice, type AccelChoice } from './kvm-probe.ts'
import { bootKernelVm, destroyKernelVm, qemuPid, stopKernelVm } from './qemu.ts'
import { renderRuleset, type PortBinding } from './nft-rules.ts'
import { ROUTER_NETNS, shortId, vmNames } from './names.ts'
import { assertNotOthers, claimLab, reapOthers, releaseLab } from './owner.ts'
import { checkHostPrerequisites } from './prerequisites.ts'
import {
  ensureRouter,
  listNetns,
  routerExists,
  syncFloatingAddresses,
  tenantSubnet,
  type TenantSubnet,
} from './router.ts'
import { loadRecords, saveRecord, vmPaths, type VmRecord } from './state.ts'
import { teardownHosts } from './teardown.ts'
import {
  attachVmPort,
  bootVm,
  configureVmNetwork,
  destroyVm,
  detachVmPort,
  ensureDisk,
  ensureVmNetns,
  killVmProcesses,
  validateSpec,
  vmInitPid,
  writeSeed,
  type BootOptions,
} from './vm.ts'

export { checkHostPrerequisites } from './prerequisites.ts'
export { renderRuleset } from './nft-rules.ts'
export { vmInitPid } from './vm.ts'
export { describeAccel, kernelAccel, readAccelChoice, type AccelChoice } from './kvm-probe.ts'
export { shortId, vmNames } from './names.ts'
export { labOwner, reapStaleLab, type LabOwner } from './owner.ts'

/** Options of {@link createNamespaceDriver}. */
export interface NamespaceDriverOptions {
  /** Where the driver keeps VM records, console logs and disks' mount points; owned by the driver. */
  stateDir: string
  /**
   * Host key types made on a VM's first boot (default ecdsa and ed25519; add 'rsa' for Ubuntu's
   * full set, at about 2–6 s of CPU per VM on this machine kind).
   */
  hostKeyTypes?: ('rsa' | 'ecdsa' | 'ed25519')[]
  /**
   * SysV services a VM starts at boot when they are enabled in it (default keepalived, which does
   * nothing without a config, as on Ubuntu); sshd always runs. The machine's other services
   * (postgresql, dbus, ...) are not started in VMs.
   */
  bootServices?: string[]
  /** tmpfs size limit of each VM's disk (the overlay's upper layer), default '1g'. */
  diskSize?: string
  /** How long a VM may take to boot before createVm/startVm fail (default 60 s). */
  bootTimeoutMs?: number
  /** How long stopVm lets the VM's services end on SIGTERM before it kills the VM (default 2 s). */
  stopGraceMs?: number
  /**
   * The lab's package mirror (a flat repository, e.g. `http://198.51.100.1:8781/debian`): at first
   * boot a VM's apt uses it and nothing else. Unset: apt in the VM is configured as on the machine.
   */
  aptMirror?: string
  /** Where images are built and cached (default RUNBOOK_LAB_IMAGE_DIR or /var/cache/runbook-lab/images). */
  imageCacheDir?: string
  /** How long a kernel VM (k1.*) may take until sshd answers (default 300 s: emulated, and slower on a loaded machine). */
  kernelBootTimeoutMs?: number
  /** Progress lines (image builds) and the kernel VMs' accelerator (KVM or TCG, and why). */
  log?: (line: string) => void
}

const MIRROR_URL = /^http:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~-]+)*\/?$/

/** A promise chain per key, so that work on one VM (or on the network) never interleaves. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, f: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve()
    const next = prev.then(f, f)
    const tail = next.catch(() => undefined)
    this.tails.set(key, tail)
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key)
    })
    return next
  }
}

const NET = '\0network'

/**
 * The lab's host side on this machine: each VM is a set of Linux namespaces (network with `ens3`
 * on the tenant bridge, PID, mount with an overlay root, UTS, IPC) running its own sshd; a router
 * namespace holds the bridge, the gateway and floating-IP NAT; nftables enforces port security.
 * Needs root (see {@link checkHostPrerequisites}).
 * @example
 * const driver = createNamespaceDriver({ stateDir: '/var/lib/runbook-lab/hosts' })
 * await driver.init(snapshot)
 * const { consoleLog } = await driver.createVm(spec, snapshot)
 */
export function createNamespaceDriver(opts: NamespaceDriverOptions): HostDriver {
  if (opts.aptMirror !== undefined && !MIRROR_URL.test(opts.aptMirror))
    throw new Error(`lab hosts: '${opts.aptMirror}' is not an http URL of a package mirror`)
  const imageCacheDir =
    opts.imageCacheDir ?? process.env['RUNBOOK_LAB_IMAGE_DIR'] ?? DEFAULT_IMAGE_CACHE
  const boot: BootOptions = {
    stateDir: opts.stateDir,
    bootScript: fileURLToPath(new URL('./vm-boot.sh', import.meta.url)),
    keyTypes: opts.hostKeyTypes ?? ['ecdsa', 'ed25519'],
    bootServices: (opts.bootServices ?? ['keepalived']).filter((s) => /^[a-zA-Z0-9_.-]+$/.test(s)),
    diskSize: opts.diskSize ?? '1g',
    bootTimeoutMs: opts.bootTimeoutMs ?? 60_000,
    aptMirror: opts.aptMirror ?? null,
    images: imageStore({
      cacheDir: imageCacheDir,
      ...(opts.log !== undefined ? { log: opts.log } : {}),
    }),
    kernelBootTimeoutMs: opts.kernelBootTimeoutMs ?? 300_000,
  }
  const guestBoot = fileURLToPath(new URL('./guest-boot.sh', import.meta.url))
  const stopGraceMs = opts.stopGraceMs ?? 2_000
  const lock = new KeyedLock()
  const records = new Map<string, VmRecord>()
  let loaded: Promise<void> | null = null
  let subnet: TenantSubnet | null = null
  let checked = false
  let accel: Promise<AccelChoice> | null = null
  /** KVM or TCG for kernel VMs: decided once per driver (a probe once per machine). */
  const accelFor = (kernel: KernelDisk): Promise<AccelChoice> => {
    if (accel === null) {
      const p = kernelAccel({ imageCacheDir, kernel, ...(opts.log ? { log: opts.log } : {}) })
      accel = p
      p.catch(() => {
        if (accel === p) accel = null
      })
    }
    return accel
  }

  const load = (): Promise<void> => {
    loaded ??= loadRecords(opts.stateDir).then((recs) => {
      for (const r of recs) if (!records.has(r.id)) records.set(r.id, r)
    })
    return loaded
  }

  const record = async (id: string): Promise<VmRecord> => {
    await load()
    const rec = records.get(id)
    if (rec === undefined) throw new Error(`lab hosts: no VM ${id} on this machine`)
    return rec
  }

  /** Writes the ruleset and floating addresses for all known VMs; the snapshot's ports win over remembered ones. */
  const applyNetwork = (snapshot: NetworkSnapshot): Promise<void> =>
    lock.run(NET, async () => {
      await load()
      await assertNotOthers(opts.stateDir, 'change the network')
      if (!(await routerExists()))
        throw new Error('lab hosts: the lab router is missing; call init() first')
      const bindings: PortBinding[] = []
      for (const rec of records.values()) {
        const port = snapshot.ports.find((p) => p.id === rec.port.id)
        if (port !== undefined && JSON.stringify(port) !== JSON.stringify(rec.port)) {
          rec.port = port
          await saveRecord(opts.stateDir, rec)
        }
        bindings.push({ veth: vmNames(rec.short).veth, port: port ?? rec.port })
      }
      await run('nsenter', [`--net=/run/netns/${ROUTER_NETNS}`, 'nft', '-f', '-'], {
        input: renderRuleset(snapshot, bindings),
      })
      await syncFloatingAddresses(snapshot)
    })

  const currentSubnet = (): TenantSubnet =>
    subnet ?? { network: '192.0.2.0', prefixLen: 24, gateway: '192.0.2.1' }

  const isRunning = async (rec: VmRecord): Promise<boolean> =>
    rec.kind === 'kernel'
      ? (await qemuPid(opts.stateDir, rec.short)) !== null
      : (await vmInitPid(vmNames(rec.short).netns)) !== null

  /** Network, disk and boot of a VM that is not running; returns this boot's console. */
  const powerOn = async (rec: VmRecord, port: LabPort): Promise<string> => {
    if (rec.kind === 'kernel') {
      // the image (and its kernel disk) first: a first use builds it, which is not part of the boot
      const kernel = await boot.images.kernel(rec.image)
      await writeSeed(boot, rec, currentSubnet())
      rec.bootOffset = await consoleSize(rec)
      await saveRecord(opts.stateDir, rec)
      return bootKernelVm({
        stateDir: opts.stateDir,
        rec,
        kernel,
        guestBoot,
        timeoutMs: boot.kernelBootTimeoutMs,
        accel: (await accelFor(kernel)).accel,
      })
    }
    await boot.images.root(rec.image)
    const names = vmNames(rec.short)
    await ensureVmNetns(names, port)
    await configureVmNetwork(names, port, currentSubnet())
    await attachVmPort(names)
    await ensureDisk(boot, names)
    await writeSeed(boot, rec, currentSubnet())
    rec.bootOffset = await consoleSize(rec)
    await saveRecord(opts.stateDir, rec)
    return bootVm(boot, rec)
  }

  const consoleSize = async (rec: VmRecord): Promise<number> =>
    (await readFile(vmPaths(opts.stateDir, rec.short).console).catch(() => Buffer.alloc(0))).length

  const latestBoot = async (rec: VmRecord): Promise<string> =>
    (await readFile(vmPaths(opts.stateDir, rec.short).console).catch(() => Buffer.alloc(0)))
      .subarray(rec.bootOffset)
      .toString('utf8')

  return {
    async init(snapshot: NetworkSnapshot): Promise<void> {
      if (!checked) {
        await checkHostPrerequisites()
        checked = true
      }
      subnet = tenantSubnet(snapshot)
      const known = await readAccelChoice(imageCacheDir)
      opts.log?.(
        known === null
          ? 'kernel VMs (k1.*): KVM or TCG is decided by a probe at the first k1 server'
          : describeAccel(known),
      )
      await mkdir(opts.stateDir, { recursive: true, mode: 0o700 })
      await claimLab(opts.stateDir)
      await load()
      await lock.run(NET, () => ensureRouter(currentSubnet()))
      await applyNetwork(snapshot)
    },

    createVm(spec: VmSpec, snapshot: NetworkSnapshot): Promise<VmBoot> {
      return lock.run(spec.id, async () => {
        await load()
        await assertNotOthers(opts.stateDir, 'create a VM')
        subnet ??= tenantSubnet(snapshot)
        const existing = records.get(spec.id)
        if (existing !== undefined && (await isRunning(existing))) {
          return { consoleLog: await latestBoot(existing) }
        }
        const short = shortId(spec.id)
        const clash = [...records.values()].find((r) => r.short === short && r.id !== spec.id)
        if (clash !== undefined)
          throw new Error(
            `lab hosts: VM ids ${spec.id} and ${clash.id} share the short name ${short}`,
          )
        const rec: VmRecord = {
          id: spec.id,
          short,
          name: spec.name,
          hostname: spec.hostname,
          defaultUser: spec.defaultUser,
          image: spec.image,
          kind: spec.kind,
          ramMb: spec.ramMb,
          authorizedKeys: spec.authorizedKeys,
          port: spec.port,
          bootOffset: existing?.bootOffset ?? 0,
          createdAt: existing?.createdAt ?? new Date().toISOString(),
        }
        validateSpec(rec)
        await saveRecord(opts.stateDir, rec)
        records.set(rec.id, rec)
        const port = snapshot.ports.find((p) => p.id === spec.port.id) ?? spec.port
        // the veth comes up only after its port's rules exist (a kernel VM's tap: at its boot)
        if (rec.kind === 'namespace') await ensureVmNetns(vmNames(short), port)
        await applyNetwork(
          snapshot.ports.some((p) => p.id === spec.port.id)
            ? snapshot
            : { ...snapshot, ports: [...snapshot.ports, spec.port] },
        )
        await powerOn(rec, port)
        return { consoleLog: await latestBoot(rec) }
      })
    },

    deleteVm(id: string): Promise<void> {
      return lock.run(id, async () => {
        await load()
        const short = records.get(id)?.short ?? shortId(id)
        records.delete(id)
        await destroyKernelVm(opts.stateDir, short)
        // under the network lock: a concurrent sync must not write the record back into a removed directory
        await lock.run(NET, () => destroyVm(opts.stateDir, short))
      })
    },

    stopVm(id: string): Promise<void> {
      return lock.run(id, async () => {
        const rec = await record(id)
        if (rec.kind === 'kernel') return stopKernelVm(opts.stateDir, rec.short, stopGraceMs)
        const names = vmNames(rec.short)
        if (!(await listNetns()).includes(names.netns)) return
        await killVmProcesses(names.netns, stopGraceMs)
        await detachVmPort(names)
      })
    },

    startVm(id: string): Promise<VmBoot> {
      return lock.run(id, async () => {
        const rec = await record(id)
        if (await isRunning(rec)) return { consoleLog: await latestBoot(rec) }
        await assertNotOthers(opts.stateDir, 'start a VM')
        return { consoleLog: await powerOn(rec, rec.port) }
      })
    },

    syncNetwork(snapshot: NetworkSnapshot): Promise<void> {
      return applyNetwork(snapshot)
    },

    async consoleLog(id: string): Promise<string> {
      const rec = await record(id)
      return readFile(vmPaths(opts.stateDir, rec.short).console, 'utf8')
    },

    teardown(): Promise<void> {
      return lock.run(NET, async () => {
        await assertNotOthers(opts.stateDir, 'tear down the lab')
        await reapOthers(opts.stateDir)
        await teardownHosts(opts.stateDir)
        await releaseLab()
        records.clear()
        loaded = null
      })
    },
  }
}
