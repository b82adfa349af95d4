import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'

/** Keystone password credentials scoped to a project, as clouds.yaml has them. */
export const passwordCredentialsSchema = z.object({
  username: z.string(),
  password: z.string(),
  userDomainName: z.string(),
  projectName: z.string(),
  projectDomainName: z.string(),
})

/** An application credential of the password user, with the name of its owner for name-auth. */
export const appCredentialSchema = z.object({
  id: z.string(),
  name: z.string(),
  secret: z.string(),
  username: z.string(),
  userDomainName: z.string(),
})

/** A cloud the conformance sequence runs against: the lab or the real services. */
export const targetSchema = z.object({
  /** A label for reports: `real` or `lab`. */
  name: z.string(),
  /** Keystone v3 root, with `/v3` (`http://127.0.0.1:5000/v3`). */
  keystoneUrl: z.string(),
  /**
   * Neutron root, without `/v2.0` (`http://127.0.0.1:9696`). The sequence takes Neutron's URL from
   * the token's catalog, as clients do, and checks that it is this one.
   */
  neutronUrl: z.string(),
  credentials: z.object({
    password: passwordCredentialsSchema,
    /** A standing application credential for manual use; the sequence makes and deletes its own. */
    applicationCredential: appCredentialSchema.optional(),
  }),
})

/** A cloud the conformance sequence runs against. */
export type Target = z.infer<typeof targetSchema>

/**
 * Read a target from a JSON file (setup-real.sh writes one for the real services).
 * @example readTarget('/var/lib/runbook-conformance/target.json')
 */
export function readTarget(path: string): Target {
  return targetSchema.parse(JSON.parse(readFileSync(path, 'utf8')))
}

const cloudsYamlSchema = z.object({
  clouds: z.record(
    z.string(),
    z.object({
      auth: z.object({
        auth_url: z.string(),
        username: z.string().optional(),
        password: z.string().optional(),
        project_name: z.string().optional(),
        user_domain_name: z.string().optional(),
        project_domain_name: z.string().optional(),
        application_credential_id: z.string().optional(),
        application_credential_secret: z.string().optional(),
      }),
    }),
  ),
})

/**
 * A target from a clouds.yaml entry with password auth (the `lab` entry `runbook lab up` writes).
 * The Keystone URL gets `/v3` if it lacks it; Neutron's URL is given, as clouds.yaml has none.
 * @example targetFromCloudsYaml(api.cloudsYaml, 'lab', 'lab', `${api.url}/network`)
 */
export function targetFromCloudsYaml(
  path: string,
  cloud: string,
  name: string,
  neutronUrl: string,
): Target {
  const doc = cloudsYamlSchema.parse(parseYaml(readFileSync(path, 'utf8')))
  const auth = doc.clouds[cloud]?.auth
  if (
    auth?.username === undefined ||
    auth.password === undefined ||
    auth.project_name === undefined
  ) {
    throw new Error(`${path}: cloud ${cloud} has no password credentials`)
  }
  const keystoneUrl = auth.auth_url.replace(/\/$/, '')
  return {
    name,
    keystoneUrl: /\/v3$/.test(keystoneUrl) ? keystoneUrl : `${keystoneUrl}/v3`,
    neutronUrl,
    credentials: {
      password: {
        username: auth.username,
        password: auth.password,
        userDomainName: auth.user_domain_name ?? 'Default',
        projectName: auth.project_name,
        projectDomainName: auth.project_domain_name ?? 'Default',
      },
    },
  }
}
