/**
 * The lab as strict as Neutron about tags: `tags` in a create is refused with Neutron's 400 for
 * every resource but ports (`allow_post: False`); a port's create-time tags are accepted but kept
 * only with the ML2 driver `tag-ports-during-bulk-creation` on (off by default, and then the
 * extension list does not announce it); tags are set with `PUT .../tags`; without
 * `standard-attr-tag`, `tags` is no attribute and the /tags routes do not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { extensionSet } from '../../../../lab/api/neutron/extensions.ts'
import { runSequence } from '../../../../lab/conformance/sequence.ts'
import { targetFromCloudsYaml } from '../../../../lab/conformance/target.ts'
import { a, o, startTestLab } from '../harness.ts'
import type { TestLab } from '../harness.ts'

const NOT_IN_POST = {
  NeutronError: {
    type: 'HTTPBadRequest',
    message: "Attribute 'tags' not allowed in POST",
    detail: '',
  },
}

async function ids(lab: TestLab, token: string): Promise<{ net: string; pub: string }> {
  const net = await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })
  const pub = await lab.req('GET', '/network/v2.0/networks?name=public', { token })
  return {
    net: String(a(net.body['networks'])[0]?.['id']),
    pub: String(a(pub.body['networks'])[0]?.['id']),
  }
}

/** Where a JSON value has a `tags` key (`#3.port.tags`). */
function withTags(x: unknown, at: string): string[] {
  if (Array.isArray(x)) return x.flatMap((y, i) => withTags(y, `${at}[${i}]`))
  if (x === null || typeof x !== 'object') return []
  return Object.entries(x).flatMap(([k, v]) =>
    k === 'tags' ? [`${at}.tags`] : withTags(v, `${at}.${k}`),
  )
}

async function aliases(lab: TestLab, token: string): Promise<string[]> {
  const r = await lab.req('GET', '/network/v2.0/extensions', { token })
  return a(r.body['extensions']).map((e) => String(e['alias']))
}

describe('lab API: tags as a stock Neutron has them', () => {
  let lab: TestLab
  let token: string
  let net: string
  let pub: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    ;({ net, pub } = await ids(lab, token))
  })
  afterAll(async () => {
    await lab.close()
  })

  it.each([
    ['networks', 'network', () => ({ name: 'cf-t' })],
    ['subnets', 'subnet', () => ({ network_id: net, cidr: '10.9.0.0/24', ip_version: 4 })],
    ['routers', 'router', () => ({ name: 'cf-t' })],
    ['security-groups', 'security_group', () => ({ name: 'cf-t' })],
    ['floatingips', 'floatingip', () => ({ floating_network_id: pub })],
  ])("refuses tags in a POST to %s with Neutron's 400, and creates nothing", async (c, r, body) => {
    const before = await lab.req('GET', `/network/v2.0/${c}`, { token })
    const res = await lab.req('POST', `/network/v2.0/${c}`, {
      token,
      body: { [r]: { ...body(), tags: ['runbook:x'] } },
    })
    expect([res.status, res.body]).toEqual([400, NOT_IN_POST])
    const after = await lab.req('GET', `/network/v2.0/${c}`, { token })
    expect(a(after.body[c.replace('-', '_')]).length).toBe(
      a(before.body[c.replace('-', '_')]).length,
    )
  })

  it('accepts tags in a port create but drops them; the extension list does not announce keeping them', async () => {
    const res = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: net, name: 'cf-tp', tags: ['runbook:x'] } },
    })
    expect(res.status).toBe(201)
    const port = o(res.body['port'])
    expect(port['tags']).toEqual([])
    expect(await aliases(lab, token)).not.toContain('tag-ports-during-bulk-creation')
    expect(await aliases(lab, token)).toContain('standard-attr-tag')
    // Tagged as the official client does it: PUT /v2.0/ports/{id}/tags.
    const id = String(port['id'])
    const put = await lab.req('PUT', `/network/v2.0/ports/${id}/tags`, {
      token,
      body: { tags: ['runbook:x'] },
    })
    expect([put.status, put.body]).toEqual([200, { tags: ['runbook:x'] }])
    const found = await lab.req('GET', '/network/v2.0/ports?tags=runbook:x', { token })
    expect(a(found.body['ports']).map((p) => p['id'])).toEqual([id])
    // Rules are no tag resource in Neutron (no tag_support): their tag filters are invalid.
    const rules = await lab.req('GET', '/network/v2.0/security-group-rules?tags=runbook:x', {
      token,
    })
    expect([rules.status, o(rules.body['NeutronError'])['message']]).toEqual([
      400,
      "['tags'] is invalid attribute for filtering",
    ])
    await lab.req('DELETE', `/network/v2.0/ports/${id}`, { token })
  })
})

describe('lab API: tag-ports-during-bulk-creation on', () => {
  let lab: TestLab
  beforeAll(async () => {
    lab = await startTestLab({ neutronExtensions: '+tag-ports-during-bulk-creation' })
  })
  afterAll(async () => {
    await lab.close()
  })

  it("keeps a port create's tags, announces it, and still refuses tags for other resources", async () => {
    const token = await lab.token()
    const { net } = await ids(lab, token)
    expect(await aliases(lab, token)).toContain('tag-ports-during-bulk-creation')
    const res = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: net, name: 'cf-tp', tags: ['runbook:x'] } },
    })
    expect([res.status, o(res.body['port'])['tags']]).toEqual([201, ['runbook:x']])
    const sg = await lab.req('POST', '/network/v2.0/security-groups', {
      token,
      body: { security_group: { name: 'cf-t', tags: ['runbook:x'] } },
    })
    expect([sg.status, sg.body]).toEqual([400, NOT_IN_POST])
  })
})

describe('lab API: without standard-attr-tag', () => {
  let lab: TestLab
  beforeAll(async () => {
    lab = await startTestLab({ neutronExtensions: '-standard-attr-tag' })
  })
  afterAll(async () => {
    await lab.close()
  })

  it('has no tags attribute and no /tags routes, and does not announce the extension', async () => {
    const token = await lab.token()
    const { net } = await ids(lab, token)
    expect(await aliases(lab, token)).not.toContain('standard-attr-tag')
    const res = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: net, tags: ['runbook:x'] } },
    })
    expect([res.status, o(res.body['NeutronError'])['message']]).toEqual([
      400,
      "Unrecognized attribute(s) 'tags'",
    ])
    const port = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: { port: { network_id: net } },
    })
    const id = String(o(port.body['port'])['id'])
    const put = await lab.req('PUT', `/network/v2.0/ports/${id}/tags`, {
      token,
      body: { tags: ['runbook:x'] },
    })
    expect(put.status).toBe(404)
  })

  it('shows no `tags` key in any view: create, show, list and update of every resource', async () => {
    const token = await lab.token()
    const { net, pub } = await ids(lab, token)
    const bodies: unknown[] = []
    const call = async (
      method: 'GET' | 'POST' | 'PUT',
      url: string,
      body?: unknown,
    ): Promise<Record<string, unknown>> => {
      const r = await lab.req(method, `/network/v2.0/${url}`, {
        token,
        ...(body === undefined ? {} : { body }),
      })
      expect([method, url, r.status]).toEqual([method, url, method === 'POST' ? 201 : 200])
      bodies.push(r.body)
      return r.body
    }
    const made = async (c: string, r: string, body: Record<string, unknown>) => {
      const id = String(o((await call('POST', c, { [r]: body }))[r])['id'])
      await call('GET', `${c}/${id}`)
      await call('PUT', `${c}/${id}`, { [r]: { description: 'changed' } })
      await call('GET', c)
      return id
    }
    const network = await made('networks', 'network', { name: 'nt-net' })
    const subnet = await made('subnets', 'subnet', {
      network_id: network,
      cidr: '10.9.0.0/24',
      ip_version: 4,
    })
    const router = await made('routers', 'router', { name: 'nt-r' })
    await call('PUT', `routers/${router}/add_router_interface`, { subnet_id: subnet })
    await made('security-groups', 'security_group', { name: 'nt-sg' })
    const port = await made('ports', 'port', { network_id: net, name: 'nt-p' })
    const fip = await made('floatingips', 'floatingip', { floating_network_id: pub })
    await call('PUT', `floatingips/${fip}`, { floatingip: { port_id: port } })
    await call('GET', `floatingips/${fip}`)
    await call('GET', 'security-group-rules')
    expect(bodies.length).toBeGreaterThan(20)
    expect(bodies.flatMap((b, i) => withTags(b, `#${i}`))).toEqual([])
  })

  it('answers the whole conformance sequence (every request shape the modules send) without a `tags` key', async () => {
    const seq = await runSequence(
      targetFromCloudsYaml(lab.api.cloudsYaml, 'lab', 'lab', `${lab.url}/network`),
    )
    const neutron = Object.entries(seq.exchanges).filter(([id]) => id.startsWith('neutron.'))
    expect(neutron.length).toBeGreaterThan(60)
    expect(neutron.flatMap(([id, x]) => withTags(x.body, id))).toEqual([])
    // the sequence's tag requests meet what a Neutron without the extension answers
    expect(seq.steps.filter((st) => /\/tags\b/.test(st.request)).map((st) => st.status)).toEqual(
      expect.arrayContaining([404]),
    )
  })

  it.each(['networks', 'subnets', 'ports', 'routers', 'security-groups', 'floatingips'])(
    'refuses the tag filters on %s as invalid attributes for filtering',
    async (c) => {
      const token = await lab.token()
      for (const f of ['tags', 'tags-any', 'not-tags', 'not-tags-any']) {
        const r = await lab.req('GET', `/network/v2.0/${c}?${f}=runbook:x`, { token })
        expect([f, r.status, o(r.body['NeutronError'])['message']]).toEqual([
          f,
          400,
          `['${f}'] is invalid attribute for filtering`,
        ])
      }
    },
  )

  it('refuses an unknown extension name at start', () => {
    expect(() => extensionSet('+no-such-thing')).toThrow(
      "unknown Neutron extension 'no-such-thing'",
    )
  })
})
