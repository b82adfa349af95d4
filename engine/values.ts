/**
 * Parameter VALUE validators shared by every module schema (addresses, networks, protocols,
 * ports, VRRP), and the one place that turns a zod issue into words a new user understands.
 * Modules use these instead of `z.string()` so that `192.0.2.999` or `/33` is a validate error,
 * not a failure in the middle of an apply.
 */
import { isIPv4, isIPv6 } from 'node:net'
import path from 'node:path'
import { z } from 'zod'
import { suggest } from './suggest.ts'

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v))

/** A string that must pass `ok`; the message names the value. */
function text(ok: (s: string) => boolean, what: string): z.ZodString {
  return z
    .string()
    .min(1)
    .superRefine((v, ctx) => {
      if (v !== '' && !ok(v))
        ctx.addIssue({ code: 'custom', input: v, message: `${show(v)} is not ${what}` })
    })
}

/** Whether `s` is `address/prefix` of the given family. */
function isCidr(s: string, family: 4 | 6 | 0): boolean {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(s)
  if (!m) return false
  const [, addr = '', bits = ''] = m
  const prefix = Number(bits)
  if ((family === 4 || family === 0) && isIPv4(addr)) return prefix <= 32
  if ((family === 6 || family === 0) && isIPv6(addr)) return prefix <= 128
  return false
}

/** An IPv4 address such as 192.0.2.10. */
export const ipv4Address = text(isIPv4, 'an IPv4 address (four numbers 0-255, e.g. 192.0.2.10)')
/** An IPv6 address such as 2001:db8::1. */
export const ipv6Address = text(isIPv6, 'an IPv6 address (e.g. 2001:db8::1)')
/** An IPv4 or IPv6 address. */
export const ipAddress = text((s) => isIPv4(s) || isIPv6(s), 'an IP address (e.g. 192.0.2.10)')
/** A network in CIDR form, IPv4 (prefix 0-32) or IPv6 (prefix 0-128): `192.0.2.0/24`. */
export const cidr = text(
  (s) => isCidr(s, 0),
  'a network in CIDR form (e.g. 192.0.2.0/24; the prefix is 0-32 for IPv4, 0-128 for IPv6)',
)
/** An address with an optional prefix: `192.0.2.254` or `192.0.2.254/24`. */
export const addressMaybeCidr = text(
  (s) => isIPv4(s) || isIPv6(s) || isCidr(s, 0),
  'an IP address with an optional prefix (e.g. 192.0.2.254 or 192.0.2.254/24)',
)

/** A MAC address: six pairs of hex digits separated by colons (fa:16:3e:00:00:01). */
export const macAddress = text(
  (s) => /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s),
  'a MAC address (six pairs of hex digits, e.g. fa:16:3e:12:34:56)',
)

/** Whether `s` is a DNS host name (RFC 1123 labels), not a mistyped dotted quad. */
function isHostName(s: string): boolean {
  if (s.length > 253 || /^[\d.]+$/.test(s)) return false
  return s
    .replace(/\.$/, '')
    .split('.')
    .every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l))
}

/** An IP address or a host name (`192.0.2.10`, `db1.example.org`); `192.0.2.300` is neither. */
export const hostAddress = text(
  (s) => isIPv4(s) || isIPv6(s) || isHostName(s),
  'an IP address or a host name (e.g. 192.0.2.10 or db1.example.org)',
)

/**
 * A Linux interface name: 1-15 characters, none of them a space, `/` or `:`, and not `.` or `..`
 * (the kernel's dev_valid_name).
 */
export const interfaceName = text(
  (s) => s.length >= 1 && s.length <= 15 && !/[\s/:]/.test(s) && s !== '.' && s !== '..',
  "an interface name (1-15 characters without spaces, '/' or ':', e.g. eth0)",
)

/** An absolute path on a host (`/etc/keepalived/keepalived.conf`). */
export const absolutePath = text(
  (s) => s.startsWith('/'),
  'an absolute path (it starts with /, e.g. /etc/app.conf)',
)

/** What a variable name looks like (templates and conditions both read it). */
export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Why `name` cannot be a variable, with a name that could, or undefined when it can.
 * @example badVariableName('vip-addr') // { message: "'vip-addr' is not a variable name (...)", hint: "e.g. 'vip_addr'" }
 */
export function badVariableName(name: string): { message: string; hint: string } | undefined {
  if (VARIABLE_NAME.test(name)) return undefined
  return {
    message: `'${name}' is not a variable name (letters, digits and _, not starting with a digit)`,
    hint: `e.g. '${name.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(\d)/, '_$1')}'`,
  }
}

/** The path of a file (not a directory): absolute, not ending with `/`. */
export const filePath = text(
  (s) => s.startsWith('/') && !s.endsWith('/'),
  'the absolute path of a file (it starts with / and names the file, e.g. /etc/app.conf, not a directory ending with /)',
)

/** A user or group: a name (`keepalived_script`, `www-data`) or a numeric id. */
export const accountName = text(
  (s) => /^\d+$/.test(s) || /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(s),
  'a user or group name (letters, digits, _ . -, not starting with a digit or -) or a numeric id',
)

/** One OpenSSH public key line: type, base64 key, optional comment. */
export const sshPublicKey = text(
  (s) =>
    /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) +[A-Za-z0-9+/]+={0,3}( +\S.*)?\s*$/.test(
      s,
    ),
  'one OpenSSH public key line (e.g. ssh-ed25519 AAAAC3Nz... user@host)',
)

/**
 * Whether removing `p` would remove `/` or a top-level directory (`/etc`, `/usr//`, `/var/.`):
 * the paths `file: { state: absent }` refuses unless told it is meant.
 * @example isSystemPath('/etc/') // true; isSystemPath('/etc/keepalived') // false
 */
export function isSystemPath(p: string): boolean {
  const norm = path.posix.normalize(`/${p}`).replace(/\/+$/, '')
  return norm.split('/').filter(Boolean).length <= 1
}

/** A TCP/UDP port, 1-65535. */
export const port = z
  .number()
  .int()
  .superRefine((v, ctx) => {
    if (v < 1 || v > 65535)
      ctx.addIssue({ code: 'custom', input: v, message: `port ${v} is outside 1-65535` })
  })

/** A port or a range `8000-8080` (low <= high, both 1-65535). */
export const portRange = z.union([
  port,
  text((s) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(s)
    if (!m) return false
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    return lo >= 1 && hi <= 65535 && lo <= hi
  }, 'a port or a port range (e.g. 22 or 8000-8080, ports 1-65535, low to high)'),
])

/** IP protocol names as Neutron and iptables know them, with their numbers. */
export const IP_PROTOCOLS: Readonly<Record<string, number>> = {
  any: -1,
  icmp: 1,
  igmp: 2,
  ipip: 4,
  tcp: 6,
  egp: 8,
  udp: 17,
  ipv6: 41,
  rsvp: 46,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  'ipv6-icmp': 58,
  ospf: 89,
  vrrp: 112,
  sctp: 132,
}

/** A protocol name (`tcp`, `vrrp`) or number 0-255 (VRRP is 112). */
export const protocol = z.union([
  z.number().int().min(0).max(255),
  z.string().superRefine((value, ctx) => {
    const s = value.toLowerCase()
    if (s in IP_PROTOCOLS || /^\d+$/.test(s)) {
      if (/^\d+$/.test(s) && Number(s) > 255)
        ctx.addIssue({
          code: 'custom',
          input: value,
          message: `protocol number ${s} is outside 0-255`,
        })
      return
    }
    const near = suggest(s, Object.keys(IP_PROTOCOLS))
    ctx.addIssue({
      code: 'custom',
      input: value,
      message: `unknown protocol ${show(value)}: use tcp, udp, icmp, vrrp, ... or a number 0-255${near ? ` (did you mean '${near}'?)` : ''}`,
    })
  }),
])

/** A VRRP priority: 1-254 (255 is the address owner's). */
export const vrrpPriority = z
  .number()
  .int()
  .superRefine((v, ctx) => {
    if (v < 1 || v > 255)
      ctx.addIssue({
        code: 'custom',
        input: v,
        message: `priority ${v} is outside 1-254 (VRRP priorities are 1-254; 255 only for the address owner)`,
      })
  })

/** A VRRP initial state. */
export const vrrpState = z.enum(['MASTER', 'BACKUP'])

const typeWords: Record<string, string> = {
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'nothing (null)',
  undefined: 'nothing',
  int: 'a whole number',
  bigint: 'a whole number',
  record: 'a mapping',
  map: 'a mapping',
  tuple: 'a list',
  date: 'a date',
}

function kind(v: unknown): string {
  if (v === null) return 'nothing (null)'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  if (typeof v === 'string') return `the text ${show(v)}`
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return typeof v
}

/**
 * The part of `v` at `path` (undefined where the path leads nowhere).
 * @example valueAt({ a: [1, 2] }, ['a', 1]) // 2
 */
export function valueAt(v: unknown, path: readonly PropertyKey[]): unknown {
  let at = v
  for (const k of path)
    at = at !== null && typeof at === 'object' ? (at as Record<PropertyKey, unknown>)[k] : undefined
  return at
}

/**
 * A zod issue in plain words, with "did you mean" for enums. `value` is the value the issue is
 * about, when the caller has it.
 * @example describeIssue(issue, 'presnt') // "'presnt' is not one of present, absent (did you mean 'present'?)"
 */
export function describeIssue(issue: z.core.$ZodIssue | undefined, value?: unknown): string {
  if (!issue) return 'invalid value'
  const input = 'input' in issue ? issue.input : value
  switch (issue.code) {
    case 'invalid_type': {
      const want = typeWords[issue.expected] ?? issue.expected
      return `expected ${want}, got ${kind(input)}`
    }
    case 'invalid_value': {
      const options = issue.values.map(String)
      const near = typeof input === 'string' ? suggest(input, options) : undefined
      return `${show(input)} is not one of ${options.join(', ')}${near ? ` (did you mean '${near}'?)` : ''}`
    }
    case 'too_small':
      return issue.origin === 'string' && Number(issue.minimum) === 1
        ? 'must not be empty'
        : issue.origin === 'array'
          ? `needs at least ${issue.minimum} item${Number(issue.minimum) === 1 ? '' : 's'}`
          : issue.inclusive === false
            ? `${show(input)} is too small: it must be more than ${issue.minimum}`
            : `${show(input)} is below the minimum ${issue.minimum}`
    case 'too_big':
      return issue.origin === 'array' || issue.origin === 'string'
        ? `is too long (at most ${issue.maximum}${issue.origin === 'string' ? ' characters' : ' items'})`
        : issue.inclusive === false
          ? `${show(input)} is too big: it must be less than ${issue.maximum}`
          : `${show(input)} is above the maximum ${issue.maximum}`
    case 'invalid_format':
      return `${show(input)} is not ${issue.format === 'regex' ? 'in the expected form' : `a valid ${issue.format}`}${issue.message && !issue.message.startsWith('Invalid') ? `: ${issue.message}` : ''}`
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`
    case 'invalid_union': {
      const firsts = issue.errors.map((e) => e[0])
      // a branch whose shape the value has, wrong only inside: that branch says what is wrong
      const inside = firsts.find((f) => (f?.path.length ?? 0) > 0)
      if (inside)
        return `${inside.path.join('.')}: ${describeIssue(inside, valueAt(input, inside.path))}`
      if (firsts.length > 1 && firsts.every((f) => f?.code === 'invalid_type')) {
        const wants = [
          ...new Set(
            firsts.map((f) => {
              const e = (f as { expected: string }).expected
              return typeWords[e] ?? e
            }),
          ),
        ].filter(Boolean)
        return `expected ${wants.join(' or ')}, got ${kind(input)}`
      }
      return describeIssue(firsts[0], input)
    }
    default:
      return issue.message
  }
}
