/** Where the lab keeps its files, and the defaults `runbook lab` uses. */
import { join } from 'node:path'

/** The state dir when neither the caller nor RUNBOOK_LAB_DIR says otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/runbook-lab'
/** The API's port when neither the caller nor RUNBOOK_LAB_PORT says otherwise. */
export const DEFAULT_PORT = 8780

/** What the daemon writes to daemon.json once it answers. */
export interface DaemonInfo {
  pid: number
  port: number
  url: string
  withHosts: boolean
  startedAt: string
  cloudsYaml: string
  /** The package mirror the VMs use (`http://198.51.100.1:8781/debian`), null when it is off or did not start. */
  mirrorUrl?: string | null
  /** Why the mirror server did not start. */
  mirrorError?: string
}

/** What `labUp` writes before it starts the daemon (so `labDown` works even if it never answered). */
export interface LaunchInfo {
  pid: number
  port: number
  withHosts: boolean
  startedAt: string
}

/** The files of a lab state dir. */
export function labPaths(stateDir: string): {
  daemon: string
  launch: string
  log: string
  state: string
  clouds: string
  mirror: string
} {
  return {
    mirror: join(stateDir, 'mirror', 'debian'),
    daemon: join(stateDir, 'daemon.json'),
    launch: join(stateDir, 'launch.json'),
    log: join(stateDir, 'lab.log'),
    state: join(stateDir, 'api-state.json'),
    clouds: join(stateDir, 'clouds.yaml'),
  }
}
