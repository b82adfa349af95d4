/**
 * The Nova scenario (nova-scenario.ts) against the lab standing for Zed (maximum 2.93); the same
 * runs against the real Nova 26 in test/e2e/conformance.test.ts.
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { novaScenario } from './nova-scenario.ts'
import { startCloud, type TestCloud } from './harness.ts'

describe('the Nova scenario against the lab standing for Zed', () => {
  let cloud: TestCloud
  beforeAll(async () => {
    cloud = await startCloud({ novaMaxMicroversion: '2.93', capacity: { vcpus: 8, ramMb: 16384 } })
  })
  afterAll(async () => {
    await cloud.close()
  })
  novaScenario({
    cloud: () => cloud.clouds['lab'] ?? {},
    image: 'Debian 12',
    flavor: 'm1.small',
    levels: [
      { configured: '2.37', expected: '2.37' },
      { configured: '2.60', expected: '2.60' },
      { configured: undefined, expected: '2.93' },
    ],
  })
})
