/**
 * The run commands: validate, plan, apply, destroy. Each is parse -> validate -> (lock) ->
 * execute -> report, with errors printed with positions and secrets redacted everywhere.
 */
import '../zod-setup.ts'
import { setMaxListeners } from 'node:events'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { isatty } from 'node:tty'
import { RunbookError } from '../errors.ts'
import { destroy } from '../execute/destroy.ts'
import type { ConnectionFactory } from '../connection/factory.ts'
import { execute } from '../execute/executor.ts'
import { Journal } from '../journal/journal.ts'
import { acquireLock, type Lock } from '../journal/lock.ts'
import { consoleReporter } from '../report/console.ts'
import type { EventSink, RunEvent } from '../report/events.ts'
import { colorsFor, formatChange, plainColors, planSummary } from '../report/format.ts'
import { jsonReporter } from '../report/json.ts'
import { outline } from '../report/outline.ts'
import { renderPlan } from '../report/plan.ts'
import { prepare, type Prepared } from '../prepare.ts'
import { renderTimings, withRunTotals } from '../report/timings.ts'
import { Timings } from '../timings.ts'
import type { CliDeps, ConnectionContext } from './deps.ts'
import { printErrors } from './print-errors.ts'
import type { ModuleRegistry } from '../module.ts'
import { countChanges } from '../plan/change.ts'
import {
  changedFiles,
  digestFiles,
  planDrift,
  planEntries,
  readSavedPlan,
  writeSavedPlan,
  type SavedPlan,
} from '../plan/saved.ts'

/** Flags shared by the run commands. */
export interface CommonFlags {
  runbook: string
  inventory?: string | undefined
  vars: string[]
  varFiles: string[]
  limit?: string | undefined
  tags?: string[] | undefined
  skipTags?: string[] | undefined
  forks: number
  json: boolean
  color: boolean
  stateDir?: string | undefined
  /** `--allow-source`: directories outside the runbook's tree that sources may come from. */
  allowSources?: string[] | undefined
  verbose: boolean
  /** Print where the time went, per task and host, after the recap. */
  timings?: boolean | undefined
}

type Out = NodeJS.WriteStream

/** What a connection factory is told about the run. */
function connectionContext(p: Prepared, err: Out): ConnectionContext {
  return { stateRoot: path.dirname(p.stateDir), prompt: terminalPrompt(err), redactor: p.redactor }
}

/** The run's connections. */
function connectionsFor(p: Prepared, deps: CliDeps, err: Out): ConnectionFactory {
  return deps.connections(connectionContext(p, err))
}

/**
 * Whether stdin is a terminal. Asked of fd 0 itself: `process.stdin` would build a stream for it
 * (2–3 ms of every run's start-up) only to be asked this.
 */
const stdinIsTerminal = (): boolean => isatty(0)

/** Reads a secret from the terminal without echoing it. */
function terminalPrompt(err: Out): ((q: string) => Promise<string>) | undefined {
  if (!stdinIsTerminal()) return undefined
  return (question) =>
    new Promise((resolve) => {
      const muted = new Writable({ write: (_c, _e, cb) => cb() })
      err.write(`${question}: `)
      const rl = createInterface({ input: process.stdin, output: muted, terminal: true })
      rl.question('', (answer) => {
        rl.close()
        err.write('\n')
        resolve(answer)
      })
    })
}

/** A prepared runbook with the registry it was checked against. */
type Loaded = Prepared & { registry: ModuleRegistry }

async function load(
  f: CommonFlags,
  deps: CliDeps,
  err: Out,
  skipSecrets = false,
  secretsOptional = false,
): Promise<Loaded | undefined> {
  try {
    const registry = await deps.registry()
    const p = await prepare({
      runbookFile: f.runbook,
      inventoryFile: f.inventory,
      registry,
      vars: f.vars,
      varFiles: f.varFiles,
      prompt: terminalPrompt(err),
      stateRoot: f.stateDir,
      allowSources: f.allowSources,
      skipSecrets,
      secretsOptional,
    })
    return { ...p, registry }
  } catch (e) {
    printErrors(e, err)
    return undefined
  }
}

function sinks(
  f: CommonFlags,
  out: Out,
  extra: { diff: boolean; quiet: boolean },
): { emit: EventSink; close(): void; events: RunEvent[]; timings: Timings } {
  const events: RunEvent[] = []
  // the command's counters: its runs' tasks add to them, the summary carries their totals
  const timings = new Timings()
  if (f.json) {
    const j = jsonReporter(out)
    const emit: EventSink = (e) => {
      const x = withRunTotals(e, timings)
      events.push(x)
      j(x)
    }
    return { emit, close: () => undefined, events, timings }
  }
  const colors = colorsFor(out, f.color ? undefined : false)
  const r = consoleReporter({
    out,
    colors,
    live: Boolean(out.isTTY) && !('CI' in process.env),
    diff: extra.diff,
    quietTasks: extra.quiet,
    verbose: f.verbose,
  })
  return {
    emit: (e) => {
      const x = withRunTotals(e, timings)
      events.push(x)
      r.sink(x)
    },
    close: () => {
      r.close()
      if (f.timings) out.write(renderTimings(events, colors))
    },
    events,
    timings,
  }
}

/** What every run of a prepared runbook passes to execute; the caller adds mode, journal and sinks. */
function runOptions(p: Loaded, f: CommonFlags, deps: CliDeps, connections: ConnectionFactory) {
  return {
    runbook: p.runbook,
    inventory: p.inventory,
    registry: p.registry,
    extraVars: p.extraVars,
    secretVars: p.secretVars,
    redactor: p.redactor,
    connections,
    forks: f.forks,
    limit: f.limit,
    tags: f.tags,
    skipTags: f.skipTags,
    sources: p.sources,
    baseDir: p.baseDir,
    stateDir: p.stateDir,
    env: deps.env,
  }
}

/** The runbook's lock, or undefined after printing who holds it. */
async function lockOrReport(
  p: Prepared,
  command: string,
  timeoutSeconds: number,
  err: Out,
): Promise<Lock | undefined> {
  try {
    return await acquireLock(p.stateDir, command, timeoutSeconds * 1000, (h) =>
      err.write(
        `waiting for the lock of this runbook (pid ${h.pid} on ${h.host}, \`${h.command}\`), at most ${timeoutSeconds} s\n`,
      ),
    )
  } catch (e) {
    printErrors(e, err)
    return undefined
  }
}

/** A line for the temp files of killed runs that opening the journal removed. */
function reportRemovedTemps(journal: Journal, emit: EventSink): void {
  if (journal.removedTemps.length > 0)
    emit({
      type: 'warning',
      message: `removed ${journal.removedTemps.length} temp file(s) that a run killed while writing the journal left: ${journal.removedTemps.join(', ')}`,
    })
}

/** `destroy --forget ID`: drops records from the journal, touching nothing (`terraform state rm`). */
async function forgetRecords(journal: Journal, ids: string[], out: Out): Promise<number> {
  const unknownIds = ids.filter((id) => !journal.data.resources.some((r) => r.id === id))
  if (unknownIds.length > 0)
    throw new RunbookError(
      'E_USAGE',
      `the journal has no record with ID ${unknownIds.join(', ')}; it records: ${journal.data.resources.map((r) => `${r.type} ${r.name ?? r.id} (ID ${r.id})`).join(', ') || 'nothing'}`,
    )
  for (const r of journal.data.resources.filter((x) => ids.includes(x.id)))
    out.write(
      `Forgot ${r.type} ${r.name ?? r.id} (ID ${r.id}) on ${r.host}: removed from the journal, not destroyed.\n`,
    )
  journal.data.resources = journal.data.resources.filter((r) => !ids.includes(r.id))
  await journal.save()
  return 0
}

/** `runbook validate`. */
export async function runValidate(
  f: CommonFlags,
  deps: CliDeps,
  out: Out,
  err: Out,
  o: { listTasks?: boolean; listHosts?: boolean } = {},
): Promise<number> {
  const p = await load(f, deps, err, true)
  if (!p) return 1
  if (o.listTasks === true || o.listHosts === true) {
    out.write(
      `${outline(p.runbook, p.inventory, { tasks: o.listTasks === true, hosts: o.listHosts === true, limit: f.limit }).join('\n')}\n`,
    )
    return 0
  }
  const tasks = p.runbook.plays.reduce((n, pl) => n + pl.tasks.length + pl.handlers.length, 0)
  out.write(
    `${f.runbook}: valid (${p.runbook.plays.length} plays, ${tasks} tasks${p.inventoryFile ? `, inventory ${p.inventoryFile}` : ''})\n`,
  )
  return 0
}

/** `runbook plan`. */
export async function runPlan(
  f: CommonFlags,
  o: { detailedExitcode: boolean; destroy: boolean; out?: string | undefined },
  deps: CliDeps,
  out: Out,
  err: Out,
): Promise<number> {
  if (o.out !== undefined && o.destroy) {
    printErrors(
      new RunbookError('E_USAGE', 'plan --out saves an apply plan; it does not go with --destroy'),
      err,
    )
    return 1
  }
  const p = await load(f, deps, err, false, o.destroy)
  if (!p) return 1
  const colors = colorsFor(out, f.color ? undefined : false)
  const journal = await Journal.open(p.stateDir, f.runbook, p.inventoryFile, p.redactor).catch(
    (e: unknown) => e as Error,
  )
  if (journal instanceof Error) {
    printErrors(journal, err)
    return 1
  }
  if (o.destroy) {
    const s = sinks(f, out, { diff: false, quiet: true })
    const r = await destroy({
      journal,
      registry: p.registry,
      inventory: p.inventory,
      env: deps.env,
      connections: connectionsFor(p, deps, err),
      redactor: p.redactor,
      emit: s.emit,
      timings: s.timings,
      baseDir: p.baseDir,
      vars: { ...p.runbook.vars, ...p.secretVars },
      extraVars: p.extraVars,
      plan: true,
    })
    const counts = countChanges(r.changes)
    if (f.json)
      s.emit({
        type: 'summary',
        ok: true,
        mode: 'plan',
        hosts: r.hosts,
        plan: counts,
        duration_ms: 0,
        changed: 0,
        failed: 0,
        unreachable: 0,
      })
    else {
      for (const ch of r.changes)
        out.write(`${p.redactor.text(formatChange(ch, colors, { diff: false }).join('\n'))}\n`)
      out.write(`\n${planSummary(counts, colors)}\n`)
    }
    s.close()
    return o.detailedExitcode && r.changes.length ? 2 : 0
  }
  const s = sinks(f, out, { diff: true, quiet: true })
  const result = await execute({
    ...runOptions(p, f, deps, connectionsFor(p, deps, err)),
    mode: 'plan',
    journal,
    emit: s.emit,
    timings: s.timings,
  })
  s.close()
  const changed = Object.values(result.hosts).reduce((n, h) => n + h.changed, 0)
  if (f.json) {
    s.emit(
      p.redactor.value({
        type: 'summary',
        ok: result.ok,
        mode: 'plan',
        hosts: result.hosts,
        plan: result.plan,
        duration_ms: result.durationMs,
        changed,
        failed: result.errors.length,
        unreachable: 0,
      }),
    )
  } else if (result.ok || result.changes.length > 0) {
    // a failed plan never says "No changes": the world may well differ from the runbook
    out.write(
      `${p.redactor.text(renderPlan(result.changes, colors, result.plan, result.checks).join('\n'))}\n`,
    )
  }
  for (const e of result.errors) printErrors(e, err, p.sources, (t) => p.redactor.text(t))
  if (!result.ok) {
    if (!f.json)
      err.write(
        `The plan failed: nothing was changed${result.changes.length ? ', and the plan above is incomplete' : ''}.\n`,
      )
    return 1
  }
  if (o.out !== undefined) {
    const secretKeys = f.vars
      .map((v) => v.slice(0, v.indexOf('=')))
      .filter((k) => k in p.secretVars)
    if (secretKeys.length > 0) {
      printErrors(
        new RunbookError(
          'E_USAGE',
          `not saving the plan: -e sets the secret ${secretKeys.join(', ')}, and a saved plan keeps its -e values; give it through its declared source (environment, file or prompt)`,
        ),
        err,
      )
      return 1
    }
    await writeSavedPlan(o.out, {
      options: {
        runbook: path.resolve(f.runbook),
        inventory: p.inventoryFile ? path.resolve(p.inventoryFile) : null,
        vars: f.vars,
        varFiles: f.varFiles.map((v) => path.resolve(v)),
        limit: f.limit ?? null,
        tags: f.tags ?? null,
        skipTags: f.skipTags ?? null,
        stateRoot: path.dirname(p.stateDir),
      },
      files: digestFiles(p.sources),
      changes: planEntries(result.changes, p.redactor),
      rendered: p.redactor
        .text(renderPlan(result.changes, plainColors, result.plan, result.checks).join('\n'))
        .split('\n'),
    })
    if (!f.json)
      out.write(
        `\nSaved the plan to ${o.out}. To apply exactly this plan: runbook apply ${o.out}\n`,
      )
  }
  return o.detailedExitcode && result.changes.some((c) => !c.check) ? 2 : 0
}

/** `runbook show PLANFILE`: the saved plan as it was printed, with what it was made from. */
export async function runShow(file: string, json: boolean, out: Out, err: Out): Promise<number> {
  const saved = await readSavedPlan(file).catch((e: unknown) => e as Error)
  if (saved === undefined || saved instanceof Error) {
    printErrors(
      saved ?? new RunbookError('E_USAGE', `${file} is not a plan saved by \`runbook plan --out\``),
      err,
    )
    return 1
  }
  if (json) {
    out.write(`${JSON.stringify(saved, null, 2)}\n`)
    return 0
  }
  const o = saved.options
  const opts = [
    o.inventory ? `-i ${o.inventory}` : '',
    ...o.vars.map((v) => `-e ${v}`),
    ...o.varFiles.map((v) => `--var-file ${v}`),
    o.limit ? `--limit ${o.limit}` : '',
    o.tags ? `--tags ${o.tags.join(',')}` : '',
    o.skipTags ? `--skip-tags ${o.skipTags.join(',')}` : '',
  ].filter(Boolean)
  out.write(
    `Saved plan ${file}, made ${saved.created}: ${o.runbook}${opts.length ? ` ${opts.join(' ')}` : ''}\n`,
  )
  out.write(`${saved.rendered.join('\n')}\n`)
  return 0
}

/** The flags a saved plan brings; the ones given beside it that it does not allow. */
function savedPlanFlags(
  f: CommonFlags,
  saved: SavedPlan,
  check: boolean,
): { flags: CommonFlags; refused: string[] } {
  const given: [string, boolean][] = [
    ['--inventory', f.inventory !== undefined],
    ['--var', f.vars.length > 0],
    ['--var-file', f.varFiles.length > 0],
    ['--limit', f.limit !== undefined],
    ['--tags', f.tags !== undefined],
    ['--skip-tags', f.skipTags !== undefined],
    ['--state-dir', f.stateDir !== undefined],
    ['--check', check],
  ]
  const o = saved.options
  return {
    refused: given.filter(([, on]) => on).map(([name]) => name),
    flags: {
      ...f,
      runbook: o.runbook,
      inventory: o.inventory ?? undefined,
      vars: o.vars,
      varFiles: o.varFiles,
      limit: o.limit ?? undefined,
      tags: o.tags ?? undefined,
      skipTags: o.skipTags ?? undefined,
      stateDir: o.stateRoot,
    },
  }
}

/** Up to `max` items, then how many more. */
function capped(lines: string[], max = 20): string[] {
  return lines.length <= max
    ? lines
    : [...lines.slice(0, max), `... and ${lines.length - max} more`]
}

/** `runbook apply`. */
export async function runApply(
  given: CommonFlags,
  o: { check: boolean; diff: boolean; forceHandlers: boolean; lockTimeout: number },
  deps: CliDeps,
  out: Out,
  err: Out,
): Promise<number> {
  // `runbook apply PLANFILE`: the saved plan's options, its files unchanged, its plan still true
  const saved = await readSavedPlan(given.runbook).catch((e: unknown) => e as Error)
  if (saved instanceof Error) {
    printErrors(saved, err)
    return 1
  }
  let f = given
  if (saved !== undefined) {
    const s = savedPlanFlags(given, saved, o.check)
    if (s.refused.length > 0) {
      printErrors(
        new RunbookError(
          'E_USAGE',
          `a saved plan carries its own options: ${s.refused.join(', ')} cannot be given with it (make a new plan with them)`,
        ),
        err,
      )
      return 1
    }
    f = s.flags
  }
  const p = await load(f, deps, err)
  if (!p) return 1
  if (saved !== undefined) {
    const stale = await changedFiles(saved, digestFiles(p.sources))
    if (stale.length > 0) {
      printErrors(
        new RunbookError(
          'E_PLAN_STALE',
          `the saved plan ${given.runbook} is stale: files changed since it was made:\n  ${capped(stale).join('\n  ')}`,
          { hint: 'run `runbook plan --out` again and review it' },
        ),
        err,
      )
      return 1
    }
  }
  const lock = await lockOrReport(p, `runbook apply ${f.runbook}`, o.lockTimeout, err)
  if (!lock) return 1
  const s = sinks(f, out, { diff: o.diff, quiet: false })
  const abort = new AbortController()
  // every command in flight listens to it, one per host at once (forks): not a leak past 10
  setMaxListeners(0, abort.signal)
  const onSignal = (): void => abort.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let connections: ConnectionFactory | undefined
  try {
    if (lock.tookOverFrom)
      s.emit({
        type: 'warning',
        message: `took over the lock of pid ${lock.tookOverFrom.pid}, which is gone (its run was interrupted)`,
      })
    const journal = await Journal.open(p.stateDir, f.runbook, p.inventoryFile, p.redactor)
    reportRemovedTemps(journal, s.emit)
    connections = connectionsFor(p, deps, err)
    if (saved !== undefined) {
      // plan again, quietly, under the lock: what would run now must be what was reviewed. It runs
      // on the connections the apply then uses (one connection per host, not two).
      const now = await execute({
        ...runOptions(p, f, deps, connections),
        mode: 'plan',
        journal,
        emit: () => undefined,
        timings: s.timings,
        signal: abort.signal,
        keepConnections: true,
      })
      if (!now.ok) {
        for (const e of now.errors) printErrors(e, err, p.sources, (t) => p.redactor.text(t))
        return 1
      }
      const drift = planDrift(saved.changes, planEntries(now.changes, p.redactor))
      if (drift.length > 0) {
        printErrors(
          new RunbookError(
            'E_PLAN_STALE',
            `the saved plan ${given.runbook} is stale: the infrastructure changed since it was made:\n  ${capped(drift).join('\n  ')}`,
            { hint: 'run `runbook plan --out` again and review it' },
          ),
          err,
        )
        return 1
      }
      if (!f.json)
        out.write(
          `The saved plan ${given.runbook} still holds (${saved.changes.length} changes); applying it.\n`,
        )
    }
    const runId = o.check ? undefined : await journal.startRun(`apply ${f.runbook}`)
    s.emit({
      type: 'run_start',
      runbook: f.runbook,
      mode: o.check ? 'check' : 'apply',
      time: new Date().toISOString(),
    })
    const result = await execute({
      ...runOptions(p, f, deps, connections),
      mode: o.check ? 'plan' : 'apply',
      journal: o.check ? undefined : journal,
      forceHandlers: o.forceHandlers,
      emit: s.emit,
      timings: s.timings,
      signal: abort.signal,
    })
    const changed = Object.values(result.hosts).reduce((n, h) => n + h.changed, 0)
    const failed = Object.values(result.hosts).reduce((n, h) => n + h.failed, 0)
    const unreachable = Object.values(result.hosts).reduce((n, h) => n + h.unreachable, 0)
    if (runId)
      await journal.finishRun(runId, result.ok ? 'ok' : 'failed', { changed, failed, unreachable })
    s.emit(
      p.redactor.value({
        type: 'summary',
        ok: result.ok,
        mode: o.check ? 'check' : 'apply',
        hosts: result.hosts,
        plan: result.plan,
        duration_ms: result.durationMs,
        changed,
        failed,
        unreachable,
      }),
    )
    if (!f.json)
      for (const e of result.errors) printErrors(e, err, p.sources, (t) => p.redactor.text(t))
    return result.ok ? 0 : 1
  } catch (e) {
    printErrors(e, err, p.sources, (t) => p.redactor.text(t))
    return 1
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    // a refused saved plan returns with the re-plan's connections still open
    await connections?.closeAll().catch(() => undefined)
    s.close()
    await lock.release()
  }
}

/** `runbook destroy`. */
export async function runDestroy(
  f: CommonFlags,
  o: { autoApprove: boolean; lockTimeout: number; forget?: string[] | undefined },
  deps: CliDeps,
  out: Out,
  err: Out,
): Promise<number> {
  // destroy needs only the secrets a resource's destroy uses: one it cannot read is left out
  const p = await load(f, deps, err, false, true)
  if (!p) return 1
  const lock = await lockOrReport(p, `runbook destroy ${f.runbook}`, o.lockTimeout, err)
  if (!lock) return 1
  const colors = colorsFor(out, f.color ? undefined : false)
  const s = sinks(f, out, { diff: false, quiet: false })
  try {
    const journal = await Journal.open(p.stateDir, f.runbook, p.inventoryFile, p.redactor)
    reportRemovedTemps(journal, s.emit)
    if (o.forget?.length) return await forgetRecords(journal, o.forget, out)
    if (p.missingSecrets.length > 0)
      s.emit({
        type: 'warning',
        message: `secret(s) ${p.missingSecrets.join(', ')} not available: destroy goes on without them (a resource whose destroy needs one fails and stays recorded)`,
      })
    const vars = { ...p.runbook.vars, ...p.secretVars }
    if (journal.data.resources.length === 0) {
      if (f.json)
        s.emit({
          type: 'summary',
          ok: true,
          mode: 'destroy',
          hosts: {},
          plan: countChanges([]),
          duration_ms: 0,
          changed: 0,
          failed: 0,
          unreachable: 0,
        })
      else out.write('Nothing to destroy: the journal records no resources.\n')
      return 0
    }
    if (!o.autoApprove) {
      const preview = await destroy({
        journal,
        registry: p.registry,
        inventory: p.inventory,
        env: deps.env,
        connections: connectionsFor(p, deps, err),
        redactor: p.redactor,
        emit: () => undefined,
        timings: s.timings,
        baseDir: p.baseDir,
        vars,
        extraVars: p.extraVars,
        plan: true,
      })
      for (const ch of preview.changes)
        err.write(`${formatChange(ch, colors, { diff: false }).join('\n')}\n`)
      if (!stdinIsTerminal())
        throw new RunbookError(
          'E_USAGE',
          'destroy needs confirmation: run it on a terminal or pass --auto-approve',
        )
      const answer = await new Promise<string>((resolve) => {
        const rl = createInterface({ input: process.stdin, output: err })
        rl.question(
          `Destroy these ${preview.changes.length} resources? Only 'yes' will be accepted: `,
          (a) => (rl.close(), resolve(a)),
        )
      })
      if (answer.trim() !== 'yes') {
        err.write('Destroy cancelled.\n')
        return 1
      }
    }
    const started = Date.now()
    const runId = await journal.startRun(`destroy ${f.runbook}`)
    const r = await destroy({
      journal,
      registry: p.registry,
      inventory: p.inventory,
      env: deps.env,
      connections: connectionsFor(p, deps, err),
      redactor: p.redactor,
      emit: s.emit,
      timings: s.timings,
      baseDir: p.baseDir,
      vars,
      extraVars: p.extraVars,
      plan: false,
    })
    const changed = Object.values(r.hosts).reduce((n, h) => n + h.changed, 0)
    await journal.finishRun(runId, r.ok ? 'ok' : 'failed', {
      destroyed: changed,
      failed: r.errors.length,
    })
    s.emit({
      type: 'summary',
      ok: r.ok,
      mode: 'destroy',
      hosts: r.hosts,
      plan: countChanges(r.changes),
      duration_ms: Date.now() - started,
      changed,
      failed: r.errors.length,
      unreachable: 0,
    })
    return r.ok ? 0 : 1
  } catch (e) {
    printErrors(e, err, p.sources, (t) => p.redactor.text(t))
    return 1
  } finally {
    s.close()
    await lock.release()
  }
}
