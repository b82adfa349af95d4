/** Errors printed the way a compiler prints them, shared by every command. */
import { RunbookError, RunbookErrors, formatError } from '../errors.ts'
import { colorsFor } from '../report/format.ts'
import type { SourceSet } from '../runbook/source.ts'

/** Prints errors the way a compiler does, with source lines and carets. */
export function printErrors(
  e: unknown,
  err: NodeJS.WriteStream,
  sources?: SourceSet,
  redact: (s: string) => string = (s) => s,
): void {
  const c = colorsFor(err)
  const text = sources?.text ?? (e instanceof RunbookErrors ? e.sources : undefined)
  const list =
    e instanceof RunbookErrors
      ? e.errors
      : e instanceof RunbookError
        ? [e]
        : [new RunbookError('E_MODULE', e instanceof Error ? e.message : String(e))]
  for (const x of list) err.write(`${c.red('error')}: ${redact(formatError(x, text))}\n`)
  if (list.length > 1) err.write(`${c.red(`${list.length} problems`)}; nothing was changed.\n`)
  else if (e instanceof RunbookErrors) err.write('nothing was changed.\n')
}
