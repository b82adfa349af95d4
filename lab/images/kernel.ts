/**
 * What a kernel VM (k1.* flavors, QEMU) boots: Debian's own kernel (`linux-image-6.1.0-N-amd64`,
 * fetched with `apt-get download` and unpacked with `dpkg-deb -x`, never installed), a tiny
 * initramfs of our own (busybox-static + the modules a virtio ext4 root needs), and the image's root
 * as a qcow2 disk with a trimmed module tree and the lab's init added. Cached next to the image,
 * keyed by the image's hash, the kernel package's version and the guest scripts' content.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, copyFile, cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../hosts/exec.ts'
import type { BuiltImage } from './build.ts'

const GUEST = fileURLToPath(new URL('./guest/', import.meta.url))

/** A kernel VM's boot files. */
export interface KernelDisk {
  dir: string
  vmlinuz: string
  initrd: string
  /** The read-only qcow2 base each VM's overlay is made on. */
  base: string
  /** `uname -r` of the guest (`6.1.0-41-amd64`). */
  release: string
}

/** Module trees a virtio guest needs (the rest of the 390 MB tree is hardware it never sees). */
const MODULE_DIRS = [
  'kernel/net',
  'kernel/fs',
  'kernel/lib',
  'kernel/crypto',
  'kernel/arch',
  'kernel/drivers/virtio',
  'kernel/drivers/block/virtio_blk.ko',
  'kernel/drivers/net/virtio_net.ko',
  'kernel/drivers/net/net_failover.ko',
  'kernel/drivers/net/dummy.ko',
  'kernel/drivers/net/veth.ko',
  'kernel/drivers/char/hw_random',
  'kernel/drivers/firmware/qemu_fw_cfg.ko',
]

/** Modules the initramfs loads so the root can be mounted (their dependencies come along). */
const INITRAMFS_MODULES = ['crc32c_generic', 'virtio_pci', 'virtio_blk', 'ext4']

/** The newest `linux-image-6.1.0-N-amd64` apt knows, and its candidate version. */
async function newestKernelPackage(): Promise<{ name: string; version: string }> {
  const { stdout } = await run('apt-cache', [
    'search',
    '--names-only',
    '^linux-image-6\\.1\\.0-[0-9]+-amd64$',
  ])
  const names = [...stdout.matchAll(/^(linux-image-6\.1\.0-(\d+)-amd64) /gm)]
    .map((m) => ({ name: m[1] ?? '', abi: Number(m[2]) }))
    .sort((a, b) => b.abi - a.abi)
  const best = names[0]
  if (best === undefined)
    throw new Error('no linux-image-6.1.0-*-amd64 package in apt (run apt-get update)')
  const policy = await run('apt-cache', ['policy', best.name])
  const version = /Candidate:\s*(\S+)/.exec(policy.stdout)?.[1] ?? 'unknown'
  return { name: best.name, version }
}

/** Bumped when the build steps change. */
const KERNEL_DISK_VERSION = 2

function guestScriptsHash(): string {
  const h = createHash('sha256').update(String(KERNEL_DISK_VERSION))
  for (const f of ['initramfs-init', 'runbook-lab-init']) h.update(readFileSync(join(GUEST, f)))
  return h.digest('hex').slice(0, 8)
}

/** Runs a command in a directory (apt-get download writes into the current one). */
function runIn(cwd: string, cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${String(code)}): ${err}`))
    })
  })
}

/** A newc cpio archive of a directory, gzipped (busybox's cpio can only extract). */
async function makeInitramfs(dir: string, out: string): Promise<void> {
  await run('sh', [
    '-c',
    `cd "$1" && find . | LC_ALL=C sort | bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$2"`,
    'sh',
    dir,
    out,
  ])
}

/**
 * The boot files of a kernel VM for an image, built now when the cache lacks them (download of the
 * kernel package ~60 MB the first time, then ~20 s).
 * @example const k = await ensureKernelDisk(await ensureImage(DEBIAN_12)); k.base
 */
export async function ensureKernelDisk(
  image: BuiltImage,
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<KernelDisk> {
  const pkg = await newestKernelPackage()
  const key = createHash('sha256')
    .update(`${pkg.name}=${pkg.version}:${guestScriptsHash()}`)
    .digest('hex')
    .slice(0, 8)
  const dir = join(image.dir, `k1-${key}`)
  const done = join(dir, 'release')
  if (existsSync(done)) {
    const release = readFileSync(done, 'utf8').trim()
    return k(dir, release)
  }
  const started = Date.now()
  log(`image ${image.recipe.name}: building the kernel VM disk (${pkg.name} ${pkg.version})`)
  const tmp = join(image.dir, `.k1-${key}-${process.pid}`)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(join(tmp, 'debs'), { recursive: true })
  try {
    await runIn(
      join(tmp, 'debs'),
      'apt-get',
      ['download', '-q', `${pkg.name}=${pkg.version}`, 'busybox-static'],
      10 * 60_000,
    )
    const debs = await readdir(join(tmp, 'debs'))
    const kdeb = debs.find((f) => f.startsWith('linux-image-'))
    const bdeb = debs.find((f) => f.startsWith('busybox-static'))
    if (kdeb === undefined || bdeb === undefined)
      throw new Error(`apt-get download gave ${debs.join(', ')}`)
    await run('dpkg-deb', ['-x', join(tmp, 'debs', kdeb), join(tmp, 'kernel')])
    await run('dpkg-deb', ['-x', join(tmp, 'debs', bdeb), join(tmp, 'busybox')])
    const release = (await readdir(join(tmp, 'kernel/lib/modules')))[0]
    if (release === undefined) throw new Error('the kernel package has no modules')
    const out = join(tmp, 'out')
    await mkdir(out)
    await copyFile(join(tmp, 'kernel/boot', `vmlinuz-${release}`), join(out, 'vmlinuz'))

    // the disk: the image's root, the trimmed modules (depmod run by the image's own kmod), our init
    const root = join(tmp, 'root')
    await run('cp', ['-a', image.root, root], { timeoutMs: 5 * 60_000 })
    const src = join(tmp, 'kernel/lib/modules', release)
    const dst = join(root, 'lib/modules', release)
    await mkdir(join(dst, 'kernel/drivers/block'), { recursive: true })
    for (const d of ['kernel/drivers/net', 'kernel/drivers/char', 'kernel/drivers/firmware'])
      await mkdir(join(dst, d), { recursive: true })
    for (const m of MODULE_DIRS)
      if (existsSync(join(src, m))) await cp(join(src, m), join(dst, m), { recursive: true })
    for (const f of await readdir(src))
      if (f.startsWith('modules.order') || f.startsWith('modules.builtin'))
        await copyFile(join(src, f), join(dst, f))
    await run('chroot', [root, 'depmod', '-a', release])
    await copyFile(join(GUEST, 'runbook-lab-init'), join(root, 'usr/local/sbin/runbook-lab-init'))
    await chmod(join(root, 'usr/local/sbin/runbook-lab-init'), 0o755)

    // the initramfs: busybox and the root's modules in load order
    const ird = join(tmp, 'initramfs')
    await mkdir(join(ird, 'bin'), { recursive: true })
    await mkdir(join(ird, 'lib/modules'), { recursive: true })
    await copyFile(join(tmp, 'busybox/bin/busybox'), join(ird, 'bin/busybox'))
    await chmod(join(ird, 'bin/busybox'), 0o755)
    await copyFile(join(GUEST, 'initramfs-init'), join(ird, 'init'))
    await chmod(join(ird, 'init'), 0o755)
    const deps = await run('chroot', [
      root,
      'modprobe',
      '--all',
      '--show-depends',
      '-S',
      release,
      ...INITRAMFS_MODULES,
    ])
    const order: string[] = []
    for (const m of deps.stdout.matchAll(/^insmod (\S+)/gm)) {
      const path = m[1] ?? ''
      const base = path.split('/').pop() ?? ''
      if (order.includes(base)) continue
      order.push(base)
      await copyFile(join(root, path), join(ird, 'lib/modules', base))
    }
    await writeFile(join(ird, 'modules'), `${order.join('\n')}\n`)
    await makeInitramfs(ird, join(out, 'initrd.img'))

    // ext4 made from the directory (no loop mount), sparse; qcow2 keeps only what is used
    const ext4 = join(tmp, 'base.ext4')
    await run(
      'mkfs.ext4',
      ['-q', '-F', '-L', 'labroot', '-E', 'root_owner=0:0', '-d', root, ext4, '3G'],
      {
        timeoutMs: 5 * 60_000,
      },
    )
    await run('qemu-img', ['convert', '-O', 'qcow2', ext4, join(out, 'base.qcow2')], {
      timeoutMs: 5 * 60_000,
    })
    await writeFile(join(out, 'release'), `${release}\n`)
    await rm(dir, { recursive: true, force: true })
    await rename(out, dir)
    for (const f of await readdir(image.dir))
      if (f.startsWith('k1-') && join(image.dir, f) !== dir)
        await rm(join(image.dir, f), { recursive: true, force: true })
    log(
      `image ${image.recipe.name}: kernel VM disk built in ${Math.round((Date.now() - started) / 1000)} s (kernel ${release})`,
    )
    return k(dir, release)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

function k(dir: string, release: string): KernelDisk {
  return {
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    base: join(dir, 'base.qcow2'),
    release,
  }
}
