import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { unknown } from '../../../engine/vars/unknown.ts'
import { portInfo } from '../../../modules/openstack/port-info.ts'
import { server } from '../../../modules/openstack/server.ts'
import { converge, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

describe('openstack.port_info against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-os-pi-'))
  beforeAll(async () => {
    cloud = await startCloud()
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] }, dir)
  })
  afterAll(async () => {
    await cloud.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it("finds a server's port by its fixed IP; known after apply while the server is not there", async () => {
    const pending = await planOnly(portInfo, runs.next(), {
      server: 'rbt-pi',
      fixed_ip: '192.0.2.77',
    })
    expect(pending.changes).toEqual([])
    expect(pending.output?.['id']).toEqual(unknown('port.id'))
    const made = await converge(server, runs.next(), {
      name: 'rbt-pi',
      image: 'Debian 12',
      flavor: 'm1.tiny',
      network: 'mynetwork',
      fixed_ip: '192.0.2.77',
      security_groups: ['default'],
      host_keys: false,
    })
    const r = await converge(portInfo, runs.next(), { server: 'rbt-pi', fixed_ip: '192.0.2.77' })
    expect(r.first).toEqual([])
    // + Nova's version document (the microversion, once per run)
    expect(r.gatherCalls).toBe(3)
    const out = await planOnly(portInfo, runs.next(), { server: 'rbt-pi', fixed_ip: '192.0.2.77' })
    expect(out.output?.['id']).toBe((made.result?.output?.['port'] as { id: string }).id)
    expect(out.output?.['ip']).toBe('192.0.2.77')
    const p = portInfo.params.parse({ server: 'rbt-pi', fixed_ip: '192.0.2.78' })
    await expect(portInfo.gather(runs.next().ctx('openstack.port_info'), p)).rejects.toThrow(
      'server rbt-pi has no port with fixed IP 192.0.2.78',
    )
  })
})
