/**
 * Reading apt and dpkg: package specs, `apt-get -s` simulation lines, dpkg-query snapshots, and
 * what changed between two snapshots. Pure functions, tested with recorded output.
 */

/** A package as a task names it: `keepalived`, `keepalived=1:2.2.7-1`, `libc6:amd64`. */
export interface PackageSpec {
  spec: string
  name: string
  version?: string
}

/**
 * Splits `name[:arch][=version]`.
 * @example parseSpec('keepalived=1:2.2.7-1') // { spec: 'keepalived=1:2.2.7-1', name: 'keepalived', version: '1:2.2.7-1' }
 */
export function parseSpec(spec: string): PackageSpec {
  const i = spec.indexOf('=')
  return i < 0 ? { spec, name: spec } : { spec, name: spec.slice(0, i), version: spec.slice(i + 1) }
}

/** One step of apt's plan, from `apt-get -s`. */
export interface SimAction {
  op: 'install' | 'upgrade' | 'downgrade' | 'reinstall' | 'remove' | 'purge'
  name: string
  /** Installed version (upgrade, downgrade, remove, purge). */
  from?: string
  /** Version to be installed. */
  to?: string
}

const SIM_LINE = /^(Inst|Remv|Purg) (\S+)(?: \[([^\]]+)\])?(?: \((\S+)[^)]*\))?/

/**
 * Reads `Inst`/`Remv`/`Purg` lines of `apt-get -s` output (Conf lines repeat Inst). An Inst line
 * does not say up or down; apt's "DOWNGRADED" summary does.
 * @example parseSimulation('Inst rbt-dummy [1.0] (2.0 localhost [all])') // [{ op: 'upgrade', name: 'rbt-dummy', from: '1.0', to: '2.0' }]
 */
export function parseSimulation(out: string): SimAction[] {
  const down = parseDowngrades(out)
  const actions: SimAction[] = []
  for (const line of out.split('\n')) {
    const m = SIM_LINE.exec(line)
    if (!m) continue
    const [, kind, name = '', from, to] = m
    if (kind === 'Inst') {
      const op =
        from === undefined
          ? 'install'
          : from === to
            ? 'reinstall'
            : down.has(name) || down.has(name.split(':')[0] ?? '')
              ? 'downgrade'
              : 'upgrade'
      actions.push({
        op,
        name,
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
      })
    } else
      actions.push({
        op: kind === 'Purg' ? 'purge' : 'remove',
        name,
        ...(from !== undefined ? { from } : {}),
      })
  }
  return actions
}

/** Names apt lists under "The following packages will be DOWNGRADED:". */
export function parseDowngrades(out: string): Set<string> {
  const m = /The following packages will be DOWNGRADED:\n((?: .*(?:\n|$))+)/.exec(out)
  return new Set((m?.[1] ?? '').split(/\s+/).filter(Boolean))
}

/** apt's error lines (`E: ...`), for messages. */
export function aptErrors(out: string): string {
  return out
    .split('\n')
    .filter((l) => l.startsWith('E: ') || l.startsWith('W: '))
    .join('\n')
}

/** dpkg's view of one package: `ii` installed, `rc` config files left, `un`/'' not installed. */
export interface DpkgEntry {
  status: string
  version: string
}

/**
 * Reads `dpkg-query -W -f '${binary:Package}\t${db:Status-Abbrev}\t${Version}\n'`.
 * @example parseDpkg('keepalived\tii \t1:2.2.7-1+b2\n').get('keepalived') // { status: 'ii', version: '1:2.2.7-1+b2' }
 */
export function parseDpkg(out: string): Map<string, DpkgEntry> {
  const m = new Map<string, DpkgEntry>()
  for (const line of out.split('\n')) {
    const [name, status, version] = line.split('\t')
    if (name && status !== undefined) m.set(name, { status: status.trim(), version: version ?? '' })
  }
  return m
}

/** dpkg's word on one named package: status abbreviation (`ii`, `rc`, '' unknown) and version. */
export interface PackageState {
  spec: string
  status: string
  version: string
}

/** The format of `dpkg-query -W` lines that `packageStates` reads: package, architecture, status, version. */
export const DPKG_STATE_FMT = '${Package}\\t${Architecture}\\t${db:Status-Abbrev}\\t${Version}\\n'

/**
 * dpkg's word on each spec from one `dpkg-query -W` over all of their names: the installed (`ii`)
 * instance of a name first (a multi-arch name has one line per architecture), else its first line;
 * `name:arch` takes only that architecture. A name dpkg does not know has status and version ''.
 * @example packageStates(['keepalived'], 'keepalived\tamd64\tii \t1:2.2.7-1\n') // [{ spec: 'keepalived', status: 'ii', version: '1:2.2.7-1' }]
 */
export function packageStates(specs: readonly string[], out: string): PackageState[] {
  const rows = out
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length >= 4)
    .map(([pkg = '', arch = '', status = '', version = '']) => ({
      pkg,
      arch,
      status: status.trim(),
      version,
    }))
  return specs.map((spec) => {
    const [pkg, arch] = parseSpec(spec).name.split(':')
    const mine = rows.filter(
      (r) => r.pkg === pkg && (arch === undefined || arch === 'any' || r.arch === arch),
    )
    const row = mine.find((r) => r.status === 'ii') ?? mine[0]
    return { spec, status: row?.status ?? '', version: row?.version ?? '' }
  })
}

/** What a run did to the packages, from dpkg before and after. */
export interface PackageDelta {
  installed: { name: string; version: string }[]
  upgraded: { name: string; from: string; to: string }[]
  removed: { name: string; version: string }[]
}

/**
 * Compares two dpkg snapshots.
 * @example diffDpkg(parseDpkg(''), parseDpkg('x\tii \t1\n')).installed // [{ name: 'x', version: '1' }]
 */
export function diffDpkg(
  before: Map<string, DpkgEntry>,
  after: Map<string, DpkgEntry>,
): PackageDelta {
  const d: PackageDelta = { installed: [], upgraded: [], removed: [] }
  const isIn = (e: DpkgEntry | undefined): boolean => e?.status === 'ii'
  for (const [name, a] of after) {
    const b = before.get(name)
    if (isIn(a) && !isIn(b)) d.installed.push({ name, version: a.version })
    else if (isIn(a) && isIn(b) && b?.version !== a.version)
      d.upgraded.push({ name, from: b?.version ?? '', to: a.version })
    else if (!isIn(a) && b !== undefined && b.status !== a.status && (isIn(b) || a.status !== 'rc'))
      d.removed.push({ name, version: b.version })
  }
  for (const [name, b] of before)
    if (!after.has(name) && b.status !== 'un') d.removed.push({ name, version: b.version })
  return d
}

/** Whether output says another process holds the dpkg or apt lists lock. */
export function lockHolder(out: string): string | undefined {
  const m = /Could not get lock (\S+?)\.?\s+It is held by process (\d+)(?: \(([^)]+)\))?/.exec(out)
  if (m) return `${m[3] ?? 'pid'} ${m[2]} holds ${m[1]}`
  if (
    /Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory/.test(out)
  )
    return 'another process holds the dpkg lock'
  return undefined
}
