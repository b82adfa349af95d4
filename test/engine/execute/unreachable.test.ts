/**
 * A connect that fails is explained by the modules that know why (openstack.server: "server
 * kld-vm-2 is SHUTOFF") instead of the channel's error: for the host, or for a jump host on its
 * way; a lasting reason stops the retries a just-added host gets. The engine knows no module.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createRegistry, defineModule, type UnreachableHost } from '../../../engine/module.ts'
import type { RunEvent } from '../../../engine/report/events.ts'
import { registry as allModules } from '../../../modules/index.ts'
import { runYaml } from '../../helpers/run.ts'

type End = Extract<RunEvent, { type: 'task_end' }>

/** A module that knows one stopped machine, and records whom it was asked about. */
function knowing(stopped: string, lasting: boolean) {
  const asked: UnreachableHost[] = []
  const mod = defineModule({
    name: 'power',
    summary: 'test',
    example: '- power: {}',
    params: z.strictObject({}),
    gather: async () => null,
    plan: () => [],
    apply: async () => ({ changed: false }),
    async explainUnreachable(_ctx, host) {
      asked.push(host)
      return host.name === stopped
        ? { message: `server ${stopped} is SHUTOFF`, hint: 'start it', lasting }
        : undefined
    },
  })
  return { mod, asked }
}

const yaml = `
plays:
  - hosts: localhost
    tasks:
      - add_host: { name: jump, address: 192.0.2.5, user: debian }
      - add_host: { name: vm2, groups: [vms], address: 192.0.2.12, user: debian, via: jump }
  - hosts: vms
    tasks:
      - name: reach it
        command: "true"
`

async function run(stopped: string, lasting: boolean) {
  const { mod, asked } = knowing(stopped, lasting)
  const started = Date.now()
  const r = await runYaml(yaml, { registry: createRegistry([...allModules.values(), mod]) })
  const end = r.events.find((e): e is End => e.type === 'task_end' && e.host === 'vm2')
  return { end, asked, ms: Date.now() - started, result: r.result }
}

describe('an unreachable host, explained by the modules', () => {
  it('says what the module knows, with its hint, and does not retry a just-added host', async () => {
    const { end, asked, ms, result } = await run('vm2', true)
    expect(end?.status).toBe('unreachable')
    expect(end?.msg).toMatch(/^server vm2 is SHUTOFF \(/)
    expect(result.hosts['vm2']?.unreachable).toBe(1)
    expect(asked[0]).toEqual({ name: 'vm2', address: '192.0.2.12' })
    // a lasting reason: no 60 s of retries
    expect(ms).toBeLessThan(5000)
  })

  it('names the jump host when that is what is down', async () => {
    const { end, asked } = await run('jump', true)
    expect(end?.msg).toMatch(/^server jump is SHUTOFF/)
    expect(asked.map((h) => h.name)).toEqual(['vm2', 'jump'])
  })

  it('keeps the channel error when no module knows the host', async () => {
    const { mod, asked } = knowing('elsewhere', true)
    const r = await runYaml('plays:\n  - hosts: vm3\n    tasks:\n      - command: "true"\n', {
      registry: createRegistry([...allModules.values(), mod]),
      inventory: 'all:\n  hosts:\n    vm3: { address: 192.0.2.13 }\n',
    })
    const end = r.events.find((e): e is End => e.type === 'task_end' && e.host === 'vm3')
    expect(end?.status).toBe('unreachable')
    expect(end?.msg).toMatch(/no SSH support/)
    expect(end?.msg).not.toMatch(/SHUTOFF/)
    expect(asked).toEqual([{ name: 'vm3', address: '192.0.2.13' }])
  })
})
