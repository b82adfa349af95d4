/**
 * Create, then tag, as on a stock Neutron (which refuses `tags` in a POST): every Neutron
 * resource is made with the marker `runbook:<owner>` in its description and tagged with
 * `PUT .../tags`; a run killed between the POST and its journal record (so before the tagging) is
 * taken over by the next run, which finishes the tagging — never refused, never made twice — and
 * `destroy` of its pending record removes it. The same on labs started with
 * `tag-ports-during-bulk-creation` on and with `standard-attr-tag` off.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Module, ModuleContext } from '../../../engine/module.ts'
import { floatingIp } from '../../../modules/openstack/floating-ip.ts'
import { ownerOf } from '../../../modules/openstack/lib/ownership.ts'
import { port } from '../../../modules/openstack/port.ts'
import { securityGroup } from '../../../modules/openstack/security-group.ts'
import { Runs, startCloud, type TestCloud, dyingAfterPost } from './harness.ts'

async function applyOnce<P, S>(
  mod: Module<P, S>,
  ctx: ModuleContext,
  raw: Record<string, unknown>,
): Promise<void> {
  const p = mod.params.parse(raw)
  const s = await mod.gather(ctx, p)
  await mod.apply(ctx, p, mod.plan(p, s), s)
}

const asModule = <P, S>(m: Module<P, S>): Module<never, unknown> =>
  m as unknown as Module<never, unknown>

interface Found {
  id: string
  tags: readonly string[]
  description: string
}

/** One resource kind: the task, and how to list what Neutron has of it. */
interface Kind {
  what: string
  module: Module<never, unknown>
  raw(cloud: Runs): Promise<Record<string, unknown>>
  list(runs: Runs): Promise<Found[]>
}

const kinds: Kind[] = [
  {
    what: 'port',
    module: port as unknown as Module<never, unknown>,
    raw: async () => ({ name: 'rbt-ct-port', network: 'mynetwork' }),
    list: (runs) => runs.api().neutron.ports({ name: 'rbt-ct-port' }),
  },
  {
    what: 'security group',
    module: securityGroup as unknown as Module<never, unknown>,
    raw: async () => ({ name: 'rbt-ct-sg', rules: [{ protocol: 'tcp', port: 22 }] }),
    list: (runs) => runs.api().neutron.securityGroups({ name: 'rbt-ct-sg' }),
  },
  {
    what: 'floating IP',
    module: floatingIp as unknown as Module<never, unknown>,
    raw: async (runs) => {
      const net = await runs.api().neutron.network('mynetwork')
      const existing = (await runs.api().neutron.ports({ name: 'rbt-ct-fip-port' }))[0]
      const p =
        existing ??
        (await runs.api().neutron.createPort({ name: 'rbt-ct-fip-port', network_id: net.id }))
      return { network: 'public', port: p.id }
    },
    list: async (runs) => {
      const p = (await runs.api().neutron.ports({ name: 'rbt-ct-fip-port' }))[0]
      return p === undefined ? [] : runs.api().neutron.floatingIps({ port_id: p.id })
    },
  },
]

describe.each([
  { lab: 'stock Neutron', extensions: '', tagged: true, portsAtCreate: false },
  {
    lab: 'tag-ports-during-bulk-creation on',
    extensions: '+tag-ports-during-bulk-creation',
    tagged: true,
    portsAtCreate: true,
  },
  {
    lab: 'no standard-attr-tag',
    extensions: '-standard-attr-tag',
    tagged: false,
    portsAtCreate: false,
  },
])('create then tag on a lab with $lab', ({ extensions, tagged, portsAtCreate }) => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud({ neutronExtensions: extensions })
  })
  afterAll(async () => {
    await cloud.close()
  })

  it.each(kinds)(
    'a $what: created with the marker, tagged after; a kill right after the POST is taken over once; destroy removes it',
    async (k) => {
      const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
      const raw = await k.raw(runs)
      const kill = runs.next().ctx(k.module.name)
      await expect(applyOnce(k.module, dyingAfterPost(kill), raw)).rejects.toThrow('killed -9')
      const owner = ownerOf(runs.ctx(k.module.name)).tag
      const [left] = await k.list(runs)
      // Neutron has it, marked but not tagged (the tag PUT comes after the record), except a port
      // where Neutron announces that it keeps tags given at create.
      expect(left?.description).toBe(owner)
      expect(left?.tags.includes(owner)).toBe(k.what === 'port' && portsAtCreate)
      expect(runs.records.map((r) => r.id)).toEqual([expect.stringMatching(/^pending:/)])

      // The next apply takes it over: no error, nothing made twice, tagged, journalled by id.
      await applyOnce(k.module, runs.next().ctx(k.module.name), raw)
      const after = await k.list(runs)
      expect(after).toHaveLength(1)
      expect(after[0]?.id).toBe(left?.id)
      expect(after[0]?.tags).toEqual(tagged ? [owner] : [])
      expect(runs.records.map((r) => r.id)).toEqual([left?.id])
      // In sync: a further run plans nothing.
      const p = k.module.params.parse(raw)
      const ctx = runs.next().ctx(k.module.name, true)
      expect(k.module.plan(p, await k.module.gather(ctx, p))).toEqual([])

      // destroy (newest first) ends with Neutron saying 404.
      for (const r of [...runs.records].reverse())
        await k.module.destroy?.(runs.next().ctx(k.module.name), r)
      expect(await k.list(runs)).toEqual([])
    },
  )

  it('destroy of a pending record (a kill during the POST) finds the port by its marker', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const raw = { name: 'rbt-ct-pending', network: 'mynetwork' }
    await expect(
      applyOnce(
        port as unknown as Module<never, unknown>,
        dyingAfterPost(runs.next().ctx(port.name)),
        raw,
      ),
    ).rejects.toThrow('killed -9')
    const [pending] = runs.records
    expect(pending?.id).toBe('pending:rbt-ct-pending')
    expect(await runs.api().neutron.ports({ name: 'rbt-ct-pending' })).toHaveLength(1)
    if (pending) await port.destroy?.(runs.next().ctx(port.name), pending)
    expect(await runs.api().neutron.ports({ name: 'rbt-ct-pending' })).toHaveLength(0)
  })

  it('tags a journalled port that lacks the tag (a run killed after the record, before the tag PUT)', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const raw = { name: 'rbt-ct-untagged', network: 'mynetwork' }
    await applyOnce(asModule(port), runs.next().ctx(port.name), raw)
    const [made] = await runs.api().neutron.ports({ name: 'rbt-ct-untagged' })
    if (made === undefined) throw new Error('no port')
    // As a kill right after the journal record leaves it (the tag PUT never sent).
    if (tagged) await runs.api().neutron.setTags('ports', made.id, [])
    const p = port.params.parse(raw)
    const s = await port.gather(runs.next().ctx(port.name), p)
    expect([s.how, port.plan(p, s)]).toEqual(['journal', []])
    const [after] = await runs.api().neutron.ports({ name: 'rbt-ct-untagged' })
    expect(after?.tags).toEqual(tagged ? [ownerOf(runs.ctx(port.name)).tag] : [])
    for (const r of runs.records) await port.destroy?.(runs.next().ctx(port.name), r)
  })

  it('keeps a description asked for (the marker is only until the tag is on)', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const raw = { name: 'rbt-ct-desc', network: 'mynetwork', description: 'the VIP' }
    await applyOnce(port as unknown as Module<never, unknown>, runs.next().ctx(port.name), raw)
    const [p] = await runs.api().neutron.ports({ name: 'rbt-ct-desc' })
    expect(p?.description).toBe('the VIP')
    expect(runs.records.map((r) => r.id)).toEqual([p?.id])
    for (const r of runs.records) await port.destroy?.(runs.next().ctx(port.name), r)
  })
})
