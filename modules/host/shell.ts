/**
 * `shell`: runs a command line through /bin/sh on the host (pipes, redirections, variables).
 */
import { z } from 'zod'
import { defineModule } from '../../engine/module.ts'
import {
  applyRun,
  gatherGuards,
  planRun,
  runOutput,
  runParams,
  type GuardState,
} from './lib/run-command.ts'

const params = z.strictObject({
  cmd: z.string().min(1).describe('The command line, run with /bin/sh -c'),
  ...runParams,
})

/** shell's parameters. */
export type ShellParams = z.infer<typeof params>

/**
 * Runs a command line through /bin/sh; `creates`/`removes` make it idempotent.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const shell = defineModule<ShellParams, GuardState>({
  name: 'shell',
  summary: 'Runs a command line through /bin/sh on the host; registers rc, stdout, stderr',
  example: `- shell:\n    cmd: ip route | grep default > /root/default-route\n    creates: /root/default-route`,
  params,
  freeForm: 'cmd',
  gather: gatherGuards,
  plan: (p, s) => planRun(p, s, p.cmd),
  apply: (ctx, p) => applyRun(ctx, p, p.cmd, p.cmd),
  output: (p, s, changes) => runOutput(p, s, changes, p.cmd),
})
