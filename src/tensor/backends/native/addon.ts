// Loads the N-API addon that node-gyp builds at install time (build/Release/glimpse_native.node).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions; each kernel family's wrapper (this folder) declares what it calls. */
export type Addon = Record<string, (...args: any[]) => any>;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('glimpse: cannot find the package root');
    dir = parent;
  }
  return dir;
}

let cached: Addon | null | undefined;
let loadError: Error | undefined;

/** The addon, or null when it is not built (then the reference backend is used). */
export function loadAddon(): Addon | null {
  if (cached !== undefined) return cached;
  // GLIMPSE_ADDON points at another build of the addon (used by development builds).
  const path = process.env.GLIMPSE_ADDON ?? join(packageRoot(), 'build', 'Release', 'glimpse_native.node');
  try {
    cached = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    loadError = e as Error;
    cached = null;
  }
  return cached;
}

export function addonLoadError(): Error | undefined {
  return loadError;
}

export function requireAddon(): Addon {
  const a = loadAddon();
  if (!a) throw new Error(`glimpse: the native addon is not built (${loadError?.message}); run npm install`);
  return a;
}
