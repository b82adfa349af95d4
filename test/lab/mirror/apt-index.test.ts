import { describe, expect, it } from 'vitest'
import {
  chooseVersion,
  controlField,
  isPackageName,
  packagesIndex,
  packagesStanza,
  parseControl,
  parsePolicy,
  parseRecursiveDepends,
  poolFileName,
  releaseFile,
} from '../../../lab/mirror/apt-index.ts'

// apt-cache policy on Debian 12, as this machine prints it
const POLICY = `keepalived:
  Installed: 1:2.2.7-1+b2
  Candidate: 1:2.2.7-1+b2
  Version table:
 *** 1:2.2.7-1+b2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
libssl3:
  Installed: 3.0.19-1~deb12u2
  Candidate: 3.0.22-1~deb12u2
  Version table:
     3.0.22-1~deb12u2 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     3.0.20-1~deb12u2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 3.0.19-1~deb12u2 100
        100 /var/lib/dpkg/status
hello:
  Installed: (none)
  Candidate: 2.10-3
  Version table:
     2.10-3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
local-only:
  Installed: 1.0
  Candidate: 1.0
  Version table:
 *** 1.0 100
        100 /var/lib/dpkg/status
`

const CONTROL = `Package: hello
Version: 2.10-3
Architecture: amd64
Maintainer: Santiago Vila <sanvila@debian.org>
Installed-Size: 280
Depends: libc6 (>= 2.34)
Size: 1
Section: devel
Description: example package based on GNU hello
 The GNU hello program produces a familiar, friendly greeting.
 .
 It allows non-programmers to use a classic computer science tool.
`

describe('apt-cache policy', () => {
  const policy = parsePolicy(POLICY)

  it('reads installed, candidate and which versions an archive offers', () => {
    expect([...policy.keys()]).toEqual(['keepalived', 'libssl3', 'hello', 'local-only'])
    expect(policy.get('libssl3')).toEqual({
      name: 'libssl3',
      installed: '3.0.19-1~deb12u2',
      candidate: '3.0.22-1~deb12u2',
      versions: [
        { version: '3.0.22-1~deb12u2', downloadable: true },
        { version: '3.0.20-1~deb12u2', downloadable: true },
        { version: '3.0.19-1~deb12u2', downloadable: false },
      ],
    })
    expect(policy.get('hello')?.installed).toBeNull()
  })

  it.each([
    ['keepalived', '1:2.2.7-1+b2', 'the installed version, still in the archive'],
    ['libssl3', '3.0.22-1~deb12u2', 'the candidate: the installed one is gone from the archive'],
    ['hello', '2.10-3', 'the candidate of a package the machine lacks'],
    ['local-only', null, 'nothing: no archive has it'],
  ])('carries %s at %s (%s)', (name, want, _why) => {
    const p = policy.get(name)
    expect(p).toBeDefined()
    if (p !== undefined) expect(chooseVersion(p)).toBe(want)
  })
})

describe('apt-cache depends --recurse', () => {
  it('keeps real packages, drops virtual ones and indented lines', () => {
    const out =
      'hello\n  Depends: libc6\nlibc6\n  Depends: libgcc-s1\n |Depends: <debconf-2.0>\n<debconf-2.0>\n  cdebconf\nlibgcc-s1\nlibc6\n<perl:any>\n'
    expect(parseRecursiveDepends(out)).toEqual(['hello', 'libc6', 'libgcc-s1'])
  })

  it.each([
    ['keepalived', true],
    ['libstdc++6', true],
    ['libc6:i386', true],
    ['-o', false],
    ['a b', false],
    ['Hello', false],
    ['x', false],
  ])('package name %j: %s', (name, ok) => {
    expect(isPackageName(name)).toBe(ok)
  })
})

describe('Packages and Release', () => {
  it('parses control paragraphs with folded fields', () => {
    const fields = parseControl(CONTROL)
    expect(fields[0]).toEqual(['Package', 'hello'])
    expect(fields.find(([k]) => k === 'Description')?.[1].split('\n')).toHaveLength(4)
    expect(controlField(CONTROL, 'version')).toBe('2.10-3')
    expect(controlField(CONTROL, 'Description')).toBe('example package based on GNU hello')
  })

  it('writes a stanza: Package first, file fields replaced, checksums last', () => {
    const reordered = CONTROL.replace('Package: hello\n', '') + 'Package: hello\n'
    const s = packagesStanza(reordered, 'pool/hello_2.10-3_amd64.deb', {
      size: 53080,
      md5: 'a'.repeat(32),
      sha256: 'b'.repeat(64),
    })
    const lines = s.trimEnd().split('\n')
    expect(lines[0]).toBe('Package: hello')
    expect(lines.slice(-4)).toEqual([
      'Filename: pool/hello_2.10-3_amd64.deb',
      'Size: 53080',
      `MD5sum: ${'a'.repeat(32)}`,
      `SHA256: ${'b'.repeat(64)}`,
    ])
    expect(lines.filter((l) => l.startsWith('Size:'))).toHaveLength(1)
    expect(s).toContain('Description: example package based on GNU hello\n The GNU hello')
    expect(() =>
      packagesStanza('Version: 1\n', 'pool/x.deb', { size: 1, md5: '', sha256: '' }),
    ).toThrow(/Package/)
  })

  it('sorts stanzas by package and separates them with one blank line', () => {
    const a = 'Package: b\nFilename: pool/b.deb\n'
    const b = 'Package: a\nFilename: pool/a.deb\n'
    expect(packagesIndex([a, b])).toBe(`${b}\n${a}`)
    expect(packagesIndex([])).toBe('')
  })

  it('names pool files as Debian does, without the epoch', () => {
    expect(poolFileName('keepalived', '1:2.2.7-1+b2', 'amd64')).toBe(
      'keepalived_2.2.7-1+b2_amd64.deb',
    )
    expect(poolFileName('debconf', '1.5.82', 'all')).toBe('debconf_1.5.82_all.deb')
  })

  it('lists the indexes with their sizes and checksums in Release', () => {
    const r = releaseFile(
      [{ path: 'Packages', size: 10, md5: 'm'.repeat(32), sha256: 's'.repeat(64) }],
      new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    )
    expect(r).toContain('Date: Fri, 02 Jan 2026 03:04:05 GMT\n')
    expect(r).toContain(
      `MD5Sum:\n ${'m'.repeat(32)}               10 Packages\nSHA256:\n ${'s'.repeat(64)}               10 Packages\n`,
    )
    expect(r).not.toMatch(/^(Suite|Codename|Valid-Until):/m)
  })
})
