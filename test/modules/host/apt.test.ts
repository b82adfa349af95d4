import { describe, expect, it } from 'vitest'
import { apt, selectSpecs, type AptState } from '../../../modules/host/apt.ts'
import {
  diffDpkg,
  lockHolder,
  packageStates,
  parseDpkg,
  parseSimulation,
  parseSpec,
} from '../../../modules/host/lib/apt-parse.ts'
import { planTable, type PlanCase } from './harness.ts'

const NOW = 1_700_000_000
const fresh = { now: NOW, listsMtime: NOW - 60 }
const none: AptState = { ...fresh, packages: [], sim: null }

const cases: PlanCase<AptState>[] = [
  {
    name: 'idempotent: installed, nothing selected',
    params: { name: 'keepalived' },
    current: {
      ...fresh,
      packages: [{ spec: 'keepalived', status: 'ii', version: '1:2.2.7-1' }],
      sim: null,
    },
    expected: [],
  },
  {
    name: 'install with a dependency, from the simulation',
    params: { name: 'keepalived' },
    current: {
      ...fresh,
      packages: [{ spec: 'keepalived', status: '', version: '' }],
      sim: {
        ok: true,
        errors: '',
        actions: [
          { op: 'install', name: 'libnl-3-200', to: '3.7.0-0.2' },
          { op: 'install', name: 'keepalived', to: '1:2.2.7-1' },
        ],
      },
    },
    expected: [
      {
        action: 'create',
        target: 'package libnl-3-200',
        key: { kind: 'package', name: 'libnl-3-200' },
        after: { version: '3.7.0-0.2' },
        note: 'dependency',
      },
      {
        action: 'create',
        target: 'package keepalived',
        key: { kind: 'package', name: 'keepalived' },
        after: { version: '1:2.2.7-1' },
      },
    ],
  },
  {
    name: 'latest: an upgrade',
    params: { name: ['rbt-dummy'], state: 'latest' },
    current: {
      ...fresh,
      packages: [{ spec: 'rbt-dummy', status: 'ii', version: '1.0' }],
      sim: {
        ok: true,
        errors: '',
        actions: [{ op: 'upgrade', name: 'rbt-dummy', from: '1.0', to: '2.0' }],
      },
    },
    expected: [
      {
        action: 'update',
        target: 'package rbt-dummy',
        key: { kind: 'package', name: 'rbt-dummy' },
        before: { version: '1.0' },
        after: { version: '2.0' },
      },
    ],
  },
  {
    name: 'idempotent: latest already newest (simulated, nothing to do)',
    params: { name: 'rbt-dummy', state: 'latest' },
    current: {
      ...fresh,
      packages: [{ spec: 'rbt-dummy', status: 'ii', version: '2.0' }],
      sim: { ok: true, errors: '', actions: [] },
    },
    expected: [],
  },
  {
    name: 'absent with purge',
    params: { name: 'rbt-dummy', state: 'absent', purge: true },
    current: {
      ...fresh,
      packages: [{ spec: 'rbt-dummy', status: 'ii', version: '2.0' }],
      sim: { ok: true, errors: '', actions: [{ op: 'purge', name: 'rbt-dummy', from: '2.0' }] },
    },
    expected: [
      {
        action: 'delete',
        target: 'package rbt-dummy',
        key: { kind: 'package', name: 'rbt-dummy' },
        before: { version: '2.0' },
        note: 'purge',
      },
    ],
  },
  {
    name: 'stale cache: update first; unknown package versions known after it',
    params: { name: 'rbt-dummy', update_cache: true, cache_valid_time: 3600 },
    current: {
      now: NOW,
      listsMtime: NOW - 7200,
      packages: [{ spec: 'rbt-dummy', status: '', version: '' }],
      sim: { ok: false, errors: 'E: Unable to locate package rbt-dummy', actions: [] },
    },
    expected: [
      {
        action: 'run',
        target: 'apt cache',
        key: { kind: 'cache', name: 'apt' },
        note: 'apt-get update: lists are 7200 s old (valid 3600 s)',
      },
      {
        action: 'create',
        target: 'package rbt-dummy',
        key: { kind: 'package', name: 'rbt-dummy' },
        after: { version: '(known after apply)' },
        note: 'known after apt-get update',
      },
    ],
  },
  {
    name: 'idempotent: cache fresh enough',
    params: { update_cache: true, cache_valid_time: 3600 },
    current: none,
    expected: [],
  },
  {
    name: 'update_cache without a validity always runs',
    params: { update_cache: true },
    current: none,
    expected: [
      {
        action: 'run',
        target: 'apt cache',
        key: { kind: 'cache', name: 'apt' },
        note: 'apt-get update: update_cache without cache_valid_time (lists are 60 s old)',
      },
    ],
  },
  {
    name: 'a failed simulation without an update to come is an error',
    params: { name: 'nope' },
    current: {
      ...fresh,
      packages: [{ spec: 'nope', status: '', version: '' }],
      sim: { ok: false, errors: 'E: Unable to locate package nope', actions: [] },
    },
    throws: /Unable to locate package nope/,
  },
]

describe('apt plan', () => planTable(apt, cases))

const pkg = (spec: string, status: string, version: string) => ({ spec, status, version })

describe('apt selection: which named packages still need apt, from dpkg state alone', () => {
  it.each([
    { state: 'present', purge: false, pkgs: [pkg('k', 'ii', '1')], want: [] },
    { state: 'present', purge: false, pkgs: [pkg('k', '', '')], want: ['k'] },
    { state: 'present', purge: false, pkgs: [pkg('k', 'rc', '1')], want: ['k'] },
    { state: 'present', purge: false, pkgs: [pkg('k', 'iU', '1')], want: ['k'] },
    { state: 'present', purge: false, pkgs: [pkg('k=2', 'ii', '1')], want: ['k=2'] },
    { state: 'present', purge: false, pkgs: [pkg('k=1', 'ii', '1')], want: [] },
    { state: 'latest', purge: false, pkgs: [pkg('k', 'ii', '1')], want: ['k'] },
    { state: 'latest', purge: false, pkgs: [pkg('k', '', '')], want: ['k'] },
    { state: 'absent', purge: false, pkgs: [pkg('k', 'ii', '1')], want: ['k'] },
    { state: 'absent', purge: false, pkgs: [pkg('k', '', '')], want: [] },
    { state: 'absent', purge: false, pkgs: [pkg('k', 'un', '')], want: [] },
    { state: 'absent', purge: false, pkgs: [pkg('k', 'rc', '1')], want: [] },
    { state: 'absent', purge: true, pkgs: [pkg('k', 'rc', '1')], want: ['k'] },
    {
      state: 'present',
      purge: false,
      pkgs: [pkg('a', 'ii', '1'), pkg('b', '', ''), pkg('c', 'ii', '3')],
      want: ['b'],
    },
  ] as const)('$state (purge $purge) over $pkgs.0.status', ({ state, purge, pkgs, want }) => {
    expect(selectSpecs({ state, purge }, pkgs)).toEqual(want)
  })

  it('plans nothing for an installed package even if a stale simulation lists an upgrade', () => {
    const p = apt.params.parse({ name: 'k' })
    const sim = {
      ok: true,
      errors: '',
      actions: [{ op: 'upgrade' as const, name: 'k', from: '1', to: '2' }],
    }
    expect(apt.plan(p, { ...fresh, packages: [pkg('k', 'ii', '1')], sim })).toEqual([])
  })
})

describe('apt parsing', () => {
  it('reads apt-get -s lines', () => {
    const out = [
      'The following packages will be DOWNGRADED:',
      '  old-pkg',
      'Inst libfoo (1.2 Debian:12.1/stable [amd64])',
      'Inst keepalived [1:2.2.7-1] (1:2.2.8-1 Debian:12.2/stable [amd64])',
      'Inst old-pkg [2.0] (1.0 localhost [all])',
      'Conf keepalived (1:2.2.8-1 Debian:12.2/stable [amd64])',
      'Remv gone [0.9]',
      'Purg purged [3]',
    ].join('\n')
    expect(parseSimulation(out)).toEqual([
      { op: 'install', name: 'libfoo', to: '1.2' },
      { op: 'upgrade', name: 'keepalived', from: '1:2.2.7-1', to: '1:2.2.8-1' },
      { op: 'downgrade', name: 'old-pkg', from: '2.0', to: '1.0' },
      { op: 'remove', name: 'gone', from: '0.9' },
      { op: 'purge', name: 'purged', from: '3' },
    ])
  })

  it("sorts one dpkg-query's lines out to the named specs", () => {
    const out = [
      'libc6\tamd64\tii \t2.36-9\n',
      'libc6\ti386\tun \t\n',
      'libfoo\ti386\tii \t1.0\n',
      'libfoo\tamd64\trc \t0.9\n',
      'old\tamd64\trc \t3\n',
      'keepalived\tamd64\tii \t1:2.2.7-1\n',
      'garbage line\n',
    ].join('')
    expect(
      packageStates(
        ['libc6', 'libfoo', 'libfoo:amd64', 'libc6:i386', 'old', 'keepalived=1:2.2.7-1', 'nosuch'],
        out,
      ),
    ).toEqual([
      // the installed architecture wins whatever the order
      { spec: 'libc6', status: 'ii', version: '2.36-9' },
      { spec: 'libfoo', status: 'ii', version: '1.0' },
      // an architecture qualifier takes only that architecture's line
      { spec: 'libfoo:amd64', status: 'rc', version: '0.9' },
      { spec: 'libc6:i386', status: 'un', version: '' },
      { spec: 'old', status: 'rc', version: '3' },
      { spec: 'keepalived=1:2.2.7-1', status: 'ii', version: '1:2.2.7-1' },
      { spec: 'nosuch', status: '', version: '' },
    ])
    expect(packageStates(['a'], '')).toEqual([{ spec: 'a', status: '', version: '' }])
  })

  it('splits specs', () => {
    expect(parseSpec('libc6:amd64=2.36-9')).toEqual({
      spec: 'libc6:amd64=2.36-9',
      name: 'libc6:amd64',
      version: '2.36-9',
    })
  })

  it('diffs dpkg snapshots into installed / upgraded / removed', () => {
    const before = parseDpkg('a\tii \t1\nb\tii \t1\nc\tii \t1\nd\trc \t1\n')
    const after = parseDpkg('a\tii \t2\nb\trc \t1\nn\tii \t5\n')
    expect(diffDpkg(before, after)).toEqual({
      installed: [{ name: 'n', version: '5' }],
      upgraded: [{ name: 'a', from: '1', to: '2' }],
      removed: [
        { name: 'b', version: '1' },
        { name: 'c', version: '1' },
        { name: 'd', version: '1' },
      ],
    })
  })

  it('recognises a held lock', () => {
    expect(
      lockHolder(
        'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\nN: Be aware',
      ),
    ).toBe('apt-get 4242 holds /var/lib/dpkg/lock-frontend')
    expect(lockHolder('E: Unable to locate package x')).toBeUndefined()
  })

  it('refuses names that are not package names', () => {
    expect(() => apt.params.parse({ name: 'keepalived; rm -rf /' })).toThrow()
  })
})
