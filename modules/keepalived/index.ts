/**
 * The keepalived modules: the config of a VRRP cluster checked as a whole, the failover test the
 * seeds end with, and who holds a VIP now.
 */
import { keepalivedConfig } from './config.ts'
import { keepalivedFailover } from './failover.ts'
import { keepalivedVipHolder } from './vip-holder.ts'

/**
 * Every keepalived module, for the registry.
 * @example const registry = createRegistry([...builtinModules, ...hostModules, ...keepalivedModules])
 */
export const keepalivedModules = [
  keepalivedConfig,
  keepalivedFailover,
  keepalivedVipHolder,
] as const
