// Files that ship with Glimpse under assets/ at the package root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The path of assets/<relative>, searched upwards from this module (it runs from src/ or dist/src/). */
export function assetPath(relative: string): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'assets', relative);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`glimpse: the packaged file assets/${relative} is missing (searched upwards from ${start})`);
  }
}
