/**
 * `keepalived.config`: keepalived.conf rendered from typed parameters that describe the whole
 * cluster, so every host checks what keepalived itself cannot (one MASTER, distinct priorities,
 * the MASTER highest, an 8-character auth_pass, unicast peers, VIPs in the interface's subnet)
 * before anything is written; then `keepalived -t` checks the file on the host before it replaces
 * the old one. The file itself is handled as `template` handles files (lib/content-file.ts).
 */
import { z } from 'zod'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext } from '../../engine/module.ts'
import { unknown } from '../../engine/vars/unknown.ts'
import { hostFacts } from '../host/facts.ts'
import {
  applyContentFile,
  destroyContentFile,
  gatherRemote,
  planContentFile,
  wanted,
  type ContentFileParams,
  type ContentFileState,
} from '../host/lib/content-file.ts'
import { clusterProblems, formatProblems, hostProblems, type HostView } from './lib/cluster.ts'
import { configFields, type Resolved } from './lib/params.ts'
import { instanceName, renderConfig, routerId } from './lib/render.ts'

const params = z.strictObject(configFields).superRefine((p, ctx) => {
  const problems = clusterProblems(p)
  // The engine reports one issue per task (with its path): one issue that lists every problem.
  const first = problems[0]
  if (first)
    ctx.addIssue({
      code: 'custom',
      path: first.path,
      message: problems.length === 1 ? first.message : formatProblems(problems),
    })
})

/** keepalived.config's parameters. */
export type KeepalivedConfigParams = z.infer<typeof params>

/** gather's result: the file as content-file sees it, and this node's place in the cluster. */
export interface KeepalivedConfigState extends ContentFileState {
  resolved: Resolved
}

function fileParams(p: KeepalivedConfigParams): ContentFileParams {
  return {
    dest: p.dest,
    mode: p.mode,
    owner: p.owner,
    group: p.group,
    backup: p.backup,
    validate: p.validate === false ? undefined : p.validate,
  }
}

/** The host as the cluster checks need it, from the run's facts (one round trip when not cached). */
async function hostView(ctx: ModuleContext): Promise<HostView> {
  const f = await hostFacts(ctx)
  return {
    name: ctx.host,
    defaultInterface: f.default_ipv4?.interface ?? null,
    interfaces: Object.fromEntries(Object.entries(f.interfaces).map(([name, i]) => [name, i.ipv4])),
  }
}

/**
 * The same context, recording created files under an id that names the host too: every node of
 * the cluster writes the same path, and the journal keeps one record per module, type and id.
 */
function journalPerHost(ctx: ModuleContext): ModuleContext {
  const journal = {
    ...ctx.journal,
    record: (r: Parameters<ModuleContext['journal']['record']>[0]) =>
      ctx.journal.record({
        ...r,
        id: `${ctx.host}:${r.id}`,
        name: r.name ?? r.id,
        data: { ...r.data, path: r.id },
      }),
  }
  return new Proxy(ctx, {
    get: (target, key) => (key === 'journal' ? journal : Reflect.get(target, key)),
  })
}

/**
 * Checks this host's place in the cluster and renders its keepalived.conf (pure).
 * @example const { text, resolved } = prepareConfig(params, { name: 'kld-vm-1', defaultInterface: 'ens3', interfaces: null })
 */
export function prepareConfig(
  p: KeepalivedConfigParams,
  host: HostView,
): { text: string; resolved: Resolved } {
  const { problems, resolved } = hostProblems(p, host, p.interface)
  if (!resolved || problems.length > 0)
    throw new RunbookError('E_PARAM', `keepalived.config: ${formatProblems(problems)}`)
  return { text: renderConfig(p, resolved), resolved }
}

/**
 * The LVS part must be the same on every director of a VRRP instance: whichever takes the VIP
 * serves it. Each node's task compares its virtual servers with the first node's of this run
 * (hosts run concurrently, so the second to arrive reports the difference).
 */
function sameServersAcrossCluster(ctx: ModuleContext, p: KeepalivedConfigParams): void {
  const first = ctx.shared(
    `keepalived.config:virtual_servers:${p.virtual_router_id}`,
    () => new Map<string, string>(),
  )
  const mine = JSON.stringify(p.virtual_servers)
  const other = [...first.entries()].find(([host, vs]) => host !== ctx.host && vs !== mine)
  first.set(ctx.host, mine)
  if (other)
    throw new RunbookError(
      'E_PARAM',
      `keepalived.config: virtual_servers on ${ctx.host} differ from ${other[0]}'s (virtual_router_id ${p.virtual_router_id}): every director must list the same virtual and real servers, or the service changes when the VIP moves`,
    )
}

function outputOf(
  p: KeepalivedConfigParams,
  s: KeepalivedConfigState | undefined,
): Record<string, unknown> {
  const base = {
    dest: p.dest,
    instance: instanceName(p),
    virtual_ipaddresses: p.virtual_ipaddresses,
  }
  if (!s)
    return {
      ...base,
      checksum: unknown('checksum'),
      node: p.node ?? unknown('node'),
      state: unknown('state'),
      priority: unknown('priority'),
      interface: p.interface ?? unknown('interface'),
      router_id: unknown('router_id'),
      unicast_peers: unknown('unicast_peers'),
    }
  const { node, interface: iface, peers } = s.resolved
  return {
    ...base,
    checksum: s.want.sha256,
    node: node.name,
    state: node.state,
    priority: node.priority,
    interface: iface,
    router_id: routerId(p, node.name),
    unicast_peers: p.unicast ? peers.map((n) => n.address) : [],
  }
}

/**
 * keepalived.conf for this node, checked across the cluster and by `keepalived -t` on the host.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const keepalivedConfig = defineModule<KeepalivedConfigParams, KeepalivedConfigState>({
  name: 'keepalived.config',
  summary:
    'keepalived.conf (VRRP instance, optional LVS virtual servers) from typed parameters, checked across the cluster and with keepalived -t',
  example: [
    '- keepalived.config:',
    '    cluster:                          # the same list on every node',
    '      - { name: kld-vm-1, state: MASTER, priority: 120, address: 192.0.2.11 }',
    '      - { name: kld-vm-2, state: BACKUP, priority: 90, address: 192.0.2.12 }',
    '    virtual_router_id: 254',
    '    auth_pass: "{{auth_pass}}"        # a secret: redacted from plans and diffs',
    '    virtual_ipaddresses: ["192.0.2.254/24"]',
    '    unicast: true                     # unicast_src_ip / unicast_peer from the addresses',
    '  notify: restart keepalived',
  ].join('\n'),
  params,
  aliases: { virtual_ipaddress: 'virtual_ipaddresses', vrid: 'virtual_router_id' },
  async gather(ctx, p) {
    if (p.auth_pass) ctx.secret(p.auth_pass)
    sameServersAcrossCluster(ctx, p)
    const { text, resolved } = prepareConfig(p, await hostView(ctx))
    const want = wanted(text)
    return { want, have: await gatherRemote(ctx, p.dest, want), resolved }
  },
  plan: (p, s) => planContentFile(fileParams(p), s),
  async apply(ctx, p, _changes, s) {
    const r = await applyContentFile(journalPerHost(ctx), fileParams(p), s)
    return { changed: r.changed ?? true, output: outputOf(p, s) }
  },
  output: (p, s) => outputOf(p, s),
  destroy: (ctx, r) =>
    destroyContentFile(ctx, { ...r, id: typeof r.data?.path === 'string' ? r.data.path : r.id }),
})
