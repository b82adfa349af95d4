/**
 * `facts`: what a runbook needs to know about a host, read in one round trip and cached for the
 * run: the default-route interface and its address (the seed's `ip route | grep default`), every
 * interface with addresses and MAC, hostname, OS release, init system and package manager.
 * Templates read them as `{{facts.default_ipv4.interface}}`.
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { parseKv, probe, sectionLine, sections } from './lib/remote.ts'

/** An address on an interface. */
export interface IfAddress {
  address: string
  prefix: number
}

/** One network interface. */
export interface InterfaceFacts {
  mac: string | null
  mtu: number | null
  state: string
  ipv4: IfAddress[]
  ipv6: IfAddress[]
}

/** The facts of one host. */
export interface HostFacts {
  hostname: string
  fqdn: string
  os: { id: string; version_id: string; pretty_name: string; codename: string }
  kernel: string
  arch: string
  init: 'systemd' | 'sysv' | 'unknown'
  pkg_mgr: string
  default_ipv4: {
    interface: string
    address: string | null
    gateway: string | null
    prefix: number | null
    mac: string | null
  } | null
  interfaces: Record<string, InterfaceFacts>
  all_ipv4_addresses: string[]
}

/** ctx.cache key of a host's facts (the cache is per host). */
export const FACTS_CACHE_KEY = 'host.facts'
/** ctx.cache key of a host's init system, shared with `service`. */
export const INIT_CACHE_KEY = 'host.init'

const addrInfo = z.object({
  family: z.string(),
  local: z.string().optional(),
  prefixlen: z.number().optional(),
})
const ipLinks = z.array(
  z.object({
    ifname: z.string(),
    address: z.string().optional(),
    mtu: z.number().optional(),
    operstate: z.string().optional(),
    addr_info: z.array(addrInfo).default([]),
  }),
)
const ipRoutes = z.array(
  z.object({
    dst: z.string().optional(),
    gateway: z.string().optional(),
    dev: z.string().optional(),
    prefsrc: z.string().optional(),
    metric: z.number().optional(),
  }),
)

/** The probe: every section in one round trip. */
export const FACTS_SCRIPT = [
  sectionLine('addr'),
  'ip -j addr show 2>/dev/null || echo "[]"',
  sectionLine('route'),
  'ip -j -4 route show default 2>/dev/null || echo "[]"',
  sectionLine('os'),
  'cat /etc/os-release 2>/dev/null',
  sectionLine('env'),
  'echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"',
  // hostname -f asks DNS: bounded, so a host with a dead resolver still answers quickly.
  'echo "fqdn=$(timeout 2 hostname -f 2>/dev/null)"',
  'echo "kernel=$(uname -r)"; echo "arch=$(uname -m)"',
  'if [ -d /run/systemd/system ]; then echo init=systemd; elif [ -d /etc/init.d ]; then echo init=sysv; else echo init=unknown; fi',
  'for m in apt-get dnf yum zypper apk pacman; do if command -v $m >/dev/null 2>&1; then echo "pkg_mgr=$m"; break; fi; done',
].join('\n')

function parseJson<T>(schema: z.ZodType<T>, text: string | undefined, what: string): T {
  try {
    return schema.parse(JSON.parse(text?.trim() || '[]'))
  } catch (e) {
    throw new RunbookError('E_MODULE', `facts: cannot read ${what}: ${(e as Error).message}`, {
      cause: e,
    })
  }
}

function unquote(v: string): string {
  return v.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1')
}

function inSubnet(ip: string, net: IfAddress): boolean {
  const n = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0)
  if (!ip.includes('.') || !net.address.includes('.')) return false
  const size = 2 ** (32 - net.prefix)
  return Math.floor(n(ip) / size) === Math.floor(n(net.address) / size)
}

/**
 * Builds the facts from the probe's output (pure, for tests).
 * @example parseFacts(await probe(ctx, FACTS_SCRIPT, 'facts')).default_ipv4?.interface // 'ens3'
 */
export function parseFacts(stdout: string): HostFacts {
  const sec = sections(stdout)
  const links = parseJson(ipLinks, sec.addr, 'ip -j addr')
  const routes = parseJson(ipRoutes, sec.route, 'ip -j route').filter(
    (r) => r.dst === undefined || r.dst === 'default',
  )
  const os = parseKv(sec.os ?? '')
  const env = parseKv(sec.env ?? '')
  const interfaces: Record<string, InterfaceFacts> = {}
  for (const l of links) {
    const pick = (family: string): IfAddress[] =>
      l.addr_info
        .filter((a) => a.family === family && a.local)
        .map((a) => ({ address: a.local ?? '', prefix: a.prefixlen ?? 0 }))
    interfaces[l.ifname] = {
      mac: l.address ?? null,
      mtu: l.mtu ?? null,
      state: l.operstate ?? 'UNKNOWN',
      ipv4: pick('inet'),
      ipv6: pick('inet6'),
    }
  }
  const route = [...routes].sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0]
  let default_ipv4: HostFacts['default_ipv4'] = null
  if (route?.dev) {
    const iface = interfaces[route.dev]
    const addrs = iface?.ipv4 ?? []
    const chosen =
      addrs.find((a) => a.address === route.prefsrc) ??
      addrs.find((a) => route.gateway !== undefined && inSubnet(route.gateway, a)) ??
      addrs[0]
    default_ipv4 = {
      interface: route.dev,
      address: route.prefsrc ?? chosen?.address ?? null,
      gateway: route.gateway ?? null,
      prefix: chosen?.prefix ?? null,
      mac: iface?.mac ?? null,
    }
  }
  const init = env.init === 'systemd' || env.init === 'sysv' ? env.init : 'unknown'
  return {
    hostname: env.hostname ?? '',
    fqdn: env.fqdn || env.hostname || '',
    os: {
      id: unquote(os.ID ?? ''),
      version_id: unquote(os.VERSION_ID ?? ''),
      pretty_name: unquote(os.PRETTY_NAME ?? ''),
      codename: unquote(os.VERSION_CODENAME ?? ''),
    },
    kernel: env.kernel ?? '',
    arch: env.arch ?? '',
    init,
    pkg_mgr: env.pkg_mgr === 'apt-get' ? 'apt' : (env.pkg_mgr ?? 'unknown'),
    default_ipv4,
    interfaces,
    all_ipv4_addresses: Object.values(interfaces)
      .flatMap((i) => i.ipv4.map((a) => a.address))
      .filter((a) => !a.startsWith('127.')),
  }
}

/** The host's facts, from the run's cache or one round trip. */
export async function hostFacts(ctx: ModuleContext, refresh = false): Promise<HostFacts> {
  const cached = ctx.cache.get(FACTS_CACHE_KEY) as HostFacts | undefined
  if (cached && !refresh) return cached
  const facts = parseFacts(await probe(ctx, FACTS_SCRIPT, 'facts'))
  ctx.cache.set(FACTS_CACHE_KEY, facts)
  ctx.cache.set(INIT_CACHE_KEY, facts.init)
  return facts
}

const params = z.strictObject({
  refresh: z
    .boolean()
    .default(false)
    .describe('Read the facts again even if this run already has them for the host'),
})

/** facts' parameters. */
export type FactsParams = z.infer<typeof params>

/**
 * Reads the host's facts into the variable `facts`; read-only, so they are known during a plan.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const facts = defineModule<FactsParams, HostFacts>({
  name: 'facts',
  summary:
    'Reads the host’s network, OS, init system and package manager into `facts` (once per run)',
  example: `- facts: {}\n- debug: { msg: "{{facts.default_ipv4.interface}} {{facts.default_ipv4.address}}" }`,
  params,
  gather: (ctx, p) => hostFacts(ctx, p.refresh),
  plan: () => [],
  apply: async (_ctx, _p, _changes, current) => ({
    changed: false,
    facts: { facts: current },
    output: { facts: current },
  }),
  output: (_p, current) => ({ facts: current }),
  facts: (_p, current) => (current ? { facts: current } : undefined),
  providesVars: () => ['facts'],
})
