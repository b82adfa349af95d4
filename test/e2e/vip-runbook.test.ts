/**
 * The main job: runbooks/vip-keepalived.yaml (seed 001) against the embedded lab, through the real
 * CLI, exactly as the README runs it — plan on a fresh cloud, apply (which proves failover), apply
 * again with nothing to change, plan in sync, destroy, and nothing left behind.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { labDown, labUp } from '../../lab/index.ts'

const isRoot = process.getuid?.() === 0
const BIN = path.resolve('cli/runbook.js')
const RUNBOOK = path.resolve('runbooks/vip-keepalived.yaml')

describe.skipIf(!isRoot)('runbooks/vip-keepalived.yaml against the lab', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'rbt-vip-'))
  const stateDir = path.join(work, 'lab')
  let clouds = ''
  let up = false
  const cli = (args: string[]): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 300_000,
    })
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
  }
  const vars = (): string[] => ['-e', `openstack_clouds_yaml=${clouds}`]

  beforeAll(async () => {
    const lab = await labUp({ withHosts: true, stateDir, port: 0, log: () => undefined })
    up = true
    clouds = lab.cloudsYaml
  }, 240_000)

  afterAll(async () => {
    try {
      if (up || existsSync(path.join(stateDir, 'launch.json')))
        await labDown({ stateDir, log: () => undefined })
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }, 120_000)

  it('plans every step on a fresh cloud, and saves the plan', () => {
    const plan = cli(['plan', RUNBOOK, ...vars(), '--detailed-exitcode', '--out', 'fresh.plan'])
    expect(plan.err).toBe('')
    expect(plan.code).toBe(2)
    for (const line of [
      '+ port kld-vip',
      '+ server kld-vm-1',
      '+ server kld-vm-2',
      '+ server kld-jumphost-vm',
    ])
      expect(plan.out).toContain(line)
    // the key file is made by the task before (ssh-keygen), so the keypair is known after apply
    expect(plan.out).toMatch(
      /~ openstack\.keypair {2}\(public key file \S+ is known only after apply\)/,
    )
    expect(plan.out).toMatch(
      /# keepalived\.conf for this node of the cluster \[kld-vm-2\] {2}\(known after apply\)/,
    )
    expect(plan.out).toMatch(
      /# Stop the master's keepalived.*\[kld-jumphost-vm\] {2}\(check\)\n {2}! failover test of 192\.0\.2\.254/,
    )
    expect(plan.out).toMatch(
      /Plan: 5 to create, 2 to change, 0 to destroy, 1 to run\. \d+ more tasks known after apply .*\. 2 checks will run on apply\./,
    )
  })

  it('applies the saved plan: the whole procedure, and proves the VIP survives the loss of its master', () => {
    const r = cli(['apply', 'fresh.plan'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/The saved plan fresh\.plan still holds \(\d+ changes\); applying it\./)
    // the lab's Debian 12 image has no keepalived: apt really installs it from the lab's mirror
    expect(r.out).toMatch(/changed\s+kld-vm-1\s+keepalived is installed/)
    expect(r.out).toMatch(/changed\s+kld-vm-2\s+keepalived is installed/)
    expect(r.out).toMatch(
      /VIP 192\.0\.2\.254 \(stop\): kld-vm-1 -> kld-vm-2 -> kld-vm-1; failover [\d.]+ s, failback [\d.]+ s; longest gap \d+ ms \(limit 3000\)/,
    )
    expect(r.out).not.toMatch(/auth_pass \S+[^*\s]/)
  }, 300_000)

  it('changes nothing on a second apply, and plans nothing', () => {
    const again = cli(['apply', RUNBOOK, ...vars()])
    expect(again.code, again.out + again.err).toBe(0)
    expect(again.out).toMatch(/apply finished in [\d.]+s: ok, changed=0/)
    // the keepalived ports may send from the VIP alone, not from the whole /24 as seed 001 writes
    const os = (...args: string[]): string =>
      spawnSync('openstack', args, {
        env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: 'lab' },
        encoding: 'utf8',
      }).stdout
    const allowed = os('port', 'list', '-f', 'value', '-c', 'ID')
      .trim()
      .split('\n')
      .map((id) => os('port', 'show', id, '-f', 'json', '-c', 'allowed_address_pairs'))
      .filter((j) => j.includes('192.0.2.254'))
    expect(allowed).toHaveLength(2)
    for (const j of allowed) expect(j).toMatch(/"ip_address": "192\.0\.2\.254(\/32)?"/)
    const plan = cli(['plan', RUNBOOK, ...vars(), '--detailed-exitcode'])
    expect(plan.code, plan.out + plan.err).toBe(0)
    expect(plan.out).toMatch(
      /No changes\. The infrastructure matches the runbook\. 1 check will run on apply\./,
    )
  }, 300_000)

  it('switches to unicast VRRP (seed 003) with one variable, and still survives the loss of its master', () => {
    const r = cli(['apply', RUNBOOK, ...vars(), '-e', 'unicast=true'])
    expect(r.code, r.out + r.err).toBe(0)
    expect(r.out).toMatch(/changed\s+kld-vm-1\s+keepalived\.conf/)
    expect(r.out).toMatch(/restart keepalived \[handler\]/)
    expect(r.out).toMatch(/VIP 192\.0\.2\.254 \(stop\): kld-vm-1 -> kld-vm-2 -> kld-vm-1/)
    const again = cli(['plan', RUNBOOK, ...vars(), '-e', 'unicast=true', '--detailed-exitcode'])
    expect(again.code, again.out).toBe(0)
  }, 300_000)

  it('destroys what it created, and the cloud is as fresh as before', () => {
    const d = cli(['destroy', RUNBOOK, ...vars(), '--auto-approve'])
    expect(d.code, d.out + d.err).toBe(0)
    // 6 cloud resources; the two keepalived.conf records are dropped, not edited, since their
    // servers go in the same destroy (issue 11)
    expect(d.out).toMatch(/destroy finished in [\d.]+s: ok, changed=6/)
    for (const vm of ['kld-vm-1', 'kld-vm-2'])
      expect(d.out).toContain(
        `dropped the record of file /etc/keepalived/keepalived.conf on ${vm}: its server ${vm} was destroyed by this run`,
      )
    const journal = JSON.parse(
      readFileSync(
        path.join(
          work,
          '.runbook',
          spawnSync('ls', [path.join(work, '.runbook')], { encoding: 'utf8' })
            .stdout.split('\n')
            .find((l) => l.startsWith('vip-keepalived-')) ?? '',
          'journal.json',
        ),
        'utf8',
      ),
    ) as { resources: unknown[] }
    expect(journal.resources).toEqual([])
    const servers = spawnSync('openstack', ['server', 'list', '-f', 'value', '-c', 'Name'], {
      env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds, OS_CLOUD: 'lab' },
      encoding: 'utf8',
    })
    expect(servers.stdout.trim()).toBe('')
    const plan = cli(['plan', RUNBOOK, ...vars(), '--detailed-exitcode'])
    expect(plan.code).toBe(2)
  }, 300_000)
})
