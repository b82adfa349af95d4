/**
 * Who holds a VIP: each node is asked (through ctx.connectTo, from whichever host runs the task)
 * for its IPv4 addresses with one `ip -4 -o addr show`, and the answer is read here.
 */
import { quote } from '../../../engine/connection/shell.ts'
import type { Connection } from '../../../engine/connection/types.ts'
import { RunbookError } from '../../../engine/errors.ts'
import type { ModuleContext } from '../../../engine/module.ts'
import { tail } from '../../host/lib/remote.ts'
import { parseIpv4Cidr } from './ipv4.ts'

/** What one node said about the VIP. */
export interface HolderProbe {
  node: string
  /** The interface the VIP is on, or null when the node does not hold it. */
  interface: string | null
}

/** The VIP's address without a prefix; a RunbookError when it is not IPv4. */
export function vipAddress(vip: string): string {
  const c = parseIpv4Cidr(vip)
  if (!c) throw new RunbookError('E_PARAM', `vip: '${vip}' is not an IPv4 address`)
  return c.address
}

/** The command that lists the IPv4 addresses of `iface` (all interfaces when undefined). */
export function addrScript(iface: string | undefined): string {
  return `ip -4 -o addr show${iface ? ` dev ${quote(iface)}` : ''}`
}

/**
 * The interface that carries `vip` in `ip -4 -o addr show` output, or null.
 * @example holderInterface('2: ens3    inet 192.0.2.254/24 scope global secondary ens3', '192.0.2.254') // 'ens3'
 */
export function holderInterface(output: string, vip: string): string | null {
  for (const line of output.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line)
    if (m && m[2] === vip) return m[1]?.replace(/@.*$/, '') ?? null
  }
  return null
}

/** Runs a command on a node with the task's become. */
export function execOn(
  ctx: ModuleContext,
  conn: Connection,
  script: string,
  opts: { idempotent?: boolean; timeoutMs?: number } = {},
): ReturnType<Connection['exec']> {
  return conn.exec(script, { become: ctx.become, signal: ctx.signal, ...opts })
}

/**
 * Asks one node whether it holds the VIP.
 * @example const p = await probeHolder(ctx, 'kld-vm-1', '192.0.2.254', 'ens3')
 */
export async function probeHolder(
  ctx: ModuleContext,
  node: string,
  vip: string,
  iface: string | undefined,
): Promise<HolderProbe> {
  const conn = await ctx.connectTo(node)
  const r = await execOn(ctx, conn, addrScript(iface), { idempotent: true })
  if (r.rc !== 0) {
    // A missing interface is an answer (the node cannot hold the VIP there), not a failure.
    if (iface && /does not exist|Cannot find device/i.test(r.stderr))
      return { node, interface: null }
    throw new RunbookError(
      'E_COMMAND',
      `${node}: ${addrScript(iface)} failed (rc ${r.rc}): ${tail(r.stderr || r.stdout)}`,
    )
  }
  return { node, interface: holderInterface(r.stdout, vip) }
}

/** Asks every node at once; one answer per node, in the order given. */
export async function probeHolders(
  ctx: ModuleContext,
  nodes: readonly string[],
  vip: string,
  iface: string | undefined,
): Promise<HolderProbe[]> {
  return Promise.all(nodes.map((n) => probeHolder(ctx, n, vip, iface)))
}

/**
 * Refuses, at gather, names that are not hosts of the inventory (a typo would otherwise surface
 * as a connection error in the middle of a test that has already broken something).
 * @example requireHosts(ctx, 'keepalived.failover', ['kld-vm-1', 'kld-vm-2'])
 */
export function requireHosts(ctx: ModuleContext, module: string, names: readonly string[]): void {
  for (const n of names)
    if (ctx.inventory.hostVars(n) === undefined)
      throw new RunbookError('E_PARAM', `${module}: '${n}' is not a host of the inventory`)
}
