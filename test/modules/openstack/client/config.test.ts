import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  cloudConfig,
  configFiles,
  resolveCloud,
} from '../../../../modules/openstack/client/config.ts'
import { authBody } from '../../../../modules/openstack/client/keystone.ts'

const SAMPLES = path.resolve('test/fixtures/openstack-samples')
const root = mkdtempSync(path.join(tmpdir(), 'rbt-os-config-'))
const cwd = path.join(root, 'work')
const home = path.join(root, 'home')
mkdirSync(cwd, { recursive: true })
mkdirSync(path.join(home, '.config', 'openstack'), { recursive: true })
afterAll(() => rmSync(root, { recursive: true, force: true }))

const cloud = (name: string, extra: Record<string, unknown> = {}): string =>
  `clouds:\n  ${name}:\n    auth:\n      auth_url: http://${name}.example:5000/v3\n      username: u-${name}\n      password: p-${name}\n      project_name: demo\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n${Object.entries(
    extra,
  )
    .map(([k, v]) => `    ${k}: ${String(v)}\n`)
    .join('')}`

describe('clouds.yaml and OS_* variables, as the openstack CLI reads them', () => {
  it('searches OS_CLIENT_CONFIG_FILE, then ./, then ~/.config/openstack, then /etc/openstack', () => {
    const files = configFiles('clouds', { env: { OS_CLIENT_CONFIG_FILE: '/x/my.yaml' }, cwd, home })
    expect(files[0]).toBe('/x/my.yaml')
    expect(files).toContain(path.join(cwd, 'clouds.yaml'))
    expect(files.indexOf(path.join(cwd, 'clouds.yaml'))).toBeLessThan(
      files.indexOf(path.join(home, '.config/openstack/clouds.yaml')),
    )
    expect(files.indexOf(path.join(home, '.config/openstack/clouds.yaml'))).toBeLessThan(
      files.indexOf('/etc/openstack/clouds.yaml'),
    )
    expect(configFiles('clouds', { env: { XDG_CONFIG_HOME: '/xdg' }, cwd, home })).toContain(
      '/xdg/openstack/clouds.yaml',
    )
  })

  it('takes the first clouds.yaml found, the cloud named by the caller or OS_CLOUD', () => {
    writeFileSync(path.join(home, '.config/openstack/clouds.yaml'), cloud('home'))
    expect(resolveCloud({ cloud: 'home', env: {}, cwd, home }).auth.username).toBe('u-home')
    expect(resolveCloud({ env: { OS_CLOUD: 'home' }, cwd, home }).source).toBe(
      path.join(home, '.config/openstack/clouds.yaml'),
    )
    writeFileSync(path.join(cwd, 'clouds.yaml'), cloud('here'))
    // ./clouds.yaml now wins and does not define `home`: the CLI reads only the first file.
    expect(() => resolveCloud({ cloud: 'home', env: {}, cwd, home })).toThrow(
      /cloud 'home' is not in .*work\/clouds.yaml/,
    )
    const explicit = path.join(root, 'explicit.yaml')
    writeFileSync(explicit, cloud('explicit'))
    expect(
      resolveCloud({ env: { OS_CLOUD: 'explicit', OS_CLIENT_CONFIG_FILE: explicit }, cwd, home })
        .auth.auth_url,
    ).toBe('http://explicit.example:5000/v3')
    rmSync(path.join(cwd, 'clouds.yaml'))
  })

  it('merges secure.yaml and lays OS_* variables over the named cloud', () => {
    writeFileSync(
      path.join(home, '.config/openstack/clouds.yaml'),
      'clouds:\n  nopw:\n    auth:\n      auth_url: http://nopw.example/identity\n      username: alice\n      project_id: p1\n',
    )
    writeFileSync(
      path.join(home, '.config/openstack/secure.yaml'),
      'clouds:\n  nopw:\n    auth:\n      password: from-secure\n',
    )
    const c = resolveCloud({ cloud: 'nopw', env: {}, cwd, home })
    expect(c.auth.password).toBe('from-secure')
    expect(c.auth.user_domain_id).toBe('default')
    const over = resolveCloud({
      cloud: 'nopw',
      env: { OS_PASSWORD: 'from-env', OS_REGION_NAME: 'RegionTwo', OS_INTERFACE: 'internalURL' },
      cwd,
      home,
    })
    expect(over.auth.password).toBe('from-env')
    expect(over.regionName).toBe('RegionTwo')
    expect(over.interface).toBe('internal')
    rmSync(path.join(home, '.config/openstack/secure.yaml'))
  })

  it('builds a cloud from OS_* variables alone (password, or an application credential)', () => {
    const rc = Object.fromEntries(
      readFileSync(path.join(SAMPLES, 'openrc.sh'), 'utf8')
        .split('\n')
        .flatMap((l) => {
          const m = /^export (\w+)=(.*)$/.exec(l)
          return m ? [[m[1], m[2]]] : []
        }),
    ) as Record<string, string>
    const c = resolveCloud({ env: rc, cwd, home })
    expect(c).toMatchObject({
      name: 'envvars',
      authType: 'password',
      auth: {
        auth_url: 'http://controller:5000/v3',
        username: 'admin',
        password: 'ADMIN_PASS',
        project_name: 'admin',
        user_domain_name: 'Default',
        project_domain_name: 'Default',
      },
    })
    const app = resolveCloud({
      env: {
        OS_AUTH_URL: 'http://k/v3',
        OS_APPLICATION_CREDENTIAL_ID: 'ac1',
        OS_APPLICATION_CREDENTIAL_SECRET: 's3',
        OS_REGION_NAME: 'R',
      },
      cwd,
      home,
    })
    expect(app).toMatchObject({
      authType: 'v3applicationcredential',
      regionName: 'R',
      auth: { application_credential_id: 'ac1', application_credential_secret: 's3' },
    })
  })

  it('reads the openstacksdk documentation examples', () => {
    const env = { OS_CLIENT_CONFIG_FILE: path.join(SAMPLES, 'clouds.yaml') }
    const pw = resolveCloud({ cloud: 'example', env, cwd, home })
    expect(authBody(pw)).toEqual({
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'admin', domain: { id: 'default' }, password: 'password' } },
        },
        scope: { project: { name: 'admin', domain: { id: 'default' } } },
      },
    })
    const app = resolveCloud({ cloud: 'example-appcred', env, cwd, home })
    const sample = JSON.parse(
      readFileSync(path.join(SAMPLES, 'keystone-auth-appcred-id-req.json'), 'utf8'),
    ) as { auth: { identity: { methods: string[] } } }
    const body = authBody(app) as typeof sample
    expect(body.auth.identity.methods).toEqual(sample.auth.identity.methods)
    expect(body).toEqual({
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: {
            id: '9da0a8da3d394d09bf49dfc27014d254',
            secret: app.auth.application_credential_secret,
          },
        },
      },
    })
    const multi = resolveCloud({
      cloud: 'mordred',
      env: { OS_CLIENT_CONFIG_FILE: path.join(SAMPLES, 'clouds-multi.yaml') },
      cwd,
      home,
    })
    expect(multi.regionName).toBe('Dallas')
    expect(() =>
      resolveCloud({
        cloud: 'mtvexx',
        env: { OS_CLIENT_CONFIG_FILE: path.join(SAMPLES, 'clouds-multi.yaml') },
        cwd,
        home,
      }),
    ).toThrow(/no auth.auth_url/)
  })

  it('builds application-credential bodies by name with the user, and password bodies by ids', () => {
    expect(
      authBody(
        cloudConfig('x', 'test', {
          auth_type: 'v3applicationcredential',
          auth: {
            auth_url: 'http://k',
            application_credential_name: 'n',
            application_credential_secret: 's',
            username: 'demo',
            user_domain_name: 'Default',
          },
        }),
      ),
    ).toEqual({
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: {
            name: 'n',
            secret: 's',
            user: { name: 'demo', domain: { name: 'Default' } },
          },
        },
      },
    })
    expect(
      authBody(
        cloudConfig('x', 'test', {
          auth: { auth_url: 'http://k', user_id: 'u1', password: 'p', project_id: 'p1' },
        }),
      ),
    ).toEqual({
      auth: {
        identity: { methods: ['password'], password: { user: { id: 'u1', password: 'p' } } },
        scope: { project: { id: 'p1' } },
      },
    })
  })

  it('says what is missing', () => {
    expect(() => resolveCloud({ env: {}, cwd, home })).toThrow(/no OpenStack cloud selected/)
    expect(() =>
      cloudConfig('x', 'test', { auth: { auth_url: 'http://k', username: 'u' } }),
    ).toThrow(/needs auth.password/)
    expect(() =>
      cloudConfig('x', 'test', { auth_type: 'v3token', auth: { auth_url: 'http://k' } }),
    ).toThrow(/auth_type 'v3token' is not supported/)
    expect(() =>
      cloudConfig('x', 'test', {
        auth: { auth_url: 'http://k', username: 'u', password: 'p' },
        interface: 'weird',
      }),
    ).toThrow(/interface 'weird'/)
    try {
      resolveCloud({
        cloud: 'nope',
        env: { OS_CLIENT_CONFIG_FILE: path.join(SAMPLES, 'clouds.yaml') },
        cwd,
        home,
      })
      expect.unreachable()
    } catch (e) {
      expect((e as Error).message).toMatch(/cloud 'nope' is not in/)
      expect((e as { hint?: string }).hint).toMatch(/example, example-appcred/)
    }
  })
})
