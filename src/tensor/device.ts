// Which backend new tensors go to. 'native' (the C++ addon) when it is built, else 'reference';
// GLIMPSE_BACKEND=reference|native overrides the default.
import type { Backend } from './backend.js';
import { ReferenceBackend } from './backends/reference.js';
import { createNativeBackend } from './backends/native.js';
import { addonLoadError } from './backends/native/addon.js';
import { reclaimHostMemory } from './backends/host.js';

const backends = new Map<string, Backend | null>();
let current: Backend | undefined;

/** A backend by name: 'reference' or 'native' (a CUDA backend will register as 'cuda'). */
export function getBackend(name: string): Backend {
  if (!backends.has(name)) {
    if (name === 'reference') backends.set(name, new ReferenceBackend());
    else if (name === 'native') backends.set(name, createNativeBackend());
    else throw new Error(`unknown backend '${name}' (known: reference, native)`);
  }
  const b = backends.get(name);
  if (!b) throw new Error(`backend '${name}' is not available: ${addonLoadError()?.message ?? 'not built'}`);
  return b;
}

export function hasBackend(name: string): boolean {
  try {
    getBackend(name);
    return true;
  } catch {
    return false;
  }
}

export function defaultBackend(): Backend {
  if (!current) {
    const wanted = process.env.GLIMPSE_BACKEND;
    current = wanted ? getBackend(wanted) : hasBackend('native') ? getBackend('native') : getBackend('reference');
  }
  return current;
}

export function setDefaultBackend(b: Backend | string): void {
  current = typeof b === 'string' ? getBackend(b) : b;
}

/**
 * Makes the memory of every tensor that has become unreachable reusable by the next allocations
 * at once, rather than as the collector happens to find it; for the step boundaries of a training
 * loop, where a step's activations and gradients have just died (see emptyHost in backends/host.ts).
 */
export function reclaimMemory(): Promise<void> {
  return reclaimHostMemory();
}
