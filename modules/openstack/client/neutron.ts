/**
 * Neutron's resources as the modules read them (only the fields they use, parsed with zod), and
 * the calls on them. Names resolve to ids here; networks and subnets are cached per client (they
 * exist before the runbook runs), security groups are not (a runbook creates them).
 */
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import { LookupCache, queryString, type OpenStackClient, type Query } from './client.ts'
import { OpenStackApiError } from './errors.ts'

const nullableString = z
  .string()
  .nullable()
  .optional()
  .transform((v) => v ?? '')

/** A fixed IP of a port. */
export const fixedIpSchema = z.object({ subnet_id: z.string(), ip_address: z.string() })

/** A Neutron port. */
export const portSchema = z.object({
  id: z.string(),
  name: nullableString,
  network_id: z.string(),
  mac_address: z.string(),
  fixed_ips: z.array(fixedIpSchema).default([]),
  allowed_address_pairs: z
    .array(z.object({ ip_address: z.string(), mac_address: z.string().optional() }))
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  security_groups: z
    .array(z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  port_security_enabled: z.boolean().nullable().optional(),
  description: nullableString,
  device_id: nullableString,
  device_owner: nullableString,
  status: nullableString,
  tags: z
    .array(z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  project_id: z.string().optional(),
})

/** A port. */
export type Port = z.infer<typeof portSchema>

/** A network. */
export const networkSchema = z.object({
  id: z.string(),
  name: nullableString,
  'router:external': z.boolean().optional(),
  subnets: z.array(z.string()).default([]),
})

/** A network. */
export type Network = z.infer<typeof networkSchema>

/** A subnet. */
export const subnetSchema = z.object({
  id: z.string(),
  name: nullableString,
  network_id: z.string(),
  cidr: z.string(),
})

/** A subnet. */
export type Subnet = z.infer<typeof subnetSchema>

/** A security-group rule. */
export const ruleSchema = z.object({
  id: z.string(),
  security_group_id: z.string(),
  direction: z.string(),
  ethertype: z.string(),
  protocol: z
    .union([z.string(), z.number()])
    .nullable()
    .optional()
    .transform((v) => (v === undefined || v === null ? null : String(v))),
  port_range_min: z
    .number()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  port_range_max: z
    .number()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  remote_ip_prefix: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  remote_group_id: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  description: nullableString,
})

/** A security-group rule. */
export type Rule = z.infer<typeof ruleSchema>

/** A security group with its rules. */
export const securityGroupSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: nullableString,
  tags: z
    .array(z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  project_id: z.string().optional(),
  security_group_rules: z.array(ruleSchema).default([]),
})

/** A security group. */
export type SecurityGroup = z.infer<typeof securityGroupSchema>

/** A floating IP. */
export const floatingIpSchema = z.object({
  id: z.string(),
  floating_ip_address: z.string(),
  floating_network_id: z.string(),
  port_id: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  fixed_ip_address: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  status: nullableString,
  description: nullableString,
  tags: z
    .array(z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? []),
})

/** A floating IP. */
export type FloatingIp = z.infer<typeof floatingIpSchema>

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i

/** Whether a reference looks like an id rather than a name. */
export function looksLikeId(ref: string): boolean {
  return UUID.test(ref)
}

/** The Neutron collections the modules create and tag. */
export type TagCollection = 'ports' | 'security-groups' | 'floatingips'

/** Neutron's answer to "no such thing", in the words the modules use. */
export function notFound(kind: string, ref: string, hint?: string): RunbookError {
  return new RunbookError('E_API', `Neutron: no ${kind} named or with id '${ref}'`, { hint })
}

/**
 * Neutron calls for one client.
 * @example const n = new Neutron(client); const net = await n.network('mynetwork')
 */
export class Neutron {
  private readonly cache = new LookupCache()

  constructor(readonly c: OpenStackClient) {}

  /** The same helper, its lookups cached once per run, over one task's view of the client. */
  withClient(c: OpenStackClient): Neutron {
    return Object.create(this, { c: { value: c } }) as Neutron
  }

  /** The aliases of the extensions Neutron announces (`GET /v2.0/extensions`, read once). */
  extensions(): Promise<ReadonlySet<string>> {
    return this.cache.get('extensions', async () => {
      const doc = await this.c.get(
        'network',
        '/extensions',
        z.object({ extensions: z.array(z.object({ alias: z.string() })) }),
      )
      return new Set(doc.extensions.map((e) => e.alias))
    })
  }

  /** Whether Neutron announces an extension, e.g. `standard-attr-tag`. */
  async has(alias: string): Promise<boolean> {
    return (await this.extensions()).has(alias)
  }

  /**
   * Replaces a resource's tags with `PUT /v2.0/{collection}/{id}/tags`, as the official client
   * does after a create (stock Neutron refuses `tags` in a POST).
   */
  async setTags(collection: TagCollection, id: string, tags: readonly string[]): Promise<void> {
    await this.c.put(
      'network',
      `/${collection}/${encodeURIComponent(id)}/tags`,
      { tags },
      z.unknown(),
    )
  }

  /**
   * Deletes a resource and asks again: true when Neutron answers 404 for it afterwards (gone, or
   * already gone before); an error when it still shows it, so `destroy` never reports a leak as done.
   */
  async deleteGone(collection: TagCollection, id: string): Promise<void> {
    const path = `/${collection}/${encodeURIComponent(id)}`
    await this.c.delete('network', path)
    const still = await this.c.find('network', path, z.unknown())
    if (still !== undefined)
      throw new RunbookError(
        'E_API',
        `Neutron still shows ${collection.replace(/s$/, '').replace('-', ' ')} ${id} after deleting it`,
        { hint: 'run destroy again; if it stays, delete it by hand (openstack ... delete)' },
      )
  }

  /** Ports matching a query (`name`, `device_id`, `fixed_ips`, `tags`...). */
  ports(query: Query): Promise<Port[]> {
    return this.c
      .sharedRead(`ports${queryString(query)}`, () =>
        this.c.list('network', '/ports', 'ports', portSchema, { query }),
      )
      .then((ports) => [...ports])
  }

  /** A port by id, or undefined. */
  async port(id: string): Promise<Port | undefined> {
    return (
      await this.c.find(
        'network',
        `/ports/${encodeURIComponent(id)}`,
        z.object({ port: portSchema }),
      )
    )?.port
  }

  /** A port by name or id; undefined when there is none. Several with the name is an error. */
  async portByRef(ref: string): Promise<Port | undefined> {
    if (looksLikeId(ref)) {
      const p = await this.port(ref)
      if (p !== undefined) return p
    }
    const found = await this.ports({ name: ref })
    if (found.length > 1)
      throw new RunbookError(
        'E_API',
        `Neutron: ${found.length} ports are named '${ref}' (${found.map((p) => p.id).join(', ')})`,
        { hint: 'refer to the port by id' },
      )
    return found[0]
  }

  /** Creates a port. */
  async createPort(body: Record<string, unknown>): Promise<Port> {
    return (await this.c.post('network', '/ports', { port: body }, z.object({ port: portSchema })))
      .port
  }

  /** Updates a port. */
  async updatePort(id: string, body: Record<string, unknown>): Promise<Port> {
    return (
      await this.c.put(
        'network',
        `/ports/${encodeURIComponent(id)}`,
        { port: body },
        z.object({ port: portSchema }),
      )
    ).port
  }

  /** Deletes a port; false when it was already gone. */
  deletePort(id: string): Promise<boolean> {
    return this.c.delete('network', `/ports/${encodeURIComponent(id)}`)
  }

  /** A network by name or id (cached). */
  network(ref: string): Promise<Network> {
    return this.cache.get(`network:${ref}`, async () => {
      if (looksLikeId(ref)) {
        const n = await this.c.find(
          'network',
          `/networks/${encodeURIComponent(ref)}`,
          z.object({ network: networkSchema }),
        )
        if (n !== undefined) return n.network
      }
      const found = await this.c.list('network', '/networks', 'networks', networkSchema, {
        query: { name: ref },
      })
      if (found.length > 1)
        throw new RunbookError('E_API', `Neutron: ${found.length} networks are named '${ref}'`, {
          hint: 'refer to the network by id',
        })
      const n = found[0]
      if (n === undefined) throw notFound('network', ref)
      return n
    })
  }

  /** A subnet by name or id, within a network when given (cached). */
  subnet(ref: string, networkId?: string): Promise<Subnet> {
    return this.cache.get(`subnet:${networkId ?? ''}:${ref}`, async () => {
      if (looksLikeId(ref)) {
        const s = await this.c.find(
          'network',
          `/subnets/${encodeURIComponent(ref)}`,
          z.object({ subnet: subnetSchema }),
        )
        if (s !== undefined) return s.subnet
      }
      const found = await this.c.list('network', '/subnets', 'subnets', subnetSchema, {
        query: { name: ref, ...(networkId === undefined ? {} : { network_id: networkId }) },
      })
      if (found.length > 1)
        throw new RunbookError('E_API', `Neutron: ${found.length} subnets are named '${ref}'`, {
          hint: 'refer to the subnet by id',
        })
      const s = found[0]
      if (s === undefined)
        throw notFound(
          'subnet',
          ref,
          networkId === undefined ? undefined : `looked in network ${networkId}`,
        )
      return s
    })
  }

  /** Security groups matching a query. */
  securityGroups(query: Query): Promise<SecurityGroup[]> {
    return this.c.list('network', '/security-groups', 'security_groups', securityGroupSchema, {
      query,
    })
  }

  /** A security group by id, or undefined. */
  async securityGroup(id: string): Promise<SecurityGroup | undefined> {
    return (
      await this.c.find(
        'network',
        `/security-groups/${encodeURIComponent(id)}`,
        z.object({ security_group: securityGroupSchema }),
      )
    )?.security_group
  }

  /** Creates a security group; Neutron answers with the whole group, of which the id is used. */
  async createSecurityGroup(body: Record<string, unknown>): Promise<{ id: string }> {
    return (
      await this.c.post(
        'network',
        '/security-groups',
        { security_group: body },
        z.object({ security_group: z.object({ id: z.string() }) }),
      )
    ).security_group
  }

  /** Updates a security group's own attributes (name, description). */
  async updateSecurityGroup(id: string, body: Record<string, unknown>): Promise<void> {
    await this.c.put(
      'network',
      `/security-groups/${encodeURIComponent(id)}`,
      { security_group: body },
      z.unknown(),
    )
  }

  /** Adds a rule to a security group. */
  async createSecurityGroupRule(body: Record<string, unknown>): Promise<Rule> {
    return (
      await this.c.post(
        'network',
        '/security-group-rules',
        { security_group_rule: body },
        z.object({ security_group_rule: ruleSchema }),
      )
    ).security_group_rule
  }

  /**
   * Adds a rule unless the group has it: a rule is its own identity, so Neutron's 409
   * SecurityGroupRuleExists (a repeat, or a retried POST that was carried out) is success.
   */
  async ensureSecurityGroupRule(body: Record<string, unknown>): Promise<void> {
    try {
      await this.c.createResolved(
        () => this.createSecurityGroupRule(body),
        async () => undefined,
      )
    } catch (e) {
      if (!(
        e instanceof OpenStackApiError &&
        e.status === 409 &&
        e.faultType === 'SecurityGroupRuleExists'
      ))
        throw e
    }
  }

  /** Removes a security group rule; false when it was already gone. */
  deleteSecurityGroupRule(id: string): Promise<boolean> {
    return this.c.delete('network', `/security-group-rules/${encodeURIComponent(id)}`)
  }

  /**
   * Security group ids for names or ids, in order, from one listing of the project's groups;
   * undefined for a name not found (the caller decides whether that is an error).
   */
  async securityGroupIds(
    refs: readonly string[],
    projectId: string,
  ): Promise<(string | undefined)[]> {
    if (refs.length === 0) return []
    const groups = await this.c.sharedRead(`security-groups:${projectId}`, () =>
      this.securityGroups({ project_id: projectId, fields: ['id', 'name'] }),
    )
    return refs.map((ref) => {
      const byId = groups.find((g) => g.id === ref)
      if (byId !== undefined) return byId.id
      const byName = groups.filter((g) => g.name === ref)
      if (byName.length > 1)
        throw new RunbookError(
          'E_API',
          `Neutron: ${byName.length} security groups are named '${ref}' (${byName.map((g) => g.id).join(', ')})`,
          { hint: 'refer to the group by id' },
        )
      return byName[0]?.id
    })
  }

  /** Floating IPs matching a query. */
  floatingIps(query: Query): Promise<FloatingIp[]> {
    return this.c.list('network', '/floatingips', 'floatingips', floatingIpSchema, { query })
  }

  /** Allocates a floating IP (associated when `port_id` is given). */
  async createFloatingIp(body: Record<string, unknown>): Promise<FloatingIp> {
    return (
      await this.c.post(
        'network',
        '/floatingips',
        { floatingip: body },
        z.object({ floatingip: floatingIpSchema }),
      )
    ).floatingip
  }

  /** Associates (`port_id`) or disassociates (`port_id: null`) a floating IP. */
  async updateFloatingIp(id: string, body: Record<string, unknown>): Promise<FloatingIp> {
    return (
      await this.c.put(
        'network',
        `/floatingips/${encodeURIComponent(id)}`,
        { floatingip: body },
        z.object({ floatingip: floatingIpSchema }),
      )
    ).floatingip
  }

  /** Releases a floating IP; false when it was already gone. */
  deleteFloatingIp(id: string): Promise<boolean> {
    return this.c.delete('network', `/floatingips/${encodeURIComponent(id)}`)
  }

  /** A floating IP by id, or undefined. */
  async floatingIp(id: string): Promise<FloatingIp | undefined> {
    return (
      await this.c.find(
        'network',
        `/floatingips/${encodeURIComponent(id)}`,
        z.object({ floatingip: floatingIpSchema }),
      )
    )?.floatingip
  }
}
