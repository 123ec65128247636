// Loads the N-API addon that node-gyp builds at install time (build/Release/glimpse_native.node).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { codeMismatch } from './codes.js';

/** The addon's functions; each kernel family's wrapper (this folder) declares what it calls. */
export type Addon = Record<string, (...args: any[]) => any>;

/** The folder of the package's package.json, where build/ lies. */
export function packageRoot(): string {
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

/**
 * The addon, or null when it is not built (then the reference backend is used, and
 * addonLoadError says why). An addon whose op codes differ from codes.ts is an error.
 */
export function loadAddon(): Addon | null {
  if (cached !== undefined) return cached;
  // GLIMPSE_ADDON points at another build of the addon (used by development builds).
  const path = process.env.GLIMPSE_ADDON ?? join(packageRoot(), 'build', 'Release', 'glimpse_native.node');
  try {
    cached = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    loadError = e as Error;
    cached = null;
    return cached;
  }
  // The numeric codes the wrappers pass must be the ones the kernels were built with: a stale or
  // foreign build is refused rather than run with codes that name other ops, or quietly replaced
  // by the slow reference backend.
  const mismatch = codeMismatch((cached as unknown as { codes?: unknown }).codes);
  if (mismatch) {
    cached = undefined;
    throw new Error(`glimpse: the native addon at ${path} does not match this build's op codes: ${mismatch}; rebuild it (npm install)`);
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
