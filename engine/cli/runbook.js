#!/usr/bin/env node
// The `runbook` executable: TypeScript runs through tsx, no build step.
import { register } from 'tsx/esm/api'

register()
const { run } = await import('./entry.ts')
process.exitCode = await run(process.argv.slice(2))
