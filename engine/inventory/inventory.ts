/**
 * Inventories in Ansible's YAML shape (`all: { hosts, vars, children }`), host patterns, and
 * hosts that join during a run (a VM the runbook just created joins a group).
 */
import { RunbookError } from '../errors.ts'
import { didYouMean } from '../suggest.ts'
import { locate, type Source, type YamlPath } from '../runbook/source.ts'

/** One host and the groups it belongs to. */
export interface InventoryHost {
  name: string
  vars: Record<string, unknown>
  groups: Set<string>
  /** Added during the run by add_host. */
  dynamic: boolean
}

/** One group. */
export interface InventoryGroup {
  name: string
  vars: Record<string, unknown>
  hosts: Set<string>
  children: Set<string>
  parents: Set<string>
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

const GROUP_KEYS = new Set(['hosts', 'vars', 'children'])

/**
 * Hosts, groups and their variables.
 * @example const inv = Inventory.empty(); inv.addHost({ name: 'web1', groups: ['web'] }); inv.match('web')
 */
export class Inventory {
  readonly hosts = new Map<string, InventoryHost>()
  readonly groups = new Map<string, InventoryGroup>()
  file: string | undefined

  /** An inventory with only the group `all`. */
  static empty(): Inventory {
    const inv = new Inventory()
    inv.group('all')
    return inv
  }

  /** Loads an inventory source, collecting every problem with its position. */
  static load(src: Source): { inventory: Inventory; errors: RunbookError[] } {
    const inv = Inventory.empty()
    inv.file = src.file
    const errors: RunbookError[] = []
    const err = (msg: string, p: YamlPath, key = false, hint?: string): void => {
      errors.push(new RunbookError('E_INVENTORY', msg, { pos: locate(src, p, { key }), hint }))
    }
    const root = src.value
    if (root === null || root === undefined) return { inventory: inv, errors }
    if (!isObj(root)) {
      err('an inventory is a mapping of groups (usually `all:`)', [])
      return { inventory: inv, errors }
    }
    const walkGroup = (
      name: string,
      body: unknown,
      p: YamlPath,
      parent: string | undefined,
    ): void => {
      const g = inv.group(name)
      if (parent && parent !== name) {
        inv.group(parent).children.add(name)
        g.parents.add(parent)
      }
      if (body === null || body === undefined) return
      if (!isObj(body)) {
        err(`group '${name}' must be a mapping with hosts, vars or children`, p)
        return
      }
      for (const k of Object.keys(body)) {
        if (!GROUP_KEYS.has(k))
          err(
            `unknown group keyword '${k}' in group '${name}'`,
            [...p, k],
            true,
            didYouMean(k, GROUP_KEYS) ?? 'hosts go under `hosts:`, variables under `vars:`',
          )
      }
      if (body.vars !== undefined) {
        if (isObj(body.vars)) Object.assign(g.vars, body.vars)
        else err(`vars of group '${name}' must be a mapping`, [...p, 'vars'])
      }
      if (body.hosts !== undefined && body.hosts !== null) {
        if (!isObj(body.hosts))
          err(`hosts of group '${name}' must be a mapping of host names`, [...p, 'hosts'])
        else
          for (const [h, hv] of Object.entries(body.hosts)) {
            if (hv !== null && hv !== undefined && !isObj(hv)) {
              err(`host '${h}' must map to its variables`, [...p, 'hosts', h])
              continue
            }
            const host = inv.host(h)
            Object.assign(host.vars, hv ?? {})
            host.groups.add(name)
            g.hosts.add(h)
          }
      }
      if (body.children !== undefined && body.children !== null) {
        if (!isObj(body.children))
          err(`children of group '${name}' must be a mapping of groups`, [...p, 'children'])
        else
          for (const [c, cb] of Object.entries(body.children))
            walkGroup(c, cb, [...p, 'children', c], name)
      }
    }
    for (const [name, body] of Object.entries(root))
      walkGroup(name, body, [name], name === 'all' ? undefined : 'all')
    for (const h of inv.hosts.values()) {
      h.groups.add('all')
      inv.group('all').hosts.add(h.name)
    }
    return { inventory: inv, errors }
  }

  /**
   * Counts the changes made through `group`, `host` and `addHost`: what is derived from the
   * hosts and groups (the `groups` variable) is computed again only when it moved.
   */
  get revision(): number {
    return this.changes
  }
  private changes = 0

  /** The group of that name, created if missing. */
  group(name: string): InventoryGroup {
    let g = this.groups.get(name)
    if (!g) {
      g = { name, vars: {}, hosts: new Set(), children: new Set(), parents: new Set() }
      this.groups.set(name, g)
      this.changes++
    }
    return g
  }

  /** The host of that name, created if missing. */
  host(name: string): InventoryHost {
    let h = this.hosts.get(name)
    if (!h) {
      h = { name, vars: {}, groups: new Set(), dynamic: false }
      this.hosts.set(name, h)
      this.changes++
    }
    return h
  }

  /** Adds (or updates) a host during a run. */
  addHost(name: string, groups: string[] = [], vars: Record<string, unknown> = {}): InventoryHost {
    this.changes++
    const h = this.host(name)
    if (!this.groups.get('all')?.hosts.has(name)) h.dynamic = true
    Object.assign(h.vars, vars)
    for (const g of ['all', ...groups]) {
      h.groups.add(g)
      const grp = this.group(g)
      grp.hosts.add(name)
      if (g !== 'all' && !grp.parents.size) {
        grp.parents.add('all')
        this.group('all').children.add(g)
      }
    }
    return h
  }

  /** All hosts of a group, through its children. */
  groupHosts(name: string, seen = new Set<string>()): string[] {
    const g = this.groups.get(name)
    if (!g || seen.has(name)) return []
    seen.add(name)
    const out = [...g.hosts]
    for (const c of g.children)
      for (const h of this.groupHosts(c, seen)) if (!out.includes(h)) out.push(h)
    return out
  }

  /** Group names of a host, including ancestors, from the most general to the most specific. */
  ancestry(host: string): string[] {
    const h = this.hosts.get(host)
    if (!h) return []
    const depth = (g: string, seen = new Set<string>()): number => {
      const grp = this.groups.get(g)
      if (!grp || !grp.parents.size || seen.has(g)) return 0
      seen.add(g)
      return 1 + Math.max(...[...grp.parents].map((p) => depth(p, seen)))
    }
    const all = new Set<string>()
    const visit = (g: string): void => {
      if (all.has(g)) return
      all.add(g)
      for (const p of this.groups.get(g)?.parents ?? []) visit(p)
    }
    for (const g of h.groups) visit(g)
    return [...all].sort((a, b) => depth(a) - depth(b) || a.localeCompare(b))
  }

  /** A host's inventory variables: `all` < parent groups < child groups < the host's own. */
  hostVars(host: string): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    // The implicit localhost is in no group, but takes `all`'s variables, as in Ansible.
    if (!this.hosts.has(host) && (host === 'localhost' || host === '127.0.0.1'))
      return { ...this.groups.get('all')?.vars }
    for (const g of this.ancestry(host)) Object.assign(out, this.groups.get(g)?.vars)
    Object.assign(out, this.hosts.get(host)?.vars)
    return out
  }

  /**
   * Hosts matching an Ansible-style pattern: `all`, `web`, `web1,web2`, `web:db`, `web:!db1`,
   * `web:&prod`, `kld-*`. `localhost` always matches, as an implicit local host.
   */
  match(pattern: string): string[] {
    const terms = pattern
      .split(/[:,]/)
      .map((t) => t.trim())
      .filter(Boolean)
    let result: string[] = []
    for (const t of terms) {
      if (t.startsWith('!')) {
        const ex = new Set(this.term(t.slice(1)))
        result = result.filter((h) => !ex.has(h))
      } else if (t.startsWith('&')) {
        const keep = new Set(this.term(t.slice(1)))
        result = result.filter((h) => keep.has(h))
      } else for (const h of this.term(t)) if (!result.includes(h)) result.push(h)
    }
    return result
  }

  private term(t: string): string[] {
    if (t === 'all' || t === '*') return [...this.hosts.keys()]
    if (this.groups.has(t)) return this.groupHosts(t)
    if (this.hosts.has(t)) return [t]
    if (t === 'localhost' || t === '127.0.0.1') return [t]
    if (t.includes('*') || t.includes('?')) {
      const re = new RegExp(
        `^${t
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      )
      const hosts = [...this.hosts.keys()].filter((h) => re.test(h))
      const groups = [...this.groups.keys()]
        .filter((g) => re.test(g))
        .flatMap((g) => this.groupHosts(g))
      return [...new Set([...hosts, ...groups])]
    }
    return []
  }

  /** Every name a pattern term may refer to, for suggestions. */
  names(): string[] {
    return [...this.groups.keys(), ...this.hosts.keys()]
  }
}
