import { describe, expect, it } from 'vitest'
import { address, cidr, persistContent, type AddressState } from '../../../modules/host/address.ts'
import { planTable, type PlanCase } from './harness.ts'

const lo = (addresses: string[], persisted: string | null = null): AddressState => ({
  interfaceExists: true,
  addresses,
  backend: 'ifupdown',
  persisted,
})
const VIP = '192.0.2.254'
const PERSIST = '/etc/network/interfaces.d/runbook-lo-192-0-2-254-32'

const addressCases: PlanCase<AddressState>[] = [
  {
    name: 'add the VIP to lo',
    params: { address: VIP, interface: 'lo' },
    current: lo(['127.0.0.1/8', '::1/128']),
    expected: [
      {
        action: 'create',
        target: `address ${VIP}/32 on lo`,
        key: { kind: 'address', name: `${VIP}/32` },
        after: { address: `${VIP}/32` },
      },
    ],
  },
  {
    name: 'idempotent: it is there',
    params: { address: `${VIP}/32`, interface: 'lo' },
    current: lo(['127.0.0.1/8', `${VIP}/32`]),
    expected: [],
  },
  {
    name: 'another prefix is replaced',
    params: { address: `${VIP}/32`, interface: 'lo' },
    current: lo([`${VIP}/24`]),
    expected: [
      {
        action: 'replace',
        target: `address ${VIP}/32 on lo`,
        key: { kind: 'address', name: `${VIP}/32` },
        before: { address: `${VIP}/24` },
        after: { address: `${VIP}/32` },
      },
    ],
  },
  {
    name: 'absent removes any prefix',
    params: { address: VIP, interface: 'lo', state: 'absent' },
    current: lo([`${VIP}/24`]),
    expected: [
      {
        action: 'delete',
        target: `address ${VIP}/24 on lo`,
        key: { kind: 'address', name: `${VIP}/24` },
        before: { address: `${VIP}/24` },
      },
    ],
  },
  {
    name: 'persisted as an ifupdown stanza',
    params: { address: VIP, interface: 'lo', persist: true },
    current: lo([`${VIP}/32`]),
    expected: [
      {
        action: 'create',
        target: `file ${PERSIST}`,
        key: { kind: 'file', name: PERSIST },
        diff: {
          path: PERSIST,
          before: '',
          after: persistContent(
            { address: VIP, interface: 'lo', state: 'present', persist: true },
            'ifupdown',
          ),
        },
      },
    ],
  },
  {
    name: 'idempotent: persisted already',
    params: { address: VIP, interface: 'lo', persist: true },
    current: lo(
      [`${VIP}/32`],
      persistContent(
        { address: VIP, interface: 'lo', state: 'present', persist: true },
        'ifupdown',
      ),
    ),
    expected: [],
  },
  {
    name: 'persist without netplan or ifupdown',
    params: { address: VIP, interface: 'lo', persist: true },
    current: { ...lo([`${VIP}/32`]), backend: 'none' },
    throws: /netplan or ifupdown/,
  },
  {
    name: 'no such interface',
    params: { address: VIP, interface: 'eth9' },
    current: { ...lo([]), interfaceExists: false },
    throws: /no interface eth9/,
  },
]

describe('address plan', () => planTable(address, addressCases))

it('address: netplan content and default prefixes', () => {
  expect(cidr('2001:DB8::1')).toBe('2001:db8::1/128')
  expect(
    persistContent(
      { address: `${VIP}/32`, interface: 'lo', state: 'present', persist: true },
      'netplan',
    ),
  ).toBe(
    `# Managed by runbook (address module): ${VIP}/32 on lo\nnetwork:\n  version: 2\n  ethernets:\n    lo:\n      addresses: ["${VIP}/32"]\n`,
  )
})
