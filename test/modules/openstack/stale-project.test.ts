/**
 * Records of a project that no longer exists: a lab torn down and brought up again has a new
 * project id. `destroy` reports those records (skipped, with their IDs and `--forget`), destroys
 * the rest and ends with exit 0; `destroy --forget ID` then drops them. Real CLI, two real
 * in-process labs one after the other.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { makeHostKey, startCloud, type TestCloud } from './harness.ts'

const BIN = path.resolve('cli/runbook.js')

describe('destroy with records of a project that is gone', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-stale-project-'))
  const clouds: TestCloud[] = []
  afterAll(async () => {
    for (const c of clouds) await c.close().catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  })
  // not spawnSync: the labs run in this process and must answer meanwhile
  const cli = (args: string[]): Promise<{ code: number; out: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', CI: 'true' },
      })
      let out = ''
      child.stdout.on('data', (b: Buffer) => (out += b.toString()))
      child.stderr.on('data', (b: Buffer) => (out += b.toString()))
      child.on('exit', (code) => resolve({ code: code ?? -1, out }))
    })
  const records = (): { type: string; id: string }[] => {
    const state = path.join(dir, '.runbook')
    const sub = readdirSync(state).find((d) => d.startsWith('runbook-')) ?? ''
    return (
      JSON.parse(readFileSync(path.join(state, sub, 'journal.json'), 'utf8')) as {
        resources: { type: string; id: string }[]
      }
    ).resources
  }

  it('reports them, ends with exit 0, and --forget drops them', async () => {
    writeFileSync(
      path.join(dir, 'runbook.yaml'),
      `plays:
  - hosts: localhost
    tasks:
      - openstack.keypair: { name: stale-key, public_key: "${makeHostKey().line}" }
      - openstack.port: { name: stale-port, network: mynetwork }
`,
    )
    const first = await startCloud()
    clouds.push(first)
    const made = await cli([
      'apply',
      'runbook.yaml',
      '-e',
      `openstack_clouds_yaml=${first.cloudsYaml}`,
      '-e',
      'openstack_cloud=lab',
    ])
    expect(made.code, made.out).toBe(0)
    const ids = records().map((r) => r.id)
    expect(ids).toHaveLength(2)
    // the lab goes down and comes up again: a new project, the old records mean nothing there
    await first.close()
    const second = await startCloud()
    clouds.push(second)
    const args = ['-e', `openstack_clouds_yaml=${second.cloudsYaml}`, '-e', 'openstack_cloud=lab']
    const d = await cli(['destroy', 'runbook.yaml', ...args, '--auto-approve'])
    expect(d.code, d.out).toBe(0)
    expect(d.out).toMatch(
      new RegExp(
        `2 record\\(s\\) stay in the journal, made in a project this cloud is not: port stale-port was created in project \\w+, but cloud 'lab' is project \\w+ \\(ID ${ids[1]}\\); keypair stale-key was created in project \\w+, but cloud 'lab' is project \\w+ \\(ID ${ids[0]}\\)`,
      ),
    )
    expect(d.out).toMatch(/skipped=2 +unreachable=0\ndestroy finished in [\d.]+s: ok, changed=0/)
    expect(d.out).toContain('`runbook destroy --forget ID` drops a record')
    expect(records()).toHaveLength(2)
    // a second destroy says the same, still exit 0: nothing blocks
    expect((await cli(['destroy', 'runbook.yaml', ...args, '--auto-approve'])).code).toBe(0)
    const f = await cli([
      'destroy',
      'runbook.yaml',
      ...args,
      '--forget',
      ids[0] ?? '',
      '--forget',
      ids[1] ?? '',
    ])
    expect(f.code, f.out).toBe(0)
    expect(f.out).toContain('Forgot keypair stale-key')
    expect(records()).toEqual([])
    const again = await cli(['destroy', 'runbook.yaml', ...args, '--auto-approve'])
    expect(again.out).toContain('Nothing to destroy')
  }, 60_000)
})
