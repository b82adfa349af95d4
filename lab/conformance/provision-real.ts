/**
 * Provisions the real Keystone and Neutron started by setup-real.sh so that they start from the
 * same state `runbook lab up` gives the lab: a `demo` project and user with an application
 * credential, a `network` endpoint in the catalog, an external network with a router gateway, the
 * project network `mynetwork`/`mysubnet` and the `ssh` security group. Idempotent: it finds before
 * it creates. Writes STATE/target.json.
 *
 * Usage: node --import tsx lab/conformance/provision-real.ts identity|network|nova-identity|nova-resources STATE
 * (the nova phases for setup-real-nova.sh: Nova, Placement and Glance in Keystone; a flavor and an image)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { arr, obj, send, str } from './http.ts'
import type { HttpResponse } from './http.ts'
import { targetSchema } from './target.ts'
import type { Target } from './target.ts'

const KEYSTONE = 'http://127.0.0.1:5000/v3'
const NEUTRON = 'http://127.0.0.1:9696'
const ADMIN_PASSWORD = 'conformance-admin'
const DEMO_PASSWORD = 'conformance-demo'
const NEUTRON_PASSWORD = 'conformance-neutron'
const APP_CRED_NAME = 'conformance'

function must(res: HttpResponse, what: string): HttpResponse {
  if (res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`)
  return res
}

async function token(user: string, password: string, project: string): Promise<string> {
  const res = must(
    await send({
      method: 'POST',
      url: `${KEYSTONE}/auth/tokens`,
      body: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: user, domain: { id: 'default' }, password } },
          },
          scope: { project: { name: project, domain: { id: 'default' } } },
        },
      },
    }),
    `token for ${user}`,
  )
  const t = res.headers['x-subject-token']
  if (t === undefined) throw new Error('no X-Subject-Token')
  return t
}

/** GET a Keystone collection filtered by name and return the first id, or create it. */
async function ensureKeystone(
  tok: string,
  coll: string,
  filter: string,
  create: unknown,
): Promise<string> {
  const found = arr(
    obj(
      must(await send({ method: 'GET', url: `${KEYSTONE}/${coll}?${filter}`, token: tok }), coll)
        .body,
    )[coll],
  )
  const id = str(found[0], 'id')
  if (id !== undefined) return id
  const res = must(
    await send({ method: 'POST', url: `${KEYSTONE}/${coll}`, token: tok, body: create }),
    `create ${coll}`,
  )
  const created = str(Object.values(obj(res.body))[0], 'id')
  if (created === undefined) throw new Error(`create ${coll}: no id`)
  return created
}

async function roleId(tok: string, name: string): Promise<string> {
  const roles = arr(
    obj((await send({ method: 'GET', url: `${KEYSTONE}/roles?name=${name}`, token: tok })).body)[
      'roles'
    ],
  )
  const id = str(roles[0], 'id')
  if (id === undefined)
    throw new Error(`role ${name} missing (keystone-manage bootstrap creates it)`)
  return id
}

async function identity(state: string): Promise<void> {
  const admin = await token('admin', ADMIN_PASSWORD, 'admin')
  const domain = 'default'
  const demoProject = await ensureKeystone(admin, 'projects', 'name=demo', {
    project: { name: 'demo', domain_id: domain },
  })
  const serviceProject = await ensureKeystone(admin, 'projects', 'name=service', {
    project: { name: 'service', domain_id: domain },
  })
  const demoUser = await ensureKeystone(admin, 'users', 'name=demo', {
    user: {
      name: 'demo',
      domain_id: domain,
      password: DEMO_PASSWORD,
      default_project_id: demoProject,
    },
  })
  const neutronUser = await ensureKeystone(admin, 'users', 'name=neutron', {
    user: { name: 'neutron', domain_id: domain, password: NEUTRON_PASSWORD },
  })
  const member = await roleId(admin, 'member')
  const adminRole = await roleId(admin, 'admin')
  must(
    await send({
      method: 'PUT',
      url: `${KEYSTONE}/projects/${demoProject}/users/${demoUser}/roles/${member}`,
      token: admin,
    }),
    'grant',
  )
  must(
    await send({
      method: 'PUT',
      url: `${KEYSTONE}/projects/${serviceProject}/users/${neutronUser}/roles/${adminRole}`,
      token: admin,
    }),
    'grant',
  )
  const service = await ensureKeystone(admin, 'services', 'type=network', {
    service: { type: 'network', name: 'neutron' },
  })
  for (const iface of ['public', 'internal', 'admin']) {
    await ensureKeystone(admin, 'endpoints', `service_id=${service}&interface=${iface}`, {
      endpoint: { service_id: service, interface: iface, url: NEUTRON, region_id: 'RegionOne' },
    })
  }
  const appCred = await ensureAppCred(state, demoUser)
  const target: Target = {
    name: 'real',
    keystoneUrl: KEYSTONE,
    neutronUrl: NEUTRON,
    credentials: {
      password: {
        username: 'demo',
        password: DEMO_PASSWORD,
        userDomainName: 'Default',
        projectName: 'demo',
        projectDomainName: 'Default',
      },
      applicationCredential: {
        ...appCred,
        name: APP_CRED_NAME,
        username: 'demo',
        userDomainName: 'Default',
      },
    },
  }
  writeFileSync(join(state, 'target.json'), `${JSON.stringify(target, null, 2)}\n`, { mode: 0o600 })
  console.log(`identity ready: demo project ${demoProject}, app credential ${appCred.id}`)
}

/** Keystone shows an application credential's secret only once, so reuse the one on disk if it still works. */
async function ensureAppCred(
  state: string,
  demoUser: string,
): Promise<{ id: string; secret: string }> {
  const file = join(state, 'target.json')
  if (existsSync(file)) {
    const old = targetSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')))
    const standing = old.success ? old.data.credentials.applicationCredential : undefined
    if (standing !== undefined) {
      const { id, secret } = standing
      const res = await send({
        method: 'POST',
        url: `${KEYSTONE}/auth/tokens`,
        body: {
          auth: {
            identity: {
              methods: ['application_credential'],
              application_credential: { id, secret },
            },
          },
        },
      })
      if (res.status === 201) return { id, secret }
    }
  }
  const demo = await token('demo', DEMO_PASSWORD, 'demo')
  const url = `${KEYSTONE}/users/${demoUser}/application_credentials`
  const existing = arr(
    obj((await send({ method: 'GET', url: `${url}?name=${APP_CRED_NAME}`, token: demo })).body)[
      'application_credentials'
    ],
  )
  for (const c of existing) {
    const id = str(c, 'id')
    if (id !== undefined)
      must(await send({ method: 'DELETE', url: `${url}/${id}`, token: demo }), 'delete app cred')
  }
  const res = must(
    await send({
      method: 'POST',
      url,
      token: demo,
      body: { application_credential: { name: APP_CRED_NAME, description: 'runbook conformance' } },
    }),
    'create app cred',
  )
  const cred = obj(obj(res.body)['application_credential'])
  const id = str(cred, 'id')
  const secret = str(cred, 'secret')
  if (id === undefined || secret === undefined) throw new Error('app cred without id/secret')
  return { id, secret }
}

/** Find a Neutron resource by name (and extra filters) or create it; returns its id. */
async function ensureNeutron(
  tok: string,
  kind: string,
  query: string,
  create: Record<string, unknown>,
): Promise<string> {
  const plural = `${kind}s`
  const list = arr(
    obj(
      must(
        await send({ method: 'GET', url: `${NEUTRON}/v2.0/${plural}?${query}`, token: tok }),
        plural,
      ).body,
    )[plural],
  )
  const id = str(list[0], 'id')
  if (id !== undefined) return id
  const res = must(
    await send({
      method: 'POST',
      url: `${NEUTRON}/v2.0/${plural}`,
      token: tok,
      body: { [kind]: create },
    }),
    `create ${kind}`,
  )
  const created = str(obj(res.body)[kind], 'id')
  if (created === undefined) throw new Error(`create ${kind}: no id`)
  return created
}

async function network(): Promise<void> {
  const admin = await token('admin', ADMIN_PASSWORD, 'admin')
  const demo = await token('demo', DEMO_PASSWORD, 'demo')
  const pub = await ensureNeutron(admin, 'network', 'name=public', {
    name: 'public',
    'router:external': true,
    'provider:network_type': 'flat',
    'provider:physical_network': 'public',
  })
  await ensureNeutron(admin, 'subnet', `name=public-subnet&network_id=${pub}`, {
    name: 'public-subnet',
    network_id: pub,
    ip_version: 4,
    cidr: '198.51.100.0/25',
    gateway_ip: '198.51.100.1',
    allocation_pools: [{ start: '198.51.100.10', end: '198.51.100.126' }],
    enable_dhcp: false,
  })
  const net = await ensureNeutron(demo, 'network', 'name=mynetwork', { name: 'mynetwork' })
  const subnet = await ensureNeutron(demo, 'subnet', `name=mysubnet&network_id=${net}`, {
    name: 'mysubnet',
    network_id: net,
    ip_version: 4,
    cidr: '192.0.2.0/24',
    gateway_ip: '192.0.2.1',
    allocation_pools: [{ start: '192.0.2.10', end: '192.0.2.254' }],
  })
  const router = await ensureNeutron(demo, 'router', 'name=myrouter', {
    name: 'myrouter',
    external_gateway_info: { network_id: pub },
  })
  const ports = arr(
    obj(
      (
        await send({
          method: 'GET',
          url: `${NEUTRON}/v2.0/ports?device_id=${router}&network_id=${net}`,
          token: demo,
        })
      ).body,
    )['ports'],
  )
  if (ports.length === 0) {
    must(
      await send({
        method: 'PUT',
        url: `${NEUTRON}/v2.0/routers/${router}/add_router_interface`,
        token: demo,
        body: { subnet_id: subnet },
      }),
      'add_router_interface',
    )
  }
  const ssh = await ensureNeutron(demo, 'security_group', 'name=ssh', {
    name: 'ssh',
    description: 'SSH from anywhere',
  })
  const rules = arr(
    obj(
      (
        await send({
          method: 'GET',
          url: `${NEUTRON}/v2.0/security-group-rules?security_group_id=${ssh}&protocol=tcp`,
          token: demo,
        })
      ).body,
    )['security_group_rules'],
  )
  if (rules.length === 0) {
    must(
      await send({
        method: 'POST',
        url: `${NEUTRON}/v2.0/security-group-rules`,
        token: demo,
        body: {
          security_group_rule: {
            security_group_id: ssh,
            direction: 'ingress',
            ethertype: 'IPv4',
            protocol: 'tcp',
            port_range_min: 22,
            port_range_max: 22,
            remote_ip_prefix: '0.0.0.0/0',
          },
        },
      }),
      'ssh rule',
    )
  }
  // Listing security groups makes Neutron create the project's `default` group, as the lab has one.
  await send({ method: 'GET', url: `${NEUTRON}/v2.0/security-groups?name=default`, token: demo })
  console.log(
    `network ready: public ${pub}, mynetwork ${net}, mysubnet ${subnet}, myrouter ${router}`,
  )
}

const NOVA = 'http://127.0.0.1:18774/v2.1'
const PLACEMENT = 'http://127.0.0.1:18778'
const GLANCE = 'http://127.0.0.1:19292'
/** The Nova layer's service users (setup-real-nova.sh writes the same passwords into its configs). */
const NOVA_SERVICES = [
  { user: 'nova', type: 'compute', url: NOVA },
  { user: 'placement', type: 'placement', url: PLACEMENT },
  { user: 'glance', type: 'image', url: GLANCE },
] as const

/** Finds a role by name or makes it. */
async function ensureRole(tok: string, name: string): Promise<string> {
  return ensureKeystone(tok, 'roles', `name=${name}`, { role: { name } })
}

/**
 * Nova, Placement and Glance in Keystone: their users with `admin` on project `service`, their
 * catalog entries, and the `service` role (Zed's nova-api sends its own token as X-Service-Token
 * with every call to Neutron; Zed's bootstrap makes no such role) given to every service user.
 */
async function novaIdentity(): Promise<void> {
  const admin = await token('admin', ADMIN_PASSWORD, 'admin')
  const serviceProject = await ensureKeystone(admin, 'projects', 'name=service', {
    project: { name: 'service', domain_id: 'default' },
  })
  const adminRole = await roleId(admin, 'admin')
  const serviceRole = await ensureRole(admin, 'service')
  const grant = async (user: string, role: string) =>
    must(
      await send({
        method: 'PUT',
        url: `${KEYSTONE}/projects/${serviceProject}/users/${user}/roles/${role}`,
        token: admin,
      }),
      'grant',
    )
  for (const s of NOVA_SERVICES) {
    const user = await ensureKeystone(admin, 'users', `name=${s.user}`, {
      user: { name: s.user, domain_id: 'default', password: `conformance-${s.user}` },
    })
    await grant(user, adminRole)
    await grant(user, serviceRole)
    const service = await ensureKeystone(admin, 'services', `type=${s.type}`, {
      service: { type: s.type, name: s.user },
    })
    for (const iface of ['public', 'internal', 'admin'])
      await ensureKeystone(admin, 'endpoints', `service_id=${service}&interface=${iface}`, {
        endpoint: { service_id: service, interface: iface, url: s.url, region_id: 'RegionOne' },
      })
  }
  const neutron = await ensureKeystone(admin, 'users', 'name=neutron', {
    user: { name: 'neutron', domain_id: 'default', password: NEUTRON_PASSWORD },
  })
  await grant(neutron, serviceRole)
  console.log('nova identity ready')
}

/** The flavor and image the module tests boot: m1.small and a 4 KiB raw `cirros-fake`. */
async function novaResources(): Promise<void> {
  const admin = await token('admin', ADMIN_PASSWORD, 'admin')
  const flavors = arr(
    obj(must(await send({ method: 'GET', url: `${NOVA}/flavors`, token: admin }), 'flavors').body)[
      'flavors'
    ],
  )
  if (!flavors.some((f) => str(f, 'name') === 'm1.small'))
    must(
      await send({
        method: 'POST',
        url: `${NOVA}/flavors`,
        token: admin,
        body: { flavor: { name: 'm1.small', vcpus: 1, ram: 2048, disk: 20, id: '2' } },
      }),
      'create flavor',
    )
  const images = arr(
    obj(
      must(
        await send({ method: 'GET', url: `${GLANCE}/v2/images?name=cirros-fake`, token: admin }),
        'images',
      ).body,
    )['images'],
  )
  let image = images[0]
  if (image === undefined) {
    image = obj(
      must(
        await send({
          method: 'POST',
          url: `${GLANCE}/v2/images`,
          token: admin,
          body: {
            name: 'cirros-fake',
            disk_format: 'raw',
            container_format: 'bare',
            visibility: 'public',
          },
        }),
        'create image',
      ).body,
    )
  }
  const id = str(image, 'id') ?? ''
  if (str(image, 'status') !== 'active') {
    // raw, so that no format check can refuse it; the FakeDriver never reads it
    const res = await fetch(`${GLANCE}/v2/images/${id}/file`, {
      method: 'PUT',
      headers: { 'X-Auth-Token': admin, 'Content-Type': 'application/octet-stream' },
      body: Buffer.alloc(4096),
    })
    if (res.status >= 300) throw new Error(`upload image: HTTP ${res.status} ${await res.text()}`)
  }
  console.log(`nova resources ready: flavor m1.small, image cirros-fake ${id}`)
}

const PHASES: Record<string, (state: string) => Promise<void>> = {
  identity,
  network: () => network(),
  'nova-identity': () => novaIdentity(),
  'nova-resources': () => novaResources(),
}
const [phase, state] = process.argv.slice(2)
const run = phase === undefined ? undefined : PHASES[phase]
if (state === undefined || run === undefined) {
  console.error(`usage: provision-real.ts ${Object.keys(PHASES).join('|')} STATE`)
  process.exit(2)
}
await run(state)
