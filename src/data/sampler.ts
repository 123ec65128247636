// Which items a rank reads, epoch by epoch and batch by batch. The image loader and the token
// loader share it, so both shuffle, shard and resume alike: the order of an epoch is a
// permutation drawn from (seed, epoch), rank r takes every worldSize-th item from r, and a batch
// is a pure function of its position.
import { Generator } from '../tensor/random.js';
import { mixSeed, SEED_STREAMS } from './common.js';

/** The next batch to read: an epoch and a batch index within it. */
export interface LoaderPosition { readonly epoch: number; readonly batch: number }

export interface SamplerOptions {
  batchSize: number;
  seed?: number;              // default 0
  shuffle?: boolean;          // default true; reshuffled per epoch from (seed, epoch)
  dropLast?: boolean;         // default true when shuffle
  rank?: number; worldSize?: number; // each rank reads a disjoint 1/worldSize of each epoch
}

/** The position after `p` in a loader of `batchesPerEpoch` batches. */
export function nextPosition(p: LoaderPosition, batchesPerEpoch: number): LoaderPosition {
  return p.batch + 1 < batchesPerEpoch ? { epoch: p.epoch, batch: p.batch + 1 } : { epoch: p.epoch + 1, batch: 0 };
}

export function checkInt(v: unknown, what: string, lo: number, hi = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new Error(`${what} must be an integer in [${lo}, ${hi}], got ${String(v)}`);
  return v;
}

export class EpochSampler {
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly rank: number;
  readonly worldSize: number;
  /** Items this rank reads per epoch. */
  readonly perRank: number;
  /** May be 0 (fewer items than a batch): the loader says why that is an error for it. */
  readonly batchesPerEpoch: number;
  private cache: { epoch: number; order: Int32Array } | null = null;

  /** `where` prefixes errors (the loader's name). */
  constructor(readonly count: number, options: SamplerOptions, where: string) {
    checkInt(count, `${where}: item count`, 1);
    this.batchSize = checkInt(options.batchSize, `${where}: batchSize`, 1);
    this.seed = checkInt(options.seed ?? 0, `${where}: seed`, 0);
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? this.shuffle;
    this.worldSize = checkInt(options.worldSize ?? 1, `${where}: worldSize`, 1);
    this.rank = checkInt(options.rank ?? 0, `${where}: rank`, 0, this.worldSize - 1);
    // Dropping the remainder keeps every rank at the same number of items (and steps).
    this.perRank = this.dropLast ? Math.floor(count / this.worldSize) : Math.ceil((count - this.rank) / this.worldSize);
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.perRank / this.batchSize) : Math.ceil(this.perRank / this.batchSize);
  }

  /** This rank's item indices for an epoch, in order. */
  epochOrder(epoch: number): Int32Array {
    if (this.cache?.epoch === epoch) return this.cache.order;
    const n = this.count;
    const all = this.shuffle ? new Generator(mixSeed(SEED_STREAMS.order, this.seed, epoch)).permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    const order = new Int32Array(this.perRank);
    for (let k = 0; k < this.perRank; k++) order[k] = all[this.rank + k * this.worldSize]!;
    this.cache = { epoch, order };
    return order;
  }

  /** The item indices of the batch at a position (the last of an epoch may be short without dropLast). */
  indices(position: LoaderPosition): Int32Array {
    const order = this.epochOrder(position.epoch);
    const start = position.batch * this.batchSize;
    return order.subarray(start, Math.min(start + this.batchSize, order.length));
  }
}
