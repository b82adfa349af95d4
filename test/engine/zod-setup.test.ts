/**
 * The CLI's zod parses without compiling a parser per object schema (`new Function`): a run parses
 * each schema a few times, and compiling cost more than it saved (docs/performance.md).
 */
import { afterEach, describe, expect, it } from 'vitest'

const RealFunction = globalThis.Function

afterEach(() => {
  globalThis.Function = RealFunction
})

/** Counts the functions made from strings while `fn` runs. */
async function compiled(fn: () => Promise<void>): Promise<number> {
  let n = 0
  globalThis.Function = new Proxy(RealFunction, {
    construct(target, args) {
      n++
      return Reflect.construct(target, args)
    },
  })
  try {
    await fn()
  } finally {
    globalThis.Function = RealFunction
  }
  return n
}

describe('zod as the CLI sets it up', () => {
  it('compiles no parser when the engine parses an object schema', async () => {
    // the engine's CLI commands import the setup before anything makes a schema
    await import('../../engine/cli/commands.ts')
    const { z } = await import('zod')
    const schema = z.object({ a: z.string(), b: z.number().optional() })
    const n = await compiled(async () => {
      expect(schema.parse({ a: 'x' })).toEqual({ a: 'x' })
      expect(schema.safeParse({ a: 1 }).success).toBe(false)
    })
    expect(n).toBe(0)
  })
})
