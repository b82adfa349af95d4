/**
 * Hand-made Neutron state and ssh plumbing for the e2e tests of the lab's host driver
 * (lab/hosts), which they drive directly, without the API.
 */
import { execFile, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { LabPort, LabSecurityGroup, NetworkSnapshot, VmSpec } from '../../../lab/driver.ts'
import { buildMirror } from '../../../lab/mirror/build.ts'
import { DEFAULT_MIRROR_PORT, mirrorUrl, type MirrorServer } from '../../../lab/mirror/server.ts'

const pexec = promisify(execFile)

/** The id of the `default` security group of the fixture. */
export const SG_DEFAULT = '5c1e0000-0000-4000-8000-00000000defa'
/** The id of the `ssh` security group of the fixture. */
export const SG_SSH = '5c1e0000-0000-4000-8000-000000000022'

/** Neutron's `default` group (ingress from itself, egress anywhere) and an `ssh` group (tcp 22 from anywhere). */
export function securityGroups(): LabSecurityGroup[] {
  return [
    {
      id: SG_DEFAULT,
      name: 'default',
      rules: [
        {
          id: 'r-def-in',
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: null,
          portRangeMin: null,
          portRangeMax: null,
          remoteIpPrefix: null,
          remoteGroupId: SG_DEFAULT,
        },
        {
          id: 'r-def-out',
          direction: 'egress',
          ethertype: 'IPv4',
          protocol: null,
          portRangeMin: null,
          portRangeMax: null,
          remoteIpPrefix: null,
          remoteGroupId: null,
        },
        {
          id: 'r-def-out6',
          direction: 'egress',
          ethertype: 'IPv6',
          protocol: null,
          portRangeMin: null,
          portRangeMax: null,
          remoteIpPrefix: null,
          remoteGroupId: null,
        },
      ],
    },
    {
      id: SG_SSH,
      name: 'ssh',
      rules: [
        {
          id: 'r-ssh',
          direction: 'ingress',
          ethertype: 'IPv4',
          protocol: '6',
          portRangeMin: 22,
          portRangeMax: 22,
          remoteIpPrefix: '0.0.0.0/0',
          remoteGroupId: null,
        },
      ],
    },
  ]
}

/** A port with one fixed IP `192.0.2.<n>` and a MAC derived from n. */
export function makePort(n: number, groups: string[]): LabPort {
  const hex = n.toString(16).padStart(4, '0')
  return {
    id: `be11a000-0000-4000-8000-00000000${hex}`,
    mac: `fa:16:3e:00:${hex.slice(0, 2)}:${hex.slice(2)}`,
    fixedIps: [`192.0.2.${n}`],
    allowedAddressPairs: [],
    securityGroupIds: groups,
    portSecurityEnabled: true,
    deviceId: null,
  }
}

/** A VM spec for a port; the id starts with the port's last octet, so short names are unique. */
export function makeSpec(name: string, port: LabPort, publicKey: string): VmSpec {
  const n = Number(port.fixedIps[0]?.split('.')[3] ?? 0)
  return {
    id: `${n.toString(16).padStart(8, '0')}-7e57-4000-8000-000000000000`,
    name,
    hostname: name,
    port: { ...port, deviceId: `${n.toString(16).padStart(8, '0')}-7e57-4000-8000-000000000000` },
    defaultUser: 'ubuntu',
    image: 'debian-12',
    kind: 'namespace',
    ramMb: 192,
    authorizedKeys: [publicKey],
  }
}

/** A snapshot of the tenant network with these ports and floating IPs. */
export function makeSnapshot(
  ports: LabPort[],
  floatingIps: NetworkSnapshot['floatingIps'] = [],
): NetworkSnapshot {
  return {
    subnetCidr: '192.0.2.0/24',
    gatewayIp: '192.0.2.1',
    ports: structuredClone(ports),
    securityGroups: securityGroups(),
    floatingIps,
  }
}

/** The host keys and fingerprints a console log announces, cloud-init style. */
export interface ConsoleKeys {
  /** `256 SHA256:... root@host (ED25519)` lines, without the syslog prefix. */
  fingerprints: string[]
  /** `ssh-ed25519 AAAA... root@host` lines. */
  keys: string[]
}

/** Parses cloud-init's fingerprint and key blocks from a console log. */
export function parseConsoleKeys(raw: string): ConsoleKeys {
  // a serial console (kernel VMs) ends its lines with \r\n, as a terminal does
  const log = raw.replace(/\r\n?/g, '\n')
  const fp =
    /-----BEGIN SSH HOST KEY FINGERPRINTS-----\n([\s\S]*?)\n[^\n]*-----END SSH HOST KEY FINGERPRINTS-----/.exec(
      log,
    )?.[1] ?? ''
  const keys =
    /-----BEGIN SSH HOST KEY KEYS-----\n([\s\S]*?)\n-----END SSH HOST KEY KEYS-----/.exec(
      log,
    )?.[1] ?? ''
  return {
    fingerprints: fp
      .split('\n')
      .map((l) => l.replace(/^<14>\w{3} [ \d]\d \d\d:\d\d:\d\d cloud-init: /, '')),
    keys: keys.split('\n').filter((l) => l !== ''),
  }
}

/** A throwaway ssh identity and client config (ProxyJump through the jumphost) in `dir`. */
export interface SshKit {
  dir: string
  publicKey: string
  /** Adds a host's keys (from its console log) to the kit's known_hosts. */
  trust(address: string, keys: string[]): void
  /** Runs a command on a VM as the default user; resolves with its output and exit code. */
  run(
    address: string,
    command: string,
    timeoutMs?: number,
  ): Promise<{ stdout: string; stderr: string; code: number }>
}

/** Makes an ssh key and a config where 192.0.2.* is reached through `jumpAddress` (pinned keys only). */
export async function makeSshKit(
  dir: string,
  jumpAddress: string,
  user = 'ubuntu',
): Promise<SshKit> {
  const key = join(dir, 'id_ed25519')
  await pexec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lab-hosts-test', '-f', key])
  const knownHosts = join(dir, 'known_hosts')
  const known: string[] = []
  writeFileSync(knownHosts, '')
  const config = join(dir, 'ssh_config')
  writeFileSync(
    config,
    [
      'Host *',
      `  User ${user}`,
      `  IdentityFile ${key}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 5',
      '  LogLevel ERROR',
      'Host 192.0.2.*',
      `  ProxyJump ${jumpAddress}`,
      '',
    ].join('\n'),
  )
  return {
    dir,
    publicKey: (await readFile(`${key}.pub`, 'utf8')).trim(),
    trust(address, keys) {
      for (const k of keys) known.push(`${address} ${k.split(' ').slice(0, 2).join(' ')}`)
      writeFileSync(knownHosts, `${known.join('\n')}\n`)
    },
    run(address, command, timeoutMs = 20_000) {
      return new Promise((resolve) => {
        const child = spawn('ssh', ['-F', config, address, command], {
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let stdout = ''
        let stderr = ''
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
        child.on('close', (code) => {
          clearTimeout(timer)
          resolve({ stdout, stderr, code: code ?? -1 })
        })
      })
    },
  }
}

/** Polls `f` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function eventually(
  f: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<boolean> {
  const until = Date.now() + timeoutMs
  for (;;) {
    if (await f()) return true
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** What of the lab is still on the machine: the checks of "teardown leaves nothing". */
export async function labLeftovers(stateDir: string): Promise<string[]> {
  const out: string[] = []
  const sh = async (cmd: string, args: string[]) =>
    (await pexec(cmd, args).catch(() => ({ stdout: '' }))).stdout
  for (const l of (await sh('ip', ['netns', 'list'])).split('\n'))
    if (l.startsWith('rbl')) out.push(`netns ${l}`)
  for (const m of (await sh('ip', ['-o', 'link', 'show'])).matchAll(/^\d+: (rbl[^:@\s]*)/gm))
    out.push(`link ${m[1]}`)
  for (const m of (await sh('nft', ['list', 'tables'])).matchAll(/^table \S+ (rbl\S*)$/gm))
    out.push(`nft table ${m[1]}`)
  for (const l of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    if (/ - \S+ rbl-/.test(l) || l.includes(stateDir)) out.push(`mount ${l}`)
  }
  const { strayVmProcesses } = await import('../../../lab/hosts/teardown.ts')
  for (const pid of await strayVmProcesses()) out.push(`process ${pid}`)
  for (const l of (await sh('ps', ['-eo', 'pid,args'])).split('\n'))
    if (l.includes('vm-boot.sh') || (l.includes('qemu-system') && l.includes('rbl-vm-')))
      out.push(`process ${l.trim()}`)
  return out
}

/** Where VMs of the driver-level tests find the test mirror (give it as the driver's `aptMirror`). */
export const TEST_MIRROR_URL = mirrorUrl(DEFAULT_MIRROR_PORT)

/**
 * The package mirror for tests that drive the hosts directly (labUp's daemon serves one otherwise):
 * keepalived and its dependencies from the lab's .deb cache, on 198.51.100.1, as the lab serves
 * it, from a process of its own. The VMs boot the Debian 12 image, which has no keepalived. Start
 * it after the driver's init (which makes rbl-fip0, the address it listens on).
 */
export async function startTestMirror(
  dir: string,
  packages: readonly string[] = ['keepalived'],
): Promise<MirrorServer> {
  const repo = join(dir, 'mirror')
  const built = await buildMirror({ dir: repo, packages: [...packages], log: () => undefined })
  if (built.empty || built.missing.length > 0)
    throw new Error(
      `test mirror: ${built.missing.join(', ') || packages.join(', ')} missing (${built.downloadError ?? 'offline?'})`,
    )
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./mirror-server.ts', import.meta.url)), repo],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString()
      if (out.includes('ready ')) resolve()
    })
    child.on('exit', (code) => reject(new Error(`test mirror exited (${String(code)})`)))
  })
  return {
    url: TEST_MIRROR_URL,
    port: DEFAULT_MIRROR_PORT,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.on('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/** Installs keepalived from the test mirror on these VMs, in parallel. */
export async function installKeepalived(kit: SshKit, addresses: string[]): Promise<void> {
  await Promise.all(
    addresses.map(async (a) => {
      const r = await kit.run(
        a,
        'sudo apt-get update -q >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived >/dev/null',
        180_000,
      )
      if (r.code !== 0) throw new Error(`apt-get install keepalived on ${a}: ${r.stderr}`)
    }),
  )
}
