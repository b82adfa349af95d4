/**
 * `apt`: Debian packages are installed (at a version, or the latest) or removed. One round trip
 * reads the cache age and dpkg's state of the named packages; `selectSpecs` (pure) decides which
 * still need apt, and only then a second round trip asks apt's own simulation what it would do, so
 * a plan lists every package (dependencies included) that would change.
 */
import { z } from 'zod'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { KNOWN_AFTER_APPLY } from '../../engine/vars/unknown.ts'
import {
  aptErrors,
  diffDpkg,
  DPKG_STATE_FMT,
  lockHolder,
  packageStates,
  parseDpkg,
  type PackageState,
  parseSimulation,
  parseSpec,
  type PackageDelta,
  type SimAction,
} from './lib/apt-parse.ts'
import { probe, run, sectionLine, sections, sleep, tail } from './lib/remote.ts'

const pkgName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$/,
    'a package name, optionally name=version',
  )

const params = z
  .strictObject({
    name: z
      .union([pkgName, z.array(pkgName)])
      .optional()
      .describe('Package(s): `keepalived`, `keepalived=1:2.2.7-1`, or a list'),
    state: z
      .enum(['present', 'absent', 'latest'])
      .default('present')
      .describe(
        'present: installed (at the pinned version if given); latest: installed and upgraded; absent: removed',
      ),
    purge: z
      .boolean()
      .default(false)
      .describe('With state: absent, also remove configuration files'),
    update_cache: z
      .boolean()
      .default(false)
      .describe('Run apt-get update first (when the lists are older than cache_valid_time)'),
    cache_valid_time: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe(
        'Seconds the package lists stay fresh; without it update_cache updates on every run',
      ),
    install_recommends: z
      .boolean()
      .optional()
      .describe("Install recommended packages (default: apt's configuration)"),
    allow_downgrade: z
      .boolean()
      .default(false)
      .describe('Allow a pinned version older than the installed one'),
    lock_timeout: z
      .number()
      .nonnegative()
      .default(300)
      .describe('Seconds to wait for another apt/dpkg to release its lock'),
  })
  .refine((p) => p.name !== undefined || p.update_cache, {
    message: 'give `name`, or `update_cache: true`',
  })

/** apt's parameters. */
export type AptParams = z.infer<typeof params>

/** What the host says. */
export interface AptState {
  /** Host clock, and the newest of the update stamp and the list files (0: no lists). */
  now: number
  listsMtime: number
  /** dpkg status abbreviation (`ii`, `rc`, '' when unknown) and version of each named package. */
  packages: PackageState[]
  /**
   * apt-get -s over `selectSpecs(p, packages)`; null when nothing was selected; not ok, without a
   * run, when there are no package lists yet to simulate against (update_cache on a fresh image).
   */
  sim: { ok: boolean; actions: SimAction[]; errors: string } | null
}

export type { PackageState }

/**
 * The specs that still need apt, from dpkg's state: present wants `ii` (at the pinned version if
 * given), latest always asks apt (its simulation says whether there is anything newer), absent
 * wants nothing installed (nor configuration files left, with purge).
 * @example selectSpecs({ state: 'present', ... }, [{ spec: 'keepalived', status: 'ii', version: '1' }]) // []
 */
export function selectSpecs(
  p: Pick<AptParams, 'state' | 'purge'>,
  packages: readonly PackageState[],
): string[] {
  return packages
    .filter(({ spec, status, version }) => {
      if (p.state === 'latest') return true
      if (p.state === 'present') {
        const pinned = parseSpec(spec).version
        return status !== 'ii' || (pinned !== undefined && version !== pinned)
      }
      const current = status.charAt(1)
      return status !== '' && current !== 'n' && (p.purge || current !== 'c')
    })
    .map((x) => x.spec)
}

const ENV =
  'export DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none NEEDRESTART_MODE=l LC_ALL=C'
const DPKG_FMT = `'\${binary:Package}\\t\${db:Status-Abbrev}\\t\${Version}\\n'`

function specsOf(p: AptParams): string[] {
  return p.name === undefined ? [] : Array.isArray(p.name) ? p.name : [p.name]
}

function verb(p: AptParams): string {
  return p.state === 'absent' ? (p.purge ? 'purge' : 'remove') : 'install'
}

function aptOptions(p: AptParams): string {
  const o = ['-q', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef']
  if (p.install_recommends !== undefined)
    o.push(p.install_recommends ? '--install-recommends' : '--no-install-recommends')
  if (p.allow_downgrade) o.push('--allow-downgrades')
  return o.join(' ')
}

/**
 * One round trip, four processes however many packages: the host's clock, the age of apt's lists
 * (one `stat` over the stamp and the list files) and dpkg's state of every named package (one
 * `dpkg-query`, sorted out by `packageStates`).
 */
async function gatherApt(ctx: ModuleContext, p: AptParams): Promise<AptState> {
  const specs = specsOf(p)
  const names = [...new Set(specs.map((x) => parseSpec(x).name))]
  const script = [
    ENV,
    sectionLine('cache'),
    'date +%s',
    "stat -L -c '%F|%Y' /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists/*Packages* /var/lib/apt/lists/*Release 2>/dev/null",
    sectionLine('dpkg'),
    ...(names.length
      ? [`dpkg-query -W -f=${quote(DPKG_STATE_FMT)} -- ${names.map(quote).join(' ')} 2>/dev/null`]
      : []),
    'true',
  ].join('\n')
  const sec = sections(await probe(ctx, script, 'apt'))
  const [now = '0', ...stats] = (sec.cache ?? '').split('\n')
  // the newest regular file among the stamp and the lists (a glob that matched nothing is absent)
  const listsMtime = Math.max(
    0,
    ...stats
      .map((l) => /^regular (?:empty )?file\|(\d+)$/.exec(l)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number),
  )
  const packages = packageStates(specs, sec.dpkg ?? '')
  const selected = selectSpecs(p, packages)
  let sim: AptState['sim'] = null
  if (selected.length && p.update_cache && listsMtime === 0) {
    // a fresh image: nothing to simulate against until apt-get update has run, and apt would
    // build its cache from dpkg's status for nothing (the packages are known after the update)
    sim = { ok: false, actions: [], errors: 'no package lists yet' }
  } else if (selected.length) {
    const cmd = `${ENV}\napt-get -s -o Debug::NoLocking=1 ${aptOptions(p)} ${verb(p)} ${selected.map(quote).join(' ')} 2>&1; echo "@@rc=$?"`
    const out = await probe(ctx, cmd, 'apt-get -s')
    const rc = /@@rc=(\d+)/.exec(out)?.[1]
    sim = { ok: rc === '0', actions: parseSimulation(out), errors: aptErrors(out) }
  }
  return { now: Number(now), listsMtime, packages, sim }
}

/** Why the cache must be updated, or undefined when it is fresh enough (or not asked). */
function cacheReason(p: AptParams, s: AptState): string | undefined {
  if (!p.update_cache) return undefined
  if (s.listsMtime === 0) return 'no package lists yet'
  const age = s.now - s.listsMtime
  if (p.cache_valid_time === undefined)
    return `update_cache without cache_valid_time (lists are ${age} s old)`
  return age > p.cache_valid_time
    ? `lists are ${age} s old (valid ${p.cache_valid_time} s)`
    : undefined
}

const ACTION: Record<SimAction['op'], Change['action']> = {
  install: 'create',
  upgrade: 'update',
  downgrade: 'update',
  reinstall: 'update',
  remove: 'delete',
  purge: 'delete',
}

function simChange(a: SimAction, named: Set<string>): Change {
  const c: Change = {
    action: ACTION[a.op],
    target: `package ${a.name}`,
    key: { kind: 'package', name: a.name },
  }
  if (a.from !== undefined) c.before = { version: a.from }
  if (a.to !== undefined) c.after = { version: a.to }
  const notes = [
    a.op === 'downgrade' || a.op === 'reinstall' || a.op === 'purge' ? a.op : '',
    named.has(a.name.split(':')[0] ?? '') ? '' : 'dependency',
  ].filter(Boolean)
  if (notes.length) c.note = notes.join(', ')
  return c
}

function planApt(p: AptParams, s: AptState): Change[] {
  const changes: Change[] = []
  const why = cacheReason(p, s)
  if (why)
    changes.push({
      action: 'run',
      target: 'apt cache',
      key: { kind: 'cache', name: 'apt' },
      note: `apt-get update: ${why}`,
    })
  const selected = selectSpecs(p, s.packages)
  if (!selected.length || !s.sim) return changes
  const named = new Set(specsOf(p).map((x) => parseSpec(x).name))
  if (!s.sim.ok) {
    if (!why)
      throw new RunbookError(
        'E_MODULE',
        `apt: the simulation of apt-get ${verb(p)} ${selected.join(' ')} failed:\n${s.sim.errors || 'no message'}`,
      )
    // apt cannot know these packages before the update: show them with versions unknown.
    for (const spec of selected)
      changes.push({
        action: p.state === 'absent' ? 'delete' : 'create',
        target: `package ${parseSpec(spec).name}`,
        key: { kind: 'package', name: parseSpec(spec).name },
        after: { version: KNOWN_AFTER_APPLY },
        note: 'known after apt-get update',
      })
    return changes
  }
  for (const a of s.sim.actions) changes.push(simChange(a, named))
  return changes
}

/**
 * Ensures Debian packages are installed, at the latest version, or removed.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const apt = defineModule<AptParams, AptState>({
  name: 'apt',
  summary:
    'Debian packages are present (optionally pinned), latest, or absent; plans from apt-get -s',
  example: `- apt: { name: keepalived, state: present, update_cache: true, cache_valid_time: 3600 }`,
  params,
  aliases: { pkg: 'name', package: 'name' },
  gather: gatherApt,
  plan: planApt,
  noop(p, s) {
    const state = (x: PackageState): string =>
      x.status === 'ii'
        ? `${parseSpec(x.spec).name} ${x.version} is installed`
        : `${x.spec} is not installed`
    const cache = p.update_cache ? `; package lists are ${s.now - s.listsMtime} s old` : ''
    const latest = p.state === 'latest' ? ' (and the newest apt knows)' : ''
    return `${s.packages.map(state).join(', ') || 'no packages named'}${latest}${cache}`
  },
  async apply(ctx, p, changes, s) {
    let cacheUpdated = false
    let log = ''
    if (changes.some((c) => c.key?.kind === 'cache')) {
      const r = await aptLocked(
        ctx,
        p,
        `${ENV}\napt-get ${aptOptions(p)} update 2>&1\nrc=$?\n[ $rc -eq 0 ] && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp\nexit $rc`,
        'apt-get update',
      )
      if (r.rc !== 0)
        throw new RunbookError(
          'E_COMMAND',
          `apt-get update failed (rc ${r.rc}):\n${tail(r.stdout + r.stderr)}`,
        )
      cacheUpdated = true
    }
    let delta: PackageDelta = { installed: [], upgraded: [], removed: [] }
    // Selected from dpkg's state at gather time: an update of the lists changes what apt could
    // install, not what dpkg has, so nothing is read again (an apt-get -s after the update would
    // only rebuild apt's cache for nothing).
    const selected = selectSpecs(p, s.packages)
    if (selected.length) {
      const script = [
        ENV,
        sectionLine('before'),
        `dpkg-query -W -f=${DPKG_FMT}`,
        sectionLine('apt'),
        `apt-get -y ${aptOptions(p)} ${verb(p)} ${selected.map(quote).join(' ')} </dev/null 2>&1`,
        'rc=$?',
        sectionLine('after'),
        `dpkg-query -W -f=${DPKG_FMT}`,
        sectionLine('rc'),
        'echo $rc',
      ].join('\n')
      const r = await aptLocked(ctx, p, script, `apt-get ${verb(p)}`)
      const sec = sections(r.stdout)
      log = sec.apt ?? ''
      delta = diffDpkg(parseDpkg(sec.before ?? ''), parseDpkg(sec.after ?? ''))
      const rc = Number(sec.rc ?? r.rc)
      if (rc !== 0)
        throw new RunbookError(
          'E_COMMAND',
          `apt-get ${verb(p)} ${selected.join(' ')} failed (rc ${rc}):\n${aptErrors(log) || tail(log)}`,
        )
    }
    const after = await gatherApt(ctx, p)
    const left = planApt({ ...p, update_cache: false }, after)
    if (left.length)
      throw new RunbookError(
        'E_MODULE',
        `apt: still to do after apply: ${left.map((c) => c.target).join(', ')}\n${tail(log, 10)}`,
      )
    const changed =
      cacheUpdated || delta.installed.length + delta.upgraded.length + delta.removed.length > 0
    return { changed, output: { ...delta, cache_updated: cacheUpdated, packages: after.packages } }
  },
  output(p, s, changes) {
    const pkgs = changes.filter((c) => c.key?.kind === 'package')
    const name = (c: Change): string => c.key?.name ?? ''
    const version = (v: unknown): unknown => (v as { version?: unknown } | undefined)?.version
    return {
      installed: pkgs
        .filter((c) => c.action === 'create')
        .map((c) => ({ name: name(c), version: version(c.after) })),
      upgraded: pkgs
        .filter((c) => c.action === 'update')
        .map((c) => ({ name: name(c), from: version(c.before), to: version(c.after) })),
      removed: pkgs
        .filter((c) => c.action === 'delete')
        .map((c) => ({ name: name(c), version: version(c.before) })),
      cache_updated: changes.some((c) => c.key?.kind === 'cache'),
      packages: s?.packages ?? [],
    }
  },
})

/** Runs an apt command, waiting (with a progress message) while another apt/dpkg holds its lock. */
async function aptLocked(
  ctx: ModuleContext,
  p: AptParams,
  script: string,
  what: string,
): Promise<{ rc: number; stdout: string; stderr: string }> {
  const deadline = Date.now() + p.lock_timeout * 1000
  for (;;) {
    ctx.progress(what)
    const r = await run(ctx, script)
    const holder =
      r.rc !== 0 || /@@rb:rc\n[1-9]/.test(r.stdout) ? lockHolder(r.stdout + r.stderr) : undefined
    if (!holder) return r
    if (Date.now() > deadline)
      throw new RunbookError(
        'E_TIMEOUT',
        `${what}: the dpkg lock is still held after ${p.lock_timeout} s (${holder})`,
      )
    ctx.progress(`waiting for the dpkg lock (${holder})`)
    await sleep(2000, ctx.signal)
  }
}
