/**
 * The module registry: one line per module family. Adding a module is one file in its family
 * and one entry in that family's list.
 */
import { createRegistry, type ModuleRegistry } from '../engine/module.ts'
import { builtinModules } from './builtin/index.ts'
import { hostModules } from './host/index.ts'
import { keepalivedModules } from './keepalived/index.ts'
import { openstackModules } from './openstack/index.ts'

/** Every module, by name. */
export const registry: ModuleRegistry = createRegistry([
  ...builtinModules,
  ...hostModules,
  ...openstackModules,
  ...keepalivedModules,
])
