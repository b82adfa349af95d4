import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fromLab,
  mirrorUrl,
  resolveMirrorPath,
  startMirrorServer,
} from '../../../lab/mirror/server.ts'
import type { MirrorServer } from '../../../lab/mirror/server.ts'

describe('resolveMirrorPath', () => {
  it.each([
    ['/debian/Packages', '/m/Packages'],
    ['/debian/./Release', '/m/Release'],
    ['/debian//pool/hello_2.10-3_amd64.deb', '/m/pool/hello_2.10-3_amd64.deb'],
    [
      '/debian/pool/libstdc%2B%2B6_12.2.0-14_amd64.deb?x=1',
      '/m/pool/libstdc++6_12.2.0-14_amd64.deb',
    ],
  ])('%s -> %s', (url, want) => {
    expect(resolveMirrorPath('/m', url)).toBe(want)
  })

  it.each([
    '/',
    '/debian',
    '/debian/',
    '/other/Packages',
    '/debianx/Packages',
    '/debian/../etc/passwd',
    '/debian/pool/../../etc/passwd',
    '/debian/%2e%2e/etc/passwd',
    '/debian/%2E%2E%2Fetc%2Fpasswd',
    '/debian/pool%2f..%2f..%2fsecret',
    '/debian/..%5c..%5csecret',
    '/debian/.hidden',
    '/debian/Packages%00.deb',
    '/debian/%E0%A4%A',
  ])('refuses %s', (url) => {
    expect(resolveMirrorPath('/m', url)).toBeNull()
  })
})

describe('fromLab', () => {
  it.each([
    ['198.51.100.2', true],
    ['::ffff:198.51.100.10', true],
    ['198.51.100.1', true],
    ['198.51.100.130', false],
    ['127.0.0.1', false],
    ['192.0.2.11', false],
    ['1198.51.100.2', false],
  ])('%s: %s', (addr, ok) => {
    expect(fromLab(addr)).toBe(ok)
  })

  it('builds the URL VMs use', () => {
    expect(mirrorUrl(8781)).toBe('http://198.51.100.1:8781/debian')
  })
})

describe('the mirror server (on 127.0.0.1)', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-mirror-srv-'))
  const root = join(work, 'debian')
  let open: MirrorServer
  let closed: MirrorServer

  /** A raw request: the path goes out exactly as written (fetch would normalise `..`). */
  const get = (
    port: number,
    path: string,
    method = 'GET',
  ): Promise<{ status: number; body: string; length: string | undefined }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = ''
        res.on('data', (b: Buffer) => (body += b.toString()))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, length: res.headers['content-length'] }),
        )
      })
      req.on('error', reject)
      req.end()
    })

  beforeAll(async () => {
    mkdirSync(join(root, 'pool'), { recursive: true })
    writeFileSync(join(root, 'Packages'), 'Package: hello\n')
    writeFileSync(join(root, 'pool', 'hello_2.10-3_amd64.deb'), 'deb')
    writeFileSync(join(root, '.hidden'), 'no')
    writeFileSync(join(work, 'secret'), 'secret')
    symlinkSync(join(work, 'secret'), join(root, 'link'))
    symlinkSync(work, join(root, 'dirlink'))
    open = await startMirrorServer({ dir: root, host: '127.0.0.1', port: 0, allow: () => true })
    closed = await startMirrorServer({ dir: root, host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await Promise.all([open?.close(), closed?.close()])
    rmSync(work, { recursive: true, force: true })
  })

  it('serves files under the mirror', async () => {
    expect(await get(open.port, '/debian/Packages')).toEqual({
      status: 200,
      body: 'Package: hello\n',
      length: '15',
    })
    expect((await get(open.port, '/debian/./pool/hello_2.10-3_amd64.deb')).body).toBe('deb')
    expect(await get(open.port, '/debian/Packages', 'HEAD')).toEqual({
      status: 200,
      body: '',
      length: '15',
    })
  })

  it.each([
    '/debian/../secret',
    '/debian/%2e%2e/secret',
    '/debian/pool/..%2f..%2fsecret',
    '/debian/link',
    '/debian/dirlink/secret',
    '/debian/pool',
    '/debian/',
    '/debian/.hidden',
    '/debian/Release',
    '/secret',
  ])('answers 404 to %s', async (path) => {
    const r = await get(open.port, path)
    expect(r.status).toBe(404)
    expect(r.body).not.toContain('secret')
  })

  it('only reads', async () => {
    for (const m of ['POST', 'PUT', 'DELETE'])
      expect((await get(open.port, '/debian/Packages', m)).status).toBe(405)
  })

  it('answers only the lab by default (403 from 127.0.0.1)', async () => {
    expect((await get(closed.port, '/debian/Packages')).status).toBe(403)
  })
})
