import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { registry } from '../../modules/index.ts'

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  )
}

describe("a module's example has one source: its `example` field", () => {
  it('every module has one', () => {
    for (const m of registry.values()) expect(m.example, m.name).toMatch(/\S/)
  })

  it.each(sources('modules'))('%s keeps no second copy in the JSDoc of its module', (file) => {
    const text = readFileSync(file, 'utf8')
    const copies = [
      ...text.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*export const \w+ = defineModule/g),
    ]
    for (const [, doc] of copies) expect(doc).not.toContain('@example')
  })
})
