/**
 * The registry the CLI runs with: the built-in and host modules at once, the OpenStack and
 * keepalived families when something names one of their modules (`openstack.port`,
 * `keepalived.config`): a runbook of host tasks never loads their schemas or the HTTP client,
 * about 8 ms of every start. modules/index.ts has every module at once (tests, docs).
 */
import { ExpandableRegistry } from '../engine/module.ts'
import { builtinModules } from './builtin/index.ts'
import { hostModules } from './host/index.ts'

/**
 * A registry of the built-in and host modules that loads the other families on demand.
 * @example const r = moduleRegistry(); await r.load(['openstack.port'])
 */
export function moduleRegistry(): ExpandableRegistry {
  return new ExpandableRegistry(
    [...builtinModules, ...hostModules],
    [
      {
        prefix: 'openstack',
        load: async () => (await import('./openstack/index.ts')).openstackModules,
      },
      {
        prefix: 'keepalived',
        load: async () => (await import('./keepalived/index.ts')).keepalivedModules,
      },
    ],
  )
}
