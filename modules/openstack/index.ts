/**
 * The OpenStack modules: the steps of the seed procedure that talk to the cloud (reserve the VIP
 * port, the VMs and the jumphost's floating IP, the allowed address pairs), through one client per
 * cloud per run (client/).
 */
import { floatingIp } from './floating-ip.ts'
import { keypair } from './keypair.ts'
import { portInfo } from './port-info.ts'
import { port } from './port.ts'
import { securityGroup } from './security-group.ts'
import { server } from './server.ts'

/**
 * Every OpenStack module, for the registry.
 * @example const registry = createRegistry([...builtinModules, ...hostModules, ...openstackModules])
 */
export const openstackModules = [
  port,
  server,
  floatingIp,
  keypair,
  securityGroup,
  portInfo,
] as const
