/**
 * keepalived.config's parameters: a VRRP instance described once for the whole cluster, plus the
 * optional LVS virtual servers. The cross-cluster rules live in cluster.ts; zod only checks shapes
 * here, so that every rule can name the node it is about.
 */
import { z } from 'zod'
import { modeParam } from '../../host/lib/attrs.ts'

const ipText = z.string().min(1)
const port = z.number().int().min(1).max(65535)
const token = z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only')

/** One member of the VRRP cluster. */
export const clusterNodeSchema = z.strictObject({
  name: z.string().min(1).describe('Inventory name of the node (`node` picks this host’s entry)'),
  state: z
    .enum(['MASTER', 'BACKUP'])
    .describe(
      'The state keepalived starts in: one MASTER, the others BACKUP (or every node BACKUP, e.g. with nopreempt)',
    ),
  priority: z
    .number()
    .int()
    .describe(
      'VRRP priority, 1-254, distinct per node; the MASTER has the highest. 255 only for the address owner',
    ),
  address: ipText
    .optional()
    .describe(
      'The node’s own IPv4 address on the VRRP interface; required for `unicast` (unicast_src_ip / unicast_peer)',
    ),
})

/** A cluster entry. */
export type ClusterNode = z.infer<typeof clusterNodeSchema>

const checkTimers = {
  connect_timeout: z.number().positive().default(3).describe('Seconds to wait for the connection'),
  connect_port: port.optional().describe('Port to check (default: the real server’s)'),
  retry: z
    .number()
    .int()
    .min(0)
    .default(3)
    .describe('Retries before the real server is taken out (keepalived 2’s name for nb_get_retry)'),
  delay_before_retry: z.number().min(0).default(3).describe('Seconds between retries'),
}

/** A real server's health check. */
export const healthCheckSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('TCP_CHECK').describe('A TCP connect'), ...checkTimers }),
  z.strictObject({
    type: z.enum(['HTTP_GET', 'SSL_GET']).describe('An HTTP(S) GET of each url'),
    urls: z
      .array(
        z.strictObject({
          path: z.string().startsWith('/').describe('URL path, e.g. `/`'),
          status_code: z
            .number()
            .int()
            .min(100)
            .max(599)
            .optional()
            .describe('Expected HTTP status'),
          digest: z
            .string()
            .regex(/^[0-9a-f]{32}$/, 'an MD5 hex digest, as genhash prints it')
            .optional()
            .describe('MD5 of the expected body (genhash)'),
        }),
      )
      .min(1)
      .describe('The URLs to fetch'),
    ...checkTimers,
  }),
])

/** A health check. */
export type HealthCheck = z.infer<typeof healthCheckSchema>

/** An LVS real server. */
export const realServerSchema = z.strictObject({
  address: ipText.describe('IPv4 address of the real server'),
  port: port.describe('Its port (with lb_kind DR or TUN it must equal the virtual server’s)'),
  weight: z
    .number()
    .int()
    .min(0)
    .default(1)
    .describe('Scheduling weight (0 takes it out of rotation)'),
  check: healthCheckSchema
    .optional()
    .describe(
      'Health check: `{ type: TCP_CHECK }` or `{ type: HTTP_GET, urls: [{ path: /, digest: ... }] }`',
    ),
})

/** A real server. */
export type RealServer = z.infer<typeof realServerSchema>

/** An LVS virtual server. */
export const virtualServerSchema = z.strictObject({
  address: ipText.describe('The service address: one of virtual_ipaddresses'),
  port: port.describe('The service port'),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
  lb_algo: z
    .enum(['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'mh', 'dh', 'fo', 'ovf', 'sed', 'nq'])
    .default('rr')
    .describe('IPVS scheduler'),
  lb_kind: z
    .enum(['DR', 'NAT', 'TUN'])
    .default('DR')
    .describe('Forwarding method: direct routing, NAT or IP-in-IP tunnel'),
  delay_loop: z.number().int().min(1).default(6).describe('Seconds between health checks'),
  persistence_timeout: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('Seconds a client sticks to the same real server'),
  real_servers: z.array(realServerSchema).min(1).describe('The real servers behind it'),
})

/** A virtual server. */
export type VirtualServer = z.infer<typeof virtualServerSchema>

/** The fields of keepalived.config, before the cluster rules (cluster.ts) refine them. */
export const configFields = {
  cluster: z
    .array(clusterNodeSchema)
    .min(1)
    .describe(
      'Every node of the VRRP instance: `{ name, state, priority, address? }`; the same list on every host, so each can check the whole cluster',
    ),
  node: z
    .string()
    .min(1)
    .optional()
    .describe('Which cluster entry is this host (default: the inventory hostname)'),
  interface: z
    .string()
    .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'an interface name')
    .optional()
    .describe('Interface VRRP runs on (default: the host’s default-route interface, from facts)'),
  virtual_router_id: z
    .number()
    .int()
    .min(1)
    .max(255)
    .describe('VRRP router id, 1-255, the same on every node and unique on the network segment'),
  instance: token.optional().describe('vrrp_instance name (default `VI_<virtual_router_id>`)'),
  router_id: token
    .optional()
    .describe('global_defs router_id (default: the node name in upper case)'),
  sync_group: token
    .nullish()
    .describe(
      'vrrp_sync_group name (seed 004’s `G1`): written as a comment, since one instance per file makes a group of one, which keepalived -t refuses',
    ),
  advert_int: z
    .number()
    .int()
    .min(1)
    .max(255)
    .default(1)
    .describe(
      'Whole seconds between VRRP adverts (VRRPv2 has no fractions); a backup takes over after about 3 missed ones',
    ),
  auth_type: z
    .enum(['PASS', 'AH'])
    .default('PASS')
    .describe('VRRP authentication when `auth_pass` is given'),
  auth_pass: z
    .string()
    .optional()
    .describe(
      'VRRP password, at most 8 characters (keepalived silently truncates longer ones); a secret: redacted from plans and diffs',
    ),
  virtual_ipaddresses: z
    .array(ipText)
    .min(1)
    .describe('The VIPs: `192.0.2.254/24` (no prefix means /32)'),
  unicast: z
    .boolean()
    .default(false)
    .describe(
      'Send adverts by unicast to the other nodes’ addresses (unicast_src_ip/unicast_peer) instead of multicast 224.0.0.18',
    ),
  nopreempt: z
    .boolean()
    .default(false)
    .describe(
      'A recovered higher-priority node does not take the VIP back (needs every node in state BACKUP)',
    ),
  virtual_servers: z
    .array(virtualServerSchema)
    .default([])
    .describe('LVS virtual servers (load balancing behind the VIP)'),
  dest: z
    .string()
    .startsWith('/')
    .default('/etc/keepalived/keepalived.conf')
    .describe('Path of the config file'),
  mode: modeParam.default('0640'),
  owner: z.string().min(1).default('root').describe('Owner of the file'),
  group: z.string().min(1).default('root').describe('Group of the file'),
  backup: z
    .boolean()
    .default(false)
    .describe('Keep the old file as `dest.<timestamp>~` before replacing it'),
  validate: z
    .union([
      z
        .string()
        .regex(/%s/, "must contain %s, the path of the new file (e.g. 'keepalived -t -f %s')"),
      z.literal(false),
    ])
    .default('keepalived -t -f %s')
    .describe(
      'Command that checks the new file on the host before it replaces the old one (%s = the new file); false to skip',
    ),
}

/** What the renderer needs besides the node's place in the cluster. */
export interface RenderParams {
  virtual_router_id: number
  instance?: string | undefined
  router_id?: string | undefined
  sync_group?: string | null | undefined
  advert_int: number
  auth_type: 'PASS' | 'AH'
  auth_pass?: string | undefined
  virtual_ipaddresses: string[]
  unicast: boolean
  nopreempt: boolean
  virtual_servers: VirtualServer[]
}

/** This host's place in the cluster, once the host's facts are known. */
export interface Resolved {
  node: ClusterNode
  interface: string
  peers: ClusterNode[]
}
