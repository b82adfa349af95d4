/**
 * The Neutron scenario (neutron-scenario.ts) against the lab; test/e2e/conformance.test.ts runs
 * the same against the real Keystone + Neutron.
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { neutronScenario } from './neutron-scenario.ts'
import { startCloud, type TestCloud } from './harness.ts'

describe('the Neutron scenario against the lab', () => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud()
  })
  afterAll(async () => {
    await cloud.close()
  })
  neutronScenario({
    cloud: () => cloud.clouds['lab'] ?? {},
    vip: '192.0.2.230',
    vmIp: '192.0.2.231',
  })
})
