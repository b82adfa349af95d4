/**
 * The lab cloud's state: everything Keystone, Nova, Glance and Neutron know, as one JSON document
 * kept on disk (see store.ts). Records are camelCase; the API views (views-*.ts) turn them into the
 * services' snake_case shapes.
 */

/** Keystone project. */
export interface ProjectRec {
  id: string
  name: string
  domainId: string
  description: string
  enabled: boolean
}

/** Keystone user; the password is kept only as a scrypt hash. */
export interface UserRec {
  id: string
  name: string
  domainId: string
  passwordHash: string
  defaultProjectId: string | null
  enabled: boolean
}

/** Keystone role. */
export interface RoleRec {
  id: string
  name: string
}

/** A role of a user on a project. */
export interface AssignmentRec {
  userId: string
  projectId: string
  roleId: string
}

/** Keystone application credential; the secret is kept only as a scrypt hash. */
export interface AppCredRec {
  id: string
  name: string
  description: string | null
  userId: string
  projectId: string
  secretHash: string
  roleIds: string[]
  expiresAt: string | null
  /** null when not given at creation, as Keystone shows it. */
  unrestricted: boolean | null
}

/** Nova flavor. */
export interface FlavorRec {
  id: string
  name: string
  ram: number
  vcpus: number
  disk: number
  ephemeral: number
  swap: number
  rxtxFactor: number
  isPublic: boolean
  disabled: boolean
  description: string | null
  extraSpecs: Record<string, string>
}

/** Glance image. The lab boots every image from the same base; `defaultUser` is its login user. */
export interface ImageRec {
  id: string
  name: string
  owner: string
  createdAt: string
  updatedAt: string
  size: number
  checksum: string
  minDisk: number
  minRam: number
  diskFormat: string
  containerFormat: string
  tags: string[]
  /** Custom image properties (`os_distro`, `os_admin_user`, ...), shown as top-level keys. */
  properties: Record<string, string>
  defaultUser: string
}

/** Nova keypair. */
export interface KeypairRec {
  id: number
  name: string
  userId: string
  publicKey: string
  fingerprint: string
  type: 'ssh' | 'x509'
  createdAt: string
}

/** A Nova fault, as shown on an ERROR server. */
export interface FaultRec {
  code: number
  message: string
  created: string
  details: string
}

/** Nova server status (the API's `status`). */
export type ServerStatus = 'BUILD' | 'ACTIVE' | 'SHUTOFF' | 'ERROR'

/** Nova server. */
export interface ServerRec {
  id: string
  name: string
  projectId: string
  userId: string
  flavorId: string
  imageId: string
  keyName: string | null
  status: ServerStatus
  vmState: 'building' | 'active' | 'stopped' | 'error'
  taskState: string | null
  powerState: number
  /** Ports the server uses, in NIC order. */
  portIds: string[]
  /** Ports Nova created for `networks: [{uuid}]`; deleted with the server (pre-existing ones are unbound). */
  ownedPortIds: string[]
  /** The security groups asked for at create time, as sent (names or ids). */
  requestedSecurityGroups: string[]
  metadata: Record<string, string>
  userData: string | null
  availabilityZone: string
  hostname: string
  description: string | null
  tags: string[]
  createdAt: string
  updatedAt: string
  launchedAt: string | null
  fault: FaultRec | null
  consoleLog: string
}

/** The fields every Neutron resource has (standard attributes). */
export interface NeutronStandard {
  id: string
  name: string
  description: string
  projectId: string
  tags: string[]
  createdAt: string
  updatedAt: string
  revisionNumber: number
}

/** Neutron network. */
export interface NetworkRec extends NeutronStandard {
  adminStateUp: boolean
  shared: boolean
  external: boolean
  mtu: number
  portSecurityEnabled: boolean
  /** Admin-only provider attributes. */
  providerNetworkType: string
  providerPhysicalNetwork: string | null
  providerSegmentationId: number | null
}

/** Neutron subnet (IPv4 only in the lab). */
export interface SubnetRec extends NeutronStandard {
  networkId: string
  cidr: string
  gatewayIp: string | null
  allocationPools: { start: string; end: string }[]
  enableDhcp: boolean
  dnsNameservers: string[]
  hostRoutes: { destination: string; nexthop: string }[]
}

/** A fixed IP of a port. */
export interface FixedIp {
  subnetId: string
  ipAddress: string
}

/** An allowed address pair of a port. */
export interface AddressPair {
  ipAddress: string
  macAddress: string
}

/** Neutron port. */
export interface PortRec extends NeutronStandard {
  networkId: string
  macAddress: string
  fixedIps: FixedIp[]
  allowedAddressPairs: AddressPair[]
  securityGroups: string[]
  portSecurityEnabled: boolean
  deviceId: string
  deviceOwner: string
  adminStateUp: boolean
  status: 'ACTIVE' | 'DOWN'
  bindingHostId: string
  vnicType: string
}

/** Neutron security group. */
export interface SecurityGroupRec extends NeutronStandard {
  stateful: boolean
}

/** Neutron security-group rule. `protocol` is stored as sent (`tcp`, `112`, `vrrp`). */
export interface SecurityGroupRuleRec {
  id: string
  securityGroupId: string
  projectId: string
  direction: 'ingress' | 'egress'
  ethertype: 'IPv4' | 'IPv6'
  protocol: string | null
  portRangeMin: number | null
  portRangeMax: number | null
  remoteIpPrefix: string | null
  remoteGroupId: string | null
  description: string
  createdAt: string
  updatedAt: string
  revisionNumber: number
}

/** Neutron router; its interfaces are ports with `device_id` = router id. */
export interface RouterRec extends NeutronStandard {
  adminStateUp: boolean
  gateway: { networkId: string; enableSnat: boolean; fixedIps: FixedIp[] } | null
}

/** Neutron floating IP. */
export interface FloatingIpRec extends Omit<NeutronStandard, 'name'> {
  floatingNetworkId: string
  floatingIpAddress: string
  portId: string | null
  fixedIpAddress: string | null
  routerId: string | null
}

/** Secrets the seed made, kept so clouds.yaml can be written again (the state file is mode 0600). */
export interface SeedSecrets {
  demoPassword: string
  adminPassword: string
  appCredId: string
  appCredName: string
  appCredSecret: string
}

/** The whole lab cloud. */
export interface LabState {
  schema: 1
  /** HMAC key of the tokens, so tokens survive a restart of the daemon. */
  tokenKey: string
  seed: SeedSecrets | null
  projects: ProjectRec[]
  users: UserRec[]
  roles: RoleRec[]
  assignments: AssignmentRec[]
  appCreds: AppCredRec[]
  flavors: FlavorRec[]
  images: ImageRec[]
  keypairs: KeypairRec[]
  servers: ServerRec[]
  networks: NetworkRec[]
  subnets: SubnetRec[]
  ports: PortRec[]
  securityGroups: SecurityGroupRec[]
  securityGroupRules: SecurityGroupRuleRec[]
  routers: RouterRec[]
  floatingIps: FloatingIpRec[]
  nextKeypairId: number
}
