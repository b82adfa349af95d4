/**
 * The change model, after Terraform's: an action that is also what it prints, and before/after.
 */

/** What a change does. */
export type Action = 'create' | 'update' | 'delete' | 'replace' | 'run'

/** How each action prints in a plan. */
export const ACTION_SYMBOL: Record<Action, string> = {
  create: '+',
  update: '~',
  delete: '-',
  replace: '-/+',
  run: '!',
}

/** A text diff of one file's content, rendered as a unified diff. */
export interface ContentDiff {
  path: string
  before: string
  after: string
}

/**
 * A change's machine-readable identity: a kind the module defines and the thing's name.
 * @example { kind: 'file', name: '/etc/sysctl.d/99-runbook.conf' }
 */
export interface ChangeKey {
  kind: string
  name: string
}

/**
 * One thing a task would change on one host.
 * @example { action: 'create', target: 'package keepalived', key: { kind: 'package', name: 'keepalived' } }
 */
export interface Change {
  action: Action
  /** What changes, for humans: `file /etc/keepalived/keepalived.conf`, `package keepalived`. */
  target: string
  /** What changes, for the module's `apply`: it switches on this, never on `target`'s text. */
  key?: ChangeKey
  /** The attributes that change, before and after (values may be Unknown). */
  before?: unknown
  after?: unknown
  /** For file contents: shown as a unified diff. */
  diff?: ContentDiff
  /** A short note, e.g. why a command runs. */
  note?: string
}

/** A change attributed to its play, task and host: what a run plans, printed and saved. */
export interface PlannedChange {
  play: string
  task: string
  host: string
  change: Change
  deferred: boolean
  /** Planned by a check (Module.verifies): runs on apply, changes nothing. */
  check: boolean
}

/** Counts of a plan's changes, for `Plan: N to create, M to change, K to destroy, R to run.` */
export interface PlanCounts {
  create: number
  update: number
  delete: number
  run: number
}

/** Adds up the actions of a list of changes (a replace counts as one create and one destroy). */
export function countChanges(changes: readonly Change[]): PlanCounts {
  const c: PlanCounts = { create: 0, update: 0, delete: 0, run: 0 }
  for (const ch of changes) {
    if (ch.action === 'replace') {
      c.create++
      c.delete++
    } else c[ch.action]++
  }
  return c
}
