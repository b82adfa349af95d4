/**
 * A ModuleContext for module tests: a real connection (local by default), plain-object variables,
 * records and added hosts in memory. Made by the engine's own builder, so a module sees in a test
 * what it sees in a run.
 */
import type { Connection } from '../../engine/connection/types.ts'
import { LocalConnection } from '../../engine/connection/local.ts'
import { MemoryRecords, moduleContext } from '../../engine/execute/context.ts'
import type { HostSpec, ModuleContext, ResourceRecord } from '../../engine/module.ts'

/** Options of a test context. */
export interface TestContextOptions {
  conn?: Connection
  vars?: Record<string, unknown>
  check?: boolean
  baseDir?: string
  /** Connections to other hosts, for ctx.connectTo. */
  others?: Record<string, Connection>
  /** The module its records are written for ('test' unless given). */
  module?: string
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
  const store = new MemoryRecords()
  const addedHosts: HostSpec[] = []
  const secrets: string[] = []
  const messages: string[] = []
  const ctx = moduleContext({
    host: conn.host,
    module: opts.module ?? 'test',
    task: 'test',
    vars: opts.vars ?? {},
    baseDir: opts.baseDir ?? process.cwd(),
    check: opts.check ?? false,
    become: undefined,
    conn: async () => conn,
    connectTo: async (host) => {
      const c = opts.others?.[host]
      if (!c) throw new Error(`no connection to ${host} in this test context`)
      return c
    },
    records: store,
    inventory: { addHost: (spec) => addedHosts.push(spec), hostVars: () => undefined },
    cache: new Map(),
    shared: new Map(),
    progress: (m) => messages.push(m),
    secret: (v) => secrets.push(v),
  })
  return { ...ctx, records: store.records, addedHosts, secrets, messages }
}
