/**
 * The shell side of `service`, for systemd and for SysV init scripts: one probe script that
 * reports init system, whether the service exists, runs and starts at boot; the commands that act;
 * and where its log lines are.
 */
import { quote } from '../../../engine/connection/shell.ts'

/** Init systems `service` knows. */
export type InitSystem = 'systemd' | 'sysv'

/** What the probe reports about one service. */
export interface ServiceState {
  init: InitSystem
  exists: boolean
  running: boolean
  /** null when the init system cannot say (no rc links, static units). */
  enabled: boolean | null
  /** Main PID when known, to prove a restart happened. */
  pid: number | null
  /** The init system's own words: `active/running`, `status rc 3`, `pidfile`. */
  detail: string
}

const DETECT = 'if [ -d /run/systemd/system ]; then init=systemd; else init=sysv; fi'

function systemdProbe(unit: string): string {
  const u = quote(unit)
  return [
    'echo init=systemd',
    `systemctl show -p LoadState -p ActiveState -p SubState -p UnitFileState -p MainPID ${u} 2>/dev/null`,
  ].join('\n')
}

// An init script without a `status` action (Debian's keepalived has none) is judged by its
// pidfile, then by pidof, as `service --status-all` would guess.
function sysvProbe(name: string): string {
  const s = quote(`/etc/init.d/${name}`)
  const n = quote(name)
  return [
    'echo init=sysv',
    `if [ -f ${s} ]; then echo exists=1; else echo exists=0; fi`,
    'running=0; how=none; pid=',
    `if [ -f ${s} ] && grep -Eq '(^|[[:space:]|(])status[[:space:]]*[|)]' ${s}; then`,
    `  ${s} status >/dev/null 2>&1 </dev/null; rc=$?; how="status rc $rc"; [ $rc -eq 0 ] && running=1`,
    'fi',
    `for f in /run/${name}.pid /var/run/${name}.pid /run/${name}/${name}.pid; do`,
    // read and kill are the shell's own: no process per pidfile
    '  p=; if [ -r "$f" ] && { read -r p < "$f" || [ -n "$p" ]; } 2>/dev/null && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then pid=$p; [ "$how" = none ] && { running=1; how=pidfile; }; break; fi',
    'done',
    `if [ -z "$pid" ]; then pid=$(pidof -s ${n} 2>/dev/null); [ -n "$pid" ] && [ "$how" = none ] && { running=1; how=pidof; }; fi`,
    'echo "running=$running"; echo "how=$how"; echo "pid=$pid"',
    // enabled: a start link in each of runlevels 2-5 (globs, not ls: no process)
    `enabled=1; for r in 2 3 4 5; do set -- /etc/rc$r.d/S[0-9][0-9]${name}; [ -e "$1" ] || enabled=0; done; echo "enabled=$enabled"`,
  ].join('\n')
}

/** The unit name systemd knows (`keepalived` -> `keepalived.service`). */
export function unitName(name: string): string {
  return /\.(service|socket|timer|target|mount|path)$/.test(name) ? name : `${name}.service`
}

/** The script name SysV knows (`keepalived.service` -> `keepalived`). */
function scriptName(name: string): string {
  return name.replace(/\.service$/, '')
}

/** The probe: for a known init system only its branch, else detection and both branches. */
export function probeScript(name: string, init: InitSystem | undefined): string {
  if (init === 'systemd') return systemdProbe(unitName(name))
  if (init === 'sysv') return sysvProbe(scriptName(name))
  return [
    DETECT,
    'if [ $init = systemd ]; then',
    systemdProbe(unitName(name)),
    'else',
    sysvProbe(scriptName(name)),
    'fi',
  ].join('\n')
}

/** Reads the probe's key=value output. */
export function parseProbe(kv: Record<string, string>): ServiceState {
  if (kv.init === 'systemd') {
    const active = kv.ActiveState ?? 'unknown'
    const file = kv.UnitFileState ?? ''
    const pid = Number(kv.MainPID ?? 0)
    return {
      init: 'systemd',
      exists: kv.LoadState !== undefined && kv.LoadState !== 'not-found',
      running: active === 'active' || active === 'reloading' || active === 'activating',
      enabled:
        file === 'enabled' || file === 'enabled-runtime' || file === 'alias'
          ? true
          : file === 'disabled' || file === 'masked'
            ? false
            : null,
      pid: pid > 0 ? pid : null,
      detail: `${active}/${kv.SubState ?? '?'}`,
    }
  }
  const pid = Number(kv.pid ?? '')
  return {
    init: 'sysv',
    exists: kv.exists === '1',
    running: kv.running === '1',
    enabled: kv.enabled === '1',
    pid: pid > 0 ? pid : null,
    detail: kv.how ?? '',
  }
}

/** The command that starts/stops/restarts/reloads a service. */
export function actionScript(
  init: InitSystem,
  name: string,
  verb: 'start' | 'stop' | 'restart' | 'reload',
): string {
  if (init === 'systemd') return `systemctl ${verb} ${quote(unitName(name))} 2>&1`
  const n = scriptName(name)
  return `if command -v service >/dev/null 2>&1; then service ${quote(n)} ${verb}; else ${quote(`/etc/init.d/${n}`)} ${verb}; fi 2>&1 </dev/null`
}

/** The command that enables or disables a service at boot. */
export function enableScript(init: InitSystem, name: string, enabled: boolean): string {
  if (init === 'systemd')
    return `systemctl ${enabled ? 'enable' : 'disable'} ${quote(unitName(name))} 2>&1`
  const n = quote(scriptName(name))
  if (!enabled) return `update-rc.d ${n} disable 2>&1`
  // `enable` only flips existing links; `defaults` makes them when the package never did.
  return `{ ls /etc/rc[0-6].d/[SK][0-9][0-9]${scriptName(name)} >/dev/null 2>&1 || update-rc.d ${n} defaults; update-rc.d ${n} enable; } 2>&1`
}

/** The service's own last log lines: the journal, or the syslog files a SysV host writes. */
export function logScript(init: InitSystem, name: string, lines = 20): string {
  if (init === 'systemd')
    return `journalctl -u ${quote(unitName(name))} -n ${lines} --no-pager 2>&1`
  const n = quote(scriptName(name))
  return [
    'for f in /var/log/syslog /var/log/daemon.log /var/log/messages; do',
    `  if [ -r "$f" ]; then echo "== $f"; tail -n 2000 "$f" | grep -iF ${n} | tail -n ${lines}; fi`,
    'done',
    `if [ -r /var/log/${scriptName(name)}.log ]; then echo "== /var/log/${scriptName(name)}.log"; tail -n ${lines} /var/log/${scriptName(name)}.log; fi`,
    'true',
  ].join('\n')
}
