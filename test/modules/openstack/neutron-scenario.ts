/**
 * The seed's Neutron steps as the OpenStack modules do them, written once and run against the lab
 * (neutron-scenario.test.ts) and against the real Keystone + Neutron that
 * lab/conformance/setup-real.sh starts (test/e2e/conformance.test.ts), with the same assertions:
 * the VIP port, a VM's port with the VIP as an allowed address pair (by id), a security group
 * with VRRP/ICMP/SSH rules changed as a set, floating IPs on a port (by name) and on the VIP
 * port, take-over after a run killed right after each create's POST, and destroy leaving the
 * project as it was.
 */
import { expect, it } from 'vitest'
import { z } from 'zod'
import type { Module, ModuleContext } from '../../../engine/module.ts'
import { floatingIp } from '../../../modules/openstack/floating-ip.ts'
import type { Api } from '../../../modules/openstack/lib/cloud.ts'
import { ownerOf } from '../../../modules/openstack/lib/ownership.ts'
import { port } from '../../../modules/openstack/port.ts'
import { securityGroup } from '../../../modules/openstack/security-group.ts'
import { converge, Runs, dyingAfterPost } from './harness.ts'

const tagList = z.object({ tags: z.array(z.string()) })

/** Names of the scenario's resources start with this (a crashed earlier run's are swept). */
const PREFIX = 'sc-'

const MODULES: Module<never, unknown>[] = [port, securityGroup, floatingIp].map(
  (m) => m as unknown as Module<never, unknown>,
)

async function applyOnce(mod: Module<never, unknown>, ctx: ModuleContext, raw: unknown) {
  const p = mod.params.parse(raw)
  const s = await mod.gather(ctx, p)
  await mod.apply(ctx, p, mod.plan(p, s), s)
}

/** What the project has, by id: what destroy must leave as it found. */
async function inventory(api: Api): Promise<string[]> {
  const project = await api.client.projectId()
  const ports = await api.neutron.ports({ project_id: project })
  const groups = await api.neutron.securityGroups({ project_id: project })
  const fips = await api.neutron.floatingIps({ project_id: project })
  return [
    ...ports.filter((p) => p.device_owner === '').map((p) => `port ${p.id}`),
    ...groups.map((g) => `group ${g.id}`),
    ...fips.map((f) => `fip ${f.id}`),
  ].sort()
}

/** Removes what a crashed earlier run of the scenario left. */
async function sweep(api: Api): Promise<void> {
  const project = await api.client.projectId()
  const ports = (await api.neutron.ports({ project_id: project })).filter((p) =>
    p.name.startsWith(PREFIX),
  )
  for (const f of await api.neutron.floatingIps({ project_id: project }))
    if (ports.some((p) => p.id === f.port_id) || f.description.startsWith('runbook:'))
      await api.neutron.deleteGone('floatingips', f.id)
  for (const p of ports) await api.neutron.deleteGone('ports', p.id)
  for (const g of await api.neutron.securityGroups({ project_id: project }))
    if (g.name.startsWith(PREFIX)) await api.neutron.deleteGone('security-groups', g.id)
}

/** Where the scenario runs. */
export interface ScenarioTarget {
  /** The clouds.yaml entry (a mapping) of the demo project. */
  cloud(): Record<string, unknown>
  /** Two free addresses on mysubnet (192.0.2.0/24): the VIP and a VM's. */
  vip: string
  vmIp: string
}

/**
 * Declares the scenario's tests (call inside a describe whose beforeAll makes the cloud).
 * @example describe('lab', () => { beforeAll(...); neutronScenario({ cloud: () => entry, vip, vmIp }) })
 */
export function neutronScenario(t: ScenarioTarget): void {
  it('converges the seed steps, takes over kills mid-create, and destroy leaves the project as it was', async () => {
    const runs = new Runs({ openstack_cloud: t.cloud() })
    const api = runs.api()
    await sweep(api)
    const before = await inventory(api)

    // The VIP port.
    const vip = {
      name: `${PREFIX}vip`,
      network: 'mynetwork',
      fixed_ips: [{ subnet: 'mysubnet', ip_address: t.vip }],
    }
    const v = await converge(port, runs.next(), vip)
    expect(v.first.map((c) => c.action)).toEqual(['create'])
    expect(v.second).toEqual([])
    const owner = ownerOf(runs.ctx('openstack.port')).tag
    const vipPort = (await api.neutron.ports({ name: `${PREFIX}vip` }))[0]
    expect(vipPort).toMatchObject({ tags: [owner], description: owner })
    expect(vipPort?.fixed_ips.map((f) => f.ip_address)).toEqual([t.vip])

    // VRRP between the keepalived VMs, ping and SSH; then one rule fewer.
    const rules = [
      { protocol: 'vrrp', remote_group: 'self' },
      { protocol: 'icmp' },
      { protocol: 'tcp', port: 22, remote_ip_prefix: '0.0.0.0/0' },
    ]
    const sg = await converge(securityGroup, runs.next(), {
      name: `${PREFIX}vrrp`,
      description: 'keepalived',
      rules,
    })
    expect(sg.first.map((c) => c.action)).toEqual(['create'])
    expect(sg.second).toEqual([])
    const group = (await api.neutron.securityGroups({ name: `${PREFIX}vrrp` }))[0]
    expect(group).toMatchObject({ tags: [owner], description: 'keepalived' })
    expect(
      group?.security_group_rules
        .filter((r) => r.direction === 'ingress')
        .map((r) => r.protocol)
        .sort(),
    ).toEqual(['icmp', 'tcp', 'vrrp'])
    const fewer = await converge(securityGroup, runs.next(), {
      name: `${PREFIX}vrrp`,
      description: 'keepalived',
      rules: rules.slice(0, 2),
    })
    expect(fewer.first.map((c) => c.action)).toEqual(['update'])
    expect(fewer.second).toEqual([])
    // A VM's port (as Nova would make one, after the groups) that may send from the VIP.
    const vm = {
      name: `${PREFIX}vm1`,
      network: 'mynetwork',
      fixed_ips: [{ subnet: 'mysubnet', ip_address: t.vmIp }],
    }
    const vmPort = (await converge(port, runs.next(), vm)).result?.output as {
      id: string
      mac_address: string
    }
    const pairs = await converge(port, runs.next(), {
      id: vmPort.id,
      allowed_address_pairs: [{ ip_address: `${t.vip}/24` }],
    })
    expect(pairs.first.map((c) => c.action)).toEqual(['update'])
    expect(pairs.second).toEqual([])
    expect((await api.neutron.port(vmPort.id))?.allowed_address_pairs).toEqual([
      { ip_address: `${t.vip}/24`, mac_address: vmPort.mac_address },
    ])

    const onPorts = await converge(port, runs.next(), {
      id: vmPort.id,
      security_groups: [`${PREFIX}vrrp`],
    })
    expect(onPorts.second).toEqual([])

    // Floating IPs: on the VM's port by name, and on the VIP port.
    for (const where of [`${PREFIX}vm1`, `${PREFIX}vip`]) {
      const f = await converge(floatingIp, runs.next(), { network: 'public', port: where })
      expect(f.first.map((c) => c.action)).toEqual(['create'])
      expect(f.second).toEqual([])
      expect(String(f.result?.output?.['address'])).toMatch(/^198\.51\.100\.\d+$/)
    }
    const portId = (name: string) => api.neutron.ports({ name }).then((p) => p[0]?.id ?? '')
    expect(
      (await api.neutron.floatingIps({ port_id: await portId(`${PREFIX}vip`) }))[0],
    ).toMatchObject({
      tags: [owner],
      description: owner,
    })

    // A run killed right after each create's POST: taken over by the next, each exists once.
    const killed: [Module<never, unknown>, Record<string, unknown>, () => Promise<number>][] = [
      [
        MODULES[0] as Module<never, unknown>,
        { name: `${PREFIX}crash`, network: 'mynetwork' },
        async () => (await api.neutron.ports({ name: `${PREFIX}crash` })).length,
      ],
      [
        MODULES[1] as Module<never, unknown>,
        { name: `${PREFIX}crash`, rules: [{ protocol: 'tcp', port: 80 }] },
        async () => (await api.neutron.securityGroups({ name: `${PREFIX}crash` })).length,
      ],
      [
        MODULES[2] as Module<never, unknown>,
        { network: 'public', port: `${PREFIX}crash` },
        async () =>
          (await api.neutron.floatingIps({ port_id: await portId(`${PREFIX}crash`) })).length,
      ],
    ]
    for (const [mod, raw, count] of killed) {
      await expect(applyOnce(mod, dyingAfterPost(runs.next().ctx(mod.name)), raw)).rejects.toThrow(
        'killed -9',
      )
      expect(await count()).toBe(1)
      const again = await converge(mod, runs.next(), raw)
      // Taken over, never made again (a group killed before its rules gets them now).
      expect(
        again.first.map((c) => c.action),
        `${mod.name} after the kill`,
      ).toEqual(mod.name === 'openstack.security_group' ? ['update'] : [])
      expect(again.second).toEqual([])
      expect(await count()).toBe(1)
    }
    expect(runs.records.filter((r) => r.id.startsWith('pending:'))).toEqual([])
    // Every record names something Neutron has, tagged as ours.
    for (const r of runs.records) {
      const coll =
        r.type === 'port'
          ? 'ports'
          : r.type === 'security_group'
            ? 'security-groups'
            : 'floatingips'
      const tags = await api.client.get('network', `/${coll}/${r.id}/tags`, tagList)
      expect(tags.tags, `${r.type} ${r.id}`).toEqual([owner])
    }

    // destroy, newest first; a second destroy is fine; the project is as it was.
    for (const rec of [...runs.records].reverse()) {
      const mod = MODULES.find((m) => m.name === rec.module)
      await mod?.destroy?.(runs.next().ctx(rec.module), rec)
    }
    for (const rec of [...runs.records].reverse()) {
      const mod = MODULES.find((m) => m.name === rec.module)
      await mod?.destroy?.(runs.next().ctx(rec.module), rec)
    }
    expect(await inventory(api)).toEqual(before)
  }, 120_000)
}
