import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { Redactor } from '../../../engine/vars/secrets.ts'
import {
  maskChange,
  maskContentDiff,
  rememberSecrets,
  secretHistory,
} from '../../../engine/vars/secrets-redaction.ts'

const r = new Redactor()
r.add('n3w-pass')

describe('maskContentDiff', () => {
  it.each([
    {
      name: 'a rotated value on the host is masked by the shape of its line',
      before: 'a 1\npass 0ld-pass\n',
      after: 'a 1\npass n3w-pass\n',
      want: { before: 'a 1\npass ***\n', after: 'a 1\npass *** (changed)\n' },
    },
    {
      name: 'an unchanged secret line stays unchanged',
      before: 'a 1\npass n3w-pass\n',
      after: 'a 2\npass n3w-pass\n',
      want: { before: 'a 1\npass ***\n', after: 'a 2\npass ***\n' },
    },
    {
      name: 'a file that is only the token',
      before: '0ld-pass\n',
      after: 'n3w-pass\n',
      want: { before: '***\n', after: '*** (changed)\n' },
    },
    {
      name: 'a file without secrets is left alone',
      before: 'x 1\n',
      after: 'x 2\n',
      want: { before: 'x 1\n', after: 'x 2\n' },
    },
  ])('$name', ({ before, after, want }) => {
    expect(maskContentDiff({ path: '/f', before, after }, r)).toEqual({ path: '/f', ...want })
  })
})

describe('maskChange', () => {
  it('masks an attribute that holds a secret on both sides, and never touches the original', () => {
    const ch = {
      action: 'update' as const,
      target: 'user x',
      before: { password: '0ld-pass', shell: '/bin/sh' },
      after: { password: 'n3w-pass', shell: '/bin/sh' },
    }
    expect(maskChange(ch, r)).toMatchObject({
      before: { password: '***', shell: '/bin/sh' },
      after: { password: '*** (changed)', shell: '/bin/sh' },
    })
    expect(ch.after.password).toBe('n3w-pass')
  })
})

describe('secret history', () => {
  it('keeps every earlier value once, in the secrets store, 0600', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rb-hist-'))
    await rememberSecrets(dir, { a: 'one-value' })
    await rememberSecrets(dir, { a: 'two-value' })
    await rememberSecrets(dir, { a: 'two-value' })
    expect(await secretHistory(dir)).toEqual(['one-value', 'two-value'])
    const file = path.join(dir, 'secrets', '.history.json')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8')).toContain('one-value')
  })
})
