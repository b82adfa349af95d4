/**
 * `runbook apply vip-keepalived.yaml` from the project root, as the mission says it: a name that
 * is not a file is looked up in `runbooks/`, and the CLI says which file it picked.
 */
import { statSync } from 'node:fs'
import path from 'node:path'

const isFile = (f: string): boolean => statSync(f, { throwIfNoEntry: false })?.isFile() === true

/**
 * The file a runbook argument names: itself when it is a file; else, for a bare name (no
 * directory part), `runbooks/NAME`, `runbooks/NAME.yaml` or `runbooks/NAME.yml` under `cwd`.
 * `picked` is set only when the lookup chose another path than the one given.
 * @example resolveRunbookName('vip-keepalived.yaml', '/project') // { file: 'runbooks/vip-keepalived.yaml', picked: true }
 */
export function resolveRunbookName(name: string, cwd: string): { file: string; picked: boolean } {
  if (name === '' || isFile(path.resolve(cwd, name)) || name.includes('/') || name.includes('\\'))
    return { file: name, picked: false }
  const hit = [name, `${name}.yaml`, `${name}.yml`]
    .map((n) => path.join('runbooks', n))
    .find((f) => isFile(path.resolve(cwd, f)))
  return hit === undefined ? { file: name, picked: false } : { file: hit, picked: true }
}
