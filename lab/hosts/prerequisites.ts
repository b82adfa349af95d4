import { access, constants, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hostEnv, run } from './exec.ts'

const TOOLS = [
  'ip',
  'nft',
  'nsenter',
  'unshare',
  'setpriv',
  'mount',
  'umount',
  'pivot_root',
  'sysctl',
  'hostname',
  'bash',
  'sshd',
  'ssh-keygen',
  'useradd',
  'usermod',
  'getent',
  'install',
]

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (hostEnv().PATH ?? '').split(':')) {
    try {
      await access(join(dir, tool), constants.X_OK)
      return true
    } catch {
      // next directory
    }
  }
  return false
}

/**
 * Checks that this machine can host the lab: root, the tools (iproute2, nftables, util-linux,
 * openssh-server), network namespaces with nftables and bridge netfilter inside, PID and mount
 * namespaces, and an overlayfs over `/` with a tmpfs upper layer. Throws one error that lists
 * every problem and what to do about it.
 * @example await checkHostPrerequisites() // before createNamespaceDriver(...).init(...)
 */
export async function checkHostPrerequisites(): Promise<void> {
  const problems: string[] = []
  if (process.getuid?.() !== 0) {
    throw new Error(
      'lab hosts: the lab needs root (it makes network namespaces, mounts and nftables rules); run it as root, e.g. with sudo',
    )
  }
  const missing: string[] = []
  for (const t of TOOLS) if (!(await onPath(t))) missing.push(t)
  if (missing.length > 0) {
    problems.push(
      `missing commands: ${missing.join(', ')} (Debian: apt-get install -y iproute2 nftables util-linux openssh-server passwd)`,
    )
  }
  const fs = await readFile('/proc/filesystems', 'utf8').catch(() => '')
  for (const f of ['overlay', 'tmpfs'])
    if (!new RegExp(`\\s${f}$`, 'm').test(fs)) problems.push(`the kernel has no ${f} filesystem`)
  if (missing.length === 0) {
    const probe = `rbl-probe-${process.pid}`
    const ns = await run('ip', ['netns', 'add', probe], { allowFail: true })
    if (ns.code !== 0) {
      problems.push(
        `\`ip netns add\` fails (${ns.stderr.trim()}): network namespaces are not available here`,
      )
    } else {
      try {
        const nft = await run('nsenter', [`--net=/run/netns/${probe}`, 'nft', '-f', '-'], {
          allowFail: true,
          input:
            'table ip rbl_probe {\n\tchain c {\n\t\ttype filter hook prerouting priority -150;\n\t\tct state established meta mark set 1\n\t}\n}\ntable bridge rbl_probe {\n\tchain c {\n\t\ttype filter hook forward priority 0;\n\t\tmeta mark 1 accept\n\t}\n}\n',
        })
        if (nft.code !== 0)
          problems.push(`nftables does not work in a network namespace: ${nft.stderr.trim()}`)
        const brnf = await run(
          'nsenter',
          [`--net=/run/netns/${probe}`, 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables'],
          { allowFail: true },
        )
        if (brnf.code !== 0)
          problems.push(
            'bridge netfilter (br_netfilter) is missing: security groups need conntrack on bridged traffic (modprobe br_netfilter)',
          )
      } finally {
        await run('ip', ['netns', 'del', probe], { allowFail: true })
      }
    }
    const dir = await mkdtemp(join(tmpdir(), 'rbl-probe-'))
    try {
      const script = `mount -t tmpfs rbl-probe "${dir}" && mkdir "${dir}/u" "${dir}/w" "${dir}/m" && mount -t overlay rbl-probe -o "lowerdir=/,upperdir=${dir}/u,workdir=${dir}/w" "${dir}/m" && test -x "${dir}/m/bin/sh"`
      const ov = await run(
        'unshare',
        [
          '--pid',
          '--fork',
          '--mount',
          '--uts',
          '--ipc',
          '--propagation',
          'private',
          'sh',
          '-ec',
          script,
        ],
        { allowFail: true },
      )
      if (ov.code !== 0)
        problems.push(
          `cannot make a VM root (PID/mount namespaces, overlayfs over / with a tmpfs upper): ${ov.stderr.trim()}`,
        )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  if (problems.length > 0)
    throw new Error(`lab hosts: this machine cannot host the lab:\n  - ${problems.join('\n  - ')}`)
}
