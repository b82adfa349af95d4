/**
 * The CLI's registry loads the OpenStack and keepalived families only when a runbook names one of
 * their modules. Whatever it loads, a runbook prepares exactly as with every module loaded: the
 * same tasks, the same errors (did-you-mean included), from the runbook or a file it imports.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../engine/errors.ts'
import { explainUnreachable } from '../../engine/execute/unreachable.ts'
import { ExpandableRegistry, loadModules, type ModuleRegistry } from '../../engine/module.ts'
import { prepare } from '../../engine/prepare.ts'
import { moduleRegistry } from '../../modules/catalog.ts'
import { registry as everyModule } from '../../modules/index.ts'
import { command } from '../../modules/host/command.ts'
import { moduleContext } from '../../engine/execute/context.ts'

const root = mkdtempSync(path.join(tmpdir(), 'rb-lazy-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let n = 0
/** A runbook (and the files it imports) in a directory of its own. */
function runbook(files: Record<string, string>): string {
  const dir = path.join(root, String(n++))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), text)
  }
  return path.join(dir, 'rb.yaml')
}

/** What prepare makes of a runbook with this registry: its tasks' modules, or its errors. */
async function outcome(file: string, registry: ModuleRegistry): Promise<unknown> {
  try {
    const p = await prepare({ runbookFile: file, registry, env: {}, stateRoot: root })
    return JSON.stringify(p.runbook.plays, (k, v: unknown) => (k === 'file' ? undefined : v))
  } catch (e) {
    if (!(e instanceof RunbookErrors)) throw e
    return e.errors.map((x) => [x.code, x.message, x.hint, x.pos?.line, x.pos?.col])
  }
}

const families = (r: ExpandableRegistry): string[] =>
  ['openstack.port', 'keepalived.config'].filter((m) => r.has(m))

const HOST = `plays:
  - hosts: localhost
    tasks:
      - command: "true"
      - debug: { msg: hi }
`

describe('module families loaded on demand', () => {
  it.each([
    ['host tasks only', { 'rb.yaml': HOST }, []],
    [
      'an OpenStack module in an imported file',
      {
        'rb.yaml': 'plays:\n  - hosts: localhost\n    tasks:\n      - import_tasks: t/cloud.yaml\n',
        't/cloud.yaml': '- openstack.port: { name: vip, network: net }\n',
      },
      ['openstack.port'],
    ],
    [
      'both families, one of them free-form (a string argument)',
      {
        'rb.yaml': `plays:
  - hosts: localhost
    tasks:
      - openstack.port: { name: vip, network: net }
      - keepalived.config: nonsense
`,
      },
      ['openstack.port', 'keepalived.config'],
    ],
    [
      "a misspelt module of a family (did-you-mean needs every module's name)",
      {
        'rb.yaml':
          'plays:\n  - hosts: localhost\n    tasks:\n      - openstack.prot: { name: vip }\n',
      },
      ['openstack.port', 'keepalived.config'],
    ],
    [
      'a misspelt host module',
      { 'rb.yaml': 'plays:\n  - hosts: localhost\n    tasks:\n      - comand: "true"\n' },
      ['openstack.port', 'keepalived.config'],
    ],
  ])('%s: prepared as with every module', async (_what, files, loaded) => {
    const file = runbook(files)
    const lazy = moduleRegistry()
    expect(await outcome(file, lazy)).toEqual(await outcome(file, everyModule))
    expect(families(lazy)).toEqual(loaded)
  })

  it('a misspelt module still gets its did-you-mean', async () => {
    const file = runbook({
      'rb.yaml':
        'plays:\n  - hosts: localhost\n    tasks:\n      - openstack.prot: { name: vip }\n',
    })
    const errors = (await outcome(file, moduleRegistry())) as unknown[][]
    expect(errors[0]?.slice(0, 2)).toEqual(['E_UNKNOWN_MODULE', "unknown module 'openstack.prot'"])
    expect(String(errors[0]?.[2])).toContain('openstack.port')
  })

  it('loads a family once, however many ask at once; loadModules leaves other registries be', async () => {
    let loads = 0
    const r = new ExpandableRegistry(
      [command],
      [
        {
          prefix: 'fam',
          load: async () => {
            loads++
            await new Promise((res) => setTimeout(res, 10))
            return [{ ...command, name: 'fam.one' }]
          },
        },
      ],
    )
    expect(r.unloaded('fam.one')).toBe(true)
    expect(r.unloaded('command')).toBe(false)
    await Promise.all([r.load(['fam.one']), r.load(['fam.two']), loadModules(r)])
    expect(loads).toBe(1)
    expect([...r.keys()]).toEqual(['command', 'fam.one'])
    expect(r.complete).toBe(true)
    await loadModules(everyModule, ['openstack.port'])
  })

  it('a failed connect asks every module, loading the families first', async () => {
    const r = new ExpandableRegistry(
      [command],
      [
        {
          prefix: 'cloud',
          load: async () => [
            {
              ...command,
              name: 'cloud.server',
              explainUnreachable: async () => ({
                message: 'server web1 is SHUTOFF',
                lasting: true,
              }),
            },
          ],
        },
      ],
    )
    const ctx = moduleContext({
      host: 'web1',
      module: 'command',
      task: 't',
      vars: {},
      baseDir: root,
      check: false,
      become: undefined,
      conn: () => Promise.reject(new Error('no')),
      connectTo: () => Promise.reject(new Error('no')),
      records: undefined,
      inventory: { addHost: () => undefined, hostVars: () => undefined },
      cache: new Map(),
      shared: new Map(),
      progress: () => undefined,
      secret: () => undefined,
    })
    const why = await explainUnreachable(r, ctx, 'web1', () => ({}))
    expect(why?.message).toBe('server web1 is SHUTOFF')
  })
})
