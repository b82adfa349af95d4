import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { consoleReporter } from '../../../engine/report/console.ts'
import { emptyCounts } from '../../../engine/report/events.ts'
import { colorsFor } from '../../../engine/report/format.ts'

function stream(tty: boolean): Writable & { text: string; isTTY: boolean; columns: number } {
  const s = new Writable({
    write(chunk: Buffer, _e, cb) {
      s.text += chunk.toString()
      cb()
    },
  }) as Writable & { text: string; isTTY: boolean; columns: number }
  s.text = ''
  s.isTTY = tty
  s.columns = 120
  return s
}

describe('console reporter', () => {
  it('draws a live block of current tasks on a terminal and clears it', async () => {
    const out = stream(true)
    const r = consoleReporter({
      out,
      colors: colorsFor(process.stdout, false),
      live: true,
      diff: false,
    })
    r.sink({ type: 'play_start', play: 'p', hosts: ['kld-vm-1', 'kld-vm-2'] })
    r.sink({ type: 'task_start', play: 'p', task: 'Install keepalived', host: 'kld-vm-1' })
    r.sink({ type: 'task_start', play: 'p', task: 'Install keepalived', host: 'kld-vm-2' })
    r.sink({
      type: 'task_progress',
      task: 'Install keepalived',
      host: 'kld-vm-2',
      message: 'waiting for the dpkg lock',
    })
    await new Promise((res) => setTimeout(res, 300))
    expect(out.text).toMatch(
      /… kld-vm-2 {2}Install keepalived {2}\d+\.\ds {2}waiting for the dpkg lock/,
    )
    r.sink({
      type: 'task_end',
      play: 'p',
      task: 'Install keepalived',
      host: 'kld-vm-1',
      status: 'changed',
      changes: [{ action: 'create', target: 'package keepalived' }],
      duration_ms: 1200,
    })
    expect(out.text).toContain('\x1b[')
    expect(out.text).toMatch(/changed {3}kld-vm-1 {2}Install keepalived \(1\.2s\)/)
    r.sink({
      type: 'summary',
      ok: true,
      mode: 'apply',
      hosts: { 'kld-vm-1': { ...emptyCounts(), changed: 1 } },
      plan: { create: 1, update: 0, delete: 0, run: 0 },
      duration_ms: 1500,
      changed: 1,
      failed: 0,
      unreachable: 0,
    })
    r.close()
    expect(out.text).toMatch(
      /RECAP\n {2}kld-vm-1 {2}ok=0 {2}changed=1 {2}failed=0 {2}skipped=0 {2}unreachable=0/,
    )
  })

  it('prints plain lines without escapes when not a terminal', () => {
    const out = stream(false)
    const r = consoleReporter({
      out,
      colors: colorsFor(out as unknown as NodeJS.WriteStream),
      live: false,
      diff: true,
    })
    r.sink({ type: 'task_start', play: 'p', task: 't', host: 'h' })
    r.sink({ type: 'task_progress', task: 't', host: 'h', message: 'server ACTIVE' })
    r.sink({
      type: 'task_end',
      play: 'p',
      task: 't',
      host: 'h',
      status: 'changed',
      changes: [
        {
          action: 'update',
          target: 'file /etc/x',
          diff: { path: '/etc/x', before: 'a\n', after: 'b\n' },
        },
      ],
      duration_ms: 10,
    })
    r.close()
    expect(out.text).not.toContain('\x1b[')
    expect(out.text).toContain('waiting   h  t: server ACTIVE')
    expect(out.text).toMatch(/-a\n.*\+b/s)
  })

  it('keeps every retry on a terminal with -v, and only the live line without', async () => {
    const retry = (out: ReturnType<typeof stream>, verbose: boolean): void => {
      const r = consoleReporter({
        out,
        colors: colorsFor(out as never, false),
        live: true,
        diff: false,
        verbose,
      })
      r.sink({ type: 'task_start', play: 'p', task: 't', host: 'localhost' })
      for (const n of [2, 3])
        r.sink({
          type: 'task_progress',
          task: 't',
          host: 'localhost',
          message: `Neutron GET /v2.0/ports: retrying (${n}/5) after 503 in 0.3 s`,
        })
      r.close()
    }
    const quiet = stream(true)
    retry(quiet, false)
    expect(quiet.text).not.toContain('retrying')
    const loud = stream(true)
    retry(loud, true)
    expect(loud.text).toContain(
      'waiting   localhost  t: Neutron GET /v2.0/ports: retrying (2/5) after 503',
    )
    expect(loud.text).toContain('retrying (3/5) after 503')
  })
})
