/**
 * `npm run bench`: the host part of the VIP procedure against Ansible at 2, 10 and 50 hosts, each
 * size in its own process under the lab's machine-wide lock (bench/host-procedure.ts brings its
 * hosts up and down), then bench/results.md and bench/results.json from the figures.
 *
 * First the CLI's start-up against a bare node (bench/startup.ts), while no lab is up; last,
 * `runbook plan` of the whole VIP runbook on an in-sync lab cloud (bench/plan-vip.ts).
 *
 *   npm run bench [-- --hosts 2,10,50 --runs 5] [--reuse]   (--reuse: keep bench/out's results)
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { median } from './median.ts'

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '2,10,50' },
    runs: { type: 'string' },
    lock: { type: 'string', default: '/tmp/runbook-e2e.lock' },
    reuse: { type: 'boolean', default: false },
  },
})
const sizes = (values.hosts ?? '2,10,50').split(',').map(Number)
// Ansible takes about 3 s a host on this machine: fewer runs at 50 keep a lock hold short.
const runsFor = (n: number): number => Number(values.runs ?? (n >= 50 ? 2 : 3))

interface Row {
  workload: string
  hosts: number
  runbook_ms: number
  ansible_ms: number
  ratio: number
  /** The same host work with no tool (median), and Ansible's time over it: no tool can do better. */
  floor_ms?: number
  floor_ratio?: number
  runbook_runs?: number[]
  ansible_runs?: number[]
  /** Set on a row kept from an earlier bench (a size not measured this time): its date. */
  measured_at?: string
}

/**
 * Rows of sizes this run did not measure, kept from the committed results with their date, so a
 * partial run (`--hosts 2`) does not drop the others; the table marks them.
 */
function earlierRows(measured: number[]): Row[] {
  try {
    const prev = JSON.parse(readFileSync('bench/results.json', 'utf8')) as {
      date?: string
      rows?: Row[]
    }
    return (prev.rows ?? [])
      .filter((r) => !measured.includes(r.hosts))
      .map((r) => ({ ...r, measured_at: r.measured_at ?? prev.date ?? 'earlier' }))
  } catch {
    return []
  }
}
interface SizeResult {
  hosts: number
  runs: number
  forks: number
  load: number[]
  rows: Row[]
  peak_rss_mb: number
  /** The connection keeper's peak memory, the process that holds the SSH connections. */
  keeper_peak_rss_mb?: number
  /** Of the keeper's resident pages, those mapped from files (the node executable, shared with runbook). */
  keeper_file_mb?: number
  /** The same host work as the first apply, typed as one shell command per VM (no tool). */
  first_apply_floor_ms?: number[]
  /** What the no-change run checks, one shell command per VM over kept OpenSSH connections (no tool). */
  no_change_floor_ms?: number[]
  timings?: Record<string, number>
  api_requests?: number
}

/** What did not run to its end, said in the results instead of a figure. */
const failures: string[] = []

/**
 * Runs one bench script under the lab's lock, unless --reuse and its result exists; true when
 * there is a result. A stage that fails is reported with the end of its output.
 */
function stage(label: string, script: string, out: string, args: string[]): boolean {
  if (values.reuse && existsSync(out)) return true
  process.stdout.write(`${label}…\n`)
  const r = spawnSync(
    'flock',
    [values.lock ?? '/tmp/runbook-e2e.lock', process.execPath, '--import', 'tsx', script]
      .concat(args)
      .concat(['--out', out]),
    { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  if (r.status === 0) return true
  const tail = r.stderr.trim().split('\n').slice(0, 8).join('\n')
  process.stderr.write(`${label} failed (exit ${r.status}):\n${r.stderr}\n`)
  failures.push(`${label}: failed (exit ${r.status}):\n\n\`\`\`\n${tail}\n\`\`\``)
  return false
}

mkdirSync('bench/out', { recursive: true })
// first, while no lab is up: the CLI's start-up against a bare node
const startupOut = path.resolve('bench/out/startup.json')
const startup = stage('start-up', 'bench/startup.ts', startupOut, ['--runs', '21'])
  ? (JSON.parse(readFileSync(startupOut, 'utf8')) as {
      node_extra_ca_certs?: boolean
      load: number[]
      rows: { command: string; cpu_ms: number; wall_ms: number }[]
    })
  : undefined
const results: SizeResult[] = []
for (const n of sizes) {
  const out = path.resolve(`bench/out/host-procedure-${n}.json`)
  const args = ['--hosts', `${n}`, '--runs', `${runsFor(n)}`]
  if (stage(`${n} hosts`, 'bench/host-procedure.ts', out, args))
    results.push(JSON.parse(readFileSync(out, 'utf8')) as SizeResult)
}
const planOut = path.resolve('bench/out/plan-vip.json')
const planVip = stage('plan of the VIP runbook', 'bench/plan-vip.ts', planOut, ['--runs', '5'])
  ? (JSON.parse(readFileSync(planOut, 'utf8')) as {
      median_ms: number
      runs: number[]
      api_requests: number[]
      load: number[]
      timings: string
    })
  : undefined

/** A row with the floor of its workload at its size, when that was measured. */
function withFloor(s: SizeResult, r: Row): Row {
  const runs = r.workload === 'first-apply' ? s.first_apply_floor_ms : s.no_change_floor_ms
  if (!runs?.length) return r
  const floor = Math.round(median(runs))
  return { ...r, floor_ms: floor, floor_ratio: Number((r.ansible_ms / floor).toFixed(1)) }
}
const rows = [
  ...results.flatMap((s) => s.rows.map((r) => withFloor(s, r))),
  ...earlierRows(sizes),
].sort((a, b) => a.hosts - b.hosts)
writeFileSync(
  'bench/results.json',
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      rows: rows.map(({ runbook_runs: _r, ansible_runs: _a, ...x }) => x),
      peak_rss_mb: Object.fromEntries(results.map((s) => [s.hosts, s.peak_rss_mb])),
      keeper_peak_rss_mb: Object.fromEntries(
        results.map((s) => [s.hosts, s.keeper_peak_rss_mb ?? null]),
      ),
      // runbook's peak RSS + the keeper's peak RSS less its file pages, which runbook maps too
      pair_peak_mb: Object.fromEntries(results.map((s) => [s.hosts, pairMb(s)])),
      first_apply_floor_ms: Object.fromEntries(
        results.map((s) => [s.hosts, s.first_apply_floor_ms ?? []]),
      ),
      no_change_floor_ms: Object.fromEntries(
        results.map((s) => [s.hosts, s.no_change_floor_ms ?? []]),
      ),
      startup: startup && {
        node_extra_ca_certs: startup.node_extra_ca_certs ?? null,
        rows: startup.rows.map(({ command, cpu_ms, wall_ms }) => ({ command, cpu_ms, wall_ms })),
      },
      plan_vip: planVip && {
        runbook_ms: planVip.median_ms,
        runs_ms: planVip.runs,
        api_requests: planVip.api_requests[0],
      },
      failures,
    },
    null,
    2,
  )}\n`,
)
/** runbook and its keeper together, the node executable's pages counted once (null without a keeper). */
function pairMb(s: SizeResult): number | null {
  return s.keeper_peak_rss_mb === undefined || s.keeper_file_mb === undefined
    ? null
    : s.peak_rss_mb + s.keeper_peak_rss_mb - s.keeper_file_mb
}
const ansible = spawnSync('ansible', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]
const cell = (x: Row): string =>
  `| ${x.workload === 'plan' ? 'plan / --check' : x.workload} | ${x.hosts} | ${x.runbook_ms} ms | ${x.ansible_ms} ms | ${x.ratio}×${x.measured_at ? ` (${x.measured_at.slice(0, 16).replace('T', ' ')}, not rerun)` : ''} | ${x.floor_ms === undefined ? '–' : `${x.floor_ms} ms (${x.floor_ratio}×)`} |`
const perSize = results.map(
  (s) =>
    `| ${s.hosts} | ${s.runs} | ${s.forks} | ${s.load.map((l) => l.toFixed(1)).join(' → ')} | ${s.first_apply_floor_ms?.length ? `${s.first_apply_floor_ms.join(', ')} ms` : '–'} | ${s.peak_rss_mb} MB${s.keeper_peak_rss_mb ? ` + ${s.keeper_peak_rss_mb} MB (${s.keeper_file_mb ?? '?'} MB of it shared) = ${pairMb(s) ?? '?'} MB` : ''} | ${s.api_requests ?? 0} | ${
      s.timings
        ? `${s.timings.commands} commands (${s.timings.commands_ms} ms summed), SSH wait ${s.timings.ssh_wait_ms} ms summed`
        : ''
    } |`,
)
/** The section on the CLI's start-up (bench/startup.ts). */
function startupMd(st: {
  node_extra_ca_certs?: boolean
  load: number[]
  rows: { command: string; cpu_ms: number; wall_ms: number }[]
}): string {
  return `## Start-up: the CLI as a whole process against a bare \`node\`

bench/startup.ts: each command as a whole process, medians of 21 runs alternating between them
(CPU: user + system; load average ${st.load.map((l) => l.toFixed(1)).join(' → ')}). NODE_EXTRA_CA_CERTS is ${st.node_extra_ca_certs ? 'set' : 'not set'} on this
machine${st.node_extra_ca_certs ? ": node parses that CA bundle as it starts, which `node -e 0` pays and runbook's launcher defers to a cloud module's first HTTPS connection (docs/performance.md)" : ''}.

| command | CPU | wall |
|---|---|---|
${st.rows.map((r) => `| \`${r.command}\` | ${r.cpu_ms} ms | ${r.wall_ms} ms |`).join('\n')}

`
}

/** The section on the VIP runbook's plan. */
function planMd(planVip: {
  median_ms: number
  runs: number[]
  api_requests: number[]
  load: number[]
  timings: string
}): string {
  return `## \`runbook plan\` of the whole VIP runbook on an in-sync cloud

The lab cloud with the VIP runbook applied once (ports, three servers, floating IP, keepalived on
the nodes), then \`runbook plan runbooks/vip-keepalived.yaml --json\`: median ${planVip.median_ms} ms
wall over ${planVip.runs.length} runs (${planVip.runs.join(', ')} ms), ${planVip.api_requests[0]} API requests
(the \`api_requests\` of \`--json\`'s summary; load average ${planVip.load.map((l) => l.toFixed(1)).join(' → ')}).
Where the time goes (\`--timings\`):

\`\`\`
${planVip.timings.trim()}
\`\`\`

`
}

writeFileSync(
  'bench/results.md',
  `# The host part of the VIP procedure: runbook vs Ansible

Measured by \`npm run bench\` (bench/run.ts, bench/host-procedure.ts) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC,
this machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version},
${ansible}. Lab hosts (namespaces booted from the lab's Debian 12 image, each with its own sshd) behind one jumphost reached
through its floating IP. Tasks: discover the interface (command), install keepalived (apt, from
the lab's package mirror), configure it (template, validated with \`keepalived -t\`), start it
(service), check it (command), with become. Ansible runs at its
fastest settings: pipelining, ControlPersist, facts off. runbook keeps its SSH connections between
runs the same way (its connection keeper, \`RUNBOOK_SSH_PERSIST=60\`, docs/ssh.md); the untimed
converge runs before the timed ones open both tools' kept connections. Both tools run every host
at once (forks below). Wall time of the whole command (process start to exit), median of the runs; the two tools
alternate run by run so both see the same load (other engineers were using this machine's CPUs:
the load average before → after each size is given).

| workload | hosts | runbook | Ansible | Ansible / runbook | floor: no tool (Ansible / floor) |
|---|---|---|---|---|---|
${rows.map(cell).join('\n')}

- **no-change**: \`runbook apply\` / \`ansible-playbook\` on converged hosts (nothing to change).
- **plan / --check**: \`runbook plan --detailed-exitcode\` / \`ansible-playbook --check\`.
- **first-apply**: each tool on VMs just made from the image (no keepalived; made anew before
  each tool's run): \`apt-get update\`, keepalived and its dependencies downloaded from the lab's
  mirror and installed, the configuration written and validated, keepalived started and checked.
  Before each tool's run, untimed, python3 and python3-apt go on the fresh VMs, as a cloud image
  has them (Ansible needs them; the lab's trimmed image has python3-minimal only), and apt's lists
  are removed again, so each first apply starts with \`apt-get update\`.
- **first-apply floor**: the same host work with no tool, on VMs made anew the same way: one
  shell command per VM over OpenSSH through the jumphost, all VMs at once (\`apt-get update\`,
  \`apt-get install keepalived\`, the configuration written and checked with \`keepalived -t\`,
  \`service keepalived start\`, \`pidof\`). Both tools stand on it; a ratio over Ansible of
  Ansible's time / the floor is out of any tool's reach.
- **no-change floor** (also the plan's: it reads the same): what the no-change run checks, with no
  tool, in the same runs (alternating with both tools): one \`ssh\` per VM over a kept OpenSSH
  connection (ControlMaster, as Ansible's), all VMs at once, each running the checks as root in
  one shell (\`ip route\`, \`dpkg-query\`, the age of apt's lists, the configuration's SHA-256
  and mode, \`pidof keepalived\` twice). It is the checks themselves, on the hosts and through
  the jumphost; Ansible's time over it is about the most a tool that checks the same could show.
- runbook runs as \`runbook\` does for a user: \`cli/runbook\`, the launcher of package.json's
  bin. It trusts the hosts' keys from the same known_hosts file as Ansible's OpenSSH, checked as
  strictly (\`known_hosts_files\`, \`host_key_checking: strict\`).

| hosts | runs | forks | load average | first-apply floor | peak memory: runbook + its keeper (shared pages) = both | API requests | runbook's no-change run (--json timings) |
|---|---|---|---|---|---|---|---|
${perSize.join('\n')}

Peak memory: runbook's peak RSS, the keeper's peak RSS, and how much of the keeper's resident
memory is pages mapped from files (the node executable and its libraries, which runbook maps too:
the same pages, in memory once); both together count them once.

${startup ? startupMd(startup) : ''}${planVip ? planMd(planVip) : ''}${failures.length ? `## Not measured\n\n${failures.join('\n\n')}\n\n` : ''}Load average at the end: ${loadavg()[0]?.toFixed(1)}.
`,
)
process.stdout.write(
  `${rows.map(cell).join('\n')}\nwrote bench/results.md and bench/results.json\n`,
)
