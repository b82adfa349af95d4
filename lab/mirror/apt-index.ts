/**
 * The pure half of the lab's package mirror: reading what apt says on the machine (`apt-cache
 * policy`, `apt-cache depends --recurse`) and writing a flat Debian repository's indexes
 * (`Packages`, `Release`). No I/O here, so all of it is tested with data.
 */

/** One package as `apt-cache policy` shows it. */
export interface PackagePolicy {
  name: string
  /** The installed version, or null for `(none)`. */
  installed: string | null
  /** The version apt would install, or null for `(none)`. */
  candidate: string | null
  /** Every version apt knows, and whether some archive (not only dpkg's status file) offers it. */
  versions: { version: string; downloadable: boolean }[]
}

/** A package at the version the mirror carries. */
export interface Selection {
  /** `name` or `name:arch`, as apt names it. */
  name: string
  version: string
}

/** What a `.deb` in the cache is: its control paragraph and what the indexes say about the file. */
export interface DebInfo {
  /** The `DEBIAN/control` paragraph, as `dpkg-deb -f` prints it. */
  control: string
  size: number
  md5: string
  sha256: string
}

/** A file the Release file lists. */
export interface IndexFile {
  /** Path relative to the repository root (`Packages`, `Packages.gz`). */
  path: string
  size: number
  md5: string
  sha256: string
}

const NAME = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/

/**
 * True for a Debian package name (optionally `:arch`), the only thing the mirror passes to apt.
 * @example isPackageName('keepalived') // true
 */
export function isPackageName(name: string): boolean {
  return NAME.test(name)
}

/**
 * Parses `apt-cache policy NAME...` (LANG=C). A version is downloadable when a line under it names
 * a source other than `/var/lib/dpkg/status`.
 * @example parsePolicy(stdout).get('keepalived')?.installed // '1:2.2.7-1+b2'
 */
export function parsePolicy(text: string): Map<string, PackagePolicy> {
  const out = new Map<string, PackagePolicy>()
  let cur: PackagePolicy | null = null
  let version: { version: string; downloadable: boolean } | null = null
  for (const line of text.split('\n')) {
    const head = /^(\S+):$/.exec(line)
    if (head?.[1] !== undefined) {
      cur = { name: head[1], installed: null, candidate: null, versions: [] }
      version = null
      out.set(cur.name, cur)
      continue
    }
    if (cur === null) continue
    const field = /^ {2}(Installed|Candidate): (\S+)$/.exec(line)
    if (field !== null) {
      const value = field[2] === '(none)' ? null : (field[2] ?? null)
      if (field[1] === 'Installed') cur.installed = value
      else cur.candidate = value
      continue
    }
    const ver = /^ (?:\*\*\*| {3}) (\S+) -?\d+$/.exec(line)
    if (ver?.[1] !== undefined) {
      version = { version: ver[1], downloadable: false }
      cur.versions.push(version)
      continue
    }
    const source = /^ {8}-?\d+ (\S+)/.exec(line)
    if (source?.[1] !== undefined && version !== null && source[1] !== '/var/lib/dpkg/status')
      version.downloadable = true
  }
  return out
}

/**
 * The version the mirror carries: the machine's installed one when an archive still offers it (so
 * `apt-get install keepalived` in a VM says it is already the newest version, as on the image),
 * else the candidate; null when nothing can be downloaded.
 * @example chooseVersion(policy) // '1:2.2.7-1+b2'
 */
export function chooseVersion(p: PackagePolicy): string | null {
  const downloadable = (v: string | null) =>
    v !== null && p.versions.some((x) => x.version === v && x.downloadable)
  if (downloadable(p.installed)) return p.installed
  if (downloadable(p.candidate)) return p.candidate
  return null
}

/**
 * The package names of `apt-cache depends --recurse` output: the unindented lines, without
 * virtual packages (`<debconf-2.0>`), which have no file of their own (their providers are listed).
 * @example parseRecursiveDepends('hello\n  Depends: libc6\nlibc6\n') // ['hello', 'libc6']
 */
export function parseRecursiveDepends(text: string): string[] {
  const names = new Set<string>()
  for (const line of text.split('\n'))
    if (line !== '' && !line.startsWith(' ') && isPackageName(line.trim())) names.add(line.trim())
  return [...names].sort()
}

/**
 * The fields of a Debian control paragraph in order, continuation lines kept with their field.
 * @example parseControl('Package: hello\nVersion: 2.10-3\n')[0] // ['Package', 'hello']
 */
export function parseControl(text: string): [string, string][] {
  const fields: [string, string][] = []
  for (const line of text.replace(/\n+$/, '').split('\n')) {
    const last = fields[fields.length - 1]
    if (/^[ \t]/.test(line) && last !== undefined) last[1] += `\n${line}`
    else {
      const m = /^([^:\s]+):[ \t]?(.*)$/.exec(line)
      if (m?.[1] !== undefined) fields.push([m[1], m[2] ?? ''])
    }
  }
  return fields
}

/** The value of a control field (first line only for folded fields), or undefined. */
export function controlField(control: string, name: string): string | undefined {
  const lower = name.toLowerCase()
  return parseControl(control)
    .find(([k]) => k.toLowerCase() === lower)?.[1]
    .split('\n')[0]
    ?.trim()
}

/**
 * The name of a package's file in the mirror's pool, as in Debian's own pool: `name_version_arch.deb`
 * with the epoch dropped (so no `:` or `%` ever appears in a URL).
 * @example poolFileName('keepalived', '1:2.2.7-1+b2', 'amd64') // 'keepalived_2.2.7-1+b2_amd64.deb'
 */
export function poolFileName(name: string, version: string, arch: string): string {
  return `${name}_${version.replace(/^\d+:/, '')}_${arch}.deb`
}

const FILE_FIELDS = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256', 'sha512'])

/**
 * One stanza of a `Packages` index: the control fields (Package first), then where the file is and
 * its checksums. Fields about the file that the control might carry are replaced, never repeated.
 * @example packagesStanza(control, 'pool/hello_2.10-3_amd64.deb', info)
 */
export function packagesStanza(
  control: string,
  filename: string,
  file: Pick<DebInfo, 'size' | 'md5' | 'sha256'>,
): string {
  const fields = parseControl(control).filter(([k]) => !FILE_FIELDS.has(k.toLowerCase()))
  const pkg = fields.filter(([k]) => k === 'Package')
  if (pkg.length !== 1)
    throw new Error(`not a binary package's control paragraph (${pkg.length} Package fields)`)
  const ordered = [...pkg, ...fields.filter(([k]) => k !== 'Package')]
  const lines = ordered.map(([k, v]) => `${k}: ${v}`)
  lines.push(
    `Filename: ${filename}`,
    `Size: ${file.size}`,
    `MD5sum: ${file.md5}`,
    `SHA256: ${file.sha256}`,
  )
  return `${lines.join('\n')}\n`
}

/**
 * The `Packages` index of stanzas, sorted by package name then file name, separated by blank lines.
 * @example packagesIndex([stanza1, stanza2])
 */
export function packagesIndex(stanzas: string[]): string {
  const key = (s: string) =>
    `${/^Package: (.*)$/m.exec(s)?.[1] ?? ''}\0${/^Filename: (.*)$/m.exec(s)?.[1] ?? ''}`
  return [...stanzas].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)).join('\n')
}

/**
 * The `Release` file of a flat repository (`deb [trusted=yes] URL ./`): no suite, no signature, the
 * checksums apt verifies the indexes with. apt refuses a repository without one.
 * @example releaseFile([{ path: 'Packages', size, md5, sha256 }], new Date())
 */
export function releaseFile(files: IndexFile[], date: Date): string {
  const rows = (hash: 'md5' | 'sha256') =>
    files.map((f) => ` ${f[hash]} ${String(f.size).padStart(16)} ${f.path}`)
  return [
    'Origin: runbook-lab',
    'Label: runbook-lab',
    `Date: ${date.toUTCString()}`,
    'Description: the runbook lab package mirror (packages and their dependencies, for the lab VMs)',
    'MD5Sum:',
    ...rows('md5'),
    'SHA256:',
    ...rows('sha256'),
    '',
  ].join('\n')
}
