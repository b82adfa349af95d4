/**
 * What Nova's compute service does in the background: build a server on the hosts (BUILD ->
 * ACTIVE, or ERROR with a fault), power it off and on, delete it, and bring the hosts back after
 * a restart of the daemon. The API call that asks for it has already answered (202/204).
 */
import type { VmSpec } from '../../driver.ts'
import { DEBIAN_12, IMAGE_RECIPES } from '../../images/recipe.ts'
import type { Cloud } from '../cloud.ts'
import { errorText } from '../cloud.ts'
import { isoNaiveMicros, isoSeconds } from '../ids.ts'
import { deletePortRecord, refreshPortStatus } from '../neutron/ports.ts'
import { buildSnapshot, labPort, tenantNetworkId } from '../snapshot.ts'
import type { ServerRec } from '../types.ts'

const POWER_RUNNING = 1
const POWER_SHUTDOWN = 4
const POWER_NOSTATE = 0

function find(cloud: Cloud, id: string): ServerRec | undefined {
  return cloud.state.servers.find((s) => s.id === id)
}

function touchServer(s: ServerRec): void {
  s.updatedAt = isoSeconds()
}

function refreshPorts(cloud: Cloud, s: ServerRec): void {
  for (const p of cloud.state.ports) if (s.portIds.includes(p.id)) refreshPortStatus(cloud, p)
}

/**
 * Give back a server's network: the ports Nova made are deleted, the ones the user passed are
 * unbound (as Nova's deallocate_for_instance does).
 */
export function releaseNetworking(cloud: Cloud, s: ServerRec): void {
  for (const id of s.portIds) {
    if (s.ownedPortIds.includes(id)) {
      deletePortRecord(cloud, id)
      continue
    }
    const port = cloud.state.ports.find((p) => p.id === id)
    if (port !== undefined && port.deviceId === s.id) {
      port.deviceId = ''
      port.deviceOwner = ''
      port.bindingHostId = ''
      refreshPortStatus(cloud, port)
    }
  }
  s.portIds = []
  s.ownedPortIds = []
}

/** Put a server in ERROR with a fault, as Nova's conductor/compute do when a build fails. */
export function failServer(cloud: Cloud, s: ServerRec, message: string, details = ''): void {
  s.status = 'ERROR'
  s.vmState = 'error'
  s.taskState = null
  s.powerState = POWER_NOSTATE
  // Nova keeps the first 255 characters as the message; the rest (a traceback) goes to details.
  const short = message.length > 255 ? message.slice(0, 255) : message
  s.fault = {
    code: 500,
    message: short,
    created: isoSeconds(),
    details: details === '' && short !== message ? message : details,
  }
  releaseNetworking(cloud, s)
  touchServer(s)
}

/** The driver's view of what to boot. */
export function vmSpec(cloud: Cloud, s: ServerRec): VmSpec | string {
  if (s.portIds.length !== 1)
    return `the lab's hosts have exactly one NIC; this server asks for ${s.portIds.length}`
  const port = cloud.state.ports.find((p) => p.id === s.portIds[0])
  if (port === undefined) return 'the port of the server is gone'
  if (port.networkId !== tenantNetworkId(cloud.state))
    return 'the lab hosts implement only the network of subnet 192.0.2.0/24 (mynetwork)'
  const image = cloud.state.images.find((i) => i.id === s.imageId)
  const flavor = cloud.state.flavors.find((f) => f.id === s.flavorId)
  const key =
    s.keyName === null
      ? undefined
      : cloud.state.keypairs.find((k) => k.name === s.keyName && k.userId === s.userId)
  return {
    id: s.id,
    name: s.name,
    hostname: s.hostname,
    port: labPort(port),
    defaultUser: image?.defaultUser ?? DEBIAN_12.defaultUser,
    image: IMAGE_RECIPES.find((r) => r.name === image?.name)?.key ?? DEBIAN_12.key,
    // the flavor family says how the server is made: k1.* has a kernel of its own
    kind: flavor?.name.startsWith('k1.') === true ? 'kernel' : 'namespace',
    ramMb: flavor?.ram ?? 192,
    authorizedKeys: key === undefined ? [] : [key.publicKey.trim()],
  }
}

async function build(cloud: Cloud, id: string): Promise<void> {
  const s = find(cloud, id)
  if (s === undefined || s.status !== 'BUILD' || s.taskState === 'deleting') return
  const flavor = cloud.state.flavors.find((f) => f.id === s.flavorId)
  if (
    flavor === undefined ||
    flavor.vcpus > cloud.capacity.vcpus ||
    flavor.ram > cloud.capacity.ramMb
  ) {
    failServer(cloud, s, 'No valid host was found. There are not enough hosts available.')
    await cloud.commitAndSync()
    return
  }
  const spec = vmSpec(cloud, s)
  if (typeof spec === 'string') {
    failServer(cloud, s, `Build of instance ${s.id} aborted: ${spec}.`)
    await cloud.commitAndSync()
    return
  }
  s.taskState = 'spawning'
  touchServer(s)
  await cloud.commit()
  const started = Date.now()
  let console: string
  try {
    console = (await cloud.driver.createVm(spec, buildSnapshot(cloud.state))).consoleLog
  } catch (e) {
    cloud.log(`createVm ${id} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    await cloud.driver.deleteVm(id).catch(() => undefined)
    const now = find(cloud, id)
    if (now !== undefined && now.taskState !== 'deleting')
      failServer(
        cloud,
        now,
        `Build of instance ${id} aborted: ${errorText(e)}`,
        e instanceof Error ? (e.stack ?? '') : '',
      )
    await cloud.commitAndSync()
    return
  }
  const now = find(cloud, id)
  if (now === undefined) return
  if (now.taskState !== 'deleting') {
    now.status = 'ACTIVE'
    now.vmState = 'active'
    now.taskState = null
  }
  now.powerState = POWER_RUNNING
  now.launchedAt = isoNaiveMicros()
  now.consoleLog = console
  refreshPorts(cloud, now)
  touchServer(now)
  cloud.log(`server ${id} (${now.name}) built in ${Date.now() - started} ms`)
  await cloud.commit()
}

/** Build a server in the background (the create call has answered 202). */
export function scheduleBuild(cloud: Cloud, id: string): void {
  void cloud
    .vmOp(id, () => build(cloud, id))
    .catch((e: unknown) => cloud.log(`build ${id}: ${errorText(e)}`))
}

async function destroy(cloud: Cloud, id: string): Promise<void> {
  const s = find(cloud, id)
  if (s === undefined) return
  const started = Date.now()
  try {
    await cloud.driver.deleteVm(id)
  } catch (e) {
    cloud.log(`deleteVm ${id} failed (the server is removed anyway): ${errorText(e)}`)
  }
  releaseNetworking(cloud, s)
  cloud.state.servers = cloud.state.servers.filter((x) => x.id !== id)
  cloud.log(`server ${id} (${s.name}) deleted in ${Date.now() - started} ms`)
  await cloud.commitAndSync()
}

/** Delete a server in the background (the DELETE has answered 204). */
export function scheduleDelete(cloud: Cloud, id: string): void {
  void cloud
    .vmOp(id, () => destroy(cloud, id))
    .catch((e: unknown) => cloud.log(`delete ${id}: ${errorText(e)}`))
}

/** A power action. */
export type PowerAction = 'stop' | 'start' | 'reboot'

async function power(cloud: Cloud, id: string, action: PowerAction): Promise<void> {
  const s = find(cloud, id)
  if (s === undefined || s.taskState === 'deleting') return
  const started = Date.now()
  try {
    if (action === 'stop' || action === 'reboot') await cloud.driver.stopVm(id)
    if (action === 'start' || action === 'reboot') {
      const boot = await cloud.driver.startVm(id)
      const now = find(cloud, id)
      if (now !== undefined) now.consoleLog = appendLog(now.consoleLog, boot.consoleLog)
    }
  } catch (e) {
    cloud.log(`${action} ${id} failed: ${errorText(e)}`)
    const now = find(cloud, id)
    if (now !== undefined && now.taskState !== 'deleting') {
      now.taskState = null
      touchServer(now)
      await cloud.commit()
    }
    return
  }
  const now = find(cloud, id)
  if (now === undefined || now.taskState === 'deleting') return
  const running = action !== 'stop'
  now.status = running ? 'ACTIVE' : 'SHUTOFF'
  now.vmState = running ? 'active' : 'stopped'
  now.powerState = running ? POWER_RUNNING : POWER_SHUTDOWN
  now.taskState = null
  refreshPorts(cloud, now)
  touchServer(now)
  cloud.log(`server ${id} (${now.name}) ${action} done in ${Date.now() - started} ms`)
  await cloud.commit()
}

/** Stop, start or reboot a server in the background (the action has answered 202). */
export function schedulePower(cloud: Cloud, id: string, action: PowerAction): void {
  void cloud
    .vmOp(id, () => power(cloud, id, action))
    .catch((e: unknown) => cloud.log(`${action} ${id}: ${errorText(e)}`))
}

const MAX_LOG = 256 * 1024

function appendLog(old: string, next: string): string {
  const joined = old === '' ? next : `${old}${old.endsWith('\n') ? '' : '\n'}${next}`
  return joined.length > MAX_LOG ? joined.slice(joined.length - MAX_LOG) : joined
}

/**
 * After a restart of the daemon: finish what was in flight, and make sure every ACTIVE server's
 * VM runs (startVm is idempotent; a VM that is gone, e.g. after a reboot, is created again).
 */
export function restoreServers(cloud: Cloud): void {
  for (const s of [...cloud.state.servers]) {
    if (s.taskState === 'deleting') scheduleDelete(cloud, s.id)
    else if (s.status === 'BUILD') {
      s.taskState = 'scheduling'
      scheduleBuild(cloud, s.id)
    } else if (s.taskState === 'powering-off') schedulePower(cloud, s.id, 'stop')
    else if (s.taskState === 'powering-on') schedulePower(cloud, s.id, 'start')
    else if (s.status === 'ACTIVE') {
      void cloud
        .vmOp(s.id, async () => {
          try {
            await cloud.driver.startVm(s.id)
          } catch {
            const spec = vmSpec(cloud, s)
            if (typeof spec !== 'string') {
              const boot = await cloud.driver.createVm(spec, buildSnapshot(cloud.state))
              s.consoleLog = appendLog(s.consoleLog, boot.consoleLog)
              await cloud.commit()
            }
          }
        })
        .catch((e: unknown) => cloud.log(`restore ${s.id}: ${errorText(e)}`))
    }
  }
}
