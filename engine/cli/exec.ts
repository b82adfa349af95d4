/**
 * `runbook exec INVENTORY PATTERN -- COMMAND`: one command on many hosts at once, through the
 * same connection pool (jump chains, host keys) as runs, printed per host as it finishes.
 */
import path from 'node:path'
import { RunbookError, RunbookErrors } from '../errors.ts'
import { runAdhoc, summarizeAdhoc } from '../connection/exec-adhoc.ts'
import { ConnectionPool } from '../connection/pool.ts'
import { settingsFromVars } from '../connection/ssh-factory.ts'
import { makeScope } from '../execute/scope.ts'
import { Inventory } from '../inventory/inventory.ts'
import { loadYaml } from '../runbook/source.ts'
import { didYouMean } from '../suggest.ts'
import type { ExecCommand } from './deps.ts'

/**
 * The exec command. Exit codes as Ansible's ad-hoc mode: 0 all succeeded, 2 a command failed,
 * 4 a host was unreachable.
 */
export const execCommand: ExecCommand = async (o) => {
  const { source, errors } = await loadYaml(o.inventory)
  const loaded = errors.length ? undefined : Inventory.load(source)
  const all = [...errors, ...(loaded?.errors ?? [])]
  if (all.length || !loaded)
    throw new RunbookErrors(all, (f) => (f === source.file ? source.text : undefined))
  const inv = loaded.inventory
  const names = inv.match(o.pattern).filter((h) => h !== 'localhost')
  if (names.length === 0)
    throw new RunbookError(
      'E_INVENTORY',
      `pattern '${o.pattern}' matches no host in ${o.inventory}`,
      { hint: didYouMean(o.pattern, inv.names()) },
    )
  const varsOf = (name: string): Record<string, unknown> =>
    makeScope([
      { vars: inv.hostVars(name), templated: true },
      { vars: { inventory_hostname: name }, templated: false },
    ])
  const pool = new ConnectionPool({
    resolveHost: (name) => (/[@:]/.test(name) ? undefined : settingsFromVars(name, varsOf(name))),
    defaults: { projectKnownHosts: path.resolve('.runbook', 'known_hosts') },
  })
  try {
    const results = await runAdhoc(
      names.map((name) => ({ name, settings: settingsFromVars(name, varsOf(name)) })),
      o.command,
      {
        pool,
        forks: o.forks,
        become: o.become ? { method: 'sudo' } : undefined,
        color:
          !o.json && Boolean((o.out as NodeJS.WriteStream).isTTY) && !('NO_COLOR' in process.env),
        write: (block) => (o.json ? undefined : o.out.write(block)),
      },
    )
    if (o.json)
      for (const r of results)
        o.out.write(
          `${JSON.stringify({ host: r.host, rc: r.rc, stdout: r.stdout, stderr: r.stderr, error: r.error?.message, ms: r.ms })}\n`,
        )
    else o.err.write(`${summarizeAdhoc(results)}\n`)
    if (
      results.some(
        (r) => r.error && (r.error.code === 'E_CONNECTION' || r.error.code === 'E_HOST_KEY'),
      )
    )
      return 4
    return results.every((r) => r.rc === 0) ? 0 : 2
  } finally {
    await pool.closeAll()
  }
}
