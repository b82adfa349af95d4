import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { resolveRunbookName } from '../../../engine/cli/runbook-name.ts'

describe('resolveRunbookName', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rbt-name-'))
  mkdirSync(path.join(dir, 'runbooks'))
  writeFileSync(path.join(dir, 'runbooks', 'vip-keepalived.yaml'), 'plays: []\n')
  writeFileSync(path.join(dir, 'runbooks', 'lvs-dr.yml'), 'plays: []\n')
  writeFileSync(path.join(dir, 'here.yaml'), 'plays: []\n')
  writeFileSync(path.join(dir, 'vip-keepalived.yaml.plan'), '{}\n')
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it.each([
    ['vip-keepalived.yaml', 'runbooks/vip-keepalived.yaml', true],
    ['vip-keepalived', 'runbooks/vip-keepalived.yaml', true],
    ['lvs-dr', 'runbooks/lvs-dr.yml', true],
    ['here.yaml', 'here.yaml', false], // a file here wins
    ['vip-keepalived.yaml.plan', 'vip-keepalived.yaml.plan', false], // a saved plan is a file
    ['runbooks/vip-keepalived.yaml', 'runbooks/vip-keepalived.yaml', false],
    ['other/vip-keepalived.yaml', 'other/vip-keepalived.yaml', false], // a path is never looked up
    ['missing.yaml', 'missing.yaml', false], // left for the loader's "not found"
  ])('%s -> %s (picked: %s)', (given, file, picked) => {
    expect(resolveRunbookName(given, dir)).toEqual({ file, picked })
  })
})
