import { describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { MemoryRecords, moduleContext, type ContextParts } from '../../../engine/execute/context.ts'
import { unknown, UnknownValueError } from '../../../engine/vars/unknown.ts'

const local = new LocalConnection('localhost')

function parts(over: Partial<ContextParts> = {}): ContextParts {
  return {
    host: 'lvs-1',
    module: 'file',
    task: 'write it',
    vars: { name: 'VI_1', peers: ['192.0.2.11', '192.0.2.12'] },
    baseDir: '/tmp',
    check: false,
    become: undefined,
    conn: async () => local,
    connectTo: async () => local,
    records: new MemoryRecords(),
    inventory: { addHost: () => undefined, hostVars: () => undefined },
    cache: new Map(),
    shared: new Map(),
    progress: () => undefined,
    secret: () => undefined,
    ...over,
  }
}

describe('moduleContext', () => {
  it('stamps records with module, host and task; one record per module, type, id and host', async () => {
    const store = new MemoryRecords()
    const ctx = moduleContext(parts({ records: store }))
    await ctx.journal.record({ type: 'file', id: '/etc/a' })
    await ctx.journal.record({ type: 'file', id: '/etc/a' })
    expect(store.records).toHaveLength(1)
    expect(store.records[0]).toMatchObject({ module: 'file', host: 'lvs-1', task: 'write it' })
    expect(ctx.journal.find('file', 'file', '/etc/a')).toHaveLength(1)
    await ctx.journal.forget('file', '/etc/a')
    expect(store.records).toEqual([])
  })

  it('reads the journal but never writes it in check mode', async () => {
    const store = new MemoryRecords()
    await store.record({
      module: 'file',
      type: 'file',
      id: '/etc/a',
      host: 'lvs-1',
      task: 'earlier',
      createdAt: '2026-12-07T00:00:00.000Z',
    })
    const ctx = moduleContext(parts({ records: store, check: true }))
    await ctx.journal.record({ type: 'file', id: '/etc/b' })
    await ctx.journal.forget('file', '/etc/a')
    expect(store.records.map((r) => r.id)).toEqual(['/etc/a'])
    expect(ctx.journal.find('file', 'file')).toHaveLength(1)
  })

  it('without a store, finds nothing and keeps nothing', async () => {
    const ctx = moduleContext(parts({ records: undefined }))
    await ctx.journal.record({ type: 'file', id: '/etc/a' })
    expect(ctx.journal.find('file', 'file')).toEqual([])
  })

  it('renders and evaluates with the task variables, extra ones on top', () => {
    const ctx = moduleContext(parts())
    expect(ctx.render('{{name}} {{prio}}', { prio: 100 })).toBe('VI_1 100')
    expect(ctx.evaluate('peers | length == 2')).toBe(true)
    expect(ctx.evaluate('name == x', { x: 'VI_1' })).toBe(true)
  })

  it('a template that needs a value known after apply throws UnknownValueError', () => {
    const ctx = moduleContext(parts({ vars: { vip: unknown('vip') } }))
    expect(() => ctx.render('address {{vip}}')).toThrow(UnknownValueError)
  })

  it('shares singletons through the map it is given', () => {
    const shared = new Map<string, unknown>()
    const a = moduleContext(parts({ shared }))
    const b = moduleContext(parts({ shared, host: 'lvs-2' }))
    expect(b.shared('client', () => ({ n: 2 }))).toBe(a.shared('client', () => ({ n: 1 })))
  })
})
