import { describe, expect, it } from 'vitest'
import { hostAddress, interfaceName, macAddress } from '../../engine/values.ts'

const ok = (s: { safeParse: (v: unknown) => { success: boolean } }, v: unknown): boolean =>
  s.safeParse(v).success

describe('value validators', () => {
  it('macAddress: six colon-separated hex pairs, nothing else', () => {
    for (const v of ['fa:16:3e:00:00:01', 'FA:16:3E:AB:CD:EF']) expect(ok(macAddress, v)).toBe(true)
    for (const v of [
      'fa:16:3e:zz:00:01',
      'fa-16-3e-00-00-01',
      'fa:16:3e:00:00',
      '',
      'fa163e000001',
    ])
      expect(ok(macAddress, v), v).toBe(false)
  })

  it('hostAddress: addresses and DNS names, never a mistyped dotted quad', () => {
    for (const v of ['192.0.2.10', '2001:db8::1', 'db1.example.org', 'localhost', 'web-1.'])
      expect(ok(hostAddress, v), v).toBe(true)
    for (const v of ['192.0.2.256', '10.0.0', '1.2.3.4.5', 'a b', '-web', 'web_1.example', ''])
      expect(ok(hostAddress, v), v).toBe(false)
  })

  it("interfaceName: the kernel's rule (1-15 chars, no space, / or :)", () => {
    for (const v of ['lo', 'eth0', 'ens3.100', 'br-lab', 'a234567890abcde'])
      expect(ok(interfaceName, v), v).toBe(true)
    for (const v of ['eth 0', 'a/b', 'eth0:1', '.', '..', '', 'a234567890abcdef'])
      expect(ok(interfaceName, v), v).toBe(false)
  })

  it('names the value in the message', () => {
    const r = macAddress.safeParse('nope')
    expect(r.success).toBe(false)
    expect(r.error?.issues[0]?.message).toMatch(/'nope' is not a MAC address/)
  })
})
