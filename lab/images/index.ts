/**
 * The lab's images (lab/images): built from Debian's archive on first use and cached across labs.
 * One build per image and process at a time: concurrent boots wait for the same build.
 */
import { DEFAULT_IMAGE_CACHE, ensureImage, type BuiltImage } from './build.ts'
import { ensureKernelDisk, type KernelDisk } from './kernel.ts'
import { IMAGE_RECIPES, recipeByKey } from './recipe.ts'

export { DEFAULT_IMAGE_CACHE, ensureImage, imagePaths, type BuiltImage } from './build.ts'
export { ensureKernelDisk, type KernelDisk } from './kernel.ts'
export { DEBIAN_12, IMAGE_RECIPES, recipeByKey, recipeHash, type ImageRecipe } from './recipe.ts'

/** Builds (or finds) images for the driver, each at most once per process. */
export interface ImageStore {
  /** The image's root filesystem (namespace VMs' lower layer). */
  root(key: string): Promise<BuiltImage>
  /** The image as a kernel VM's boot files. */
  kernel(key: string): Promise<KernelDisk>
}

/**
 * An image store over a cache directory (default RUNBOOK_LAB_IMAGE_DIR or /var/cache/runbook-lab/images).
 * @example const img = await imageStore().root('debian-12')
 */
export function imageStore(
  opts: { cacheDir?: string; log?: (line: string) => void } = {},
): ImageStore {
  const roots = new Map<string, Promise<BuiltImage>>()
  const kernels = new Map<string, Promise<KernelDisk>>()
  const cacheDir = opts.cacheDir ?? process.env['RUNBOOK_LAB_IMAGE_DIR'] ?? DEFAULT_IMAGE_CACHE
  const once = <T>(m: Map<string, Promise<T>>, key: string, f: () => Promise<T>): Promise<T> => {
    let p = m.get(key)
    if (p === undefined) {
      p = f()
      m.set(key, p)
      // a failed build is tried again on the next use
      p.catch(() => m.delete(key))
    }
    return p
  }
  const store: ImageStore = {
    root: (key) =>
      once(roots, key, async () => {
        const r = recipeByKey(key)
        if (r === undefined)
          throw new Error(
            `no image '${key}' (the lab has ${IMAGE_RECIPES.map((x) => x.key).join(', ')})`,
          )
        return ensureImage(r, { cacheDir, ...(opts.log ? { log: opts.log } : {}) })
      }),
    kernel: (key) =>
      once(kernels, key, async () => ensureKernelDisk(await store.root(key), opts.log)),
  }
  return store
}
