/**
 * Whether kernel VMs (k1.*) run under KVM or in software emulation (TCG). A machine that is itself
 * a VM may have `/dev/kvm` while nested guests hang without a word, so KVM is used only when a probe
 * proved here that a KVM guest really boots: the k1 kernel and initramfs, started under KVM with a
 * bounded wait for the initramfs to say it runs. The result is cached next to the images, keyed by
 * what it depends on (machine kernel, QEMU, guest kernel), so a machine is probed once.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import { release } from 'node:os'
import { basename, join } from 'node:path'
import { writeFileAtomic } from '../api/store.ts'
import type { KernelDisk } from '../images/kernel.ts'
import { run } from './exec.ts'

/** How QEMU executes a kernel VM's CPU. */
export type Accel = 'kvm' | 'tcg'

/** The lab's choice of accelerator for kernel VMs, as cached and shown by `runbook lab status`. */
export interface AccelChoice {
  accel: Accel
  /** Why, for a human: `KVM guest booted in 1.4 s`, `no /dev/kvm`, `KVM guest silent for 15 s`. */
  reason: string
  /** What the answer depends on; another key means probing again. */
  key: string
  /** When the probe ran (ISO time). */
  probedAt: string
}

/** What one probe saw. */
export interface ProbeOutcome {
  booted: boolean
  /** Why not, or how long the boot took. */
  detail: string
}

/** What {@link chooseAccel} decides from. */
export interface AccelInputs {
  /** null when /dev/kvm can be used, else why not (no probe then). */
  kvmUnusable: string | null
  key: string
  /** The cached choice, if any. */
  cached: AccelChoice | null
  /** Boots a KVM guest, bounded in time. */
  probe: () => Promise<ProbeOutcome>
  now?: () => Date
}

/**
 * Decides KVM or TCG: TCG without a usable /dev/kvm; the cached answer when its key still holds;
 * otherwise whatever a probe shows (KVM only when the guest booted). `probed` says whether the
 * answer is new (the caller caches it).
 * @example const { choice } = await chooseAccel({ kvmUnusable: null, key, cached: null, probe })
 */
export async function chooseAccel(
  i: AccelInputs,
): Promise<{ choice: AccelChoice; probed: boolean }> {
  const now = (i.now ?? (() => new Date()))().toISOString()
  if (i.kvmUnusable !== null)
    return {
      choice: { accel: 'tcg', reason: i.kvmUnusable, key: i.key, probedAt: now },
      probed: false,
    }
  if (i.cached !== null && i.cached.key === i.key) return { choice: i.cached, probed: false }
  const outcome = await i.probe()
  return {
    choice: {
      accel: outcome.booted ? 'kvm' : 'tcg',
      reason: outcome.booted ? `KVM guest booted in ${outcome.detail}` : outcome.detail,
      key: i.key,
      probedAt: now,
    },
    probed: true,
  }
}

/** One line for logs and `runbook lab status`. */
export function describeAccel(c: AccelChoice): string {
  const how = c.accel === 'kvm' ? 'KVM' : 'TCG (software emulation)'
  return `kernel VMs (k1.*): ${how}: ${c.reason} (decided ${c.probedAt})`
}

/** The cache file of the choice in an image cache directory. */
export function accelCacheFile(imageCacheDir: string): string {
  return join(imageCacheDir, 'kvm-probe.json')
}

/** The cached choice, or null when no probe ran on this machine yet (or the file is unreadable). */
export async function readAccelChoice(imageCacheDir: string): Promise<AccelChoice | null> {
  try {
    const v = JSON.parse(await readFile(accelCacheFile(imageCacheDir), 'utf8')) as Partial<
      Record<keyof AccelChoice, unknown>
    >
    if ((v.accel === 'kvm' || v.accel === 'tcg') && typeof v.key === 'string')
      return {
        accel: v.accel,
        reason: String(v.reason),
        key: v.key,
        probedAt: String(v.probedAt),
      }
  } catch {
    // no probe yet
  }
  return null
}

/** Why /dev/kvm cannot be used, or null. */
async function kvmUnusable(): Promise<string | null> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK)
    return null
  } catch (e) {
    return `no usable /dev/kvm (${(e as NodeJS.ErrnoException).code ?? String(e)})`
  }
}

/** The netns the probe runs in: no network, but teardown's sweep of rbl* namespaces ends a stray probe. */
const PROBE_NETNS = 'rbl-kvm-probe'
/** What the initramfs prints when the kernel command line asks for a probe. */
export const PROBE_MARKER = 'runbook lab kvm probe: ok'

/**
 * Boots the k1 kernel and initramfs under KVM (no disk, no network) and waits at most `timeoutMs`
 * for the initramfs's marker on the serial console; the QEMU process is killed in any case.
 */
export async function probeKvm(kernel: KernelDisk, timeoutMs: number): Promise<ProbeOutcome> {
  await run('ip', ['netns', 'add', PROBE_NETNS], { allowFail: true })
  const t0 = Date.now()
  try {
    return await new Promise<ProbeOutcome>((resolve) => {
      const child = spawn(
        'nsenter',
        [
          `--net=/run/netns/${PROBE_NETNS}`,
          '--',
          'qemu-system-x86_64',
          ...['-name', PROBE_NETNS, '-M', 'q35', '-accel', 'kvm', '-cpu', 'host'],
          ...['-smp', '1', '-m', '128', '-nodefaults', '-no-user-config', '-display', 'none'],
          ...[
            '-no-reboot',
            '-serial',
            'stdio',
            '-kernel',
            kernel.vmlinuz,
            '-initrd',
            kernel.initrd,
          ],
          ...['-append', 'console=ttyS0 quiet panic=-1 runbook.kvmprobe'],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let out = ''
      let err = ''
      const finish = (o: ProbeOutcome) => {
        clearTimeout(timer)
        child.kill('SIGKILL')
        resolve(o)
      }
      const timer = setTimeout(
        () =>
          finish({
            booted: false,
            detail: `a KVM guest gave no sign of life within ${Math.round(timeoutMs / 1000)} s (nested KVM?)`,
          }),
        timeoutMs,
      )
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString('utf8')
        if (out.includes(PROBE_MARKER))
          finish({ booted: true, detail: `${((Date.now() - t0) / 1000).toFixed(1)} s` })
      })
      child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')))
      child.on('error', (e) =>
        finish({ booted: false, detail: `QEMU did not start: ${e.message}` }),
      )
      child.on('close', (code) =>
        finish({
          booted: false,
          detail: `QEMU with KVM exited (${String(code)}) before the guest ran: ${err.trim().split('\n')[0] ?? ''}`,
        }),
      )
    })
  } finally {
    // SIGKILL ends even a guest stuck in KVM; the namespace goes once nothing runs in it
    for (let i = 0; i < 100; i++) {
      if (
        (await run('ip', ['netns', 'pids', PROBE_NETNS], { allowFail: true })).stdout.trim() === ''
      )
        break
      await new Promise((r) => setTimeout(r, 50))
    }
    await run('ip', ['netns', 'del', PROBE_NETNS], { allowFail: true })
  }
}

/** What the choice depends on: the machine's kernel, QEMU's version and the guest's boot files. */
async function probeKey(kernel: KernelDisk): Promise<string> {
  const qemu = await run('qemu-system-x86_64', ['--version'], { allowFail: true })
  const version = /version (\S+)/.exec(qemu.stdout)?.[1] ?? 'unknown'
  return `host ${release()}, qemu ${version}, guest ${kernel.release} (${basename(kernel.dir)})`
}

/**
 * The accelerator for kernel VMs on this machine: cached, else probed (bounded by `timeoutMs`,
 * default 15 s; a KVM boot to the initramfs takes 1–3 s) and cached in the image cache directory.
 * @example const c = await kernelAccel({ imageCacheDir, kernel }); qemuArgs({ ..., accel: c.accel })
 */
export async function kernelAccel(o: {
  imageCacheDir: string
  kernel: KernelDisk
  timeoutMs?: number
  log?: (line: string) => void
}): Promise<AccelChoice> {
  const timeoutMs = o.timeoutMs ?? 15_000
  const { choice, probed } = await chooseAccel({
    kvmUnusable: await kvmUnusable(),
    key: await probeKey(o.kernel),
    cached: await readAccelChoice(o.imageCacheDir),
    probe: () => {
      o.log?.(
        `kernel VMs: probing KVM (a guest boot of at most ${timeoutMs / 1000} s, once per machine)`,
      )
      return probeKvm(o.kernel, timeoutMs)
    },
  })
  if (probed)
    await writeFileAtomic(
      accelCacheFile(o.imageCacheDir),
      `${JSON.stringify(choice, null, 2)}\n`,
      0o644,
    )
  o.log?.(describeAccel(choice))
  return choice
}
