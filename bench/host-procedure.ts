/**
 * The host part of the VIP procedure (discover the interface, install keepalived, write its
 * configuration and validate it, start it, check it) on lab VMs behind a jumphost, by `runbook
 * apply` and by `ansible-playbook` on the same hosts, the same files, the same path: first on fresh
 * VMs from the lab's Debian 12 image (keepalived comes from the lab's package mirror; the VMs are
 * made anew before each tool's run), then with nothing to change, and planned by `runbook plan` and
 * `ansible-playbook --check`. One size per process, under the lab's
 * lock (bench/run.ts, `npm run bench`, runs each size and writes bench/results.md and .json):
 *
 *   flock /tmp/runbook-e2e.lock node --import tsx bench/host-procedure.ts --hosts 10 --runs 5 --out r.json
 *
 * BENCH_HOLD=/tmp/hold keeps the converged hosts up for experiments until /tmp/hold is removed.
 * BENCH_NOCHANGE_TIMINGS=/tmp/nt keeps the --timings output of one more no-change apply.
 * BENCH_FIRST_TIMINGS=/tmp/ft keeps each first apply's output in /tmp/ft.<tool>.<run>, runbook's
 * with its --timings table (where the first apply's time goes).
 *
 * Needs root (the lab's VMs are namespaces) and ansible-core (Debian's package). Ansible runs with
 * the settings that make it fastest here: pipelining, ControlPersist, forks 10, facts off. Debian's
 * At 50 forks on this 2-core machine Ansible's default 10 s timeouts (connection, privilege
 * escalation prompt) trip, so they are raised to 60 s. Debian's
 * keepalived init script has no `status`, so Ansible's `service` is given `pattern` (as its docs say
 * for such scripts); runbook's `service` finds the process itself.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { LabPort } from '../lab/driver.ts'
import { checkHostPrerequisites, createNamespaceDriver } from '../lab/hosts/index.ts'
import {
  SG_DEFAULT,
  SG_SSH,
  TEST_MIRROR_URL,
  makePort,
  makeSnapshot,
  makeSpec,
  makeSshKit,
  parseConsoleKeys,
  startTestMirror,
} from '../test/e2e/lab-hosts/fixture.ts'
import type { MirrorServer } from '../lab/mirror/server.ts'
import { median } from './median.ts'

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '2' },
    runs: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/out/host-procedure.json' },
    'first-runs': { type: 'string' },
    // runbook's connection keeper (its ControlPersist): seconds, 0 = every run connects anew
    'runbook-persist': { type: 'string', default: '60' },
  },
})
const PERSIST = values['runbook-persist'] ?? '60'
const N = Number(values.hosts)
const RUNS = Number(values.runs)
// First applies on fresh VMs: each run makes the VMs anew, twice (one set per tool).
const FIRST_RUNS = Number(values['first-runs'] ?? (N <= 2 ? 2 : N <= 10 ? 1 : 0))
// Both tools run every host at once (Ansible's forks, runbook's -f), up to 50.
const FORKS = Math.min(Math.max(N, 10), 50)
const FIP = '198.51.100.10'
// the `runbook` command as users run it (package.json's bin: cli/runbook, which starts node)
const BIN = path.resolve('cli/runbook')

const CONF = (state: string, priority: number): string => `vrrp_instance VI_1 {
  state ${state}
  interface ens3
  virtual_router_id 51
  priority ${priority}
  advert_int 1
  virtual_ipaddress { 192.0.2.254/24 }
}
`

/**
 * Untimed, on every fresh VM, for both tools: python3 and python3-apt as a cloud image has them;
 * then apt's lists are removed and dated as an image's are (Ansible's cache_valid_time reads the
 * directory's mtime), so that each tool's first apply starts with `apt-get update`.
 */
const PREPARE =
  'sudo sh -c "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-apt >/dev/null && rm -rf /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp && apt-get clean && touch -d 2000-01-01 /var/lib/apt/lists"'

/** Runs a command to its end: wall time, exit code, output, and peak memory (GNU time). */
function time(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): { ms: number; code: number; out: string; stdout: string; rssMb: number } {
  const gnuTime = existsSync('/usr/bin/time')
  const rss = path.join(cwd, 'rss')
  const t = process.hrtime.bigint()
  const r = spawnSync(
    gnuTime ? '/usr/bin/time' : cmd,
    gnuTime ? ['-f', '%M', '-o', rss, cmd, ...args] : args,
    {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      encoding: 'utf8',
      timeout: 600_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  )
  const ms = Number((process.hrtime.bigint() - t) / 1_000_000n)
  const kb = gnuTime ? Number(spawnSync('cat', [rss], { encoding: 'utf8' }).stdout.trim()) : NaN
  return {
    ms,
    code: r.status ?? -1,
    out: `${r.stdout}${r.stderr}`,
    stdout: r.stdout,
    rssMb: Math.round(kb / 1024),
  }
}

/** One workload's measured runs. */
interface Measured {
  workload: 'first-apply' | 'no-change' | 'plan'
  runbook: number[]
  ansible: number[]
}

/**
 * The keeper's memory while it holds this bench's connections (the process whose command line is
 * `__keeper`: the bench's own keeper; tests run with RUNBOOK_SSH_PERSIST=0): its peak RSS (VmHWM)
 * and, of its resident pages now, those mapped from files (RssFile: the node executable and its
 * libraries, the same pages the runbook process maps; they are in memory once for both).
 */
function keeperMemory(): { peakMb: number; fileMb: number } {
  let peak = 0
  let file = 0
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('__keeper')) continue
      const status = readFileSync(`/proc/${pid}/status`, 'utf8')
      const kb = (field: string): number =>
        Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
      if (kb('VmHWM') > peak) [peak, file] = [kb('VmHWM'), kb('RssFile')]
    } catch {
      // gone meanwhile
    }
  }
  return { peakMb: Math.round(peak / 1024), fileMb: Math.round(file / 1024) }
}

/** Stops runbook's connection keeper, as stopMasters does Ansible's masters. */
function stopKeeper(work: string): void {
  spawnSync(BIN, ['disconnect'], {
    env: { ...process.env, RUNBOOK_KEEPER_DIR: path.join(work, 'keeper') },
    stdio: 'ignore',
  })
}

/** Stops Ansible's ControlPersist masters (they would outlive VMs made anew, or the bench). */
function stopMasters(cp: string): void {
  if (!existsSync(cp)) return
  for (const sock of readdirSync(cp))
    spawnSync('ssh', ['-O', 'exit', '-o', `ControlPath=${path.join(cp, sock)}`, 'x'], {
      stdio: 'ignore',
    })
}

/**
 * The no-change floor: what the no-change run checks, with no tool. One \`ssh\` per VM over a kept
 * OpenSSH connection (ControlMaster, as Ansible's), all VMs at once, each running the checks as
 * root in one shell: the default route, keepalived installed, the age of apt's lists, the
 * configuration's content (its SHA-256 against the expected file's) and mode, keepalived running
 * (the service's check and the last task's). Its wall time in ms; a check that fails throws.
 */
async function checksWithNoTool(
  work: string,
  nodes: { name: string; ip: string; state: string; priority: number }[],
): Promise<number> {
  mkdirSync(path.join(work, 'floor-cp'), { recursive: true })
  const t0 = process.hrtime.bigint()
  const results = await Promise.all(
    nodes.map((x) => {
      const sha = createHash('sha256').update(CONF(x.state, x.priority)).digest('hex')
      const checks = [
        'ip route show default >/dev/null',
        'case $(dpkg-query -W -f=\\${Status} keepalived) in "install ok installed") ;; *) exit 3 ;; esac',
        'stat -L -c %Y /var/lib/apt/lists >/dev/null',
        `echo "${sha}  /etc/keepalived/keepalived.conf" | sha256sum -c --status`,
        '[ "$(stat -c %a /etc/keepalived/keepalived.conf)" = 644 ]',
        'pidof keepalived >/dev/null',
        'pidof keepalived >/dev/null',
      ].join(' && ')
      return new Promise<{ name: string; code: number; err: string }>((resolve) => {
        // the masters stay for the whole size (stopped at its end): at 50 hosts two of
        // Ansible's runs, more than a minute, pass between two floor runs
        const child = spawn(
          'ssh',
          [
            ...['-F', path.join(work, 'ssh_config'), '-o', 'ControlMaster=auto'],
            ...['-o', 'ControlPersist=600s', '-o', `ControlPath=${path.join(work, 'floor-cp')}/%C`],
            x.ip,
            `sudo -n sh -c '${checks}'`,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        )
        let err = ''
        child.stderr.on('data', (b: Buffer) => (err += b.toString()))
        child.on('close', (code) => resolve({ name: x.name, code: code ?? -1, err }))
      })
    }),
  )
  const ms = Number((process.hrtime.bigint() - t0) / 1_000_000n)
  const bad = results.find((r) => r.code !== 0)
  if (bad)
    throw new Error(`the no-change checks failed on ${bad.name} (exit ${bad.code}): ${bad.err}`)
  return ms
}

async function bench(n: number): Promise<{
  measured: Measured[]
  peakRssMb: number
  keeperRssMb: number
  keeperFileMb: number
  timings: unknown
  apiRequests: unknown
  floorMs: number[]
  noChangeFloorMs: number[]
}> {
  const work = mkdtempSync(path.join(tmpdir(), 'rb-bench-'))
  const driver = createNamespaceDriver({
    stateDir: path.join(work, 'lab'),
    aptMirror: TEST_MIRROR_URL,
  })
  let mirror: MirrorServer | undefined
  try {
    const kit = await makeSshKit(work, FIP)
    const jump = makePort(60, [SG_DEFAULT, SG_SSH])
    const vms: LabPort[] = Array.from({ length: n }, (_, i) => makePort(61 + i, [SG_DEFAULT]))
    const snap = () =>
      makeSnapshot(
        [jump, ...vms],
        [
          {
            id: 'f1a70000-0000-4000-8000-0000000000b1',
            floatingIp: FIP,
            fixedIp: '192.0.2.60',
            portId: jump.id,
          },
        ],
      )
    await driver.init(snap())
    // keepalived for both tools; python3 and python3-apt, which a cloud image has (Ansible needs
    // them) and the lab's trimmed image lacks
    mirror = await startTestMirror(work, ['keepalived', 'python3', 'python3-apt'])
    const specs = [
      makeSpec('jump', jump, kit.publicKey),
      ...vms.map((p, i) => makeSpec(`node${i + 1}`, p, kit.publicKey)),
    ]
    const consoles: Record<string, string> = {}
    /** Boots these VMs (anew, when they exist) and writes what both tools need to reach them. */
    const boot = async (which: typeof specs): Promise<void> => {
      await Promise.all(which.filter((s) => consoles[s.name]).map((s) => driver.deleteVm(s.id)))
      const boots = await Promise.all(which.map((s) => driver.createVm(s, snap())))
      which.forEach((s, i) => (consoles[s.name] = boots[i]?.consoleLog ?? ''))
      const knownHosts = specs.flatMap((s) =>
        parseConsoleKeys(consoles[s.name] ?? '').keys.map(
          (k) =>
            `${s.name === 'jump' ? FIP : s.port.fixedIps[0]} ${k.split(' ').slice(0, 2).join(' ')}`,
        ),
      )
      writeFileSync(path.join(work, 'known_hosts'), `${knownHosts.join('\n')}\n`)
      writeInventory()
      // 20 VMs at a time: more new connections at once than that trip the jump host's sshd
      // (MaxStartups) at 100 hosts
      const vmSpecs = which.filter((s) => s.name !== 'jump')
      for (let i = 0; i < vmSpecs.length; i += 20)
        await Promise.all(
          vmSpecs.slice(i, i + 20).map(async (s) => {
            const r = await kit.run(s.port.fixedIps[0] ?? '', PREPARE, 300_000)
            if (r.code !== 0) throw new Error(`preparing ${s.name}: ${r.stderr}`)
          }),
        )
    }
    const key = path.join(work, 'id_ed25519')
    const nodes = vms.map((p, i) => ({
      name: `node${i + 1}`,
      ip: p.fixedIps[0] ?? '',
      state: i === 0 ? 'MASTER' : 'BACKUP',
      priority: i === 0 ? 120 : 90,
    }))

    // runbook
    const writeInventory = (): void =>
      writeFileSync(
        path.join(work, 'inventory.yaml'),
        [
          'all:',
          // the host keys Ansible's OpenSSH trusts: the same known_hosts file, checked as strictly
          `  vars: { user: ubuntu, private_key: ${key}, known_hosts_files: [${path.join(work, 'known_hosts')}], host_key_checking: strict }`,
          `  hosts:\n    jump: { address: ${FIP} }`,
          '  children:',
          '    keepalived:',
          '      vars: { via: jump }',
          '      hosts:',
          ...nodes.map(
            (x) =>
              `        ${x.name}: { address: ${x.ip}, state: ${x.state}, priority: ${x.priority} }`,
          ),
          '',
        ].join('\n'),
      )
    await boot(specs)
    writeFileSync(
      path.join(work, 'keepalived.conf.hbs'),
      CONF('{{state}}', 0).replace('priority 0', 'priority {{priority}}'),
    )
    writeFileSync(
      path.join(work, 'procedure.yaml'),
      `plays:
  - hosts: keepalived
    become: true
    tasks:
      - name: discover the interface
        command: ip route show default
        changed_when: false
      - name: install keepalived
        apt: { name: keepalived, state: present, update_cache: true, cache_valid_time: 3600 }
      - name: configure keepalived
        template:
          src: keepalived.conf.hbs
          dest: /etc/keepalived/keepalived.conf
          mode: "0644"
          validate: keepalived -t -f %s
      - name: start keepalived
        service: { name: keepalived, state: started }
      - name: check keepalived
        command: pidof keepalived
        changed_when: false
`,
    )
    // ansible
    writeFileSync(
      path.join(work, 'ansible.cfg'),
      `[defaults]
inventory = hosts.ini
forks = ${FORKS}
gathering = explicit
timeout = 60
host_key_checking = True
interpreter_python = /usr/bin/python3
retry_files_enabled = False
stdout_callback = default
[ssh_connection]
pipelining = True
ssh_args = -F ${path.join(work, 'ssh_config')} -o ControlMaster=auto -o ControlPersist=60s -o ConnectTimeout=60
control_path_dir = ${path.join(work, 'cp')}
`,
    )
    writeFileSync(
      path.join(work, 'hosts.ini'),
      `[keepalived]\n${nodes.map((x) => `${x.name} ansible_host=${x.ip} state=${x.state} priority=${x.priority}`).join('\n')}\n[keepalived:vars]\nansible_user=ubuntu\nansible_ssh_private_key_file=${key}\n`,
    )
    writeFileSync(
      path.join(work, 'keepalived.conf.j2'),
      CONF('{{ state }}', 0).replace('priority 0', 'priority {{ priority }}'),
    )
    writeFileSync(
      path.join(work, 'procedure.yml'),
      `- hosts: keepalived
  become: true
  tasks:
    - name: discover the interface
      command: ip route show default
      changed_when: false
    - name: install keepalived
      apt: { name: keepalived, state: present, update_cache: true, cache_valid_time: 3600 }
    - name: configure keepalived
      template:
        src: keepalived.conf.j2
        dest: /etc/keepalived/keepalived.conf
        mode: "0644"
        validate: keepalived -t -f %s
    - name: start keepalived
      service: { name: keepalived, state: started, pattern: /usr/sbin/keepalived, use: service }
    - name: check keepalived
      command: pidof keepalived
      changed_when: false
`,
    )
    const rb = (command = 'apply', ...extra: string[]): ReturnType<typeof time> =>
      time(
        BIN,
        [command, 'procedure.yaml', '-i', 'inventory.yaml', '-f', String(FORKS), ...extra],
        work,
        // its own keeper, as Ansible has its own control_path_dir
        { RUNBOOK_SSH_PERSIST: PERSIST, RUNBOOK_KEEPER_DIR: path.join(work, 'keeper') },
      )
    const an = (...extra: string[]): ReturnType<typeof time> =>
      time('ansible-playbook', ['procedure.yml', ...extra], work, {
        ANSIBLE_CONFIG: path.join(work, 'ansible.cfg'),
      })
    // First apply: each tool on VMs just made from the image, alternating run by run.
    const first: Measured = { workload: 'first-apply', runbook: [], ansible: [] }
    const nodeSpecs = specs.filter((s) => s.name !== 'jump')
    for (let i = 0; i < FIRST_RUNS; i++) {
      for (const [name, f, into] of [
        ['runbook', rb, first.runbook],
        ['ansible', an, first.ansible],
      ] as const) {
        if (i > 0 || name === 'ansible') await boot(nodeSpecs)
        stopMasters(path.join(work, 'cp'))
        stopKeeper(work)
        const r =
          name === 'runbook' && process.env.BENCH_FIRST_TIMINGS ? rb('apply', '--timings') : f()
        if (process.env.BENCH_FIRST_TIMINGS)
          writeFileSync(`${process.env.BENCH_FIRST_TIMINGS}.${name}.${i}`, r.out)
        if (r.code !== 0 || !/changed=[1-9]/.test(r.out))
          throw new Error(`${name}'s first apply failed or changed nothing:\n${r.out}`)
        into.push(r.ms)
      }
    }
    // The floor both tools stand on: the same host work typed as one shell command per VM over
    // OpenSSH (through the jumphost, all VMs at once, no tool): update, install, write, validate,
    // start, check. What a tool takes above it is the tool's own cost.
    const floor: number[] = []
    for (let i = 0; i < FIRST_RUNS; i++) {
      await boot(nodeSpecs)
      const t0 = process.hrtime.bigint()
      const rs = await Promise.all(
        nodes.map((x) =>
          kit.run(
            x.ip,
            `sudo sh -c 'export DEBIAN_FRONTEND=noninteractive; ip route show default >/dev/null && apt-get update -q >/dev/null && apt-get install -y -q keepalived >/dev/null && printf "%s" "$0" > /etc/keepalived/keepalived.conf.new && keepalived -t -f /etc/keepalived/keepalived.conf.new && mv /etc/keepalived/keepalived.conf.new /etc/keepalived/keepalived.conf && service keepalived start && pidof keepalived' '${CONF(x.state, x.priority)}'`,
            300_000,
          ),
        ),
      )
      floor.push(Number((process.hrtime.bigint() - t0) / 1_000_000n))
      const bad = rs.find((x) => x.code !== 0)
      if (bad) throw new Error(`the floor's shell failed:\n${bad.stdout}${bad.stderr}`)
    }
    // the VMs were made anew: no kept connection to the ones before them
    stopKeeper(work)
    // converge with each tool; the other must then find nothing to change (same files, same
    // state). Untimed, these runs also open Ansible's ControlPersist masters and runbook's keeper.
    for (const [name, f] of [
      ['runbook', rb],
      ['ansible', an],
    ] as const) {
      const r = f()
      if (r.code !== 0) throw new Error(`${name} failed to converge:\n${r.out}`)
    }
    const r0 = rb()
    if (!/changed=0/.test(r0.out)) throw new Error(`not converged:\n${r0.out}`)
    // BENCH_HOLD=/tmp/hold: the converged hosts stay up for experiments; the bench writes its
    // directory (inventory.yaml, procedure.yaml, RUNBOOK_KEEPER_DIR=keeper) into that file and
    // goes on when the file is removed.
    if (process.env.BENCH_HOLD) {
      writeFileSync(process.env.BENCH_HOLD, `${work}\n`)
      while (existsSync(process.env.BENCH_HOLD)) await new Promise((r) => setTimeout(r, 500))
    }
    const noChange: Measured = { workload: 'no-change', runbook: [], ansible: [] }
    const plan: Measured = { workload: 'plan', runbook: [], ansible: [] }
    const noChangeFloor: number[] = []
    await checksWithNoTool(work, nodes) // untimed: opens its ControlMaster connections
    let peakRssMb = 0
    for (let i = 0; i < RUNS; i++) {
      const r = rb()
      const a = an()
      if (r.code !== 0 || a.code !== 0 || !/changed=0/.test(r.out) || /changed=[1-9]/.test(a.out))
        throw new Error(`a no-change run failed or changed something:\n${r.out}\n${a.out}`)
      noChange.runbook.push(r.ms)
      noChange.ansible.push(a.ms)
      noChangeFloor.push(await checksWithNoTool(work, nodes))
      peakRssMb = Math.max(peakRssMb, r.rssMb)
      const rp = rb('plan', '--detailed-exitcode')
      const ap = an('--check')
      if (rp.code !== 0 || ap.code !== 0 || /changed=[1-9]/.test(ap.out))
        throw new Error(`a plan found changes or failed:\n${rp.out}\n${ap.out}`)
      plan.runbook.push(rp.ms)
      plan.ansible.push(ap.ms)
    }
    // Where runbook's time goes, for the notes: one more no-change run with --json.
    if (process.env.BENCH_NOCHANGE_TIMINGS)
      writeFileSync(process.env.BENCH_NOCHANGE_TIMINGS, rb('apply', '--timings').out)
    const keeper = keeperMemory()
    const j = rb('apply', '--json')
    const summary = JSON.parse(j.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>
    return {
      measured: FIRST_RUNS > 0 ? [first, noChange, plan] : [noChange, plan],
      peakRssMb,
      keeperRssMb: keeper.peakMb,
      keeperFileMb: keeper.fileMb,
      timings: summary.timings,
      apiRequests: summary.api_requests,
      floorMs: floor,
      noChangeFloorMs: noChangeFloor,
    }
  } finally {
    // Ansible's ControlPersist masters would outlive the hosts by a minute: stop them now.
    stopMasters(path.join(work, 'cp'))
    stopMasters(path.join(work, 'floor-cp'))
    stopKeeper(work)
    await mirror?.close()
    await driver.teardown()
    rmSync(work, { recursive: true, force: true })
  }
}

await checkHostPrerequisites()
const load = [loadavg()[0] ?? 0]
const r = await bench(N)
load.push(loadavg()[0] ?? 0)
const rows = r.measured.map((m) => ({
  workload: m.workload,
  hosts: N,
  runbook_ms: median(m.runbook),
  ansible_ms: median(m.ansible),
  ratio: Number((median(m.ansible) / median(m.runbook)).toFixed(1)),
  runbook_runs: m.runbook,
  ansible_runs: m.ansible,
}))
for (const x of rows)
  process.stdout.write(
    `${x.workload} ${N} hosts: runbook ${x.runbook_ms} ms, ansible ${x.ansible_ms} ms (${x.ratio}×)\n`,
  )
writeFileSync(
  values.out ?? 'bench/out/host-procedure.json',
  `${JSON.stringify({ hosts: N, runs: RUNS, forks: FORKS, runbook_persist_s: Number(PERSIST), load, rows, peak_rss_mb: r.peakRssMb, keeper_peak_rss_mb: r.keeperRssMb, keeper_file_mb: r.keeperFileMb, first_apply_floor_ms: r.floorMs, no_change_floor_ms: r.noChangeFloorMs, timings: r.timings, api_requests: r.apiRequests }, null, 2)}\n`,
)
