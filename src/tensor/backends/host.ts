// Storage in host memory, shared by the CPU backends (reference and native): both read and
// write the same TypedArrays, so moving a tensor between them copies nothing.
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Backend, Storage, View } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';
import { bytesPerElement } from '../dtype.js';

export class HostStorage implements Storage {
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly data: TypedArray,
  ) {}
  get length(): number {
    return this.data.length;
  }
}

export function hostData(s: Storage): TypedArray {
  if (!(s instanceof HostStorage)) throw new Error(`storage of backend '${s.backend.name}' is not in host memory`);
  return s.data;
}

/** The typed array behind a view's storage. */
export function viewData(v: View): TypedArray {
  return hostData(v.storage);
}

/**
 * A typed array over memory that is not zero-filled. GLIMPSE_POISON_EMPTY=1 fills it with NaN
 * (floats) or 0x7f bytes instead, so a kernel that reads an output before writing it shows up in tests.
 */
export function allocUninitialized(dtype: DType, length: number): TypedArray {
  const bytes = bytesPerElement(dtype);
  const buf = Buffer.allocUnsafeSlow(length * bytes);
  return poisonHost(typedArrayOver(dtype, buf.buffer, buf.byteOffset, length));
}

// Buffers of dead storages, handed out again. A training step allocates about its own size in
// activations and gradients, all dead by the next step; each few tens of MB of new array buffers
// makes V8 collect (a tiny-CLIP step: some 40 collections, whose helper threads take the cores from
// the kernels' threads). A loop that calls reclaimHostMemory() at its step boundaries gets one
// collection there instead, which finds the step's storages dead; their buffers go to a pool that
// serves the next empty() of the same dtype and length. Only an empty() storage's buffer is pooled:
// its typed array never leaves the storage (kernels use it during a call; data() and toHost() copy),
// so once the storage is unreachable, the buffer is too. The pool never holds more than one step's
// worth (what empty() handed out between the last two collections) and is emptied at each one, so
// memory stays at what the loop needs; with no such loop, nothing is pooled.
// A registered storage's buffer outlives the storage until the registry's callback runs, which
// needs a turn of the event loop: work between two collections that never yields one (an
// evaluation's loop over prefetched batches) would keep every buffer it made. So registration
// stops once twice the pool's cap has been handed out since the last collection; later storages
// die as any other memory does.
const idle = new Map<string, TypedArray[]>();
let idleBytes = 0;
let idleCap = 0;
let handedOutBytes = 0; // by emptyHost since the last reclaimHostMemory() collection
const deadStorages = new FinalizationRegistry<{ key: string; data: TypedArray }>(({ key, data }) => {
  if (idleBytes + data.byteLength > idleCap) return;
  idleBytes += data.byteLength;
  const list = idle.get(key);
  if (list) list.push(data);
  else idle.set(key, [data]);
});

/** A storage over uninitialized memory (see allocUninitialized), reusing a dead storage's buffer when one fits. */
export function emptyHost(backend: Backend, dtype: DType, length: number): HostStorage {
  const key = `${dtype}:${length}`;
  const reused = idle.get(key)?.pop();
  if (reused) idleBytes -= reused.byteLength;
  const storage = new HostStorage(backend, dtype, reused ? poisonHost(reused) : allocUninitialized(dtype, length));
  handedOutBytes += storage.data.byteLength;
  if (idleCap > 0 && handedOutBytes <= 2 * idleCap) deadStorages.register(storage, { key, data: storage.data });
  return storage;
}

/** Below this many bytes handed out since the last collection, reclaimHostMemory() does not collect. */
const RECLAIM_MIN_BYTES = 256 * 2 ** 20;

/**
 * Makes the buffers of the storages that have died since the last call available to the next
 * empty() calls: one full collection, then a turn of the event loop for the collector's callbacks.
 * For the step boundaries of a loop (the trainer's); it collects only once empty() has handed out
 * RECLAIM_MIN_BYTES since its last collection, so small steps share one.
 */
export async function reclaimHostMemory(): Promise<void> {
  if (handedOutBytes < RECLAIM_MIN_BYTES) return;
  idleCap = handedOutBytes;
  handedOutBytes = 0;
  idle.clear();
  idleBytes = 0;
  fullCollection();
  await new Promise((resolve) => setImmediate(resolve));
}

let collect: (() => void) | null = null;
function fullCollection(): void {
  if (!collect) {
    // Without node --expose-gc, the flag is set now and gc() taken from a new context (as Jest's
    // leak detector does): setting it at run time affects only new contexts.
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as () => void;
    }
  }
  collect();
}

/** Under GLIMPSE_POISON_EMPTY=1, fills memory an empty() storage hands out again (see allocUninitialized). */
export function poisonHost<T extends TypedArray>(out: T): T {
  if (!poison) return out;
  if (out instanceof Float32Array || out instanceof Float64Array) out.fill(NaN);
  else new Uint8Array(out.buffer, out.byteOffset, out.byteLength).fill(0x7f);
  return out;
}

const poison = process.env.GLIMPSE_POISON_EMPTY === '1';

function typedArrayOver(dtype: DType, buffer: ArrayBufferLike, offset: number, length: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, offset, length);
    case 'float64': return new Float64Array(buffer, offset, length);
    case 'int32': return new Int32Array(buffer, offset, length);
    case 'int64': return new BigInt64Array(buffer, offset, length);
    case 'uint8':
    case 'bool': return new Uint8Array(buffer, offset, length);
  }
}
