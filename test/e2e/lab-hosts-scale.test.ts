/**
 * How many lab VMs this machine holds, and what each costs: boots RUNBOOK_TEST_SCALE_VMS (default
 * 50) VMs four at a time (as the API does), checks every sshd answers through the jumphost, and
 * prints time and memory per VM. Slow and heavy, so only with RUNBOOK_TEST_SCALE=1.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { LabPort, VmSpec } from '../../lab/driver.ts'
import { createNamespaceDriver } from '../../lab/hosts/index.ts'
import { netnsPids } from '../../lab/hosts/vm.ts'
import {
  SG_DEFAULT,
  SG_SSH,
  labLeftovers,
  makePort,
  makeSnapshot,
  makeSpec,
  makeSshKit,
  parseConsoleKeys,
} from './lab-hosts/fixture.ts'
import { assertNoLiveLab } from '../helpers/lab.ts'

const enabled = process.env['RUNBOOK_TEST_SCALE'] === '1' && process.getuid?.() === 0
const COUNT = Number(process.env['RUNBOOK_TEST_SCALE_VMS'] ?? '50')
const FIP = '198.51.100.10'

const MEMINFO = [
  'MemAvailable',
  'Shmem',
  'Slab',
  'SUnreclaim',
  'KernelStack',
  'PageTables',
] as const

function meminfo(): Record<(typeof MEMINFO)[number], number> {
  const text = readFileSync('/proc/meminfo', 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0)
  return Object.fromEntries(MEMINFO.map((k) => [k, kb(k)])) as Record<
    (typeof MEMINFO)[number],
    number
  >
}

async function pssKb(pids: number[]): Promise<number> {
  let sum = 0
  for (const pid of pids) {
    const t = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '')
    sum += Number(/^Pss:\s+(\d+) kB$/m.exec(t)?.[1] ?? 0)
  }
  return sum
}

describe.skipIf(!enabled)('lab hosts at scale', () => {
  const work = mkdtempSync(join(tmpdir(), 'rbl-hosts-scale-'))
  const stateDir = join(work, 'state')
  const driver = createNamespaceDriver({ stateDir })

  let foreignLab = false

  afterAll(async () => {
    try {
      if (!foreignLab) await driver.teardown()
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  it(`boots ${COUNT} VMs, all reachable`, { timeout: 900_000 }, async () => {
    foreignLab = true
    await assertNoLiveLab()
    foreignLab = false
    const kit = await makeSshKit(work, FIP)
    const jump = makePort(10, [SG_DEFAULT, SG_SSH])
    const ports: LabPort[] = [jump]
    for (let i = 0; i < COUNT - 1; i++) ports.push(makePort(20 + i, [SG_DEFAULT]))
    const fips = [
      {
        id: 'f1a70000-0000-4000-8000-000000000001',
        floatingIp: FIP,
        fixedIp: '192.0.2.10',
        portId: jump.id,
      },
    ]
    const snapshot = makeSnapshot(ports, fips)
    const specs: VmSpec[] = ports.map((p, i) =>
      makeSpec(i === 0 ? 'scale-jump' : `scale-vm-${i}`, p, kit.publicKey),
    )

    const memBefore = meminfo()
    const t0 = Date.now()
    await driver.init(snapshot)
    const initMs = Date.now() - t0
    const times: number[] = []
    const queue = [...specs]
    const workers = Array.from({ length: 4 }, async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const t = Date.now()
        const boot = await driver.createVm(s, snapshot)
        times.push(Date.now() - t)
        kit.trust(s.port.fixedIps[0] ?? '', parseConsoleKeys(boot.consoleLog).keys)
        if (s === specs[0]) kit.trust(FIP, parseConsoleKeys(boot.consoleLog).keys)
      }
    })
    await Promise.all(workers)
    const totalMs = Date.now() - t0
    await new Promise((r) => setTimeout(r, 2000))
    const memAfter = meminfo()

    let pss = 0
    for (const s of specs) pss += await pssKb(await netnsPids(`rbl-vm-${s.id.slice(0, 8)}`))
    const disks = execFileSync(
      'df',
      ['-k', '--output=used', ...specs.map((s) => join(stateDir, 'vms', s.id.slice(0, 8), 'disk'))],
      { encoding: 'utf8' },
    )
    const diskKb = disks
      .split('\n')
      .slice(1)
      .reduce((a, l) => a + (Number(l.trim()) || 0), 0)

    const ts = Date.now()
    await driver.syncNetwork(snapshot)
    const syncMs = Date.now() - ts

    // every VM's sshd answers, seen from the jumphost
    const probe = specs
      .slice(1)
      .map((s) => `timeout 2 bash -c 'echo > /dev/tcp/${s.port.fixedIps[0]}/22' && n=$((n+1))`)
      .join('; ')
    const r = await kit.run(FIP, `n=0; ${probe}; echo $n`, 120_000)
    expect(r.stdout.trim()).toBe(String(COUNT - 1))
    const sshMs = Date.now()
    const far = await kit.run(specs[COUNT - 1]?.port.fixedIps[0] ?? '', 'hostname')
    expect(far.stdout.trim()).toBe(`scale-vm-${COUNT - 1}`)
    const oneSshMs = Date.now() - sshMs

    const sorted = [...times].sort((a, b) => a - b)
    const td = Date.now()
    await driver.teardown()
    const teardownMs = Date.now() - td
    expect(await labLeftovers(stateDir)).toEqual([])

    const mb = (kb: number) => (kb / 1024).toFixed(1)
    console.log(
      [
        `lab hosts at scale: ${COUNT} VMs on ${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs`,
        `  init ${initMs} ms; all VMs ${totalMs} ms (4 at a time) = ${(totalMs / COUNT).toFixed(0)} ms per VM of wall time`,
        `  createVm: median ${sorted[Math.floor(COUNT / 2)]} ms, p95 ${sorted[Math.floor(COUNT * 0.95)]} ms, max ${sorted[COUNT - 1]} ms`,
        `  memory: MemAvailable -${mb(memBefore.MemAvailable - memAfter.MemAvailable)} MB (${mb((memBefore.MemAvailable - memAfter.MemAvailable) / COUNT)} MB per VM); processes' PSS ${mb(pss)} MB (${mb(pss / COUNT)} MB per VM); disks (tmpfs) ${mb(diskKb)} MB (${mb(diskKb / COUNT)} MB per VM)`,
        `  kernel, per VM: ${MEMINFO.filter((k) => k !== 'MemAvailable')
          .map((k) => `${k} +${((memAfter[k] - memBefore[k]) / COUNT / 1024).toFixed(2)} MB`)
          .join(', ')}`,
        `  syncNetwork with ${COUNT} ports: ${syncMs} ms; one ssh through the jumphost: ${oneSshMs} ms; teardown ${teardownMs} ms`,
      ].join('\n'),
    )
  })
})
