import { describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import {
  parseProbe,
  probeScript,
  type ServiceState,
} from '../../../modules/host/lib/init-system.ts'
import { service } from '../../../modules/host/service.ts'
import { testContext } from '../../helpers/context.ts'
import { CountingConnection, planTable, type PlanCase } from './harness.ts'

const sysv = (running: boolean, enabled: boolean | null = true): ServiceState => ({
  init: 'sysv',
  exists: true,
  running,
  enabled,
  pid: running ? 42 : null,
  detail: running ? 'pidfile' : 'none',
})

const cases: PlanCase<ServiceState>[] = [
  {
    name: 'start a stopped service',
    params: { name: 'keepalived', state: 'started' },
    current: sysv(false),
    expected: [
      {
        action: 'update',
        target: 'service keepalived',
        key: { kind: 'running', name: 'keepalived' },
        before: { running: false },
        after: { running: true },
      },
    ],
  },
  {
    name: 'idempotent: started and enabled',
    params: { name: 'keepalived', state: 'started', enabled: true },
    current: sysv(true),
    expected: [],
  },
  {
    name: 'stop a running service',
    params: { name: 'keepalived', state: 'stopped' },
    current: sysv(true),
    expected: [
      {
        action: 'update',
        target: 'service keepalived',
        key: { kind: 'running', name: 'keepalived' },
        before: { running: true },
        after: { running: false },
      },
    ],
  },
  {
    name: 'idempotent: stopped',
    params: { name: 'keepalived', state: 'stopped' },
    current: sysv(false),
    expected: [],
  },
  {
    name: 'enable at boot only',
    params: { name: 'keepalived', enabled: true },
    current: sysv(true, false),
    expected: [
      {
        action: 'update',
        target: 'service keepalived at boot',
        key: { kind: 'enabled', name: 'keepalived' },
        before: { enabled: false },
        after: { enabled: true },
      },
    ],
  },
  {
    name: 'restarted is a run, always',
    params: { name: 'keepalived', state: 'restarted' },
    current: sysv(true),
    expected: [
      {
        action: 'run',
        target: 'service keepalived',
        key: { kind: 'action', name: 'keepalived' },
        after: { action: 'restart' },
        note: 'restart (pidfile)',
      },
    ],
  },
  {
    name: 'reloaded on a stopped service starts it',
    params: { name: 'keepalived', state: 'reloaded' },
    current: sysv(false),
    expected: [
      {
        action: 'update',
        target: 'service keepalived',
        key: { kind: 'running', name: 'keepalived' },
        before: { running: false },
        after: { running: true },
        note: 'reloaded requested, not running: start',
      },
    ],
  },
  {
    name: 'not installed yet (plan of a fresh host)',
    params: { name: 'keepalived', state: 'started' },
    current: { ...sysv(false), exists: false },
    expected: [
      {
        action: 'update',
        target: 'service keepalived',
        key: { kind: 'running', name: 'keepalived' },
        before: { running: false },
        after: { running: true },
        note: 'not installed yet (sysv); an earlier task must install it',
      },
    ],
  },
]

describe('service plan', () => planTable(service, cases))

describe('service probe', () => {
  it('reads systemd properties', () => {
    expect(
      parseProbe({
        init: 'systemd',
        LoadState: 'loaded',
        ActiveState: 'active',
        SubState: 'running',
        UnitFileState: 'enabled',
        MainPID: '812',
      }),
    ).toEqual({
      init: 'systemd',
      exists: true,
      running: true,
      enabled: true,
      pid: 812,
      detail: 'active/running',
    })
    expect(
      parseProbe({
        init: 'systemd',
        LoadState: 'not-found',
        ActiveState: 'inactive',
        SubState: 'dead',
        UnitFileState: '',
        MainPID: '0',
      }),
    ).toMatchObject({ exists: false, running: false, enabled: null, pid: null })
  })

  it('reads the SysV probe', () => {
    expect(
      parseProbe({
        init: 'sysv',
        exists: '1',
        running: '1',
        how: 'pidfile',
        pid: '77',
        enabled: '0',
      }),
    ).toEqual({
      init: 'sysv',
      exists: true,
      running: true,
      enabled: false,
      pid: 77,
      detail: 'pidfile',
    })
  })

  it('asks only the known init system once it is cached', () => {
    expect(probeScript('keepalived', 'sysv')).not.toContain('systemctl')
    expect(probeScript('keepalived', 'systemd')).not.toContain('/etc/init.d')
    expect(probeScript('keepalived', undefined)).toContain('/run/systemd/system')
  })

  it('probes this machine in one round trip (sshd has an init script here, no systemd)', async () => {
    const conn = new CountingConnection(new LocalConnection('localhost'))
    const ctx = testContext({ conn })
    const s = await service.gather(ctx, service.params.parse({ name: 'ssh', enabled: true }))
    expect([s.init, s.exists, conn.trips]).toEqual(['sysv', true, 1])
    expect(ctx.cache.get('host.init')).toBe('sysv')
  })
})
