import type { LabPort, NetworkSnapshot } from '../driver.ts'
import { protocolNumber } from './neutron/protocols.ts'
import type { LabState, PortRec } from './types.ts'

/** The tenant subnet the lab's hosts implement; other networks exist only in the API. */
export const TENANT_CIDR = '192.0.2.0/24'
/** Its gateway, owned by the lab router. */
export const TENANT_GATEWAY = '192.0.2.1'

/** A Neutron port as the host side needs it. */
export function labPort(p: PortRec): LabPort {
  return {
    id: p.id,
    mac: p.macAddress,
    fixedIps: p.fixedIps.map((f) => f.ipAddress),
    allowedAddressPairs: p.allowedAddressPairs.map((a) => ({
      ipAddress: a.ipAddress,
      macAddress: a.macAddress,
    })),
    securityGroupIds: [...p.securityGroups],
    portSecurityEnabled: p.portSecurityEnabled,
    deviceId: p.deviceOwner.startsWith('compute:') && p.deviceId !== '' ? p.deviceId : null,
  }
}

/** The id of the network that carries the tenant subnet, or null when it was deleted. */
export function tenantNetworkId(state: LabState): string | null {
  return state.subnets.find((s) => s.cidr === TENANT_CIDR)?.networkId ?? null
}

/**
 * Everything the hosts need to enforce port security and floating-IP NAT, from the API's state.
 * Router and DHCP ports (`network:*`) are the lab router's own business and are left out.
 */
export function buildSnapshot(state: LabState): NetworkSnapshot {
  const subnet = state.subnets.find((s) => s.cidr === TENANT_CIDR)
  const netId = subnet?.networkId ?? null
  const ports = state.ports.filter(
    (p) => p.networkId === netId && !p.deviceOwner.startsWith('network:'),
  )
  const portById = new Map(ports.map((p) => [p.id, p]))
  return {
    subnetCidr: TENANT_CIDR,
    gatewayIp: subnet?.gatewayIp ?? TENANT_GATEWAY,
    ports: ports.map(labPort),
    securityGroups: state.securityGroups.map((g) => ({
      id: g.id,
      name: g.name,
      rules: state.securityGroupRules
        .filter((r) => r.securityGroupId === g.id)
        .map((r) => ({
          id: r.id,
          direction: r.direction,
          ethertype: r.ethertype,
          protocol: protocolNumber(r.protocol) ?? null,
          portRangeMin: r.portRangeMin,
          portRangeMax: r.portRangeMax,
          remoteIpPrefix: r.remoteIpPrefix,
          remoteGroupId: r.remoteGroupId,
        })),
    })),
    floatingIps: state.floatingIps.map((f) => {
      const bound = f.portId !== null && portById.has(f.portId)
      return {
        id: f.id,
        floatingIp: f.floatingIpAddress,
        fixedIp: bound ? f.fixedIpAddress : null,
        portId: bound ? f.portId : null,
      }
    }),
  }
}
