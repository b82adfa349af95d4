/**
 * One API client per cloud per run (ctx.shared), and which cloud a task means: its `cloud`
 * parameter, else the runbook variable `openstack_cloud` (a clouds.yaml name or an inline entry,
 * whose secrets come from secret variables), else OS_CLOUD, else the OS_* variables (of the run's
 * environment, ctx.env).
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import { RunbookError } from '../../../engine/errors.ts'
import type { ModuleContext, ResourceRecord } from '../../../engine/module.ts'
import { OpenStackClient, type ClientOptions } from '../client/client.ts'
import { resolveCloud } from '../client/config.ts'
import { Neutron } from '../client/neutron.ts'
import { Nova } from '../client/nova.ts'

/** The runbook variable that names the cloud of every OpenStack task without `cloud:`. */
export const CLOUD_VAR = 'openstack_cloud'
/** The variable naming a clouds.yaml to read first (as OS_CLIENT_CONFIG_FILE), e.g. in an inventory. */
export const CLOUDS_FILE_VAR = 'openstack_clouds_yaml'

/** A cloud's client and its service helpers. */
export interface Api {
  client: OpenStackClient
  neutron: Neutron
  nova: Nova
  /** The cloud's name when it has one (kept in the journal so that `destroy` finds the cloud). */
  cloudName: string | undefined
}

/**
 * The run-wide value (ctx.shared) holding the client's retry options; a run leaves the defaults,
 * tests set short backoffs in their run's shared values.
 */
export const CLIENT_OPTIONS_KEY = 'openstack:client-options'

/** The environment variable that has the client print one stderr line per request. */
export const TRACE_ENV = 'RUNBOOK_TRACE_API'

const isObject = (x: unknown): x is Record<string, unknown> =>
  x !== null && typeof x === 'object' && !Array.isArray(x)

/**
 * The API client of the cloud a task means, made once per run, as this task uses it.
 * @example const { neutron } = apiFor(ctx, p.cloud)
 */
export function apiFor(ctx: ModuleContext, cloud: string | undefined): Api {
  const fromVar = cloud === undefined ? ctx.vars[CLOUD_VAR] : undefined
  if (
    fromVar !== undefined &&
    fromVar !== null &&
    typeof fromVar !== 'string' &&
    !isObject(fromVar)
  ) {
    throw new RunbookError(
      'E_PARAM',
      `the variable ${CLOUD_VAR} must be a cloud name or a clouds.yaml entry (a mapping)`,
    )
  }
  const ref = cloud ?? (fromVar === null ? undefined : fromVar)
  const key = isObject(ref)
    ? `inline:${createHash('sha256').update(JSON.stringify(ref)).digest('hex')}`
    : (ref ?? 'env')
  const file = ctx.vars[CLOUDS_FILE_VAR]
  if (file !== undefined && typeof file !== 'string')
    throw new RunbookError('E_PARAM', `the variable ${CLOUDS_FILE_VAR} must be a path`)
  const api = ctx.shared<Api>(`openstack:api:${key}:${file ?? ''}`, () => {
    const config = resolveCloud({
      cloud: ref,
      env: file ? { ...ctx.env, OS_CLIENT_CONFIG_FILE: path.resolve(ctx.baseDir, file) } : ctx.env,
    })
    const client = new OpenStackClient(config, {
      ...ctx.shared<ClientOptions>(CLIENT_OPTIONS_KEY, () => ({})),
      secret: (v) => ctx.secret(v),
      signal: ctx.signal,
      trace: ctx.env[TRACE_ENV] === '1',
    })
    const named = config.name !== 'inline' && config.name !== 'envvars'
    return {
      client,
      neutron: new Neutron(client),
      nova: new Nova(client),
      cloudName: named ? config.name : undefined,
    }
  })
  // the task's view: its requests count in its timings, its waits are said on its line
  const client = api.client.forTask({ timings: ctx.timings, progress: ctx.progress })
  return {
    client,
    neutron: api.neutron.withClient(client),
    nova: api.nova.withClient(client),
    cloudName: api.cloudName,
  }
}

/**
 * The client for a journal record's cloud, checked to be the project the resource was made in.
 * @example const api = await apiForRecord(ctx, record)
 */
export async function apiForRecord(ctx: ModuleContext, r: ResourceRecord): Promise<Api> {
  const name = typeof r.data?.['cloud'] === 'string' ? r.data['cloud'] : undefined
  const api = apiFor(ctx, name)
  const project = typeof r.data?.['project_id'] === 'string' ? r.data['project_id'] : undefined
  const now = await api.client.projectId()
  if (project !== undefined && project !== now) {
    // Either another cloud is selected, or the project is gone (a lab torn down and brought up
    // again has a new project id): nothing here can tell, so the record is not ours to drop.
    throw new RunbookError(
      'E_STALE_RECORD',
      `${r.type} ${r.name ?? r.id} was created in project ${project}, but cloud '${api.client.config.name}' is project ${now}`,
      {
        hint: `select the cloud it was made in (task \`cloud:\`, the variable ${CLOUD_VAR}, or OS_CLOUD); if that project is gone: runbook destroy --forget ${r.id}`,
      },
    )
  }
  return api
}
