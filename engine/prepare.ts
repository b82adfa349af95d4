/**
 * parse -> load -> validate: reads the runbook, the inventory and the extra variables, checks all
 * of it, resolves secrets, and either returns everything a run needs or throws every problem at
 * once (RunbookErrors). Nothing is touched before this has succeeded.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { parse as parseYamlValue } from 'yaml'
import { RunbookError, RunbookErrors } from './errors.ts'
import { checkConnections } from './inventory/check.ts'
import { Inventory } from './inventory/inventory.ts'
import { stateDirFor } from './journal/journal.ts'
import { ExpandableRegistry, type ModuleRegistry } from './module.ts'
import { loadRunbook, type ModuleCatalog, type ReadSource } from './runbook/load.ts'
import { loadYaml, locate, parseYaml, SourceSet, type Source } from './runbook/source.ts'
import type { Runbook } from './runbook/types.ts'
import { outsideTree } from './runbook/search-path.ts'
import { validateRunbook } from './runbook/validate.ts'
import {
  checkSecretDecl,
  isSecretDecl,
  looksLikeSecret,
  misplacedSecret,
  Redactor,
  resolveSecret,
  secretDeclSchema,
  type SecretSources,
} from './vars/secrets.ts'
import { rememberSecrets, secretHistory } from './vars/secrets-redaction.ts'

/** Inputs of a run, as the CLI collects them. */
export interface PrepareOptions {
  runbookFile: string
  inventoryFile?: string | undefined
  registry: ModuleRegistry
  /** `--var k=v` strings. */
  vars?: string[] | undefined
  /** `--var-file` paths. */
  varFiles?: string[] | undefined
  env?: NodeJS.ProcessEnv
  prompt?: SecretSources['prompt']
  /** Where `.runbook/` lives (default: the current directory). */
  stateRoot?: string | undefined
  /** Directories outside the runbook's tree that sources may come from (`--allow-source`). */
  allowSources?: string[] | undefined
  /** Skip resolving secrets (validate only). */
  skipSecrets?: boolean
  /** A secret that cannot be resolved is listed in `missingSecrets`, not an error (destroy). */
  secretsOptional?: boolean
}

/** Everything a run needs, validated. */
export interface Prepared {
  runbook: Runbook
  inventory: Inventory
  inventoryFile: string | undefined
  sources: SourceSet
  extraVars: Record<string, unknown>
  secretVars: Record<string, string>
  redactor: Redactor
  stateDir: string
  baseDir: string
  /** Secrets that could not be resolved (only with `secretsOptional`). */
  missingSecrets: string[]
}

/**
 * Loads the runbook; with a registry that loads module families on demand, the families it names
 * are loaded and the runbook loaded again. A load that asked for a name of a family not loaded
 * (`openstack.port`), or listed every name (a did-you-mean), is done again once they are: the
 * result is the one a registry of every module gives.
 */
async function loadNamingModules(
  source: Source,
  registry: ModuleRegistry,
  read: ReadSource,
): Promise<ReturnType<typeof loadRunbook>> {
  const expandable = registry instanceof ExpandableRegistry ? registry : undefined
  for (;;) {
    const asked = new Set<string>()
    let listed = false
    // a name of a family not loaded yet counts as a module in this pass (no error, no
    // did-you-mean to make); the pass is done again once its family is loaded
    const unloaded = (n: string): boolean => {
      const u = expandable?.unloaded(n) === true
      if (u) asked.add(n)
      return u
    }
    const catalog: ModuleCatalog = {
      has: (n) => unloaded(n) || registry.has(n),
      names: () => ((listed = true), registry.keys()),
      freeForm: (n) => (unloaded(n) ? undefined : registry.get(n)?.freeForm),
    }
    const loaded = loadRunbook(source, catalog, read)
    if (expandable === undefined || (asked.size === 0 && (!listed || expandable.complete)))
      return loaded
    await expandable.load(asked.size ? asked : undefined)
  }
}

function parseVarArg(arg: string): [string, unknown] {
  const eq = arg.indexOf('=')
  if (eq <= 0) throw new RunbookError('E_USAGE', `--var expects key=value, got '${arg}'`)
  const key = arg.slice(0, eq)
  const raw = arg.slice(eq + 1)
  // Structured values on request; plain text stays text, as in Ansible's key=value.
  if (/^[[{]/.test(raw.trim())) {
    try {
      return [key, parseYamlValue(raw) as unknown]
    } catch {
      return [key, raw]
    }
  }
  return [key, raw]
}

/**
 * Loads and validates a runbook with its inventory.
 * @example const prepared = await prepare({ runbookFile: 'runbooks/vip-keepalived.yaml', registry })
 */
export async function prepare(o: PrepareOptions): Promise<Prepared> {
  const sources = new SourceSet()
  const errors: RunbookError[] = []
  const rbParsed = await loadYaml(o.runbookFile)
  sources.add(rbParsed.source)
  errors.push(...rbParsed.errors)
  const baseDir = path.dirname(path.resolve(o.runbookFile))
  // import_tasks / import_playbook files: read at load time, kept for error excerpts
  const top = rbParsed.source.value
  const allowed =
    top !== null &&
    typeof top === 'object' &&
    !Array.isArray(top) &&
    Array.isArray((top as { allow_sources?: unknown }).allow_sources)
      ? [
          ...(top as { allow_sources: unknown[] }).allow_sources.map(String),
          ...(o.allowSources ?? []),
        ]
      : [...(o.allowSources ?? [])]
  const readImport = (file: string) => {
    if (outsideTree(file, baseDir, allowed))
      return new Error(
        `it is outside the runbook's directory ${baseDir} (list its directory under \`allow_sources:\` if it is meant)`,
      )
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      return new Error(
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message,
      )
    }
    const parsed = parseYaml(file, text)
    sources.add(parsed.source)
    return parsed
  }
  // an imported file is read and parsed once, however many times the runbook is loaded
  const imported = new Map<string, ReturnType<ReadSource>>()
  const readOnce: ReadSource = (file) => {
    let r = imported.get(file)
    if (r === undefined) imported.set(file, (r = readImport(file)))
    return r
  }
  const loaded = rbParsed.errors.length
    ? undefined
    : await loadNamingModules(rbParsed.source, o.registry, readOnce)
  if (loaded) errors.push(...loaded.errors)

  const inventoryFile =
    o.inventoryFile ??
    (loaded?.runbook.inventory ? path.resolve(baseDir, loaded.runbook.inventory) : undefined)
  let inventory = Inventory.empty()
  if (inventoryFile) {
    const invParsed = await loadYaml(inventoryFile)
    sources.add(invParsed.source)
    errors.push(...invParsed.errors)
    if (!invParsed.errors.length) {
      const r = Inventory.load(invParsed.source)
      inventory = r.inventory
      errors.push(...r.errors)
      if (!r.errors.length) errors.push(...checkConnections(invParsed.source, inventory))
    }
  }

  const extraVars: Record<string, unknown> = {}
  for (const f of o.varFiles ?? []) {
    const p = await loadYaml(f)
    sources.add(p.source)
    errors.push(...p.errors)
    if (!p.errors.length) {
      if (
        p.source.value !== null &&
        typeof p.source.value === 'object' &&
        !Array.isArray(p.source.value)
      )
        for (const [k, v] of Object.entries(p.source.value)) {
          if (looksLikeSecret(v)) errors.push(misplacedSecret(k, locate(p.source, [k])))
          else extraVars[k] = v
        }
      else
        errors.push(
          new RunbookError('E_SCHEMA', 'a var file is a mapping of variables', {
            pos: { file: f, line: 1, col: 1 },
          }),
        )
    }
  }
  for (const v of o.vars ?? []) {
    try {
      const [k, val] = parseVarArg(v)
      extraVars[k] = val
    } catch (e) {
      errors.push(e as RunbookError)
    }
  }

  const runbook = loaded?.runbook
  if (runbook) runbook.allowSources = allowed
  const secretNames: string[] = []
  // declarations by name: the runbook's own and those of runbooks it imports (load.ts)
  const secretDecls: Record<string, unknown> = {}
  const plainVars: Record<string, unknown> = {}
  if (runbook) {
    for (const [k, v] of Object.entries(runbook.vars)) {
      if (looksLikeSecret(v)) {
        for (const issue of checkSecretDecl(v as Record<string, unknown>))
          errors.push(
            new RunbookError('E_SECRET', `secret '${k}': ${issue.message}`, {
              pos: locate(rbParsed.source, ['vars', k, ...issue.path], {
                key: issue.message.startsWith('unknown key'),
              }),
              hint: issue.hint,
            }),
          )
        if (isSecretDecl(v)) {
          const file = (v as { from_file?: unknown }).from_file
          if (typeof file === 'string' && !existsSync(path.resolve(baseDir, file)))
            errors.push(
              new RunbookError('E_SECRET', `secret '${k}': from_file ${file}: no such file`, {
                pos: locate(rbParsed.source, ['vars', k, 'from_file']),
              }),
            )
        }
        secretNames.push(k)
        secretDecls[k] = v
      } else plainVars[k] = v
    }
    runbook.vars = plainVars
    errors.push(
      ...validateRunbook({
        runbook,
        inventory,
        registry: o.registry,
        sources,
        known: {
          runbook: Object.keys(plainVars),
          extra: Object.keys(extraVars),
          secrets: secretNames,
          values: { ...plainVars, ...extraVars },
        },
        baseDir,
      }),
    )
  }
  const stateDir = stateDirFor(
    o.stateRoot ?? path.resolve('.runbook'),
    o.runbookFile,
    inventoryFile,
  )
  const redactor = new Redactor()
  const secretVars: Record<string, string> = {}
  const missingSecrets: string[] = []
  if (runbook && !o.skipSecrets && errors.length === 0) {
    for (const name of secretNames) {
      // -e / --var-file may set a secret: that value is the secret, redacted like any other
      if (name in extraVars) {
        const value =
          typeof extraVars[name] === 'string' ? extraVars[name] : JSON.stringify(extraVars[name])
        delete extraVars[name]
        secretVars[name] = value
        redactor.add(value)
        continue
      }
      try {
        const value = await resolveSecret(name, secretDeclSchema.parse(secretDecls[name]), {
          env: o.env ?? process.env,
          prompt: o.prompt,
          stateDir,
          baseDir,
        })
        secretVars[name] = value
        redactor.add(value)
      } catch (e) {
        const err = e as RunbookError
        if (o.secretsOptional === true && err.code === 'E_SECRET') {
          missingSecrets.push(name)
          continue
        }
        const src = sources.get(runbook.file)
        if (src) err.pos = locate(src, ['vars', name])
        errors.push(err)
      }
    }
  }
  if (errors.length || !runbook) throw new RunbookErrors(inOrder(unique(errors)), sources.text)
  if (secretNames.length > 0) {
    // earlier values stay redacted: a rotated secret is still in files on hosts and in diffs
    for (const v of await secretHistory(stateDir)) redactor.add(v)
    await rememberSecrets(stateDir, secretVars)
  }
  return {
    runbook,
    inventory,
    inventoryFile,
    sources,
    extraVars,
    secretVars,
    redactor,
    stateDir,
    baseDir,
    missingSecrets,
  }
}

/** Each problem once: a file imported or a role used twice is checked twice. */
function unique(errors: RunbookError[]): RunbookError[] {
  const seen = new Set<string>()
  return errors.filter((e) => {
    const key = `${e.code}\u0000${e.message}\u0000${e.pos ? `${e.pos.file}:${e.pos.line}:${e.pos.col}` : ''}\u0000${e.task ?? ''}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/** Errors in file/line order: files in the order they were first reported, then line and column. */
function inOrder(errors: RunbookError[]): RunbookError[] {
  const files: string[] = []
  for (const e of errors) if (e.pos && !files.includes(e.pos.file)) files.push(e.pos.file)
  const rank = (e: RunbookError): [number, number, number] =>
    e.pos ? [files.indexOf(e.pos.file), e.pos.line, e.pos.col] : [files.length, 0, 0]
  return errors
    .map((e, i) => ({ e, i, r: rank(e) }))
    .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1] || a.r[2] - b.r[2] || a.i - b.i)
    .map((x) => x.e)
}
