/**
 * The conformance sequence: one list of Keystone v3 and Neutron v2.0 requests, written once and
 * run against any target (the lab or the real services), recording per step the status, the
 * error type, the shape of the body and a few value facts. compare.ts diffs two runs.
 *
 * Usage: node --import tsx lab/conformance/sequence.ts TARGET.json > result.json
 */
import { randomBytes } from 'node:crypto'
import { arr, obj, send, str } from './http.ts'
import type { HttpRequest, HttpResponse } from './http.ts'
import { Recorder } from './recorder.ts'
import type { Fact, SequenceResult } from './recorder.ts'
import { readTarget } from './target.ts'
import type { Target } from './target.ts'

/** Addresses the sequence asks for on the tenant subnet (192.0.2.0/24); the lab seeds none of them. */
const FIXED_IP = '192.0.2.240'
const PAIR_IP = '192.0.2.241'
/** Ids that exist nowhere. */
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000'
/** Every name the sequence gives starts with this, so a later run can sweep what a crashed one left. */
const PREFIX = 'cf-'

/**
 * Extensions whose presence clients may check before using what the sequence uses. Only these are
 * compared: the real server announces many more (agents, quotas, flavors) the lab has no use for.
 */
const EXTENSIONS = [
  'allowed-address-pairs',
  'binding',
  'external-net',
  'extra_dhcp_opt',
  'ext-gw-mode',
  'filter-validation',
  'fip-port-details',
  'net-mtu',
  'pagination',
  'port-security',
  'project-id',
  'provider',
  'router',
  'security-group',
  'sorting',
  'standard-attr-description',
  'standard-attr-revisions',
  'standard-attr-tag',
  'standard-attr-timestamp',
  'stateful-security-group',
]

/** Options of a run. */
export interface SequenceOptions {
  log?: (line: string) => void
}

const count =
  (key: string) =>
  (res: HttpResponse): Record<string, Fact> => ({ count: arr(obj(res.body)[key]).length })

const first = (body: unknown, key: string): Record<string, unknown> => obj(arr(obj(body)[key])[0])

/** Link relations of a `*_links` list, sorted: `next,previous`. */
function rels(body: unknown, key: string): string {
  return arr(obj(body)[key])
    .map((l) => str(l, 'rel') ?? '?')
    .sort()
    .join(',')
}

/**
 * Run the sequence against one target and return what every step yielded. Never throws for an
 * HTTP answer; a step whose prerequisite failed still runs with an id that exists nowhere.
 * @example const result = await runSequence(readTarget('/var/lib/runbook-conformance/target.json'))
 */
export async function runSequence(
  target: Target,
  opts: SequenceOptions = {},
): Promise<SequenceResult> {
  const started = Date.now()
  const rec = new Recorder(opts.log)
  const ks = target.keystoneUrl.replace(/\/$/, '')
  const cred = target.credentials.password
  const run = `${PREFIX}${randomBytes(3).toString('hex')}`

  // ---- Keystone ---------------------------------------------------------------------------
  await rec.step('keystone.version', 'GET /v3', { method: 'GET', url: ks })

  const passwordBody = (
    password: string,
    user: Record<string, unknown> = { name: cred.username, domain: { name: cred.userDomainName } },
  ) => ({
    auth: {
      identity: { methods: ['password'], password: { user: { ...user, password } } },
      scope: { project: { name: cred.projectName, domain: { name: cred.projectDomainName } } },
    },
  })
  const auth = await rec.step(
    'keystone.auth.password',
    'POST /v3/auth/tokens (password, names)',
    { method: 'POST', url: `${ks}/auth/tokens`, body: passwordBody(cred.password) },
    (res) => {
      const token = obj(obj(res.body)['token'])
      const types = arr(token['catalog']).map((s) => str(s, 'type'))
      return {
        subjectToken: res.headers['x-subject-token'] !== undefined,
        methods: arr(token['methods']).join(','),
        catalogHasIdentity: types.includes('identity'),
        catalogHasNetwork: types.includes('network'),
        neutronUrlMatches: neutronFromCatalog(res.body) === target.neutronUrl.replace(/\/$/, ''),
      }
    },
  )
  const token = auth.headers['x-subject-token'] ?? 'no-token'
  const tokenBody = obj(obj(auth.body)['token'])
  const userId = str(tokenBody['user'], 'id') ?? NO_SUCH_ID
  const projectId = str(tokenBody['project'], 'id') ?? NO_SUCH_ID
  const nt = `${neutronFromCatalog(auth.body) ?? target.neutronUrl.replace(/\/$/, '')}/v2.0`

  await rec.step(
    'keystone.auth.password-ids',
    'POST /v3/auth/tokens (password, user id, project id)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { id: userId, password: cred.password } },
          },
          scope: { project: { id: projectId } },
        },
      },
    },
    (res) => ({ subjectToken: res.headers['x-subject-token'] !== undefined }),
  )
  const wwwAuth = (res: HttpResponse): Record<string, Fact> => ({
    wwwAuthenticate: res.headers['www-authenticate'] !== undefined,
  })
  await rec.step(
    'keystone.auth.bad-password',
    'POST /v3/auth/tokens (wrong password)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: passwordBody(`${cred.password}-wrong`),
    },
    wwwAuth,
  )
  await rec.step(
    'keystone.auth.unknown-user',
    'POST /v3/auth/tokens (unknown user)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: passwordBody('x', { name: `${run}-nobody`, domain: { name: cred.userDomainName } }),
    },
    wwwAuth,
  )
  await rec.step(
    'keystone.auth.bad-project',
    'POST /v3/auth/tokens (unknown project)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: {
        auth: {
          identity: {
            methods: ['password'],
            password: {
              user: {
                name: cred.username,
                domain: { name: cred.userDomainName },
                password: cred.password,
              },
            },
          },
          scope: {
            project: { name: `${run}-noproject`, domain: { name: cred.projectDomainName } },
          },
        },
      },
    },
    wwwAuth,
  )
  await rec.step('keystone.token.validate', 'GET /v3/auth/tokens', {
    method: 'GET',
    url: `${ks}/auth/tokens`,
    token,
    headers: { 'X-Subject-Token': token },
  })

  await quietly(sweepAppCreds(ks, token, userId))
  const appCredName = `${run}-appcred`
  const created = await rec.step(
    'keystone.appcred.create',
    'POST /v3/users/{user}/application_credentials',
    {
      method: 'POST',
      url: `${ks}/users/${userId}/application_credentials`,
      token,
      body: { application_credential: { name: appCredName, description: 'runbook conformance' } },
    },
  )
  const ac = obj(obj(created.body)['application_credential'])
  const acId = str(ac, 'id') ?? NO_SUCH_ID
  const acSecret = str(ac, 'secret') ?? 'no-secret'
  const appCredAuth = (spec: Record<string, unknown>, scope?: unknown) => ({
    auth: {
      identity: { methods: ['application_credential'], application_credential: spec },
      ...(scope === undefined ? {} : { scope }),
    },
  })
  const appAuth = await rec.step(
    'keystone.auth.appcred-id',
    'POST /v3/auth/tokens (application credential id)',
    { method: 'POST', url: `${ks}/auth/tokens`, body: appCredAuth({ id: acId, secret: acSecret }) },
    (res) => ({
      subjectToken: res.headers['x-subject-token'] !== undefined,
      methods: arr(obj(obj(res.body)['token'])['methods']).join(','),
    }),
  )
  await rec.step(
    'keystone.auth.appcred-name',
    'POST /v3/auth/tokens (application credential name + user)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: appCredAuth({
        name: appCredName,
        user: { name: cred.username, domain: { name: cred.userDomainName } },
        secret: acSecret,
      }),
    },
    (res) => ({ subjectToken: res.headers['x-subject-token'] !== undefined }),
  )
  await rec.step(
    'keystone.auth.appcred-bad-secret',
    'POST /v3/auth/tokens (application credential, wrong secret)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      // A wholly different secret: Keystone hashes secrets with bcrypt, which reads only the first
      // 72 bytes, so a suffix after the 86-character generated secret would still be accepted.
      body: appCredAuth({ id: acId, secret: 'not-the-secret' }),
    },
    wwwAuth,
  )
  await rec.step(
    'keystone.auth.appcred-scoped',
    'POST /v3/auth/tokens (application credential with a scope)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: appCredAuth({ id: acId, secret: acSecret }, { project: { id: projectId } }),
    },
  )
  const appToken = appAuth.headers['x-subject-token'] ?? 'no-token'

  // ---- Neutron: discovery, auth, networks and subnets -----------------------------------------
  const get = (path: string, t = token): HttpRequest => ({
    method: 'GET',
    url: `${nt}${path}`,
    token: t,
  })
  const post = (path: string, body: unknown): HttpRequest => ({
    method: 'POST',
    url: `${nt}${path}`,
    token,
    body,
  })
  const put = (path: string, body: unknown): HttpRequest => ({
    method: 'PUT',
    url: `${nt}${path}`,
    token,
    body,
  })
  const del = (path: string): HttpRequest => ({ method: 'DELETE', url: `${nt}${path}`, token })

  await quietly(sweepNeutron(nt, token))
  await rec.step('neutron.versions', 'GET /', { method: 'GET', url: nt.replace(/\/v2\.0$/, '/') })
  await rec.step('neutron.extensions', 'GET /v2.0/extensions', get('/extensions'), (res) => {
    const aliases = new Set(arr(obj(res.body)['extensions']).map((e) => str(e, 'alias')))
    return Object.fromEntries(EXTENSIONS.map((a) => [`has:${a}`, aliases.has(a)]))
  })
  await rec.step(
    'neutron.auth.no-token',
    'GET /v2.0/networks (no token)',
    { method: 'GET', url: `${nt}/networks` },
    wwwAuth,
  )
  await rec.step(
    'neutron.auth.bad-token',
    'GET /v2.0/networks (invalid token)',
    get('/networks', 'not-a-token'),
    wwwAuth,
  )
  await rec.step(
    'neutron.auth.appcred-token',
    'GET /v2.0/networks (application credential token)',
    get('/networks', appToken),
    count('networks'),
  )

  await rec.step('neutron.networks.list', 'GET /v2.0/networks', get('/networks'), (res) => ({
    hasMynetwork: arr(obj(res.body)['networks']).some((n) => str(n, 'name') === 'mynetwork'),
  }))
  const byName = await rec.step(
    'neutron.networks.by-name',
    'GET /v2.0/networks?name=mynetwork',
    get('/networks?name=mynetwork'),
    (res) => ({
      ...count('networks')(res),
      status: str(first(res.body, 'networks'), 'status') ?? null,
    }),
  )
  const netId = str(first(byName.body, 'networks'), 'id') ?? NO_SUCH_ID
  const ext = await rec.step(
    'neutron.networks.external',
    'GET /v2.0/networks?router:external=true',
    get('/networks?router%3Aexternal=true'),
    (res) => ({
      atLeastOne: arr(obj(res.body)['networks']).length >= 1,
      allExternal: arr(obj(res.body)['networks']).every((n) => obj(n)['router:external'] === true),
    }),
  )
  const extNetId = str(first(ext.body, 'networks'), 'id') ?? NO_SUCH_ID
  await rec.step('neutron.network.show', 'GET /v2.0/networks/{network}', get(`/networks/${netId}`))
  await rec.step(
    'neutron.network.show-fields',
    'GET /v2.0/networks/{network}?fields=id&fields=name',
    get(`/networks/${netId}?fields=id&fields=name`),
  )
  await rec.step(
    'neutron.network.not-found',
    'GET /v2.0/networks/{missing}',
    get(`/networks/${NO_SUCH_ID}`),
  )

  const subnets = await rec.step(
    'neutron.subnets.by-network',
    'GET /v2.0/subnets?network_id={network}',
    get(`/subnets?network_id=${netId}`),
    count('subnets'),
  )
  const subnetId = str(first(subnets.body, 'subnets'), 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.subnets.by-name',
    'GET /v2.0/subnets?name=mysubnet',
    get('/subnets?name=mysubnet'),
    (res) => ({
      ...count('subnets')(res),
      cidr: str(first(res.body, 'subnets'), 'cidr') ?? null,
    }),
  )
  await rec.step('neutron.subnet.show', 'GET /v2.0/subnets/{subnet}', get(`/subnets/${subnetId}`))
  await rec.step(
    'neutron.subnet.not-found',
    'GET /v2.0/subnets/{missing}',
    get(`/subnets/${NO_SUCH_ID}`),
  )

  // ---- Ports ---------------------------------------------------------------------------------
  const vipName = `${run}-vip`
  const vip = await rec.step(
    'neutron.port.create-fixed-ip',
    'POST /v2.0/ports (fixed_ips subnet_id + ip_address)',
    post('/ports', {
      port: {
        name: vipName,
        network_id: netId,
        fixed_ips: [{ subnet_id: subnetId, ip_address: FIXED_IP }],
      },
    }),
    (res) => {
      const port = obj(obj(res.body)['port'])
      return {
        status: str(port, 'status') ?? null,
        ip: str(arr(port['fixed_ips'])[0], 'ip_address') ?? null,
        securityGroups: arr(port['security_groups']).length,
      }
    },
  )
  const vipId = str(obj(vip.body)['port'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.port.create-duplicate-ip',
    'POST /v2.0/ports (the same fixed IP again)',
    post('/ports', {
      port: {
        name: `${run}-dup`,
        network_id: netId,
        fixed_ips: [{ subnet_id: subnetId, ip_address: FIXED_IP }],
      },
    }),
  )
  const deviceId = randomUuid()
  const auto = await rec.step(
    'neutron.port.create-auto-ip',
    'POST /v2.0/ports (automatic IP, device_id)',
    post('/ports', { port: { name: `${run}-auto`, network_id: netId, device_id: deviceId } }),
    (res) => {
      const port = obj(obj(res.body)['port'])
      const ips = arr(port['fixed_ips'])
      return {
        fixedIps: ips.length,
        inSubnet: /^192\.0\.2\.\d+$/.test(str(ips[0], 'ip_address') ?? ''),
        subnetMatches: str(ips[0], 'subnet_id') === subnetId,
      }
    },
  )
  const autoId = str(obj(auto.body)['port'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.port.create-no-network',
    'POST /v2.0/ports (unknown network)',
    post('/ports', { port: { name: `${run}-bad`, network_id: NO_SUCH_ID } }),
  )

  await rec.step('neutron.port.show', 'GET /v2.0/ports/{port}', get(`/ports/${vipId}`))
  await rec.step(
    'neutron.port.show-fields',
    'GET /v2.0/ports/{port}?fields=id&fields=fixed_ips',
    get(`/ports/${vipId}?fields=id&fields=fixed_ips`),
  )
  await rec.step('neutron.ports.list', 'GET /v2.0/ports', get('/ports'), (res) => ({
    hasVip: arr(obj(res.body)['ports']).some((p) => str(p, 'id') === vipId),
  }))
  const onlyVip = (res: HttpResponse): Record<string, Fact> => {
    const ports = arr(obj(res.body)['ports'])
    return { count: ports.length, isVip: ports.length === 1 && str(ports[0], 'id') === vipId }
  }
  await rec.step(
    'neutron.ports.by-fixed-ip',
    'GET /v2.0/ports?fixed_ips=ip_address={ip}',
    get(`/ports?fixed_ips=${encodeURIComponent(`ip_address=${FIXED_IP}`)}`),
    onlyVip,
  )
  await rec.step(
    'neutron.ports.by-fixed-ip-and-subnet',
    'GET /v2.0/ports?fixed_ips=subnet_id={subnet}&fixed_ips=ip_address={ip}',
    get(
      `/ports?fixed_ips=${encodeURIComponent(`subnet_id=${subnetId}`)}&fixed_ips=${encodeURIComponent(`ip_address=${FIXED_IP}`)}`,
    ),
    onlyVip,
  )
  await rec.step(
    'neutron.ports.by-fixed-ip-none',
    'GET /v2.0/ports?fixed_ips=ip_address={unused ip}',
    get(`/ports?fixed_ips=${encodeURIComponent('ip_address=192.0.2.239')}`),
    count('ports'),
  )
  await rec.step(
    'neutron.ports.by-device-id',
    'GET /v2.0/ports?device_id={device}',
    get(`/ports?device_id=${deviceId}`),
    (res) => {
      const ports = arr(obj(res.body)['ports'])
      return { count: ports.length, isAuto: ports.length === 1 && str(ports[0], 'id') === autoId }
    },
  )
  await rec.step(
    'neutron.ports.by-name',
    'GET /v2.0/ports?name={name}',
    get(`/ports?name=${vipName}`),
    onlyVip,
  )
  await rec.step(
    'neutron.ports.by-network-fields',
    'GET /v2.0/ports?network_id={network}&name={name}&fields=id&fields=name',
    get(`/ports?network_id=${netId}&name=${vipName}&fields=id&fields=name`),
    count('ports'),
  )

  await rec.step(
    'neutron.ports.bad-filter',
    'GET /v2.0/ports?bogus=1 (unknown filter)',
    get('/ports?bogus=1'),
  )

  const pairs = (res: HttpResponse): Record<string, Fact> => {
    const aap = arr(obj(obj(res.body)['port'])['allowed_address_pairs'])
    return {
      pairs: aap.length,
      pairIp: str(aap[0], 'ip_address') ?? null,
      pairMacIsPortMac:
        aap.length === 0
          ? null
          : str(aap[0], 'mac_address') === str(obj(vip.body)['port'], 'mac_address'),
    }
  }
  await rec.step(
    'neutron.port.set-allowed-address-pairs',
    'PUT /v2.0/ports/{port} (allowed_address_pairs)',
    put(`/ports/${vipId}`, { port: { allowed_address_pairs: [{ ip_address: PAIR_IP }] } }),
    pairs,
  )
  await rec.step(
    'neutron.port.show-allowed-address-pairs',
    'GET /v2.0/ports/{port} (after set)',
    get(`/ports/${vipId}`),
    pairs,
  )
  await rec.step(
    'neutron.port.clear-allowed-address-pairs',
    'PUT /v2.0/ports/{port} (allowed_address_pairs [])',
    put(`/ports/${vipId}`, { port: { allowed_address_pairs: [] } }),
    pairs,
  )
  await rec.step('neutron.port.not-found', 'GET /v2.0/ports/{missing}', get(`/ports/${NO_SUCH_ID}`))
  await rec.step(
    'neutron.port.update-not-found',
    'PUT /v2.0/ports/{missing}',
    put(`/ports/${NO_SUCH_ID}`, { port: { name: 'x' } }),
  )
  await rec.step(
    'neutron.port.delete-not-found',
    'DELETE /v2.0/ports/{missing}',
    del(`/ports/${NO_SUCH_ID}`),
  )

  // ---- Security groups and rules -------------------------------------------------------------
  await rec.step(
    'neutron.security-groups.default',
    'GET /v2.0/security-groups?name=default',
    get('/security-groups?name=default'),
    count('security_groups'),
  )
  const sg = await rec.step(
    'neutron.security-group.create',
    'POST /v2.0/security-groups',
    post('/security-groups', {
      security_group: { name: `${run}-sg`, description: 'runbook conformance' },
    }),
    (res) => ({ rules: arr(obj(obj(res.body)['security_group'])['security_group_rules']).length }),
  )
  const sgId = str(obj(sg.body)['security_group'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.security-groups.by-name',
    'GET /v2.0/security-groups?name={name}',
    get(`/security-groups?name=${run}-sg`),
    count('security_groups'),
  )
  await rec.step(
    'neutron.security-group.show',
    'GET /v2.0/security-groups/{group}',
    get(`/security-groups/${sgId}`),
  )
  await rec.step(
    'neutron.security-group.not-found',
    'GET /v2.0/security-groups/{missing}',
    get(`/security-groups/${NO_SUCH_ID}`),
  )

  const rule = (extra: Record<string, unknown>) =>
    post('/security-group-rules', {
      security_group_rule: {
        security_group_id: sgId,
        direction: 'ingress',
        ethertype: 'IPv4',
        ...extra,
      },
    })
  const ruleFacts = (res: HttpResponse): Record<string, Fact> => {
    const r = obj(obj(res.body)['security_group_rule'])
    return {
      protocol: str(r, 'protocol') ?? null,
      portMin: typeof r['port_range_min'] === 'number' ? r['port_range_min'] : null,
    }
  }
  const tcp22 = {
    protocol: 'tcp',
    port_range_min: 22,
    port_range_max: 22,
    remote_ip_prefix: '0.0.0.0/0',
  }
  const ssh = await rec.step(
    'neutron.security-group-rule.create-tcp-22',
    'POST /v2.0/security-group-rules (tcp 22)',
    rule(tcp22),
    ruleFacts,
  )
  const sshRuleId = str(obj(ssh.body)['security_group_rule'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.security-group-rule.duplicate',
    'POST /v2.0/security-group-rules (tcp 22 again)',
    rule(tcp22),
  )
  await rec.step(
    'neutron.security-group-rule.create-icmp',
    'POST /v2.0/security-group-rules (icmp)',
    rule({ protocol: 'icmp' }),
    ruleFacts,
  )
  await rec.step(
    'neutron.security-group-rule.create-112',
    'POST /v2.0/security-group-rules (protocol 112, remote group)',
    rule({ protocol: '112', remote_group_id: sgId }),
    ruleFacts,
  )
  await rec.step(
    'neutron.security-group-rule.duplicate-vrrp',
    'POST /v2.0/security-group-rules (vrrp = 112 again)',
    rule({ protocol: 'vrrp', remote_group_id: sgId }),
  )
  await rec.step(
    'neutron.security-group-rule.bad-protocol',
    'POST /v2.0/security-group-rules (unknown protocol)',
    rule({ protocol: 'bogus' }),
  )
  await rec.step(
    'neutron.security-group-rule.unknown-group',
    'POST /v2.0/security-group-rules (unknown group)',
    post('/security-group-rules', {
      security_group_rule: {
        security_group_id: NO_SUCH_ID,
        direction: 'ingress',
        protocol: 'icmp',
      },
    }),
  )
  await rec.step(
    'neutron.security-group-rules.by-group',
    'GET /v2.0/security-group-rules?security_group_id={group}',
    get(`/security-group-rules?security_group_id=${sgId}`),
    count('security_group_rules'),
  )
  await rec.step(
    'neutron.security-group-rule.delete',
    'DELETE /v2.0/security-group-rules/{rule}',
    del(`/security-group-rules/${sshRuleId}`),
  )
  await rec.step(
    'neutron.security-group-rule.delete-again',
    'DELETE /v2.0/security-group-rules/{rule} (gone)',
    del(`/security-group-rules/${sshRuleId}`),
  )

  // ---- Floating IPs --------------------------------------------------------------------------
  const fipFacts = (res: HttpResponse): Record<string, Fact> => {
    const f = obj(obj(res.body)['floatingip'])
    return {
      portSet: typeof f['port_id'] === 'string',
      fixedIpIsVip: f['fixed_ip_address'] === FIXED_IP,
      routerSet: typeof f['router_id'] === 'string',
      inFloatingRange: /^198\.51\.100\.\d+$/.test(str(f, 'floating_ip_address') ?? ''),
    }
  }
  const fip = await rec.step(
    'neutron.floatingip.create',
    'POST /v2.0/floatingips',
    post('/floatingips', {
      floatingip: { floating_network_id: extNetId, description: `${run}-fip` },
    }),
    fipFacts,
  )
  const fipId = str(obj(fip.body)['floatingip'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.floatingip.associate',
    'PUT /v2.0/floatingips/{fip} (port_id)',
    put(`/floatingips/${fipId}`, { floatingip: { port_id: vipId } }),
    fipFacts,
  )
  await rec.step(
    'neutron.floatingips.by-port',
    'GET /v2.0/floatingips?port_id={port}',
    get(`/floatingips?port_id=${vipId}`),
    count('floatingips'),
  )
  await rec.step(
    'neutron.floatingip.show',
    'GET /v2.0/floatingips/{fip}',
    get(`/floatingips/${fipId}`),
    fipFacts,
  )
  await rec.step(
    'neutron.floatingip.disassociate',
    'PUT /v2.0/floatingips/{fip} (port_id null)',
    put(`/floatingips/${fipId}`, { floatingip: { port_id: null } }),
    fipFacts,
  )
  await rec.step(
    'neutron.floatingip.delete',
    'DELETE /v2.0/floatingips/{fip}',
    del(`/floatingips/${fipId}`),
  )
  await rec.step(
    'neutron.floatingip.not-found',
    'GET /v2.0/floatingips/{fip} (deleted)',
    get(`/floatingips/${fipId}`),
  )
  await rec.step(
    'neutron.floatingip.create-bad-network',
    'POST /v2.0/floatingips (unknown network)',
    post('/floatingips', { floatingip: { floating_network_id: NO_SUCH_ID } }),
  )

  // ---- Create then tag, as the modules and the official client do -----------------------------
  // `tags` in a POST: refused for every resource but ports, whose tags a stock Neutron drops.
  const message = (res: HttpResponse): Record<string, Fact> => ({
    message: str(obj(res.body)['NeutronError'], 'message') ?? null,
  })
  const tagsOf = (key: string) => (res: HttpResponse) => ({
    tags: arr(obj(obj(res.body)[key])['tags']).join(','),
  })
  const marker = `${run}-owner`
  const ownerTag = `${run}-tag`
  await rec.step(
    'neutron.security-group.create-with-tags',
    'POST /v2.0/security-groups (tags)',
    post('/security-groups', {
      security_group: { name: `${run}-sg-tags`, description: marker, tags: [ownerTag] },
    }),
    message,
  )
  await rec.step(
    'neutron.floatingip.create-with-tags',
    'POST /v2.0/floatingips (tags)',
    post('/floatingips', {
      floatingip: { floating_network_id: extNetId, description: marker, tags: [ownerTag] },
    }),
    message,
  )
  await rec.step(
    'neutron.network.create-with-tags',
    'POST /v2.0/networks (tags)',
    post('/networks', { network: { name: `${run}-net-tags`, tags: [ownerTag] } }),
    message,
  )
  const tagged = await rec.step(
    'neutron.port.create-with-tags',
    'POST /v2.0/ports (admin_state_up, marker description, tags)',
    post('/ports', {
      port: {
        name: `${run}-tagged`,
        network_id: netId,
        admin_state_up: true,
        description: marker,
        tags: [ownerTag],
      },
    }),
    (res) => ({
      ...tagsOf('port')(res),
      description: str(obj(res.body)['port'], 'description') === marker,
    }),
  )
  const taggedId = str(obj(tagged.body)['port'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.port.tags-put',
    'PUT /v2.0/ports/{port}/tags',
    put(`/ports/${taggedId}/tags`, { tags: [ownerTag] }),
    (res) => ({ tagged: arr(obj(res.body)['tags']).join(',') === ownerTag }),
  )
  await rec.step(
    'neutron.ports.by-name-and-tag',
    'GET /v2.0/ports?name={name}&tags={tag}',
    get(`/ports?name=${run}-tagged&tags=${ownerTag}`),
    count('ports'),
  )
  await rec.step(
    'neutron.ports.by-other-tag',
    'GET /v2.0/ports?tags={other tag}',
    get(`/ports?tags=${run}-nobody`),
    count('ports'),
  )
  await rec.step(
    'neutron.port.delete-tagged',
    'DELETE /v2.0/ports/{port} (tagged)',
    del(`/ports/${taggedId}`),
  )
  await rec.step(
    'neutron.port.gone-after-delete',
    'GET /v2.0/ports/{port} (after DELETE)',
    get(`/ports/${taggedId}`),
  )
  const markedSg = await rec.step(
    'neutron.security-group.create-marker',
    'POST /v2.0/security-groups (marker description)',
    post('/security-groups', { security_group: { name: `${run}-sg-marked`, description: marker } }),
    tagsOf('security_group'),
  )
  const markedSgId = str(obj(markedSg.body)['security_group'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.security-group.tags-put',
    'PUT /v2.0/security-groups/{group}/tags',
    put(`/security-groups/${markedSgId}/tags`, { tags: [ownerTag] }),
    (res) => ({ tagged: arr(obj(res.body)['tags']).join(',') === ownerTag }),
  )
  await rec.step(
    'neutron.security-groups.by-name-and-tag',
    'GET /v2.0/security-groups?name={name}&tags={tag}',
    get(`/security-groups?name=${run}-sg-marked&tags=${ownerTag}`),
    count('security_groups'),
  )
  await rec.step(
    'neutron.security-group-rule.create-vrrp-by-name',
    'POST /v2.0/security-group-rules (protocol vrrp by name)',
    post('/security-group-rules', {
      security_group_rule: {
        security_group_id: markedSgId,
        direction: 'ingress',
        ethertype: 'IPv4',
        protocol: 'vrrp',
        remote_group_id: markedSgId,
      },
    }),
    ruleFacts,
  )
  await rec.step(
    'neutron.security-group.delete-marked',
    'DELETE /v2.0/security-groups/{group} (tagged)',
    del(`/security-groups/${markedSgId}`),
  )
  const markedFip = await rec.step(
    'neutron.floatingip.create-marker',
    'POST /v2.0/floatingips (on a port, marker description)',
    post('/floatingips', {
      floatingip: { floating_network_id: extNetId, port_id: vipId, description: marker },
    }),
    fipFacts,
  )
  const markedFipId = str(obj(markedFip.body)['floatingip'], 'id') ?? NO_SUCH_ID
  await rec.step(
    'neutron.floatingip.tags-put',
    'PUT /v2.0/floatingips/{fip}/tags',
    put(`/floatingips/${markedFipId}/tags`, { tags: [ownerTag] }),
    (res) => ({ tagged: arr(obj(res.body)['tags']).join(',') === ownerTag }),
  )
  await rec.step(
    'neutron.floatingips.by-port-and-tag',
    'GET /v2.0/floatingips?port_id={port}&tags={tag}',
    get(`/floatingips?port_id=${vipId}&tags=${ownerTag}`),
    count('floatingips'),
  )
  await rec.step(
    'neutron.floatingips.by-network',
    'GET /v2.0/floatingips?floating_network_id={network}',
    get(`/floatingips?floating_network_id=${extNetId}`),
    (res) => ({
      hasMarked: arr(obj(res.body)['floatingips']).some((f) => str(f, 'id') === markedFipId),
    }),
  )
  await rec.step(
    'neutron.floatingip.delete-marked',
    'DELETE /v2.0/floatingips/{fip} (tagged)',
    del(`/floatingips/${markedFipId}`),
  )

  // ---- Pagination ----------------------------------------------------------------------------
  // Only id and name on single-item pages: which network comes first depends on its random id,
  // and external networks have keys (is_default) that project networks lack.
  const page1 = await rec.step(
    'neutron.networks.page-first',
    'GET /v2.0/networks?limit=1&fields=id&fields=name',
    get('/networks?limit=1&fields=id&fields=name'),
    (res) => ({
      ...count('networks')(res),
      links: rels(res.body, 'networks_links'),
    }),
  )
  let next = nextLink(page1.body, 'networks_links')
  for (let i = 0; next !== null && i < 20; i++) {
    const res = await send({ method: 'GET', url: rebase(next, nt), token }).catch(() => null)
    const following = res === null ? null : nextLink(res.body, 'networks_links')
    if (following === null) break
    next = following
  }
  await rec.step(
    'neutron.networks.page-last',
    'GET /v2.0/networks?limit=1&fields=id&fields=name&marker={last} (after following next)',
    {
      method: 'GET',
      url:
        next === null
          ? `${nt}/networks?limit=1&fields=id&fields=name&marker=${NO_SUCH_ID}`
          : rebase(next, nt),
      token,
    },
    (res) => ({ ...count('networks')(res), links: rels(res.body, 'networks_links') }),
  )
  await rec.step(
    'neutron.networks.page-all',
    'GET /v2.0/networks?limit=100',
    get('/networks?limit=100'),
    (res) => ({ links: rels(res.body, 'networks_links') }),
  )
  await rec.step(
    'neutron.ports.page-first',
    'GET /v2.0/ports?limit=1&fields=id&fields=name',
    get('/ports?limit=1&fields=id&fields=name'),
    (res) => ({ ...count('ports')(res), links: rels(res.body, 'ports_links') }),
  )
  await rec.step(
    'neutron.networks.bad-limit',
    'GET /v2.0/networks?limit=abc',
    get('/networks?limit=abc'),
  )
  await rec.step(
    'neutron.networks.bad-marker',
    'GET /v2.0/networks?limit=1&marker={missing}',
    get(`/networks?limit=1&marker=${NO_SUCH_ID}`),
  )

  // ---- Policy: what a project member may not do ---------------------------------------------
  await rec.step(
    'neutron.policy.create-external-network',
    'POST /v2.0/networks (router:external, as member)',
    post('/networks', { network: { name: `${run}-ext`, 'router:external': true } }),
  )
  await rec.step(
    'neutron.policy.create-provider-network',
    'POST /v2.0/networks (provider attributes, as member)',
    post('/networks', {
      network: {
        name: `${run}-prov`,
        'provider:network_type': 'flat',
        'provider:physical_network': 'public',
      },
    }),
  )
  await rec.step(
    'neutron.policy.port-binding-host',
    'POST /v2.0/ports (binding:host_id, as member)',
    post('/ports', {
      port: { name: `${run}-bind`, network_id: netId, 'binding:host_id': 'somehost' },
    }),
  )
  await rec.step(
    'neutron.policy.port-mac-address',
    'PUT /v2.0/ports/{port} (mac_address, as member)',
    put(`/ports/${vipId}`, { port: { mac_address: 'fa:16:3e:00:00:01' } }),
  )
  await rec.step(
    'neutron.policy.update-external-network',
    "PUT /v2.0/networks/{external} (another project's network)",
    put(`/networks/${extNetId}`, { network: { name: `${run}-renamed` } }),
  )
  await rec.step(
    'neutron.policy.delete-external-network',
    "DELETE /v2.0/networks/{external} (another project's network)",
    del(`/networks/${extNetId}`),
  )
  await rec.step(
    'neutron.policy.port-on-external-network',
    "POST /v2.0/ports (on another project's external network)",
    post('/ports', { port: { name: `${run}-extport`, network_id: extNetId } }),
  )

  // ---- Clean up (recorded too: deletes answer 204 on both) ----------------------------------
  await rec.step('neutron.port.delete', 'DELETE /v2.0/ports/{port}', del(`/ports/${vipId}`))
  await rec.step(
    'neutron.port.delete-auto',
    'DELETE /v2.0/ports/{port} (automatic IP)',
    del(`/ports/${autoId}`),
  )
  await rec.step(
    'neutron.port.show-deleted',
    'GET /v2.0/ports/{port} (deleted)',
    get(`/ports/${vipId}`),
  )
  await rec.step(
    'neutron.security-group.delete',
    'DELETE /v2.0/security-groups/{group}',
    del(`/security-groups/${sgId}`),
  )
  await rec.step(
    'keystone.appcred.delete',
    'DELETE /v3/users/{user}/application_credentials/{cred}',
    {
      method: 'DELETE',
      url: `${ks}/users/${userId}/application_credentials/${acId}`,
      token,
    },
  )
  await rec.step(
    'keystone.auth.appcred-deleted',
    'POST /v3/auth/tokens (deleted application credential)',
    {
      method: 'POST',
      url: `${ks}/auth/tokens`,
      body: appCredAuth({ id: acId, secret: acSecret }),
    },
  )

  return {
    target: target.name,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    steps: rec.steps,
    exchanges: rec.exchanges,
  }
}

/** The public network endpoint of a token's catalog, without a trailing slash. */
function neutronFromCatalog(body: unknown): string | undefined {
  const service = arr(obj(obj(body)['token'])['catalog']).find((s) => str(s, 'type') === 'network')
  const ep = arr(obj(service)['endpoints']).find((e) => str(e, 'interface') === 'public')
  return str(ep, 'url')?.replace(/\/$/, '')
}

/** Housekeeping must not stop the sequence: a cloud that does not answer fails in the steps. */
async function quietly(p: Promise<void>): Promise<void> {
  try {
    await p
  } catch {
    // The steps that follow record the failure.
  }
}

function nextLink(body: unknown, key: string): string | null {
  const link = arr(obj(body)[key]).find((l) => str(l, 'rel') === 'next')
  return str(link, 'href') ?? null
}

/** Pagination links carry the server's idea of its own address; keep path and query only. */
function rebase(href: string, nt: string): string {
  const u = new URL(href)
  const path = u.pathname.replace(/^.*\/v2\.0/, '')
  return `${nt}${path}${u.search}`
}

function randomUuid(): string {
  const h = randomBytes(16).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`
}

/** Remove what an interrupted earlier run left, so names and the fixed IP are free. Not recorded. */
async function sweepNeutron(nt: string, token: string): Promise<void> {
  const list = async (coll: string, key: string) =>
    arr(obj((await send({ method: 'GET', url: `${nt}/${coll}`, token })).body)[key])
  const stale = (x: unknown, field: string) => (str(x, field) ?? '').startsWith(PREFIX)
  for (const f of await list('floatingips', 'floatingips')) {
    if (stale(f, 'description'))
      await send({ method: 'DELETE', url: `${nt}/floatingips/${str(f, 'id') ?? ''}`, token })
  }
  for (const p of await list('ports', 'ports')) {
    const holdsFixedIp = arr(obj(p)['fixed_ips']).some((ip) => str(ip, 'ip_address') === FIXED_IP)
    if (stale(p, 'name') || holdsFixedIp)
      await send({ method: 'DELETE', url: `${nt}/ports/${str(p, 'id') ?? ''}`, token })
  }
  for (const g of await list('security-groups', 'security_groups')) {
    if (stale(g, 'name'))
      await send({ method: 'DELETE', url: `${nt}/security-groups/${str(g, 'id') ?? ''}`, token })
  }
  for (const n of await list('networks', 'networks')) {
    if (stale(n, 'name'))
      await send({ method: 'DELETE', url: `${nt}/networks/${str(n, 'id') ?? ''}`, token })
  }
}

async function sweepAppCreds(ks: string, token: string, userId: string): Promise<void> {
  const url = `${ks}/users/${userId}/application_credentials`
  for (const c of arr(
    obj((await send({ method: 'GET', url, token })).body)['application_credentials'],
  )) {
    if ((str(c, 'name') ?? '').startsWith(PREFIX))
      await send({ method: 'DELETE', url: `${url}/${str(c, 'id') ?? ''}`, token })
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: sequence.ts TARGET.json')
    process.exit(2)
  }
  const result = await runSequence(readTarget(file), { log: (l) => console.error(l) })
  console.log(JSON.stringify(result, null, 2))
}
