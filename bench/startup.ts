/**
 * The CLI's start-up as a whole process against a bare `node`: CPU (user + system, from the shell's
 * `times`, to the millisecond) and wall of `node -e 0`, `runbook --version` and `runbook validate`
 * of the VIP runbook, the commands alternating run by run so that all see the same load. Needs no
 * lab. `--base <checkout>` adds another checkout's CLI (e.g. a `git worktree` of main) to compare.
 *
 *   node --import tsx bench/startup.ts [--runs 21] [--base ../main] [--out bench/out/startup.json]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { median } from './median.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '21' },
    base: { type: 'string' },
    out: { type: 'string', default: 'bench/out/startup.json' },
  },
})

interface Case {
  name: string
  /** The program and its arguments. */
  argv: string[]
}

const RUNBOOK = path.resolve('runbooks/vip-keepalived.yaml')
const cliCases = (label: string, root: string): Case[] => {
  // the `runbook` command as users run it (package.json's bin: cli/runbook, which starts node)
  // (a checkout from before the launcher: its cli/runbook.js with node)
  const launcher = path.join(path.resolve(root), 'cli', 'runbook')
  const bin = existsSync(launcher) ? [launcher] : [process.execPath, `${launcher}.js`]
  return [
    { name: `${label}runbook --version`, argv: [...bin, '--version'] },
    { name: `${label}runbook validate vip-keepalived.yaml`, argv: [...bin, 'validate', RUNBOOK] },
  ]
}
const cases: Case[] = [
  { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
  ...(values.base ? cliCases('base: ', values.base) : []),
  ...cliCases('', '.'),
]

/** One run: CPU of the child (bash's `times`, second line) and wall, in ms. */
function measure(argv: string[]): { cpu: number; wall: number } {
  const t = process.hrtime.bigint()
  const r = spawnSync(
    'bash',
    ['-c', '"$@" >/dev/null 2>&1 || echo failed >&2; times', '_', ...argv],
    { encoding: 'utf8' },
  )
  const wall = Number(process.hrtime.bigint() - t) / 1e6
  if (r.stderr.includes('failed')) throw new Error(`${argv.join(' ')} failed`)
  const children = r.stdout.trim().split('\n')[1] ?? ''
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map(
    (m) => Number(m[1]) * 60 + Number(m[2]),
  )
  return { cpu: ((secs[0] ?? NaN) + (secs[1] ?? NaN)) * 1000, wall }
}

// each CLI once first: a rebuilt bundle and its code caches are not what is measured
for (const c of cases) measure(c.argv)
for (const c of cases) measure(c.argv)
const load = [loadavg()[0] ?? 0]
const samples = cases.map(() => ({ cpu: [] as number[], wall: [] as number[] }))
for (let i = 0; i < Number(values.runs); i++)
  cases.forEach((c, k) => {
    const m = measure(c.argv)
    samples[k]?.cpu.push(m.cpu)
    samples[k]?.wall.push(m.wall)
  })
load.push(loadavg()[0] ?? 0)

const rows = cases.map((c, k) => ({
  command: c.name,
  cpu_ms: Math.round(median(samples[k]?.cpu ?? [])),
  wall_ms: Math.round(median(samples[k]?.wall ?? [])),
  cpu_runs: samples[k]?.cpu.map(Math.round),
}))
const width = Math.max(...rows.map((r) => r.command.length))
// NODE_EXTRA_CA_CERTS (set on some machines for every process) makes node parse that bundle as it
// starts: `node -e 0` pays it; runbook's launcher defers it (cli/runbook)
const extraCa = process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'
process.stdout.write(
  `medians of ${values.runs} alternating runs, load ${load.map((l) => l.toFixed(1)).join(' -> ')}, NODE_EXTRA_CA_CERTS ${extraCa}\n`,
)
for (const r of rows)
  process.stdout.write(`${r.command.padEnd(width)}  cpu ${r.cpu_ms} ms  wall ${r.wall_ms} ms\n`)
const out = values.out ?? 'bench/out/startup.json'
mkdirSync(path.dirname(out), { recursive: true })
writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, node_extra_ca_certs: extraCa === 'set', load, rows }, null, 2)}\n`,
)
