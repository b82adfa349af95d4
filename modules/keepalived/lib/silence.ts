/**
 * Why a VIP does not answer: asks the nodes who holds it, then pings the holder's own address
 * from the same host. A holder that answers from its own address but not from the VIP sends from
 * an address its port may not use: the cloud drops it (Neutron's allowed address pairs lack the
 * VIP; its ARP replies for the VIP are dropped too). Security groups filter by protocol and peer,
 * not by which of a port's addresses is asked, so they would silence both.
 */
import { quote } from '../../../engine/connection/shell.ts'
import type { ModuleContext } from '../../../engine/module.ts'
import { run } from '../../host/lib/remote.ts'
import { probeHolders } from './vip.ts'

/**
 * Whether `address` answers one of `count` pings from the task's host within `seconds`.
 * @example await answers(ctx, '192.0.2.11', 2, 3)
 */
export async function answers(
  ctx: ModuleContext,
  address: string,
  count: number,
  seconds: number,
): Promise<boolean> {
  const r = await run(
    ctx,
    `LC_ALL=C ping -n -c ${count} -i 0.2 -W 1 -w ${Math.ceil(seconds)} ${quote(address)}`,
    { idempotent: true },
  )
  return /(\d+) packets transmitted, [1-9]\d* (?:packets )?received/.test(r.stdout)
}

/**
 * Why `vip` does not answer from the task's host, in the words an operator acts on.
 * @example await whySilent(ctx, '192.0.2.254', ['kld-vm-1', 'kld-vm-2'])
 * // "kld-vm-1 holds it and answers from its own address 192.0.2.11, so kld-vm-1's port may not send from 192.0.2.254: ..."
 */
export async function whySilent(
  ctx: ModuleContext,
  vip: string,
  nodes: readonly string[],
): Promise<string> {
  const probes = await probeHolders(ctx, nodes, vip, undefined)
  const holders = probes.filter((p) => p.interface !== null).map((p) => p.node)
  if (holders.length === 0)
    return `no node holds it (${nodes.join(', ')} asked; is keepalived running there?)`
  if (holders.length > 1) return `${holders.join(' and ')} hold it at once (split brain)`
  const holder = holders[0] as string
  const own = ctx.inventory.hostVars(holder)?.['address']
  if (typeof own !== 'string' || own === '')
    return `${holder} holds it (its own address is not known here, so the cause cannot be told)`
  if (await answers(ctx, own, 2, 3))
    return `${holder} holds it and answers from its own address ${own}, so ${holder}'s port may not send from ${vip}: its allowed address pairs do not include ${vip}, and the cloud drops what the port sends from there`
  return `${holder} holds it, but its own address ${own} does not answer either: the way to ${holder} is closed (security groups, the network), not only to the VIP`
}
