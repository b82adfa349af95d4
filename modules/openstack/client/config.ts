/**
 * Cloud credentials as the `openstack` CLI reads them: clouds.yaml (OS_CLIENT_CONFIG_FILE, then
 * ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml; the first found
 * wins, secure.yaml merged over it), the cloud named by the caller or OS_CLOUD with OS_*
 * variables laid over it (the CLI takes them as option defaults, which beat clouds.yaml), or
 * OS_* variables alone. A mapping in the clouds.yaml shape is taken as it is.
 */
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parse } from 'yaml'
import { RunbookError } from '../../../engine/errors.ts'
import type { ServiceType } from './errors.ts'

/** The `auth:` section of a cloud, as Keystone v3 needs it. */
export interface AuthSettings {
  auth_url: string
  username?: string | undefined
  user_id?: string | undefined
  password?: string | undefined
  user_domain_name?: string | undefined
  user_domain_id?: string | undefined
  project_name?: string | undefined
  project_id?: string | undefined
  project_domain_name?: string | undefined
  project_domain_id?: string | undefined
  application_credential_id?: string | undefined
  application_credential_name?: string | undefined
  application_credential_secret?: string | undefined
}

/** Keystone v3 methods the client speaks. */
export type AuthType = 'password' | 'v3applicationcredential'

/** Endpoint interface in the catalog. */
export type EndpointInterface = 'public' | 'internal' | 'admin'

/** One cloud, resolved. */
export interface CloudConfig {
  /** The cloud's name (`envvars` for OS_* variables alone, `inline` for a mapping). */
  name: string
  /** Where it came from: a file, `environment`, or `inline`. */
  source: string
  authType: AuthType
  auth: AuthSettings
  regionName?: string | undefined
  interface: EndpointInterface
  /** `<service>_endpoint_override` keys: used instead of the catalog. */
  endpointOverrides: Partial<Record<ServiceType, string>>
  /** Nova microversion asked for (`compute_api_version`, OS_COMPUTE_API_VERSION). */
  computeApiVersion?: string | undefined
  /** TLS: verify the server's certificate (false with `verify: false` or `insecure: true`). */
  verify: boolean
  /** A CA bundle file (`cacert`, OS_CACERT). */
  cacert?: string | undefined
}

/** Where to look and what the environment says. */
export interface ResolveOptions {
  /** A cloud name in clouds.yaml, or a mapping in the clouds.yaml shape (one cloud). */
  cloud?: string | Record<string, unknown> | undefined
  /** The run's environment (OS_CLOUD, OS_CLIENT_CONFIG_FILE, OS_*): always passed in. */
  env: Env
  /** Directory for ./clouds.yaml (default: the process's). */
  cwd?: string
  home?: string
}

type Raw = Record<string, unknown>

/** Environment variables, as a run passes them. */
export type Env = Readonly<Record<string, string | undefined>>

const AUTH_KEYS = [
  'auth_url',
  'username',
  'user_id',
  'password',
  'user_domain_name',
  'user_domain_id',
  'project_name',
  'project_id',
  'project_domain_name',
  'project_domain_id',
  'application_credential_id',
  'application_credential_name',
  'application_credential_secret',
  'domain_id',
  'domain_name',
  'default_domain',
] as const

/** OS_* variables and the key each sets (auth keys go under `auth`). */
const ENV_KEYS: [string, string][] = [
  ['OS_AUTH_URL', 'auth_url'],
  ['OS_USERNAME', 'username'],
  ['OS_USER_ID', 'user_id'],
  ['OS_PASSWORD', 'password'],
  ['OS_PROJECT_NAME', 'project_name'],
  ['OS_TENANT_NAME', 'project_name'],
  ['OS_PROJECT_ID', 'project_id'],
  ['OS_TENANT_ID', 'project_id'],
  ['OS_USER_DOMAIN_NAME', 'user_domain_name'],
  ['OS_USER_DOMAIN_ID', 'user_domain_id'],
  ['OS_PROJECT_DOMAIN_NAME', 'project_domain_name'],
  ['OS_PROJECT_DOMAIN_ID', 'project_domain_id'],
  ['OS_DOMAIN_NAME', 'domain_name'],
  ['OS_DOMAIN_ID', 'domain_id'],
  ['OS_DEFAULT_DOMAIN', 'default_domain'],
  ['OS_APPLICATION_CREDENTIAL_ID', 'application_credential_id'],
  ['OS_APPLICATION_CREDENTIAL_NAME', 'application_credential_name'],
  ['OS_APPLICATION_CREDENTIAL_SECRET', 'application_credential_secret'],
]
const ENV_TOP: [string, string][] = [
  ['OS_AUTH_TYPE', 'auth_type'],
  ['OS_REGION_NAME', 'region_name'],
  ['OS_INTERFACE', 'interface'],
  ['OS_ENDPOINT_TYPE', 'interface'],
  ['OS_COMPUTE_API_VERSION', 'compute_api_version'],
  ['OS_CACERT', 'cacert'],
]

const isObject = (x: unknown): x is Raw => x !== null && typeof x === 'object' && !Array.isArray(x)
const str = (x: unknown): string | undefined =>
  typeof x === 'string' && x !== '' ? x : typeof x === 'number' ? String(x) : undefined

function deepMerge(base: Raw, over: Raw): Raw {
  const out: Raw = { ...base }
  for (const [k, v] of Object.entries(over))
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Raw, v) : v
  return out
}

/** The cloud the OS_* variables describe (only the keys that are set). */
export function cloudFromEnv(env: Env): Raw {
  const auth: Raw = {}
  const top: Raw = {}
  for (const [name, key] of ENV_KEYS)
    if (env[name] !== undefined && env[name] !== '' && auth[key] === undefined)
      auth[key] = env[name]
  for (const [name, key] of ENV_TOP)
    if (env[name] !== undefined && env[name] !== '' && top[key] === undefined) top[key] = env[name]
  return Object.keys(auth).length > 0 ? { ...top, auth } : top
}

/** The clouds.yaml (or secure.yaml) files the CLI would consider, in order. */
export function configFiles(
  kind: 'clouds' | 'secure',
  o: { env: Env; cwd: string; home: string },
): string[] {
  const explicit =
    kind === 'clouds' ? o.env['OS_CLIENT_CONFIG_FILE'] : o.env['OS_CLIENT_SECURE_FILE']
  const xdg =
    o.env['XDG_CONFIG_HOME'] !== undefined && o.env['XDG_CONFIG_HOME'] !== ''
      ? o.env['XDG_CONFIG_HOME']
      : path.join(o.home, '.config')
  const dirs = [o.cwd, path.join(xdg, 'openstack'), '/etc/openstack']
  const files = dirs.flatMap((d) =>
    ['yaml', 'yml', 'json'].map((ext) => path.join(d, `${kind}.${ext}`)),
  )
  return explicit !== undefined && explicit !== '' ? [explicit, ...files] : files
}

function readClouds(file: string): Record<string, Raw> {
  let doc: unknown
  try {
    doc = parse(readFileSync(file, 'utf8')) as unknown
  } catch (e) {
    throw new RunbookError('E_PARAM', `cannot read ${file}: ${(e as Error).message}`)
  }
  const clouds = isObject(doc) ? doc['clouds'] : undefined
  if (clouds === undefined || clouds === null) return {}
  if (!isObject(clouds))
    throw new RunbookError('E_PARAM', `${file}: 'clouds' must be a mapping of cloud names`)
  return Object.fromEntries(
    Object.entries(clouds).filter((e): e is [string, Raw] => isObject(e[1])),
  )
}

function normaliseInterface(v: unknown, where: string): EndpointInterface {
  const s = (str(v) ?? 'public').replace(/URL$/, '')
  if (s === 'public' || s === 'internal' || s === 'admin') return s
  throw new RunbookError(
    'E_PARAM',
    `${where}: interface '${s}' is not one of public, internal, admin`,
  )
}

function normaliseAuthType(v: unknown, auth: Raw, where: string): AuthType {
  const s = str(v)
  if (s === undefined)
    return str(auth['application_credential_secret']) !== undefined
      ? 'v3applicationcredential'
      : 'password'
  if (s === 'password' || s === 'v3password') return 'password'
  if (
    s === 'v3applicationcredential' ||
    s === 'applicationcredential' ||
    s === 'application_credential' ||
    s === 'v3_application_credential'
  )
    return 'v3applicationcredential'
  throw new RunbookError(
    'E_PARAM',
    `${where}: auth_type '${s}' is not supported (password and v3applicationcredential are)`,
  )
}

/**
 * A cloud from its clouds.yaml-shaped mapping.
 * @example cloudConfig('lab', '/var/lib/runbook-lab/clouds.yaml', { auth: { auth_url: 'http://127.0.0.1:8780/v3', ... } })
 */
export function cloudConfig(name: string, source: string, raw: Raw): CloudConfig {
  const where = `cloud '${name}' (${source})`
  const rawAuth = isObject(raw['auth']) ? raw['auth'] : {}
  const auth: Raw = {}
  for (const k of AUTH_KEYS) if (str(rawAuth[k]) !== undefined) auth[k] = str(rawAuth[k])
  const authType = normaliseAuthType(raw['auth_type'], auth, where)
  const authUrl = str(auth['auth_url'])
  if (authUrl === undefined) {
    throw new RunbookError('E_PARAM', `${where} has no auth.auth_url`, {
      hint:
        raw['profile'] !== undefined
          ? 'vendor profiles are not supported: write auth_url into the cloud'
          : 'set auth.auth_url or OS_AUTH_URL',
    })
  }
  // Names need a domain; like devstack's clouds.yaml, fall back to the `default` domain.
  const defaultDomainId =
    str(auth['domain_id']) ??
    str(auth['default_domain']) ??
    (str(auth['domain_name']) === undefined ? 'default' : undefined)
  const defaultDomainName = str(auth['domain_name'])
  const settings: AuthSettings = {
    auth_url: authUrl,
    username: str(auth['username']),
    user_id: str(auth['user_id']),
    password: str(auth['password']),
    user_domain_name: str(auth['user_domain_name']),
    user_domain_id: str(auth['user_domain_id']),
    project_name: str(auth['project_name']),
    project_id: str(auth['project_id']),
    project_domain_name: str(auth['project_domain_name']),
    project_domain_id: str(auth['project_domain_id']),
    application_credential_id: str(auth['application_credential_id']),
    application_credential_name: str(auth['application_credential_name']),
    application_credential_secret: str(auth['application_credential_secret']),
  }
  if (settings.user_domain_name === undefined && settings.user_domain_id === undefined) {
    if (defaultDomainName !== undefined) settings.user_domain_name = defaultDomainName
    else settings.user_domain_id = defaultDomainId
  }
  if (settings.project_domain_name === undefined && settings.project_domain_id === undefined) {
    if (defaultDomainName !== undefined) settings.project_domain_name = defaultDomainName
    else settings.project_domain_id = defaultDomainId
  }
  if (authType === 'password') {
    if (settings.username === undefined && settings.user_id === undefined)
      throw new RunbookError(
        'E_PARAM',
        `${where}: password authentication needs auth.username or auth.user_id`,
      )
    if (settings.password === undefined)
      throw new RunbookError('E_PARAM', `${where}: password authentication needs auth.password`, {
        hint: 'set it in clouds.yaml, secure.yaml or OS_PASSWORD',
      })
  } else {
    if (settings.application_credential_secret === undefined)
      throw new RunbookError(
        'E_PARAM',
        `${where}: an application credential needs auth.application_credential_secret`,
      )
    if (
      settings.application_credential_id === undefined &&
      (settings.application_credential_name === undefined ||
        (settings.username === undefined && settings.user_id === undefined))
    ) {
      throw new RunbookError(
        'E_PARAM',
        `${where}: an application credential needs auth.application_credential_id, or its name with auth.username or auth.user_id`,
      )
    }
  }
  const regions = Array.isArray(raw['regions']) ? raw['regions'] : []
  const firstRegion =
    regions.length > 0
      ? isObject(regions[0])
        ? str(regions[0]['name'])
        : str(regions[0])
      : undefined
  const overrides: Partial<Record<ServiceType, string>> = {}
  for (const service of ['identity', 'compute', 'network', 'image'] as const) {
    const v = str(raw[`${service}_endpoint_override`])
    if (v !== undefined) overrides[service] = v
  }
  const insecure = raw['insecure'] === true || raw['insecure'] === 'true'
  return {
    name,
    source,
    authType,
    auth: settings,
    regionName: str(raw['region_name']) ?? firstRegion,
    interface: normaliseInterface(raw['interface'], where),
    endpointOverrides: overrides,
    computeApiVersion: str(raw['compute_api_version']),
    verify: !(insecure || raw['verify'] === false || raw['verify'] === 'false'),
    cacert: str(raw['cacert']),
  }
}

/**
 * Resolves the cloud to use: a mapping as given; else the named cloud (or OS_CLOUD) from the first
 * clouds.yaml found, secure.yaml merged in, OS_* variables over it; else OS_* variables alone.
 * @example const cloud = resolveCloud({ cloud: 'lab', env: ctx.env })
 */
export function resolveCloud(o: ResolveOptions): CloudConfig {
  const env = o.env
  if (isObject(o.cloud)) return cloudConfig('inline', 'inline', o.cloud)
  const fromEnv = cloudFromEnv(env)
  const name =
    o.cloud ??
    (env['OS_CLOUD'] !== undefined && env['OS_CLOUD'] !== '' ? env['OS_CLOUD'] : undefined)
  if (name === undefined || name === 'envvars') {
    if (isObject(fromEnv['auth'])) return cloudConfig('envvars', 'environment', fromEnv)
    throw new RunbookError('E_PARAM', 'no OpenStack cloud selected', {
      hint: 'give the task `cloud: NAME`, set the runbook variable `openstack_cloud`, or export OS_CLOUD (clouds.yaml) or OS_AUTH_URL and the other OS_* variables',
    })
  }
  const where = { env, cwd: o.cwd ?? process.cwd(), home: o.home ?? os.homedir() }
  const candidates = configFiles('clouds', where)
  const file = candidates.find((f) => existsSync(f))
  if (file === undefined)
    throw new RunbookError('E_PARAM', `cloud '${name}': no clouds.yaml found`, {
      hint: `looked for ${candidates.filter((f) => f.endsWith('.yaml')).join(', ')}`,
    })
  const clouds = readClouds(file)
  let raw = clouds[name]
  if (raw === undefined) {
    const known = Object.keys(clouds)
    throw new RunbookError('E_PARAM', `cloud '${name}' is not in ${file}`, {
      hint: known.length ? `it has: ${known.join(', ')}` : 'it defines no clouds',
    })
  }
  const secureFile = configFiles('secure', where).find((f) => existsSync(f))
  const secure = secureFile === undefined ? undefined : readClouds(secureFile)[name]
  if (secure !== undefined) raw = deepMerge(raw, secure)
  return cloudConfig(name, file, deepMerge(raw, fromEnv))
}

/** The values of a cloud that must never be shown. */
export function cloudSecrets(c: CloudConfig): string[] {
  return [c.auth.password, c.auth.application_credential_secret].filter(
    (s): s is string => s !== undefined && s !== '',
  )
}
