/**
 * A loaded runbook: plays, tasks and blocks, each remembering where it came from in the source.
 */
import type { YamlPath } from './source.ts'

/** Keywords shared by tasks and blocks. */
export interface Common {
  /** File and path of the node in its YAML source. */
  file: string
  path: YamlPath
  /** The import_tasks entries this step came through, outermost first (`file#path`), if any. */
  via?: string | undefined
  /** The directory of the role this step belongs to: relative `src` files are looked up there first. */
  roleDir?: string | undefined
  name: string
  when: (string | boolean)[]
  tags: string[]
  become?: boolean | undefined
  becomeUser?: string | undefined
  vars: Record<string, unknown>
  ignoreErrors: boolean
  delegateTo?: string | undefined
  runOnce: boolean
  noLog: boolean
  checkMode?: boolean | undefined
}

/** One module call. */
export interface Task extends Common {
  kind: 'task'
  module: string
  /** Raw (unrendered) parameters. */
  args: Record<string, unknown>
  register?: string | undefined
  loop?: unknown
  loopVar: string
  indexVar?: string | undefined
  loopLabel?: string | undefined
  notify: string[]
  retries?: number | undefined
  until?: string | undefined
  delay: number
  changedWhen: (string | boolean)[]
  failedWhen: (string | boolean)[]
  timeout?: number | undefined
  /** Handlers only: topics this handler answers to (its name is always one). */
  listen: string[]
}

/** block / rescue / always. */
export interface Block extends Common {
  kind: 'block'
  block: Step[]
  rescue: Step[]
  always: Step[]
}

/** A task or a block. */
export type Step = Task | Block

/** One play: a set of hosts and what to do on them. */
export interface Play {
  file: string
  path: YamlPath
  name: string
  hosts: string
  vars: Record<string, unknown>
  become: boolean
  becomeUser?: string | undefined
  gatherFacts: boolean
  tags: string[]
  forks?: number | undefined
  /** The roles' defaults: the lowest-precedence variables of the play. */
  defaults: Record<string, unknown>
  tasks: Step[]
  handlers: Task[]
}

/** A whole runbook. */
export interface Runbook {
  file: string
  name: string
  description?: string | undefined
  vars: Record<string, unknown>
  inventory?: string | undefined
  /** Directories outside the runbook's tree that sources may come from (`allow_sources`). */
  allowSources?: string[] | undefined
  plays: Play[]
}
