/**
 * The client over real HTTP against the lab API in-process (hosts off): Keystone both ways,
 * the catalog, the microversion, pagination, error envelopes, token reuse, expiry and re-auth,
 * and secrets kept out of errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { OpenStackClient } from '../../../../modules/openstack/client/client.ts'
import { resolveCloud } from '../../../../modules/openstack/client/config.ts'
import { OpenStackApiError } from '../../../../modules/openstack/client/errors.ts'
import { Neutron } from '../../../../modules/openstack/client/neutron.ts'
import { Nova, serverSchema } from '../../../../modules/openstack/client/nova.ts'
import { startCloud, type TestCloud } from '../harness.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('OpenStack client against the lab API', () => {
  let cloud: TestCloud
  const client = (
    name: string,
    o: ConstructorParameters<typeof OpenStackClient>[1] = {},
  ): OpenStackClient =>
    new OpenStackClient(
      resolveCloud({ env: { OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml, OS_CLOUD: name } }),
      { backoffMs: 5, ...o },
    )

  beforeAll(async () => {
    cloud = await startCloud()
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('authenticates with a password (clouds.yaml + OS_CLOUD) and finds the services in the catalog', async () => {
    const c = client('lab')
    const t = await c.token()
    expect(t.projectName).toBe('demo')
    expect(t.expiresAt).toBeGreaterThan(Date.now() + 50 * 60_000)
    expect(await c.endpoint('network')).toBe(`${cloud.url}/network/v2.0`)
    expect(await c.endpoint('compute')).toBe(`${cloud.url}/compute/v2.1`)
    expect(await c.endpoint('image')).toBe(`${cloud.url}/image/v2`)
    const nets = await new Neutron(c).network('mynetwork')
    expect(nets.name).toBe('mynetwork')
    expect(c.stats.auths).toBe(1)
  })

  it.each(['lab-appcred', 'lab-appcred-name'])(
    'authenticates with an application credential (%s), scoped to its project',
    async (name) => {
      const c = client(name)
      expect(c.config.authType).toBe('v3applicationcredential')
      const t = await c.token()
      expect(t.projectName).toBe('demo')
      expect((await new Neutron(c).network('mynetwork')).name).toBe('mynetwork')
    },
  )

  it('selects the interface and region, and says when the catalog has no match', async () => {
    const internal = new OpenStackClient({
      ...resolveCloud({ env: { OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml, OS_CLOUD: 'lab' } }),
      interface: 'internal',
    })
    expect(await internal.endpoint('network')).toBe(`${cloud.url}/network/v2.0`)
    const admin = new OpenStackClient({
      ...resolveCloud({ env: { OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml, OS_CLOUD: 'lab' } }),
      interface: 'admin',
    })
    await expect(admin.endpoint('network')).rejects.toThrow(
      /no admin network endpoint in region RegionOne/,
    )
    const elsewhere = client('lab')
    elsewhere.config.regionName = 'Elsewhere'
    await expect(elsewhere.endpoint('compute')).rejects.toThrow(
      /no public compute endpoint in region Elsewhere/,
    )
  })

  it('reuses one token for many requests', async () => {
    const c = client('lab')
    const n = new Neutron(c)
    for (let i = 0; i < 5; i++) await n.ports({ name: 'nothing' })
    await Promise.all([n.ports({}), n.ports({}), n.ports({})])
    expect(c.stats.auths).toBe(1)
  })

  it('authenticates once more when a token is refused (revoked), then goes on', async () => {
    const c = client('lab')
    const n = new Neutron(c)
    await n.ports({ name: 'x' })
    const old = (await c.token()).value
    const del = await fetch(`${cloud.url}/v3/auth/tokens`, {
      method: 'DELETE',
      headers: { 'X-Auth-Token': old, 'X-Subject-Token': old },
    })
    expect(del.status).toBe(204)
    const before = c.stats.requests
    await n.ports({ name: 'y' })
    expect(c.stats.auths).toBe(2)
    // the refused request, the authentication, the request again
    expect(c.stats.requests - before).toBe(3)
    expect((await c.token()).value).not.toBe(old)
  })

  it('sends Nova microversion headers and reads the shapes of that version', async () => {
    // Negotiated: the highest both the modules and the lab (2.100) support.
    const c = client('lab')
    const res = await c.request('compute', 'GET', '/servers/detail')
    expect(res.headers['openstack-api-version']).toBe('compute 2.100')
    const v = await new OpenStackClient(c.config, { microversion: '2.1' }).request(
      'compute',
      'GET',
      '/servers/detail',
    )
    expect(v.headers['openstack-api-version']).toBe('compute 2.1')
  })

  it('follows pagination links: Neutron networks_links, Nova servers_links, Glance next', async () => {
    const c = client('lab')
    const all = await c.list(
      'network',
      '/networks',
      'networks',
      z.object({ id: z.string(), name: z.string() }),
    )
    const before = c.stats.requests
    const paged = await c.list(
      'network',
      '/networks',
      'networks',
      z.object({ id: z.string(), name: z.string() }),
      { limit: 1 },
    )
    expect(paged.map((x) => x.id).sort()).toEqual(all.map((x) => x.id).sort())
    expect(all.length).toBeGreaterThanOrEqual(2)
    // one request per page, and one more that finds the end
    expect(c.stats.requests - before).toBeGreaterThanOrEqual(all.length)
    const images = await c.list(
      'image',
      '/images',
      'images',
      z.object({ id: z.string(), name: z.string() }),
      { limit: 1 },
    )
    expect(images.map((i) => i.name).sort()).toEqual(['Debian 12'])

    const nova = new Nova(c)
    const image = await nova.image('Debian 12')
    const flavor = await nova.flavor('m1.tiny')
    const net = await new Neutron(c).network('mynetwork')
    const ids: string[] = []
    for (let i = 0; i < 3; i++)
      ids.push(
        await nova.createServer({
          name: `rbt-page-${i}`,
          imageRef: image.id,
          flavorRef: flavor.id,
          networks: [{ uuid: net.id }],
        }),
      )
    try {
      const beforeServers = c.stats.requests
      const servers = await c.list('compute', '/servers/detail', 'servers', serverSchema, {
        limit: 2,
        query: { name: '^rbt-page-' },
      })
      expect(servers.map((s) => s.id).sort()).toEqual([...ids].sort())
      expect(c.stats.requests - beforeServers).toBe(2)
    } finally {
      for (const id of ids) await nova.deleteServer(id)
    }
  })

  it('reads a port list once per run until the client writes (a read-only POST keeps it)', async () => {
    const c = client('lab')
    const n = new Neutron(c)
    const net = await n.network('mynetwork')
    const requests = async (fn: () => Promise<unknown>): Promise<number> => {
      const before = c.stats.requests
      await fn()
      return c.stats.requests - before
    }
    expect(await requests(() => n.ports({ name: 'rbt-shared' }))).toBe(1)
    expect(await requests(() => n.ports({ name: 'rbt-shared' }))).toBe(0)
    const port = await n.createPort({ name: 'rbt-shared', network_id: net.id })
    try {
      expect(await n.ports({ name: 'rbt-shared' })).toEqual([
        expect.objectContaining({ id: port.id }),
      ])
      await c.request('compute', 'POST', '/servers/none/action', {
        body: { 'os-getConsoleOutput': {} },
        idempotent: true,
        accept: [404],
      })
      expect(await requests(() => n.ports({ name: 'rbt-shared' }))).toBe(0)
    } finally {
      await n.deletePort(port.id)
    }
    expect(await n.ports({ name: 'rbt-shared' })).toEqual([])
  })

  it("turns each service's error envelope into E_API with the API's own message", async () => {
    const c = client('lab')
    const n = new Neutron(c)
    const net = await n.network('mynetwork')
    const sub = await n.subnet('mysubnet', net.id)
    const port = await n.createPort({
      name: 'rbt-dup',
      network_id: net.id,
      fixed_ips: [{ subnet_id: sub.id, ip_address: '192.0.2.250' }],
    })
    try {
      const e = await n
        .createPort({
          name: 'rbt-dup2',
          network_id: net.id,
          fixed_ips: [{ subnet_id: sub.id, ip_address: '192.0.2.250' }],
        })
        .catch((x: unknown) => x)
      expect(e).toBeInstanceOf(OpenStackApiError)
      expect((e as OpenStackApiError).message).toBe(
        `Neutron 409 IpAddressAlreadyAllocated: IP address 192.0.2.250 already allocated in subnet ${sub.id} (POST /network/v2.0/ports)`,
      )
      expect((e as OpenStackApiError).code).toBe('E_API')
    } finally {
      await n.deletePort(port.id)
    }
    await expect(c.get('compute', '/servers/nope', z.unknown())).rejects.toThrow(
      'Nova 404 itemNotFound: Instance nope could not be found. (GET /compute/v2.1/servers/nope)',
    )
    await expect(c.get('image', '/images/nope', z.unknown())).rejects.toThrow(
      /^Glance 404 Not Found: .* \(GET \/image\/v2\/images\/nope\)$/,
    )
    await expect(n.deletePort('00000000-0000-4000-8000-000000000000')).resolves.toBe(false)
  })

  it('says why authentication failed, without the password', async () => {
    const secrets: string[] = []
    const bad = resolveCloud({
      env: {
        OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml,
        OS_CLOUD: 'lab',
        OS_PASSWORD: 'not-the-password-42',
      },
    })
    const c = new OpenStackClient(bad, { secret: (s) => secrets.push(s) })
    const e = (await c.token().catch((x: unknown) => x)) as OpenStackApiError
    expect(e.message).toBe(
      'Keystone 401 Unauthorized: The request you have made requires authentication. (POST /v3/auth/tokens)',
    )
    expect(e.hint).toMatch(/check the credentials of cloud 'lab'/)
    expect(JSON.stringify({ m: e.message, h: e.hint, s: e.stack })).not.toContain(
      'not-the-password-42',
    )
    expect(secrets).toContain('not-the-password-42')
  })

  it('says what to do when the application credential was deleted', async () => {
    const c = client('lab-appcred')
    const id = String(c.config.auth.application_credential_id)
    const cred = cloud.api.cloud.state.appCreds.find((x) => x.id === id)
    if (cred === undefined) throw new Error('the lab has no such application credential')
    cloud.api.cloud.state.appCreds.splice(cloud.api.cloud.state.appCreds.indexOf(cred), 1)
    try {
      const e = (await c.token().catch((x: unknown) => x)) as OpenStackApiError
      expect(e.message).toBe(
        `Keystone 404 Not Found: Could not find Application Credential: ${id}. (POST /v3/auth/tokens)`,
      )
      expect(e.hint).toMatch(
        new RegExp(
          `the application credential ${id} of cloud 'lab-appcred' .* was deleted, has expired or its secret is wrong: make a new one \\(openstack application credential create\\)`,
        ),
      )
    } finally {
      cloud.api.cloud.state.appCreds.push(cred)
    }
  })

  it('hands passwords and tokens to the redactor and scrubs them from what the API echoes', async () => {
    const secrets: string[] = []
    const cfg = resolveCloud({ env: { OS_CLIENT_CONFIG_FILE: cloud.cloudsYaml, OS_CLOUD: 'lab' } })
    const c = new OpenStackClient(cfg, { secret: (s) => secrets.push(s) })
    const token = (await c.token()).value
    expect(secrets).toEqual(expect.arrayContaining([cfg.auth.password, token]))
    const nova = new Nova(c)
    const image = await nova.image('Debian 12')
    // Nova echoes an invalid value in its 400: here one that carries the password and the token.
    const e = (await nova
      .createServer({
        name: 'rbt-leak',
        imageRef: image.id,
        flavorRef: '1',
        networks: 'none',
        user_data: `!${cfg.auth.password ?? ''} ${token}`,
      })
      .catch((x: unknown) => x)) as OpenStackApiError
    expect(e.message).toMatch(/^Nova 400 badRequest: Invalid input for field\/attribute user_data/)
    expect(e.message).toContain('***')
    expect(e.message).not.toContain(cfg.auth.password)
    expect(e.message).not.toContain(token)
  })

  it('renews a token shortly before it expires, and when the server says it expired (clock skew)', async () => {
    const short = await startCloud({ tokenTtlSeconds: 2 })
    try {
      const cfg = resolveCloud({
        env: { OS_CLIENT_CONFIG_FILE: short.cloudsYaml, OS_CLOUD: 'lab' },
      })
      const early = new OpenStackClient(cfg, { tokenMarginMs: 1500 })
      const n = new Neutron(early)
      await n.ports({ name: 'x' })
      await sleep(700)
      const before = early.stats.requests
      await n.ports({ name: 'y' })
      expect(early.stats.auths).toBe(2)
      expect(early.stats.requests - before).toBe(2)

      // A client whose clock runs a minute behind still believes in the token: the 401 decides.
      const late = new OpenStackClient(cfg, { tokenMarginMs: -60_000 })
      const m = new Neutron(late)
      await m.ports({ name: 'x' })
      await sleep(2200)
      const b2 = late.stats.requests
      await m.ports({ name: 'y' })
      expect(late.stats.auths).toBe(2)
      // refused (expired), authenticate, again
      expect(late.stats.requests - b2).toBe(3)
    } finally {
      await short.close()
    }
  })
})
