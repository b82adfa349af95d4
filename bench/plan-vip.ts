/**
 * `runbook plan` of the whole VIP runbook on a cloud already in sync (the lab, applied once): wall
 * time of the whole command and the API requests it makes (from `--json`'s summary), with one
 * `--timings` table for the notes. Run under the lab's lock (bench/run.ts does):
 *
 *   flock /tmp/runbook-e2e.lock node --import tsx bench/plan-vip.ts --runs 5 --out r.json
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { labDown, labUp } from '../lab/index.ts'
import { median } from './median.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/out/plan-vip.json' },
  },
})
// the `runbook` command as users run it (package.json's bin: cli/runbook, which starts node)
const BIN = path.resolve('cli/runbook')
const RUNBOOK = path.resolve('runbooks/vip-keepalived.yaml')
const work = mkdtempSync(path.join(tmpdir(), 'rb-bench-plan-'))
const stateDir = path.join(work, 'lab')

const cli = (
  args: string[],
  extraEnv: Record<string, string> = {},
): { ms: number; code: number; out: string } => {
  const t = process.hrtime.bigint()
  const r = spawnSync(BIN, args, {
    cwd: work,
    // its own connection keeper, ended below
    env: {
      ...process.env,
      NO_COLOR: '1',
      RUNBOOK_KEEPER_DIR: path.join(work, 'keeper'),
      ...extraEnv,
    },
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  const ms = Number((process.hrtime.bigint() - t) / 1_000_000n)
  return { ms, code: r.status ?? -1, out: `${r.stdout}${r.stderr}` }
}

const load = [loadavg()[0] ?? 0]
let up = false
try {
  const lab = await labUp({ withHosts: true, stateDir, port: 0, log: () => undefined })
  up = true
  const vars = ['-e', `openstack_clouds_yaml=${lab.cloudsYaml}`]
  const applied = cli(['apply', RUNBOOK, ...vars])
  if (applied.code !== 0) throw new Error(`the VIP runbook did not apply:\n${applied.out}`)
  const walls: number[] = []
  const requests: number[] = []
  for (let i = 0; i < Number(values.runs); i++) {
    const r = cli(['plan', RUNBOOK, ...vars, '--json'])
    const summary = JSON.parse(r.out.trim().split('\n').pop() ?? '{}') as {
      api_requests?: number
      plan?: Record<string, number>
    }
    if (r.code !== 0) throw new Error(`plan failed:\n${r.out}`)
    walls.push(r.ms)
    requests.push(summary.api_requests ?? -1)
  }
  const table = cli(['plan', RUNBOOK, ...vars, '--timings'], { RUNBOOK_TRACE_API: '1' })
  cli(['destroy', RUNBOOK, ...vars, '--auto-approve'])
  load.push(loadavg()[0] ?? 0)
  const result = {
    workload: 'plan-vip',
    runs: walls,
    median_ms: median(walls),
    api_requests: requests,
    load,
    timings: table.out.slice(table.out.indexOf('Timings')),
    requests: table.out.split('\n').filter((l) => l.startsWith('api ')),
  }
  process.stdout.write(`plan of the VIP runbook: ${result.median_ms} ms, ${requests[0]} requests\n`)
  writeFileSync(values.out ?? 'bench/out/plan-vip.json', `${JSON.stringify(result, null, 2)}\n`)
} finally {
  cli(['disconnect'])
  if (up || existsSync(path.join(stateDir, 'launch.json')))
    await labDown({ stateDir, log: () => undefined })
  rmSync(work, { recursive: true, force: true })
}
