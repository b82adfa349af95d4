/**
 * The lab API as a background process, started (detached) by `labUp` in lab/index.ts:
 *
 *   node --import tsx lab/api/daemon.ts --state-dir DIR --port 8780 [--no-hosts]
 *
 * It writes DIR/daemon.json once it answers, logs to stdout (lab.log), and on SIGTERM stops
 * listening, finishes what is in flight and exits. The hosts stay up: `labDown` tears them down.
 */
import { rm } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { HostDriver } from '../driver.ts'
import { hostsStateDir, loadHosts } from './hosts.ts'
import { labPaths } from './paths.ts'
import type { DaemonInfo } from './paths.ts'
import { createNullDriver } from './null-driver.ts'
import { startLabApi } from './server.ts'
import { writeFileAtomic } from './store.ts'

function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'state-dir': { type: 'string' },
      port: { type: 'string', default: '8780' },
      'no-hosts': { type: 'boolean', default: false },
      'log-bodies': { type: 'boolean', default: false },
    },
  })
  const stateDir = values['state-dir']
  if (stateDir === undefined) throw new Error('--state-dir is required')
  const withHosts = values['no-hosts'] !== true
  let driver: HostDriver = createNullDriver()
  if (withHosts) driver = (await loadHosts()).createNamespaceDriver({ stateDir: hostsStateDir(stateDir) })
  const api = await startLabApi({
    stateDir,
    port: Number(values.port),
    driver,
    log,
    logRequests: true,
    logBodies: values['log-bodies'] === true,
  })
  const info: DaemonInfo = { pid: process.pid, port: api.port, url: api.url, withHosts, startedAt: new Date().toISOString(), cloudsYaml: api.cloudsYaml }
  await writeFileAtomic(labPaths(stateDir).daemon, `${JSON.stringify(info, null, 2)}\n`, 0o644)
  log(`runbook lab API listening on ${api.url} (hosts ${withHosts ? 'on' : 'off'}), state in ${stateDir}`)
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: stopping`)
    void api
      .close()
      .then(() => rm(labPaths(stateDir).daemon, { force: true }))
      .then(() => process.exit(0))
      .catch((e: unknown) => {
        log(`stop failed: ${e instanceof Error ? e.message : String(e)}`)
        process.exit(1)
      })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((e: unknown) => {
  log(`runbook lab API failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
  process.exit(1)
})
