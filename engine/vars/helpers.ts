/**
 * The Handlebars helpers runbooks need: the few things Jinja filters do in Ansible playbooks
 * (defaults, comparisons, joins, JSON, IP address parts), and nothing that touches the world.
 */
import { createHash } from 'node:crypto'

type Helper = (...args: unknown[]) => unknown

/** Drops Handlebars' trailing options argument. */
function plain(args: unknown[]): unknown[] {
  const last = args[args.length - 1]
  return last !== null && typeof last === 'object' && 'hash' in last && 'data' in last
    ? args.slice(0, -1)
    : args
}

function parseCidr(v: unknown): { address: string; prefix: number } {
  const s = String(v)
  const [address = '', prefix] = s.split('/')
  return {
    address,
    prefix: prefix === undefined ? (address.includes(':') ? 128 : 32) : Number(prefix),
  }
}

function ipv4Network(address: string, prefix: number): string {
  const n = address.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0
  const net = (n & mask) >>> 0
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${prefix}`
}

function truthy(v: unknown): boolean {
  return Array.isArray(v) ? v.length > 0 : Boolean(v)
}

/** Every helper by name, with the same function used by templates and by native evaluation. */
export const helpers: Record<string, Helper> = {
  default: (...a) => {
    const [v, d] = plain(a)
    return v === undefined || v === null || v === '' ? d : v
  },
  eq: (...a) => plain(a)[0] === plain(a)[1],
  ne: (...a) => plain(a)[0] !== plain(a)[1],
  lt: (...a) => (plain(a)[0] as number) < (plain(a)[1] as number),
  gt: (...a) => (plain(a)[0] as number) > (plain(a)[1] as number),
  lte: (...a) => (plain(a)[0] as number) <= (plain(a)[1] as number),
  gte: (...a) => (plain(a)[0] as number) >= (plain(a)[1] as number),
  and: (...a) => plain(a).every(truthy),
  or: (...a) => plain(a).some(truthy),
  not: (...a) => !truthy(plain(a)[0]),
  upper: (...a) => String(plain(a)[0]).toUpperCase(),
  lower: (...a) => String(plain(a)[0]).toLowerCase(),
  trim: (...a) => String(plain(a)[0]).trim(),
  replace: (...a) => {
    const [s, from, to] = plain(a)
    return String(s)
      .split(String(from))
      .join(String(to ?? ''))
  },
  split: (...a) => {
    const [s, sep] = plain(a)
    return String(s).split(sep === undefined ? ',' : String(sep))
  },
  join: (...a) => {
    const [arr, sep] = plain(a)
    return Array.isArray(arr) ? arr.join(sep === undefined ? ',' : String(sep)) : String(arr)
  },
  concat: (...a) => plain(a).map(String).join(''),
  json: (...a) => JSON.stringify(plain(a)[0]),
  length: (...a) => {
    const v = plain(a)[0]
    if (Array.isArray(v) || typeof v === 'string') return v.length
    return v !== null && typeof v === 'object' ? Object.keys(v).length : 0
  },
  first: (...a) => (plain(a)[0] as unknown[] | undefined)?.[0],
  last: (...a) => {
    const v = plain(a)[0] as unknown[] | undefined
    return v?.[v.length - 1]
  },
  lookup: (...a) => {
    const [obj, key] = plain(a)
    return obj !== null && typeof obj === 'object'
      ? (obj as Record<string, unknown>)[String(key)]
      : undefined
  },
  /** `map list 'a.b'`: each item's value at a key or a dotted path (`results` of a loop). */
  map: (...a) => {
    const [arr, key] = plain(a)
    const at = (x: unknown): unknown =>
      String(key)
        .split('.')
        .reduce<unknown>(
          (v, k) =>
            v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined,
          x,
        )
    return Array.isArray(arr) ? arr.map(at) : []
  },
  contains: (...a) => {
    const [hay, needle] = plain(a)
    return Array.isArray(hay) ? hay.includes(needle) : String(hay).includes(String(needle))
  },
  add: (...a) => plain(a).reduce<number>((s, x) => s + Number(x), 0),
  sub: (...a) => Number(plain(a)[0]) - Number(plain(a)[1]),
  int: (...a) => Number.parseInt(String(plain(a)[0]), 10),
  indent: (...a) => {
    const [n, s] = plain(a)
    const pad = ' '.repeat(Number(n))
    return String(s)
      .split('\n')
      .map((l, i) => (i === 0 || l === '' ? l : pad + l))
      .join('\n')
  },
  b64encode: (...a) => Buffer.from(String(plain(a)[0])).toString('base64'),
  b64decode: (...a) => Buffer.from(String(plain(a)[0]), 'base64').toString('utf8'),
  /** MD5 in hex: keepalived's HTTP_GET `digest` of a body (what genhash prints). */
  md5: (...a) =>
    createHash('md5')
      .update(String(plain(a)[0]))
      .digest('hex'),
  sha256: (...a) =>
    createHash('sha256')
      .update(String(plain(a)[0]))
      .digest('hex'),
  /** `192.0.2.254/24` -> `192.0.2.254` */
  ip_address: (...a) => parseCidr(plain(a)[0]).address,
  /** `192.0.2.254/24` -> `24` */
  ip_prefix: (...a) => parseCidr(plain(a)[0]).prefix,
  /** `192.0.2.254/24` -> `192.0.2.0/24` */
  ip_network: (...a) => {
    const { address, prefix } = parseCidr(plain(a)[0])
    return ipv4Network(address, prefix)
  },
}

/** Helper names, for validation and suggestions. */
export const helperNames: ReadonlySet<string> = new Set([
  ...Object.keys(helpers),
  'if',
  'unless',
  'each',
  'with',
])
