import { describe, expect, it } from 'vitest'
import { persist, procPath, sysctl, type SysctlState } from '../../../modules/host/sysctl.ts'
import { planTable, type PlanCase } from './harness.ts'

const F = '/etc/sysctl.d/99-runbook.conf'
const K = 'net.ipv4.conf.all.arp_ignore'

const sysctlCases: PlanCase<SysctlState>[] = [
  {
    name: 'neither set nor persisted',
    params: { name: K, value: 1 },
    current: { now: '0', file: null, others: [] },
    expected: [
      {
        action: 'update',
        target: `sysctl ${K}`,
        key: { kind: 'value', name: K },
        before: { value: '0' },
        after: { value: '1' },
      },
      {
        action: 'create',
        target: `file ${F}`,
        key: { kind: 'file', name: F },
        before: { [K]: null },
        after: { [K]: '1' },
        diff: { path: F, before: '', after: `${K} = 1\n` },
      },
    ],
  },
  {
    name: 'idempotent: set and persisted',
    params: { name: K, value: 1 },
    current: { now: '1', file: `# x\n${K}=1\n`, others: [] },
    expected: [],
  },
  {
    name: 'persisted value differs; later file overrides',
    params: { name: K, value: '1' },
    current: {
      now: '1',
      file: `${K} = 2\nnet.ipv4.ip_forward = 1\n`,
      others: [{ path: '/etc/sysctl.conf', value: '0' }],
    },
    expected: [
      {
        action: 'update',
        target: `file ${F}`,
        key: { kind: 'file', name: F },
        before: { [K]: '2' },
        after: { [K]: '1' },
        diff: {
          path: F,
          before: `${K} = 2\nnet.ipv4.ip_forward = 1\n`,
          after: `${K} = 1\nnet.ipv4.ip_forward = 1\n`,
        },
        note: 'also set in /etc/sysctl.conf (= 0), read later at boot: that value wins',
      },
    ],
  },
  {
    name: 'reload false: only the file',
    params: { name: K, value: 1, reload: false },
    current: { now: '0', file: `${K} = 1\n`, others: [] },
    expected: [],
  },
  {
    name: 'whitespace in values is normalised',
    params: { name: 'net.ipv4.ip_local_port_range', value: '32768   60999' },
    current: {
      now: '32768 60999',
      file: 'net.ipv4.ip_local_port_range = 32768 60999\n',
      others: [],
    },
    expected: [],
  },
  {
    name: 'absent removes the line, keeps others',
    params: { name: K, state: 'absent' },
    current: { now: '1', file: `a.b = 1\n${K} = 1\n`, others: [] },
    expected: [
      {
        action: 'update',
        target: `file ${F}`,
        key: { kind: 'file', name: F },
        before: { [K]: '1' },
        after: { [K]: null },
        diff: { path: F, before: `a.b = 1\n${K} = 1\n`, after: 'a.b = 1\n' },
      },
    ],
  },
  {
    name: 'idempotent: absent and not in the file',
    params: { name: K, state: 'absent' },
    current: { now: '1', file: 'a.b = 1\n', others: [] },
    expected: [],
  },
  {
    name: 'a key the kernel does not have',
    params: { name: 'net.ipv4.vs.expire_nodest_conn', value: 1 },
    current: { now: null, file: null, others: [] },
    throws: /no such key/,
  },
]

describe('sysctl plan', () => planTable(sysctl, sysctlCases))

describe('sysctl helpers', () => {
  it('maps keys to /proc/sys paths, with slashes standing for dots', () => {
    expect(procPath('net.ipv4.conf.eth0/100.rp_filter')).toBe(
      '/proc/sys/net/ipv4/conf/eth0.100/rp_filter',
    )
    expect(procPath('net/ipv4/ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward')
  })
  it('rewrites the first line, drops duplicates, appends when missing', () => {
    expect(persist('a = 1\nb=2\na = 3\n', 'a', '9')).toBe('a = 9\nb=2\n')
    expect(persist('b = 2', 'a', '1')).toBe('b = 2\na = 1\n')
    expect(persist('a = 1\n', 'a', undefined)).toBe('')
  })
})
