/**
 * A ModuleContext for module tests: a real connection (local by default), plain-object variables,
 * an in-memory journal and inventory.
 */
import Handlebars from 'handlebars'
import type { Connection } from '../../engine/connection/types.ts'
import { LocalConnection } from '../../engine/connection/local.ts'
import type { HostSpec, ModuleContext, ResourceRecord } from '../../engine/module.ts'

/** Options of a test context. */
export interface TestContextOptions {
  conn?: Connection
  vars?: Record<string, unknown>
  check?: boolean
  baseDir?: string
  /** Connections to other hosts, for ctx.connectTo. */
  others?: Record<string, Connection>
}

/** A test context and what the module did to it. */
export interface TestContext extends ModuleContext {
  records: ResourceRecord[]
  addedHosts: HostSpec[]
  secrets: string[]
  messages: string[]
}

/** Makes a ModuleContext for tests. */
export function testContext(opts: TestContextOptions = {}): TestContext {
  const conn = opts.conn ?? new LocalConnection('localhost')
  const vars = opts.vars ?? {}
  const shared = new Map<string, unknown>()
  const records: ResourceRecord[] = []
  const addedHosts: HostSpec[] = []
  const secrets: string[] = []
  const messages: string[] = []
  return {
    host: conn.host,
    conn: async () => conn,
    connectTo: async (host) => {
      const c = opts.others?.[host]
      if (!c) throw new Error(`no connection to ${host} in this test context`)
      return c
    },
    become: undefined,
    vars,
    baseDir: opts.baseDir ?? process.cwd(),
    check: opts.check ?? false,
    render: (t, extra) =>
      Handlebars.compile(t, { noEscape: true, strict: true })({ ...vars, ...extra }),
    evaluate: (e) => {
      throw new Error(`evaluate is not available in this test context: ${e}`)
    },
    cache: new Map(),
    shared: <T>(key: string, create: () => T): T => {
      if (!shared.has(key)) shared.set(key, create())
      return shared.get(key) as T
    },
    journal: {
      find: (module, type, id) =>
        records.filter(
          (r) => r.module === module && r.type === type && (id === undefined || r.id === id),
        ),
      record: async (r) => {
        records.push({
          ...r,
          module: 'test',
          host: conn.host,
          task: 'test',
          createdAt: new Date().toISOString(),
        })
      },
      forget: async (type, id) => {
        const i = records.findIndex((r) => r.type === type && r.id === id)
        if (i >= 0) records.splice(i, 1)
      },
    },
    inventory: {
      addHost: (spec) => addedHosts.push(spec),
      hostVars: () => undefined,
    },
    progress: (m) => messages.push(m),
    secret: (v) => secrets.push(v),
    signal: new AbortController().signal,
    records,
    addedHosts,
    secrets,
    messages,
  }
}
