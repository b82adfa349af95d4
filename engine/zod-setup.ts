/**
 * zod as the CLI uses it, set before any schema is made (engine/cli/commands.ts imports this
 * first). `jitless`: on the first parse of each object schema zod compiles a parser for it with
 * `new Function`; a run parses each schema a few times, and the compiling cost more than it
 * saved. Results are the same either way.
 */
import { z } from 'zod'

z.config({ jitless: true })
