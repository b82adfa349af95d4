/**
 * Connection settings checked as a whole when the inventory is loaded, so that a bad port, an
 * unknown `via` host, a jump chain that loops or a misspelt connection key is a validate error
 * with its position, not a failure when the connection is made halfway through an apply.
 */
import { connectionVars } from '../connection/host-vars.ts'
import { RunbookError } from '../errors.ts'
import { locate, type Source, type YamlPath } from '../runbook/source.ts'
import { didYouMean, editDistance } from '../suggest.ts'
import { badVariableName, describeIssue } from '../values.ts'
import { looksLikeSecret, misplacedSecret } from '../vars/secrets.ts'
import { isTemplate } from '../vars/template.ts'
import type { Inventory } from './inventory.ts'

const CONNECTION_KEYS = Object.keys(connectionVars.shape)

/** Other variables the engine reads from hosts (execute/task.ts, factory.ts). */
const OTHER_KNOWN = [
  'connection',
  'ansible_connection',
  'ansible_become',
  'ansible_become_user',
  'ansible_become_method',
  'ansible_python_interpreter',
  'ansible_ssh_common_args',
]
const BOOLEAN_KEYS = new Set(['become', 'ansible_become'])
const KNOWN = [...CONNECTION_KEYS, ...OTHER_KNOWN]
/** Keys a plain variable may be a typo of, with the edit distance each tolerates. */
const NEAR_CANDIDATES = KNOWN.filter((k) => !k.startsWith('ansible_') && k.length >= 6).map(
  (k) => [k, Math.max(1, Math.floor(k.length / 5))] as const,
)

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
const templated = (v: unknown): boolean => typeof v === 'string' && isTemplate(v)

/** misspelt's answers by key: an inventory repeats the same few keys on every host. */
const misspeltMemo = new Map<string, string | undefined>()

/** A key that is almost, but not quite, a connection key (`ansible_hots`, `proxy_comand`). */
function misspelt(key: string): string | undefined {
  if (!misspeltMemo.has(key)) misspeltMemo.set(key, misspeltUncached(key))
  return misspeltMemo.get(key)
}

function misspeltUncached(key: string): string | undefined {
  if (KNOWN.includes(key)) return undefined
  if (key.startsWith('ansible_'))
    return didYouMean(key, KNOWN) ?? 'this is not a connection setting'
  // the distance is at least the difference in length: most keys need no distance at all
  const near = NEAR_CANDIDATES.filter(
    ([k, most]) =>
      Math.abs(k.length - key.length) <= most && !k.startsWith(key) && !key.startsWith(k),
  )
    .map(([k, most]) => [k, editDistance(key, k), most] as const)
    .filter(([, d, most]) => d > 0 && d <= most)
    .sort((a, b) => a[1] - b[1])[0]
  return near ? `did you mean '${near[0]}'?` : undefined
}

/** Every mapping of variables in the inventory source, with its path. */
function varSites(root: unknown, p: YamlPath = []): [YamlPath, Obj][] {
  if (!isObj(root)) return []
  const out: [YamlPath, Obj][] = []
  for (const [name, body] of Object.entries(root)) {
    if (!isObj(body)) continue
    const gp = [...p, name]
    if (isObj(body.vars)) out.push([[...gp, 'vars'], body.vars])
    if (isObj(body.hosts))
      for (const [h, hv] of Object.entries(body.hosts))
        if (isObj(hv)) out.push([[...gp, 'hosts', h], hv])
    if (isObj(body.children)) out.push(...varSites(body.children, [...gp, 'children']))
  }
  return out
}

/**
 * Groups that are their own ancestors through `children` (g1 -> g2 -> g1), reported at the
 * `children` entry that closes the loop: Ansible refuses them too.
 */
function groupLoops(
  src: Source,
  err: (msg: string, p: YamlPath, opts?: { key?: boolean; hint?: string }) => void,
): void {
  const edges = new Map<string, { child: string; at: YamlPath }[]>()
  const walk = (name: string, body: unknown, p: YamlPath): void => {
    if (!isObj(body) || !isObj(body.children)) return
    for (const [c, cb] of Object.entries(body.children)) {
      const list = edges.get(name) ?? []
      list.push({ child: c, at: [...p, 'children', c] })
      edges.set(name, list)
      walk(c, cb, [...p, 'children', c])
    }
  }
  if (isObj(src.value)) for (const [g, body] of Object.entries(src.value)) walk(g, body, [g])
  const done = new Set<string>()
  const visit = (g: string, chain: string[]): boolean => {
    if (done.has(g)) return false
    for (const e of edges.get(g) ?? []) {
      if (chain.includes(e.child)) {
        const loop = [...chain.slice(chain.indexOf(e.child)), e.child]
        err(`group '${e.child}' is its own child: ${loop.join(' -> ')}`, e.at, {
          key: true,
          hint: 'a group may not contain itself through children',
        })
        return true
      }
      if (visit(e.child, [...chain, e.child])) return true
    }
    done.add(g)
    return false
  }
  for (const g of edges.keys()) if (visit(g, [g])) break
}

/** The inventory hosts a `via` value names (literal `user@host:port` hops are not names). */
function viaNames(v: unknown): string[] {
  const list = Array.isArray(v) ? v : v === undefined || v === 'none' ? [] : [v]
  return list.filter((x): x is string => typeof x === 'string' && !/[@:]/.test(x) && !isTemplate(x))
}

/**
 * Problems in the connection settings of an inventory.
 * @example checkConnections(src, inventory) // [RunbookError: port 70000 is outside 1-65535, ...]
 */
export function checkConnections(src: Source, inv: Inventory): RunbookError[] {
  const errors: RunbookError[] = []
  const err = (msg: string, p: YamlPath, opts: { key?: boolean; hint?: string } = {}): void => {
    errors.push(
      new RunbookError('E_INVENTORY', msg, {
        pos: locate(src, p, { key: opts.key }),
        hint: opts.hint,
      }),
    )
  }
  const viaSites = new Map<string, YamlPath>()
  for (const [p, vars] of varSites(src.value)) {
    if (vars.via !== undefined && vars.proxy_command !== undefined)
      err("give either 'via' or 'proxy_command', not both", [...p, 'proxy_command'], { key: true })
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined || v === null || templated(v)) continue
      if (looksLikeSecret(v)) {
        errors.push(misplacedSecret(k, locate(src, [...p, k])))
        continue
      }
      const badName = badVariableName(k)
      if (badName) {
        err(badName.message, [...p, k], { key: true, hint: badName.hint })
        continue
      }
      const hint = misspelt(k)
      if (hint !== undefined) {
        err(`unknown connection setting '${k}'`, [...p, k], { key: true, hint })
        continue
      }
      if (BOOLEAN_KEYS.has(k) && typeof v !== 'boolean') {
        err(`'${k}' is true or false, got ${JSON.stringify(v)}`, [...p, k])
        continue
      }
      const schema = connectionVars.shape[k as keyof typeof connectionVars.shape]
      if (schema === undefined) continue
      const r = schema.safeParse(v)
      if (!r.success) {
        const issue = r.error.issues[0]
        err(`connection setting '${k}': ${describeIssue(issue, v)}`, [
          ...p,
          k,
          ...((issue?.path ?? []) as (string | number)[]),
        ])
        continue
      }
      if (k === 'via') {
        const host = p[p.length - 2] === 'hosts' ? String(p[p.length - 1]) : undefined
        if (host) viaSites.set(host, [...p, k])
        for (const [i, name] of viaNames(v).entries())
          if (!inv.hosts.has(name))
            err(
              `via: no host '${name}' in the inventory`,
              Array.isArray(v) ? [...p, k, i] : [...p, k],
              {
                hint:
                  didYouMean(name, inv.hosts.keys()) ??
                  'name an inventory host, or write user@host or host:22 for a host outside it',
              },
            )
      }
    }
  }
  groupLoops(src, err)
  // a jump chain that comes back to a host it has passed through never connects
  for (const host of inv.hosts.keys()) {
    const chain = [host]
    let cur = host
    for (;;) {
      const next = viaNames(inv.hostVars(cur).via).find((n) => inv.hosts.has(n))
      if (next === undefined) break
      if (chain.includes(next)) {
        if (next === host)
          err(
            `via: the jump chain loops: ${[...chain, next].join(' -> ')}`,
            viaSites.get(host) ?? [],
          )
        break
      }
      chain.push(next)
      cur = next
    }
  }
  return errors
}
