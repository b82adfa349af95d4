/**
 * The malformed-input corpus (test/fixtures/validate/*.case): every case goes through
 * `runbook validate` as a user would run it and must exit non-zero, point at the right
 * file:line:col first, say what is wrong in plain words, print no stack trace or library
 * internals, write nothing, and take under 2 s.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../../../engine/cli/main.ts'
import { localOnlyFactory } from '../../../engine/connection/factory.ts'
import { registry } from '../../../modules/index.ts'
import { parseCase, type CorpusCase } from '../../helpers/corpus.ts'

const DIR = path.resolve('test/fixtures/validate')

const cases: [string, CorpusCase][] = readdirSync(DIR)
  .filter((f) => f.endsWith('.case'))
  .sort()
  .map((f) => [f.replace(/\.case$/, ''), parseCase(readFileSync(path.join(DIR, f), 'utf8'))])

/** Every file under a directory, relative, with its size (to see that nothing was written). */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort()
}

function sink(): NodeJS.WriteStream & { text: string } {
  const s = {
    text: '',
    isTTY: false,
    write(chunk: string | Uint8Array): boolean {
      s.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
      return true
    },
  }
  return s as unknown as NodeJS.WriteStream & { text: string }
}

describe('malformed-input corpus', () => {
  it('has at least 100 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(100)
  })

  it.each(cases)('%s', async (_name, c) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-corpus-'))
    for (const [rel, text] of Object.entries(c.files)) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
      writeFileSync(path.join(dir, rel), text, c.modes[rel] ? { mode: c.modes[rel] } : {})
    }
    const before = listing(dir)
    const out = sink()
    const err = sink()
    const args = c.args.map((a) => a.replaceAll('DIR', dir))
    const t0 = performance.now()
    const code = await main(
      [
        'validate',
        path.join(dir, 'runbook.yaml'),
        '--no-color',
        '--state-dir',
        path.join(dir, '.runbook'),
        ...args,
      ],
      { registry: async () => registry, connections: () => localOnlyFactory(), out, err },
    )
    const ms = performance.now() - t0
    const text = err.text + out.text
    expect(code, text).not.toBe(0)
    expect(ms).toBeLessThan(2000)
    const first = /^error: (.*?):(\d+):(\d+): /m.exec(err.text)
    expect(first, text).not.toBeNull()
    const [file, line, col] = c.expect.split(':')
    expect(
      `${path.relative(dir, first?.[1] ?? '')}:${first?.[2]}${col ? `:${first?.[3]}` : ''}`,
      text,
    ).toBe(`${file}:${line}${col ? `:${col}` : ''}`)
    for (const w of c.words) expect(text.toLowerCase(), text).toContain(w.toLowerCase())
    for (const w of c.absent) expect(text, text).not.toContain(w)
    expect(text).not.toMatch(
      /\n\s+at .+\(.*:\d+:\d+\)|node_modules|ZodError|YAMLParseError|TypeError|RangeError|Invalid input/,
    )
    // no raw control character reaches the terminal (they are printed escaped)
    expect(text.includes(String.fromCharCode(27)), text).toBe(false)
    expect(listing(dir)).toEqual(before)
  })
})
