/**
 * Parameter pieces shared by the OpenStack modules. A value may be known only after apply (the id
 * of a port a server gets): `later(...)` accepts it as an Unknown, so the modules can plan with it
 * and show `(known after apply)` instead of the engine deferring the whole task.
 */
import { z } from 'zod'
import type { Change } from '../../../engine/plan/change.ts'
import { isUnknown, showUnknowns, type Unknown } from '../../../engine/vars/unknown.ts'

/** A value or a value known only after apply. */
export type Later<T> = T | Unknown

// `not: {}` keeps the JSON Schema for editors exact: only the first branch is ever valid text.
const unknownValue = z
  .custom<Unknown>((v) => isUnknown(v), { message: 'expected a value' })
  .meta({ not: {} })

/**
 * A text parameter that may be known only after apply.
 * @example later(z.string().min(1)).describe('Port id')
 */
export function later(s: z.ZodString): z.ZodType<Later<string>> {
  return z.union([s, unknownValue]).meta({ type: 'string' })
}

/** Whether a value is known now. */
export function known<T>(v: Later<T>): v is T {
  return !isUnknown(v)
}

/** `cloud`: which cloud a task talks to. */
export const cloudParam = z
  .string()
  .min(1)
  .optional()
  .describe(
    'Cloud name in clouds.yaml; default: the runbook variable `openstack_cloud` (a name or an inline clouds.yaml entry), then OS_CLOUD, then OS_* variables',
  )

/** `adopt`: manage a resource of that name that this runbook did not create. */
export const adoptParam = z
  .boolean()
  .default(false)
  .describe(
    'Manage an existing resource of this name that this runbook did not create (it is then changed but never deleted by `runbook destroy`)',
  )

/** `state` of a resource. */
export const stateParam = z
  .enum(['present', 'absent'])
  .default('present')
  .describe('present: exists as described; absent: does not exist')

/**
 * Changes as the plan prints them: values known only after apply become `(known after apply)`
 * (the plan renderer prints the text, not the Unknown object).
 */
export function printable(changes: Change[]): Change[] {
  return changes.map((c) => ({
    ...c,
    ...(c.before === undefined ? {} : { before: showUnknowns(c.before) }),
    ...(c.after === undefined ? {} : { after: showUnknowns(c.after) }),
  }))
}
