/**
 * A stand-in for the lab daemon, for the "teardown after SIGKILL" test: it opens the driver on a
 * state directory, boots one more VM, prints READY and waits to be killed.
 * Usage: node --import tsx holder.ts STATE_DIR SNAPSHOT_JSON SPEC_JSON
 */
import { readFileSync } from 'node:fs'
import type { NetworkSnapshot, VmSpec } from '../../../lab/driver.ts'
import { createNamespaceDriver } from '../../../lab/hosts/index.ts'

async function main(): Promise<void> {
  const [stateDir, snapshotFile, specFile] = process.argv.slice(2)
  if (stateDir === undefined || snapshotFile === undefined || specFile === undefined)
    throw new Error('usage: holder.ts STATE_DIR SNAPSHOT_JSON SPEC_JSON')
  const snapshot = JSON.parse(readFileSync(snapshotFile, 'utf8')) as NetworkSnapshot
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as VmSpec
  const driver = createNamespaceDriver({ stateDir })
  await driver.init(snapshot)
  await driver.createVm(spec, snapshot)
  process.stdout.write('READY\n')
  setInterval(() => undefined, 60_000)
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
})
