/**
 * Kernel VMs (k1.* flavors): the image booted by QEMU with Debian's own kernel, under KVM where a
 * probe proved it works (kvm-probe.ts), else in software emulation (TCG; nested KVM hangs on this
 * machine kind). The VM's NIC is a tap named like a
 * namespace VM's bridge port (`rblv-<short>`) on the lab bridge, so the same nftables rules (IP
 * source guard, allowed address pairs, security groups) and floating IPs apply unchanged. QEMU runs
 * in the router's network namespace, where the bridge is; teardown kills it with that namespace.
 */
import { existsSync } from 'node:fs'
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import type { KernelDisk } from '../images/kernel.ts'
import type { Accel } from './kvm-probe.ts'
import { run } from './exec.ts'
import { BRIDGE, ROUTER_NETNS, vmNames } from './names.ts'
import { vmPaths, type VmRecord } from './state.ts'
import { fileSize } from './vm.ts'

/** Files of one kernel VM, next to its record. */
export function qemuPaths(stateDir: string, short: string) {
  const dir = vmPaths(stateDir, short).dir
  return {
    disk: join(dir, 'disk.qcow2'),
    pid: join(dir, 'qemu.pid'),
    qmp: join(dir, 'qmp.sock'),
    ready: join(dir, 'ready.log'),
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The QEMU process of a kernel VM, or null when it does not run. */
export async function qemuPid(stateDir: string, short: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(qemuPaths(stateDir, short).pid, 'utf8')).trim())
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    return cmd.includes(`rbl-vm-${short}`) ? pid : null
  } catch {
    return null
  }
}

/** The command line of a kernel VM; `seedDir` holds the config drive passed as fw_cfg files. */
export function qemuArgs(o: {
  short: string
  ramMb: number
  kernel: KernelDisk
  disk: string
  console: string
  ready: string
  mac: string
  seedFiles: string[]
  seedDir: string
  guestBoot: string
  qmp: string
  pidFile: string
  /** KVM only where kvm-probe.ts proved that a KVM guest runs on this machine. */
  accel: Accel
}): string[] {
  const names = vmNames(o.short)
  return [
    '-name',
    names.netns,
    '-M',
    'q35',
    // TCG's default translation cache is 1 GiB and gets touched: 32 MB keeps a VM near 200 MB
    '-accel',
    o.accel === 'kvm' ? 'kvm' : 'tcg,tb-size=32',
    '-cpu',
    o.accel === 'kvm' ? 'host' : 'max',
    '-smp',
    '1',
    '-m',
    String(o.ramMb),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-chardev',
    `file,id=con,path=${o.console},append=on`,
    '-serial',
    'chardev:con',
    '-chardev',
    `file,id=rdy,path=${o.ready}`,
    '-serial',
    'chardev:rdy',
    '-kernel',
    o.kernel.vmlinuz,
    '-initrd',
    o.kernel.initrd,
    '-append',
    // init_on_alloc=0: Debian zeroes pages on allocation, which makes every guest page resident
    'console=ttyS0 quiet loglevel=3 net.ifnames=0 biosdevname=0 tsc=reliable no_timer_check mitigations=off init_on_alloc=0 panic=-1',
    '-drive',
    `file=${o.disk},if=none,id=d0,format=qcow2,cache=unsafe,discard=unmap`,
    '-device',
    'virtio-blk-pci,drive=d0',
    '-netdev',
    `tap,id=n0,ifname=${names.veth},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=n0,mac=${o.mac}`,
    '-device',
    'virtio-rng-pci',
    '-device',
    'virtio-balloon-pci,free-page-reporting=on',
    ...o.seedFiles.flatMap((f) => [
      '-fw_cfg',
      `name=opt/runbook/seed/${f},file=${join(o.seedDir, f)}`,
    ]),
    '-fw_cfg',
    `name=opt/runbook/guest-boot,file=${o.guestBoot}`,
    '-qmp',
    `unix:${o.qmp},server=on,wait=off`,
    '-daemonize',
    '-pidfile',
    o.pidFile,
  ]
}

/** Makes the VM's tap on the lab bridge, in hairpin mode (idempotent); it comes up with the VM. */
async function ensureTap(short: string): Promise<void> {
  const { veth } = vmNames(short)
  const shown = await run('ip', ['-n', ROUTER_NETNS, 'link', 'show', 'dev', veth], {
    allowFail: true,
  })
  if (shown.code !== 0)
    await run('ip', ['-n', ROUTER_NETNS, 'tuntap', 'add', 'dev', veth, 'mode', 'tap'])
  await run('ip', ['-n', ROUTER_NETNS, 'link', 'set', veth, 'master', BRIDGE, 'up'])
  // as a namespace VM's port (vm.ts attachVmPort): the hairpin of its own floating IP
  await run('ip', [
    '-n',
    ROUTER_NETNS,
    'link',
    'set',
    veth,
    'type',
    'bridge_slave',
    'hairpin',
    'on',
  ])
}

/**
 * Boots a kernel VM and waits until its init says sshd listens (a line on the second serial port).
 * The per-VM disk is a qcow2 overlay on the image's read-only base, made once and kept across
 * stop/start, so host keys and installed packages stay. Returns what this boot wrote to the console.
 */
export async function bootKernelVm(o: {
  stateDir: string
  rec: VmRecord
  kernel: KernelDisk
  guestBoot: string
  timeoutMs: number
  accel: Accel
}): Promise<string> {
  const { rec } = o
  const p = vmPaths(o.stateDir, rec.short)
  const q = qemuPaths(o.stateDir, rec.short)
  if (!existsSync(q.disk))
    await run('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-F',
      'qcow2',
      '-b',
      o.kernel.base,
      q.disk,
    ])
  await ensureTap(rec.short)
  await rm(q.ready, { force: true })
  await rm(q.qmp, { force: true })
  await writeFile(q.ready, '')
  const offset = await fileSize(p.console)
  const args = qemuArgs({
    short: rec.short,
    ramMb: rec.ramMb,
    kernel: o.kernel,
    disk: q.disk,
    console: p.console,
    ready: q.ready,
    mac: rec.port.mac.toLowerCase(),
    seedFiles: (await readdir(p.seed)).sort(),
    seedDir: p.seed,
    guestBoot: o.guestBoot,
    qmp: q.qmp,
    pidFile: q.pid,
    accel: o.accel,
  })
  await run('nsenter', [`--net=/run/netns/${ROUTER_NETNS}`, '--', 'qemu-system-x86_64', ...args], {
    timeoutMs: 30_000,
  })
  const until = Date.now() + o.timeoutMs
  for (;;) {
    if ((await readFile(q.ready, 'utf8').catch(() => '')).includes('ready')) break
    const pid = await qemuPid(o.stateDir, rec.short)
    const failed =
      pid === null
        ? 'QEMU exited'
        : Date.now() > until
          ? `sshd not up within ${o.timeoutMs} ms`
          : null
    if (failed !== null) {
      await killQemu(o.stateDir, rec.short)
      const tail = (await readFile(p.console, 'utf8').catch(() => ''))
        .slice(offset)
        .split('\n')
        .slice(-15)
        .join('\n')
      throw new Error(
        `lab hosts: kernel VM ${rec.name} (${rec.id}) did not boot: ${failed}\n--- console ---\n${tail}`,
      )
    }
    await sleep(200)
  }
  return (await readFile(p.console)).subarray(offset).toString('utf8')
}

/** Sends one QMP command (after the capabilities handshake); resolves when QEMU answered it. */
function qmp(socket: string, command: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socket)
    let buf = ''
    let step = 0
    const timer = setTimeout(() => {
      c.destroy()
      reject(new Error('QMP timed out'))
    }, 5_000)
    c.on('data', (b: Buffer) => {
      buf += b.toString('utf8')
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
        buf = buf.slice(nl + 1)
        if ('QMP' in msg && step === 0) {
          step = 1
          c.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`)
        } else if ('return' in msg && step === 1) {
          step = 2
          c.write(`${JSON.stringify(command)}\n`)
        } else if (('return' in msg || 'error' in msg) && step === 2) {
          clearTimeout(timer)
          c.end()
          if ('error' in msg) reject(new Error(`QMP: ${JSON.stringify(msg['error'])}`))
          else resolve()
        }
      }
    })
    c.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (!existsSync(`/proc/${pid}`)) return true
    await sleep(50)
  }
  return !existsSync(`/proc/${pid}`)
}

/** Kills the VM's QEMU at once (a power cut). */
export async function killQemu(stateDir: string, short: string): Promise<void> {
  const pid = await qemuPid(stateDir, short)
  if (pid === null) return
  process.kill(pid, 'SIGKILL')
  await waitGone(pid, 5_000)
}

/**
 * Power-off: ctrl-alt-del through QMP, which the guest's init turns into SIGTERM to every service
 * (keepalived hands its VIP over), a sync and a power-off; QEMU is killed if the guest takes longer
 * than `graceMs` plus a few seconds of emulation. The tap goes down; the disk stays.
 */
export async function stopKernelVm(
  stateDir: string,
  short: string,
  graceMs: number,
): Promise<void> {
  const pid = await qemuPid(stateDir, short)
  if (pid !== null) {
    const keys = ['ctrl', 'alt', 'delete'].map((k) => ({ type: 'qcode', data: k }))
    const sent = await qmp(qemuPaths(stateDir, short).qmp, {
      execute: 'send-key',
      arguments: { keys },
    }).then(
      () => true,
      () => false,
    )
    if (!sent || !(await waitGone(pid, graceMs + 8_000))) await killQemu(stateDir, short)
  }
  await run('ip', ['-n', ROUTER_NETNS, 'link', 'set', vmNames(short).veth, 'down'], {
    allowFail: true,
  })
}

/** Removes a kernel VM's QEMU and tap; its files go with the VM's directory. */
export async function destroyKernelVm(stateDir: string, short: string): Promise<void> {
  await killQemu(stateDir, short)
  await run('ip', ['-n', ROUTER_NETNS, 'link', 'del', vmNames(short).veth], { allowFail: true })
}
