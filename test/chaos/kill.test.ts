/**
 * Chaos: SIGKILL at random points of apply and destroy (real CLI processes, real files), then
 * converge, and count duplicates and leftovers. Rounds: CHAOS_ROUNDS (CI runs a few; run more on
 * request: `CHAOS_ROUNDS=25 npx vitest run test/chaos`).
 */
import { spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'

const BIN = path.resolve('cli/runbook.js')
const ROUNDS = Number(process.env['CHAOS_ROUNDS'] ?? 3)
const FILES = 30

const cli = (dir: string, args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  })

/** Starts the CLI and SIGKILLs it after `ms`; whether it was still running then. */
async function killAfter(dir: string, args: string[], ms: number): Promise<boolean> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: 'ignore' })
  let exited = false
  const done = new Promise<void>((res) => child.once('exit', () => ((exited = true), res())))
  await new Promise((res) => setTimeout(res, ms))
  const killed = !exited
  if (killed) child.kill('SIGKILL')
  await done
  return killed
}

function project(): { dir: string; out: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-chaos-'))
  const out = path.join(dir, 'host')
  mkdirSync(out)
  writeFileSync(
    path.join(dir, 'runbook.yaml'),
    `plays:\n  - hosts: localhost\n    tasks:\n      - name: files\n        copy: { dest: "${out}/f{{item}}.conf", content: "n {{item}}\\n" }\n        loop: [${Array.from({ length: FILES }, (_, i) => i).join(', ')}]\n`,
  )
  return { dir, out }
}

/** Journal records, duplicates among them, and stray files next to the journal. */
function journalState(dir: string): { records: number; duplicates: number; strays: string[] } {
  const root = path.join(dir, '.runbook')
  const state = readdirSync(root).map((d) => path.join(root, d))[0] ?? root
  const j = JSON.parse(readFileSync(path.join(state, 'journal.json'), 'utf8')) as {
    resources: { module: string; type: string; id: string; host: string }[]
  }
  const keys = j.resources.map((r) => `${r.module} ${r.type} ${r.id} ${r.host}`)
  return {
    records: keys.length,
    duplicates: keys.length - new Set(keys).size,
    strays: readdirSync(state).filter((n) => n.startsWith('.journal.json.')),
  }
}

describe('chaos: SIGKILL during apply and destroy', () => {
  it(
    `${ROUNDS} rounds: converges with no duplicate, no leftover, no stray file`,
    async () => {
      const { dir, out } = project()
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
      // a first, plain apply shows how long one takes: kills land inside that window
      const t0 = Date.now()
      expect(cli(dir, ['apply', 'runbook.yaml']).status).toBe(0)
      const window = Math.max(300, Date.now() - t0)
      expect(cli(dir, ['destroy', 'runbook.yaml', '--auto-approve']).status).toBe(0)
      let kills = 0
      for (let round = 0; round < ROUNDS; round++) {
        if (await killAfter(dir, ['apply', 'runbook.yaml'], 150 + Math.random() * window)) kills++
        const converge = cli(dir, ['apply', 'runbook.yaml'])
        expect(converge.status, converge.stdout + converge.stderr).toBe(0)
        const s = journalState(dir)
        expect(s).toEqual({ records: FILES, duplicates: 0, strays: [] })
        if (
          await killAfter(
            dir,
            ['destroy', 'runbook.yaml', '--auto-approve'],
            150 + Math.random() * window,
          )
        )
          kills++
        const d = cli(dir, ['destroy', 'runbook.yaml', '--auto-approve'])
        expect(d.status, d.stdout + d.stderr).toBe(0)
        expect(readdirSync(out)).toEqual([])
        expect(journalState(dir)).toEqual({ records: 0, duplicates: 0, strays: [] })
      }
      console.log(`chaos: ${ROUNDS} rounds, ${kills} kills landed mid-run`)
      expect(existsSync(out)).toBe(true)
    },
    60_000 + ROUNDS * 30_000,
  )
})
