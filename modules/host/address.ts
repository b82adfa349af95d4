/**
 * `address`: an IP address with its prefix on an interface (the VIP /32 on `lo` of an LVS/DR real
 * server), read with `ip -j addr`, optionally persisted for the next boot in the host's own network
 * configuration: a netplan file where netplan is in use, else an ifupdown stanza.
 */
import { z } from 'zod'
import { addressMaybeCidr, interfaceName } from '../../engine/values.ts'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { fromBase64, parseKv, probe, run, sectionLine, sections, tail } from './lib/remote.ts'

const params = z.strictObject({
  address: addressMaybeCidr.describe(
    'The address with its prefix (`192.0.2.254/32`); without a prefix, /32 (IPv4) or /128 (IPv6)',
  ),
  interface: interfaceName.describe('Interface name (`lo`, `eth0`)'),
  state: z
    .enum(['present', 'absent'])
    .default('present')
    .describe(
      'present: on the interface with this prefix; absent: not on the interface (any prefix)',
    ),
  persist: z
    .boolean()
    .default(false)
    .describe(
      'Also configure it for the next boot: /etc/netplan/90-runbook-*.yaml on netplan hosts, else /etc/network/interfaces.d/runbook-* (ifupdown)',
    ),
})

/** address's parameters. */
export type AddressParams = z.infer<typeof params>

/** Network configuration systems `persist` can write to. */
export type PersistBackend = 'netplan' | 'ifupdown' | 'none'

/** The interface's addresses and the persisted file. */
export interface AddressState {
  interfaceExists: boolean
  /** `ip/prefix` of every address on the interface. */
  addresses: string[]
  backend: PersistBackend
  /** Content of the persist file for this address; null when it does not exist. */
  persisted: string | null
}

const ipAddrJson = z.array(
  z.object({
    addr_info: z
      .array(z.object({ local: z.string().optional(), prefixlen: z.number().optional() }))
      .default([]),
  }),
)

/** The address with an explicit prefix, lower case. */
export function cidr(address: string): string {
  const a = address.toLowerCase()
  return a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`
}

/** Where `persist` writes, per backend. */
export function persistPath(p: AddressParams, backend: PersistBackend): string | undefined {
  const slug = `${p.interface}-${cidr(p.address)}`.replace(/[^A-Za-z0-9_-]/g, '-')
  if (backend === 'netplan') return `/etc/netplan/90-runbook-${slug}.yaml`
  if (backend === 'ifupdown') return `/etc/network/interfaces.d/runbook-${slug}`
  return undefined
}

/** The persist file's content. A second stanza for an interface is merged by ifupdown; netplan appends sequences across files. */
export function persistContent(p: AddressParams, backend: PersistBackend): string {
  const a = cidr(p.address)
  const head = `# Managed by runbook (address module): ${a} on ${p.interface}\n`
  if (backend === 'netplan')
    return `${head}network:\n  version: 2\n  ethernets:\n    ${p.interface}:\n      addresses: [${JSON.stringify(a)}]\n`
  return `${head}iface ${p.interface} ${a.includes(':') ? 'inet6' : 'inet'} static\n    address ${a}\n`
}

async function gatherAddress(ctx: ModuleContext, p: AddressParams): Promise<AddressState> {
  const n = persistPath(p, 'netplan') ?? ''
  const i = persistPath(p, 'ifupdown') ?? ''
  const script = [
    sectionLine('addr'),
    `ip -j addr show dev ${quote(p.interface)} 2>/dev/null || echo '@@missing'`,
    sectionLine('persist'),
    'if [ -d /etc/netplan ] && command -v netplan >/dev/null 2>&1; then echo backend=netplan; f=' +
      quote(n),
    'elif [ -f /etc/network/interfaces ]; then echo backend=ifupdown; f=' + quote(i),
    'else echo backend=none; f=; fi',
    'if [ -n "$f" ] && [ -f "$f" ]; then printf file=; base64 -w0 "$f"; echo; fi',
  ].join('\n')
  const sec = sections(await probe(ctx, script, `address on ${p.interface}`))
  const kv = parseKv(sec.persist ?? '')
  const backend: PersistBackend =
    kv.backend === 'netplan' || kv.backend === 'ifupdown' ? kv.backend : 'none'
  const persisted = kv.file === undefined ? null : fromBase64(kv.file)
  if (sec.addr === undefined || sec.addr.trim() === '@@missing')
    return { interfaceExists: false, addresses: [], backend, persisted }
  const links = ipAddrJson.parse(JSON.parse(sec.addr))
  const addresses = links.flatMap((l) =>
    l.addr_info
      .filter((a) => a.local)
      .map((a) => `${(a.local ?? '').toLowerCase()}/${a.prefixlen ?? 0}`),
  )
  return { interfaceExists: true, addresses, backend, persisted }
}

function planAddress(p: AddressParams, s: AddressState): Change[] {
  if (!s.interfaceExists)
    throw new RunbookError('E_MODULE', `address: no interface ${p.interface} on the host`)
  const want = cidr(p.address)
  const ip = want.split('/')[0] ?? ''
  const same = s.addresses.filter((a) => a.split('/')[0] === ip)
  const target = `address ${want} on ${p.interface}`
  const key = { kind: 'address', name: want }
  const changes: Change[] = []
  if (p.state === 'present' && !same.includes(want)) {
    changes.push(
      same.length
        ? { action: 'replace', target, key, before: { address: same[0] }, after: { address: want } }
        : { action: 'create', target, key, after: { address: want } },
    )
  }
  if (p.state === 'absent' && same.length)
    changes.push({
      action: 'delete',
      target: `address ${same[0]} on ${p.interface}`,
      key: { kind: 'address', name: same[0] ?? want },
      before: { address: same[0] },
    })
  if (p.persist) {
    const path = persistPath(p, s.backend)
    if (!path)
      throw new RunbookError(
        'E_MODULE',
        'address: persist needs netplan or ifupdown (/etc/network/interfaces) on the host',
      )
    const after = p.state === 'present' ? persistContent(p, s.backend) : null
    if (after !== s.persisted) {
      const action = after === null ? 'delete' : s.persisted === null ? 'create' : 'update'
      changes.push({
        action,
        target: `file ${path}`,
        key: { kind: 'file', name: path },
        diff: { path, before: s.persisted ?? '', after: after ?? '' },
      })
    }
  }
  return changes
}

/**
 * Ensures an address is (or is not) on an interface.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const address = defineModule<AddressParams, AddressState>({
  name: 'address',
  summary: 'An IP address/prefix is on an interface (e.g. the VIP /32 on lo), optionally persisted',
  example: `- address: { address: "{{vip}}/32", interface: lo, persist: true }`,
  params,
  gather: gatherAddress,
  plan: planAddress,
  noop: (p, s) =>
    `${cidr(p.address)} is ${p.state === 'present' ? '' : 'not '}on ${p.interface}` +
    (p.persist ? ` and ${s.persisted === null ? 'not ' : ''}persisted (${s.backend})` : ''),
  async apply(ctx, p, changes, s) {
    const conn = await ctx.conn()
    const dev = quote(p.interface)
    for (const c of changes) {
      if (c.key?.kind === 'file') {
        const path = c.key.name
        if (c.action === 'delete') {
          const r = await run(ctx, `rm -f ${quote(path)}`)
          if (r.rc !== 0)
            throw new RunbookError('E_COMMAND', `cannot remove ${path}: ${tail(r.stderr)}`)
        } else
          await conn.writeFile(path, c.diff?.after ?? '', {
            mode: s.backend === 'netplan' ? 0o600 : 0o644,
            become: ctx.become,
          })
        continue
      }
      const before = (c.before as { address?: string } | undefined)?.address
      const lines = ['set -e']
      if (before) lines.push(`ip addr del ${quote(before)} dev ${dev}`)
      if (c.action !== 'delete') lines.push(`ip addr add ${quote(cidr(p.address))} dev ${dev}`)
      const r = await run(ctx, lines.join('\n'))
      if (r.rc !== 0)
        throw new RunbookError('E_COMMAND', `${c.target}: ${tail(r.stderr || r.stdout)}`)
    }
    const now = await gatherAddress(ctx, p)
    if (planAddress(p, now).length)
      throw new RunbookError(
        'E_MODULE',
        `address ${cidr(p.address)} on ${p.interface}: not as asked after apply (has ${now.addresses.join(', ') || 'none'})`,
      )
    if (changes.some((c) => c.action === 'create' && c.key?.kind === 'address'))
      await ctx.journal.record({
        type: 'address',
        id: `${p.interface}:${cidr(p.address)}`,
        data: { persist: p.persist ? persistPath(p, s.backend) : undefined },
      })
    return { changed: true, output: outputOf(p, now) }
  },
  output: (p, s) => outputOf(p, s),
  async destroy(ctx, r) {
    const i = r.id.indexOf(':')
    const dev = r.id.slice(0, i)
    const addr = r.id.slice(i + 1)
    const file = typeof r.data?.persist === 'string' ? r.data.persist : undefined
    const script = [
      `if ip -o addr show dev ${quote(dev)} | grep -qF ' ${addr} '; then ip addr del ${quote(addr)} dev ${quote(dev)}; fi`,
      file ? `rm -f ${quote(file)}` : 'true',
    ].join('\n')
    const res = await run(ctx, script)
    if (res.rc !== 0)
      throw new RunbookError('E_COMMAND', `cannot remove ${addr} from ${dev}: ${tail(res.stderr)}`)
  },
})

function outputOf(p: AddressParams, s: AddressState | undefined): Record<string, unknown> {
  return {
    address: cidr(p.address),
    interface: p.interface,
    addresses: s?.addresses ?? [],
    persist_backend: s?.backend ?? null,
  }
}
