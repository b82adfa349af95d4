import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import {
  accelCacheFile,
  chooseAccel,
  describeAccel,
  readAccelChoice,
  type AccelChoice,
  type ProbeOutcome,
} from '../../../lab/hosts/kvm-probe.ts'

const KEY = 'host 6.18.44, qemu 7.2.22, guest 6.1.0-57-amd64 (k1-c4bdeaf9)'
const now = () => new Date('2026-12-07T12:00:00Z')
const cachedChoice = (accel: 'kvm' | 'tcg', key = KEY): AccelChoice => ({
  accel,
  reason: 'earlier probe',
  key,
  probedAt: '2026-12-01T00:00:00.000Z',
})

describe('chooseAccel: KVM only when a probe proved it here', () => {
  interface Case {
    name: string
    unusable: string | null
    cached: AccelChoice | null
    outcome: ProbeOutcome | null
    accel: 'kvm' | 'tcg'
    probed: boolean
  }
  const cases: Case[] = [
    {
      name: 'no /dev/kvm: TCG, nothing probed',
      unusable: 'no usable /dev/kvm (ENOENT)',
      cached: null,
      outcome: null,
      accel: 'tcg',
      probed: false,
    },
    {
      name: 'a KVM guest booted: KVM',
      unusable: null,
      cached: null,
      outcome: { booted: true, detail: '1.4 s' },
      accel: 'kvm',
      probed: true,
    },
    {
      name: 'the KVM guest hung: TCG',
      unusable: null,
      cached: null,
      outcome: { booted: false, detail: 'a KVM guest gave no sign of life within 15 s' },
      accel: 'tcg',
      probed: true,
    },
    {
      name: 'the cached answer, same key: not probed again',
      unusable: null,
      cached: cachedChoice('tcg'),
      outcome: null,
      accel: 'tcg',
      probed: false,
    },
    {
      name: 'a cached KVM answer stands too',
      unusable: null,
      cached: cachedChoice('kvm'),
      outcome: null,
      accel: 'kvm',
      probed: false,
    },
    {
      name: 'a cached answer for another QEMU or kernel: probed again',
      unusable: null,
      cached: cachedChoice('tcg', 'host 6.1.0, qemu 7.2.0, guest x'),
      outcome: { booted: true, detail: '2.0 s' },
      accel: 'kvm',
      probed: true,
    },
    {
      name: '/dev/kvm gone since a KVM answer was cached: TCG',
      unusable: 'no usable /dev/kvm (EACCES)',
      cached: cachedChoice('kvm'),
      outcome: null,
      accel: 'tcg',
      probed: false,
    },
  ]
  it.each(cases)('$name', async (c) => {
    const probe = vi.fn(async () => {
      if (c.outcome === null) throw new Error('must not probe')
      return c.outcome
    })
    const r = await chooseAccel({ kvmUnusable: c.unusable, key: KEY, cached: c.cached, probe, now })
    expect(r.choice.accel).toBe(c.accel)
    expect(r.probed).toBe(c.probed)
    expect(probe).toHaveBeenCalledTimes(c.outcome === null ? 0 : 1)
    expect(r.choice.key).toBe(KEY)
  })

  it('says why, in the line the lab log and `lab status` show', async () => {
    const hung = await chooseAccel({
      kvmUnusable: null,
      key: KEY,
      cached: null,
      probe: async () => ({
        booted: false,
        detail: 'a KVM guest gave no sign of life within 15 s',
      }),
      now,
    })
    expect(describeAccel(hung.choice)).toBe(
      'kernel VMs (k1.*): TCG (software emulation): a KVM guest gave no sign of life within 15 s (decided 2026-12-07T12:00:00.000Z)',
    )
    const ok = await chooseAccel({
      kvmUnusable: null,
      key: KEY,
      cached: null,
      probe: async () => ({ booted: true, detail: '1.4 s' }),
      now,
    })
    expect(describeAccel(ok.choice)).toMatch(
      /^kernel VMs \(k1\.\*\): KVM: KVM guest booted in 1\.4 s/,
    )
  })
})

describe('readAccelChoice', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rb-kvm-probe-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('reads a cached choice and ignores a missing or damaged file', async () => {
    expect(await readAccelChoice(dir)).toBeNull()
    writeFileSync(accelCacheFile(dir), '{"accel": "tc')
    expect(await readAccelChoice(dir)).toBeNull()
    writeFileSync(accelCacheFile(dir), JSON.stringify({ accel: 'xen', key: KEY }))
    expect(await readAccelChoice(dir)).toBeNull()
    writeFileSync(accelCacheFile(dir), JSON.stringify(cachedChoice('tcg')))
    expect(await readAccelChoice(dir)).toEqual(cachedChoice('tcg'))
  })
})
