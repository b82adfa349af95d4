import { describe, expect, it } from 'vitest'
import { LocalConnection } from '../../../engine/connection/local.ts'
import { FACTS_SCRIPT, facts, parseFacts, type HostFacts } from '../../../modules/host/facts.ts'
import { CountingConnection } from './harness.ts'

const SAMPLE = [
  '@@rb:addr',
  JSON.stringify([
    {
      ifindex: 1,
      ifname: 'lo',
      mtu: 65536,
      operstate: 'UNKNOWN',
      address: '00:00:00:00:00:00',
      addr_info: [
        { family: 'inet', local: '127.0.0.1', prefixlen: 8 },
        { family: 'inet6', local: '::1', prefixlen: 128 },
      ],
    },
    {
      ifindex: 2,
      ifname: 'ens3',
      mtu: 1500,
      operstate: 'UP',
      address: 'fa:16:3e:11:22:33',
      addr_info: [
        { family: 'inet', local: '192.0.2.11', prefixlen: 24 },
        { family: 'inet', local: '192.0.2.254', prefixlen: 24 },
      ],
    },
  ]),
  '@@rb:route',
  JSON.stringify([
    {
      dst: 'default',
      gateway: '192.0.2.1',
      dev: 'ens3',
      protocol: 'dhcp',
      prefsrc: '192.0.2.11',
      metric: 100,
      flags: [],
    },
  ]),
  '@@rb:os',
  'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu',
  '@@rb:env',
  'hostname=kld-vm-1\nfqdn=\nkernel=5.15.0-101-generic\narch=x86_64\ninit=systemd\npkg_mgr=apt-get',
].join('\n')

describe('facts', () => {
  it('reads the seed’s `ip route | grep default` answer and the interfaces', () => {
    const f: HostFacts = parseFacts(SAMPLE)
    expect(f.default_ipv4).toEqual({
      interface: 'ens3',
      address: '192.0.2.11',
      gateway: '192.0.2.1',
      prefix: 24,
      mac: 'fa:16:3e:11:22:33',
    })
    expect(f.interfaces.ens3?.ipv4.map((a) => a.address)).toEqual(['192.0.2.11', '192.0.2.254'])
    expect(f.all_ipv4_addresses).toEqual(['192.0.2.11', '192.0.2.254'])
    expect([
      f.hostname,
      f.fqdn,
      f.os.id,
      f.os.version_id,
      f.os.codename,
      f.init,
      f.pkg_mgr,
    ]).toEqual(['kld-vm-1', 'kld-vm-1', 'ubuntu', '22.04', 'jammy', 'systemd', 'apt'])
  })

  it('without prefsrc, the address in the gateway’s subnet', () => {
    const f = parseFacts(
      SAMPLE.replace('"prefsrc":"192.0.2.11",', '').replace(
        '"local":"192.0.2.11","prefixlen":24',
        '"local":"198.51.100.7","prefixlen":32',
      ),
    )
    expect(f.default_ipv4?.address).toBe('192.0.2.254')
  })

  it('no default route: null', () => {
    expect(
      parseFacts(SAMPLE.replace(/@@rb:route\n.*\n/, '@@rb:route\n[]\n')).default_ipv4,
    ).toBeNull()
  })

  it('plans nothing and hands the facts to the host variables under `facts`', () => {
    const f = parseFacts(SAMPLE)
    const p = facts.params.parse({})
    expect(facts.plan(p, f)).toEqual([])
    expect(facts.facts?.(p, f)).toEqual({ facts: f })
  })

  it('one round trip on this machine', async () => {
    const conn = new CountingConnection(new LocalConnection('localhost'))
    const r = await conn.exec(FACTS_SCRIPT)
    expect(parseFacts(r.stdout).interfaces.lo).toBeDefined()
    expect(conn.trips).toBe(1)
  })
})
