import { createHash } from 'node:crypto'

/** Every name the lab gives to a namespace, an interface, a mount or an nft table starts so. */
export const LAB_PREFIX = 'rbl'

/** The router's network namespace: the tenant bridge, the gateway address and floating-IP NAT. */
export const ROUTER_NETNS = 'rbl-router'
/** The tenant bridge inside the router namespace. */
export const BRIDGE = 'rbl-br0'
/** The machine's end of the veth to the router (root namespace), 198.51.100.1/25. */
export const FIP_HOST_IF = 'rbl-fip0'
/** The router's end of that veth, 198.51.100.2/25; floating IPs are /32 addresses on it. */
export const FIP_ROUTER_IF = 'rbl-gw0'
/** The machine's address on the floating range. */
export const FIP_HOST_ADDR = '198.51.100.1'
/** The router's own address on the floating range (SNAT source of VMs without a floating IP). */
export const FIP_ROUTER_ADDR = '198.51.100.2'
/** Prefix length of the floating range the machine routes to the router. */
export const FIP_PREFIX_LEN = 25
/** The nft table (bridge family) with port security: anti-spoofing and security-group ingress. */
export const NFT_BRIDGE_TABLE = 'rbl_ports'
/** The nft table (ip family) with conntrack state marks, security-group egress and NAT. */
export const NFT_IP_TABLE = 'rbl_router'
/** Name of a VM's NIC inside the VM, as on the seed's Ubuntu images. */
export const VM_IF = 'ens3'

/** The names of one VM on the machine. */
export interface VmNames {
  /** 8 hex characters, unique among the lab's VMs. */
  short: string
  /** The VM's network namespace. */
  netns: string
  /** The bridge port of the VM's veth, in the router namespace. */
  veth: string
  /** Source name of the VM's disk (a tmpfs in the root mount namespace). */
  diskSource: string
  /** Source name of the VM's overlay root (only inside the VM's mount namespace). */
  rootSource: string
}

/**
 * A short, stable name fragment for a server id: its first 8 hex digits when it is a UUID, a hash
 * otherwise (interface names have at most 15 characters).
 * @example shortId('3f2a9c1e-....') // '3f2a9c1e'
 */
export function shortId(id: string): string {
  const hex = id.toLowerCase().replace(/-/g, '')
  if (/^[0-9a-f]{8}/.test(hex)) return hex.slice(0, 8)
  return createHash('sha256').update(id).digest('hex').slice(0, 8)
}

/** All names of a VM from its short id. */
export function vmNames(short: string): VmNames {
  return {
    short,
    netns: `rbl-vm-${short}`,
    veth: `rblv-${short}`,
    diskSource: `rbl-disk-${short}`,
    rootSource: `rbl-root-${short}`,
  }
}
