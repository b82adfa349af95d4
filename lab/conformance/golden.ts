/**
 * Saves chosen exchanges of a sequence run against the REAL services as fixtures under
 * lab/conformance/golden/, with tokens, secrets and passwords scrubbed.
 *
 * Usage: node --import tsx lab/conformance/golden.ts TARGET.json [DIR]
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Exchange, SequenceResult } from './recorder.ts'
import { runSequence } from './sequence.ts'
import { readTarget } from './target.ts'

/** The steps worth keeping as fixtures: one of each shape and error the lab must reproduce. */
export const GOLDEN_STEPS = [
  'keystone.auth.password',
  'keystone.auth.appcred-id',
  'keystone.auth.bad-password',
  'keystone.auth.appcred-scoped',
  'keystone.appcred.create',
  'keystone.auth.appcred-deleted',
  'neutron.auth.no-token',
  'neutron.networks.external',
  'neutron.subnets.by-name',
  'neutron.network.not-found',
  'neutron.port.create-fixed-ip',
  'neutron.port.create-duplicate-ip',
  'neutron.ports.by-fixed-ip',
  'neutron.port.set-allowed-address-pairs',
  'neutron.port.clear-allowed-address-pairs',
  'neutron.port.not-found',
  'neutron.security-group.create',
  'neutron.security-group-rule.create-112',
  'neutron.security-group-rule.duplicate',
  'neutron.floatingip.create',
  'neutron.floatingip.associate',
  'neutron.floatingip.disassociate',
  'neutron.networks.page-first',
  'neutron.networks.page-last',
  'neutron.networks.bad-marker',
  'neutron.networks.bad-limit',
  'neutron.extensions',
  'neutron.policy.create-external-network',
  'neutron.policy.port-on-external-network',
  'neutron.policy.port-mac-address',
] as const

const KEEP_HEADERS = ['content-type', 'x-subject-token', 'www-authenticate']
const SECRET_KEYS = new Set(['secret', 'password'])

/**
 * Replace tokens, secrets and passwords anywhere in a JSON value.
 * @example scrub({ application_credential: { secret: 's3cr3t' } }) // { application_credential: { secret: '<secret>' } }
 */
export function scrub(x: unknown): unknown {
  if (typeof x === 'string') return /^gAAAA/.test(x) ? '<token>' : x
  if (Array.isArray(x)) return x.map(scrub)
  if (x !== null && typeof x === 'object') {
    return Object.fromEntries(
      Object.entries(x as Record<string, unknown>).map(([k, v]) => [
        k,
        SECRET_KEYS.has(k) && typeof v === 'string' ? `<${k}>` : scrub(v),
      ]),
    )
  }
  return x
}

function scrubExchange(e: Exchange): Exchange {
  const headers = Object.fromEntries(
    Object.entries(e.headers)
      .filter(([k]) => KEEP_HEADERS.includes(k))
      .map(([k, v]) => [k, k === 'x-subject-token' ? '<token>' : v]),
  )
  const request =
    e.request.body === undefined ? { ...e.request } : { ...e.request, body: scrub(e.request.body) }
  return { request, status: e.status, headers, body: scrub(e.body) }
}

/**
 * Write the golden steps of a result to DIR as `<step>.json`.
 * @example writeGolden(await runSequence(target), 'lab/conformance/golden')
 */
export function writeGolden(result: SequenceResult, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const written: string[] = []
  for (const step of GOLDEN_STEPS) {
    const e = result.exchanges[step]
    if (e === undefined) continue
    const file = join(dir, `${step}.json`)
    writeFileSync(file, `${JSON.stringify(scrubExchange(e), null, 2)}\n`)
    written.push(file)
  }
  return written
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const [file, dir = 'lab/conformance/golden'] = process.argv.slice(2)
  if (file === undefined) {
    console.error('usage: golden.ts TARGET.json [DIR]')
    process.exit(2)
  }
  const written = writeGolden(await runSequence(readTarget(file)), dir)
  console.log(`wrote ${written.length} files to ${dir}`)
}
