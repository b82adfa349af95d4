/**
 * The keepalived modules: the config of a VRRP cluster checked as a whole, the failover test the
 * seeds end with, the LVS check (spread, IPVS table, health checks), who holds a VIP now, and whether it answers
 * (and why not).
 */
import { keepalivedConfig } from './config.ts'
import { keepalivedFailover } from './failover.ts'
import { keepalivedLvsCheck } from './lvs-check.ts'
import { keepalivedVipAnswers } from './vip-answers.ts'
import { keepalivedVipHolder } from './vip-holder.ts'

/**
 * Every keepalived module, for the registry.
 * @example const registry = createRegistry([...builtinModules, ...hostModules, ...keepalivedModules])
 */
export const keepalivedModules = [
  keepalivedConfig,
  keepalivedFailover,
  keepalivedLvsCheck,
  keepalivedVipHolder,
  keepalivedVipAnswers,
] as const
