import { describe, expect, it } from 'vitest'
import { scrub } from '../../../lab/conformance/golden.ts'

describe('scrub', () => {
  it('replaces tokens, secrets and passwords at any depth and keeps the rest', () => {
    const body = {
      auth: { identity: { password: { user: { name: 'demo', password: 'pw' } } } },
      application_credential: { id: 'abc', secret: 's3cr3t', roles: [{ name: 'member' }] },
      links: ['gAAAAABtoken-like'],
    }
    expect(scrub(body)).toEqual({
      auth: { identity: { password: { user: { name: 'demo', password: '<password>' } } } },
      application_credential: { id: 'abc', secret: '<secret>', roles: [{ name: 'member' }] },
      links: ['<token>'],
    })
  })
})
