import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, eventually, o, startTestLab } from './harness.ts'
import type { TestLab } from './harness.ts'
import type { LabState } from '../../../lab/api/types.ts'

describe('lab API: state on disk and restarts', () => {
  let lab: TestLab
  let token: string
  let serverId: string
  let portId: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    const net = a(
      (await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })).body['networks'],
    )[0]
    const port = await lab.req('POST', '/network/v2.0/ports', {
      token,
      body: {
        port: { network_id: net?.['id'], name: 'kept', fixed_ips: [{ ip_address: '192.0.2.254' }] },
      },
    })
    portId = String(o(port.body['port'])['id'])
    const image = a(
      (await lab.req('GET', '/image/v2/images?name=Debian+12', { token })).body['images'],
    )[0]
    const created = await lab.req('POST', '/compute/v2.1/servers', {
      token,
      body: {
        server: {
          name: 'survivor',
          imageRef: image?.['id'],
          flavorRef: '1',
          networks: [{ uuid: net?.['id'] }],
        },
      },
    })
    serverId = String(o(created.body['server'])['id'])
    await eventually(async () =>
      o((await lab.req('GET', `/compute/v2.1/servers/${serverId}`, { token })).body['server'])[
        'status'
      ] === 'ACTIVE'
        ? true
        : undefined,
    )
  })
  afterAll(async () => {
    await lab.close()
  })

  it('writes the state file crash-safely: complete JSON, mode 0600, no temp files left', async () => {
    await lab.api.cloud.idle()
    await lab.api.cloud.commit()
    const file = join(lab.stateDir, 'api-state.json')
    const parsed = JSON.parse(await readFile(file, 'utf8')) as LabState
    expect(parsed.schema).toBe(1)
    expect(parsed.ports.some((p) => p.id === portId)).toBe(true)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readdir(lab.stateDir)).filter((f) => f.includes('.tmp'))).toEqual([])
    expect(await readFile(join(lab.stateDir, 'clouds.yaml'), 'utf8')).toContain('lab:')
  })

  it('survives a restart: same resources, old tokens still valid, hosts brought back', async () => {
    const before = lab.driver.calls.length
    await lab.restart()
    const port = await lab.req('GET', `/network/v2.0/ports/${portId}`, { token })
    expect(port.status).toBe(200)
    expect(o(port.body['port'])['fixed_ips']).toEqual([
      expect.objectContaining({ ip_address: '192.0.2.254' }),
    ])
    const after = lab.driver.calls.slice(before)
    expect(after[0]?.method).toBe('init')
    expect(after[0]?.snapshot?.ports.some((p) => p.id === portId)).toBe(true)
    expect(after.some((c) => c.method === 'syncNetwork')).toBe(true)
    await eventually(async () =>
      lab.driver.calls.slice(before).some((c) => c.method === 'startVm' && c.id === serverId)
        ? true
        : undefined,
    )
    // The seed is idempotent: still one mynetwork, one router, one default group.
    expect(
      a(
        (await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })).body['networks'],
      ),
    ).toHaveLength(1)
    expect(
      a((await lab.req('GET', '/network/v2.0/routers', { token })).body['routers']),
    ).toHaveLength(1)
    expect(
      a(
        (await lab.req('GET', '/network/v2.0/security-groups?name=default', { token })).body[
          'security_groups'
        ],
      ),
    ).toHaveLength(1)
  })

  it('finishes a build that a crash interrupted', async () => {
    const before = lab.driver.calls.length
    await lab.restart(async () => {
      const file = join(lab.stateDir, 'api-state.json')
      const state = JSON.parse(await readFile(file, 'utf8')) as LabState
      const s = state.servers.find((x) => x.id === serverId)
      if (s === undefined) throw new Error('server missing')
      Object.assign(s, {
        status: 'BUILD',
        vmState: 'building',
        taskState: 'spawning',
        launchedAt: null,
      })
      await writeFile(file, JSON.stringify(state))
    })
    const server = await eventually(async () => {
      const body = o(
        (await lab.req('GET', `/compute/v2.1/servers/${serverId}`, { token })).body['server'],
      )
      return body['status'] === 'ACTIVE' ? body : undefined
    })
    expect(server['OS-EXT-STS:task_state']).toBeNull()
    expect(
      lab.driver.calls.slice(before).some((c) => c.method === 'createVm' && c.id === serverId),
    ).toBe(true)
  })
})
