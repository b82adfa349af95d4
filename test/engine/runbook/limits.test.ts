/**
 * Hostile sizes: a 5 MB runbook is refused by the documented 1 MB limit at once, a file nested
 * 100 000 levels deep is refused without a stack overflow, and a runbook just under the limit
 * still validates.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunbookErrors } from '../../../engine/errors.ts'
import { prepare } from '../../../engine/prepare.ts'
import { MAX_BYTES } from '../../../engine/runbook/yaml-errors.ts'
import { registry } from '../../../modules/index.ts'

const PLAY = 'plays:\n  - hosts: localhost\n    tasks:\n      - debug: { msg: "{{v1.name}}" }\n'

function vars(bytes: number): string {
  const out = ['vars:']
  let size = 6
  for (let i = 0; size < bytes; i++) {
    const line = `  v${i}: { name: node-${i}, address: 192.0.2.${(i % 250) + 1}, note: "padding ${i}" }`
    out.push(line)
    size += line.length + 1
  }
  return `${out.join('\n')}\n`
}

async function validate(text: string): Promise<{ ms: number; messages: string[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-limits-'))
  const file = path.join(dir, 'runbook.yaml')
  writeFileSync(file, text)
  const t0 = performance.now()
  try {
    await prepare({ runbookFile: file, registry, skipSecrets: true, stateRoot: dir })
    return { ms: performance.now() - t0, messages: [] }
  } catch (e) {
    if (!(e instanceof RunbookErrors)) throw e
    return { ms: performance.now() - t0, messages: e.errors.map((x) => x.message) }
  }
}

describe('size and depth limits', () => {
  it('refuses a 5 MB runbook in well under 2 s, naming the limit', async () => {
    const r = await validate(vars(5 * 1024 * 1024) + PLAY)
    expect(r.messages).toEqual([
      'the file is larger than 1 MB, the limit for a runbook, inventory or var file',
    ])
    expect(r.ms).toBeLessThan(2000)
  })

  it('refuses 100 000 levels of nesting without overflowing the stack', async () => {
    const r = await validate(`vars:\n  deep: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n${PLAY}`)
    expect(r.messages).toEqual(['values nest deeper than 64 levels here'])
    expect(r.ms).toBeLessThan(2000)
  })

  it('validates a runbook just under the limit', async () => {
    const text = vars(MAX_BYTES - 4096) + PLAY
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_BYTES)
    const r = await validate(text)
    expect(r.messages).toEqual([])
  }, 30_000)
})
