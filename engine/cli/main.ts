/**
 * The `runbook` command line: validate, plan, apply, destroy, modules, schema, exec, lab.
 * Everything it needs from outside the engine (modules, connections, the lab) is passed in as one
 * `deps` (./deps.ts), so the engine stays free of clouds and package managers. Only commander is
 * loaded up front: each command imports what it runs, so `runbook --version` starts in about the
 * time of a bare `node`.
 */
import path from 'node:path'
import { resolveRunbookName } from './runbook-name.ts'
import { Command, Option } from 'commander'
import type { CliDeps, LabCommands } from './deps.ts'
import type { CommonFlags } from './commands.ts'

export type { CliDeps, ConnectionContext, ExecCommand, LabCommands } from './deps.ts'

/** The run commands, loaded when one runs (the engine is not loaded for `--version` or `--help`). */
const commands = (): Promise<typeof import('./commands.ts')> => import('./commands.ts')

const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

function common(cmd: Command, what = 'runbook YAML file'): Command {
  return cmd
    .argument('<runbook>', what)
    .option('-i, --inventory <file>', "inventory YAML file (default: the runbook's `inventory:`)")
    .option('-e, --var <key=value>', 'set a variable (repeatable; highest precedence)', collect, [])
    .option('--var-file <file>', 'variables from a YAML file (repeatable)', collect, [])
    .option('-l, --limit <pattern>', 'only these hosts')
    .option('-t, --tags <tags>', 'only tasks with these tags (comma-separated)')
    .option('--skip-tags <tags>', 'skip tasks with these tags')
    .option('-f, --forks <n>', 'hosts in parallel', (v) => Number.parseInt(v, 10), 10)
    .option('--json', 'one JSON event per line on stdout, the last one a summary')
    .option('--no-color', 'no colours (also NO_COLOR=1)')
    .option('--state-dir <dir>', 'where journals and locks live (default ./.runbook)')
    .option(
      '--allow-source <dir>',
      "a directory outside the runbook's tree that copy/template/import sources may come from (repeatable)",
      collect,
      [],
    )
    .option('-v, --verbose', 'more detail')
    .option(
      '--timings',
      'after the recap, where the time went per task and host (SSH, commands, API)',
    )
}

/**
 * Runs the CLI with `argv` (without node and script); resolves to the exit code.
 * @example process.exitCode = await main(process.argv.slice(2), { registry: async () => registry, connections })
 */
export async function main(argv: string[], deps: CliDeps): Promise<number> {
  const out = deps.out ?? process.stdout
  const err = deps.err ?? process.stderr
  let code = 0
  const program = new Command()
    .name('runbook')
    .description('Declarative, idempotent runbooks: plan, converge, verify, clean up.')
    .version('0.1.0')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => out.write(s), writeErr: (s) => err.write(s) })
    .exitOverride()

  // a bare name that is not a file here is looked up in runbooks/ (said on stderr: stdout may be --json)
  const pickRunbook = (given: string): string => {
    const { file, picked } = resolveRunbookName(given, process.cwd())
    if (picked) err.write(`runbook: ${given} is not a file here; using ${file}\n`)
    return file
  }
  const flags = (given: string, o: Record<string, unknown>): CommonFlags => ({
    runbook: pickRunbook(given),
    inventory: o.inventory as string | undefined,
    vars: o.var as string[],
    varFiles: o.varFile as string[],
    limit: o.limit as string | undefined,
    tags: typeof o.tags === 'string' ? o.tags.split(',').map((t) => t.trim()) : undefined,
    skipTags:
      typeof o.skipTags === 'string' ? o.skipTags.split(',').map((t) => t.trim()) : undefined,
    forks: o.forks as number,
    json: o.json === true,
    color: o.color !== false,
    stateDir: o.stateDir as string | undefined,
    allowSources: ((o.allowSource as string[] | undefined) ?? []).map((d) => path.resolve(d)),
    verbose: o.verbose === true,
    timings: o.timings === true,
  })

  common(
    program
      .command('validate')
      .description('check a runbook and its inventory without touching anything'),
  )
    .option(
      '--list-tasks',
      "print each play's tasks (blocks, imports and roles indented), with their modules and tags",
    )
    .option('--list-hosts', 'print the hosts each play would run on')
    .action(async (rb: string, o: Record<string, unknown>) => {
      code = await (
        await commands()
      ).runValidate(flags(rb, o), deps, out, err, {
        listTasks: o.listTasks === true,
        listHosts: o.listHosts === true,
      })
    })
  common(
    program.command('plan').description('show what apply would change (gathers state read-only)'),
  )
    .option('--detailed-exitcode', 'exit 0 when in sync, 2 when changes are pending, 1 on error')
    .option('--destroy', 'show what destroy would remove')
    .option(
      '-o, --out <file>',
      'save the plan; `runbook apply FILE` then applies exactly it, or refuses if it no longer holds',
    )
    .action(async (rb: string, o: Record<string, unknown>) => {
      code = await (
        await commands()
      ).runPlan(
        flags(rb, o),
        {
          detailedExitcode: o.detailedExitcode === true,
          destroy: o.destroy === true,
          out: o.out as string | undefined,
        },
        deps,
        out,
        err,
      )
    })
  common(
    program
      .command('apply')
      .description(
        'converge the hosts and the cloud to the runbook (or apply a plan saved by `plan --out`)',
      ),
    'runbook YAML file, or a saved plan',
  )
    .option('--check', 'plan through the apply path: gather and plan every task, change nothing')
    .option('--diff', 'show unified diffs of file contents')
    .option('--force-handlers', 'run notified handlers even when a later task failed')
    .addOption(
      new Option('--lock-timeout <seconds>', 'wait this long for another run of the same runbook')
        .argParser((v) => Number(v))
        .default(0),
    )
    .action(async (rb: string, o: Record<string, unknown>) => {
      code = await (
        await commands()
      ).runApply(
        flags(rb, o),
        {
          check: o.check === true,
          diff: o.diff === true,
          forceHandlers: o.forceHandlers === true,
          lockTimeout: o.lockTimeout as number,
        },
        deps,
        out,
        err,
      )
    })
  common(
    program
      .command('destroy')
      .description('remove what this runbook created (from its journal), newest first'),
  )
    .option('--auto-approve', 'do not ask for confirmation')
    .option(
      '--forget <id>',
      'drop the record of this resource ID from the journal without touching it (repeatable)',
      collect,
      [],
    )
    .addOption(
      new Option('--lock-timeout <seconds>', 'wait this long for another run of the same runbook')
        .argParser((v) => Number(v))
        .default(0),
    )
    .action(async (rb: string, o: Record<string, unknown>) => {
      code = await (
        await commands()
      ).runDestroy(
        flags(rb, o),
        {
          autoApprove: o.autoApprove === true,
          lockTimeout: o.lockTimeout as number,
          forget: o.forget as string[],
        },
        deps,
        out,
        err,
      )
      // the hosts are gone: their kept connections too (a rebuilt VM gets a fresh one)
      await deps.disconnect?.().catch(() => 0)
    })
  program
    .command('disconnect')
    .description('close the SSH connections kept between runs (as `ssh -O exit`)')
    .action(async () => {
      const n = (await deps.disconnect?.()) ?? 0
      out.write(`closed ${n} kept connection${n === 1 ? '' : 's'}\n`)
      code = 0
    })
  program
    .command('modules')
    .description('list modules, or show one with its parameters and an example')
    .argument('[name]', 'module name')
    .option('--markdown', 'print docs/modules.md')
    .action(async (name: string | undefined, o: { markdown?: boolean }) => {
      const { printModules } = await import('./modules.ts')
      code = printModules(await deps.registry(true), name, o.markdown === true, out, err)
    })
  program
    .command('show')
    .description(
      'print a plan saved by `plan --out`: what it would change, its options and when it was made',
    )
    .argument('<planfile>', 'the saved plan')
    .option('--json', 'the saved plan itself')
    .action(async (file: string, o: { json?: boolean }) => {
      code = await (await commands()).runShow(file, o.json === true, out, err)
    })
  program
    .command('schema')
    .description('print the JSON Schema of runbooks (for editors: yaml-language-server)')
    .action(async () => {
      const { printSchema } = await import('./modules.ts')
      printSchema(await deps.registry(true), out)
    })
  program
    .command('exec')
    .description('run one command on many hosts at once, like `ansible -m shell`')
    .argument('<inventory>', 'inventory YAML file')
    .argument('<pattern>', 'host pattern')
    .argument('<command...>', 'the command (after --)')
    .option('-f, --forks <n>', 'hosts in parallel', (v) => Number.parseInt(v, 10), 10)
    .option('-b, --become', 'run with sudo')
    .option('--json', 'JSON lines')
    .action(
      async (
        inventory: string,
        pattern: string,
        command: string[],
        o: { forks: number; become?: boolean; json?: boolean },
      ) => {
        if (!deps.exec) throw await usage('exec is not available in this build')
        code = await deps.exec({
          inventory,
          pattern,
          command: command.join(' '),
          forks: o.forks,
          become: o.become === true,
          json: o.json === true,
          out,
          err,
        })
      },
    )
  const lab = program
    .command('lab')
    .description('the embedded OpenStack lab made of real Linux hosts (needs root)')
  const needLab = async (): Promise<LabCommands> => {
    if (!deps.lab) throw await usage('the lab is not available in this build')
    return deps.lab
  }
  lab
    .command('up')
    .description('start the lab API daemon and its network; writes a clouds.yaml entry `lab`')
    .option('--port <port>', 'API port (default 8780, or RUNBOOK_LAB_PORT)', (v) =>
      Number.parseInt(v, 10),
    )
    .option('--state-dir <dir>', 'lab state (default /var/lib/runbook-lab, or RUNBOOK_LAB_DIR)')
    .option('--no-hosts', 'the API only, without real hosts (for tests of its shapes)')
    .option('--no-mirror', 'no package mirror for the VMs (or RUNBOOK_LAB_MIRROR=0)')
    .option('--mirror-packages <list>', "the mirror's packages, comma-separated", (v) =>
      v.split(',').filter((p) => p !== ''),
    )
    .action(
      async (o: {
        port?: number
        stateDir?: string
        hosts: boolean
        mirror: boolean
        mirrorPackages?: string[]
      }) => {
        code = await (await needLab()).up(o)
      },
    )
  lab
    .command('status')
    .description('is the lab running, where, and its servers (exit 3 when it is not running)')
    .option('--state-dir <dir>', 'lab state directory')
    .action(async (o: { stateDir?: string }) => {
      code = await (await needLab()).status(o)
    })
  lab
    .command('down')
    .description('stop the lab and remove everything it made (also after a crash)')
    .option('--state-dir <dir>', 'lab state directory')
    .option('--keep-state', "keep the cloud's state for the next `lab up`")
    .action(async (o: { stateDir?: string; keepState?: boolean }) => {
      code = await (await needLab()).down(o)
      await deps.disconnect?.().catch(() => 0)
    })

  lab
    .command('images')
    .description("the lab's images, built from Debian's archive and cached")
    .command('build')
    .description('build the images and the kernel VM disk now (cached: nothing to do when built)')
    .action(async () => {
      code = await (await needLab()).buildImages()
    })

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number }
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.code === 'commander.helpDisplayed' ||
        ce.code === 'commander.version' ||
        ce.code === 'commander.help'
        ? 0
        : (ce.exitCode ?? 1)
    }
    const { printErrors } = await import('./print-errors.ts')
    printErrors(e, err)
    return 1
  }
  return code
}

/** A usage error (the error classes are loaded only when one is thrown). */
async function usage(message: string): Promise<Error> {
  const { RunbookError } = await import('../errors.ts')
  return new RunbookError('E_USAGE', message)
}
