/**
 * The lab's image catalogue: what each image is built from. An image is a Debian root filesystem
 * made by `debootstrap` from Debian's archive; its recipe hash names the cache entry, so a changed
 * recipe means a new build and an unchanged one is never rebuilt.
 */
import { createHash } from 'node:crypto'

/** How one image is built, and what Glance says about it. */
export interface ImageRecipe {
  /** Glance name (`Debian 12`). */
  name: string
  /** Cache directory prefix and the driver's image key (`debian-12`). */
  key: string
  /** `os_distro` / `os_version` Glance properties. */
  distro: string
  version: string
  /** The image's login user (Debian's cloud images: `debian`). */
  defaultUser: string
  /** Debian suite given to debootstrap. */
  suite: string
  /** debootstrap `--variant`. */
  variant: 'minbase'
  /** Packages on top of the variant (debootstrap `--include`). */
  packages: readonly string[]
}

/**
 * Debian 12 as a cloud would offer it, trimmed: minbase plus what a server of the seeds needs to be
 * reached and managed (sshd, sudo, python3 for tools that want it, iproute2, ping, curl, kmod so a
 * kernel VM can load modules). No keepalived, no ipvsadm: runbooks install them from the mirror.
 */
export const DEBIAN_12: ImageRecipe = {
  name: 'Debian 12',
  key: 'debian-12',
  distro: 'debian',
  version: '12',
  defaultUser: 'debian',
  suite: 'bookworm',
  variant: 'minbase',
  packages: [
    'openssh-server',
    'sudo',
    'iproute2',
    'iputils-ping',
    'python3-minimal',
    'curl',
    'ca-certificates',
    'kmod',
    'procps',
    // a network configuration the guest can extend, as Debian's cloud images have (ifupdown's
    // /etc/network/interfaces): `address` with persist: true (the VIP on lo of a real server)
    'ifupdown',
  ],
}

/** Every image the lab offers. */
export const IMAGE_RECIPES: readonly ImageRecipe[] = [DEBIAN_12]

/** Bumped when the build steps themselves change (not only the recipe's data). */
const BUILDER_VERSION = 1

/**
 * Short hash of everything that decides an image's content.
 * @example recipeHash(DEBIAN_12) // '3f2a9c1e0b7d'
 */
export function recipeHash(r: ImageRecipe): string {
  const data = JSON.stringify({
    builder: BUILDER_VERSION,
    suite: r.suite,
    variant: r.variant,
    packages: [...r.packages].sort(),
  })
  return createHash('sha256').update(data).digest('hex').slice(0, 12)
}

/** The recipe of an image key, or undefined. */
export function recipeByKey(key: string): ImageRecipe | undefined {
  return IMAGE_RECIPES.find((r) => r.key === key)
}
