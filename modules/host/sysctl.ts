/**
 * `sysctl`: a kernel parameter has a value now (/proc/sys) and after a reboot (a line in a file
 * under /etc/sysctl.d); both are read in one round trip and compared.
 */
import { z } from 'zod'
import { quote } from '../../engine/connection/shell.ts'
import { RunbookError } from '../../engine/errors.ts'
import { defineModule, type ModuleContext, type ResourceRecord } from '../../engine/module.ts'
import type { Change } from '../../engine/plan/change.ts'
import { fromBase64, probe, run, sectionLine, sections, tail } from './lib/remote.ts'

const SYSCTL_DIRS =
  '/etc/sysctl.d/*.conf /run/sysctl.d/*.conf /usr/local/lib/sysctl.d/*.conf /usr/lib/sysctl.d/*.conf /lib/sysctl.d/*.conf /etc/sysctl.conf'

const params = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.:/@-]*$/, 'a sysctl key such as net.ipv4.ip_forward')
      .describe('The key, dotted (`net.ipv4.conf.all.arp_ignore`)'),
    value: z
      .union([z.string(), z.number()])
      .optional()
      .describe('The value (required with state: present); whitespace is normalised'),
    state: z
      .enum(['present', 'absent'])
      .default('present')
      .describe(
        'present: set now (with reload) and persisted; absent: the line is removed from `sysctl_file` (the running value is left alone)',
      ),
    reload: z
      .boolean()
      .default(true)
      .describe('Also set the running value now, not only at the next boot'),
    sysctl_file: z
      .string()
      .min(1)
      .default('/etc/sysctl.d/99-runbook.conf')
      .describe('File that persists the value'),
  })
  .refine((p) => p.state === 'absent' || p.value !== undefined, {
    message: '`value` is required with state: present',
  })

/** sysctl's parameters. */
export type SysctlParams = z.infer<typeof params>

/** What the host says about one key. */
export interface SysctlState {
  /** The running value (whitespace normalised); null when the key does not exist now. */
  now: string | null
  /** sysctl_file's content; null when it does not exist. */
  file: string | null
  /** Lines for the same key in other sysctl files: `path: key = value`. */
  others: { path: string; value: string }[]
}

/** The /proc/sys path of a key: dots are separators, slashes stand for dots inside a component. */
export function procPath(name: string): string {
  const dotted = /^[^/]*\./.test(name) || !name.includes('/')
  const path = dotted ? name.replace(/[./]/g, (c) => (c === '.' ? '/' : '.')) : name
  return `/proc/sys/${path}`
}

function norm(v: string | number): string {
  return String(v).trim().split(/\s+/).join(' ')
}

/** The canonical dotted key, for comparing lines. */
function keyOf(name: string): string {
  return procPath(name)
    .slice('/proc/sys/'.length)
    .replace(/[./]/g, (c) => (c === '/' ? '.' : '/'))
}

function lineKey(line: string): { key: string; value: string } | undefined {
  const m = /^\s*-?\s*([^#;=\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(line)
  return m?.[1] !== undefined ? { key: keyOf(m[1]), value: norm(m[2] ?? '') } : undefined
}

/**
 * The file with the key set to `value` (replacing the first line for it, dropping later ones), or
 * without it when `value` is undefined.
 * @example persist('a = 1\n', 'b', '2') // 'a = 1\nb = 2\n'
 */
export function persist(file: string, name: string, value: string | undefined): string {
  const key = keyOf(name)
  const lines = file === '' ? [] : file.replace(/\n$/, '').split('\n')
  const out: string[] = []
  let done = false
  for (const line of lines) {
    const kv = lineKey(line)
    if (kv?.key !== key) out.push(line)
    else if (value !== undefined && !done) {
      // A line that already says the value stays as its author wrote it.
      out.push(kv.value === value ? line : `${name} = ${value}`)
      done = true
    }
  }
  if (value !== undefined && !done) out.push(`${name} = ${value}`)
  return out.length ? `${out.join('\n')}\n` : ''
}

/** The value the file persists for the key, if any. */
function persisted(file: string | null, name: string): string | undefined {
  const key = keyOf(name)
  for (const line of (file ?? '').split('\n')) {
    const kv = lineKey(line)
    if (kv?.key === key) return kv.value
  }
  return undefined
}

async function gatherSysctl(ctx: ModuleContext, p: SysctlParams): Promise<SysctlState> {
  const f = quote(p.sysctl_file)
  const script = [
    sectionLine('now'),
    `if [ -r ${quote(procPath(p.name))} ]; then tr '\\n\\t' '  ' < ${quote(procPath(p.name))}; echo; else echo '@@missing'; fi`,
    sectionLine('file'),
    `if [ -f ${f} ]; then base64 -w0 ${f}; echo; else echo '@@missing'; fi`,
    sectionLine('others'),
    `grep -Hs '' ${SYSCTL_DIRS} | grep -v '^[^:]*:[[:space:]]*[#;]' || true`,
  ].join('\n')
  const sec = sections(await probe(ctx, script, `sysctl ${p.name}`))
  const now = sec.now?.trim() ?? '@@missing'
  const file =
    sec.file === undefined || sec.file === '@@missing' ? null : fromBase64(sec.file.trim())
  const key = keyOf(p.name)
  const others: SysctlState['others'] = []
  for (const line of (sec.others ?? '').split('\n')) {
    const i = line.indexOf(':')
    const path = line.slice(0, i)
    const kv = lineKey(line.slice(i + 1))
    if (i > 0 && kv?.key === key && path !== p.sysctl_file) others.push({ path, value: kv.value })
  }
  return { now: now === '@@missing' ? null : norm(now), file, others }
}

/** Files read after ours by `sysctl --system` (sorted by name; /etc/sysctl.conf last) that set another value. */
function overriders(p: SysctlParams, s: SysctlState, value: string): string[] {
  const base = (x: string): string => x.slice(x.lastIndexOf('/') + 1)
  return s.others
    .filter(
      (o) =>
        o.value !== value && (o.path === '/etc/sysctl.conf' || base(o.path) > base(p.sysctl_file)),
    )
    .map((o) => `${o.path} (= ${o.value})`)
}

function planSysctl(p: SysctlParams, s: SysctlState): Change[] {
  const changes: Change[] = []
  const value = p.value === undefined ? undefined : norm(p.value)
  if (p.state === 'present' && value !== undefined && p.reload && s.now !== value) {
    if (s.now === null)
      throw new RunbookError(
        'E_MODULE',
        `sysctl ${p.name}: no such key on the host (${procPath(p.name)} missing; kernel module not loaded?)`,
      )
    changes.push({
      action: 'update',
      target: `sysctl ${p.name}`,
      key: { kind: 'value', name: p.name },
      before: { value: s.now },
      after: { value },
    })
  }
  const before = s.file ?? ''
  const after = persist(before, p.name, p.state === 'present' ? value : undefined)
  if (after !== before || (s.file === null && p.state === 'present')) {
    const later = value === undefined ? [] : overriders(p, s, value)
    const change: Change = {
      action: s.file === null ? 'create' : 'update',
      target: `file ${p.sysctl_file}`,
      key: { kind: 'file', name: p.sysctl_file },
      before: { [p.name]: persisted(s.file, p.name) ?? null },
      after: { [p.name]: p.state === 'present' ? value : null },
      diff: { path: p.sysctl_file, before, after },
    }
    if (later.length)
      change.note = `also set in ${later.join(', ')}, read later at boot: that value wins`
    changes.push(change)
  }
  return changes
}

/**
 * Sets a kernel parameter now and persists it.
 * Its runbook example is the `example` field (the one source docs/modules.md is made from).
 */
export const sysctl = defineModule<SysctlParams, SysctlState>({
  name: 'sysctl',
  summary: 'A kernel parameter has this value now (/proc/sys) and after reboot (/etc/sysctl.d)',
  example: `- sysctl: { name: net.ipv4.conf.all.arp_ignore, value: 1 }\n- sysctl: { name: net.ipv4.conf.all.arp_announce, value: 2 }`,
  params,
  gather: gatherSysctl,
  plan: planSysctl,
  noop: (p, s) =>
    p.state === 'absent'
      ? `${p.name} is not persisted in ${p.sysctl_file}`
      : `${p.name} is ${s.now ?? 'unset'} now and in ${p.sysctl_file}`,
  async apply(ctx, p, changes, s) {
    const conn = await ctx.conn()
    const value = p.value === undefined ? undefined : norm(p.value)
    for (const c of changes) {
      if (c.key?.kind === 'file' && c.diff) {
        await conn.writeFile(p.sysctl_file, c.diff.after, {
          become: ctx.become,
          ...(s.file === null ? { mode: 0o644 } : {}),
        })
        if (persisted(s.file, p.name) === undefined && p.state === 'present')
          await ctx.journal.record({ type: 'sysctl', id: `${p.sysctl_file}:${p.name}` })
      } else if (value !== undefined) {
        const r = await run(ctx, `sysctl -q -w ${quote(`${p.name}=${value}`)}`)
        if (r.rc !== 0)
          throw new RunbookError(
            'E_COMMAND',
            `sysctl -w ${p.name}=${value} failed: ${tail(r.stderr || r.stdout)}`,
          )
      }
    }
    const now = await gatherSysctl(ctx, p)
    if (planSysctl(p, now).length)
      throw new RunbookError(
        'E_MODULE',
        `sysctl ${p.name}: the host reports ${now.now ?? 'nothing'} after apply (post-condition failed)`,
      )
    return { changed: true, output: outputOf(p, now) }
  },
  output: (p, s) => outputOf(p, s),
  async destroy(ctx, r: ResourceRecord) {
    const i = r.id.lastIndexOf(':')
    const path = r.id.slice(0, i)
    const name = r.id.slice(i + 1)
    const conn = await ctx.conn()
    const buf = await conn.readFile(path, { become: ctx.become })
    if (buf === null) return
    const after = persist(buf.toString('utf8'), name, undefined)
    if (after !== buf.toString('utf8')) await conn.writeFile(path, after, { become: ctx.become })
  },
})

function outputOf(p: SysctlParams, s: SysctlState | undefined): Record<string, unknown> {
  return {
    name: p.name,
    value: s?.now ?? null,
    persisted: persisted(s?.file ?? null, p.name) ?? null,
    file: p.sysctl_file,
  }
}
