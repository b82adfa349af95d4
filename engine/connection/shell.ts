/**
 * Small shell helpers shared by connections and modules: quoting, sudo wrapping, and the atomic
 * write script that every connection uses when it must write as another user.
 */
import type { BecomeOptions } from './types.ts'

/**
 * Quotes one word for POSIX sh.
 * @example quote("it's") // 'it'\''s'
 */
export function quote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

/** Wraps a shell command so that it runs through sudo (or as is, without become). */
export function wrapBecome(command: string, become: BecomeOptions | undefined): string {
  if (!become) return command
  const user = become.user ?? 'root'
  // -k makes sudo always read the password line we send, so it never reaches the command.
  const prompt = become.password === undefined ? '-n' : `-k -S -p ''`
  return `sudo ${prompt} -H -u ${quote(user)} -- /bin/sh -c ${quote(command)}`
}

/** A shell script that atomically replaces `path` with its standard input, keeping mode and owner. */
export function atomicWriteScript(
  path: string,
  opts: { mode?: number | undefined; owner?: string | undefined; group?: string | undefined },
): string {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '/' : '.'
  const base = path.slice(path.lastIndexOf('/') + 1)
  const p = quote(path)
  const mode = opts.mode === undefined ? '' : opts.mode.toString(8).padStart(4, '0')
  const owner = opts.owner ?? ''
  const group = opts.group ?? ''
  return [
    'set -e',
    `t=$(mktemp ${quote(`${dir}/.${base}.rb-XXXXXX`)})`,
    `trap 'rm -f "$t"' EXIT`,
    'cat > "$t"',
    mode
      ? `chmod ${mode} "$t"`
      : `if [ -e ${p} ]; then chmod "$(stat -c %a ${p})" "$t"; else chmod 0644 "$t"; fi`,
    owner || group
      ? `chown ${quote(`${owner}${group ? `:${group}` : ''}`)} "$t"`
      : `if [ -e ${p} ]; then chown "$(stat -c %u:%g ${p})" "$t" 2>/dev/null || true; fi`,
    'sync "$t" 2>/dev/null || sync',
    `mv -f "$t" ${p}`,
    'trap - EXIT',
  ].join('\n')
}
