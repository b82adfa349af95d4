/**
 * Runs runbook YAML text through the real pipeline (prepare -> execute) for engine tests.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { localOnlyFactory } from '../../engine/connection/factory.ts'
import { execute } from '../../engine/execute/executor.ts'
import type { RunResult } from '../../engine/execute/types.ts'
import { Journal } from '../../engine/journal/journal.ts'
import type { ModuleRegistry } from '../../engine/module.ts'
import { prepare } from '../../engine/prepare.ts'
import type { RunEvent } from '../../engine/report/events.ts'

/** Options of a test run. */
export interface RunYamlOptions {
  registry: ModuleRegistry
  mode?: 'plan' | 'apply'
  inventory?: string
  vars?: string[]
  env?: NodeJS.ProcessEnv
  dir?: string
  tags?: string[]
  limit?: string
  forceHandlers?: boolean
}

/** Writes the YAML to a temp dir, prepares and executes it; returns the result and events. */
export async function runYaml(
  yaml: string,
  o: RunYamlOptions,
): Promise<{ result: RunResult; events: RunEvent[]; dir: string; file: string }> {
  const dir = o.dir ?? mkdtempSync(path.join(tmpdir(), 'rb-run-'))
  const file = path.join(dir, 'runbook.yaml')
  writeFileSync(file, yaml)
  let inventoryFile: string | undefined
  if (o.inventory) {
    inventoryFile = path.join(dir, 'inventory.yaml')
    writeFileSync(inventoryFile, o.inventory)
  }
  const p = await prepare({
    runbookFile: file,
    inventoryFile,
    registry: o.registry,
    vars: o.vars,
    env: o.env ?? {},
    stateRoot: path.join(dir, '.runbook'),
  })
  const journal = await Journal.open(p.stateDir, file, inventoryFile, p.redactor)
  const events: RunEvent[] = []
  const result = await execute({
    runbook: p.runbook,
    inventory: p.inventory,
    registry: o.registry,
    mode: o.mode ?? 'apply',
    extraVars: p.extraVars,
    secretVars: p.secretVars,
    redactor: p.redactor,
    journal,
    connections: localOnlyFactory(),
    forks: 5,
    emit: (e) => events.push(e),
    sources: p.sources,
    baseDir: p.baseDir,
    tags: o.tags,
    limit: o.limit,
    forceHandlers: o.forceHandlers,
    env: o.env ?? {},
  })
  return { result, events, dir, file }
}
