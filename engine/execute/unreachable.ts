/**
 * When a connect fails, the modules may know why better than the channel does (the host's server
 * is SHUTOFF): this asks each module with an `explainUnreachable` hook, for the host and then each
 * jump host on its way, and keeps the engine free of any module's own knowledge.
 */
import {
  loadModules,
  type ModuleContext,
  type ModuleRegistry,
  type UnreachableReason,
} from '../module.ts'

/** How long the modules together may take to explain (a dead API must not hold the run). */
const EXPLAIN_BUDGET_MS = 5000

/** The hosts a connect to `name` passes: itself, then its jump hosts, nearest first. */
function chain(
  name: string,
  varsOf: (host: string) => Readonly<Record<string, unknown>>,
): string[] {
  const out = [name]
  for (let i = 0; i < out.length && out.length < 8; i++) {
    const via = varsOf(out[i] ?? '').via
    const hops = Array.isArray(via) ? via.map(String) : typeof via === 'string' && via ? [via] : []
    for (const h of [...hops].reverse()) if (!out.includes(h)) out.push(h)
  }
  return out
}

function addressOf(vars: Readonly<Record<string, unknown>>): string | undefined {
  const a = vars.address ?? vars.ansible_host
  return typeof a === 'string' && a !== '' ? a : undefined
}

async function ask(
  registry: ModuleRegistry,
  ctx: ModuleContext,
  host: string,
  varsOf: (host: string) => Readonly<Record<string, unknown>>,
): Promise<UnreachableReason | undefined> {
  for (const m of registry.values()) {
    if (m.explainUnreachable === undefined) continue
    const why = await m
      .explainUnreachable(ctx, { name: host, address: addressOf(varsOf(host)) })
      .catch(() => undefined)
    if (why !== undefined) return why
  }
  return undefined
}

/**
 * The first reason a module gives for `name` or a jump host on its way to be unreachable, within
 * a few seconds; undefined when none knows.
 * @example const why = await explainUnreachable(registry, ctx, 'kld-vm-2', varsOf)
 */
export async function explainUnreachable(
  registry: ModuleRegistry,
  ctx: ModuleContext,
  name: string,
  varsOf: (host: string) => Readonly<Record<string, unknown>>,
): Promise<UnreachableReason | undefined> {
  // every module may know (a host-only runbook's VMs may be a cloud's): all families, loaded now
  await loadModules(registry)
  let timer: NodeJS.Timeout | undefined
  const budget = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), EXPLAIN_BUDGET_MS)
  })
  const search = (async () => {
    for (const host of chain(name, varsOf)) {
      const why = await ask(registry, ctx, host, varsOf)
      if (why !== undefined) return why
    }
    return undefined
  })()
  try {
    return await Promise.race([search, budget])
  } finally {
    clearTimeout(timer)
  }
}
