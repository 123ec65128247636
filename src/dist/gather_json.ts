// Gathering small JSON values (configs, descriptions, per-sample metadata) from every rank.
import { tensor } from '../tensor/index.js';
import type { Communicator } from './communicator.js';

/** Every rank's value (anything JSON holds), indexed by rank. A collective: every rank must call it. */
export async function allGatherJSON<T>(comm: Communicator, value: T): Promise<T[]> {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const parts = await comm.allGather(tensor(bytes, { dtype: 'uint8', shape: [bytes.length] }));
  const decoder = new TextDecoder();
  return parts.map((p) => JSON.parse(decoder.decode(p.data() as Uint8Array)) as T);
}
