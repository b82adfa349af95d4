import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import { buildMirror } from '../../../lab/mirror/build.ts'
import type { Downloader, Resolver } from '../../../lab/mirror/build.ts'

const hasDpkgDeb = (() => {
  try {
    execFileSync('dpkg-deb', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** Makes a tiny binary package `name_version_all.deb` in `dir` (the name apt-get download would give it). */
function makeDeb(dir: string, name: string, version: string): void {
  const src = mkdtempSync(join(tmpdir(), 'rb-deb-src-'))
  mkdirSync(join(src, 'DEBIAN'))
  mkdirSync(join(src, 'usr', 'share', 'doc', name), { recursive: true })
  writeFileSync(join(src, 'usr', 'share', 'doc', name, 'README'), `${name}\n`)
  writeFileSync(
    join(src, 'DEBIAN', 'control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: lab <lab@example.invalid>\nDescription: test package\n a test\n`,
  )
  execFileSync(
    'dpkg-deb',
    [
      '--root-owner-group',
      '-Zgzip',
      '--build',
      src,
      join(dir, `${name}_${version.replace(':', '%3a')}_all.deb`),
    ],
    { stdio: 'ignore' },
  )
  rmSync(src, { recursive: true, force: true })
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe.skipIf(!hasDpkgDeb)('buildMirror (resolver and downloader stubbed)', () => {
  const work = mkdtempSync(join(tmpdir(), 'rb-mirror-build-'))
  afterAll(() => rmSync(work, { recursive: true, force: true }))

  const setup = (name: string) => {
    const cacheDir = join(work, name, 'cache')
    const dir = join(work, name, 'mirror', 'debian')
    mkdirSync(join(cacheDir, 'debs'), { recursive: true })
    const lines: string[] = []
    return { cacheDir, dir, lines, log: (l: string) => lines.push(l) }
  }
  const resolver =
    (sels: [string, string][], unknown: string[] = []): Resolver =>
    async () => ({ selections: sels.map(([name, version]) => ({ name, version })), unknown })

  it('downloads what the cache lacks, then publishes a repository apt can verify', async () => {
    const t = setup('fresh')
    const asked: string[] = []
    const download: Downloader = async (sels, dir) => {
      for (const s of sels) {
        asked.push(`${s.name}=${s.version}`)
        makeDeb(dir, s.name, s.version)
      }
    }
    const m = await buildMirror({
      ...t,
      packages: ['rbl-a'],
      resolve: resolver([
        ['rbl-a', '1:1.0-1'],
        ['rbl-b', '2.0'],
      ]),
      download,
    })
    expect(asked).toEqual(['rbl-a=1:1.0-1', 'rbl-b=2.0'])
    expect(m).toMatchObject({
      packages: 2,
      downloaded: 2,
      missing: [],
      empty: false,
      downloadError: null,
    })
    expect(readdirSync(join(t.dir, 'pool')).sort()).toEqual([
      'rbl-a_1.0-1_all.deb',
      'rbl-b_2.0_all.deb',
    ])

    const packages = readFileSync(join(t.dir, 'Packages'))
    expect(gunzipSync(readFileSync(join(t.dir, 'Packages.gz'))).equals(packages)).toBe(true)
    const text = packages.toString()
    expect(text).toMatch(/^Package: rbl-a\nVersion: 1:1\.0-1\n/)
    expect(text).toContain('Filename: pool/rbl-a_1.0-1_all.deb\n')
    const deb = readFileSync(join(t.dir, 'pool', 'rbl-b_2.0_all.deb'))
    expect(text).toContain(`Size: ${deb.length}\n`)
    expect(text).toContain(`SHA256: ${sha256(deb)}\n`)
    const release = readFileSync(join(t.dir, 'Release'), 'utf8')
    expect(release).toContain(
      ` ${sha256(packages)} ${String(packages.length).padStart(16)} Packages\n`,
    )
    expect(t.lines.join('\n')).toMatch(/2 packages \(rbl-a and their dependencies\)/)

    // the second build needs no download: the cache has everything
    const again = await buildMirror({
      ...t,
      packages: ['rbl-a'],
      resolve: resolver([['rbl-a', '1:1.0-1']]),
      download: () => Promise.reject(new Error('offline')),
    })
    expect(again).toMatchObject({ packages: 1, downloaded: 0, missing: [], downloadError: null })
    // a package no longer wanted leaves the pool and the index
    expect(readdirSync(join(t.dir, 'pool'))).toEqual(['rbl-a_1.0-1_all.deb'])
    expect(readFileSync(join(t.dir, 'Packages'), 'utf8')).not.toContain('rbl-b')
  })

  it('offline with an empty cache: an empty but valid repository, and says so', async () => {
    const t = setup('offline')
    const m = await buildMirror({
      ...t,
      packages: ['keepalived'],
      resolve: resolver([['keepalived', '1:2.2.7-1+b2']]),
      download: () => Promise.reject(new Error('Could not resolve deb.debian.org')),
    })
    expect(m).toMatchObject({
      packages: 0,
      empty: true,
      missing: ['keepalived=1:2.2.7-1+b2'],
      downloadError: 'Could not resolve deb.debian.org',
    })
    expect(readFileSync(join(t.dir, 'Packages'), 'utf8')).toBe('')
    expect(existsSync(join(t.dir, 'Release'))).toBe(true)
    expect(t.lines.join('\n')).toMatch(/download failed \(offline\?\): Could not resolve/)
    expect(t.lines.join('\n')).toMatch(/package mirror: EMPTY\./)
  })

  it('offline with part of it cached: serves that, lists what is missing', async () => {
    const t = setup('partial')
    makeDeb(join(t.cacheDir, 'debs'), 'rbl-a', '1.0')
    const m = await buildMirror({
      ...t,
      packages: ['rbl-a', 'nope'],
      resolve: resolver(
        [
          ['rbl-a', '1.0'],
          ['rbl-c', '3'],
        ],
        ['nope'],
      ),
      download: () => Promise.reject(new Error('offline')),
    })
    expect(m).toMatchObject({ packages: 1, empty: false, missing: ['rbl-c=3'], unknown: ['nope'] })
    expect(t.lines.join('\n')).toMatch(/does not know nope/)
    expect(t.lines.join('\n')).toMatch(/INCOMPLETE, 1 package\(s\) missing: rbl-c=3/)
  })

  it('refuses what is not a package name (it would reach apt-get as an option)', async () => {
    const t = setup('bad')
    await expect(
      buildMirror({ ...t, packages: ['-oAPT::x=1'], resolve: resolver([]) }),
    ).rejects.toThrow(/not package names/)
  })
})
