import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type { LabPort } from '../driver.ts'
import type { ImageStore } from '../images/index.ts'
import { hostEnv, q, run, runInNetns } from './exec.ts'
import { isMac, parseIpv4 } from './ipv4.ts'
import { BRIDGE, ROUTER_NETNS, VM_IF, vmNames, type VmNames } from './names.ts'
import { listNetns, type TenantSubnet } from './router.ts'
import { vmPaths, type VmRecord } from './state.ts'

/** How VMs are booted, common to all of them. */
export interface BootOptions {
  stateDir: string
  /** Absolute path of vm-boot.sh. */
  bootScript: string
  /** ssh-keygen types of the host keys made on first boot. */
  keyTypes: string[]
  /** SysV services started at boot when enabled in the VM (sshd always runs). */
  bootServices: string[]
  /** Size limit of each VM's disk (tmpfs `size=`). */
  diskSize: string
  bootTimeoutMs: number
  /** The lab's package mirror (`http://198.51.100.1:8781/debian`), written to the VM's apt sources at first boot; null leaves apt as the image has it. */
  aptMirror: string | null
  /** Where images come from (built on first use). */
  images: ImageStore
  /** How long a kernel VM may take to boot (emulated: much longer than a namespace VM). */
  kernelBootTimeoutMs: number
}

/** Rejects values that would end up in a shell command or a config file unchecked. */
export function validateSpec(
  rec: Pick<VmRecord, 'hostname' | 'defaultUser' | 'authorizedKeys' | 'port'>,
): void {
  const problems: string[] = []
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(rec.hostname))
    problems.push(`hostname '${rec.hostname}' is not a valid host name`)
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(rec.defaultUser) || rec.defaultUser === 'root')
    problems.push(`user '${rec.defaultUser}' is not a valid login name`)
  for (const k of rec.authorizedKeys)
    if (/[\r\n]/.test(k.trim())) problems.push('an authorized key spans several lines')
  if (!isMac(rec.port.mac)) problems.push(`port mac '${rec.port.mac}' is not a MAC address`)
  if (rec.port.fixedIps.length === 0 || rec.port.fixedIps.some((ip) => parseIpv4(ip) === null))
    problems.push(
      `port ${rec.port.id} needs IPv4 fixed IPs (got ${rec.port.fixedIps.join(', ') || 'none'})`,
    )
  if (problems.length > 0) throw new Error(`lab hosts: cannot boot this VM: ${problems.join('; ')}`)
}

/** The PIDs (machine's view) of every process in a network namespace. */
export async function netnsPids(netns: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', netns], { allowFail: true })
  return stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
}

/** The PID-namespace chain of a process (`NSpid:` of /proc/PID/status), empty when it is gone. */
async function nsPids(pid: number): Promise<number[]> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const line = /^NSpid:\s+(.*)$/m.exec(status)?.[1] ?? ''
    return line.split(/\s+/).map(Number)
  } catch {
    return []
  }
}

/** The machine's PID of the VM's init (PID 1 in its PID namespace), or null when it is not running. */
export async function vmInitPid(netns: string): Promise<number | null> {
  for (const pid of await netnsPids(netns)) {
    const chain = await nsPids(pid)
    if (chain.length >= 2 && chain[chain.length - 1] === 1) return pid
  }
  return null
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Stops every process of a VM: SIGTERM to its services first (so that keepalived, say, can hand
 * its VIP over, as on a clean power-off) for up to `graceMs`, then SIGKILL to its init, which takes
 * the whole PID namespace down, and to anything else left in the network namespace.
 */
export async function killVmProcesses(netns: string, graceMs: number): Promise<void> {
  if (graceMs > 0) {
    const services: number[] = []
    for (const pid of await netnsPids(netns)) {
      const chain = await nsPids(pid)
      if (chain.length >= 2 && chain[chain.length - 1] !== 1) services.push(pid)
    }
    for (const pid of services) kill(pid, 'SIGTERM')
    const until = Date.now() + graceMs
    while (Date.now() < until) {
      const left = await Promise.all(services.map(async (p) => (await nsPids(p)).length > 0))
      if (!left.includes(true)) break
      await sleep(50)
    }
  }
  for (let i = 0; i < 200; i++) {
    const pids = await netnsPids(netns)
    if (pids.length === 0) return
    const init = await vmInitPid(netns)
    if (init !== null) kill(init, 'SIGKILL')
    for (const pid of pids) kill(pid, 'SIGKILL')
    await sleep(25)
  }
  throw new Error(
    `lab hosts: processes of ${netns} do not die: ${(await netnsPids(netns)).join(' ')}`,
  )
}

/**
 * Makes the VM's network namespace and its veth (`ens3` inside, `rblv-<short>` on the bridge, still
 * down so that no frame passes before the port's rules exist). Idempotent.
 */
export async function ensureVmNetns(names: VmNames, port: LabPort): Promise<void> {
  if (!(await listNetns()).includes(names.netns)) await run('ip', ['netns', 'add', names.netns])
  const inVm = await run('ip', ['-n', names.netns, 'link', 'show', 'dev', VM_IF], {
    allowFail: true,
  })
  if (inVm.code !== 0) {
    await run('ip', ['-n', ROUTER_NETNS, 'link', 'del', names.veth], { allowFail: true })
    await run('ip', [
      '-n',
      ROUTER_NETNS,
      'link',
      'add',
      names.veth,
      'type',
      'veth',
      'peer',
      'name',
      VM_IF,
      'address',
      port.mac.toLowerCase(),
      'netns',
      names.netns,
    ])
  }
  await runInNetns(
    names.netns,
    'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1\nip link set lo up',
  )
}

/**
 * Configures `ens3` as DHCP would on the seed's image: the port's MAC and fixed IPs, and the
 * default route in exactly the seed's shape
 * (`default via 192.0.2.1 dev ens3 proto dhcp src 192.0.2.11 metric 100`).
 */
export async function configureVmNetwork(
  names: VmNames,
  port: LabPort,
  subnet: TenantSubnet,
): Promise<void> {
  const [primary, ...secondary] = port.fixedIps
  if (primary === undefined) throw new Error(`lab hosts: port ${port.id} has no fixed IP`)
  const cidr = (ip: string) => q(`${ip}/${subnet.prefixLen}`)
  await runInNetns(
    names.netns,
    [
      `sysctl -qw net.ipv6.conf.${VM_IF}.disable_ipv6=1`,
      `ip link set ${VM_IF} down`,
      `ip addr flush dev ${VM_IF}`,
      `ip link set ${VM_IF} address ${q(port.mac.toLowerCase())}`,
      `ip link set ${VM_IF} up`,
      `ip addr add ${cidr(primary)} dev ${VM_IF} metric 100`,
      ...secondary.map((ip) => `ip addr add ${cidr(ip)} dev ${VM_IF} metric 100`),
      `ip route replace ${q(subnet.gateway)} dev ${VM_IF} proto dhcp scope link src ${q(primary)} metric 100`,
      `ip route replace default via ${q(subnet.gateway)} dev ${VM_IF} proto dhcp src ${q(primary)} metric 100`,
    ].join('\n'),
  )
}

/**
 * Plugs the VM's veth into the bridge in hairpin mode (a VM's own floating IP comes back through
 * the port it left by; nft-rules.ts drops whatever else would) and brings it up (the port's rules
 * must exist by now).
 */
export async function attachVmPort(names: VmNames): Promise<void> {
  await runInNetns(
    ROUTER_NETNS,
    [
      `ip link set ${names.veth} master ${BRIDGE}`,
      `bridge link set dev ${names.veth} hairpin on`,
      `ip link set ${names.veth} up`,
    ].join('\n'),
  )
}

/** Takes both ends of the VM's link down and removes its addresses, as a power-off would. */
export async function detachVmPort(names: VmNames): Promise<void> {
  await run('ip', ['-n', ROUTER_NETNS, 'link', 'set', names.veth, 'down'], { allowFail: true })
  await runInNetns(names.netns, `ip addr flush dev ${VM_IF}\nip link set ${VM_IF} down`, {
    allowFail: true,
  })
}

/** Mount points whose source is `source` (from /proc/self/mountinfo), deepest first. */
export async function mountsBySource(
  match: (source: string, target: string) => boolean,
): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const out: string[] = []
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ')
    if (pre === undefined || post === undefined) continue
    const target = unescapeMount(pre.split(' ')[4] ?? '')
    const source = unescapeMount(post.split(' ')[1] ?? '')
    if (match(source, target)) out.push(target)
  }
  return out.sort((a, b) => b.length - a.length)
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Mounts the VM's disk (a tmpfs named `rbl-disk-<short>`) unless it is mounted. */
export async function ensureDisk(opts: BootOptions, names: VmNames): Promise<void> {
  const p = vmPaths(opts.stateDir, names.short)
  if ((await mountsBySource((s, t) => s === names.diskSource && t === p.disk)).length > 0) return
  await mkdir(p.disk, { recursive: true })
  await run('mount', [
    '-t',
    'tmpfs',
    '-o',
    `mode=0755,size=${opts.diskSize}`,
    names.diskSource,
    p.disk,
  ])
  // private: the VM's mount namespaces are copies of the machine's, and nothing should propagate
  await run('mount', ['--make-private', p.disk])
}

/** Unmounts the VM's disk (and anything under it), lazily when busy. */
export async function removeDisk(stateDir: string, names: VmNames): Promise<void> {
  const p = vmPaths(stateDir, names.short)
  for (const target of await mountsBySource(
    (s, t) => s === names.diskSource || t === p.disk || t.startsWith(`${p.disk}/`),
  )) {
    await run('umount', ['-l', target], { allowFail: true })
  }
}

/** Writes the VM's config drive (read by vm-boot.sh on every boot). */
export async function writeSeed(
  opts: BootOptions,
  rec: VmRecord,
  subnet: TenantSubnet,
): Promise<void> {
  const p = vmPaths(opts.stateDir, rec.short)
  await mkdir(p.seed, { recursive: true })
  const files: Record<string, string> = {
    hostname: rec.hostname,
    user: rec.defaultUser,
    'instance-id': rec.id,
    authorized_keys: rec.authorizedKeys
      .map((k) => k.trim())
      .filter((k) => k !== '')
      .join('\n'),
    'key-types': opts.keyTypes.join(' '),
    services: opts.bootServices.join(' '),
    address: rec.port.fixedIps[0] ?? '',
    mac: rec.port.mac.toLowerCase(),
    prefix: String(subnet.prefixLen),
    gateway: subnet.gateway,
    'apt-mirror': opts.aptMirror ?? '',
  }
  for (const [name, content] of Object.entries(files))
    await writeFile(`${p.seed}/${name}`, `${content}\n`)
}

/**
 * Boots the VM: starts vm-boot.sh as PID 1 of new PID, mount, UTS and IPC namespaces inside the
 * VM's network namespace, detached from the caller (the VM outlives the daemon), and waits until
 * it reports sshd listening. Returns what this boot wrote to the console.
 */
export async function bootVm(opts: BootOptions, rec: VmRecord): Promise<string> {
  const names = vmNames(rec.short)
  const p = vmPaths(opts.stateDir, rec.short)
  const lower = (await opts.images.root(rec.image)).root
  const offset = await fileSize(p.console)
  const logFd = openSync(p.console, 'a', 0o600)
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${names.netns}`,
      '--',
      'unshare',
      '--pid',
      '--fork',
      '--mount',
      '--uts',
      '--ipc',
      '--propagation',
      'private',
      '--',
      'bash',
      opts.bootScript,
    ],
    {
      detached: true,
      stdio: ['ignore', logFd, logFd, 'pipe'],
      env: {
        ...hostEnv(),
        RBL_DISK: p.disk,
        RBL_SEED: p.seed,
        RBL_ROOT_SOURCE: names.rootSource,
        RBL_LOWER: lower,
      },
    },
  )
  closeSync(logFd)
  const ready = child.stdio[3] as Readable
  let timer: NodeJS.Timeout | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      let got = ''
      timer = setTimeout(
        () => reject(new Error(`no ready signal within ${opts.bootTimeoutMs} ms`)),
        opts.bootTimeoutMs,
      )
      ready.on('data', (b: Buffer) => {
        got += b.toString('utf8')
        if (got.includes('ready')) resolve()
      })
      ready.on('end', () => reject(new Error('the boot script ended before sshd was ready')))
      ready.on('error', reject)
      child.on('error', reject)
    })
  } catch (e) {
    await killVmProcesses(names.netns, 0).catch(() => undefined)
    const tail = (await readFile(p.console, 'utf8').catch(() => ''))
      .slice(offset)
      .split('\n')
      .slice(-15)
      .join('\n')
    throw new Error(
      `lab hosts: VM ${rec.name} (${rec.id}) did not boot: ${e instanceof Error ? e.message : String(e)}\n--- console ---\n${tail}`,
      { cause: e },
    )
  } finally {
    clearTimeout(timer)
    ready.destroy()
    child.unref()
  }
  return (await readFile(p.console)).subarray(offset).toString('utf8')
}

/** A file's size, 0 when it does not exist. */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}

/** Names (short ids) of VM directories under the state directory, records or not. */
export async function vmDirs(stateDir: string): Promise<string[]> {
  try {
    return (await readdir(`${stateDir}/vms`)).filter((s) => /^[0-9a-f]{8}$/.test(s))
  } catch {
    return []
  }
}

/** Removes a VM completely: processes, network namespace (and so its veth), disk, files. */
export async function destroyVm(stateDir: string, short: string): Promise<void> {
  const names = vmNames(short)
  if ((await listNetns()).includes(names.netns)) {
    await killVmProcesses(names.netns, 0)
    await run('ip', ['netns', 'del', names.netns], { allowFail: true })
  }
  await run('ip', ['-n', ROUTER_NETNS, 'link', 'del', names.veth], { allowFail: true })
  await removeDisk(stateDir, names)
  const left = await mountsBySource(
    (s, t) => s === names.diskSource || t.startsWith(`${vmPaths(stateDir, short).disk}`),
  )
  if (left.length > 0)
    throw new Error(`lab hosts: the disk of VM ${short} is still mounted at ${left.join(', ')}`)
  await rm(vmPaths(stateDir, short).dir, { recursive: true, force: true })
}
