/**
 * The journal: what runs of one runbook (with one inventory) created, which hosts they added, and
 * how each run ended. Written crash-safely after every change, so a run that dies halfway leaves
 * a journal the next run (or `destroy`) can take over.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { RunbookError } from '../errors.ts'
import { removeStaleTemps, writeFileAtomic } from '../connection/local.ts'
import type { ResourceRecord } from '../module.ts'
import type { Redactor } from '../vars/secrets.ts'

const resourceSchema = z.object({
  module: z.string(),
  type: z.string(),
  id: z.string(),
  name: z.string().optional(),
  host: z.string(),
  task: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
  createdAt: z.string(),
})

const runSchema = z.object({
  id: z.string(),
  command: z.string(),
  pid: z.number(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  status: z.enum(['running', 'ok', 'failed', 'interrupted']),
  counts: z.record(z.string(), z.number()).optional(),
})

const journalSchema = z.object({
  version: z.literal(1),
  runbook: z.string(),
  inventory: z.string().nullable(),
  resources: z.array(resourceSchema),
  hosts: z.record(
    z.string(),
    z.object({ groups: z.array(z.string()), vars: z.record(z.string(), z.unknown()) }),
  ),
  runs: z.array(runSchema),
})

/** The journal's content. */
export type JournalData = z.infer<typeof journalSchema>

/** The directory holding a runbook's journal, lock and generated secrets. */
export function stateDirFor(
  root: string,
  runbookFile: string,
  inventoryFile: string | undefined,
): string {
  const key = `${path.resolve(runbookFile)}\n${inventoryFile ? path.resolve(inventoryFile) : ''}`
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10)
  const base = path.basename(runbookFile).replace(/\.ya?ml$/, '')
  return path.join(root, `${base}-${hash}`)
}

/**
 * A journal bound to its file.
 * @example const j = await Journal.open(dir, 'runbooks/vip.yaml', 'inventories/lab.yaml')
 */
export class Journal {
  private writing: Promise<void> = Promise.resolve()

  private constructor(
    readonly file: string,
    readonly data: JournalData,
    private readonly redactor: Redactor | undefined,
    /** Temp files of writers killed mid-write, removed when this journal was opened. */
    readonly removedTemps: string[] = [],
  ) {}

  /** Opens (or starts) the journal in `dir`. A corrupt journal is an error, never silently reset. */
  static async open(
    dir: string,
    runbook: string,
    inventory: string | undefined,
    redactor?: Redactor,
  ): Promise<Journal> {
    const file = path.join(dir, 'journal.json')
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    // a run killed during a write leaves its temp file; the journal itself is whole (rename)
    const removed = await removeStaleTemps(file)
    let text: string | undefined
    try {
      text = await fs.readFile(file, 'utf8')
    } catch {
      text = undefined
    }
    if (text === undefined) {
      return new Journal(
        file,
        {
          version: 1,
          runbook: path.resolve(runbook),
          inventory: inventory ? path.resolve(inventory) : null,
          resources: [],
          hosts: {},
          runs: [],
        },
        redactor,
        removed,
      )
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw new RunbookError(
        'E_JOURNAL',
        `journal ${file} is not valid JSON: ${(e as Error).message}`,
        { hint: 'it is written atomically, so this file was edited by hand or by another program' },
      )
    }
    const r = journalSchema.safeParse(parsed)
    if (!r.success)
      throw new RunbookError(
        'E_JOURNAL',
        `journal ${file} is not a runbook journal: ${r.error.issues[0]?.message ?? ''}`,
      )
    return new Journal(file, r.data, redactor, removed)
  }

  /** Writes the journal (temp file, fsync, rename); writes are serialised. */
  save(): Promise<void> {
    const snapshot = JSON.stringify(
      this.redactor ? this.redactor.value(this.data) : this.data,
      null,
      2,
    )
    this.writing = this.writing.then(() =>
      writeFileAtomic(this.file, `${snapshot}\n`, { mode: 0o600 }),
    )
    return this.writing
  }

  /** Records a created resource (one record per module, type, id and host: a path exists per host). */
  async record(r: ResourceRecord): Promise<void> {
    this.data.resources = this.data.resources.filter(
      (x) => !(x.module === r.module && x.type === r.type && x.id === r.id && x.host === r.host),
    )
    this.data.resources.push(r)
    await this.save()
  }

  /** Forgets a resource (it was destroyed); on one host only when `host` is given. */
  async forget(type: string, id: string, host?: string): Promise<void> {
    this.data.resources = this.data.resources.filter(
      (x) => !(x.type === type && x.id === id && (host === undefined || x.host === host)),
    )
    await this.save()
  }

  /** Resources by module and type (and id). */
  find(module: string, type: string, id?: string): ResourceRecord[] {
    return this.data.resources.filter(
      (r) => r.module === module && r.type === type && (id === undefined || r.id === id),
    )
  }

  /** Every resource, of any module. */
  all(): readonly ResourceRecord[] {
    return this.data.resources
  }

  /** Remembers a host added during the run, so `destroy` can reach it later. */
  async rememberHost(name: string, groups: string[], vars: Record<string, unknown>): Promise<void> {
    this.data.hosts[name] = { groups, vars }
    await this.save()
  }

  /** Starts a run entry; returns its id. Older runs still marked running were interrupted. */
  async startRun(command: string): Promise<string> {
    for (const run of this.data.runs) if (run.status === 'running') run.status = 'interrupted'
    const id = `${Date.now().toString(36)}-${process.pid}`
    this.data.runs.push({
      id,
      command,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      status: 'running',
    })
    this.data.runs = this.data.runs.slice(-50)
    await this.save()
    return id
  }

  /** Ends a run entry. */
  async finishRun(
    id: string,
    status: 'ok' | 'failed',
    counts: Record<string, number>,
  ): Promise<void> {
    const run = this.data.runs.find((r) => r.id === id)
    if (run) Object.assign(run, { status, counts, finishedAt: new Date().toISOString() })
    await this.save()
  }
}
