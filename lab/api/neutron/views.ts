/**
 * Neutron resources as the API shows them. The key sets are those of Neutron 21 (Debian 12) with
 * the ML2 plugin, the `port_security` extension driver and the `router` service plugin, which is
 * what the conformance test compares against; admin-only attributes appear only for admins.
 */
import type { Cloud } from '../cloud.ts'
import { normalizeCidr } from './ipam.ts'
import type {
  FloatingIpRec,
  NetworkRec,
  NeutronStandard,
  PortRec,
  RouterRec,
  SecurityGroupRec,
  SecurityGroupRuleRec,
  SubnetRec,
} from '../types.ts'

/** A JSON object as the API returns it. */
export type View = Record<string, unknown>

/**
 * Whether Neutron has the tag extension: without it, no resource has a `tags` key, no `/tags`
 * route exists and the tag filters are invalid (Neutron 21: the extension adds the attribute).
 */
export function hasTags(cloud: Cloud): boolean {
  return cloud.neutronExtensions.has('standard-attr-tag')
}

function standard(cloud: Cloud, r: Omit<NeutronStandard, 'name'>): View {
  return {
    tenant_id: r.projectId,
    project_id: r.projectId,
    description: r.description,
    ...(hasTags(cloud) ? { tags: [...r.tags] } : {}),
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    revision_number: r.revisionNumber,
  }
}

/** A network. */
export function networkView(cloud: Cloud, n: NetworkRec, admin: boolean): View {
  const v: View = {
    id: n.id,
    name: n.name,
    admin_state_up: n.adminStateUp,
    mtu: n.mtu,
    status: 'ACTIVE',
    subnets: cloud.state.subnets.filter((s) => s.networkId === n.id).map((s) => s.id),
    shared: n.shared,
    availability_zone_hints: [],
    availability_zones: [],
    ipv4_address_scope: null,
    ipv6_address_scope: null,
    'router:external': n.external,
    port_security_enabled: n.portSecurityEnabled,
    ...standard(cloud, n),
  }
  // auto_allocate adds is_default to external networks only.
  if (n.external) v['is_default'] = false
  if (admin) {
    v['provider:network_type'] = n.providerNetworkType
    v['provider:physical_network'] = n.providerPhysicalNetwork
    v['provider:segmentation_id'] = n.providerSegmentationId
  }
  return v
}

/** A subnet. */
export function subnetView(cloud: Cloud, s: SubnetRec): View {
  return {
    id: s.id,
    name: s.name,
    network_id: s.networkId,
    ip_version: 4,
    subnetpool_id: null,
    cidr: s.cidr,
    gateway_ip: s.gatewayIp,
    allocation_pools: s.allocationPools.map((p) => ({ ...p })),
    dns_nameservers: [...s.dnsNameservers],
    host_routes: s.hostRoutes.map((h) => ({ ...h })),
    enable_dhcp: s.enableDhcp,
    ipv6_ra_mode: null,
    ipv6_address_mode: null,
    service_types: [],
    ...standard(cloud, s),
  }
}

/** A port. */
export function portView(cloud: Cloud, p: PortRec, admin: boolean): View {
  const v: View = {
    id: p.id,
    name: p.name,
    network_id: p.networkId,
    mac_address: p.macAddress,
    admin_state_up: p.adminStateUp,
    status: p.status,
    device_id: p.deviceId,
    device_owner: p.deviceOwner,
    fixed_ips: p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.ipAddress })),
    allowed_address_pairs: p.allowedAddressPairs.map((a) => ({
      ip_address: a.ipAddress,
      mac_address: a.macAddress,
    })),
    extra_dhcp_opts: [],
    security_groups: [...p.securityGroups],
    port_security_enabled: p.portSecurityEnabled,
    'binding:vnic_type': p.vnicType,
    ...standard(cloud, p),
  }
  if (admin) {
    const bound = p.bindingHostId !== ''
    v['binding:host_id'] = p.bindingHostId
    v['binding:profile'] = {}
    v['binding:vif_details'] = bound ? { port_filter: true } : {}
    v['binding:vif_type'] = bound ? 'other' : 'unbound'
  }
  return v
}

/** A security-group rule. */
export function ruleView(r: SecurityGroupRuleRec): View {
  return {
    id: r.id,
    security_group_id: r.securityGroupId,
    direction: r.direction,
    ethertype: r.ethertype,
    protocol: r.protocol,
    port_range_min: r.portRangeMin,
    port_range_max: r.portRangeMax,
    remote_ip_prefix: r.remoteIpPrefix,
    remote_group_id: r.remoteGroupId,
    remote_address_group_id: null,
    normalized_cidr: r.remoteIpPrefix === null ? null : normalizeCidr(r.remoteIpPrefix),
    tenant_id: r.projectId,
    project_id: r.projectId,
    description: r.description,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    revision_number: r.revisionNumber,
  }
}

/** A security group with its rules. */
export function securityGroupView(cloud: Cloud, g: SecurityGroupRec): View {
  return {
    id: g.id,
    name: g.name,
    stateful: g.stateful,
    shared: false,
    security_group_rules: cloud.state.securityGroupRules
      .filter((r) => r.securityGroupId === g.id)
      .map(ruleView),
    ...standard(cloud, g),
  }
}

/** A router. */
export function routerView(cloud: Cloud, r: RouterRec, admin: boolean): View {
  const v: View = {
    id: r.id,
    name: r.name,
    admin_state_up: r.adminStateUp,
    status: 'ACTIVE',
    external_gateway_info:
      r.gateway === null
        ? null
        : {
            network_id: r.gateway.networkId,
            enable_snat: r.gateway.enableSnat,
            external_fixed_ips: r.gateway.fixedIps.map((f) => ({
              subnet_id: f.subnetId,
              ip_address: f.ipAddress,
            })),
          },
    availability_zone_hints: [],
    availability_zones: [],
    routes: [],
    flavor_id: null,
    ...standard(cloud, r),
  }
  if (admin) {
    v['distributed'] = false
    v['ha'] = false
  }
  return v
}

/** A floating IP, with `port_details` of the port it is associated with. */
export function floatingIpView(cloud: Cloud, f: FloatingIpRec): View {
  const port = f.portId === null ? undefined : cloud.state.ports.find((p) => p.id === f.portId)
  return {
    id: f.id,
    floating_ip_address: f.floatingIpAddress,
    floating_network_id: f.floatingNetworkId,
    router_id: f.routerId,
    port_id: f.portId,
    fixed_ip_address: f.fixedIpAddress,
    status: f.portId === null ? 'DOWN' : 'ACTIVE',
    port_details:
      port === undefined
        ? null
        : {
            name: port.name,
            network_id: port.networkId,
            mac_address: port.macAddress,
            admin_state_up: port.adminStateUp,
            status: port.status,
            device_id: port.deviceId,
            device_owner: port.deviceOwner,
          },
    ...standard(cloud, f),
  }
}
