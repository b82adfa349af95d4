/**
 * Nova microversions negotiated, not assumed: the client reads the compute version document and
 * uses the highest microversion both Nova and the modules support; the server module gates its
 * features on it (tags in the create from 2.52, else create then `PUT /servers/{id}/tags` from
 * 2.26, else the journal and the metadata marker alone). The seed's cloud steps run against labs
 * that stand for older Novas (2.37 Newton, 2.60 Queens) and the newest (2.100), and a run killed
 * after the server POST is taken over at each level.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { Module } from '../../../engine/module.ts'
import { negotiateMicroversion } from '../../../modules/openstack/client/client.ts'
import type { OpenStackApiError } from '../../../modules/openstack/client/errors.ts'
import { floatingIp } from '../../../modules/openstack/floating-ip.ts'
import { keypair } from '../../../modules/openstack/keypair.ts'
import { ownerOf } from '../../../modules/openstack/lib/ownership.ts'
import { port } from '../../../modules/openstack/port.ts'
import { portInfo } from '../../../modules/openstack/port-info.ts'
import { securityGroup } from '../../../modules/openstack/security-group.ts'
import { MARKER_KEY, server } from '../../../modules/openstack/server.ts'
import {
  converge,
  makeHostKey,
  planOnly,
  Runs,
  startCloud,
  type TestCloud,
  dyingAfterPost,
} from './harness.ts'

describe('negotiateMicroversion', () => {
  it.each([
    [{ version: '2.93', min_version: '2.1' }, '2.93'],
    [{ version: '2.37', min_version: '2.1' }, '2.37'],
    [{ version: '2.100', min_version: '2.1' }, '2.100'],
    [{ version: '2.120', min_version: '2.1' }, '2.100'],
    [{ version: '', min_version: '' }, '2.1'],
  ])('%j -> %s', (doc, want) => {
    expect(negotiateMicroversion(doc)).toBe(want)
  })
})

const asModule = <P, S>(m: Module<P, S>): Module<never, unknown> =>
  m as unknown as Module<never, unknown>

describe.each([
  { max: '2.20', tags: 'none' },
  { max: '2.37', tags: 'put' },
  { max: '2.60', tags: 'create' },
  { max: undefined, tags: 'create' },
])('the seed cloud steps on a Nova whose maximum is $max', ({ max, tags }) => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud(max === undefined ? {} : { novaMaxMicroversion: max })
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('negotiates that microversion and converges every step, then plans nothing', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    expect(await runs.api().client.computeMicroversion()).toBe(max ?? '2.100')
    const steps: [Module<never, unknown>, Record<string, unknown>][] = [
      [asModule(keypair), { name: 'mv-key', public_key: makeHostKey().line }],
      [
        asModule(securityGroup),
        {
          name: 'mv-vrrp',
          rules: [
            { protocol: 'vrrp', remote_group: 'self' },
            { protocol: 'icmp' },
            { protocol: 'tcp', port: 22, remote_ip_prefix: '0.0.0.0/0' },
          ],
        },
      ],
      [
        asModule(port),
        {
          name: 'mv-vip',
          network: 'mynetwork',
          fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.250' }],
        },
      ],
      [
        asModule(server),
        {
          name: 'mv-vm',
          image: 'Debian 12',
          flavor: 'm1.tiny',
          network: 'mynetwork',
          fixed_ip: '192.0.2.251',
          security_groups: ['mv-vrrp'],
          key_name: 'mv-key',
        },
      ],
      [asModule(portInfo), { server: 'mv-vm', fixed_ip: '192.0.2.251' }],
      [asModule(floatingIp), { network: 'public', server: 'mv-vm' }],
      [asModule(floatingIp), { network: 'public', port: 'mv-vip' }],
    ]
    const outputs: Record<string, unknown>[] = []
    for (const [mod, raw] of steps) {
      const r = await converge(mod, runs.next(), raw)
      expect(r.second, `${mod.name} ${JSON.stringify(raw)}`).toEqual([])
      outputs.push(r.result?.output ?? {})
    }
    const vmId = String(outputs[3]?.['id'])
    expect(outputs[3]?.['host_keys']).toHaveLength(1)
    // The flavor by name: embedded from 2.47, looked up by id below.
    expect(outputs[3]?.['flavor']).toBe('m1.tiny')
    // port_info changes nothing: its output comes from the plan
    const info = await planOnly(portInfo, runs.next(), { server: 'mv-vm', fixed_ip: '192.0.2.251' })
    expect(info.output?.['id']).toBe((outputs[3]?.['port'] as { id: string }).id)
    const owner = ownerOf(runs.ctx('openstack.server')).tag
    // What Nova shows, read at the newest microversion the lab has (tags need 2.26).
    const seen = await runs.api().client.get(
      'compute',
      `/servers/${vmId}`,
      z.object({
        server: z.object({
          tags: z.array(z.string()).optional(),
          metadata: z.record(z.string(), z.string()),
        }),
      }),
    )
    expect(seen.server.metadata[MARKER_KEY]).toBe(owner)
    if (tags === 'none') expect(seen.server.tags).toBeUndefined()
    else expect(seen.server.tags).toEqual([owner])

    // destroy, newest first, leaves nothing
    for (const r of [...runs.records].reverse()) {
      const mod = [keypair, securityGroup, port, server, floatingIp].find(
        (m) => m.name === r.module,
      )
      await mod?.destroy?.(runs.next().ctx(r.module), r)
    }
    expect(await runs.api().nova.serversNamed('mv-vm')).toEqual([])
    expect(await runs.api().neutron.ports({ name: 'mv-vip' })).toEqual([])
    expect(await runs.api().neutron.securityGroups({ name: 'mv-vrrp' })).toEqual([])
  })

  it('takes over a server whose run died right after the POST, once, and tags it where Nova can', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const raw = {
      name: 'mv-crash',
      image: 'Debian 12',
      flavor: 'm1.tiny',
      network: 'mynetwork',
      host_keys: false,
    }
    const p = server.params.parse(raw)
    const dying = dyingAfterPost(runs.next().ctx('openstack.server'))
    const s0 = await server.gather(dying, p)
    await expect(server.apply(dying, p, server.plan(p, s0), s0)).rejects.toThrow('killed -9')
    const r = await converge(server, runs.next(), raw)
    expect(r.second).toEqual([])
    const found = await runs.api().nova.serversNamed('mv-crash')
    expect(found).toHaveLength(1)
    expect(runs.records.map((x) => x.id)).toEqual([found[0]?.id])
    const owner = ownerOf(runs.ctx('openstack.server')).tag
    expect(found[0]?.tags).toEqual(tags === 'none' ? [] : [owner])
    for (const rec of runs.records) await server.destroy?.(runs.next().ctx('openstack.server'), rec)
    expect(await runs.api().nova.serversNamed('mv-crash')).toEqual([])
  })
})

describe('a lab that stands for Zed (2.93)', () => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud({ novaMaxMicroversion: '2.93' })
  })
  afterAll(async () => {
    await cloud.close()
  })

  it("answers 2.94 with Nova's 406, and refuses tags in a create below 2.52 with Nova's 400", async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const api = runs.api()
    const doc = await api.client.get(
      'compute',
      `${cloud.url}/compute/v2.1`,
      z.object({ version: z.object({ version: z.string(), min_version: z.string() }) }),
      { noMicroversion: true },
    )
    expect(doc.version).toEqual({ version: '2.93', min_version: '2.1' })
    const at = (v: string) => ({
      headers: { 'OpenStack-API-Version': `compute ${v}`, 'X-OpenStack-Nova-API-Version': v },
    })
    const e406 = (await api.client
      .request('compute', 'GET', '/servers', at('2.94'))
      .catch((x: unknown) => x)) as OpenStackApiError
    expect(e406.message).toBe(
      'Nova 406 computeFault: Version 2.94 is not supported by the API. Minimum is 2.1 and maximum is 2.93. (GET /compute/v2.1/servers)',
    )
    const image = await api.nova.image('Debian 12')
    const flavor = await api.nova.flavor('m1.tiny')
    const net = await api.neutron.network('mynetwork')
    const body = {
      server: {
        name: 'rn-vm-1',
        imageRef: image.id,
        flavorRef: flavor.id,
        networks: [{ uuid: net.id }],
        tags: ['runbook:1cdc663e766a'],
      },
    }
    const e400 = (await api.client
      .request('compute', 'POST', '/servers', { body, ...at('2.37') })
      .catch((x: unknown) => x)) as OpenStackApiError
    expect(e400.message).toBe(
      `Nova 400 badRequest: Invalid input for field/attribute server. Value: {'name': 'rn-vm-1', 'imageRef': '${image.id}', 'flavorRef': '${flavor.id}', 'networks': [{'uuid': '${net.id}'}], 'tags': ['runbook:1cdc663e766a']}. Additional properties are not allowed ('tags' was unexpected) (POST /compute/v2.1/servers)`,
    )
    expect(await api.nova.serversNamed('rn-vm-1')).toEqual([])
  })
})
