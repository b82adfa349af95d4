import { describe, expect, it } from 'vitest'
import { imagePaths } from '../../../lab/images/build.ts'
import { DEBIAN_12, recipeByKey, recipeHash } from '../../../lab/images/recipe.ts'
import { qemuArgs } from '../../../lab/hosts/qemu.ts'

describe('image recipes', () => {
  it('Debian 12 is minbase with sshd and friends, and neither keepalived nor ipvsadm', () => {
    expect(DEBIAN_12).toMatchObject({ name: 'Debian 12', suite: 'bookworm', variant: 'minbase' })
    for (const p of ['openssh-server', 'sudo', 'iproute2', 'iputils-ping', 'python3-minimal'])
      expect(DEBIAN_12.packages).toContain(p)
    expect(DEBIAN_12.packages).not.toContain('keepalived')
    expect(DEBIAN_12.packages).not.toContain('ipvsadm')
    expect(recipeByKey('debian-12')).toBe(DEBIAN_12)
    expect(recipeByKey('ubuntu-22.04')).toBeUndefined()
  })

  it.each([
    ['another package', { packages: [...DEBIAN_12.packages, 'hello'] }, false],
    ['another suite', { suite: 'trixie' }, false],
    ['the same packages in another order', { packages: [...DEBIAN_12.packages].reverse() }, true],
    ['another display name', { name: 'Debian bookworm' }, true],
  ])('the recipe hash with %s: same = %s', (_what, change, same) => {
    const h = recipeHash({ ...DEBIAN_12, ...change })
    expect(h).toMatch(/^[0-9a-f]{12}$/)
    expect(h === recipeHash(DEBIAN_12)).toBe(same)
  })

  it('caches an image under its key and hash', () => {
    expect(imagePaths('/c', DEBIAN_12).root).toBe(`/c/debian-12-${recipeHash(DEBIAN_12)}/root`)
  })
})

describe('kernel VM command line', () => {
  const vm = {
    short: '0a0b0c0d',
    ramMb: 192,
    kernel: {
      dir: '/k',
      vmlinuz: '/k/vmlinuz',
      initrd: '/k/initrd.img',
      base: '/k/base.qcow2',
      release: '6.1.0-57-amd64',
    },
    disk: '/v/disk.qcow2',
    console: '/v/console.log',
    ready: '/v/ready.log',
    mac: 'fa:16:3e:00:00:01',
    seedFiles: ['hostname', 'mac'],
    seedDir: '/v/seed',
    guestBoot: '/g/guest-boot.sh',
    qmp: '/v/qmp.sock',
    pidFile: '/v/qemu.pid',
  }
  const args = qemuArgs({ ...vm, accel: 'tcg' })
  const after = (flag: string) => args[args.indexOf(flag) + 1]

  it.each([
    ['-name', 'rbl-vm-0a0b0c0d'],
    ['-accel', 'tcg,tb-size=32'],
    ['-m', '192'],
    ['-smp', '1'],
    ['-kernel', '/k/vmlinuz'],
    ['-initrd', '/k/initrd.img'],
  ])('%s %s', (flag, value) => {
    expect(after(flag)).toBe(value)
  })

  it('uses KVM with the host CPU only when told (the probe proved it), TCG with max otherwise', () => {
    expect(after('-cpu')).toBe('max')
    const kvm = qemuArgs({ ...vm, accel: 'kvm' })
    expect(kvm[kvm.indexOf('-accel') + 1]).toBe('kvm')
    expect(kvm[kvm.indexOf('-cpu') + 1]).toBe('host')
  })

  it('puts the NIC on the tap named like a bridge port, with the port MAC', () => {
    expect(args).toContain('tap,id=n0,ifname=rblv-0a0b0c0d,script=no,downscript=no')
    expect(args).toContain('virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:01')
    expect(args).toContain('virtio-balloon-pci,free-page-reporting=on')
  })

  it('passes the config drive and the shared boot script as fw_cfg files', () => {
    expect(args).toContain('name=opt/runbook/seed/hostname,file=/v/seed/hostname')
    expect(args).toContain('name=opt/runbook/guest-boot,file=/g/guest-boot.sh')
    expect(after('-append')).toContain('init_on_alloc=0')
    expect(after('-append')).toContain('console=ttyS0')
  })
})
