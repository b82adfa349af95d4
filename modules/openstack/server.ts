/**
 * `openstack.server`: a Nova server as described, ACTIVE, with its ports and the SSH host keys its
 * console log announces (cloud-init's fingerprint block), so later plays can reach it with pinned
 * keys instead of trusting on first use.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { ipAddress } from '../../engine/values.ts'
import {
  parseConsoleFingerprints,
  type PinnedHostKey,
} from '../../engine/connection/console-keys.ts'
import { RunbookError } from '../../engine/errors.ts'
import type { ModuleContext, UnreachableHost, UnreachableReason } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import type { Port } from './client/neutron.ts'
import type { Flavor, Server } from './client/nova.ts'
import { apiForRecord, type Api } from './lib/cloud.ts'
import { ownedResource, type At, type Call, type CreateSpec, type Own } from './lib/owned.ts'
import { isPending, ownerOf, type ClaimKind } from './lib/ownership.ts'
import { adoptParam, cloudParam, known, later, type Later, printable } from './lib/params.ts'
import { waitFor } from './lib/wait.ts'
import { securityGroupIds } from './port.ts'

const oneOrMany = z.union([later(z.string().min(1)), z.array(later(z.string().min(1)))])

/** How long a new server's console may take to show its host keys, by default (seconds). */
export const HOST_KEYS_TIMEOUT = 180

/** cloud-init's last line: `Cloud-init v. 22.4.2 finished at ...`. */
const CLOUD_INIT_DONE = /Cloud-init v\. \S+ finished at/

const params = z
  .strictObject({
    name: z.string().min(1).describe('Server name (this runbook owns one server of this name)'),
    image: z.string().min(1).optional().describe('Image name or id (needed to create)'),
    flavor: z.string().min(1).optional().describe('Flavor name or id (needed to create)'),
    network: oneOrMany.optional().describe('Network name(s) or id(s): Nova makes a port on each'),
    port: oneOrMany
      .optional()
      .describe('Existing port name(s) or id(s) to use (e.g. made with openstack.port)'),
    fixed_ip: later(ipAddress).optional().describe('Fixed IP on the (first) network'),
    security_groups: z
      .array(later(z.string().min(1)))
      .optional()
      .describe(
        "Security group names or ids of the server's ports, compared as a set (default: Nova's, `default`)",
      ),
    key_name: later(z.string().min(1)).optional().describe('Keypair name (openstack.keypair)'),
    user_data: later(z.string())
      .optional()
      .describe('cloud-init user data (text); a change replaces the server'),
    state: z
      .enum(['present', 'running', 'stopped', 'absent'])
      .default('present')
      .describe(
        'present / running: exists and ACTIVE (a SHUTOFF, SUSPENDED, PAUSED or SHELVED server is started); stopped: exists and SHUTOFF; absent: deleted',
      ),
    host_keys: z
      .boolean()
      .default(true)
      .describe('Read the SSH host keys from the console log (and wait for them after creating)'),
    timeout: z
      .number()
      .int()
      .positive()
      .default(600)
      .describe('Seconds to wait for ACTIVE, or for deletion'),
    host_keys_timeout: z
      .number()
      .int()
      .positive()
      .default(HOST_KEYS_TIMEOUT)
      .describe(
        'Seconds to wait, once ACTIVE, for the SSH host keys in the console log (at most `timeout`)',
      ),
    adopt: adoptParam,
    cloud: cloudParam,
  })
  .refine(
    (p) =>
      p.fixed_ip === undefined ||
      (p.network !== undefined && (!Array.isArray(p.network) || p.network.length === 1)),
    { message: '`fixed_ip` needs exactly one `network`' },
  )

/** openstack.server's parameters. */
export type ServerParams = z.infer<typeof params>

/** What gather found. */
export interface ServerState {
  server: Server | undefined
  how: ClaimKind | undefined
  /** The server's Neutron ports, the primary one first. */
  ports: Port[]
  /** Host keys from the console (undefined: not read). */
  hostKeys: PinnedHostKey[] | undefined
  /** sha256 of the user data it was created with (from the journal), if known. */
  userDataSha: string | undefined
  want: {
    image_id?: string | undefined
    flavor?: Flavor | undefined
    networks: Later<string>[]
    ports: Later<string>[]
    security_groups?: Later<string>[] | undefined
    user_data_sha256?: string | undefined
  }
}

const list = (v: Later<string> | Later<string>[] | undefined): Later<string>[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v]

/** sha256 of user data, as kept in the journal. */
export function userDataSha(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function sameSet(want: readonly Later<string>[], have: readonly string[]): boolean {
  if (!want.every((w) => known(w))) return false
  return (
    JSON.stringify([...new Set(want as string[])].sort()) ===
    JSON.stringify([...new Set(have)].sort())
  )
}

/** Why an existing server no longer matches what Nova can only set at creation. */
function replaceReasons(
  p: ServerParams,
  s: ServerState,
  server: Server,
): { before: Record<string, unknown>; after: Record<string, unknown>; reasons: string[] } {
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  const reasons: string[] = []
  const w = s.want
  if (w.image_id !== undefined && server.image !== w.image_id) {
    before['image'] = server.image
    after['image'] = p.image
    reasons.push('image')
  }
  if (
    w.flavor !== undefined &&
    server.flavor.id !== w.flavor.id &&
    server.flavor.original_name !== w.flavor.name
  ) {
    before['flavor'] = server.flavor.original_name ?? server.flavor.id
    after['flavor'] = p.flavor
    reasons.push('flavor')
  }
  if (p.key_name !== undefined && (!known(p.key_name) || p.key_name !== server.key_name)) {
    before['key_name'] = server.key_name
    after['key_name'] = p.key_name
    reasons.push('key_name')
  }
  const given = new Set(w.ports.filter((x): x is string => known(x)))
  const made = s.ports.filter((x) => !given.has(x.id))
  if (
    p.network !== undefined &&
    !sameSet(
      w.networks,
      made.map((x) => x.network_id),
    )
  ) {
    before['networks'] = made.map((x) => x.network_id)
    after['networks'] = w.networks
    reasons.push('networks')
  }
  if (p.port !== undefined && !w.ports.every((x) => known(x) && s.ports.some((y) => y.id === x))) {
    before['ports'] = s.ports.map((x) => x.id)
    after['ports'] = w.ports
    reasons.push('ports')
  }
  if (
    p.fixed_ip !== undefined &&
    !(
      known(p.fixed_ip) && s.ports.some((x) => x.fixed_ips.some((f) => f.ip_address === p.fixed_ip))
    )
  ) {
    before['fixed_ip'] = s.ports[0]?.fixed_ips[0]?.ip_address ?? null
    after['fixed_ip'] = p.fixed_ip
    reasons.push('fixed_ip')
  }
  if (
    w.user_data_sha256 !== undefined &&
    s.userDataSha !== undefined &&
    w.user_data_sha256 !== s.userDataSha
  ) {
    before['user_data_sha256'] = s.userDataSha
    after['user_data_sha256'] = w.user_data_sha256
    reasons.push('user_data')
  }
  return { before, after, reasons }
}

function createAttrs(p: ServerParams): Record<string, unknown> {
  return {
    name: p.name,
    image: p.image,
    flavor: p.flavor,
    ...(p.network === undefined ? {} : { networks: list(p.network) }),
    ...(p.port === undefined ? {} : { ports: list(p.port) }),
    ...(p.fixed_ip === undefined ? {} : { fixed_ip: p.fixed_ip }),
    ...(p.security_groups === undefined ? {} : { security_groups: p.security_groups }),
    ...(p.key_name === undefined ? {} : { key_name: p.key_name }),
    ...(p.user_data === undefined
      ? {}
      : { user_data_sha256: known(p.user_data) ? userDataSha(p.user_data) : p.user_data }),
    id: unknown('server.id'),
    status: p.state === 'stopped' ? 'SHUTOFF' : 'ACTIVE',
  }
}

/**
 * The changes that bring the server to `p` (pure).
 * @example planServer(p, { server: undefined, how: undefined, ports: [], hostKeys: undefined, userDataSha: undefined, want: { networks: [], ports: [] } })
 */
export function planServer(p: ServerParams, s: ServerState): Change[] {
  const server = s.server
  const target = `server ${p.name}`
  if (p.state === 'absent')
    return server === undefined
      ? []
      : [{ action: 'delete', target, before: { id: server.id, status: server.status } }]
  if (server === undefined) {
    if (p.image === undefined || p.flavor === undefined)
      throw new RunbookError('E_PARAM', `creating server ${p.name} needs \`image\` and \`flavor\``)
    return [{ action: 'create', target, after: createAttrs(p) }]
  }
  const r = replaceReasons(p, s, server)
  if (server.status === 'ERROR')
    r.reasons.unshift(`it is in ERROR${server.fault ? `: ${server.fault.message}` : ''}`)
  if (r.reasons.length > 0) {
    if (s.how === 'adopt')
      throw new RunbookError(
        'E_MODULE',
        `${target} (${server.id}) differs in what only a new server can change (${r.reasons.join(', ')}), and this runbook did not create it`,
      )
    return [
      {
        action: 'replace',
        target: `${target} (${server.id})`,
        before: { id: server.id, status: server.status, ...r.before },
        after: { ...createAttrs(p), ...r.after },
        note: `replace: ${r.reasons.join('; ')}`,
      },
    ]
  }
  const before: Record<string, unknown> = {}
  const after: Record<string, unknown> = {}
  const given = new Set(s.want.ports.filter((x): x is string => known(x)))
  const made = s.ports.filter((x) => !given.has(x.id))
  if (
    s.want.security_groups !== undefined &&
    made.some((x) => !sameSet(s.want.security_groups ?? [], x.security_groups))
  ) {
    before['security_groups'] = [...new Set(made.flatMap((x) => x.security_groups))]
    after['security_groups'] = s.want.security_groups
  }
  const power = powerChange(p, server.status)
  if (power !== undefined) {
    before['status'] = server.status
    after['status'] = power.to
  }
  if (Object.keys(after).length === 0) return []
  return [
    {
      action: 'update',
      target: `${target} (${server.id})`,
      before,
      after,
      ...(power === undefined ? {} : { note: `${power.verb} (${server.status} -> ${power.to})` }),
    },
  ]
}

/**
 * The Nova action that brings a server from each status out of which one action leads to ACTIVE
 * (a status not listed is on its way somewhere, BUILD or REBOOT, and is left to finish).
 */
export const START_ACTIONS: Readonly<Record<string, { verb: string; action: string }>> = {
  SHUTOFF: { verb: 'start', action: 'os-start' },
  SUSPENDED: { verb: 'resume', action: 'resume' },
  PAUSED: { verb: 'unpause', action: 'unpause' },
  SHELVED: { verb: 'unshelve', action: 'unshelve' },
  SHELVED_OFFLOADED: { verb: 'unshelve', action: 'unshelve' },
}

/** Statuses Nova's `os-stop` accepts (ERROR aside: such a server is replaced). */
const STOPPABLE = new Set(['ACTIVE', 'PAUSED', 'SUSPENDED', 'RESCUED'])

/** The power change `p` asks of a server in `status`: present and running mean ACTIVE. */
function powerChange(
  p: ServerParams,
  status: string,
): { verb: string; to: 'ACTIVE' | 'SHUTOFF' } | undefined {
  if (p.state === 'stopped')
    return STOPPABLE.has(status) ? { verb: 'stop', to: 'SHUTOFF' } : undefined
  const start = START_ACTIONS[status]
  return start === undefined ? undefined : { verb: start.verb, to: 'ACTIVE' }
}

/** What `register` gets: id, status, the primary fixed IP, addresses, ports, host keys. */
export function serverOutput(
  s: ServerState | undefined,
  p?: ServerParams,
): Record<string, unknown> {
  const server = s?.server
  if (server === undefined) {
    const port = {
      id: unknown('server.port.id'),
      ip: p?.fixed_ip ?? unknown('server.port.ip'),
      mac_address: unknown('server.port.mac_address'),
      fixed_ips: unknown('server.port.fixed_ips'),
      network_id: unknown('server.port.network_id'),
    }
    return {
      id: unknown('server.id'),
      name: p?.name ?? '',
      status: unknown('server.status'),
      ip: p?.fixed_ip ?? unknown('server.ip'),
      addresses: unknown('server.addresses'),
      port,
      ports: unknown('server.ports'),
      host_keys: unknown('server.host_keys'),
    }
  }
  const ports =
    s?.ports.map((x) => ({
      id: x.id,
      network_id: x.network_id,
      mac_address: x.mac_address,
      ip: x.fixed_ips[0]?.ip_address ?? null,
      fixed_ips: x.fixed_ips,
      security_groups: x.security_groups,
    })) ?? []
  return {
    id: server.id,
    name: server.name,
    status: server.status,
    ip: ports[0]?.ip ?? null,
    addresses: Object.fromEntries(
      Object.entries(server.addresses).map(([net, addrs]) => [net, addrs.map((a) => a.addr)]),
    ),
    port: ports[0] ?? null,
    ports,
    host_keys: (s?.hostKeys ?? []).map((k) => ({
      fingerprint: k.fingerprint,
      ...(k.type ? { type: k.type } : {}),
      ...(k.key ? { key: k.key } : {}),
    })),
    key_name: server.key_name,
    image_id: server.image,
    flavor: server.flavor.original_name ?? server.flavor.id ?? null,
  }
}

async function resolveRefs(
  ctx: ModuleContext,
  api: Api,
  kind: 'network' | 'port',
  refs: Later<string>[],
): Promise<Later<string>[]> {
  const out: Later<string>[] = []
  for (const r of refs) {
    if (!known(r)) out.push(r)
    else if (kind === 'network') out.push((await api.neutron.network(r)).id)
    else {
      const found = await api.neutron.portByRef(r)
      if (found !== undefined) out.push(found.id)
      else if (ctx.check) out.push(unknown(`port ${r}`))
      else throw new RunbookError('E_API', `Neutron: no port named or with id '${r}'`)
    }
  }
  return out
}

/** The server's ports, the one on the first wanted network (or the first given port) first. */
async function portsOf(api: Api, server: Server, want: ServerState['want']): Promise<Port[]> {
  const ports = await api.neutron.ports({ device_id: server.id })
  const rank = (x: Port): number => {
    const i = want.ports.indexOf(x.id)
    if (i >= 0) return i
    const j = want.networks.indexOf(x.network_id)
    return j >= 0 ? 100 + j : 1000
  }
  return ports.sort((a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id))
}

async function hostKeysOf(api: Api, server: Server): Promise<PinnedHostKey[]> {
  if (server.status !== 'ACTIVE') return []
  return parseConsoleFingerprints(await api.nova.consoleLog(server.id))
}

async function readServer({
  ctx,
  api,
  p,
  own,
}: At & { p: ServerParams; own: Own<Server> }): Promise<ServerState> {
  const want: ServerState['want'] = { networks: [], ports: [] }
  if (p.state !== 'absent') {
    if (p.image !== undefined) want.image_id = (await api.nova.image(p.image)).id
    if (p.flavor !== undefined) want.flavor = await api.nova.flavor(p.flavor)
    want.networks = await resolveRefs(ctx, api, 'network', list(p.network))
    want.ports = await resolveRefs(ctx, api, 'port', list(p.port))
    if (p.security_groups !== undefined)
      want.security_groups = await securityGroupIds(ctx, api, p.security_groups)
    if (p.user_data !== undefined && known(p.user_data))
      want.user_data_sha256 = userDataSha(p.user_data)
  }
  const c = await own.claim({
    name: p.name,
    adopt: p.adopt,
    candidates: await api.nova.serversNamed(p.name),
  })
  const record =
    c === undefined ? undefined : ctx.journal.find('openstack.server', 'server', c.resource.id)[0]
  let server = await withFlavorName(api, c?.resource)
  const sha = record?.data?.['user_data_sha256']
  // A run that died between the create and the tagging (below 2.52): finish it, once the server
  // has left BUILD as that run would have waited for (Nova tags no building instance: 409).
  if (server !== undefined && c?.how !== 'adopt' && !ctx.check) {
    if (server.status === 'BUILD')
      server = await withFlavorName(
        api,
        await waitStatus(
          { ctx, api },
          { id: server.id, name: p.name, status: 'ACTIVE', timeout: p.timeout },
        ),
      )
    if (server !== undefined) await tagServer(api, server, ownerOf(ctx).tag)
  }
  return {
    server,
    how: c?.how,
    ports: server === undefined ? [] : await portsOf(api, server, want),
    hostKeys:
      server === undefined || !p.host_keys || p.state === 'absent'
        ? undefined
        : await hostKeysOf(api, server),
    userDataSha: typeof sha === 'string' ? sha : undefined,
    want,
  }
}

/** Which server to wait for, for what, and how long (seconds). */
interface AwaitedStatus {
  id: string
  name: string
  status: 'ACTIVE' | 'SHUTOFF'
  timeout: number
}

/** Waits until the server is in `status`; ERROR fails with Nova's fault. */
async function waitStatus(
  { ctx, api }: At,
  { id, name, status, timeout }: AwaitedStatus,
): Promise<Server> {
  return waitFor(ctx, { what: `server ${status}`, timeoutMs: timeout * 1000 }, async () => {
    const s = await api.nova.server(id)
    if (s === undefined)
      throw new RunbookError(
        'E_API',
        `Nova: server ${name} (${id}) disappeared while waiting for ${status}`,
      )
    if (s.status === 'ERROR')
      throw new RunbookError(
        'E_API',
        `Nova: server ${name} (${id}) went to ERROR: ${s.fault?.message ?? 'no fault given'}`,
        { hint: s.fault?.details ? s.fault.details.slice(0, 300) : undefined },
      )
    return s.status === status && (s['OS-EXT-STS:task_state'] ?? null) === null ? s : undefined
  })
}

/** Deletes a server and waits until Nova no longer shows it. */
async function deleteServer({ ctx, api }: At, id: string, timeout: number): Promise<void> {
  if (!(await api.nova.deleteServer(id))) return
  await waitFor(ctx, { what: 'server deletion', timeoutMs: timeout * 1000 }, async () => {
    const s = await api.nova.server(id)
    return s === undefined || s.status === 'DELETED' ? true : undefined
  })
}

async function waitHostKeys({ ctx, api }: At, id: string, p: ServerParams): Promise<void> {
  const seconds = Math.min(p.host_keys_timeout, p.timeout)
  const fail = (why: string) =>
    new RunbookError(
      'E_TIMEOUT',
      `server ${p.name} (${id}) is ACTIVE, but ${why}: its SSH host keys cannot be pinned`,
      {
        hint: `its image may not print cloud-init's host-key block to the console. Pin the keys another way (pinned_host_keys from a source you trust), or set \`host_keys: false\` to accept the key the first connection sees (a man in the middle on that first connection would go unnoticed); for a slow boot, raise \`host_keys_timeout\` (now ${seconds} s). The server stays, journalled.`,
      },
    )
  try {
    await waitFor(
      ctx,
      { what: 'the SSH host keys in the console log', timeoutMs: seconds * 1000, intervalMs: 500 },
      async () => {
        const log = await api.nova.consoleLog(id)
        if (
          /-----END SSH HOST KEY (KEYS|FINGERPRINTS)-----/.test(log) &&
          parseConsoleFingerprints(log).length > 0
        )
          return true
        // cloud-init says it is done: no key block will come.
        if (CLOUD_INIT_DONE.test(log))
          throw fail('cloud-init finished without printing the host keys to its console')
        return undefined
      },
    )
  } catch (e) {
    if (
      e instanceof RunbookError &&
      e.code === 'E_TIMEOUT' &&
      !ctx.signal.aborted &&
      !/is ACTIVE, but/.test(e.message)
    )
      throw fail(`its console log showed no SSH host keys within ${seconds} s`)
    throw e
  }
}

/** The create: Nova's body for `p`, the marker every microversion accepts, the tag from 2.52. */
async function createSpec({
  ctx,
  api,
  p,
  s,
}: Call<ServerParams, ServerState>): Promise<CreateSpec<{ id: string }>> {
  const owner = ownerOf(ctx)
  const networks = [
    ...s.want.networks.map((id, i) => ({
      uuid: id,
      ...(i === 0 && p.fixed_ip !== undefined ? { fixed_ip: p.fixed_ip } : {}),
    })),
    ...s.want.ports.map((id) => ({ port: id })),
  ]
  const body: Record<string, unknown> = {
    name: p.name,
    imageRef: s.want.image_id,
    flavorRef: s.want.flavor?.id,
    networks: networks.length > 0 ? networks : 'auto',
    // The marker every microversion accepts at create; the tag needs 2.52 in the create.
    metadata: { [MARKER_KEY]: owner.tag },
    ...((await api.client.atLeast('2.52')) ? { tags: [owner.tag] } : {}),
  }
  if (s.want.security_groups !== undefined)
    body['security_groups'] = s.want.security_groups.map((g) => ({ name: g }))
  if (p.key_name !== undefined) body['key_name'] = p.key_name
  if (p.user_data !== undefined)
    body['user_data'] = Buffer.from(String(p.user_data)).toString('base64')
  return {
    name: p.name,
    ...(s.want.user_data_sha256 === undefined
      ? {}
      : { extra: { user_data_sha256: s.want.user_data_sha256 } }),
    post: async () => ({ id: await api.nova.createServer(body) }),
  }
}

/**
 * The server with its flavor's name: embedded in the view from 2.47 (`original_name`), looked up
 * by id below (a flavor deleted since is left as its id).
 */
async function withFlavorName(api: Api, server: Server | undefined): Promise<Server | undefined> {
  const id = server?.flavor.id
  if (server === undefined || server.flavor.original_name !== undefined || id === undefined)
    return server
  const name = await api.nova.flavor(id).then(
    (f) => f.name,
    () => undefined,
  )
  return name === undefined
    ? server
    : { ...server, flavor: { ...server.flavor, original_name: name } }
}

/** The metadata key of the ownership marker a server is created with. */
export const MARKER_KEY = 'runbook-owner'

/** Whether a server carries our tag or, below 2.26 or before it is tagged, our marker. */
export function serverMarked(x: Server, ownerTag: string): boolean {
  return x.tags.includes(ownerTag) || x.metadata[MARKER_KEY] === ownerTag
}

/**
 * Tags a server of ours that lacks the tag, where Nova has server tags (2.26) but did not take
 * them at create (below 2.52); below 2.26 the journal and the marker are its ownership.
 */
async function tagServer(api: Api, server: Server, tag: string): Promise<void> {
  if (server.tags.includes(tag) || !(await api.client.atLeast('2.26'))) return
  await api.nova.setServerTags(server.id, [...server.tags, tag])
}

/**
 * Why `host` cannot be reached, if it is a server this runbook made (by name, or by one of its
 * addresses) that is not ACTIVE: "server kld-vm-2 is SHUTOFF", with what to do.
 */
async function explainUnreachable(
  ctx: ModuleContext,
  host: UnreachableHost,
): Promise<UnreachableReason | undefined> {
  const records = ctx.journal.find('openstack.server', 'server').filter((r) => !isPending(r))
  const named = records.filter((r) => r.name === host.name)
  const candidates = named.length > 0 ? named : host.address === undefined ? [] : records
  for (const r of candidates.slice(0, 20)) {
    const api = await apiForRecord(ctx, r)
    const x = await api.nova.server(r.id)
    const addresses = Object.values(x?.addresses ?? {}).flatMap((a) => a.map((y) => y.addr))
    if (named.length === 0 && (x === undefined || !addresses.includes(host.address ?? ''))) continue
    if (x === undefined || x.status === 'DELETED')
      return {
        message: `server ${r.name ?? r.id} (${r.id}) is gone from the cloud`,
        hint: 'apply the play that creates it again',
        lasting: true,
      }
    if (x.status === 'ACTIVE') return undefined
    const start = START_ACTIONS[x.status]
    return {
      message: `server ${x.name} is ${x.status}`,
      hint:
        start !== undefined
          ? `${start.verb} it: apply again (openstack.server with state present or running does), or \`openstack server ${start.verb} ${x.name}\``
          : x.status === 'ERROR'
            ? `Nova's fault: ${x.fault?.message ?? 'none given'}; apply again to replace it`
            : `Nova is still working on it (${x.status}); try again when it is ACTIVE`,
      lasting: start !== undefined || x.status === 'ERROR',
    }
  }
  return undefined
}

/**
 * Ensures a Nova server: created on its networks or ports with its security groups and keypair,
 * waited for until ACTIVE (a build that fails reports Nova's fault), its host keys read from the
 * console; security groups and power state change in place, image, flavor, keypair, networks and
 * user data by replacing it.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const server = ownedResource<ServerParams, ServerState, Server, { id: string }>({
  module: {
    name: 'openstack.server',
    summary:
      'A Nova server, ACTIVE, with its ports, addresses and SSH host keys (from the console log)',
    example: `- name: The keepalived VMs
  openstack.server:
    name: "{{item}}"
    image: Ubuntu 22.04
    flavor: m1.small
    network: mynetwork
    security_groups: [default]
    key_name: kld-key
  loop: [kld-vm-1, kld-vm-2]
  register: vms        # vms.results[0].port.id, .ip, .host_keys`,
    params,
    acceptsUnknown: true,
    plan: (p, s) => printable(planServer(p, s)),
    output: (p, s, changes) =>
      changes.some((c) => c.action === 'create' || c.action === 'replace')
        ? serverOutput(undefined, p)
        : serverOutput(s, p),
    explainUnreachable,
  },
  type: 'server',
  kind: 'server',
  id: (x) => x.id,
  marked: serverMarked,
  ownerTags: (x) => [...x.tags, x.metadata[MARKER_KEY] ?? ''],
  find: async (api, name, ownerTag) =>
    (await api.nova.serversNamed(name)).find((x) => serverMarked(x, ownerTag)),
  read: readServer,
  current: (s) => s.server,
  create: createSpec,
  async created({ ctx, api, p }, made) {
    const id = made.id
    const active = await waitStatus(
      { ctx, api },
      { id, name: p.name, status: 'ACTIVE', timeout: p.timeout },
    )
    await tagServer(api, active, ownerOf(ctx).tag)
    if (p.host_keys) await waitHostKeys({ ctx, api }, id, p)
    if (p.state === 'stopped') {
      await api.nova.action(id, { 'os-stop': null })
      await waitStatus({ ctx, api }, { id, name: p.name, status: 'SHUTOFF', timeout: p.timeout })
    }
    return active
  },
  async update({ ctx, api, p, s }, change) {
    const x = s.server
    if (x === undefined) return undefined
    const after = change.after as Record<string, unknown>
    if ('security_groups' in after) {
      const given = new Set(s.want.ports)
      for (const port of s.ports)
        if (!given.has(port.id))
          await api.neutron.updatePort(port.id, { security_groups: s.want.security_groups })
    }
    const status = after['status']
    if (status === 'ACTIVE' || status === 'SHUTOFF') {
      const action =
        status === 'SHUTOFF' ? 'os-stop' : (START_ACTIONS[x.status]?.action ?? 'os-start')
      await api.nova.action(x.id, { [action]: null })
      await waitStatus({ ctx, api }, { id: x.id, name: p.name, status, timeout: p.timeout })
    }
    return undefined
  },
  remove: (at, id, p) => deleteServer(at, id, p?.timeout ?? 600),
  async verify({ p, reread }) {
    // The post-condition: Nova and Neutron now show what was asked.
    const now = await reread()
    const left = planServer(p, { ...now, how: now.how ?? 'journal' })
    if (now.server === undefined || left.length > 0) {
      throw new RunbookError(
        'E_API',
        `server ${p.name}: the cloud does not show the change${left[0] ? ` (${left[0].note ?? JSON.stringify(left[0].after)})` : ' (the server is gone)'}`,
      )
    }
    return serverOutput(now, p)
  },
})
