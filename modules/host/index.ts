/**
 * The host modules: everything that acts on one host through its Connection (local or SSH).
 */
import { address } from './address.ts'
import { apt } from './apt.ts'
import { command } from './command.ts'
import { copy } from './copy.ts'
import { facts } from './facts.ts'
import { file } from './file.ts'
import { ping } from './ping.ts'
import { service } from './service.ts'
import { shell } from './shell.ts'
import { sysctl } from './sysctl.ts'
import { template } from './template.ts'
import { waitFor } from './wait-for.ts'

/**
 * Every host module, for the registry.
 * @example const registry = createRegistry([...builtinModules, ...hostModules])
 */
export const hostModules = [
  command,
  shell,
  copy,
  template,
  file,
  waitFor,
  apt,
  service,
  sysctl,
  address,
  facts,
  ping,
] as const
