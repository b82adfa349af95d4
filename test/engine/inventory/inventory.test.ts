import { describe, expect, it } from 'vitest'
import { Inventory } from '../../../engine/inventory/inventory.ts'
import { parseYaml } from '../../../engine/runbook/source.ts'

const text = `
all:
  vars: { user: debian, port: 22 }
  hosts:
    jump: { address: 198.51.100.10 }
  children:
    keepalived:
      vars: { user: ubuntu, via: jump }
      hosts:
        kld-vm-1: { address: 192.0.2.11, priority: 120 }
        kld-vm-2: { address: 192.0.2.12 }
    web:
      children:
        prod: { hosts: { web1: {}, web2: { port: 2222 } } }
`

describe('Inventory', () => {
  const { inventory, errors } = Inventory.load(parseYaml('inv.yaml', text).source)

  it('loads groups, children and hosts', () => {
    expect(errors).toEqual([])
    expect(inventory.match('keepalived')).toEqual(['kld-vm-1', 'kld-vm-2'])
    expect(inventory.match('web')).toEqual(['web1', 'web2'])
    expect(inventory.match('all').sort()).toEqual(['jump', 'kld-vm-1', 'kld-vm-2', 'web1', 'web2'])
  })

  it('gives the implicit localhost the variables of all, but no group', () => {
    expect(inventory.hostVars('localhost')).toEqual({ user: 'debian', port: 22 })
    expect(inventory.match('all')).not.toContain('localhost')
  })

  it('merges variables from general to specific', () => {
    expect(inventory.hostVars('kld-vm-1')).toMatchObject({
      user: 'ubuntu',
      port: 22,
      via: 'jump',
      address: '192.0.2.11',
      priority: 120,
    })
    expect(inventory.hostVars('jump')).toMatchObject({ user: 'debian', address: '198.51.100.10' })
    expect(inventory.hostVars('web2').port).toBe(2222)
  })

  it.each([
    ['keepalived:!kld-vm-2', ['kld-vm-1']],
    ['all:&keepalived', ['kld-vm-1', 'kld-vm-2']],
    ['kld-*', ['kld-vm-1', 'kld-vm-2']],
    ['jump,web1', ['jump', 'web1']],
    ['localhost', ['localhost']],
    ['nothing', []],
  ])('pattern %s', (p, want) => {
    expect(inventory.match(p)).toEqual(want)
  })

  it('takes hosts added during a run', () => {
    const inv = Inventory.empty()
    inv.addHost('kld-vm-3', ['keepalived'], { address: '192.0.2.13' })
    expect(inv.match('keepalived')).toEqual(['kld-vm-3'])
    expect(inv.hosts.get('kld-vm-3')?.dynamic).toBe(true)
    expect(inv.hostVars('kld-vm-3').address).toBe('192.0.2.13')
  })

  it('reports bad shapes with positions', () => {
    const r = Inventory.load(parseYaml('bad.yaml', 'all:\n  host:\n    a: {}\n').source)
    expect(r.errors[0]?.message).toMatch(/unknown group keyword 'host'/)
    expect(r.errors[0]?.hint).toMatch(/hosts/)
    expect(r.errors[0]?.pos).toEqual({ file: 'bad.yaml', line: 2, col: 3 })
  })
})
