import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConnectionPool } from '../../../engine/connection/pool.ts'
import { expandProxyCommand } from '../../../engine/connection/transport.ts'
import {
  hostPatternsMatch,
  loadSshConfig,
  lookupSshConfig,
  parseJumpSpec,
  parseProxyJump,
  parseSshConfig,
} from '../../../engine/connection/ssh-config.ts'

const config = `
# global options come first and apply to every host
ConnectTimeout 7

Host bastion
  HostName 198.51.100.130
  User admin
  Port=2222
  IdentityFile ~/.ssh/bastion_key

Host web* !web-old
  User debian
  ProxyJump bastion
  IdentityFile "/keys/%h key"
  IdentityFile /keys/second

Match host web1
  User nobody-should-see-this

Host web1
  HostName 192.0.2.11
  User ignored-because-first-wins
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/kh1 /etc/kh2

Host deep
  HostName 192.0.2.40
  ProxyJump admin@outer:2200,inner

Host *
  User fallback
  ServerAliveInterval 5
`

describe('parseSshConfig + lookupSshConfig', () => {
  const blocks = parseSshConfig(config)

  it('takes the first value of each keyword, accumulates IdentityFile', () => {
    const web1 = lookupSshConfig(blocks, 'web1')
    expect(web1.user).toBe('debian')
    expect(web1.hostName).toBe('192.0.2.11')
    expect(web1.proxyJump).toBe('bastion')
    expect(web1.identityFiles).toEqual(['/keys/192.0.2.11 key', '/keys/second'])
    expect(web1.connectTimeoutMs).toBe(7000)
    expect(web1.serverAliveIntervalMs).toBe(5000)
    expect(web1.strictHostKeyChecking).toBe('accept-new')
    expect(web1.userKnownHostsFiles).toEqual([path.join(os.homedir(), 'kh1'), '/etc/kh2'])
  })

  it('honours negated patterns and Key=value', () => {
    const old = lookupSshConfig(blocks, 'web-old')
    expect(old.user).toBe('fallback')
    expect(old.proxyJump).toBeUndefined()
    const bastion = lookupSshConfig(blocks, 'bastion')
    expect(bastion).toMatchObject({ hostName: '198.51.100.130', user: 'admin', port: 2222 })
    expect(bastion.identityFiles).toEqual([path.join(os.homedir(), '.ssh/bastion_key')])
  })

  it('matches patterns as OpenSSH does', () => {
    expect(hostPatternsMatch(['*'], 'x')).toBe(true)
    expect(hostPatternsMatch(['192.0.2.?'], '192.0.2.1')).toBe(true)
    expect(hostPatternsMatch(['192.0.2.?'], '192.0.2.11')).toBe(false)
    expect(hostPatternsMatch(['!a', 'b'], 'a')).toBe(false)
    expect(hostPatternsMatch(['!a'], 'b')).toBe(false)
  })
})

describe('parseProxyJump', () => {
  it.each([
    ['none', []],
    ['bastion', [{ user: undefined, host: 'bastion' }]],
    [
      'admin@bastion:2222,inner',
      [
        { user: 'admin', host: 'bastion', port: 2222 },
        { user: undefined, host: 'inner' },
      ],
    ],
    ['ssh://u@h:22', [{ user: 'u', host: 'h', port: 22 }]],
  ])('%s', (value, hops) => {
    expect(parseProxyJump(value)).toEqual(hops)
  })

  it('reads IPv6 with a port', () => {
    expect(parseJumpSpec('u@[2001:db8::1]:2200')).toEqual({
      user: 'u',
      host: '2001:db8::1',
      port: 2200,
    })
  })
})

describe('ConnectionPool.resolve', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rbt-sshcfg-'))
  const file = path.join(dir, 'config')
  writeFileSync(file, config)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const pool = new ConnectionPool({
    sshConfigFile: file,
    defaults: { projectKnownHosts: '/proj/known_hosts', agent: false },
    resolveHost: (name) =>
      name === 'jump'
        ? { address: '198.51.100.130', user: 'root', privateKey: '/keys/jump' }
        : name === 'jump2'
          ? { address: '192.0.2.2', user: 'ops', via: 'jump' }
          : undefined,
  })
  const hops = async (name: string, settings: Parameters<ConnectionPool['resolve']>[1]) =>
    (await pool.resolve(name, settings)).map((e) => `${e.label}=${e.user}@${e.address}:${e.port}`)

  it('applies ~/.ssh/config under the settings: HostName, User, ProxyJump, IdentityFile', async () => {
    const chain = await pool.resolve('web1', { address: 'web1' })
    expect(chain.map((e) => `${e.label}=${e.user}@${e.address}:${e.port}`)).toEqual([
      'bastion=admin@198.51.100.130:2222',
      'web1=debian@192.0.2.11:22',
    ])
    expect(chain[1]!.privateKeys).toEqual(['/keys/192.0.2.11 key', '/keys/second'])
    expect(chain[1]!.hostKeyChecking).toBe('accept-new')
    expect(chain[1]!.projectKnownHosts).toBe('/proj/known_hosts')
  })

  it('lets the settings win over the ssh config', async () => {
    expect(await hops('web1', { address: 'web1', user: 'me', via: 'none' })).toEqual([
      'web1=me@192.0.2.11:22',
    ])
  })

  it('follows a ProxyJump list; a hop without user@ takes its user from its own Host block', async () => {
    expect(await hops('deep', { address: 'deep', user: 'u' })).toEqual([
      'admin@outer:2200=admin@outer:2200',
      'inner=fallback@inner:22',
      'deep=u@192.0.2.40:22',
    ])
  })

  it('resolves via by inventory name, recursively for a single name and literally for a list', async () => {
    expect(await hops('db', { address: '192.0.2.30', user: 'u', via: 'jump2' })).toEqual([
      'jump=root@198.51.100.130:22',
      'jump2=ops@192.0.2.2:22',
      'db=u@192.0.2.30:22',
    ])
    expect(await hops('db', { address: '192.0.2.30', user: 'u', via: ['jump', 'jump2'] })).toEqual([
      'jump=root@198.51.100.130:22',
      'jump2=ops@192.0.2.2:22',
      'db=u@192.0.2.30:22',
    ])
    expect(await hops('db', { address: '192.0.2.30', user: 'u', via: ['jump2'] })).toEqual([
      'jump2=ops@192.0.2.2:22',
      'db=u@192.0.2.30:22',
    ])
  })

  it('takes inline jump settings and user@host:port hops', async () => {
    expect(
      await hops('db', {
        address: '192.0.2.30',
        user: 'u',
        via: [{ name: 'j', address: '198.51.100.140', user: 'x' }, 'y@192.0.2.1:2022'],
      }),
    ).toEqual(['j=x@198.51.100.140:22', 'y@192.0.2.1:2022=y@192.0.2.1:2022', 'db=u@192.0.2.30:22'])
  })

  it('refuses a loop', async () => {
    const loop = new ConnectionPool({
      sshConfigFile: false,
      resolveHost: (n) => ({ address: n, via: n === 'a' ? 'b' : 'a' }),
    })
    await expect(loop.resolve('a', { address: 'a', via: 'b' })).rejects.toThrow(/loop: a -> b -> a/)
  })

  it('checks pinned keys when settings are resolved', async () => {
    await expect(
      pool.resolve('x', { address: '192.0.2.9', pinnedHostKeys: ['nonsense'] }),
    ).rejects.toThrow(/pinned host key/)
  })
})

describe('Include', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rb-sshinc-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const write = (name: string, text: string): string => {
    const f = path.join(dir, name)
    mkdirSync(path.dirname(f), { recursive: true })
    writeFileSync(f, text)
    return f
  }

  it('reads included files in lexical order, relative to the config, with globs; the first value still wins', async () => {
    write('conf.d/20-web.conf', 'Host web1\n  HostName 192.0.2.21\n  User second-file\n')
    write('conf.d/10-web.conf', 'Host web1\n  User first-file\n')
    write('conf.d/.hidden.conf', 'Host web1\n  Port 2299\n')
    write('conf.d/notes.txt', 'Host web1\n  Port 2200\n')
    const main = write(
      'config',
      'Include conf.d/*.conf\nHost web1\n  User after-include\n  Port 2222\n',
    )
    const web1 = lookupSshConfig(await loadSshConfig(main), 'web1')
    expect([web1.user, web1.hostName, web1.port]).toEqual(['first-file', '192.0.2.21', 2222])
  })

  it('an Include inside a Host block applies to that block’s hosts only; the lines after it stay in the block', async () => {
    write('bastion.conf', 'User jumpuser\nHost inner*\n  ProxyJump bastion\n')
    const main = write(
      'config2',
      'Host bastion\n  HostName 198.51.100.130\n  Include bastion.conf\n  Port 2200\nHost *\n  User everyone\n',
    )
    const blocks = await loadSshConfig(main)
    expect(lookupSshConfig(blocks, 'bastion')).toMatchObject({
      user: 'jumpuser',
      hostName: '198.51.100.130',
      port: 2200,
    })
    // inner1 is not `bastion`, so the Include (and the Host block inside it) does not apply
    const inner = lookupSshConfig(blocks, 'inner1')
    expect([inner.user, inner.proxyJump, inner.port]).toEqual(['everyone', undefined, undefined])
  })

  it('an absolute path, several files on one line, a missing file, and a file that includes itself', async () => {
    const a = write('abs/a.conf', 'Host a\n  User ua\n')
    write('abs/b.conf', 'Host b\n  User ub\n')
    const loop = write('loop.conf', 'Include loop.conf\nHost loop\n  User looped\n')
    const main = write(
      'config3',
      `Include ${a} ${path.join(dir, 'abs', 'b.conf')} ${path.join(dir, 'nope', '*.conf')}\nInclude ${loop}\n`,
    )
    const blocks = await loadSshConfig(main)
    expect([
      lookupSshConfig(blocks, 'a').user,
      lookupSshConfig(blocks, 'b').user,
      lookupSshConfig(blocks, 'loop').user,
    ]).toEqual(['ua', 'ub', 'looped'])
  })
})

describe('ProxyCommand', () => {
  it('keeps the rest of the line as written; the first of ProxyCommand and ProxyJump wins; none unsets', () => {
    const blocks = parseSshConfig(
      [
        'Host pc',
        '  ProxyCommand ssh -W "%h:%p" -o "ProxyJump none"   bastion',
        '  ProxyJump ignored',
        'Host pj',
        '  ProxyJump bastion',
        '  ProxyCommand ignored %h',
        'Host off',
        '  ProxyCommand none',
        'Host *',
        '  ProxyCommand nc %h %p',
        '',
      ].join('\n'),
    )
    const pc = lookupSshConfig(blocks, 'pc')
    expect([pc.proxyCommand, pc.proxyJump]).toEqual([
      'ssh -W "%h:%p" -o "ProxyJump none"   bastion',
      undefined,
    ])
    const pj = lookupSshConfig(blocks, 'pj')
    expect([pj.proxyJump, pj.proxyCommand]).toEqual(['bastion', undefined])
    expect(lookupSshConfig(blocks, 'off').proxyCommand).toBeUndefined()
    expect(lookupSshConfig(blocks, 'other').proxyCommand).toBe('nc %h %p')
  })

  it('expands %h %p %r %n and %%', () => {
    expect(
      expandProxyCommand('connect %r@%h:%p for %n at 100%%', {
        address: '192.0.2.11',
        port: 2222,
        user: 'debian',
        label: 'kld-vm-1',
      }),
    ).toBe('connect debian@192.0.2.11:2222 for kld-vm-1 at 100%')
  })
})

describe('Match', () => {
  const blocks = parseSshConfig(
    [
      'Host web1',
      '  HostName 192.0.2.11',
      'Match originalhost web1 user debian',
      '  Port 2201',
      'Match host 192.0.2.*,!192.0.2.99',
      '  User debian',
      '  IdentityFile /keys/lab',
      'Match user debian !localuser nobody-here',
      '  ProxyJump bastion',
      'Match exec "test %h = 192.0.2.12"',
      '  Port 2212',
      'Match tagged x',
      '  User never',
      'Match all',
      '  ConnectTimeout 9',
      '',
    ].join('\n'),
  )

  it('host matches the HostName found so far, originalhost the name given; user sees the user so far', () => {
    const web1 = lookupSshConfig(blocks, 'web1')
    // `user debian` does not hold yet where that Match stands (no User so far): no Port 2201
    expect([
      web1.hostName,
      web1.user,
      web1.identityFiles,
      web1.proxyJump,
      web1.connectTimeoutMs,
      web1.port,
    ]).toEqual(['192.0.2.11', 'debian', ['/keys/lab'], 'bastion', 9000, undefined])
    const other = lookupSshConfig(blocks, '192.0.2.99')
    expect([other.user, other.proxyJump, other.connectTimeoutMs]).toEqual([
      undefined,
      undefined,
      9000,
    ])
  })

  it('runs exec criteria with the tokens expanded; an unknown criterion skips the block', () => {
    expect(lookupSshConfig(blocks, '192.0.2.12').port).toBe(2212)
    expect(lookupSshConfig(blocks, '192.0.2.13').port).toBeUndefined()
    expect(lookupSshConfig(blocks, '192.0.2.13').user).toBe('debian')
  })

  it('an Include inside a Match block applies only when the Match holds', () => {
    const inc = parseSshConfig('Match host 198.51.100.*\n  Include extra.conf\n', (arg) =>
      arg === 'extra.conf' ? [['extra.conf', 'User from-include\n']] : [],
    )
    expect(lookupSshConfig(inc, '198.51.100.7').user).toBe('from-include')
    expect(lookupSshConfig(inc, '192.0.2.7').user).toBeUndefined()
  })
})
