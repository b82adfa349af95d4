/**
 * The seeds' keepalived setups as keepalived.config parameters, moved to the documentation
 * addresses (192.0.2.0/24). Where a seed's own config is wrong in a way keepalived hides (seed 003's
 * AH on a MASTER, seed 004's nopreempt on a MASTER, seed 002's DR with remapped ports), the
 * parameters here are the corrected ones; cluster.test.ts shows the originals being refused.
 */
import { createHash } from 'node:crypto'
import type { HostView } from '../../../modules/keepalived/lib/cluster.ts'

/** A host view with one interface and its address. */
export function hostOn(name: string, iface: string, address: string, prefix = 24): HostView {
  return {
    name,
    defaultInterface: iface,
    interfaces: { lo: [{ address: '127.0.0.1', prefix: 8 }], [iface]: [{ address, prefix }] },
  }
}

/** Seed 001 (= 000): two VMs, VIP 192.0.2.254/24, VRRP with a password. */
export const seed001 = {
  cluster: [
    { name: 'kld-vm-1', state: 'MASTER', priority: 120, address: '192.0.2.11' },
    { name: 'kld-vm-2', state: 'BACKUP', priority: 90, address: '192.0.2.22' },
  ],
  virtual_router_id: 254,
  advert_int: 1,
  auth_pass: 'k3Epa1iv',
  virtual_ipaddresses: ['192.0.2.254/24'],
}

/** Seed 003: unicast VRRP between two PBX hosts (PASS instead of the seed's AH on a MASTER). */
export const seed003 = {
  cluster: [
    { name: 'freepbx1', state: 'MASTER', priority: 110, address: '192.0.2.31' },
    { name: 'freepbx2', state: 'BACKUP', priority: 100, address: '192.0.2.32' },
  ],
  instance: 'failover_test',
  virtual_router_id: 10,
  advert_int: 4,
  auth_pass: '1111',
  virtual_ipaddresses: ['192.0.2.33/24'],
  unicast: true,
}

/**
 * Seed 004: LVS/DR with HTTP_GET checks and nopreempt (every node BACKUP). The seed's sync group of
 * one instance is written as a comment: it does nothing, and `keepalived -t` refuses it.
 */
export const seed004 = {
  cluster: [
    { name: 'lvs-1', state: 'BACKUP', priority: 100, address: '192.0.2.41' },
    { name: 'lvs-2', state: 'BACKUP', priority: 90, address: '192.0.2.42' },
  ],
  router_id: 'CK_TEST',
  instance: 'VI_1',
  sync_group: 'G1',
  virtual_router_id: 50,
  nopreempt: true,
  advert_int: 1,
  auth_pass: 'admin123',
  virtual_ipaddresses: ['192.0.2.200'],
  virtual_servers: [
    {
      address: '192.0.2.200',
      port: 80,
      delay_loop: 6,
      lb_algo: 'rr',
      lb_kind: 'DR',
      protocol: 'TCP',
      real_servers: [
        ['192.0.2.179', 'b23518f93b38b0bdeac5a1bf4e205477'],
        ['192.0.2.180', 'b7d8be77ffd1f8f85b8b37fee91d4bb9'],
        ['192.0.2.181', '1fca06d0fe272d1ed040eda7b2c8dd77'],
      ].map(([address, digest]) => ({
        address,
        port: 80,
        weight: 1,
        check: {
          type: 'HTTP_GET',
          urls: [{ path: '/', digest }],
          connect_timeout: 3,
          retry: 3,
          delay_before_retry: 3,
        },
      })),
    },
  ],
}

/** Seed 002: LVS/DR for dovecot with TCP_CHECK and lblc (IMAP on 143 on both sides). */
export const seed002 = {
  cluster: [
    { name: 'balance01', state: 'MASTER', priority: 150, address: '192.0.2.235' },
    { name: 'balance02', state: 'BACKUP', priority: 100, address: '192.0.2.236' },
  ],
  router_id: 'LVS_1',
  instance: 'DOVECOT',
  virtual_router_id: 102,
  auth_pass: '12345678',
  virtual_ipaddresses: ['192.0.2.237/24'],
  virtual_servers: [
    {
      address: '192.0.2.237',
      port: 143,
      lb_algo: 'lblc',
      lb_kind: 'DR',
      real_servers: ['192.0.2.238', '192.0.2.239'].map((address) => ({
        address,
        port: 143,
        check: { type: 'TCP_CHECK', connect_port: 143 },
      })),
    },
  ],
}

/** The real servers of runbooks/lvs-dr.yaml; each page is its name, so its digest is md5(name). */
const lvsReals = [
  ['lvs-real-1', '192.0.2.51'],
  ['lvs-real-2', '192.0.2.52'],
  ['lvs-real-3', '192.0.2.53'],
] as const

/**
 * What runbooks/lvs-dr.yaml passes to keepalived.config with its defaults (seed 004: HTTP_GET,
 * rr, nopreempt), or with seed 002's variables (TCP_CHECK on 143, lblc).
 */
export function lvsDrRunbook(variant: 'seed004' | 'seed002'): Record<string, unknown> {
  const port = variant === 'seed004' ? 80 : 143
  return {
    cluster: [
      { name: 'lvs-director-1', state: 'BACKUP', priority: 100, address: '192.0.2.41' },
      { name: 'lvs-director-2', state: 'BACKUP', priority: 90, address: '192.0.2.42' },
    ],
    virtual_router_id: 50,
    sync_group: 'G1',
    advert_int: 1,
    auth_pass: 'lvs-pass',
    virtual_ipaddresses: ['192.0.2.200/32'],
    unicast: false,
    nopreempt: true,
    virtual_servers: [
      {
        address: '192.0.2.200',
        port,
        lb_algo: variant === 'seed004' ? 'rr' : 'lblc',
        lb_kind: 'DR',
        delay_loop: 6,
        real_servers: lvsReals.map(([name, address]) => ({
          address,
          port,
          check:
            variant === 'seed004'
              ? {
                  type: 'HTTP_GET',
                  urls: [{ path: '/', digest: createHash('md5').update(name).digest('hex') }],
                  connect_timeout: 3,
                  retry: 3,
                  delay_before_retry: 3,
                }
              : { type: 'TCP_CHECK', connect_timeout: 3, retry: 3, delay_before_retry: 3 },
        })),
      },
    ],
  }
}
