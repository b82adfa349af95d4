/**
 * The seam between the lab's API (lab/api: Keystone, Nova, Neutron over HTTP, state on disk) and
 * the lab's real hosts (lab/hosts: network namespaces, overlay root filesystems, sshd, nftables).
 *
 * The API owns the truth (what servers, ports, groups and floating IPs exist); the driver makes the
 * machine match it. Network state is pushed whole (`syncNetwork`), never as deltas, so a restarted
 * daemon or a lost update converges on the next call.
 */

/** A Neutron port as the host side needs it. */
export interface LabPort {
  id: string
  mac: string
  /** Fixed IPv4 addresses, without prefix length (`192.0.2.11`). */
  fixedIps: string[]
  /** Allowed address pairs: an address or a CIDR (`192.0.2.254`, `192.0.2.254/24`, `0.0.0.0/0`). */
  allowedAddressPairs: { ipAddress: string; macAddress?: string }[]
  securityGroupIds: string[]
  portSecurityEnabled: boolean
  /** The server using the port, if any. */
  deviceId: string | null
}

/** One security-group rule, already normalised by the API. */
export interface LabSecurityGroupRule {
  id: string
  direction: 'ingress' | 'egress'
  ethertype: 'IPv4' | 'IPv6'
  /** IP protocol number as a string (`'6'`, `'17'`, `'1'`, `'112'`) or null for any. */
  protocol: string | null
  portRangeMin: number | null
  portRangeMax: number | null
  remoteIpPrefix: string | null
  remoteGroupId: string | null
}

/** A security group with its rules. */
export interface LabSecurityGroup {
  id: string
  name: string
  rules: LabSecurityGroupRule[]
}

/** A floating IP and, when associated, the fixed IP it translates to. */
export interface LabFloatingIp {
  id: string
  floatingIp: string
  fixedIp: string | null
  portId: string | null
}

/** Everything the host side needs to enforce port security and floating-IP NAT. */
export interface NetworkSnapshot {
  /** CIDR of the tenant subnet, e.g. `192.0.2.0/24`. */
  subnetCidr: string
  /** Gateway address on the tenant subnet, e.g. `192.0.2.1`. */
  gatewayIp: string
  ports: LabPort[]
  securityGroups: LabSecurityGroup[]
  floatingIps: LabFloatingIp[]
}

/** What it takes to boot one lab VM. */
export interface VmSpec {
  /** Nova server id (a UUID). */
  id: string
  name: string
  hostname: string
  /** The VM's only NIC; it appears inside the VM as `ens3`. */
  port: LabPort
  /** The image's default login user (`debian` for the `Debian 12` image). */
  defaultUser: string
  /** The image to boot (lab/images key, e.g. `debian-12`). */
  image: string
  /**
   * `namespace`: namespaces on the machine's kernel (m1.* flavors); `kernel`: a QEMU VM with
   * Debian's kernel (k1.* flavors).
   */
  kind: VmKind
  /** Guest memory of a kernel VM (the flavor's RAM). */
  ramMb: number
  /** OpenSSH public keys authorised for the default user (from the keypair). */
  authorizedKeys: string[]
}

/** How a server is made: namespaces (m1.*) or a QEMU VM with its own kernel (k1.*). */
export type VmKind = 'namespace' | 'kernel'

/** Result of booting a VM: what Nova will serve as `os-console-output`. */
export interface VmBoot {
  consoleLog: string
}

/** The host side of the lab. Every method is idempotent. */
export interface HostDriver {
  /** Bridge, router namespace, the machine's veth to the floating range, base nftables tables. */
  init(snapshot: NetworkSnapshot): Promise<void>
  createVm(spec: VmSpec, snapshot: NetworkSnapshot): Promise<VmBoot>
  deleteVm(id: string): Promise<void>
  /** Power off: link down and every process of the VM stopped; the disk is kept. */
  stopVm(id: string): Promise<void>
  startVm(id: string): Promise<VmBoot>
  /** Rewrite port security, security groups and floating-IP NAT to match the snapshot exactly. */
  syncNetwork(snapshot: NetworkSnapshot): Promise<void>
  consoleLog(id: string): Promise<string>
  /** Remove everything the lab made on the machine, also after a crash of the daemon. */
  teardown(): Promise<void>
}
