import type { HostDriver } from '../driver.ts'

/**
 * A HostDriver that makes nothing, for tests of the API's shapes (`withHosts: false`). It is not
 * a user-facing fake: servers get no host, the console log says so, nothing is enforced.
 * @example await startLabApi({ stateDir, port: 0, driver: createNullDriver() })
 */
export function createNullDriver(): HostDriver {
  const log = (id: string) =>
    `runbook lab: hosts are disabled (API-only mode); server ${id} has no host.\n`
  return {
    init: async () => undefined,
    createVm: async (spec) => ({ consoleLog: log(spec.id) }),
    deleteVm: async () => undefined,
    stopVm: async () => undefined,
    startVm: async (id) => ({ consoleLog: log(id) }),
    syncNetwork: async () => undefined,
    consoleLog: async (id) => log(id),
    teardown: async () => undefined,
  }
}
