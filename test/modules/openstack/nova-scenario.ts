/**
 * The server and keypair modules' steps, written once and run against the lab standing for Zed
 * (nova-scenario.test.ts) and against the real Nova 26 (Zed, FakeDriver) that
 * lab/conformance/setup-real-nova.sh starts (test/e2e/conformance.test.ts), at several
 * microversions, with the same assertions: the negotiated or configured microversion; a keypair
 * and a server (`host_keys: false`: the FakeDriver's console has no keys) converge and then plan
 * nothing; ownership where Nova has it (tags in the create from 2.52, else `PUT .../tags`, and the
 * metadata marker always); a server stopped behind the runbook's back is started, as a change; a
 * run killed right after the server POST is taken over once; destroy leaves nothing.
 */
import { expect, it } from 'vitest'
import { z } from 'zod'
import { keypair } from '../../../modules/openstack/keypair.ts'
import type { Api } from '../../../modules/openstack/lib/cloud.ts'
import { ownerOf } from '../../../modules/openstack/lib/ownership.ts'
import { MARKER_KEY, server } from '../../../modules/openstack/server.ts'
import { converge, dyingAfterPost, makeHostKey, Runs } from './harness.ts'

/** Names of the scenario's resources start with this (a crashed earlier run's are swept). */
const PREFIX = 'ns-'

/** Where the scenario runs. */
export interface NovaTarget {
  /** The clouds.yaml entry (a mapping) of the demo project, without `compute_api_version`. */
  cloud(): Record<string, unknown>
  image: string
  flavor: string
  /** The microversions to run at: `configured` set as compute_api_version, else negotiated. */
  levels: { configured?: string | undefined; expected: string }[]
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** Removes what a crashed earlier run of the scenario left. */
async function sweep(api: Api): Promise<void> {
  for (const name of [`${PREFIX}vm`, `${PREFIX}crash`])
    for (const s of await api.nova.serversNamed(name)) await api.nova.deleteServer(s.id)
  await api.nova.deleteKeypair(`${PREFIX}key`)
  await until('the swept servers to go', async () =>
    (
      await Promise.all([`${PREFIX}vm`, `${PREFIX}crash`].map((n) => api.nova.serversNamed(n)))
    ).every((x) => x.length === 0),
  )
}

/** Tags and metadata as Nova shows them at the client's microversion. */
async function ownership(api: Api, id: string) {
  return (
    await api.client.get(
      'compute',
      `/servers/${id}`,
      z.object({
        server: z.object({
          tags: z.array(z.string()).optional(),
          metadata: z.record(z.string(), z.string()),
        }),
      }),
    )
  ).server
}

/**
 * Declares the scenario's tests, one per level (call inside a describe whose beforeAll makes the cloud).
 * @example describe('lab', () => { beforeAll(...); novaScenario({ cloud: () => entry, image, flavor, levels }) })
 */
export function novaScenario(t: NovaTarget): void {
  it.each(t.levels)(
    'at $expected ($configured): keypair and server converge, a stopped server is started, a kill after the POST is taken over, destroy leaves nothing',
    async ({ configured, expected }) => {
      const runs = new Runs({
        openstack_cloud: {
          ...t.cloud(),
          ...(configured === undefined ? {} : { compute_api_version: configured }),
        },
      })
      const api = runs.api()
      expect(await api.client.computeMicroversion()).toBe(expected)
      await sweep(api)

      const key = await converge(keypair, runs.next(), {
        name: `${PREFIX}key`,
        public_key: makeHostKey().line,
      })
      expect(key.first.map((c) => c.action)).toEqual(['create'])
      expect(key.second).toEqual([])

      const vm = {
        name: `${PREFIX}vm`,
        image: t.image,
        flavor: t.flavor,
        network: 'mynetwork',
        key_name: `${PREFIX}key`,
        host_keys: false,
        timeout: 120,
      }
      const made = await converge(server, runs.next(), vm)
      expect(made.first.map((c) => c.action)).toEqual(['create'])
      expect(made.second).toEqual([])
      const out = made.result?.output ?? {}
      expect(out).toMatchObject({ status: 'ACTIVE', key_name: `${PREFIX}key`, flavor: t.flavor })
      expect(String(out['ip'])).toMatch(/^192\.0\.2\.\d+$/)
      expect((out['port'] as { id?: string } | null)?.id).toMatch(/^[0-9a-f-]{36}$/)
      const id = String(out['id'])
      const owner = ownerOf(runs.ctx('openstack.server')).tag
      // Tags in the create from 2.52, with PUT .../tags from 2.26; the marker at every level.
      expect(await ownership(api, id)).toEqual({
        tags: [owner],
        metadata: { [MARKER_KEY]: owner },
      })

      // Stopped behind the runbook's back: `present` starts it, as a change; then in sync.
      await api.nova.action(id, { 'os-stop': null })
      await until('SHUTOFF', async () => (await api.nova.server(id))?.status === 'SHUTOFF')
      const started = await converge(server, runs.next(), vm)
      expect(started.first.map((c) => c.note)).toEqual(['start (SHUTOFF -> ACTIVE)'])
      expect(started.result?.output?.['status']).toBe('ACTIVE')
      expect(started.second).toEqual([])

      // A run killed right after the POST: the next one takes the server over, once.
      const crash = { ...vm, name: `${PREFIX}crash` }
      const p = server.params.parse(crash)
      const dying = dyingAfterPost(runs.next().ctx('openstack.server'))
      const s0 = await server.gather(dying, p)
      await expect(server.apply(dying, p, server.plan(p, s0), s0)).rejects.toThrow('killed -9')
      const taken = await converge(server, runs.next(), crash)
      expect(taken.second).toEqual([])
      const crashed = await api.nova.serversNamed(`${PREFIX}crash`)
      expect(crashed).toHaveLength(1)
      expect((await ownership(api, crashed[0]?.id ?? '')).tags).toEqual([owner])

      // destroy, newest first, leaves nothing
      for (const r of [...runs.records].reverse()) {
        const mod = [keypair, server].find((m) => m.name === r.module)
        await mod?.destroy?.(runs.next().ctx(r.module), r)
      }
      expect(await api.nova.serversNamed(`${PREFIX}vm`)).toEqual([])
      expect(await api.nova.serversNamed(`${PREFIX}crash`)).toEqual([])
      expect(await api.nova.keypair(`${PREFIX}key`)).toBeUndefined()
    },
    300_000,
  )
}
