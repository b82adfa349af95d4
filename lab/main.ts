/**
 * A tiny entry until the `runbook lab` command is wired:
 *
 *   node --import tsx lab/main.ts up|status|down [--port N] [--state-dir DIR] [--no-hosts] [--keep-state]
 *                                [--no-mirror] [--mirror-packages a,b,c]
 */
import { parseArgs } from 'node:util'
import { labDown, labStatus, labUp } from './index.ts'
import type { LabOptions } from './index.ts'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    'state-dir': { type: 'string' },
    'no-hosts': { type: 'boolean', default: false },
    'keep-state': { type: 'boolean', default: false },
    'no-mirror': { type: 'boolean', default: false },
    'mirror-packages': { type: 'string' },
  },
})
const opts: LabOptions = {}
if (values.port !== undefined) opts.port = Number(values.port)
if (values['state-dir'] !== undefined) opts.stateDir = values['state-dir']
if (values['no-hosts'] === true) opts.withHosts = false
if (values['no-mirror'] === true) opts.mirror = false
else if (values['mirror-packages'] !== undefined)
  opts.mirror = { packages: values['mirror-packages'].split(',').filter((p) => p !== '') }

try {
  switch (positionals[0]) {
    case 'up':
      await labUp(opts)
      break
    case 'status':
      process.exitCode = (await labStatus(opts)).running ? 0 : 3
      break
    case 'down':
      await labDown({ ...opts, keepState: values['keep-state'] === true })
      break
    default:
      process.stderr.write(
        'usage: lab/main.ts up|status|down [--port N] [--state-dir DIR] [--no-hosts] [--keep-state] [--no-mirror] [--mirror-packages a,b]\n',
      )
      process.exitCode = 2
  }
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
  process.exitCode = 1
}
