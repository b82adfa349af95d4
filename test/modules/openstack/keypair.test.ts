import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keypair, type KeypairState } from '../../../modules/openstack/keypair.ts'
import { planTable, type PlanCase } from '../host/harness.ts'
import { converge, makeHostKey, planOnly, Runs, startCloud, type TestCloud } from './harness.ts'

const K1 = makeHostKey().line
const K2 = makeHostKey().line

const keyCases: PlanCase<KeypairState>[] = [
  {
    name: 'a missing keypair is imported',
    params: { name: 'k', public_key: `${K1} me@host` },
    current: { want: K1, keypair: undefined, how: undefined },
    expected: [{ action: 'create', target: 'keypair k', after: { name: 'k', public_key: K1 } }],
  },
  {
    name: 'idempotent: same key, another comment',
    params: { name: 'k', public_key: `${K1} me@host` },
    current: {
      want: K1,
      keypair: { name: 'k', public_key: `${K1} Generated-by-Nova`, fingerprint: 'f' },
      how: 'journal',
    },
    expected: [],
  },
  {
    name: 'idempotent: an identical keypair that is not ours is used as it is',
    params: { name: 'k', public_key: K1 },
    current: { want: K1, keypair: { name: 'k', public_key: K1, fingerprint: 'f' }, how: 'same' },
    expected: [],
  },
  {
    name: 'ours with another key is replaced',
    params: { name: 'k', public_key: K2 },
    current: { want: K2, keypair: { name: 'k', public_key: K1, fingerprint: 'f' }, how: 'journal' },
    expected: [
      {
        action: 'replace',
        target: 'keypair k',
        before: { public_key: K1, fingerprint: 'f' },
        after: { public_key: K2 },
        note: "Nova cannot change a keypair's key",
      },
    ],
  },
  {
    name: 'absent: deleted',
    params: { name: 'k', state: 'absent' },
    current: {
      want: undefined,
      keypair: { name: 'k', public_key: K1, fingerprint: 'f' },
      how: 'journal',
    },
    expected: [{ action: 'delete', target: 'keypair k', before: { fingerprint: 'f' } }],
  },
]

describe('openstack.keypair plan', () => planTable(keypair, keyCases))

describe('openstack.keypair against the lab API', () => {
  let cloud: TestCloud
  let runs: Runs
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-os-key-'))
  beforeAll(async () => {
    cloud = await startCloud()
    runs = new Runs({ openstack_cloud: cloud.clouds['lab'] }, dir)
    writeFileSync(path.join(dir, 'id.pub'), `${K1} operator@laptop\n`)
  })
  afterAll(async () => {
    await cloud.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('imports a key from a file next to the runbook, replaces it when the key changes, deletes it on destroy', async () => {
    const r = await converge(keypair, runs.next(), { name: 'kld-key', public_key_file: 'id.pub' })
    expect(r.first.map((c) => c.action)).toEqual(['create'])
    expect(r.second).toEqual([])
    // the keypair, and Nova's version document (the microversion, once per run)
    expect(r.gatherCalls).toBe(2)
    const swapped = await converge(keypair, runs.next(), { name: 'kld-key', public_key: K2 })
    expect(swapped.first.map((c) => c.action)).toEqual(['replace'])
    expect(swapped.second).toEqual([])
    const rec = runs.records.find((x) => x.type === 'keypair')
    if (rec === undefined) throw new Error('no record')
    await keypair.destroy?.(runs.next().ctx('openstack.keypair'), rec)
    expect(await runs.api().nova.keypair('kld-key')).toBeUndefined()
  })

  it('uses an identical keypair it did not make without taking it; refuses a different one', async () => {
    const api = runs.next().api()
    await api.nova.createKeypair('rbt-theirs', K1)
    const r = await converge(keypair, runs.next(), { name: 'rbt-theirs', public_key: K1 })
    expect(r.first).toEqual([])
    expect(runs.records.some((x) => x.id === 'rbt-theirs')).toBe(false)
    await expect(
      planOnly(keypair, runs.next(), { name: 'rbt-theirs', public_key: K2 }),
    ).rejects.toThrow(/a keypair named 'rbt-theirs' already exists/)
    await api.nova.deleteKeypair('rbt-theirs')
  })
})
