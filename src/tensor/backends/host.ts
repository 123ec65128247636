// Storage in host memory, shared by the CPU backends (reference and native): both read and
// write the same TypedArrays, so moving a tensor between them copies nothing.
import type { Backend, Storage, View } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';

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
