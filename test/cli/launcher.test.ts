/**
 * The `runbook` command (cli/runbook, package.json's bin): node starts without parsing the
 * NODE_EXTRA_CA_CERTS bundle, the processes runbook starts get the variable back, and the
 * OpenStack client trusts those CAs over real HTTPS.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OpenStackClient, deferredCaCerts } from '../../modules/openstack/client/client.ts'
import { resolveCloud } from '../../modules/openstack/client/config.ts'

const LAUNCHER = path.resolve('cli/runbook')
const MISSING = '/nonexistent/extra-ca.pem'
/** What node prints when it reads NODE_EXTRA_CA_CERTS as it starts and the file is not there. */
const NODE_WARNING = /Ignoring extra certs from/

function run(
  argv: string[],
  env: Record<string, string | undefined>,
  cwd = process.cwd(),
): { code: number; out: string; err: string } {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env }
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k]
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, env: e, encoding: 'utf8' })
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
}

describe('the runbook command', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-launcher-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('starts node without reading NODE_EXTRA_CA_CERTS (node itself would, and warn)', () => {
    const direct = run([process.execPath, 'cli/runbook.js', '--version'], {
      NODE_EXTRA_CA_CERTS: MISSING,
    })
    expect(direct.err).toMatch(NODE_WARNING)
    const launched = run([LAUNCHER, '--version'], { NODE_EXTRA_CA_CERTS: MISSING })
    expect(launched).toEqual({ code: 0, out: '0.1.0\n', err: '' })
  })

  it("starts the CommonJS program, without node's ES module loader; cli/runbook.js still runs", () => {
    // a preload that writes the node built-ins the process loaded, as it exits
    const list = path.join(dir, 'builtins.txt')
    const preload = path.join(dir, 'builtins.cjs')
    writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')))`,
    )
    const esmLoader = (): boolean =>
      readFileSync(list, 'utf8').includes('NativeModule internal/modules/esm/module_job')
    const opts = { NODE_OPTIONS: `--require ${preload}` }
    expect(run([LAUNCHER, '--version'], opts)).toEqual({ code: 0, out: '0.1.0\n', err: '' })
    expect(esmLoader()).toBe(false)
    // the ES module entry runs the same program, through the loader
    expect(run([process.execPath, 'cli/runbook.js', '--version'], opts)).toMatchObject({
      code: 0,
      out: '0.1.0\n',
    })
    expect(esmLoader()).toBe(true)
    const v = run(
      [process.execPath, 'cli/runbook.js', 'validate', 'runbooks/vip-keepalived.yaml'],
      {},
    )
    expect(v.code, v.err).toBe(0)
    expect(v.out).toMatch(/valid \(4 plays/)
  })

  it('runs through a symlink, as npm links a bin', () => {
    const link = path.join(dir, 'runbook')
    symlinkSync(LAUNCHER, link)
    expect(run([link, '--version'], {}, dir)).toEqual({ code: 0, out: '0.1.0\n', err: '' })
  })

  it('leaves the variable to node when NODE_OPTIONS chooses its CA store', () => {
    const r = run([LAUNCHER, '--version'], {
      NODE_EXTRA_CA_CERTS: MISSING,
      NODE_OPTIONS: '--use-openssl-ca',
    })
    expect(r.code).toBe(0)
    expect(r.err).toMatch(NODE_WARNING)
  })

  it('gives NODE_EXTRA_CA_CERTS back to the processes a run starts, and nothing of its own', () => {
    writeFileSync(
      path.join(dir, 'env.yaml'),
      `plays:
  - hosts: localhost
    tasks:
      - name: what a command on the controller sees
        shell: "printenv NODE_EXTRA_CA_CERTS > ${dir}/ca.txt; printenv RUNBOOK_EXTRA_CA_CERTS > ${dir}/handover.txt; true"
`,
    )
    const r = run([LAUNCHER, 'apply', 'env.yaml'], { NODE_EXTRA_CA_CERTS: MISSING }, dir)
    expect(r.code, r.out + r.err).toBe(0)
    expect(readFileSync(path.join(dir, 'ca.txt'), 'utf8')).toBe(`${MISSING}\n`)
    expect(readFileSync(path.join(dir, 'handover.txt'), 'utf8')).toBe('')
    expect(r.err).not.toMatch(NODE_WARNING)
  })
})

/** A CA, and a certificate for 127.0.0.1 that it signed, made with openssl. */
function makeCa(dir: string): { caFile: string; key: string; cert: string } {
  const f = (n: string): string => path.join(dir, n)
  const ssl = (...args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
  }
  ssl(
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=runbook test CA'],
  )
  ssl(
    ...['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1'],
  )
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n')
  ssl(
    ...['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key')],
    ...['-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext')],
  )
  return {
    caFile: f('ca.pem'),
    key: readFileSync(f('server.key'), 'utf8'),
    cert: readFileSync(f('server.pem'), 'utf8'),
  }
}

describe('the OpenStack client with NODE_EXTRA_CA_CERTS handed over', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rb-ca-'))
  const global = globalThis as { __runbookDeferredCaCerts?: string }
  let server: Server
  let ca: ReturnType<typeof makeCa>
  let cloudsYaml: string

  beforeAll(async () => {
    ca = makeCa(dir)
    // Keystone's answer to a wrong password: reaching it means TLS was accepted
    server = createServer({ key: ca.key, cert: ca.cert }, (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 401, title: 'Unauthorized', message: 'no' } }))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    cloudsYaml = path.join(dir, 'clouds.yaml')
    writeFileSync(
      cloudsYaml,
      `clouds:
  tls:
    auth:
      auth_url: https://127.0.0.1:${port}/v3
      username: demo
      password: wrong
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
`,
    )
  })
  afterAll(async () => {
    delete global.__runbookDeferredCaCerts
    await new Promise((r) => server.close(r))
    rmSync(dir, { recursive: true, force: true })
  })

  const token = (): Promise<unknown> =>
    new OpenStackClient(
      resolveCloud({ env: { OS_CLIENT_CONFIG_FILE: cloudsYaml, OS_CLOUD: 'tls' } }),
      { retries: 0, backoffMs: 1 },
    ).token()

  it('trusts the handed-over CAs along with node’s own roots', async () => {
    global.__runbookDeferredCaCerts = ca.caFile
    const certs = deferredCaCerts()
    expect(certs?.length).toBeGreaterThan(100)
    expect(certs?.at(-1)).toContain('BEGIN CERTIFICATE')
    await expect(token()).rejects.toThrow(/401|Unauthorized|authenticat/i)
  })

  it('refuses that server without them', async () => {
    delete global.__runbookDeferredCaCerts
    expect(deferredCaCerts()).toBeUndefined()
    await expect(token()).rejects.toThrow(/certificate/i)
  })

  it('ignores a file it cannot read, with node’s warning', () => {
    global.__runbookDeferredCaCerts = MISSING
    const warnings: string[] = []
    const onWarning = (w: Error): number => warnings.push(w.message)
    process.on('warning', onWarning)
    try {
      expect(deferredCaCerts()).toBeUndefined()
    } finally {
      delete global.__runbookDeferredCaCerts
    }
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        process.off('warning', onWarning)
        expect(warnings.join('\n')).toMatch(NODE_WARNING)
        resolve()
      }),
    )
  })
})
