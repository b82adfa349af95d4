/**
 * Errors are values: a code, a message, where in the source it comes from, which task and host,
 * and the cause. Modules throw without a position; the executor and the validator add it.
 */

/** A place in a source file, 1-based. */
export interface SourcePos {
  file: string
  line: number
  col: number
}

/** Every error code the engine and modules use. */
export type ErrorCode =
  | 'E_YAML'
  | 'E_SCHEMA'
  | 'E_UNKNOWN_MODULE'
  | 'E_UNKNOWN_KEY'
  | 'E_PARAM'
  | 'E_TEMPLATE'
  | 'E_UNDEFINED'
  | 'E_EXPRESSION'
  | 'E_INVENTORY'
  | 'E_MODULE'
  | 'E_CONNECTION'
  | 'E_HOST_KEY'
  | 'E_COMMAND'
  | 'E_TIMEOUT'
  | 'E_LOCK'
  | 'E_JOURNAL'
  | 'E_SECRET'
  | 'E_ASSERT'
  | 'E_API'
  | 'E_USAGE'
  | 'E_PLAN_STALE'
  /** A journal record of a cloud project the run's credentials no longer reach (destroy skips it). */
  | 'E_STALE_RECORD'

/** Where an error happened in a run, as far as known. */
export interface ErrorContext {
  pos?: SourcePos | undefined
  task?: string | undefined
  host?: string | undefined
  hint?: string | undefined
  cause?: unknown
}

/**
 * The one error type of the project.
 * @example throw new RunbookError('E_PARAM', "unknown parameter 'pkgs'", { hint: "did you mean 'name'?" })
 */
export class RunbookError extends Error {
  readonly code: ErrorCode
  pos: SourcePos | undefined
  task: string | undefined
  host: string | undefined
  hint: string | undefined

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}) {
    super(message, ctx.cause === undefined ? undefined : { cause: ctx.cause })
    this.name = 'RunbookError'
    this.code = code
    this.pos = ctx.pos
    this.task = ctx.task
    this.host = ctx.host
    this.hint = ctx.hint
  }

  /** Fills in position, task and host where they are still unknown, and returns this error. */
  locate(ctx: ErrorContext): this {
    this.pos ??= ctx.pos
    this.task ??= ctx.task
    this.host ??= ctx.host
    return this
  }
}

/** Wraps anything thrown into a RunbookError, keeping a RunbookError as it is. */
export function toRunbookError(
  err: unknown,
  code: ErrorCode = 'E_MODULE',
  ctx: ErrorContext = {},
): RunbookError {
  if (err instanceof RunbookError) return err.locate(ctx)
  const message = err instanceof Error ? err.message : String(err)
  return new RunbookError(code, message, { ...ctx, cause: err })
}

/** An error made of many, so that validation can report every problem at once. */
export class RunbookErrors extends Error {
  readonly errors: RunbookError[]
  /** Source texts, so that the errors can be printed with their lines. */
  sources?: SourceLookup | undefined
  constructor(errors: RunbookError[], sources?: SourceLookup) {
    super(`${errors.length} problem${errors.length === 1 ? '' : 's'} found`)
    this.name = 'RunbookErrors'
    this.errors = errors
    this.sources = sources
  }
}

/** Source texts by file name, so that an error can print its line and a caret. */
export type SourceLookup = (file: string) => string | undefined

/**
 * Formats an error the way a compiler does:
 * `runbooks/vip.yaml:14:7: task "Install keepalived": apt: unknown parameter 'pkgs' (did you mean 'name'?)`
 * followed by the source line and a caret under the column.
 */
export function formatError(err: RunbookError, sources?: SourceLookup): string {
  const where = err.pos ? `${err.pos.file}:${err.pos.line}:${err.pos.col}: ` : ''
  const task = err.task ? `task "${err.task}": ` : ''
  const host = err.host ? `[${err.host}] ` : ''
  const hint = err.hint ? ` (${err.hint})` : ''
  let out = escapeControl(`${where}${host}${task}${err.message}${hint}`)
  const text = err.pos ? sources?.(err.pos.file) : undefined
  if (err.pos && text !== undefined) {
    const line = text.split(/\r?\n/)[err.pos.line - 1]
    if (line !== undefined) {
      const gutter = `${err.pos.line} | `
      // the caret goes under the same character once control characters are spelt out
      const before = escapeControl(line.slice(0, Math.max(0, err.pos.col - 1))).length
      out += `\n  ${gutter}${escapeControl(line)}\n  ${' '.repeat(gutter.length + before)}^`
    }
  }
  return out
}

/**
 * Control characters (terminal escapes included) spelt out as `\x1b`, so that a hostile or broken
 * file cannot drive the terminal through an error message. Newlines and tabs stay.
 * @example escapeControl('a\u001b[31m') // 'a\\x1b[31m'
 */
export function escapeControl(s: string): string {
  return s.replace(
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  )
}
