/**
 * The ConnectionFactory for runs that reach hosts over SSH: local hosts get a LocalConnection,
 * every other host a pooled SshConnection whose settings come from the host's variables
 * (Ansible's names work too: ansible_host, ansible_user, ansible_port, ...).
 */
import { settingsMemo } from './host-vars.ts'
import { isLocalHost, type ConnectionFactory } from './factory.ts'
import { LocalConnection } from './local.ts'
import { ConnectionPool, type ConnectionPoolOptions } from './pool.ts'
import type { HostConnectionSettings } from './settings.ts'
import type { Connection } from './types.ts'

export { connectionVars, settingsFromVars } from './host-vars.ts'

/**
 * A ConnectionFactory over a ConnectionPool.
 * @example
 * const connections = sshConnectionFactory({ defaults: { projectKnownHosts: path.join(baseDir, '.runbook/known_hosts') } })
 */
export function sshConnectionFactory(
  options: Omit<ConnectionPoolOptions, 'resolveHost'> = {},
): ConnectionFactory {
  let varsOf: (host: string) => Readonly<Record<string, unknown>> = () => ({})
  const settingsFromVars = settingsMemo()
  // A `via` entry with user@ or :port is a literal hop, not an inventory host.
  const resolveHost = (name: string): HostConnectionSettings | undefined =>
    /[@:]/.test(name) ? undefined : settingsFromVars(name, varsOf(name))
  const pool = new ConnectionPool({ ...options, resolveHost })
  const locals = new Map<string, Connection>()
  return {
    async get(host, lookup) {
      varsOf = lookup
      const vars = lookup(host)
      if (isLocalHost(host, vars)) {
        let c = locals.get(host)
        if (!c) locals.set(host, (c = new LocalConnection(host)))
        return c
      }
      return pool.get(host, () => settingsFromVars(host, vars))
    },
    async drop(host) {
      locals.delete(host)
      await pool.drop(host)
    },
    async closeAll() {
      locals.clear()
      await pool.closeAll()
    },
  }
}
