/**
 * The runbook language's keywords, as zod schemas: the loader checks runbooks with them, and the
 * JSON Schema for editors is generated from them plus each module's parameter schema.
 */
import { z } from 'zod'

const strOrList = z.union([z.string(), z.array(z.string())])
const condition = z.union([z.string(), z.boolean(), z.array(z.union([z.string(), z.boolean()]))])

/** Keywords a task (or block) may carry besides its module. */
export const taskKeywords = {
  name: z.string().min(1).describe('What the task does, shown in plans and reports'),
  register: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name')
    .describe('Keep the result in this variable'),
  when: condition.describe('Run only when this condition holds (a list means all of them)'),
  loop: z
    .union([z.string(), z.array(z.unknown())])
    .describe('Run once per item; the item is `item`'),
  with_items: z.union([z.string(), z.array(z.unknown())]).describe('Ansible spelling of loop'),
  loop_control: z.strictObject({
    loop_var: z.string().optional(),
    index_var: z.string().optional(),
    label: z.string().optional(),
  }),
  notify: strOrList.describe(
    'Handlers to run at the end of the play when this task changes something',
  ),
  tags: strOrList.describe('Select with --tags / --skip-tags'),
  become: z.boolean().describe('Run with sudo'),
  become_user: z.string().min(1),
  retries: z.number().int().min(0).describe('Retry up to this many times until `until` holds'),
  until: z.string().describe('Condition that ends the retries'),
  delay: z.number().min(0).describe('Seconds between retries'),
  delegate_to: z.string().describe("Run on this host instead, with the current host's variables"),
  run_once: z.boolean().describe('Run for the first host of the play only'),
  ignore_errors: z.boolean(),
  changed_when: condition,
  failed_when: condition,
  check_mode: z.boolean().describe('false: run even during plan/--check (for read-only commands)'),
  no_log: z.boolean().describe("Hide this task's parameters and results in every output"),
  vars: z.record(z.string(), z.unknown()),
  timeout: z.number().positive().describe('Fail the task after this many seconds'),
  listen: strOrList.describe('Handlers only: topics this handler answers to'),
  import_role: z
    .strictObject({
      name: z
        .string()
        .describe(
          'The role: roles/NAME beside the runbook (tasks/, handlers/, defaults/, vars/, templates/, files/)',
        ),
    })
    .describe(
      "A role's tasks put here at load time (its handlers join the play's, its defaults the lowest variables); name, when, tags, vars and become here apply to them all",
    ),
  import_tasks: z
    .string()
    .describe(
      'Tasks from another YAML file (a list of tasks; path relative to this file), put here at load time; name, when, tags, vars and become here apply to them all',
    ),
} as const

/** The keywords an `import_tasks` entry may carry beside the file name. */
export const IMPORT_TASKS_KEYS: ReadonlySet<string> = new Set([
  'import_tasks',
  'import_role',
  'name',
  'when',
  'tags',
  'vars',
  'become',
  'become_user',
])

/** An entry of a play's `roles`: a name, or the name with vars, when and tags for all its tasks. */
export const roleEntry = z.union([
  z.string(),
  z.strictObject({
    role: z.string(),
    vars: z.record(z.string(), z.unknown()).optional(),
    when: condition.optional(),
    tags: strOrList.optional(),
    become: z.boolean().optional(),
  }),
])

/** Keys that make a task a block. */
export const blockKeys = ['block', 'rescue', 'always'] as const

/** Keywords a play may carry. */
export const playKeywords = {
  name: z.string(),
  hosts: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .describe('Host pattern: `all`, a group, names, `a:b`, `a:!b`, `web*`'),
  vars: z.record(z.string(), z.unknown()),
  become: z.boolean(),
  become_user: z.string().min(1),
  gather_facts: z.boolean().describe('Run the facts module first on every host'),
  tags: strOrList,
  roles: z
    .array(roleEntry)
    .describe(
      "Roles whose tasks run before the play's tasks, in order (roles/NAME beside the runbook)",
    ),
  tasks: z.array(z.unknown()),
  handlers: z.array(z.unknown()),
  forks: z.number().int().positive(),
} as const

/** An entry of `plays` that brings in the plays of another runbook file. */
export const importPlaybookKeywords = {
  import_playbook: z
    .string()
    .describe('Another runbook file (path relative to this one) whose plays run here, in order'),
  name: z.string(),
} as const

/** Keywords at the top of a runbook file. */
export const runbookKeywords = {
  name: z.string(),
  description: z.string(),
  vars: z.record(z.string(), z.unknown()),
  inventory: z.string().describe('Default inventory file, relative to the runbook'),
  allow_sources: z
    .array(z.string())
    .describe(
      "Directories outside the runbook's own tree that copy/template/import sources may come from",
    ),
  plays: z.array(z.unknown()),
} as const

/** The set of task keyword names. */
export const TASK_KEYS: ReadonlySet<string> = new Set([...Object.keys(taskKeywords), ...blockKeys])
/** The set of play keyword names. */
export const PLAY_KEYS: ReadonlySet<string> = new Set(Object.keys(playKeywords))
/** The set of top-level keyword names. */
export const RUNBOOK_KEYS: ReadonlySet<string> = new Set(Object.keys(runbookKeywords))
