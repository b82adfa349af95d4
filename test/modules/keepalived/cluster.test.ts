import { describe, expect, it } from 'vitest'
import { keepalivedConfig, prepareConfig } from '../../../modules/keepalived/config.ts'
import {
  clusterProblems,
  formatProblems,
  type HostView,
} from '../../../modules/keepalived/lib/cluster.ts'
import { hostOn, seed001, seed002, seed003, seed004 } from './seeds.ts'

type Params = Record<string, unknown>
const node = (
  name: string,
  state: string,
  priority: number,
  address?: string,
): Record<string, unknown> => ({ name, state, priority, ...(address ? { address } : {}) })

/** The one issue the schema reports: its path and message. */
function refusal(params: Params): { path: string; message: string } | null {
  const r = keepalivedConfig.params.safeParse(params)
  if (r.success) return null
  const issue = r.error.issues[0]
  return { path: (issue?.path ?? []).join('.'), message: issue?.message ?? '' }
}

const cases: { name: string; params: Params; path: string; message: RegExp }[] = [
  {
    name: 'two MASTERs',
    params: { ...seed001, cluster: [node('a', 'MASTER', 120), node('b', 'MASTER', 90)] },
    path: 'cluster.1.state',
    message: /b: a second MASTER \(a is MASTER too\)/,
  },
  {
    name: 'equal priorities',
    params: { ...seed001, cluster: [node('a', 'MASTER', 100), node('b', 'BACKUP', 100)] },
    path: 'cluster.1.priority',
    message: /b: priority 100 is also a's/,
  },
  {
    name: 'a BACKUP above the MASTER',
    params: { ...seed001, cluster: [node('a', 'MASTER', 90), node('b', 'BACKUP', 120)] },
    path: 'cluster.1.priority',
    message: /b: priority 120 is above the MASTER's \(a \(MASTER, priority 90\)\)/,
  },
  {
    name: 'priority 0',
    params: { ...seed001, cluster: [node('a', 'MASTER', 120), node('b', 'BACKUP', 0)] },
    path: 'cluster.1.priority',
    message: /b: priority 0 is outside 1-254/,
  },
  {
    name: 'priority 300',
    params: { ...seed001, cluster: [node('a', 'MASTER', 300), node('b', 'BACKUP', 90)] },
    path: 'cluster.0.priority',
    message: /a: priority 300 is outside 1-254/,
  },
  {
    name: 'priority 255 for a non-owner',
    params: {
      ...seed001,
      cluster: [node('a', 'MASTER', 255, '192.0.2.11'), node('b', 'BACKUP', 90)],
    },
    path: 'cluster.0.priority',
    message: /a: priority 255 is reserved for the address owner/,
  },
  {
    name: 'the address owner as BACKUP',
    params: {
      ...seed001,
      virtual_ipaddresses: ['192.0.2.11/24'],
      cluster: [node('a', 'BACKUP', 255, '192.0.2.11'), node('b', 'BACKUP', 90)],
    },
    path: 'cluster.0.state',
    message: /a: the address owner \(priority 255\) must be in state MASTER/,
  },
  {
    name: 'a fractional advert_int (VRRPv2 rounds it)',
    params: { ...seed001, advert_int: 0.5 },
    path: 'advert_int',
    message: /expected int/,
  },
  {
    name: 'vrid 0',
    params: { ...seed001, virtual_router_id: 0 },
    path: 'virtual_router_id',
    message: />=1/,
  },
  {
    name: 'vrid 256',
    params: { ...seed001, virtual_router_id: 256 },
    path: 'virtual_router_id',
    message: /<=255/,
  },
  {
    name: 'auth_pass of 9 characters (keepalived truncates silently)',
    params: { ...seed001, auth_pass: 'abcdefghi' },
    path: 'auth_pass',
    message: /auth_pass has 9 characters; keepalived silently uses only the first 8/,
  },
  {
    name: 'auth_pass with a blank',
    params: { ...seed001, auth_pass: 'a b' },
    path: 'auth_pass',
    message: /contains a blank/,
  },
  {
    name: 'a VIP that is not a CIDR',
    params: { ...seed001, virtual_ipaddresses: ['192.0.2.999/24'] },
    path: 'virtual_ipaddresses.0',
    message: /'192.0.2.999\/24' is not an IPv4 address or CIDR/,
  },
  {
    name: 'a VIP with prefix 33',
    params: { ...seed001, virtual_ipaddresses: ['192.0.2.254/33'] },
    path: 'virtual_ipaddresses.0',
    message: /not an IPv4 address or CIDR/,
  },
  {
    name: 'node not in the cluster',
    params: { ...seed001, node: 'kld-vm-3' },
    path: 'node',
    message: /'kld-vm-3' is not in cluster \(kld-vm-1, kld-vm-2\)/,
  },
  {
    name: 'unicast without every address',
    params: {
      ...seed003,
      cluster: [node('freepbx1', 'MASTER', 110, '192.0.2.31'), node('freepbx2', 'BACKUP', 100)],
    },
    path: 'cluster.1.address',
    message: /freepbx2: unicast needs every node's address/,
  },
  {
    name: 'an address that is not IPv4',
    params: {
      ...seed003,
      cluster: [
        node('freepbx1', 'MASTER', 110, 'pbx1.example'),
        node('freepbx2', 'BACKUP', 100, '192.0.2.32'),
      ],
    },
    path: 'cluster.0.address',
    message: /freepbx1: address 'pbx1.example' is not an IPv4 address/,
  },
  {
    name: 'two nodes with one address',
    params: {
      ...seed003,
      cluster: [
        node('freepbx1', 'MASTER', 110, '192.0.2.31'),
        node('freepbx2', 'BACKUP', 100, '192.0.2.31'),
      ],
    },
    path: 'cluster.1.address',
    message: /freepbx2: address 192.0.2.31 is also freepbx1's/,
  },
  {
    name: 'a name listed twice',
    params: { ...seed001, cluster: [node('a', 'MASTER', 120), node('a', 'BACKUP', 90)] },
    path: 'cluster.1.name',
    message: /a is listed twice/,
  },
  {
    name: 'seed 004 as written: nopreempt on a MASTER',
    params: { ...seed004, cluster: [node('lvs-1', 'MASTER', 100), node('lvs-2', 'BACKUP', 90)] },
    path: 'cluster.0.state',
    message: /lvs-1: state MASTER with nopreempt: keepalived clears nopreempt on a MASTER/,
  },
  {
    name: 'seed 003 as written: AH on a MASTER',
    params: { ...seed003, auth_type: 'AH' },
    path: 'cluster.0.state',
    message: /freepbx1: state MASTER with auth_type AH/,
  },
  {
    name: 'seed 002 as written: DR to another port',
    params: { ...seed002, virtual_servers: [{ ...seed002.virtual_servers[0], port: 22 }] },
    path: 'virtual_servers.0.real_servers.0.port',
    message:
      /real server 192.0.2.238 port 143: with lb_kind DR the packet keeps its port, so the real server must listen on 22/,
  },
  {
    name: 'a virtual server on an address no node owns',
    params: {
      ...seed004,
      virtual_servers: [{ ...seed004.virtual_servers[0], address: '192.0.2.201' }],
    },
    path: 'virtual_servers.0.address',
    message: /192.0.2.201 is not one of virtual_ipaddresses/,
  },
  {
    name: 'a real server without a health check (kept in the table with its service down)',
    params: {
      ...seed004,
      virtual_servers: [
        { ...seed004.virtual_servers[0], real_servers: [{ address: '192.0.2.179', port: 80 }] },
      ],
    },
    path: 'virtual_servers.0.real_servers.0.check',
    message: /real server 192.0.2.179 has no health check/,
  },
  {
    name: 'a real server that is the VIP itself',
    params: {
      ...seed004,
      virtual_servers: [
        {
          ...seed004.virtual_servers[0],
          real_servers: [{ address: '192.0.2.200', port: 80, check: { type: 'TCP_CHECK' } }],
        },
      ],
    },
    path: 'virtual_servers.0.real_servers.0.address',
    message: /real server 192.0.2.200 is a VIP: it would forward to itself/,
  },
  {
    name: 'an HTTP_GET without urls',
    params: {
      ...seed004,
      virtual_servers: [
        {
          ...seed004.virtual_servers[0],
          real_servers: [
            { address: '192.0.2.179', port: 80, check: { type: 'HTTP_GET', urls: [] } },
          ],
        },
      ],
    },
    path: 'virtual_servers.0.real_servers.0.check.urls',
    message: />=1 items/,
  },
]

describe('keepalived.config refuses what keepalived would silently get wrong', () => {
  it.each(cases)('$name', ({ params, path, message }) => {
    const r = refusal(params)
    expect(r?.path).toBe(path)
    expect(r?.message).toMatch(message)
  })

  it('never puts the password in a message', () => {
    const r = refusal({ ...seed001, auth_pass: 'sup3rs3cret' })
    expect(r?.message).not.toContain('sup3rs3cret')
  })

  it('lists every problem at once, each with its field and node', () => {
    const p = keepalivedConfig.params.safeParse({
      ...seed001,
      auth_pass: 'abcdefghij',
      cluster: [node('a', 'MASTER', 100), node('b', 'MASTER', 100)],
    })
    expect(p.success).toBe(false)
    expect(p.error?.issues[0]?.message).toBe(
      [
        '3 problems:',
        '  - cluster[1].state: b: a second MASTER (a is MASTER too); exactly one node starts as MASTER, or none (every node BACKUP: the highest priority wins the election)',
        "  - cluster[1].priority: b: priority 100 is also a's; VRRP would break the tie by IP address, so give every node its own priority",
        '  - auth_pass: auth_pass has 10 characters; keepalived silently uses only the first 8: shorten it',
      ].join('\n'),
    )
  })

  it.each([
    [
      'every node BACKUP (the election picks the highest priority)',
      { ...seed001, cluster: [node('a', 'BACKUP', 120), node('b', 'BACKUP', 90)] },
    ],
    ['one node only', { ...seed001, cluster: [node('a', 'MASTER', 100)] }],
    [
      'the address owner at 255',
      {
        ...seed001,
        virtual_ipaddresses: ['192.0.2.11/24'],
        cluster: [node('a', 'MASTER', 255, '192.0.2.11'), node('b', 'BACKUP', 90)],
      },
    ],
    [
      'NAT may map ports',
      {
        ...seed002,
        virtual_servers: [{ ...seed002.virtual_servers[0], port: 22, lb_kind: 'NAT' }],
      },
    ],
    ['seed 001', seed001],
    ['seed 002 (fixed)', seed002],
    ['seed 003 (PASS)', seed003],
    ['seed 004 (every node BACKUP)', seed004],
  ])('accepts %s', (_name, params) => {
    expect(refusal(params as Params)).toBeNull()
  })

  it('clusterProblems is pure data: no problem, no message', () => {
    const p = keepalivedConfig.params.parse(seed001)
    expect(clusterProblems(p)).toEqual([])
    expect(formatProblems([{ path: ['cluster', 0, 'priority'], message: 'x' }])).toBe(
      'cluster[0].priority: x',
    )
  })
})

const hostCases: { name: string; params: Params; host: HostView; message: RegExp }[] = [
  {
    name: 'this host is not in the cluster',
    params: seed001,
    host: hostOn('kld-vm-3', 'ens3', '192.0.2.33'),
    message:
      /node: this host is 'kld-vm-3', which is not in cluster \(kld-vm-1, kld-vm-2\); set node: to its cluster name/,
  },
  {
    name: 'an interface the host does not have',
    params: { ...seed001, interface: 'eth9' },
    host: hostOn('kld-vm-1', 'ens3', '192.0.2.11'),
    message: /interface: eth9 does not exist on kld-vm-1 \(it has ens3, lo\)/,
  },
  {
    name: 'no interface and no default route',
    params: seed001,
    host: { name: 'kld-vm-1', defaultInterface: null, interfaces: null },
    message: /interface: not given, and kld-vm-1 has no default route/,
  },
  {
    name: 'a VIP outside the interface’s subnet',
    params: { ...seed001, virtual_ipaddresses: ['198.51.100.254/24'] },
    host: hostOn('kld-vm-1', 'ens3', '192.0.2.11'),
    message:
      /virtual_ipaddresses\[0\]: 198.51.100.254 is outside ens3's subnet on kld-vm-1 \(192.0.2.0\/24\)/,
  },
  {
    name: 'a DR real server outside the directors’ network (DR forwards by MAC)',
    params: {
      ...seed004,
      virtual_servers: [
        {
          ...seed004.virtual_servers[0],
          real_servers: [
            ...(seed004.virtual_servers[0]?.real_servers.slice(0, 2) ?? []),
            { address: '198.51.100.181', port: 80, check: { type: 'TCP_CHECK' } },
          ],
        },
      ],
    },
    host: hostOn('lvs-1', 'eth0', '192.0.2.41'),
    message:
      /virtual_servers\[0\].real_servers\[2\].address: real server 198.51.100.181 is outside eth0's network on lvs-1 \(192.0.2.0\/24\): lb_kind DR forwards by MAC address/,
  },
  {
    name: 'a unicast source that is not local (a floating IP)',
    params: {
      ...seed003,
      cluster: [
        node('freepbx1', 'MASTER', 110, '198.51.100.31'),
        node('freepbx2', 'BACKUP', 100, '192.0.2.32'),
      ],
    },
    host: hostOn('freepbx1', 'eno1', '192.0.2.31'),
    message:
      /cluster\[0\].address: freepbx1: 198.51.100.31 is not an address of eno1 on freepbx1 \(192.0.2.31\/24\); unicast_src_ip must be local/,
  },
]

describe('keepalived.config checks this host against its facts', () => {
  it.each(hostCases)('$name', ({ params, host, message }) => {
    expect(() => prepareConfig(keepalivedConfig.params.parse(params), host)).toThrow(message)
  })

  it('the VIP already on the master’s interface does not count as its subnet', () => {
    const host: HostView = {
      name: 'kld-vm-1',
      defaultInterface: 'ens3',
      interfaces: {
        ens3: [
          { address: '192.0.2.11', prefix: 24 },
          { address: '192.0.2.254', prefix: 24 },
        ],
      },
    }
    expect(() => prepareConfig(keepalivedConfig.params.parse(seed001), host)).not.toThrow()
    const outside = { ...seed001, virtual_ipaddresses: ['198.51.100.254/24'] }
    const onIt: HostView = {
      ...host,
      interfaces: {
        ens3: [
          { address: '192.0.2.11', prefix: 24 },
          { address: '198.51.100.254', prefix: 24 },
        ],
      },
    }
    expect(() => prepareConfig(keepalivedConfig.params.parse(outside), onIt)).toThrow(
      /outside ens3's subnet/,
    )
  })

  it('facts unknown: only the node is checked', () => {
    const host: HostView = { name: 'kld-vm-2', defaultInterface: null, interfaces: null }
    expect(
      prepareConfig(keepalivedConfig.params.parse({ ...seed001, interface: 'ens3' }), host).resolved
        .node.name,
    ).toBe('kld-vm-2')
  })
})
