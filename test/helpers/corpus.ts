/**
 * The format of a corpus case (test/fixtures/validate/*.case): header lines, then files.
 *
 * ```
 * # What the case is about (free text).
 * expect: runbook.yaml:7:15          (file:line[:col] of the first error)
 * words: undefined variable | did you mean 'priority'
 * args: -e nodes=3                   (extra arguments of `runbook validate`; DIR is the case's dir)
 * absent: s3cret                     (text that must not be printed)
 * mode: secret.txt 0600              (file mode of a case file)
 * === runbook.yaml
 * ...
 * === templates/x.hbs
 * ...
 * ```
 */

/** One parsed corpus case. */
export interface CorpusCase {
  expect: string
  words: string[]
  args: string[]
  absent: string[]
  modes: Record<string, number>
  files: Record<string, string>
}

/** Parses the text of a `.case` file. */
export function parseCase(text: string): CorpusCase {
  const c: CorpusCase = { expect: '', words: [], args: [], absent: [], modes: {}, files: {} }
  const parts = text.split(/^=== (.+)\n/m)
  for (const line of (parts[0] ?? '').split('\n')) {
    const m = /^(\w+):\s*(.*)$/.exec(line)
    if (!m) continue
    const [, key, value = ''] = m
    if (key === 'expect') c.expect = value.trim()
    else if (key === 'words') c.words.push(...value.split('|').map((w) => w.trim()))
    else if (key === 'args') c.args.push(...value.trim().split(/\s+/))
    else if (key === 'absent') c.absent.push(value.trim())
    else if (key === 'mode') {
      const [f = '', mode = '644'] = value.trim().split(/\s+/)
      c.modes[f] = Number.parseInt(mode, 8)
    }
  }
  for (let i = 1; i < parts.length; i += 2) c.files[parts[i] ?? ''] = parts[i + 1] ?? ''
  return c
}
