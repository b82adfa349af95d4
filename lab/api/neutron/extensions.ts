/**
 * The Neutron extensions the lab can announce, and which it does: all of them but the optional
 * ones by default (as a stock ML2 Neutron), changed with the option `neutronExtensions` or
 * RUNBOOK_LAB_NEUTRON_EXTENSIONS: `+tag-ports-during-bulk-creation,-standard-attr-tag`.
 */

/** Extensions the lab implements (a subset of what Neutron's ML2 + router plugins announce). */
export const EXTENSIONS: [alias: string, name: string][] = [
  ['allowed-address-pairs', 'Allowed Address Pairs'],
  ['binding', 'Port Binding'],
  ['external-net', 'Neutron external network'],
  ['extra_dhcp_opt', 'Neutron Extra DHCP options'],
  ['ext-gw-mode', 'Neutron L3 Configurable external gateway mode'],
  ['filter-validation', 'Filter parameters validation'],
  ['fip-port-details', 'Floating IP Port Details Extension'],
  ['ip-substring-filtering', 'IP address substring filtering'],
  ['net-mtu', 'Network MTU'],
  ['net-mtu-writable', 'Network MTU (writable)'],
  ['network_availability_zone', 'Network Availability Zone'],
  ['port-security', 'Port Security'],
  ['port-security-groups-filtering', 'Port filtering on security groups'],
  ['provider', 'Provider Network'],
  ['router', 'Neutron L3 Router'],
  ['security-group', 'security-group'],
  ['security-groups-normalized-cidr', 'Security Group Rule normalized CIDR'],
  [
    'security-groups-remote-address-group',
    'Remote address group id field for security group rules',
  ],
  ['security-groups-shared-filtering', 'Security group filtering on the shared field'],
  ['stateful-security-group', 'Stateful security group'],
  ['standard-attr-description', 'standard-attr-description'],
  ['standard-attr-revisions', 'Resource revision numbers'],
  [
    'standard-attr-tag',
    'Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip',
  ],
  ['standard-attr-timestamp', 'Resource timestamps'],
  ['empty-string-filtering', 'Empty String Filtering Extension'],
  ['pagination', 'Pagination support'],
  ['sorting', 'Sorting support'],
  ['project-id', 'project_id field enabled'],
  ['tag-ports-during-bulk-creation', 'Tag Ports During Bulk Creation'],
]

/** Off unless asked for: ML2 extension drivers a stock configuration does not load. */
export const OPTIONAL_EXTENSIONS: readonly string[] = ['tag-ports-during-bulk-creation']

/**
 * The aliases announced, from a spec of `+alias` / `-alias` (comma-separated; a bare alias is +).
 * @example extensionSet('+tag-ports-during-bulk-creation').has('tag-ports-during-bulk-creation') // true
 */
export function extensionSet(spec = ''): ReadonlySet<string> {
  const on = new Set(EXTENSIONS.map(([a]) => a).filter((a) => !OPTIONAL_EXTENSIONS.includes(a)))
  for (const raw of spec.split(',').map((x) => x.trim())) {
    if (raw === '') continue
    const alias = raw.replace(/^[+-]/, '')
    if (!EXTENSIONS.some(([a]) => a === alias))
      throw new Error(
        `unknown Neutron extension '${alias}' (the lab knows ${EXTENSIONS.map(([a]) => a).join(', ')})`,
      )
    if (raw.startsWith('-')) on.delete(alias)
    else on.add(alias)
  }
  return on
}
