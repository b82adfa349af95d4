import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, o, passwordAuth, startTestLab } from '../harness.ts'
import type { TestLab } from '../harness.ts'

describe('lab API: Keystone', () => {
  let lab: TestLab
  beforeAll(async () => {
    lab = await startTestLab()
  })
  afterAll(async () => {
    await lab.close()
  })

  it('issues a project-scoped token for a user by name and domain, with the catalog', async () => {
    const seed = lab.api.cloud.state.seed
    const res = await lab.req('POST', '/v3/auth/tokens', {
      body: passwordAuth('demo', seed?.demoPassword ?? '', 'demo'),
    })
    expect(res.status).toBe(201)
    expect(res.headers.get('x-subject-token')).toMatch(/\S{20,}/)
    const token = o(res.body['token'])
    expect(Object.keys(token).sort()).toEqual([
      'audit_ids',
      'catalog',
      'expires_at',
      'is_domain',
      'issued_at',
      'methods',
      'project',
      'roles',
      'user',
    ])
    expect(token['methods']).toEqual(['password'])
    expect(o(token['project'])['name']).toBe('demo')
    expect(o(token['user'])).toMatchObject({
      name: 'demo',
      domain: { id: 'default', name: 'Default' },
      password_expires_at: null,
    })
    expect(
      a(token['roles'])
        .map((r) => r['name'])
        .sort(),
    ).toEqual(['member', 'reader'])
    const expires = Date.parse(String(token['expires_at']))
    expect(expires - Date.now()).toBeGreaterThan(3500_000)
    expect(String(token['expires_at'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    const catalog = a(token['catalog'])
    expect(catalog.map((c) => c['type']).sort()).toEqual([
      'compute',
      'identity',
      'image',
      'network',
    ])
    for (const svc of catalog) {
      const eps = a(svc['endpoints'])
      expect(eps.map((e) => e['interface']).sort()).toEqual(['internal', 'public'])
      for (const e of eps) expect(e).toMatchObject({ region: 'RegionOne', region_id: 'RegionOne' })
    }
    const compute = a(catalog.find((c) => c['type'] === 'compute')?.['endpoints'])[0]
    expect(compute?.['url']).toBe(`${lab.url}/compute/v2.1`)
  })

  it('scopes by project id and by user id too', async () => {
    const st = lab.api.cloud.state
    const demo = st.users.find((u) => u.name === 'demo')
    const project = st.projects.find((p) => p.name === 'demo')
    const res = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { id: demo?.id, password: st.seed?.demoPassword } },
          },
          scope: { project: { id: project?.id } },
        },
      },
    })
    expect(res.status).toBe(201)
    expect(o(o(res.body['token'])['project'])['id']).toBe(project?.id)
  })

  it('authenticates an application credential by id and by name + user', async () => {
    const seed = lab.api.cloud.state.seed
    const byId = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: seed?.appCredId, secret: seed?.appCredSecret },
          },
        },
      },
    })
    expect(byId.status).toBe(201)
    const token = o(byId.body['token'])
    expect(token['methods']).toEqual(['application_credential'])
    expect(o(token['application_credential'])).toEqual({
      id: seed?.appCredId,
      name: 'runbook-lab',
      restricted: true,
    })
    expect(o(token['project'])['name']).toBe('demo')
    const byName = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: {
              name: 'runbook-lab',
              secret: seed?.appCredSecret,
              user: { name: 'demo', domain: { name: 'Default' } },
            },
          },
        },
      },
    })
    expect(byName.status).toBe(201)
  })

  it("answers bad credentials with 401 in Keystone's envelope", async () => {
    const res = await lab.req('POST', '/v3/auth/tokens', {
      body: passwordAuth('demo', 'wrong', 'demo'),
    })
    expect(res.status).toBe(401)
    expect(res.body).toEqual({
      error: {
        code: 401,
        title: 'Unauthorized',
        message: 'The request you have made requires authentication.',
      },
    })
    expect(res.headers.get('www-authenticate')).toBe(`Keystone uri="${lab.url}/v3"`)
    const noUser = await lab.req('POST', '/v3/auth/tokens', {
      body: passwordAuth('nobody', 'x', 'demo'),
    })
    expect(noUser.status).toBe(401)
    const wrongProject = await lab.req('POST', '/v3/auth/tokens', {
      body: passwordAuth('demo', lab.api.cloud.state.seed?.demoPassword ?? '', 'admin'),
    })
    expect(wrongProject.status).toBe(401)
    const badSecret = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: lab.api.cloud.state.seed?.appCredId, secret: 'x' },
          },
        },
      },
    })
    expect(badSecret.status).toBe(401)
  })

  it("answers an unknown application credential id with 404 and a scoped one with the plugin's 401", async () => {
    const seed = lab.api.cloud.state.seed
    const unknown = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: 'deadbeef', secret: 'x' },
          },
        },
      },
    })
    expect(unknown.status).toBe(404)
    expect(unknown.body).toEqual({
      error: {
        code: 404,
        title: 'Not Found',
        message: 'Could not find Application Credential: deadbeef.',
      },
    })
    const project = lab.api.cloud.state.projects.find((p) => p.name === 'demo')?.id
    const scoped = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: seed?.appCredId, secret: seed?.appCredSecret },
          },
          scope: { project: { id: project } },
        },
      },
    })
    expect(scoped.status).toBe(401)
    expect(scoped.body).toEqual({
      error: {
        code: 401,
        identity: {},
        message:
          'Error authenticating with application credential: Application credentials cannot request a scope.',
        title: 'Unauthorized',
      },
    })
  })

  it('creates, lists, uses and deletes an application credential', async () => {
    const token = await lab.token()
    const user = lab.api.cloud.state.users.find((u) => u.name === 'demo')?.id ?? ''
    const created = await lab.req('POST', `/v3/users/${user}/application_credentials`, {
      token,
      body: { application_credential: { name: 'ci', description: 'x' } },
    })
    expect(created.status).toBe(201)
    const cred = o(created.body['application_credential'])
    expect(Object.keys(cred).sort()).toEqual([
      'description',
      'expires_at',
      'id',
      'links',
      'name',
      'project_id',
      'roles',
      'secret',
      'system',
      'unrestricted',
      'user_id',
    ])
    expect(
      a(cred['roles'])
        .map((r) => r['name'])
        .sort(),
    ).toEqual(['member', 'reader'])
    expect(Object.keys(a(cred['roles'])[0] ?? {}).sort()).toEqual([
      'description',
      'domain_id',
      'id',
      'name',
      'options',
    ])
    const listed = await lab.req('GET', `/v3/users/${user}/application_credentials?name=ci`, {
      token,
    })
    expect(a(listed.body['application_credentials'])).toHaveLength(1)
    const auth = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: cred['id'], secret: cred['secret'] },
          },
        },
      },
    })
    expect(auth.status).toBe(201)
    expect(
      (
        await lab.req('DELETE', `/v3/users/${user}/application_credentials/${String(cred['id'])}`, {
          token,
        })
      ).status,
    ).toBe(204)
    const gone = await lab.req('POST', '/v3/auth/tokens', {
      body: {
        auth: {
          identity: {
            methods: ['application_credential'],
            application_credential: { id: cred['id'], secret: cred['secret'] },
          },
        },
      },
    })
    expect(gone.status).toBe(404)
  })

  it('answers a malformed request with 400', async () => {
    const res = await lab.req('POST', '/v3/auth/tokens', { body: { auth: {} } })
    expect(res.status).toBe(400)
    expect(o(res.body['error'])).toMatchObject({ code: 400, title: 'Bad Request' })
  })

  it('validates and revokes tokens; services reject missing, forged and revoked ones', async () => {
    const token = await lab.token()
    const other = await lab.token()
    const check = await lab.req('GET', '/v3/auth/tokens', {
      token,
      headers: { 'X-Subject-Token': other },
    })
    expect(check.status).toBe(200)
    expect(check.headers.get('x-subject-token')).toBe(other)
    expect(o(check.body['token'])['methods']).toEqual(['password'])
    expect((await lab.req('GET', '/network/v2.0/networks')).status).toBe(401)
    const forged = await lab.req('GET', '/network/v2.0/networks', {
      token: `${token.slice(0, -2)}xx`,
    })
    expect(forged.status).toBe(401)
    expect(forged.body).toEqual({
      error: {
        code: 401,
        title: 'Unauthorized',
        message: 'The request you have made requires authentication.',
      },
    })
    expect(
      (await lab.req('DELETE', '/v3/auth/tokens', { token, headers: { 'X-Subject-Token': other } }))
        .status,
    ).toBe(204)
    expect((await lab.req('GET', '/compute/v2.1/servers', { token: other })).status).toBe(401)
    expect((await lab.req('GET', '/compute/v2.1/servers', { token })).status).toBe(200)
  })

  it('serves version discovery where keystoneauth and the SDK look', async () => {
    const root = await lab.req('GET', '/')
    expect(root.status).toBe(300)
    expect(a(o(root.body['versions'])['values'])[0]).toMatchObject({
      id: 'v3.14',
      status: 'stable',
    })
    const v3 = await lab.req('GET', '/v3')
    expect(o(v3.body['version'])['links']).toEqual([{ rel: 'self', href: `${lab.url}/v3/` }])
    const compute = await lab.req('GET', '/compute/')
    expect(a(compute.body['versions']).map((v) => v['id'])).toEqual(['v2.0', 'v2.1'])
    const v21 = await lab.req('GET', '/compute/v2.1')
    expect(o(v21.body['version'])).toMatchObject({
      id: 'v2.1',
      min_version: '2.1',
      version: '2.100',
    })
    const network = await lab.req('GET', '/network/')
    expect(a(network.body['versions'])[0]).toMatchObject({ id: 'v2.0', status: 'CURRENT' })
    expect((await lab.req('GET', '/image/')).status).toBe(300)
  })
})

describe('lab API: token expiry', () => {
  it('rejects a token after its expiry', async () => {
    const lab = await startTestLab({ tokenTtlSeconds: 1 })
    try {
      const token = await lab.token()
      expect((await lab.req('GET', '/network/v2.0/networks', { token })).status).toBe(200)
      await new Promise((r) => setTimeout(r, 1100))
      const res = await lab.req('GET', '/network/v2.0/networks', { token })
      expect(res.status).toBe(401)
      expect(o(res.body['error'])['code']).toBe(401)
    } finally {
      await lab.close()
    }
  })
})
