/**
 * `npm run bench`: the host part of the VIP procedure against Ansible at 2, 10 and 50 hosts, each
 * size in its own process under the lab's machine-wide lock (bench/host-procedure.ts brings its
 * hosts up and down), then bench/results.md and bench/results.json from the figures.
 *
 *   npm run bench [-- --hosts 2,10,50 --runs 5]
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '2,10,50' },
    runs: { type: 'string' },
    lock: { type: 'string', default: '/tmp/runbook-e2e.lock' },
  },
})
const sizes = (values.hosts ?? '2,10,50').split(',').map(Number)
// Ansible takes about 3 s a host on this machine: fewer runs at 50 keep a lock hold short.
const runsFor = (n: number): number => Number(values.runs ?? (n >= 50 ? 2 : n >= 10 ? 3 : 5))

interface Row {
  workload: string
  hosts: number
  runbook_ms: number
  ansible_ms: number
  ratio: number
  runbook_runs: number[]
  ansible_runs: number[]
}
interface SizeResult {
  hosts: number
  runs: number
  forks: number
  load: number[]
  rows: Row[]
  peak_rss_mb: number
  timings?: Record<string, number>
  api_requests?: number
}

mkdirSync('bench/out', { recursive: true })
const results: SizeResult[] = []
for (const n of sizes) {
  const out = path.resolve(`bench/out/host-procedure-${n}.json`)
  const args = ['--import', 'tsx', 'bench/host-procedure.ts', '--hosts', String(n)]
  args.push('--runs', String(runsFor(n)), '--out', out)
  process.stdout.write(`${n} hosts…\n`)
  const r = spawnSync(
    'flock',
    [values.lock ?? '/tmp/runbook-e2e.lock', process.execPath, ...args],
    {
      stdio: 'inherit',
    },
  )
  if (r.status !== 0) throw new Error(`the bench at ${n} hosts failed (exit ${r.status})`)
  results.push(JSON.parse(readFileSync(out, 'utf8')) as SizeResult)
}

const rows = results.flatMap((s) => s.rows)
writeFileSync(
  'bench/results.json',
  `${JSON.stringify({ date: new Date().toISOString(), rows: rows.map(({ runbook_runs: _r, ansible_runs: _a, ...x }) => x) }, null, 2)}\n`,
)
const ansible = spawnSync('ansible', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]
const cell = (x: Row): string =>
  `| ${x.workload === 'plan' ? 'plan / --check' : x.workload} | ${x.hosts} | ${x.runbook_ms} ms | ${x.ansible_ms} ms | ${x.ratio}× |`
const perSize = results.map(
  (s) =>
    `| ${s.hosts} | ${s.runs} | ${s.forks} | ${s.load.map((l) => l.toFixed(1)).join(' → ')} | ${s.peak_rss_mb} MB | ${s.api_requests ?? 0} | ${
      s.timings
        ? `${s.timings.commands} commands (${s.timings.commands_ms} ms summed), SSH wait ${s.timings.ssh_wait_ms} ms summed`
        : ''
    } |`,
)
writeFileSync(
  'bench/results.md',
  `# The host part of the VIP procedure: runbook vs Ansible

Measured by \`npm run bench\` (bench/run.ts, bench/host-procedure.ts) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC,
this machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version},
${ansible}. Lab hosts (namespaces with their own sshd, Debian's packages) behind one jumphost reached
through its floating IP. Tasks: discover the interface (command), install keepalived (apt),
configure it (template), start it (service), check it (command), with become. Ansible runs at its
fastest settings: pipelining, ControlPersist, facts off; both tools run every host at once (forks
below). Wall time of the whole command (process start to exit), median of the runs; the two tools
alternate run by run so both see the same load (other engineers were using this machine's CPUs:
the load average before → after each size is given).

| workload | hosts | runbook | Ansible | Ansible / runbook |
|---|---|---|---|---|
${rows.map(cell).join('\n')}

- **no-change**: \`runbook apply\` / \`ansible-playbook\` on converged hosts (nothing to change).
- **plan / --check**: \`runbook plan --detailed-exitcode\` / \`ansible-playbook --check\`.
- **first apply** on fresh VMs from a real image is not measured here yet: the lab's hosts share
  the machine's installed packages, so there is no fresh install to time (real Debian images for
  the lab are being built in issue 8).

| hosts | runs | forks | load average | runbook peak RSS | API requests | runbook's no-change run (--json timings) |
|---|---|---|---|---|---|---|
${perSize.join('\n')}

Load average at the end: ${loadavg()[0]?.toFixed(1)}.
`,
)
process.stdout.write(
  `${rows.map(cell).join('\n')}\nwrote bench/results.md and bench/results.json\n`,
)
