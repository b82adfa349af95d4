/**
 * Nova's resources as the modules read them, and the calls on them; Glance's image lookup. Flavors
 * and images are resolved by name or id and cached per client.
 */
import { z } from 'zod'
import { RunbookError } from '../../../engine/errors.ts'
import { LookupCache, type OpenStackClient } from './client.ts'
import { looksLikeId } from './neutron.ts'

/** A server, as `GET /servers/{id}` shows it at the client's microversion. */
export const serverSchema = z.object({
  id: z.string(),
  name: z.string(),
  status: z.string(),
  tags: z
    .array(z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? []),
  metadata: z
    .record(z.string(), z.string())
    .nullable()
    .optional()
    .transform((v) => v ?? {}),
  // Boot from volume shows "" instead of an image.
  image: z
    .union([z.object({ id: z.string() }), z.string()])
    .nullable()
    .optional()
    .transform((v) => (typeof v === 'object' && v !== null ? v.id : null)),
  flavor: z.object({ id: z.string().optional(), original_name: z.string().optional() }),
  key_name: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  addresses: z
    .record(z.string(), z.array(z.object({ addr: z.string(), version: z.number().optional() })))
    .nullable()
    .optional()
    .transform((v) => v ?? {}),
  fault: z
    .object({
      code: z.number().optional(),
      message: z.string(),
      details: z.string().nullable().optional(),
    })
    .optional(),
  'OS-EXT-STS:task_state': z.string().nullable().optional(),
  'OS-EXT-STS:vm_state': z.string().nullable().optional(),
})

/** A server. */
export type Server = z.infer<typeof serverSchema>

/** A flavor. */
export const flavorSchema = z.object({ id: z.string(), name: z.string() })

/** A flavor. */
export type Flavor = z.infer<typeof flavorSchema>

/** A keypair. */
export const keypairSchema = z.object({
  name: z.string(),
  public_key: z.string(),
  fingerprint: z.string(),
  type: z.string().optional(),
})

/** A keypair. */
export type Keypair = z.infer<typeof keypairSchema>

/** A Glance image. */
export const imageSchema = z.object({
  id: z.string(),
  name: z
    .string()
    .nullable()
    .optional()
    .transform((v) => v ?? ''),
})

/** An image. */
export type Image = z.infer<typeof imageSchema>

/** Nova's name filter is a regular expression: match the name exactly. */
export function exactNameRegex(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`
}

/** Whether a server is on its way out (it still lists while Nova deletes it). */
export function isGoing(s: Server): boolean {
  return (
    s.status === 'DELETED' ||
    s.status === 'SOFT_DELETED' ||
    s['OS-EXT-STS:task_state'] === 'deleting'
  )
}

/**
 * Nova (and Glance, for images) calls for one client.
 * @example const nova = new Nova(client); const s = await nova.server(id)
 */
export class Nova {
  private readonly cache = new LookupCache()

  constructor(readonly c: OpenStackClient) {}

  /** The same helper, its lookups cached once per run, over one task's view of the client. */
  withClient(c: OpenStackClient): Nova {
    return Object.create(this, { c: { value: c } }) as Nova
  }

  /** Servers with exactly this name (deleting ones left out). */
  async serversNamed(name: string): Promise<Server[]> {
    const all = await this.c.sharedRead(`servers:${name}`, () =>
      this.c.list('compute', '/servers/detail', 'servers', serverSchema, {
        query: { name: exactNameRegex(name) },
      }),
    )
    return all.filter((s) => s.name === name && !isGoing(s))
  }

  /** A server by id, or undefined. */
  async server(id: string): Promise<Server | undefined> {
    return (
      await this.c.find(
        'compute',
        `/servers/${encodeURIComponent(id)}`,
        z.object({ server: serverSchema }),
      )
    )?.server
  }

  /** A server by name or id; undefined when there is none; several with the name is an error. */
  async serverByRef(ref: string): Promise<Server | undefined> {
    if (looksLikeId(ref)) {
      const s = await this.server(ref)
      if (s !== undefined && !isGoing(s)) return s
    }
    const found = await this.serversNamed(ref)
    if (found.length > 1)
      throw new RunbookError(
        'E_API',
        `Nova: ${found.length} servers are named '${ref}' (${found.map((s) => s.id).join(', ')})`,
        { hint: 'refer to the server by id' },
      )
    return found[0]
  }

  /** Creates a server; Nova answers 202 with its id at once. */
  async createServer(body: Record<string, unknown>): Promise<string> {
    return (
      await this.c.post(
        'compute',
        '/servers',
        { server: body },
        z.object({ server: z.object({ id: z.string() }) }),
      )
    ).server.id
  }

  /** Replaces a server's tags (`PUT /servers/{id}/tags`, microversion 2.26 and later). */
  async setServerTags(id: string, tags: readonly string[]): Promise<void> {
    await this.c.put('compute', `/servers/${encodeURIComponent(id)}/tags`, { tags }, z.unknown())
  }

  /** Deletes a server; false when it was already gone. */
  deleteServer(id: string): Promise<boolean> {
    return this.c.delete('compute', `/servers/${encodeURIComponent(id)}`)
  }

  /** A server action (`os-stop`, `os-start`); 409 when the server is already there is the caller's to judge. */
  async action(id: string, body: Record<string, unknown>): Promise<void> {
    await this.c.request('compute', 'POST', `/servers/${encodeURIComponent(id)}/action`, { body })
  }

  /** The server's console log (a POST that reads only, so it may be repeated). */
  async consoleLog(id: string): Promise<string> {
    const res = await this.c.request(
      'compute',
      'POST',
      `/servers/${encodeURIComponent(id)}/action`,
      { body: { 'os-getConsoleOutput': { length: null } }, idempotent: true, accept: [409] },
    )
    if (res.status === 409) return ''
    return this.c.parse(
      'compute',
      'POST',
      `/servers/${id}/action`,
      z.object({
        output: z
          .string()
          .nullable()
          .transform((v) => v ?? ''),
      }),
      res.data,
    ).output
  }

  /** A flavor by name or id (cached). */
  flavor(ref: string): Promise<Flavor> {
    return this.cache.get(`flavor:${ref}`, async () => {
      const all = await this.c.list('compute', '/flavors', 'flavors', flavorSchema)
      const f = all.find((x) => x.id === ref) ?? all.find((x) => x.name === ref)
      if (f === undefined)
        throw new RunbookError('E_API', `Nova: no flavor named or with id '${ref}'`, {
          hint: `flavors: ${all.map((x) => x.name).join(', ')}`,
        })
      return f
    })
  }

  /** A keypair by name, or undefined. */
  async keypair(name: string): Promise<Keypair | undefined> {
    return (
      await this.c.find(
        'compute',
        `/os-keypairs/${encodeURIComponent(name)}`,
        z.object({ keypair: keypairSchema }),
      )
    )?.keypair
  }

  /** Imports a public key. */
  async createKeypair(name: string, publicKey: string): Promise<Keypair> {
    return (
      await this.c.post(
        'compute',
        '/os-keypairs',
        { keypair: { name, public_key: publicKey, type: 'ssh' } },
        z.object({ keypair: keypairSchema }),
      )
    ).keypair
  }

  /** Deletes a keypair; false when it was already gone. */
  deleteKeypair(name: string): Promise<boolean> {
    return this.c.delete('compute', `/os-keypairs/${encodeURIComponent(name)}`)
  }

  /** An image by name or id, from Glance (cached). */
  image(ref: string): Promise<Image> {
    return this.cache.get(`image:${ref}`, async () => {
      if (looksLikeId(ref)) {
        const i = await this.c.find('image', `/images/${encodeURIComponent(ref)}`, imageSchema)
        if (i !== undefined) return i
      }
      const found = await this.c.list('image', '/images', 'images', imageSchema, {
        query: { name: ref },
      })
      if (found.length > 1)
        throw new RunbookError(
          'E_API',
          `Glance: ${found.length} images are named '${ref}' (${found.map((i) => i.id).join(', ')})`,
          { hint: 'refer to the image by id' },
        )
      const i = found[0]
      if (i === undefined)
        throw new RunbookError('E_API', `Glance: no image named or with id '${ref}'`)
      return i
    })
  }
}
