/**
 * Every runbook in runbooks/ and every YAML example in the docs passes `runbook validate`. A doc
 * example that is a list of tasks is checked inside a play on localhost; since it leans on
 * variables of the runbook around it, only its undefined variables and host patterns are let
 * through, everything else (YAML, keywords, parameters, values) must be clean.
 */
import {
  cpSync,
  mkdtempSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { RunbookErrors, formatError } from '../../../engine/errors.ts'
import { prepare } from '../../../engine/prepare.ts'
import { registry } from '../../../modules/index.ts'

const ROOT = path.resolve('.')

/** A scratch project laid out like the repository: runbooks/ (with its templates), inventories/. */
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-examples-'))
  mkdirSync(path.join(dir, 'runbooks'))
  // a copy, not a symlink: a source that resolves outside the runbook's tree is refused
  cpSync(path.join(ROOT, 'runbooks/templates'), path.join(dir, 'runbooks/templates'), {
    recursive: true,
  })
  symlinkSync(path.join(ROOT, 'inventories'), path.join(dir, 'inventories'))
  return dir
}

async function problems(file: string, inventoryFile?: string): Promise<string[]> {
  try {
    await prepare({
      inventoryFile,
      runbookFile: file,
      registry,
      skipSecrets: true,
      stateRoot: path.join(path.dirname(file), '.runbook'),
    })
    return []
  } catch (e) {
    if (!(e instanceof RunbookErrors)) throw e
    return e.errors.map((x) => formatError(x, e.sources))
  }
}

/** A block indented inside a list item, moved to the left margin. */
function dedent(text: string): string {
  const margin = Math.min(
    ...text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => /^ */.exec(l)?.[0].length ?? 0),
  )
  return text.replace(new RegExp(`^ {${margin}}`, 'gm'), '')
}

const runbooks = readdirSync('runbooks')
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => path.join('runbooks', f))

const examples: [string, string][] = [
  ...readdirSync('docs').map((f) => path.join('docs', f)),
  'README.md',
]
  .filter((f) => f.endsWith('.md'))
  .flatMap((f) =>
    [...readFileSync(f, 'utf8').matchAll(/```ya?ml\n([\s\S]*?)```/g)].map(
      (m, i): [string, string] => [`${f} #${i + 1}`, dedent(m[1] ?? '')],
    ),
  )

describe('shipped runbooks validate', () => {
  it.each(runbooks)('%s', async (file) => {
    expect(await problems(path.resolve(file))).toEqual([])
  })
})

/** What a doc example is, so that it can be checked as what it is. */
function kindOf(value: unknown): 'runbook' | 'vars' | 'inventory' | 'tasks' | 'other' {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
  const taskKeys = ['name', 'block', 'import_tasks', 'include_tasks', 'import_role']
  if (isObj(value)) {
    if ('plays' in value) return 'runbook'
    if ('vars' in value) return 'vars'
    if (Object.values(value).some((g) => isObj(g) && ('hosts' in g || 'children' in g)))
      return 'inventory'
    return Object.keys(value).some((k) => registry.has(k)) ? 'tasks' : 'other'
  }
  if (Array.isArray(value) && value.every(isObj)) {
    if (value.some((p) => 'hosts' in p)) return 'runbook'
    if (value.every((t) => Object.keys(t).some((k) => registry.has(k) || taskKeys.includes(k))))
      return 'tasks'
  }
  return 'other'
}

/**
 * What a doc example may lean on that belongs to the reader's project: variables, hosts and
 * handlers of the runbook around it, and the files, imports and roles it names.
 */
const CONTEXT =
  /undefined variable|matches no host|no handler named|cannot read|not found \(looked in|no host '/

const PLAY = 'plays:\n  - hosts: localhost\n    tasks:\n      - debug: { msg: ok }\n'

describe('doc examples validate', () => {
  it.each(examples)('%s', async (_name, text) => {
    const value: unknown = parse(text)
    const kind = kindOf(value)
    if (kind === 'other') return // not a runbook, inventory or task list (a lab spec, say)
    const dir = scratch()
    const file = path.join(dir, 'runbooks', 'example.yaml')
    let inventory: string | undefined
    if (kind === 'runbook') writeFileSync(file, text)
    else if (kind === 'vars') writeFileSync(file, `${text}${PLAY}`)
    else if (kind === 'inventory') {
      writeFileSync(path.join(dir, 'example-inventory.yaml'), text)
      inventory = path.join(dir, 'example-inventory.yaml')
      writeFileSync(file, PLAY)
    } else {
      const tasks = Array.isArray(value) ? text : `- ${text.replace(/\n(?=.)/g, '\n  ')}`
      writeFileSync(
        file,
        `plays:\n  - hosts: localhost\n    tasks:\n${tasks.replace(/^(?=.)/gm, '      ')}`,
      )
    }
    const found = await problems(file, inventory)
    expect(found.filter((p) => !CONTEXT.test(p.split('\n')[0] ?? ''))).toEqual([])
  })
})
