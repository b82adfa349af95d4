/**
 * The test mirror in a process of its own (startTestMirror spawns it): tests that run the CLI with
 * spawnSync block their own event loop, so a server in the test process could not answer the VMs.
 *   node --import tsx mirror-server.ts DIR   → prints "ready URL", serves until SIGTERM
 */
import { DEFAULT_MIRROR_PORT, MIRROR_HOST, startMirrorServer } from '../../../lab/mirror/server.ts'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: mirror-server.ts DIR')
const server = await startMirrorServer({ dir, host: MIRROR_HOST, port: DEFAULT_MIRROR_PORT })
process.stdout.write(`ready ${server.url}\n`)
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0))
})
