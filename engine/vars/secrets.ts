/**
 * Secrets: declared in `vars` as `{ secret: true, from_env | from_file | prompt | generate }`,
 * resolved before the run, and redacted as `***` from every text that leaves the engine (plans,
 * diffs, logs, errors, --json, the journal). Redaction is by value, so a secret is hidden however
 * it travels: inside a rendered file, a command line or an API error.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { RunbookError } from '../errors.ts'
import { editDistance } from '../suggest.ts'

/** The mask printed instead of a secret. */
export const MASK = '***'

/** How a secret variable is declared in a runbook. */
export const secretDeclSchema = z.strictObject({
  secret: z.literal(true),
  from_env: z.string().optional().describe('Environment variable holding the value'),
  from_file: z.string().optional().describe('File holding the value (trailing newline removed)'),
  prompt: z.string().optional().describe('Ask on the terminal with this prompt'),
  generate: z
    .number()
    .int()
    .min(8)
    .max(256)
    .optional()
    .describe('Generate a random value of this length once and keep it in the journal directory'),
})

/** A secret declaration. */
export type SecretDecl = z.infer<typeof secretDeclSchema>

/** Whether a vars value declares a secret. */
export function isSecretDecl(v: unknown): v is SecretDecl {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    (v as Record<string, unknown>).secret === true
  )
}

/**
 * Replaces every known secret value in text with `***`.
 * @example const r = new Redactor(); r.add('s3cret'); r.text('pass s3cret') // 'pass ***'
 */
export class Redactor {
  private values: string[] = []

  /** Adds a value to hide. Empty values are ignored (they would hide nothing and everything). */
  add(value: string): void {
    if (value === '' || this.values.includes(value)) return
    this.values.push(value)
    // Longest first, so a secret that contains another is hidden whole.
    this.values.sort((a, b) => b.length - a.length)
  }

  /** Whether any secret is known. */
  get size(): number {
    return this.values.length
  }

  /** Whether text holds any known secret. */
  contains(s: string): boolean {
    return this.values.some((v) => s.includes(v))
  }

  /** The text split around every secret: the parts between them (one more than secrets found). */
  split(s: string): string[] {
    let parts = [s]
    for (const v of this.values) parts = parts.flatMap((p) => p.split(v))
    return parts
  }

  /** Text with every secret replaced. */
  text(s: string): string {
    let out = s
    for (const v of this.values) if (out.includes(v)) out = out.split(v).join(MASK)
    return out
  }

  /** A deep copy of a value with every secret replaced in its strings. */
  value<T>(v: T): T {
    if (this.values.length === 0) return v
    if (typeof v === 'string') return this.text(v) as T
    if (Array.isArray(v)) return v.map((x) => this.value(x)) as T
    if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.value(x)])) as T
    }
    return v
  }
}

/** Where secrets come from while resolving, so tests and the CLI can supply prompts and files. */
export interface SecretSources {
  env: NodeJS.ProcessEnv
  /** Asks the user; absent when there is no terminal. */
  prompt?: (question: string) => Promise<string>
  /** Directory where generated secrets are kept (mode 0600). */
  stateDir: string
  baseDir: string
}

/** Resolves one declared secret to its value. */
export async function resolveSecret(
  name: string,
  decl: SecretDecl,
  src: SecretSources,
): Promise<string> {
  const ways = [decl.from_env, decl.from_file, decl.prompt, decl.generate].filter(
    (x) => x !== undefined,
  ).length
  if (ways !== 1)
    throw new RunbookError(
      'E_SECRET',
      `secret '${name}' needs exactly one of from_env, from_file, prompt, generate`,
    )
  if (decl.from_env !== undefined) {
    const v = src.env[decl.from_env]
    if (v === undefined || v === '')
      throw new RunbookError(
        'E_SECRET',
        `secret '${name}': environment variable ${decl.from_env} is not set`,
      )
    return v
  }
  if (decl.from_file !== undefined) {
    const file = path.resolve(src.baseDir, decl.from_file)
    try {
      return (await fs.readFile(file, 'utf8')).replace(/\r?\n$/, '')
    } catch (e) {
      throw new RunbookError(
        'E_SECRET',
        `secret '${name}': cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      )
    }
  }
  if (decl.prompt !== undefined) {
    if (!src.prompt)
      throw new RunbookError(
        'E_SECRET',
        `secret '${name}' must be typed at a prompt, but there is no terminal`,
        { hint: 'use from_env or from_file in non-interactive runs' },
      )
    return src.prompt(decl.prompt)
  }
  const file = path.join(src.stateDir, 'secrets', `${name}`)
  try {
    return (await fs.readFile(file, 'utf8')).trim()
  } catch {
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789'
    const bytes = randomBytes(decl.generate ?? 16)
    const value = Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('')
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    await fs.writeFile(file, `${value}\n`, { mode: 0o600 })
    return value
  }
}

const SOURCES = ['from_env', 'from_file', 'prompt', 'generate'] as const
const DECL_KEYS = ['secret', ...SOURCES]

/**
 * Whether a vars value is meant as a secret declaration, well-formed or not: a mapping with a
 * `secret` key, or made only of declaration keys with a source. Such a value is never treated as
 * plain data (it would be rendered into files unredacted).
 */
export function looksLikeSecret(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const keys = Object.keys(v)
  if (keys.includes('secret')) return true
  return (
    keys.length > 0 && keys.every((k) => DECL_KEYS.includes(k)) && keys.some((k) => k !== 'prompt')
  )
}

/** One problem in a secret declaration, with the path inside it. */
export interface DeclIssue {
  path: (string | number)[]
  message: string
  hint?: string | undefined
}

/**
 * Problems in a secret declaration: `secret:` not exactly `true` (YAML 1.2 reads `yes` as text),
 * an unknown key, a wrong type, no source or more than one.
 * @example checkSecretDecl({ secret: 'yes', from_env: 'X' }) // [{ path: ['secret'], message: ... }]
 */
export function checkSecretDecl(v: Record<string, unknown>): DeclIssue[] {
  const out: DeclIssue[] = []
  if (v.secret !== true)
    out.push({
      path: 'secret' in v ? ['secret'] : [],
      message: `'secret' must be true, got ${JSON.stringify(v.secret ?? null)}`,
      hint: 'write `secret: true`: YAML reads yes/on as text, and a secret is never plain data',
    })
  for (const k of Object.keys(v))
    if (!DECL_KEYS.includes(k)) {
      const near = DECL_KEYS.map((d) => [d, editDistance(k, d)] as const).sort(
        (a, b) => a[1] - b[1],
      )[0]
      out.push({
        path: [k],
        message: `unknown key '${k}' in a secret declaration`,
        hint:
          near && near[1] <= 2
            ? `did you mean '${near[0]}'?`
            : 'use one of from_env, from_file, prompt, generate',
      })
    }
  const shape = secretDeclSchema.shape
  for (const k of SOURCES) {
    if (v[k] === undefined) continue
    const r = shape[k].safeParse(v[k])
    if (!r.success)
      out.push({
        path: [k],
        message: `'${k}' ${k === 'generate' ? 'is a length from 8 to 256' : 'is text'}, got ${JSON.stringify(v[k])}`,
      })
  }
  const given = SOURCES.filter((k) => v[k] !== undefined)
  if (given.length === 0)
    out.push({
      path: [],
      message: 'a secret needs one source: from_env, from_file, prompt or generate',
    })
  else if (given.length > 1)
    out.push({
      path: [given[1] as string],
      message: `a secret has one source, not ${given.join(' and ')}`,
    })
  return out
}

/**
 * A secret declared where secrets are not read (play, task or var-file vars, inventory): an error,
 * never a mapping that would be rendered into a file as plain data.
 */
export function misplacedSecret(name: string, pos: RunbookError['pos']): RunbookError {
  return new RunbookError(
    'E_SECRET',
    `secret '${name}' is declared here, but secrets are declared only in the runbook's top-level vars`,
    { pos, hint: 'move the declaration to `vars:` at the top of the runbook' },
  )
}
