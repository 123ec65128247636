// Storage in host memory, shared by the CPU backends (reference and native): both read and
// write the same TypedArrays, so moving a tensor between them copies nothing.
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
