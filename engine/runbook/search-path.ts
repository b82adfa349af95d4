/**
 * Where a task's relative `src` files are found: in a role, its templates/, files/ and own
 * directory first (as Ansible looks in a role), then the runbook's directory.
 */
import { realpathSync, statSync } from 'node:fs'
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

/**
 * Whether a source file lies outside the runbook's directory tree and every directory the runbook
 * allows (`allow_sources:`), symlinks resolved: such a file is refused, so that a runbook cannot
 * copy `~/.ssh/id_ed25519` or `/etc/shadow` to a host by mistake.
 * @example outsideTree('/home/me/.ssh/id_ed25519', '/rb', []) // true
 */
export function outsideTree(file: string, baseDir: string, allowed: readonly string[]): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p)
    } catch {
      return path.resolve(p)
    }
  }
  const f = real(file)
  return ![baseDir, ...allowed.map((a) => path.resolve(baseDir, a))]
    .map(real)
    .some((d) => f === d || f.startsWith(d.endsWith(path.sep) ? d : d + path.sep))
}
