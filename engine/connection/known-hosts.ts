/**
 * known_hosts files as OpenSSH reads them (plain, wildcard and negated patterns, `[host]:port`,
 * hashed `|1|salt|hash` entries, `@revoked`), and the one decision that matters: is the key a
 * server shows acceptable for this host.
 */
import { createHmac } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { RunbookError } from '../errors.ts'
import { matchesPinned, type PinnedHostKey } from './console-keys.ts'
import { describeKey, displayKeyType, keyType, sha256Fingerprint } from './host-key.ts'
import type { HostKeyChecking } from './settings.ts'

/** One key line of a known_hosts file. */
export interface KnownHostEntry {
  file: string
  /** 1-based line number, for messages. */
  line: number
  marker?: 'revoked' | 'cert-authority' | undefined
  /** The host pattern field as written (comma-separated, or one hashed name). */
  hosts: string
  type: string
  /** base64 key blob. */
  key: string
}

/** Parses a known_hosts file; lines it does not understand are skipped, as OpenSSH does. */
export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = []
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    const fields = line.split(/\s+/)
    let marker: KnownHostEntry['marker']
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority'
      fields.shift()
    } else if (fields[0]?.startsWith('@')) return
    const [hosts, type, key] = fields
    if (!hosts || !type || !key || !/^[A-Za-z0-9+/]+={0,2}$/.test(key)) return
    out.push({ file, line: i + 1, marker, hosts, type, key })
  })
  return out
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostName(address: string, port: number): string {
  const host = address.toLowerCase()
  return port === 22 ? host : `[${host}]:${port}`
}

/** OpenSSH's glob: `*` and `?`, case-insensitive. */
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

/** Whether an entry's host field names `name` (as made by knownHostName). */
export function entryMatchesHost(entry: KnownHostEntry, name: string): boolean {
  if (entry.hosts.startsWith('|1|')) {
    const [, , salt, hash] = entry.hosts.split('|')
    if (!salt || !hash) return false
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash
  }
  let positive = false
  for (const pattern of entry.hosts.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(pattern.slice(1), name)) return false
    } else if (globMatch(pattern, name)) positive = true
  }
  return positive
}

/** A known_hosts line for `name` and a key blob. */
export function formatKnownHostsLine(name: string, blob: Buffer): string {
  return `${name} ${keyType(blob)} ${blob.toString('base64')}`
}

/** What to do with a presented host key. */
export type HostKeyVerdict =
  { ok: true; record: 'none' | 'append' | 'replace' } | { ok: false; error: RunbookError }

/** Everything verifyHostKey looks at. */
export interface HostKeyCheckInput {
  /** Inventory name, for messages. */
  host: string
  address: string
  port: number
  /** The key blob the server presented. */
  key: Buffer
  /** Entries of every known_hosts file (all hosts; filtered here). */
  entries: KnownHostEntry[]
  pinned?: PinnedHostKey[] | undefined
  mode: HostKeyChecking
}

/**
 * Decides whether a presented key is acceptable. A key that differs from the recorded ones is
 * refused in every mode, naming both fingerprints; pinned keys (from the console of a VM the
 * run created) take precedence over known_hosts, since they are newer and first-hand.
 * @example verifyHostKey({ host: 'web1', address: '192.0.2.11', port: 22, key, entries, mode: 'strict' })
 */
export function verifyHostKey(input: HostKeyCheckInput): HostKeyVerdict {
  const name = knownHostName(input.address, input.port)
  const where = `${input.host} (${input.port === 22 ? input.address : `${input.address}:${input.port}`})`
  const shown = describeKey(input.key)
  const b64 = input.key.toString('base64')
  const mine = input.entries.filter(
    (e) => e.marker !== 'cert-authority' && entryMatchesHost(e, name),
  )
  const revoked = mine.find((e) => e.marker === 'revoked' && e.key === b64)
  if (revoked) {
    return fail(
      `host key of ${where} is revoked (${revoked.file}:${revoked.line}): the server shows ${shown}; nothing was run on it`,
    )
  }
  const known = mine.filter((e) => e.marker === undefined)
  const matched = known.some((e) => e.key === b64)
  if (input.pinned && input.pinned.length > 0) {
    if (matchesPinned(input.key, input.pinned))
      return { ok: true, record: matched || input.mode === 'off' ? 'none' : 'replace' }
    const pins = input.pinned
      .map((p) => `${p.fingerprint}${p.type ? ` (${displayKeyType(p.type)})` : ''}`)
      .join(', ')
    return fail(
      `host key of ${where} does not match the keys pinned from its console: pinned ${pins}; the server shows ${shown}; nothing was run on it`,
      'a VM rebuilt or a different machine answers on this address',
    )
  }
  if (matched) return { ok: true, record: 'none' }
  if (known.length > 0) {
    const sameType = known.filter((e) => e.type === keyType(input.key))
    const old = (sameType.length > 0 ? sameType : known)
      .map(
        (e) =>
          `${sha256Fingerprint(Buffer.from(e.key, 'base64'))} (${displayKeyType(e.type)}, ${e.file}:${e.line})`,
      )
      .join(', ')
    const file = known[0]!.file
    return fail(
      `host key of ${where} has CHANGED: known ${old}; the server shows ${shown}. Someone may be intercepting the connection, or the host was rebuilt; nothing was run on it`,
      `if the change is expected, remove the old key: ssh-keygen -R '${name}' -f ${file}`,
    )
  }
  if (input.mode === 'strict') {
    return fail(
      `host key of ${where} is unknown: the server shows ${shown} and no known_hosts file lists ${name}`,
      'use host_key_checking: accept-new, pin the key from the server console, or add it to the project known_hosts',
    )
  }
  return { ok: true, record: input.mode === 'accept-new' ? 'append' : 'none' }
}

function fail(message: string, hint?: string): HostKeyVerdict {
  return { ok: false, error: new RunbookError('E_HOST_KEY', message, { hint }) }
}

/**
 * The known_hosts files of a run, read once, plus the project-local file that accept-new and
 * pinned keys write to. Writes are serialised, so hosts connecting at once do not interleave.
 */
export class KnownHostsStore {
  private readonly cache = new Map<string, Promise<KnownHostEntry[]>>()
  private writes: Promise<void> = Promise.resolve()

  /** Entries of all `files` (a missing file has none). */
  async entries(files: string[]): Promise<KnownHostEntry[]> {
    const lists = await Promise.all(files.map((f) => this.read(f)))
    return lists.flat()
  }

  /** Records `blob` for `name` in `file`; `replace` first drops the file's other keys of that name and type. */
  record(file: string, name: string, blob: Buffer, replace: boolean): Promise<void> {
    const run = async (): Promise<void> => {
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
      const line = formatKnownHostsLine(name, blob)
      if (replace) {
        const text = await fs.readFile(file, 'utf8').catch(() => '')
        const type = keyType(blob)
        const kept = text.split('\n').filter((l, i) => {
          if (!l.trim()) return false
          const [e] = parseKnownHosts(l, file)
          return !(
            e &&
            e.marker === undefined &&
            e.type === type &&
            entryMatchesHost({ ...e, line: i + 1 }, name)
          )
        })
        const tmp = `${file}.${process.pid}.tmp`
        await fs.writeFile(tmp, [...kept, line].join('\n') + '\n', { mode: 0o600 })
        await fs.rename(tmp, file)
      } else {
        await fs.appendFile(file, `${line}\n`, { mode: 0o600 })
      }
      this.cache.delete(file)
    }
    const next = this.writes.then(run, run)
    this.writes = next.catch(() => undefined)
    return next
  }

  /** Forgets what was read, so the next check sees the files as they are now (a long-lived keeper). */
  refresh(): void {
    this.cache.clear()
  }

  private read(file: string): Promise<KnownHostEntry[]> {
    let p = this.cache.get(file)
    if (!p) {
      p = fs.readFile(file, 'utf8').then(
        (text) => parseKnownHosts(text, file),
        () => [],
      )
      this.cache.set(file, p)
    }
    return p
  }
}
