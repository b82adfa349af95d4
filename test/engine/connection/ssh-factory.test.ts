import { describe, expect, it } from 'vitest'
import { settingsFromVars, sshConnectionFactory } from '../../../engine/connection/ssh-factory.ts'
import { ED25519 } from './keys.ts'

describe('settingsFromVars', () => {
  it('reads the engine names and Ansible names', () => {
    expect(
      settingsFromVars('web1', {
        ansible_host: '192.0.2.11',
        ansible_user: 'debian',
        ansible_port: '2222',
        via: 'jump',
        ansible_become_pass: 's3cret',
        other: 1,
      }),
    ).toMatchObject({
      address: '192.0.2.11',
      user: 'debian',
      port: 2222,
      via: 'jump',
      becomePassword: 's3cret',
    })
    expect(settingsFromVars('web1', {}).address).toBe('web1')
    expect(
      settingsFromVars('web1', { host_key_checking: false, connect_timeout: 3 }),
    ).toMatchObject({ hostKeyChecking: 'off', connectTimeoutMs: 3000 })
  })

  it('takes pins as strings, objects or a whole console log', () => {
    const log = `-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 ${ED25519.sha256} root@vm (ED25519)\n-----END SSH HOST KEY FINGERPRINTS-----`
    expect(settingsFromVars('vm', { pinned_host_keys: log }).pinnedHostKeys).toEqual([
      { type: 'ssh-ed25519', fingerprint: ED25519.sha256 },
    ])
    expect(settingsFromVars('vm', { pinned_host_keys: [ED25519.sha256] }).pinnedHostKeys).toEqual([
      ED25519.sha256,
    ])
  })

  it('names the variable that is wrong', () => {
    expect(() => settingsFromVars('web1', { ansible_port: 'http' })).toThrow(
      /host web1: connection variable 'ansible_port'/,
    )
  })

  it('takes a proxy_command, but not beside via', () => {
    expect(settingsFromVars('web1', { proxy_command: 'ssh -W %h:%p bastion' }).proxyCommand).toBe(
      'ssh -W %h:%p bastion',
    )
    expect(() => settingsFromVars('web1', { proxy_command: 'nc %h %p', via: 'jump' })).toThrow(
      "host web1: give either 'via' or 'proxy_command', not both",
    )
  })
})

describe('sshConnectionFactory', () => {
  it('gives local hosts a local connection, once', async () => {
    const factory = sshConnectionFactory({ sshConfigFile: false })
    const a = await factory.get('localhost', () => ({}))
    expect(a.kind).toBe('local')
    expect(await factory.get('localhost', () => ({}))).toBe(a)
    await factory.closeAll()
  })

  it('refuses an SSH host it cannot reach with a connection error', async () => {
    const factory = sshConnectionFactory({ sshConfigFile: false })
    const vars = {
      ansible_host: '127.0.0.1',
      ansible_port: 1,
      connect_timeout: 2,
      ssh_agent: false as const,
      private_key: [],
    }
    await expect(factory.get('nowhere', () => vars)).rejects.toMatchObject({
      code: 'E_CONNECTION',
      host: 'nowhere',
    })
    await factory.closeAll()
  })
})
