/**
 * Splitting a command line into words the way a POSIX shell would, without running a shell:
 * quotes and backslashes are honoured; variables, globs and operators are not expanded.
 */
import { RunbookError } from '../../../engine/errors.ts'

/**
 * Splits a command line into argv.
 * @example splitArgs(`keepalived -t -f '/etc/my conf'`) // ['keepalived', '-t', '-f', '/etc/my conf']
 */
export function splitArgs(line: string): string[] {
  const out: string[] = []
  let word = ''
  let inWord = false
  let quote: "'" | '"' | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string
    if (quote === "'") {
      if (c === "'") quote = undefined
      else word += c
      continue
    }
    if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && i + 1 < line.length && '$`"\\\n'.includes(line[i + 1] as string))
        word += line[++i]
      else word += c
      continue
    }
    if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\') {
      if (i + 1 < line.length) word += line[++i]
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) out.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (quote)
    throw new RunbookError(
      'E_PARAM',
      `unterminated ${quote === "'" ? 'single' : 'double'} quote in: ${line}`,
    )
  if (inWord) out.push(word)
  return out
}
