/**
 * Ownership when things go wrong: a run that dies between the POST and its journal record is
 * taken over by the next run (found by name and tag), never duplicated; `destroy` of such a
 * pending record finds the resource too; a POST whose answer is lost on the wire (a proxy that
 * drops the connection after the cloud answered) is resolved by a lookup, not sent twice.
 */
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ModuleContext } from '../../../../engine/module.ts'
import { ownerOf } from '../../../../modules/openstack/lib/ownership.ts'
import { port } from '../../../../modules/openstack/port.ts'
import { server } from '../../../../modules/openstack/server.ts'
import { Runs, startCloud, type TestCloud, dyingAfterPost } from '../harness.ts'

async function applyOnce<P, S>(
  mod: {
    params: { parse(x: unknown): P }
    gather(c: ModuleContext, p: P): Promise<S>
    plan(p: P, s: S): unknown[]
    apply(c: ModuleContext, p: P, ch: never[], s: S): Promise<unknown>
  },
  ctx: ModuleContext,
  raw: Record<string, unknown>,
): Promise<unknown> {
  const p = mod.params.parse(raw)
  const s = await mod.gather(ctx, p)
  return mod.apply(ctx, p, mod.plan(p, s) as never[], s)
}

describe('ownership and take-over', () => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud()
  })
  afterAll(async () => {
    await cloud.close()
  })

  it('takes over a port created by a run that died before journalling it, and never makes a second', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    const want = {
      name: 'rbt-crash',
      network: 'mynetwork',
      fixed_ips: [{ subnet: 'mysubnet', ip_address: '192.0.2.240' }],
    }
    await expect(
      applyOnce(port, dyingAfterPost(runs.next().ctx('openstack.port')), want),
    ).rejects.toThrow('killed -9')
    expect(runs.records.map((r) => r.id)).toEqual(['pending:rbt-crash'])
    const owner = ownerOf(runs.ctx('openstack.port')).id

    const next = runs.next().ctx('openstack.port')
    expect(ownerOf(next).id).toBe(owner)
    const p = port.params.parse(want)
    const s = await port.gather(next, p)
    expect(s.how).toBe('tag')
    expect(port.plan(p, s)).toEqual([])
    expect(runs.records.map((r) => [r.id, r.name])).toEqual([[s.port?.id, 'rbt-crash']])
    expect(await runs.api().neutron.ports({ name: 'rbt-crash' })).toHaveLength(1)
  })

  it('destroy of a pending record finds the resource by name and tag', async () => {
    const runs = new Runs({ openstack_cloud: cloud.clouds['lab'] })
    await expect(
      applyOnce(server, dyingAfterPost(runs.next().ctx('openstack.server')), {
        name: 'rbt-crash-vm',
        image: 'Debian 12',
        flavor: 'm1.tiny',
        network: 'mynetwork',
        host_keys: false,
      }),
    ).rejects.toThrow('killed -9')
    const [pending] = runs.records
    expect(pending?.id).toBe('pending:rbt-crash-vm')
    expect(await runs.api().nova.serversNamed('rbt-crash-vm')).toHaveLength(1)
    if (pending) await server.destroy?.(runs.next().ctx('openstack.server'), pending)
    expect(await runs.api().nova.serversNamed('rbt-crash-vm')).toHaveLength(0)
  })

  describe('a POST whose answer is lost on the wire', () => {
    let proxy: Server
    let dropPosts = 0
    let posts = 0
    beforeAll(async () => {
      const upstream = new URL(cloud.url)
      proxy = createServer((req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          const isPortPost =
            req.method === 'POST' && (req.url ?? '').startsWith('/network/v2.0/ports')
          if (isPortPost) posts++
          const up = request(
            {
              host: upstream.hostname,
              port: upstream.port,
              path: req.url,
              method: req.method,
              headers: req.headers,
            },
            (ur) => {
              const body: Buffer[] = []
              ur.on('data', (c: Buffer) => body.push(c))
              ur.on('end', () => {
                // The cloud did it; the client never hears so.
                if (isPortPost && dropPosts > 0) {
                  dropPosts--
                  req.socket.destroy()
                  return
                }
                res.writeHead(ur.statusCode ?? 502, ur.headers)
                res.end(Buffer.concat(body))
              })
            },
          )
          up.end(Buffer.concat(chunks))
        })
      })
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()))
    })
    afterAll(async () => {
      proxy.closeAllConnections()
      await new Promise((r) => proxy.close(r))
    })

    it('is resolved by looking the port up by name and tag: one port, journalled', async () => {
      const via = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
      const lab = cloud.clouds['lab'] ?? {}
      const runs = new Runs({
        openstack_cloud: { ...lab, network_endpoint_override: `${via}/network` },
      })
      dropPosts = 1
      await applyOnce(port, runs.next().ctx('openstack.port'), {
        name: 'rbt-lost',
        network: 'mynetwork',
      })
      expect(posts).toBe(1)
      const found = await runs.api().neutron.ports({ name: 'rbt-lost' })
      expect(found).toHaveLength(1)
      expect(runs.records.map((r) => r.id)).toEqual([found[0]?.id])
    })
  })
})
