import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { a, eventually, o, startTestLab } from '../harness.ts'
import type { Res, TestLab } from '../harness.ts'

describe('lab API: Nova', () => {
  let lab: TestLab
  let token: string
  let imageId: string
  let netId: string
  beforeAll(async () => {
    lab = await startTestLab()
    token = await lab.token()
    const images = a(
      (await lab.req('GET', '/image/v2/images?name=Debian+12', { token })).body['images'],
    )
    imageId = String(images[0]?.['id'])
    netId = String(
      a(
        (await lab.req('GET', '/network/v2.0/networks?name=mynetwork', { token })).body['networks'],
      )[0]?.['id'],
    )
  })
  afterAll(async () => {
    await lab.close()
  })

  const create = (server: Record<string, unknown>, headers?: Record<string, string>) =>
    lab.req('POST', '/compute/v2.1/servers', {
      token,
      body: {
        server: { imageRef: imageId, flavorRef: '2', networks: [{ uuid: netId }], ...server },
      },
      ...(headers === undefined ? {} : { headers }),
    })
  const show = (id: string, headers?: Record<string, string>) =>
    lab.req('GET', `/compute/v2.1/servers/${id}`, {
      token,
      ...(headers === undefined ? {} : { headers }),
    })
  const statusOf = async (id: string, want: string) =>
    eventually(async () => {
      const s = o((await show(id)).body['server'])
      return s['status'] === want && s['OS-EXT-STS:task_state'] === null ? s : undefined
    })

  it('serves Glance images and Nova flavors', async () => {
    const image = o((await lab.req('GET', `/image/v2/images/${imageId}`, { token })).body)
    expect(image).toMatchObject({
      name: 'Debian 12',
      status: 'active',
      visibility: 'public',
      os_admin_user: 'debian',
    })
    const missing = await lab.req('GET', '/image/v2/images/Debian%2012', { token })
    expect(missing.status).toBe(404)
    const flavors = a((await lab.req('GET', '/compute/v2.1/flavors', { token })).body['flavors'])
    expect(flavors.map((f) => f['name'])).toEqual([
      'm1.tiny',
      'm1.small',
      'm1.medium',
      'm1.large',
      'm1.xlarge',
      'k1.small',
      'k1.medium',
    ])
    const small = o((await lab.req('GET', '/compute/v2.1/flavors/2', { token })).body['flavor'])
    expect(small).toMatchObject({
      name: 'm1.small',
      ram: 2048,
      vcpus: 1,
      disk: 20,
      swap: '',
      'os-flavor-access:is_public': true,
    })
    const nf = await lab.req('GET', '/compute/v2.1/flavors/m1.small', { token })
    expect(nf.status).toBe(404)
    expect(nf.body).toEqual({
      itemNotFound: { code: 404, message: 'Flavor m1.small could not be found.' },
    })
  })

  it.each([
    ['2', 'm1.small', 'namespace', 2048],
    ['6', 'k1.small', 'kernel', 192],
  ])('flavor %s (%s) boots a %s VM with %d MB', async (flavorRef, name, kind, ramMb) => {
    const res = await create({ name: `kind-${name}`, flavorRef })
    expect(res.status).toBe(202)
    const id = String(o(res.body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    const spec = lab.driver.calls.find((c) => c.method === 'createVm' && c.id === id)?.spec
    expect(spec).toMatchObject({ kind, ramMb, image: 'debian-12', defaultUser: 'debian' })
    expect((await lab.req('DELETE', `/compute/v2.1/servers/${id}`, { token })).status).toBe(204)
  })

  it('creates a server: 202 at once, BUILD, then ACTIVE with a port bound to it', async () => {
    let release = () => undefined as void
    lab.driver.gate = new Promise<void>((r) => {
      release = r
    })
    const res = await create({ name: 'kld-vm-1', security_groups: [{ name: 'default' }] })
    expect(res.status).toBe(202)
    const created = o(res.body['server'])
    expect(Object.keys(created).sort()).toEqual([
      'OS-DCF:diskConfig',
      'adminPass',
      'id',
      'links',
      'security_groups',
    ])
    expect(res.headers.get('openstack-api-version')).toBe('compute 2.1')
    const id = String(created['id'])
    const building = o((await show(id)).body['server'])
    expect(building['status']).toBe('BUILD')
    expect(building['addresses']).toEqual({
      mynetwork: [
        expect.objectContaining({ addr: '192.0.2.10', 'OS-EXT-IPS:type': 'fixed', version: 4 }),
      ],
    })
    release()
    lab.driver.gate = null
    const active = await statusOf(id, 'ACTIVE')
    expect(active).toMatchObject({
      'OS-EXT-STS:vm_state': 'active',
      'OS-EXT-STS:power_state': 1,
      security_groups: [{ name: 'default' }],
      key_name: null,
    })
    expect(active['hostId']).toMatch(/^[0-9a-f]{56}$/)
    expect(active['flavor']).toEqual({
      id: '2',
      links: [{ rel: 'bookmark', href: `${lab.url}/compute/flavors/2` }],
    })
    const ports = a(
      (await lab.req('GET', `/network/v2.0/ports?device_id=${id}`, { token })).body['ports'],
    )
    expect(ports).toHaveLength(1)
    expect(ports[0]).toMatchObject({
      device_owner: 'compute:nova',
      status: 'ACTIVE',
      fixed_ips: [expect.objectContaining({ ip_address: '192.0.2.10' })],
    })
    const spec = lab.driver.calls.find((c) => c.method === 'createVm' && c.id === id)?.spec
    expect(spec).toMatchObject({
      name: 'kld-vm-1',
      hostname: 'kld-vm-1',
      defaultUser: 'debian',
      image: 'debian-12',
      kind: 'namespace',
      port: { fixedIps: ['192.0.2.10'], deviceId: id },
    })
    const iface = a(
      (await lab.req('GET', `/compute/v2.1/servers/${id}/os-interface`, { token })).body[
        'interfaceAttachments'
      ],
    )
    expect(iface[0]).toMatchObject({
      port_id: ports[0]?.['id'],
      net_id: netId,
      port_state: 'ACTIVE',
    })
  })

  it('honours the microversion in the response shape', async () => {
    const list = a(
      (await lab.req('GET', '/compute/v2.1/servers?name=kld-vm-1', { token })).body['servers'],
    )
    const id = String(list[0]?.['id'])
    const v247 = await show(id, { 'OpenStack-API-Version': 'compute 2.47' })
    expect(v247.headers.get('openstack-api-version')).toBe('compute 2.47')
    expect(o(o(v247.body['server'])['flavor'])).toMatchObject({
      original_name: 'm1.small',
      ram: 2048,
      vcpus: 1,
    })
    const v290 = await show(id, { 'X-OpenStack-Nova-API-Version': '2.90' })
    expect(o(v290.body['server'])).toMatchObject({
      locked: false,
      tags: [],
      'OS-EXT-SRV-ATTR:hostname': 'kld-vm-1',
      description: null,
    })
    const v21 = o((await show(id)).body['server'])
    expect(v21).not.toHaveProperty('locked')
    const tooNew = await show(id, { 'OpenStack-API-Version': 'compute 2.999' })
    expect(tooNew.status).toBe(406)
  })

  it('lists servers with a name filter (a regex, as in Nova) and details', async () => {
    await create({ name: 'kld-vm-10' })
    const byName = a(
      (await lab.req('GET', '/compute/v2.1/servers?name=kld-vm-1', { token })).body['servers'],
    )
    expect(byName.map((s) => s['name']).sort()).toEqual(['kld-vm-1', 'kld-vm-10'])
    expect(Object.keys(byName[0] ?? {}).sort()).toEqual(['id', 'links', 'name'])
    const exact = a(
      (await lab.req('GET', '/compute/v2.1/servers?name=%5Ekld-vm-1%24', { token })).body[
        'servers'
      ],
    )
    expect(exact.map((s) => s['name'])).toEqual(['kld-vm-1'])
    const detail = a(
      (await lab.req('GET', '/compute/v2.1/servers/detail', { token })).body['servers'],
    )
    expect(detail.every((s) => typeof s['status'] === 'string')).toBe(true)
    const page = await lab.req('GET', '/compute/v2.1/servers?limit=1', { token })
    expect(a(page.body['servers'])).toHaveLength(1)
    expect(String(a(page.body['servers_links'])[0]?.['href'])).toContain('marker=')
  })

  it('uses a given port with networks: [{port}] and refuses a port in use', async () => {
    const port = o(
      (
        await lab.req('POST', '/network/v2.0/ports', {
          token,
          body: { port: { network_id: netId, fixed_ips: [{ ip_address: '192.0.2.77' }] } },
        })
      ).body['port'],
    )
    const res = await create({ name: 'by-port', networks: [{ port: port['id'] }] })
    expect(res.status).toBe(202)
    const id = String(o(res.body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    const bound = o(
      (await lab.req('GET', `/network/v2.0/ports/${String(port['id'])}`, { token })).body['port'],
    )
    expect(bound).toMatchObject({ device_id: id, device_owner: 'compute:nova' })
    const again = await create({ name: 'by-port-2', networks: [{ port: port['id'] }] })
    expect(again.status).toBe(409)
    expect(again.body).toEqual({
      conflictingRequest: { code: 409, message: `Port ${String(port['id'])} is still in use.` },
    })
    // Deleting the server unbinds the user's port but keeps it.
    expect((await lab.req('DELETE', `/compute/v2.1/servers/${id}`, { token })).status).toBe(204)
    await eventually(async () => ((await show(id)).status === 404 ? true : undefined))
    const freed = o(
      (await lab.req('GET', `/network/v2.0/ports/${String(port['id'])}`, { token })).body['port'],
    )
    expect(freed).toMatchObject({ device_id: '', device_owner: '', status: 'DOWN' })
  })

  it("answers bad requests in Nova's envelopes", async () => {
    const flavor = await create({ name: 'x', flavorRef: '999' })
    expect(flavor.status).toBe(400)
    expect(flavor.body).toEqual({
      badRequest: { code: 400, message: 'Invalid flavorRef provided.' },
    })
    const image = await create({ name: 'x', imageRef: '00000000-0000-0000-0000-000000000000' })
    expect(image.body).toEqual({
      badRequest: { code: 400, message: 'Can not find requested image' },
    })
    const net = await create({ name: 'x', networks: [{ uuid: 'nope' }] })
    expect(net.body).toEqual({
      badRequest: { code: 400, message: 'Network nope could not be found.' },
    })
    const sg = await create({ name: 'x', security_groups: [{ name: 'nope' }] })
    expect(o(sg.body['badRequest'])['message']).toMatch(
      /^Security group nope not found for project /,
    )
    const key = await create({ name: 'x', key_name: 'nope' })
    expect(key.body).toEqual({ badRequest: { code: 400, message: 'Invalid key_name provided.' } })
    const nf = await show('00000000-0000-0000-0000-000000000000')
    expect(nf.body).toEqual({
      itemNotFound: {
        code: 404,
        message: 'Instance 00000000-0000-0000-0000-000000000000 could not be found.',
      },
    })
    const action = await lab.req(
      'POST',
      `/compute/v2.1/servers/${String(a((await lab.req('GET', '/compute/v2.1/servers', { token })).body['servers'])[0]?.['id'])}/action`,
      {
        token,
        body: { fly: null },
      },
    )
    expect(action.status).toBe(400)
  })

  it('puts a server that cannot be placed in ERROR with a fault, and frees its port', async () => {
    const admin = await lab.adminToken()
    const flavor = await lab.req('POST', '/compute/v2.1/flavors', {
      token: admin,
      body: { flavor: { name: 'huge', ram: 64 * 1024 * 1024, vcpus: 1, disk: 1, id: '99' } },
    })
    expect(flavor.status).toBe(200)
    const res = await create({ name: 'too-big', flavorRef: '99' })
    expect(res.status).toBe(202)
    const id = String(o(res.body['server'])['id'])
    const err = await statusOf(id, 'ERROR')
    expect(err['fault']).toEqual({
      code: 500,
      created: expect.stringMatching(/Z$/),
      message: 'No valid host was found. There are not enough hosts available.',
    })
    expect(err['OS-EXT-STS:vm_state']).toBe('error')
    expect(
      a((await lab.req('GET', `/network/v2.0/ports?device_id=${id}`, { token })).body['ports']),
    ).toHaveLength(0)
  })

  it("puts a server whose host fails to boot in ERROR with Nova's build-aborted fault", async () => {
    lab.driver.fail.createVm = 'overlay mount failed'
    try {
      const id = String(o((await create({ name: 'broken' })).body['server'])['id'])
      const err = await statusOf(id, 'ERROR')
      expect(o(err['fault'])['message']).toBe(
        `Build of instance ${id} aborted: overlay mount failed`,
      )
      expect(o(err['fault'])).not.toHaveProperty('details')
      const admin = await lab.adminToken()
      const asAdmin = o(
        (await lab.req('GET', `/compute/v2.1/servers/${id}`, { token: admin })).body['server'],
      )
      expect(o(asAdmin['fault'])['details']).toContain('overlay mount failed')
    } finally {
      delete lab.driver.fail.createVm
    }
  })

  it('stops and starts a server through the driver, with conflicts as Nova has them', async () => {
    const id = String(o((await create({ name: 'power' })).body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    const action = (body: unknown): Promise<Res> =>
      lab.req('POST', `/compute/v2.1/servers/${id}/action`, { token, body })
    expect((await action({ 'os-stop': null })).status).toBe(202)
    const off = await statusOf(id, 'SHUTOFF')
    expect(off).toMatchObject({ 'OS-EXT-STS:vm_state': 'stopped', 'OS-EXT-STS:power_state': 4 })
    expect(lab.driver.calls.some((c) => c.method === 'stopVm' && c.id === id)).toBe(true)
    const again = await action({ 'os-stop': null })
    expect(again.status).toBe(409)
    expect(again.body).toEqual({
      conflictingRequest: {
        code: 409,
        message: `Cannot 'stop' instance ${id} while it is in vm_state stopped`,
      },
    })
    expect((await action({ 'os-start': null })).status).toBe(202)
    await statusOf(id, 'ACTIVE')
    expect(lab.driver.calls.some((c) => c.method === 'startVm' && c.id === id)).toBe(true)
  })

  it("returns the driver's console log as os-getConsoleOutput", async () => {
    const id = String(o((await create({ name: 'console' })).body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    const res = await lab.req('POST', `/compute/v2.1/servers/${id}/action`, {
      token,
      body: { 'os-getConsoleOutput': { length: null } },
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ output: `console of ${id}\n` })
  })

  it("deletes a server: the driver deletes the VM, Nova's port goes, then 404", async () => {
    const id = String(o((await create({ name: 'doomed' })).body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    const ports = a(
      (await lab.req('GET', `/network/v2.0/ports?device_id=${id}`, { token })).body['ports'],
    )
    expect((await lab.req('DELETE', `/compute/v2.1/servers/${id}`, { token })).status).toBe(204)
    await eventually(async () => ((await show(id)).status === 404 ? true : undefined))
    expect(lab.driver.calls.some((c) => c.method === 'deleteVm' && c.id === id)).toBe(true)
    expect(
      (await lab.req('GET', `/network/v2.0/ports/${String(ports[0]?.['id'])}`, { token })).status,
    ).toBe(404)
  })

  it('imports and generates keypairs', async () => {
    const pub =
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0m9HcTcUJK9t6Ts2cJOo5CrV4rj9XzQ8xv2UXFyLxN test@lab'
    const imported = await lab.req('POST', '/compute/v2.1/os-keypairs', {
      token,
      body: { keypair: { name: 'mine', public_key: pub } },
    })
    expect(imported.status).toBe(200)
    expect(o(imported.body['keypair'])['fingerprint']).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/)
    // kept as given, trailing newline and all, as Nova does (clients compare it with their file)
    const fromFile = await lab.req('POST', '/compute/v2.1/os-keypairs', {
      token,
      body: { keypair: { name: 'from-file', public_key: `${pub}\n` } },
    })
    expect(o(fromFile.body['keypair'])['public_key']).toBe(`${pub}\n`)
    expect(
      o((await lab.req('GET', '/compute/v2.1/os-keypairs/from-file', { token })).body['keypair'])[
        'public_key'
      ],
    ).toBe(`${pub}\n`)
    const dup = await lab.req('POST', '/compute/v2.1/os-keypairs', {
      token,
      body: { keypair: { name: 'mine', public_key: pub } },
    })
    expect(dup.status).toBe(409)
    const generated = await lab.req('POST', '/compute/v2.1/os-keypairs', {
      token,
      body: { keypair: { name: 'gen' } },
      headers: { 'OpenStack-API-Version': 'compute 2.2' },
    })
    expect(generated.status).toBe(201)
    expect(String(o(generated.body['keypair'])['private_key'])).toContain('PRIVATE KEY')
    const bad = await lab.req('POST', '/compute/v2.1/os-keypairs', {
      token,
      body: { keypair: { name: 'bad', public_key: 'ssh-rsa nope' } },
    })
    expect(bad.status).toBe(400)
    const id = String(o((await create({ name: 'keyed', key_name: 'mine' })).body['server'])['id'])
    await statusOf(id, 'ACTIVE')
    expect(
      lab.driver.calls.find((c) => c.method === 'createVm' && c.id === id)?.spec?.authorizedKeys,
    ).toEqual([pub])
    expect((await lab.req('DELETE', '/compute/v2.1/os-keypairs/gen', { token })).status).toBe(202)
  })
})
