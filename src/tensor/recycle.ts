// Storage reuse within a backward pass. Every storage a training step allocates is freed only by
// V8's garbage collector, and each few tens of MB of new array buffers make V8 collect: a CLIP step
// that allocates a gigabyte spends a tenth of its time in GC. Backward knows better than the
// collector when most of its gradients die: once a node's gradient has been consumed, and no
// gradient still pending shares its storage, nothing can reach that storage any more, provided it
// was born during this backward (so no forward tensor, no caller's seed gradient and no leaf's .grad
// is it). Such storages go to a pool that backend.empty() serves same-sized requests from until the
// pass ends; then the pool is left to the collector. (Kept for the next forward, it would serve few
// requests: by the end of backward the pool holds little, and what the forward needs back, the
// saved activations, cannot be proved dead.)
//
// A no-grad forward through a stack of layers (releasingSteps) recycles too: a layer without side
// effects leaves nothing reachable but its output, so every other storage it allocated serves the
// next layers' requests. Without it, a ViT-B/32 forward at batch 16 allocates about a gigabyte of
// short-lived buffers and V8 collects some twenty times per call.
import type { Backend, Storage } from './backend.js';
import type { DType } from './dtype.js';

/** Released storages by backend, then by dtype and length. */
type Pool = Map<Backend, Map<string, Storage[]>>;

/** Storages allocated during the running backward: the only ones that may be released. */
let born: WeakSet<Storage> | null = null;
/** Storages allocated during the running step of releasingSteps. */
let stepBorn: Set<Storage> | null = null;
let pool: Pool = new Map();
let disabled = 0;
let reusedCount = 0;

/** How many allocations recycled storages have served since the process started (for tests and benchmarks). */
export function recycledAllocations(): number {
  return reusedCount;
}

const sizeKey = (dtype: DType, length: number) => `${dtype}:${length}`;

/**
 * Runs fn (a backward pass) with recycling on. A backward nested in another (run by a backward
 * rule) recycles nothing: its root gradient is the outer pass's, which the outer may still hold.
 */
export function withRecycling<T>(fn: () => T): T {
  if (born) return withoutRecycling(fn);
  if (disabled > 0) return fn();
  born = new WeakSet();
  try {
    return fn();
  } finally {
    born = null;
    pool = new Map();
  }
}

/** Runs fn with recycling off: every allocation fresh, nothing released (to compare against). */
export function withoutRecycling<T>(fn: () => T): T {
  const outer = born;
  born = null;
  disabled++;
  try {
    return fn();
  } finally {
    disabled--;
    born = outer;
  }
}

/** A released storage of exactly this backend, dtype and length, or null. Its contents are stale. */
export function takeRecycled(backend: Backend, dtype: DType, length: number): Storage | null {
  if (!born && !stepBorn) return null;
  const s = pool.get(backend)?.get(sizeKey(dtype, length))?.pop() ?? null;
  if (s) reusedCount++;
  return s;
}

/** Notes a storage a backend has just handed out (fresh or recycled): during backward, it is releasable. */
export function noteBorn(s: Storage): Storage {
  born?.add(s);
  stepBorn?.add(s);
  return s;
}

/**
 * Takes a storage out of recycling for good, when the caller has proved it unreachable and keeps it
 * (backward hands such a gradient to its leaf rather than copying it). False unless born in this pass.
 */
export function adopt(s: Storage): boolean {
  return born !== null && born.delete(s);
}

/**
 * Gives back a storage the caller has proved unreachable; ignored unless it was born in this pass
 * (anything older may be held elsewhere).
 */
export function release(s: Storage): void {
  if (!born || !born.delete(s)) return; // deleted: released once, however many dead tensors pointed at it
  toPool(s);
}

function toPool(s: Storage): void {
  let bySize = pool.get(s.backend);
  if (!bySize) pool.set(s.backend, (bySize = new Map()));
  const key = sizeKey(s.dtype, s.length);
  const list = bySize.get(key);
  if (list) list.push(s);
  else bySize.set(key, [s]);
}

/**
 * x after `steps` steps, x = step(x, i), each a computation without side effects: no storage it
 * allocates stays reachable except through its result (`holds` lists the result's storages).
 * The rest go to a pool that the later steps' empty() requests are served from; after the last
 * step the pool is left to the collector. For no-grad forwards only (a tensor with a gradient
 * function keeps its inputs reachable); inside a backward pass or another releasingSteps, or with
 * recycling off, the steps just run.
 */
export function releasingSteps<T>(x: T, steps: number, step: (x: T, i: number) => T,
  holds: (result: T) => readonly Storage[]): T {
  if (born || stepBorn || disabled > 0) {
    for (let i = 0; i < steps; i++) x = step(x, i);
    return x;
  }
  try {
    for (let i = 0; i < steps; i++) {
      const allocated = (stepBorn = new Set());
      x = step(x, i);
      stepBorn = null;
      const kept = new Set(holds(x));
      for (const s of allocated) if (!kept.has(s)) toPool(s);
    }
    return x;
  } finally {
    stepBorn = null;
    pool = new Map();
  }
}
