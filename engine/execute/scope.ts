/**
 * Variable scopes. A scope stacks layers from the lowest precedence to the highest (runbook vars,
 * inventory group vars, host vars, play vars, registered results and facts, block and task vars,
 * extra vars). Templated variables render lazily on first use, so `vip_cidr: "{{vip}}/{{prefix}}"`
 * sees the final values of the variables it uses, and a cycle is an error, not a hang.
 */
import { RunbookError } from '../errors.ts'
import { renderDeep } from '../vars/template.ts'

/** One layer of variables. */
export interface Layer {
  vars: Readonly<Record<string, unknown>>
  /** Whether string values in it are templates (runbook and play vars are; results are not). */
  templated: boolean
}

/**
 * A scope object whose properties are the variables of all layers, highest layer winning.
 * @example const s = makeScope([{ vars: { a: 1, b: '{{a}}' }, templated: true }]); s.b // 1
 */
export function makeScope(
  layers: readonly Layer[],
  /** What templated values render against (default: the scope itself). */
  renderIn?: () => Record<string, unknown>,
): Record<string, unknown> {
  const scope: Record<string, unknown> = {}
  const rendering = new Set<string>()
  for (const layer of layers) {
    for (const [key, raw] of Object.entries(layer.vars)) {
      if (!layer.templated) {
        Object.defineProperty(scope, key, {
          value: raw,
          enumerable: true,
          configurable: true,
          writable: true,
        })
        continue
      }
      let done = false
      let cached: unknown
      Object.defineProperty(scope, key, {
        enumerable: true,
        configurable: true,
        get() {
          if (done) return cached
          if (rendering.has(key))
            throw new RunbookError('E_TEMPLATE', `variable '${key}' refers to itself`)
          rendering.add(key)
          try {
            cached = renderDeep(raw, renderIn ? renderIn() : scope)
            done = true
            return cached
          } finally {
            rendering.delete(key)
          }
        },
        set(v: unknown) {
          cached = v
          done = true
        },
      })
    }
  }
  return scope
}
