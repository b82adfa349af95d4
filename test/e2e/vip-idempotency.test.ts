/**
 * Idempotency under timing (issue 11, item 9): the VIP runbook in both VRRP modes (multicast, then
 * `-e unicast=true`), each applied once and then re-applied again and again, alternately with the
 * failover check and with `--skip-tags failover`: every re-apply reports changed=0, and when one
 * does not, the failure names the tasks that changed and their changes. Re-applies per mode:
 * VIP_REAPPLIES (CI runs 2: one of each kind; the ten: `VIP_REAPPLIES=10`).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { labDown, labUp } from '../../lab/index.ts'

const isRoot = process.getuid?.() === 0
const BIN = path.resolve('cli/runbook.js')
const RUNBOOK = path.resolve('runbooks/vip-keepalived.yaml')
const REAPPLIES = Number(process.env['VIP_REAPPLIES'] ?? 2)

/**
 * The tasks of a run's output that changed, each with its change lines: why a re-apply that
 * should change nothing did.
 * @example changedTasks('  changed   kld-vm-1  keepalived.conf (0.2s)\n      ~ file ...') // ['changed kld-vm-1 ...']
 */
export function changedTasks(out: string): string[] {
  const blocks: string[] = []
  let current: string[] | undefined
  for (const line of out.split('\n')) {
    if (/^ {2}changed +\S/.test(line)) {
      current = [line.trim()]
      blocks.push('')
    } else if (current && /^ {6}/.test(line)) current.push(line.trim())
    else current = undefined
    if (current) blocks[blocks.length - 1] = current.join('\n    ')
  }
  return blocks
}

describe.skipIf(!isRoot)('the VIP runbook re-applied: changed=0 every time', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rbt-vip-idem-'))
  const stateDir = path.join(work, 'lab')
  let clouds = ''
  let up = false
  const cli = (args: string[]): { code: number; out: string; secs: number } => {
    const t0 = Date.now()
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 300_000,
    })
    return { code: r.status ?? -1, out: r.stdout + r.stderr, secs: (Date.now() - t0) / 1000 }
  }

  beforeAll(async () => {
    const lab = await labUp({ withHosts: true, stateDir, port: 0, log: () => undefined })
    up = true
    clouds = lab.cloudsYaml
  }, 240_000)

  afterAll(async () => {
    try {
      if (up) {
        const d = cli([
          'destroy',
          RUNBOOK,
          '-e',
          `openstack_clouds_yaml=${clouds}`,
          '--auto-approve',
        ])
        if (d.code !== 0) console.log(d.out)
      }
      if (up || existsSync(path.join(stateDir, 'launch.json')))
        await labDown({ stateDir, log: () => undefined })
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 300_000)

  for (const mode of [
    { name: 'multicast', vars: [] as string[] },
    { name: 'unicast', vars: ['-e', 'unicast=true'] },
  ])
    it(
      `${mode.name}: apply, then ${REAPPLIES} re-applies with and without the failover check`,
      () => {
        const vars = ['-e', `openstack_clouds_yaml=${clouds}`, ...mode.vars]
        const first = cli(['apply', RUNBOOK, ...vars])
        expect(first.code, first.out).toBe(0)
        const times: string[] = []
        for (let i = 1; i <= REAPPLIES; i++) {
          const skip = i % 2 === 1 ? ['--skip-tags', 'failover'] : []
          const r = cli(['apply', RUNBOOK, ...vars, ...skip])
          const what = `re-apply ${i}/${REAPPLIES} (${mode.name}${skip.length ? ', --skip-tags failover' : ', with failover'})`
          expect(r.code, `${what} failed:\n${r.out}`).toBe(0)
          expect(
            changedTasks(r.out),
            `${what} changed something; the changes say why:\n${r.out}`,
          ).toEqual([])
          expect(r.out).toMatch(/apply finished in [\d.]+s: ok, changed=0/)
          times.push(`${r.secs.toFixed(1)} s`)
        }
        console.log(
          `${mode.name}: first apply ${first.secs.toFixed(1)} s; re-applies ${times.join(', ')}`,
        )
      },
      600_000 + REAPPLIES * 90_000,
    )

  it('a VIP held on a port that may not send from it: the next check says exactly that', () => {
    const vars = ['-e', `openstack_clouds_yaml=${clouds}`, '-e', 'unicast=true']
    const os = (...args: string[]): string => {
      const r = spawnSync('openstack', args, {
        env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: 'lab' },
        encoding: 'utf8',
      })
      if (r.status !== 0) throw new Error(`openstack ${args.join(' ')}: ${r.stderr}`)
      return r.stdout.trim()
    }
    // the master's port loses its allowed address pair, as when the task that sets it failed
    const port = os(
      'port',
      'list',
      '--fixed-ip',
      'ip-address=192.0.2.11',
      '-f',
      'value',
      '-c',
      'ID',
    )
    os('port', 'set', '--no-allowed-address', port)
    // only the checks run (the keepalived plays, and so the port task, are left out)
    const r = cli([
      'apply',
      RUNBOOK,
      ...vars,
      '--limit',
      'kld-jumphost-vm',
      '--skip-tags',
      'failover',
    ])
    expect(r.code, r.out).not.toBe(0)
    expect(r.out).toContain(
      "192.0.2.254 does not answer from kld-jumphost-vm within 10 s: kld-vm-1 holds it and answers from its own address 192.0.2.11, so kld-vm-1's port may not send from 192.0.2.254: its allowed address pairs do not include 192.0.2.254",
    )
    // a whole apply sets the pair again, and the VIP answers
    const fixed = cli(['apply', RUNBOOK, ...vars, '--skip-tags', 'failover'])
    expect(fixed.code, fixed.out).toBe(0)
    expect(fixed.out).toMatch(/changed\s+kld-vm-1\s+The port may send from the VIP/)
  }, 300_000)
})
