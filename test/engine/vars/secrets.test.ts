import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { Redactor, resolveSecret } from '../../../engine/vars/secrets.ts'

describe('Redactor', () => {
  it('hides every secret in text and deep values, longest first', () => {
    const r = new Redactor()
    r.add('abc')
    r.add('abcdef')
    r.add('')
    expect(r.text('x abcdef y abc')).toBe('x *** y ***')
    expect(r.value({ a: ['abc', { b: 'zabcz' }], n: 1 })).toEqual({
      a: ['***', { b: 'z***z' }],
      n: 1,
    })
  })
})

describe('resolveSecret', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-secret-'))
  const src = { env: { PASS: 'from-env' }, stateDir: dir, baseDir: dir }

  it('reads the environment, a file, and fails clearly when absent', async () => {
    expect(await resolveSecret('p', { secret: true, from_env: 'PASS' }, src)).toBe('from-env')
    writeFileSync(path.join(dir, 'f'), 'from-file\n')
    expect(await resolveSecret('p', { secret: true, from_file: 'f' }, src)).toBe('from-file')
    await expect(resolveSecret('p', { secret: true, from_env: 'NOPE' }, src)).rejects.toThrow(
      /NOPE is not set/,
    )
    await expect(resolveSecret('p', { secret: true, prompt: 'Password' }, src)).rejects.toThrow(
      /no terminal/,
    )
  })

  it('generates once and keeps the value private', async () => {
    const a = await resolveSecret('gen', { secret: true, generate: 12 }, src)
    const b = await resolveSecret('gen', { secret: true, generate: 12 }, src)
    expect(a).toHaveLength(12)
    expect(b).toBe(a)
    const file = path.join(dir, 'secrets', 'gen')
    expect(readFileSync(file, 'utf8').trim()).toBe(a)
    expect(statSync(file).mode & 0o777).toBe(0o600)
  })
})
