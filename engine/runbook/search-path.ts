/**
 * Where a task's relative `src` files are found: in a role, its templates/, files/ and own
 * directory first (as Ansible looks in a role), then the runbook's directory.
 */
import { statSync } from 'node:fs'
import path from 'node:path'

/**
 * The directories to look a relative source file up in, first hit wins.
 * @example sourceSearchPath('/rb/roles/keepalived', '/rb') // ['/rb/roles/keepalived/templates', ..., '/rb']
 */
export function sourceSearchPath(roleDir: string | undefined, baseDir: string): string[] {
  return roleDir === undefined
    ? [baseDir]
    : [path.join(roleDir, 'templates'), path.join(roleDir, 'files'), roleDir, baseDir]
}

/**
 * The first existing file for `rel` along `dirs` (an absolute `rel` is itself), else undefined.
 * @example findSource(['/rb/roles/k/templates', '/rb'], 'keepalived.conf.hbs')
 */
export function findSource(dirs: readonly string[], rel: string): string | undefined {
  if (path.isAbsolute(rel))
    return statSync(rel, { throwIfNoEntry: false })?.isFile() ? rel : undefined
  return dirs
    .map((d) => path.resolve(d, rel))
    .find((f) => statSync(f, { throwIfNoEntry: false })?.isFile() === true)
}
