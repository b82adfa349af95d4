/**
 * How the executor gets a connection for an inventory host: one per host for the whole run,
 * created on first use and closed at the end.
 */
import { LocalConnection } from './local.ts'
import type { Connection } from './types.ts'

/** The connection-related variables of a host, as the inventory and add_host set them. */
export interface HostConnectionVars {
  name: string
  vars: Readonly<Record<string, unknown>>
}

/** Hands out connections per host. */
export interface ConnectionFactory {
  /** The connection to `host`; `varsOf` gives any host's variables (for jumphosts). */
  get(
    host: string,
    varsOf: (host: string) => Readonly<Record<string, unknown>>,
  ): Promise<Connection>
  /** Forgets a host's connection (e.g. the host was deleted). */
  drop(host: string): Promise<void>
  closeAll(): Promise<void>
}

/** Whether a host is reached without SSH: `localhost`, or `connection: local`. */
export function isLocalHost(host: string, vars: Readonly<Record<string, unknown>>): boolean {
  const c = vars.connection ?? vars.ansible_connection
  if (c === 'local') return true
  if (c === 'ssh') return false
  return host === 'localhost' || host === '127.0.0.1'
}

/** A factory that only knows the local machine; SSH hosts are refused. */
export function localOnlyFactory(): ConnectionFactory {
  const conns = new Map<string, Connection>()
  return {
    async get(host, varsOf) {
      if (!isLocalHost(host, varsOf(host)))
        throw new Error(`no SSH support configured for host ${host}`)
      let c = conns.get(host)
      if (!c) conns.set(host, (c = new LocalConnection(host)))
      return c
    },
    async drop(host) {
      conns.delete(host)
    },
    async closeAll() {
      conns.clear()
    },
  }
}
