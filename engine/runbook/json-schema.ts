/**
 * The JSON Schema of runbook files, generated from the language's keywords and every module's
 * parameter schema, for editors (yaml-language-server) to validate runbooks as people type.
 */
import { z } from 'zod'
import type { ModuleRegistry } from '../module.ts'
import { importPlaybookKeywords, playKeywords, runbookKeywords, taskKeywords } from './schema.ts'

type Json = Record<string, unknown>

function toJson(s: z.ZodType): Json {
  try {
    return z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' }) as Json
  } catch {
    return {}
  }
}

function props(keywords: Record<string, z.ZodType>): Record<string, Json> {
  return Object.fromEntries(
    Object.entries(keywords).map(([k, s]) => {
      const j = toJson(s)
      delete j.$schema
      return [k, j]
    }),
  )
}

/**
 * The schema document.
 * @example JSON.stringify(runbookJsonSchema(registry))
 */
export function runbookJsonSchema(registry: ModuleRegistry): Json {
  const taskProps = props(taskKeywords)
  const modules: Record<string, Json> = {}
  for (const [name, m] of registry) {
    const j = toJson(m.params)
    delete j.$schema
    modules[name] = {
      description: m.summary,
      anyOf: [j, ...(m.freeForm ? [{ type: 'string' }] : [])],
    }
  }
  const templated = { type: 'string', pattern: '\\{\\{' }
  const task: Json = {
    type: 'object',
    properties: {
      ...taskProps,
      ...Object.fromEntries(
        Object.entries(modules).map(([k, v]) => [k, { anyOf: [v, templated] }]),
      ),
      block: { type: 'array', items: { $ref: '#/$defs/task' } },
      rescue: { type: 'array', items: { $ref: '#/$defs/task' } },
      always: { type: 'array', items: { $ref: '#/$defs/task' } },
    },
    additionalProperties: false,
    minProperties: 1,
  }
  const play: Json = {
    type: 'object',
    properties: {
      ...props(playKeywords),
      tasks: { type: 'array', items: { $ref: '#/$defs/task' } },
      handlers: { type: 'array', items: { $ref: '#/$defs/task' } },
    },
    required: ['hosts'],
    additionalProperties: false,
  }
  const importPlaybook: Json = {
    type: 'object',
    properties: props(importPlaybookKeywords),
    required: ['import_playbook'],
    additionalProperties: false,
  }
  const playEntry: Json = { anyOf: [{ $ref: '#/$defs/play' }, { $ref: '#/$defs/importPlaybook' }] }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://runbook.dev/schema/runbook.json',
    title: 'runbook',
    $defs: { task, play, importPlaybook, playEntry },
    oneOf: [
      {
        type: 'object',
        properties: {
          ...props(runbookKeywords),
          plays: { type: 'array', items: { $ref: '#/$defs/playEntry' } },
        },
        required: ['plays'],
        additionalProperties: false,
      },
      { type: 'array', items: { $ref: '#/$defs/playEntry' } },
    ],
  }
}
