/**
 * Nova (compute v2.1): servers (create, list with filters, show, delete, actions), flavors,
 * keypairs, interfaces and console output. Microversion-dependent shapes are in views.ts;
 * the background work (build, power, delete) is in compute.ts.
 */
import { novaVersion, novaVersions } from '../catalog.ts'
import type { Cloud } from '../cloud.ts'
import { errorText } from '../cloud.ts'
import { scheduleBuild, scheduleDelete, schedulePower } from './compute.ts'
import type { PowerAction } from './compute.ts'
import { asObject, json, novaError } from '../http.ts'
import type { Ctx, Reply, Route } from '../http.ts'
import { isoSeconds } from '../ids.ts'
import { createServer, invalid, who } from './create.ts'
import { flavorRoutes } from './flavors.ts'
import { keypairRoutes } from './keypairs.ts'
import { microversion, novaImage, serverDetail, serverSummary, versionHeaders } from './views.ts'
import { atLeast } from './versions.ts'
import type { Microversion } from './versions.ts'
import type { AuthContext } from '../keystone/tokens.ts'
import type { ServerRec } from '../types.ts'

function getServer(cloud: Cloud, ctx: Ctx, auth: AuthContext): ServerRec {
  const id = ctx.params[0] ?? ''
  const s = cloud.state.servers.find((x) => x.id === id)
  if (s === undefined || (!auth.isAdmin && s.projectId !== auth.projectId))
    throw novaError(404, `Instance ${id} could not be found.`)
  return s
}

const NAME_FILTERS = [
  'name',
  'status',
  'image',
  'flavor',
  'ip',
  'changes-since',
  'tags',
  'key_name',
  'description',
  'availability_zone',
  'locked',
  'host',
]

function listServers(cloud: Cloud, ctx: Ctx, v: Microversion, detail: boolean): Reply {
  const auth = who(ctx)
  const q = ctx.query
  let items = cloud.state.servers.filter(
    (s) => (auth.isAdmin && q.get('all_tenants') !== null) || s.projectId === auth.projectId,
  )
  const regex = (p: string): RegExp => {
    try {
      return new RegExp(p)
    } catch {
      return new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    }
  }
  for (const key of NAME_FILTERS) {
    const value = q.get(key)
    if (value === null) continue
    if (key === 'name') items = items.filter((s) => regex(value).test(s.name))
    else if (key === 'status') items = items.filter((s) => s.status === value.toUpperCase())
    else if (key === 'image') items = items.filter((s) => s.imageId === value)
    else if (key === 'flavor') items = items.filter((s) => s.flavorId === value)
    else if (key === 'key_name') items = items.filter((s) => s.keyName === value)
    else if (key === 'ip') {
      const r = regex(value)
      items = items.filter((s) =>
        cloud.state.ports.some(
          (p) => s.portIds.includes(p.id) && p.fixedIps.some((f) => r.test(f.ipAddress)),
        ),
      )
    } else if (key === 'changes-since')
      items = items.filter((s) => Date.parse(s.updatedAt) >= Date.parse(value))
    else if (key === 'tags')
      items = items.filter((s) => value.split(',').every((t) => s.tags.includes(t)))
  }
  items = [...items].sort((a, b) =>
    a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1,
  )
  const marker = q.get('marker')
  if (marker !== null) {
    const i = items.findIndex((s) => s.id === marker)
    if (i < 0) throw novaError(400, `marker [${marker}] not found`)
    items = items.slice(i + 1)
  }
  const limitRaw = q.get('limit')
  let limit = 1000
  if (limitRaw !== null) {
    limit = Number(limitRaw)
    if (!Number.isInteger(limit) || limit < 0)
      throw novaError(
        400,
        `Invalid input for query parameters limit. Value: ${limitRaw}. '${limitRaw}' does not match '^[0-9]*$'`,
      )
    limit = Math.min(limit, 1000)
  }
  const page = items.slice(0, limit)
  const body: Record<string, unknown> = {
    servers: page.map((s) =>
      detail
        ? serverDetail(cloud, s, { v, base: ctx.baseUrl, admin: auth.isAdmin, show: false })
        : serverSummary(s, ctx.baseUrl),
    ),
  }
  const last = page[page.length - 1]
  if (last !== undefined && page.length === limit && items.length > limit) {
    const p = new URLSearchParams(q)
    p.set('marker', last.id)
    body['servers_links'] = [
      {
        rel: 'next',
        href: `${ctx.baseUrl}/compute/v2.1/servers${detail ? '/detail' : ''}?${p.toString()}`,
      },
    ]
  }
  return json(200, body)
}

function conflict(s: ServerRec, action: string): ReturnType<typeof novaError> {
  if (s.taskState !== null)
    return novaError(
      409,
      `Cannot '${action}' instance ${s.id} while it is in task_state ${s.taskState}`,
    )
  return novaError(409, `Cannot '${action}' instance ${s.id} while it is in vm_state ${s.vmState}`)
}

async function serverAction(cloud: Cloud, ctx: Ctx): Promise<Reply> {
  const auth = who(ctx)
  const s = getServer(cloud, ctx, auth)
  const body = asObject(ctx.body)
  const action = body === null ? undefined : Object.keys(body)[0]
  const power = (
    name: string,
    want: ServerRec['vmState'],
    task: string,
    act: PowerAction,
  ): Reply => {
    if (s.taskState !== null || s.vmState !== want) throw conflict(s, name)
    s.taskState = task
    s.updatedAt = isoSeconds()
    schedulePower(cloud, s.id, act)
    return { status: 202 }
  }
  switch (action) {
    case 'os-stop':
    case 'os-start':
    case 'reboot': {
      const reply =
        action === 'os-stop'
          ? power('stop', 'active', 'powering-off', 'stop')
          : action === 'os-start'
            ? power('start', 'stopped', 'powering-on', 'start')
            : power(
                'reboot',
                'active',
                asObject(body?.['reboot'])?.['type'] === 'HARD' ? 'rebooting_hard' : 'rebooting',
                'reboot',
              )
      await cloud.commit()
      return reply
    }
    case 'os-getConsoleOutput': {
      if (s.launchedAt === null) throw novaError(409, `Instance ${s.id} is not ready`)
      let log = s.consoleLog
      try {
        log = await cloud.driver.consoleLog(s.id)
      } catch (e) {
        cloud.log(`consoleLog ${s.id} failed, serving the boot log: ${errorText(e)}`)
      }
      const lengthRaw = asObject(body?.['os-getConsoleOutput'])?.['length']
      const length = lengthRaw === undefined || lengthRaw === null ? -1 : Number(lengthRaw)
      if (!Number.isInteger(length) || length < -1)
        throw invalid('length', lengthRaw, 'is not a valid length')
      let output = log
      if (length >= 0) {
        const lines = log.split('\n')
        if (lines[lines.length - 1] === '') lines.pop()
        output =
          lines.slice(Math.max(lines.length - length, 0)).join('\n') + (length > 0 ? '\n' : '')
      }
      return json(200, { output })
    }
    default:
      throw novaError(400, `There is no such action: ${String(action)}`)
  }
}

function interfaces(cloud: Cloud, s: ServerRec): Record<string, unknown>[] {
  return s.portIds.flatMap((id) => {
    const p = cloud.state.ports.find((x) => x.id === id)
    if (p === undefined) return []
    return [
      {
        port_state: p.status,
        fixed_ips: p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.ipAddress })),
        port_id: p.id,
        net_id: p.networkId,
        mac_addr: p.macAddress,
      },
    ]
  })
}

/** Nova's routes that need no token (version discovery), relative to `/compute`. */
export function novaPublicRoutes(cloud: Cloud): Route[] {
  const max = cloud.novaMaxVersion
  return [
    {
      method: 'GET',
      pattern: /^\/?$/,
      handler: (ctx) => json(200, novaVersions(ctx.baseUrl, max)),
    },
    {
      method: 'GET',
      pattern: /^\/v2\.1\/?$/,
      handler: (ctx) => json(200, { version: novaVersion(ctx.baseUrl, max) }),
    },
  ]
}

/** Nova's authenticated routes, relative to `/compute/v2.1` (an optional project id segment is stripped first). */
export function novaRoutes(cloud: Cloud): Route[] {
  const mv = (ctx: Ctx): Microversion => microversion(ctx, cloud.novaMaxVersion)
  return [
    {
      method: 'GET',
      pattern: /^\/servers$/,
      handler: (ctx) => listServers(cloud, ctx, mv(ctx), false),
    },
    {
      method: 'GET',
      pattern: /^\/servers\/detail$/,
      handler: (ctx) => listServers(cloud, ctx, mv(ctx), true),
    },
    {
      method: 'POST',
      pattern: /^\/servers$/,
      handler: async (ctx) => {
        const reply = createServer(cloud, ctx, mv(ctx))
        await cloud.commitAndSync()
        for (const s of cloud.state.servers)
          if (s.status === 'BUILD' && s.taskState === 'scheduling') scheduleBuild(cloud, s.id)
        return reply
      },
    },
    {
      method: 'GET',
      pattern: /^\/servers\/([^/]+)$/,
      handler: (ctx) => {
        const auth = who(ctx)
        return json(200, {
          server: serverDetail(cloud, getServer(cloud, ctx, auth), {
            v: mv(ctx),
            base: ctx.baseUrl,
            admin: auth.isAdmin,
            show: true,
          }),
        })
      },
    },
    {
      method: 'PUT',
      pattern: /^\/servers\/([^/]+)$/,
      handler: async (ctx) => {
        const auth = who(ctx)
        const s = getServer(cloud, ctx, auth)
        const body = asObject(asObject(ctx.body)?.['server'])
        if (body === null) throw invalid('root', ctx.body, "'server' is a required property")
        if (typeof body['name'] === 'string') s.name = body['name']
        if (typeof body['description'] === 'string' || body['description'] === null)
          s.description = body['description'] as string | null
        s.updatedAt = isoSeconds()
        await cloud.commit()
        return json(200, {
          server: serverDetail(cloud, s, {
            v: mv(ctx),
            base: ctx.baseUrl,
            admin: auth.isAdmin,
            show: true,
          }),
        })
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/servers\/([^/]+)$/,
      handler: async (ctx) => {
        const s = getServer(cloud, ctx, who(ctx))
        s.taskState = 'deleting'
        s.updatedAt = isoSeconds()
        await cloud.commit()
        scheduleDelete(cloud, s.id)
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      pattern: /^\/servers\/([^/]+)\/action$/,
      handler: (ctx) => serverAction(cloud, ctx),
    },
    {
      method: 'GET',
      pattern: /^\/servers\/([^/]+)\/os-interface$/,
      handler: (ctx) =>
        json(200, { interfaceAttachments: interfaces(cloud, getServer(cloud, ctx, who(ctx))) }),
    },
    {
      method: 'GET',
      pattern: /^\/servers\/([^/]+)\/os-interface\/([^/]+)$/,
      handler: (ctx) => {
        const found = interfaces(cloud, getServer(cloud, ctx, who(ctx))).find(
          (i) => i['port_id'] === ctx.params[1],
        )
        if (found === undefined) throw novaError(404, `Port ${ctx.params[1] ?? ''} is not attached`)
        return json(200, { interfaceAttachment: found })
      },
    },
    {
      method: 'GET',
      pattern: /^\/servers\/([^/]+)\/ips$/,
      handler: (ctx) => {
        const s = getServer(cloud, ctx, who(ctx))
        const addresses: Record<string, unknown[]> = {}
        for (const [net, list] of Object.entries(
          serverDetail(cloud, s, { v: [2, 1], base: ctx.baseUrl, admin: false, show: true })[
            'addresses'
          ] as Record<string, Record<string, unknown>[]>,
        )) {
          addresses[net] = list.map((a) => ({ version: a['version'], addr: a['addr'] }))
        }
        return json(200, { addresses })
      },
    },
    // Server tags (2.26): replaced as a whole, as the modules do below 2.52 (no tags at create).
    {
      method: 'GET',
      pattern: /^\/servers\/([^/]+)\/tags$/,
      handler: (ctx) => {
        if (!atLeast(mv(ctx), 26)) throw novaError(404, 'The resource could not be found.')
        return json(200, { tags: [...getServer(cloud, ctx, who(ctx)).tags] })
      },
    },
    {
      method: 'PUT',
      pattern: /^\/servers\/([^/]+)\/tags$/,
      handler: async (ctx) => {
        if (!atLeast(mv(ctx), 26)) throw novaError(404, 'The resource could not be found.')
        const s = getServer(cloud, ctx, who(ctx))
        // Nova changes tags only of an instance in a settled vm_state (server_tags.py)
        if (s.vmState !== 'active' && s.vmState !== 'stopped')
          throw novaError(
            409,
            `Cannot 'update tags' instance ${s.id} while it is in vm_state ${s.vmState}`,
          )
        const tags = asObject(ctx.body)?.['tags']
        if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || /[/,]/.test(t)))
          throw invalid('tags', tags, 'is not a valid list of tags')
        s.tags = [...new Set(tags as string[])]
        s.updatedAt = isoSeconds()
        await cloud.commit()
        return json(200, { tags: [...s.tags] })
      },
    },
    ...flavorRoutes(cloud, mv),
    ...keypairRoutes(cloud, mv),
    ...['images', 'images/detail'].map((path) => ({
      method: 'GET',
      pattern: new RegExp(`^/${path}$`),
      handler: (ctx: Ctx) => {
        if (atLeast(mv(ctx), 36)) throw novaError(404, 'The resource could not be found.')
        return json(200, {
          images: cloud.state.images.map((i) => novaImage(i, ctx.baseUrl, path.endsWith('detail'))),
        })
      },
    })),
    {
      method: 'GET',
      pattern: /^\/images\/([^/]+)$/,
      handler: (ctx) => {
        if (atLeast(mv(ctx), 36)) throw novaError(404, 'The resource could not be found.')
        const i = cloud.state.images.find((x) => x.id === ctx.params[0])
        if (i === undefined) throw novaError(404, 'Image not found.')
        return json(200, { image: novaImage(i, ctx.baseUrl, true) })
      },
    },
    {
      method: 'GET',
      pattern: /^\/os-availability-zone(?:\/detail)?$/,
      handler: () =>
        json(200, {
          availabilityZoneInfo: [{ zoneName: 'nova', zoneState: { available: true }, hosts: null }],
        }),
    },
    {
      method: 'GET',
      pattern: /^\/limits$/,
      handler: (ctx) => {
        const auth = who(ctx)
        const mine = cloud.state.servers.filter((s) => s.projectId === auth.projectId)
        const flavors = mine.map((s) => cloud.state.flavors.find((f) => f.id === s.flavorId))
        return json(200, {
          limits: {
            rate: [],
            absolute: {
              maxTotalInstances: 100,
              maxTotalCores: 400,
              maxTotalRAMSize: 1024000,
              maxServerMeta: 128,
              maxImageMeta: 128,
              maxPersonality: 5,
              maxPersonalitySize: 10240,
              maxTotalKeypairs: 100,
              maxServerGroups: 10,
              maxServerGroupMembers: 10,
              totalInstancesUsed: mine.length,
              totalCoresUsed: flavors.reduce((n, f) => n + (f?.vcpus ?? 0), 0),
              totalRAMUsed: flavors.reduce((n, f) => n + (f?.ram ?? 0), 0),
              totalServerGroupsUsed: 0,
            },
          },
        })
      },
    },
  ]
}

/** The microversion headers of a Nova response (errors included); none when the version itself was bad. */
export function novaHeaders(cloud: Cloud): (ctx: Ctx) => Record<string, string> {
  return (ctx) => {
    try {
      return versionHeaders(microversion(ctx, cloud.novaMaxVersion))
    } catch {
      return {}
    }
  }
}
