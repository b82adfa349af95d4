/**
 * The lab API as a background process, started (detached) by `labUp` in lab/index.ts:
 *
 *   node --import tsx lab/daemon.ts --state-dir DIR --port 8780 [--no-hosts] [--mirror-port 8781]
 *
 * With `--mirror-port` (hosts on) it also serves the package mirror `labUp` built in
 * DIR/mirror/debian at http://198.51.100.1:PORT/debian, and the VMs it boots use it.
 * It writes DIR/daemon.json once it answers, logs to stdout (lab.log), and on SIGTERM stops
 * listening, finishes what is in flight and exits. The hosts stay up: `labDown` tears them down.
 */
import { mkdir, rm } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { HostDriver } from './driver.ts'
import { MIRROR_HOST, mirrorUrl, startMirrorServer } from './mirror/server.ts'
import type { MirrorServer } from './mirror/server.ts'
import { createNamespaceDriver, hostsStateDir } from './real-hosts.ts'
import { labPaths } from './api/paths.ts'
import type { DaemonInfo } from './api/paths.ts'
import { createNullDriver } from './api/null-driver.ts'
import { startLabApi } from './api/server.ts'
import { writeFileAtomic } from './api/store.ts'

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
      'mirror-port': { type: 'string' },
    },
  })
  const stateDir = values['state-dir']
  if (stateDir === undefined) throw new Error('--state-dir is required')
  const withHosts = values['no-hosts'] !== true
  const mirrorPort =
    withHosts && values['mirror-port'] !== undefined ? Number(values['mirror-port']) : null
  if (
    mirrorPort !== null &&
    !(Number.isInteger(mirrorPort) && mirrorPort > 0 && mirrorPort < 65536)
  )
    throw new Error(`--mirror-port ${String(values['mirror-port'])} is not a port`)
  let driver: HostDriver = createNullDriver()
  if (withHosts) {
    driver = createNamespaceDriver({
      stateDir: hostsStateDir(stateDir),
      ...(mirrorPort === null ? {} : { aptMirror: mirrorUrl(mirrorPort) }),
      log,
    })
  }
  const api = await startLabApi({
    stateDir,
    port: Number(values.port),
    driver,
    log,
    logRequests: true,
    logBodies: values['log-bodies'] === true,
  })
  // after the API: its start made the hosts' rbl-fip0, which carries the mirror's address
  let mirror: MirrorServer | null = null
  let mirrorError: string | undefined
  if (mirrorPort !== null) {
    try {
      await mkdir(labPaths(stateDir).mirror, { recursive: true })
      mirror = await startMirrorServer({
        dir: labPaths(stateDir).mirror,
        host: MIRROR_HOST,
        port: mirrorPort,
        log,
      })
      log(`package mirror for the VMs at ${mirror.url}`)
    } catch (e) {
      mirrorError = e instanceof Error ? e.message : String(e)
      log(`package mirror: cannot serve it on ${MIRROR_HOST}:${mirrorPort}: ${mirrorError}`)
    }
  }
  const info: DaemonInfo = {
    pid: process.pid,
    port: api.port,
    url: api.url,
    withHosts,
    startedAt: new Date().toISOString(),
    cloudsYaml: api.cloudsYaml,
    mirrorUrl: mirror?.url ?? null,
    ...(mirrorError === undefined ? {} : { mirrorError }),
  }
  await writeFileAtomic(labPaths(stateDir).daemon, `${JSON.stringify(info, null, 2)}\n`, 0o644)
  log(
    `runbook lab API listening on ${api.url} (hosts ${withHosts ? 'on' : 'off'}), state in ${stateDir}`,
  )
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: stopping`)
    void Promise.all([api.close(), mirror?.close()])
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
