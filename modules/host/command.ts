/**
 * `command`: runs a program with arguments on the host, without a shell.
 */
import { z } from 'zod'
import { quote } from '../../engine/connection/shell.ts'
import { defineModule } from '../../engine/module.ts'
import { splitArgs } from './lib/argv.ts'
import {
  applyRun,
  display,
  gatherGuards,
  planRun,
  runOutput,
  runParams,
  type GuardState,
} from './lib/run-command.ts'

const params = z
  .strictObject({
    cmd: z
      .string()
      .min(1)
      .optional()
      .describe(
        'The command line, split into words like a shell would (quotes honoured) but never run through one: no variables, globs, pipes or redirections',
      ),
    argv: z
      .array(z.string())
      .min(1)
      .optional()
      .describe('The program and its arguments as a list (instead of `cmd`)'),
    ...runParams,
  })
  .refine((p) => (p.cmd === undefined) !== (p.argv === undefined), {
    message: 'give exactly one of `cmd` or `argv`',
  })

/** command's parameters. */
export type CommandParams = z.infer<typeof params>

/** The argv a task runs. */
export function argvOf(p: CommandParams): string[] {
  return p.argv ?? splitArgs(p.cmd ?? '')
}

/**
 * Runs a program without a shell; `creates`/`removes` make it idempotent.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const command = defineModule<CommandParams, GuardState>({
  name: 'command',
  summary: 'Runs a program with arguments on the host (no shell); registers rc, stdout, stderr',
  example: `- command:\n    argv: [keepalived, -t, -f, /etc/keepalived/keepalived.conf]\n  register: check\n  changed_when: false`,
  params,
  freeForm: 'cmd',
  gather: gatherGuards,
  plan: (p, s) => planRun(p, s, display(argvOf(p))),
  apply: (ctx, p) => applyRun(ctx, p, `exec ${argvOf(p).map(quote).join(' ')}`, argvOf(p)),
  output: (p, s, changes) => runOutput(p, s, changes, argvOf(p)),
})
