/**
 * Modules that act on the engine itself: printing, assertions, variables, inventory.
 */
import { addHost } from './add-host.ts'
import { assert } from './assert.ts'
import { debug } from './debug.ts'
import { fail } from './fail.ts'
import { setFact } from './set-fact.ts'

/** The built-in modules. */
export const builtinModules = [debug, assert, setFact, addHost, fail] as const
