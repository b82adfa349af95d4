/**
 * A small reader of OpenSSH's client config (~/.ssh/config), so that hosts an operator already
 * reaches with `ssh name` are reached the same way. Supported: `Host` blocks (wildcards `*` `?`,
 * negation `!`, several patterns), options before the first `Host`, `Key value` and `Key=value`,
 * double quotes, comments; the keywords HostName (with %h), User, Port, IdentityFile (with ~, %d,
 * %u, %h, %r, repeated), ProxyJump (list or `none`), ConnectTimeout, ServerAliveInterval,
 * ServerAliveCountMax, StrictHostKeyChecking, UserKnownHostsFile, IdentityAgent, ProxyCommand (the
 * rest of the line, `%h %p %r %n %%`; whichever of it and ProxyJump comes first wins); `Include` (globs,
 * relative to ~/.ssh, several files per line, inside a Host block only for that block's hosts, 16
 * levels deep as in OpenSSH). As in OpenSSH, the first value found wins (IdentityFile accumulates).
 * `Match` blocks with all, host, originalhost, user, localuser, exec, canonical and final (one pass,
 * no canonicalization: canonical and final hold), `!` negating a criterion; a Match with another
 * criterion is skipped. Every other keyword is ignored.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expandHome, localUserName, type HostKeyChecking } from './settings.ts'

/** One criterion of a `Match` line: `host a,b`, `!user root`, `exec "cmd"`, `all`. */
export interface MatchCriterion {
  name: string
  negated: boolean
  arg?: string | undefined
}

/** What selects a block: `Host` patterns, or `Match` criteria (then `patterns` is unused). */
export interface BlockHead {
  patterns: string[]
  match?: MatchCriterion[] | undefined
}

/** One `Host` or `Match` block (or the global part, with patterns ['*']). */
export interface SshConfigBlock extends BlockHead {
  /** The heads of the blocks an `Include` was inside: each must select the host too. */
  guard?: BlockHead[] | undefined
  /** Lower-case keyword and its arguments, in file order. */
  options: Array<[string, string[]]>
}

/** What ~/.ssh/config says about one host. */
export interface SshConfigHost {
  hostName?: string | undefined
  user?: string | undefined
  port?: number | undefined
  identityFiles: string[]
  /** Raw ProxyJump value (`none`, or `[user@]host[:port],...`). */
  proxyJump?: string | undefined
  /** ProxyCommand, tokens unexpanded (the connection expands them); unset by `none`. */
  proxyCommand?: string | undefined
  connectTimeoutMs?: number | undefined
  serverAliveIntervalMs?: number | undefined
  serverAliveCountMax?: number | undefined
  strictHostKeyChecking?: HostKeyChecking | undefined
  userKnownHostsFiles?: string[] | undefined
  identityAgent?: string | false | undefined
}

/** Splits a config line into words, honouring double quotes. */
function words(line: string): string[] {
  const out: string[] = []
  const re = /"([^"]*)"|(\S+)/g
  let m: RegExpExecArray | null
  while ((m = re.exec(line))) out.push(m[1] ?? m[2]!)
  return out
}

/** Reads the files an `Include` argument names: [file, text] pairs, in lexical order. */
export type IncludeReader = (arg: string) => Array<[string, string]>

/** How deep Includes may nest (OpenSSH's READCONF_MAX_DEPTH). */
const MAX_INCLUDE_DEPTH = 16

/**
 * Parses the text of an ssh client config into blocks; `include` reads the files of `Include`
 * lines (without it they are skipped).
 * @example parseSshConfig('Host web*\n  User debian\n  ProxyJump bastion')
 */
export function parseSshConfig(
  text: string,
  include?: IncludeReader,
  guard: BlockHead[] = [],
  depth = 0,
): SshConfigBlock[] {
  const blocks: SshConfigBlock[] = [{ patterns: ['*'], guard, options: [] }]
  let current: SshConfigBlock | undefined = blocks[0]
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const m = /^([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$/.exec(line)
    if (!m) continue
    const key = m[1]!.toLowerCase()
    const args = words(m[2]!.replace(/\s+#.*$/, ''))
    if (key === 'host') {
      current = { patterns: args, guard, options: [] }
      blocks.push(current)
    } else if (key === 'match') {
      const match = parseMatch(args)
      current = match === undefined ? undefined : { patterns: [], match, guard, options: [] }
      if (current) blocks.push(current)
    } else if (key === 'include') {
      if (!current || !include || depth >= MAX_INCLUDE_DEPTH) continue
      const global =
        current.match === undefined && current.patterns.length === 1 && current.patterns[0] === '*'
      const inner = global
        ? guard
        : [...guard, { patterns: current.patterns, match: current.match }]
      for (const arg of args)
        for (const [, t] of include(arg))
          blocks.push(...parseSshConfig(t, include, inner, depth + 1))
      // the lines after the Include still belong to the block it was in
      current = { patterns: current.patterns, match: current.match, guard, options: [] }
      blocks.push(current)
    } else if (current) {
      // ProxyCommand is a shell command: the rest of the line, as written
      current.options.push([key, key === 'proxycommand' ? [m[2]!.trim()] : args])
    }
  }
  return blocks
}

const MATCH_WITH_ARG = new Set(['host', 'originalhost', 'user', 'localuser', 'exec'])
const MATCH_BARE = new Set(['all', 'canonical', 'final'])

/** The criteria of a `Match` line, or undefined when one is unknown (the block is then skipped). */
function parseMatch(args: string[]): MatchCriterion[] | undefined {
  const out: MatchCriterion[] = []
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!
    const negated = word.startsWith('!')
    const name = (negated ? word.slice(1) : word).toLowerCase()
    if (MATCH_BARE.has(name)) out.push({ name, negated })
    else if (MATCH_WITH_ARG.has(name) && i + 1 < args.length)
      out.push({ name, negated, arg: args[++i] })
    else return undefined
  }
  return out.length > 0 ? out : undefined
}

/** What a Match criterion is tested against: the host so far. */
interface MatchState {
  /** The name as given (`originalhost`). */
  original: string
  /** The HostName found so far, else the name (`host`). */
  host: string
  /** The remote user found so far, else the local user. */
  user: string
  port: number
}

function criterionHolds(c: MatchCriterion, st: MatchState): boolean {
  const list = (arg: string | undefined): string[] => (arg ?? '').split(',').filter(Boolean)
  switch (c.name) {
    case 'all':
    case 'canonical':
    case 'final':
      // one pass, no hostname canonicalization: `canonical` and `final` hold in it
      return true
    case 'host':
      return hostPatternsMatch(list(c.arg), st.host)
    case 'originalhost':
      return hostPatternsMatch(list(c.arg), st.original)
    case 'user':
      return hostPatternsMatch(list(c.arg), st.user)
    case 'localuser':
      return hostPatternsMatch(list(c.arg), localUserName())
    case 'exec': {
      const command = expandTokens(c.arg ?? '', st.host, st.user)
        .replace(/%p/g, String(st.port))
        .replace(/%n/g, st.original)
      return (
        spawnSync('/bin/sh', ['-c', command], { stdio: 'ignore', timeout: 10_000 }).status === 0
      )
    }
    default:
      return false
  }
}

/** Whether a block's head selects the host: its Host patterns, or all its Match criteria. */
function headSelects(head: BlockHead, st: MatchState): boolean {
  if (head.match === undefined) return hostPatternsMatch(head.patterns, st.original)
  return head.match.every((c) => criterionHolds(c, st) !== c.negated)
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  )
  return re.test(name)
}

/** Whether a `Host` line's patterns select `host`: one positive match and no negated one. */
export function hostPatternsMatch(patterns: string[], host: string): boolean {
  let positive = false
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), host)) return false
    } else if (globMatch(p, host)) positive = true
  }
  return positive
}

/** Expands the % tokens OpenSSH allows in HostName and IdentityFile. */
function expandTokens(value: string, host: string, remoteUser: string | undefined): string {
  return value.replace(/%([%hdur])/g, (_, t: string) => {
    if (t === '%') return '%'
    if (t === 'h') return host
    if (t === 'd') return os.homedir()
    if (t === 'u') return localUserName()
    return remoteUser ?? localUserName()
  })
}

const CHECKING: Record<string, HostKeyChecking> = {
  yes: 'strict',
  ask: 'strict',
  'accept-new': 'accept-new',
  no: 'off',
  off: 'off',
}

/**
 * The settings ~/.ssh/config gives `host` (the name as the inventory writes it).
 * @example lookupSshConfig(parseSshConfig(text), 'web1').hostName
 */
export function lookupSshConfig(blocks: SshConfigBlock[], host: string): SshConfigHost {
  const out: SshConfigHost = { identityFiles: [] }
  const rawIdentity: string[] = []
  // ProxyJump and ProxyCommand exclude each other: the first one given wins
  let proxySeen = false
  for (const block of blocks) {
    const st: MatchState = {
      original: host,
      host: out.hostName ? expandTokens(out.hostName, host, out.user) : host,
      user: out.user ?? localUserName(),
      port: out.port ?? 22,
    }
    if (!headSelects(block, st) || !(block.guard ?? []).every((g) => headSelects(g, st))) continue
    for (const [key, args] of block.options) {
      const v = args[0]
      if (v === undefined) continue
      switch (key) {
        case 'hostname':
          out.hostName ??= v
          break
        case 'user':
          out.user ??= v
          break
        case 'port':
          if (out.port === undefined && /^\d+$/.test(v)) out.port = Number(v)
          break
        case 'identityfile':
          rawIdentity.push(v)
          break
        case 'proxyjump':
          if (!proxySeen) out.proxyJump = v
          proxySeen = true
          break
        case 'proxycommand':
          if (!proxySeen) out.proxyCommand = v.toLowerCase() === 'none' ? undefined : v
          proxySeen = true
          break
        case 'connecttimeout':
          if (out.connectTimeoutMs === undefined && /^\d+$/.test(v))
            out.connectTimeoutMs = Number(v) * 1000
          break
        case 'serveraliveinterval':
          if (out.serverAliveIntervalMs === undefined && /^\d+$/.test(v))
            out.serverAliveIntervalMs = Number(v) * 1000
          break
        case 'serveralivecountmax':
          if (out.serverAliveCountMax === undefined && /^\d+$/.test(v))
            out.serverAliveCountMax = Number(v)
          break
        case 'stricthostkeychecking':
          out.strictHostKeyChecking ??= CHECKING[v.toLowerCase()]
          break
        case 'userknownhostsfile':
          out.userKnownHostsFiles ??=
            v.toLowerCase() === 'none' ? [] : args.map((f) => expandHome(f))
          break
        case 'identityagent':
          if (out.identityAgent === undefined) {
            out.identityAgent =
              v.toLowerCase() === 'none'
                ? false
                : v === 'SSH_AUTH_SOCK'
                  ? process.env['SSH_AUTH_SOCK']
                  : expandHome(v)
          }
          break
      }
    }
  }
  if (out.hostName) out.hostName = expandTokens(out.hostName, host, out.user)
  out.identityFiles = rawIdentity.map((f) =>
    expandHome(expandTokens(f, out.hostName ?? host, out.user)),
  )
  return out
}

/** One hop of a ProxyJump value. */
export interface JumpSpec {
  user?: string | undefined
  host: string
  port?: number | undefined
}

/**
 * Parses a ProxyJump value (`[user@]host[:port]`, `ssh://...`, comma-separated); [] for `none`.
 * @example parseProxyJump('admin@bastion:2222,inner') // [{user:'admin',host:'bastion',port:2222},{host:'inner'}]
 */
export function parseProxyJump(value: string): JumpSpec[] {
  if (value.trim().toLowerCase() === 'none') return []
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseJumpSpec)
}

/** `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://user@host:port`. */
export function parseJumpSpec(text: string): JumpSpec {
  const s = text.replace(/^ssh:\/\//, '').replace(/\/$/, '')
  const at = s.lastIndexOf('@')
  const user = at >= 0 ? s.slice(0, at) : undefined
  const rest = at >= 0 ? s.slice(at + 1) : s
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  if (v6) return { user, host: v6[1]!, port: v6[2] ? Number(v6[2]) : undefined }
  const hp = /^([^:]+):(\d+)$/.exec(rest)
  if (hp) return { user, host: hp[1]!, port: Number(hp[2]) }
  return { user, host: rest }
}

/** Matches one path component against a glob (`*`, `?`, `[...]`), as glob(3) does for Include. */
function componentMatch(pattern: string, name: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false
  const re = pattern
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${re}$`).test(name)
}

/** The files a path with glob characters names, sorted; a plain path names itself. */
function globFiles(pattern: string): string[] {
  const parts = pattern.split('/').filter((p, i) => p !== '' || i === 0)
  let dirs = [parts[0] === '' ? '/' : '.']
  for (const [i, part] of parts.entries()) {
    if (i === 0 && part === '') continue
    const next: string[] = []
    for (const dir of dirs) {
      if (!/[*?[]/.test(part)) next.push(path.join(dir, part))
      else {
        let names: string[]
        try {
          names = readdirSync(dir).sort()
        } catch {
          names = []
        }
        for (const n of names) if (componentMatch(part, n)) next.push(path.join(dir, n))
      }
    }
    dirs = next
  }
  return dirs
}

/**
 * The reader of Include lines for a config file: `~` expanded, relative paths taken from ~/.ssh
 * (from the config's own directory for a config elsewhere, as OpenSSH does for the system file).
 */
export function includeReader(configFile: string): IncludeReader {
  const file = expandHome(configFile)
  const userSsh = path.join(os.homedir(), '.ssh')
  const base =
    path.dirname(path.resolve(file)) === path.resolve(userSsh)
      ? userSsh
      : path.dirname(path.resolve(file))
  return (arg) => {
    const p = expandHome(arg)
    const abs = path.isAbsolute(p) ? p : path.join(base, p)
    const out: Array<[string, string]> = []
    for (const f of globFiles(abs)) {
      try {
        out.push([f, readFileSync(f, 'utf8')])
      } catch {
        // a missing file or a directory is skipped, as by OpenSSH
      }
    }
    return out
  }
}

/** Reads and parses a config file with its Includes; a missing file is an empty config. */
export async function loadSshConfig(file: string): Promise<SshConfigBlock[]> {
  try {
    return parseSshConfig(readFileSync(expandHome(file), 'utf8'), includeReader(file))
  } catch {
    return []
  }
}
