/**
 * What `runbook lab up` gives a fresh cloud, so the seed's commands work as written: the `demo`
 * project and user (password and application credential), an `admin`, flavors (m1.* namespace
 * servers, k1.* servers with their own kernel), the images of lab/images (`Debian 12`), the external network `public`, `mynetwork`/`mysubnet`, the router
 * `myrouter` between them, and the `default` and `ssh` security groups. Idempotent: it finds by
 * name before it creates, so it runs on every start of the daemon.
 */
import { createHash } from 'node:crypto'
import { stringify } from 'yaml'
import { IMAGE_RECIPES } from '../images/recipe.ts'
import type { Cloud } from './cloud.ts'
import { hexId, isoSeconds, secret, uuid } from './ids.ts'
import { ensureDefaultSecurityGroup, newRule, newStandard } from './neutron/common.ts'
import { addInterface, setGateway } from './neutron/l3.ts'
import { labPaths } from './paths.ts'
import { writeFileAtomic } from './store.ts'
import type { AuthContext } from './keystone/tokens.ts'
import { hashSecret } from './keystone/tokens.ts'
import type {
  FlavorRec,
  ImageRec,
  NetworkRec,
  ProjectRec,
  RoleRec,
  SubnetRec,
  UserRec,
} from './types.ts'

/** Names the lab seeds (also what tests and docs refer to). */
export const SEED = {
  project: 'demo',
  user: 'demo',
  adminProject: 'admin',
  adminUser: 'admin',
  appCredential: 'runbook-lab',
  network: 'mynetwork',
  subnet: 'mysubnet',
  externalNetwork: 'public',
  externalSubnet: 'public-subnet',
  router: 'myrouter',
  /** The router's own address on the external subnet, outside the floating pool. */
  routerGatewayIp: '198.51.100.2',
} as const

const FLAVORS: [id: string, name: string, ram: number, vcpus: number, disk: number][] = [
  ['1', 'm1.tiny', 512, 1, 1],
  ['2', 'm1.small', 2048, 1, 20],
  ['3', 'm1.medium', 4096, 2, 40],
  ['4', 'm1.large', 8192, 4, 80],
  ['5', 'm1.xlarge', 16384, 8, 160],
  // k1.*: QEMU VMs with Debian's kernel (lab/hosts/qemu.ts); the RAM is what the guest gets
  ['6', 'k1.small', 192, 1, 3],
  ['7', 'k1.medium', 384, 1, 3],
]

const IMAGES: [name: string, distro: string, version: string, user: string][] = IMAGE_RECIPES.map(
  (r) => [r.name, r.distro, r.version, r.defaultUser],
)

function ensureRole(cloud: Cloud, name: string): RoleRec {
  let r = cloud.state.roles.find((x) => x.name === name)
  if (r === undefined) {
    r = { id: hexId(), name }
    cloud.state.roles.push(r)
  }
  return r
}

function ensureProject(cloud: Cloud, name: string, description: string): ProjectRec {
  let p = cloud.state.projects.find((x) => x.name === name)
  if (p === undefined) {
    p = { id: hexId(), name, domainId: 'default', description, enabled: true }
    cloud.state.projects.push(p)
  }
  return p
}

function ensureUser(
  cloud: Cloud,
  name: string,
  password: string,
  project: ProjectRec,
  role: RoleRec,
): UserRec {
  let u = cloud.state.users.find((x) => x.name === name)
  if (u === undefined) {
    u = {
      id: hexId(),
      name,
      domainId: 'default',
      passwordHash: hashSecret(password),
      defaultProjectId: project.id,
      enabled: true,
    }
    cloud.state.users.push(u)
  }
  const user = u
  if (
    !cloud.state.assignments.some(
      (a) => a.userId === user.id && a.projectId === project.id && a.roleId === role.id,
    )
  ) {
    cloud.state.assignments.push({ userId: user.id, projectId: project.id, roleId: role.id })
  }
  return user
}

function ensureNetwork(
  cloud: Cloud,
  name: string,
  projectId: string,
  external: boolean,
): NetworkRec {
  let n = cloud.state.networks.find((x) => x.name === name)
  if (n === undefined) {
    n = {
      ...newStandard(projectId, name, ''),
      adminStateUp: true,
      shared: false,
      external,
      mtu: 1500,
      portSecurityEnabled: true,
      providerNetworkType: external ? 'flat' : 'vxlan',
      providerPhysicalNetwork: external ? 'public' : null,
      providerSegmentationId: external ? null : 100,
    }
    cloud.state.networks.push(n)
  }
  return n
}

/** A seeded subnet: its name, range, gateway, allocation pool and DHCP. */
interface SeedSubnet {
  name: string
  cidr: string
  gatewayIp: string
  pool: [string, string]
  dhcp: boolean
}

function ensureSubnet(
  cloud: Cloud,
  net: NetworkRec,
  { name, cidr, gatewayIp, pool, dhcp }: SeedSubnet,
): SubnetRec {
  let s = cloud.state.subnets.find((x) => x.name === name && x.networkId === net.id)
  if (s === undefined) {
    s = {
      ...newStandard(net.projectId, name, ''),
      networkId: net.id,
      cidr,
      gatewayIp,
      allocationPools: [{ start: pool[0], end: pool[1] }],
      enableDhcp: dhcp,
      dnsNameservers: [],
      hostRoutes: [],
    }
    cloud.state.subnets.push(s)
  }
  return s
}

/** Fill in whatever of the seed is missing. */
export function seedCloud(cloud: Cloud): void {
  const st = cloud.state
  const seed = (st.seed ??= {
    demoPassword: secret(18),
    adminPassword: secret(18),
    appCredId: '',
    appCredName: SEED.appCredential,
    appCredSecret: secret(48),
  })
  const admin = ensureRole(cloud, 'admin')
  const member = ensureRole(cloud, 'member')
  const reader = ensureRole(cloud, 'reader')
  const adminProject = ensureProject(
    cloud,
    SEED.adminProject,
    'Bootstrap project for initializing the cloud.',
  )
  const demo = ensureProject(cloud, SEED.project, 'The runbook lab project')
  ensureUser(cloud, SEED.adminUser, seed.adminPassword, adminProject, admin)
  const demoUser = ensureUser(cloud, SEED.user, seed.demoPassword, demo, member)
  if (!st.appCreds.some((c) => c.id === seed.appCredId)) {
    seed.appCredId = hexId()
    st.appCreds = st.appCreds.filter(
      (c) => !(c.userId === demoUser.id && c.name === seed.appCredName),
    )
    st.appCreds.push({
      id: seed.appCredId,
      name: seed.appCredName,
      description: 'runbook lab',
      userId: demoUser.id,
      projectId: demo.id,
      secretHash: hashSecret(seed.appCredSecret),
      roleIds: [member.id, reader.id],
      expiresAt: null,
      unrestricted: null,
    })
  }

  for (const [id, name, ram, vcpus, disk] of FLAVORS) {
    if (st.flavors.some((f) => f.name === name)) continue
    const flavor: FlavorRec = {
      id,
      name,
      ram,
      vcpus,
      disk,
      ephemeral: 0,
      swap: 0,
      rxtxFactor: 1,
      isPublic: true,
      disabled: false,
      description: null,
      extraSpecs: {},
    }
    st.flavors.push(flavor)
  }
  for (const [name, distro, version, user] of IMAGES) {
    if (st.images.some((i) => i.name === name)) continue
    const now = isoSeconds()
    const image: ImageRec = {
      id: uuid(),
      name,
      owner: adminProject.id,
      createdAt: now,
      updatedAt: now,
      size: 0,
      checksum: createHash('md5').update(name).digest('hex'),
      minDisk: 0,
      minRam: 0,
      diskFormat: 'raw',
      containerFormat: 'bare',
      tags: [],
      properties: {
        os_distro: distro,
        os_version: version,
        os_admin_user: user,
        hw_architecture: 'x86_64',
      },
      defaultUser: user,
    }
    st.images.push(image)
  }

  const pub = ensureNetwork(cloud, SEED.externalNetwork, adminProject.id, true)
  ensureSubnet(cloud, pub, {
    name: SEED.externalSubnet,
    cidr: '198.51.100.0/25',
    gatewayIp: '198.51.100.1',
    pool: ['198.51.100.10', '198.51.100.126'],
    dhcp: false,
  })
  const net = ensureNetwork(cloud, SEED.network, demo.id, false)
  const subnet = ensureSubnet(cloud, net, {
    name: SEED.subnet,
    cidr: '192.0.2.0/24',
    gatewayIp: '192.0.2.1',
    pool: ['192.0.2.10', '192.0.2.254'],
    dhcp: true,
  })
  let router = st.routers.find((r) => r.name === SEED.router)
  if (router === undefined) {
    router = { ...newStandard(demo.id, SEED.router, ''), adminStateUp: true, gateway: null }
    st.routers.push(router)
  }
  if (router.gateway === null)
    setGateway(cloud, router, pub, [{ ip_address: SEED.routerGatewayIp }], true)
  const routerId = router.id
  const hasIface = st.ports.some(
    (p) =>
      p.deviceId === routerId &&
      p.deviceOwner === 'network:router_interface' &&
      p.fixedIps.some((f) => f.subnetId === subnet.id),
  )
  if (!hasIface)
    addInterface(cloud, router, { subnet_id: subnet.id }, seedAuth(demoUser.id, demo.id))

  ensureDefaultSecurityGroup(cloud, demo.id)
  ensureDefaultSecurityGroup(cloud, adminProject.id)
  if (!st.securityGroups.some((g) => g.projectId === demo.id && g.name === 'ssh')) {
    const ssh = { ...newStandard(demo.id, 'ssh', 'SSH from anywhere'), stateful: true }
    st.securityGroups.push(ssh)
    for (const ethertype of ['IPv4', 'IPv6'] as const)
      st.securityGroupRules.push(newRule(ssh, { direction: 'egress', ethertype }))
    st.securityGroupRules.push(
      newRule(ssh, {
        direction: 'ingress',
        ethertype: 'IPv4',
        protocol: 'tcp',
        portRangeMin: 22,
        portRangeMax: 22,
        remoteIpPrefix: '0.0.0.0/0',
      }),
    )
  }
}

function seedAuth(userId: string, projectId: string): AuthContext {
  const now = Date.now()
  return {
    token: '',
    payload: { u: userId, p: projectId, m: ['password'], a: null, iat: now, exp: now, aud: '' },
    userId,
    projectId,
    roleNames: ['admin'],
    isAdmin: true,
  }
}

/**
 * Write clouds.yaml: `lab` (demo, password), `lab-appcred` (demo, application credential by id),
 * `lab-appcred-name` (the same by name and user) and `lab-admin`.
 */
export async function writeCloudsYaml(cloud: Cloud): Promise<string> {
  const seed = cloud.state.seed
  if (seed === null) throw new Error('the lab is not seeded')
  const authUrl = `${cloud.endpoint}/v3`
  const common = { region_name: 'RegionOne', interface: 'public', identity_api_version: 3 }
  const password = (username: string, pw: string, project: string) => ({
    auth: {
      auth_url: authUrl,
      username,
      password: pw,
      project_name: project,
      user_domain_name: 'Default',
      project_domain_name: 'Default',
    },
    ...common,
  })
  const doc = {
    clouds: {
      lab: password(SEED.user, seed.demoPassword, SEED.project),
      'lab-appcred': {
        auth_type: 'v3applicationcredential',
        auth: {
          auth_url: authUrl,
          application_credential_id: seed.appCredId,
          application_credential_secret: seed.appCredSecret,
        },
        ...common,
      },
      'lab-appcred-name': {
        auth_type: 'v3applicationcredential',
        auth: {
          auth_url: authUrl,
          application_credential_name: seed.appCredName,
          application_credential_secret: seed.appCredSecret,
          username: SEED.user,
          user_domain_name: 'Default',
        },
        ...common,
      },
      'lab-admin': password(SEED.adminUser, seed.adminPassword, SEED.adminProject),
    },
  }
  const file = labPaths(cloud.stateDir).clouds
  await writeFileAtomic(
    file,
    `# Written by runbook lab up; the lab's API listens on ${cloud.endpoint}.\n${stringify(doc)}`,
    0o600,
  )
  return file
}
