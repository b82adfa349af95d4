/**
 * The IPVS table as `ipvsadm -Ln` prints it, read on a director: which real servers a virtual
 * service forwards to, with their forwarding method and weight.
 */
import { quote } from '../../../engine/connection/shell.ts'

/** One real server of a virtual service. */
export interface IpvsReal {
  address: string
  port: number
  /** `Route` (DR), `Masq` (NAT), `Tunnel`, `Local`. */
  forward: string
  weight: number
}

/** A virtual service and its real servers. */
export interface IpvsService {
  protocol: string
  address: string
  port: number
  scheduler: string
  reals: IpvsReal[]
}

const SERVICE = /^(TCP|UDP|SCTP)\s+([\d.]+):(\d+)\s+(\S+)/
const REAL = /^\s+->\s+([\d.]+):(\d+)\s+(\S+)\s+(\d+)/

/**
 * Parses `ipvsadm -Ln` (the header lines are skipped).
 * @example parseIpvsadm('TCP  192.0.2.200:80 rr\n  -> 192.0.2.51:80  Route 1 0 0\n')[0]?.reals.length // 1
 */
export function parseIpvsadm(text: string): IpvsService[] {
  const out: IpvsService[] = []
  for (const line of text.split('\n')) {
    const s = SERVICE.exec(line)
    if (s) {
      out.push({
        protocol: s[1] ?? 'TCP',
        address: s[2] ?? '',
        port: Number(s[3]),
        scheduler: s[4] ?? '',
        reals: [],
      })
      continue
    }
    const r = REAL.exec(line)
    const current = out[out.length - 1]
    if (r && current)
      current.reals.push({
        address: r[1] ?? '',
        port: Number(r[2]),
        forward: r[3] ?? '',
        weight: Number(r[4]),
      })
  }
  return out
}

/** The command that lists one virtual service (needs root). */
export function ipvsadmScript(address: string, port: number): string {
  return [
    'command -v ipvsadm >/dev/null 2>&1 || { echo "ipvsadm is not installed on this host" >&2; exit 127; }',
    `ipvsadm -Ln -t ${quote(`${address}:${port}`)}`,
  ].join('\n')
}
