// Which items a rank reads, epoch by epoch and batch by batch, with the semantics of PyTorch's
// DistributedSampler. The image loader and the token loader share it, so both shuffle, shard and
// resume alike:
// - the order of an epoch is a permutation of the items drawn from (seed, epoch) (or 0..n-1
//   unshuffled), the same on every rank;
// - it is cut or padded to a multiple of worldSize so that every rank reads the same number of
//   items, and so takes the same number of steps (a rank that ran out first would leave the
//   others waiting in a collective): dropLast drops the tail, otherwise the order wraps around
//   and its first items are read again at the end (on other ranks than the first time);
// - rank r takes every worldSize-th item of it from r (strided assignment);
// - a batch is a pure function of its position.
// Strided assignment makes a batch position global: with a local batch of G / worldSize, the
// k-th batches of all ranks together are items k*G .. (k+1)*G - 1 of the epoch's order whatever
// worldSize is (for the epoch's full batches), so a run resumes at another world size from the
// same position.
import { Generator } from '../tensor/random.js';
import { mixSeed, SEED_STREAMS } from './common.js';

/** The next batch to read: an epoch and a batch index within it. */
export interface LoaderPosition { readonly epoch: number; readonly batch: number }

export interface SamplerOptions {
  batchSize: number;
  seed?: number;              // default 0
  shuffle?: boolean;          // default true; reshuffled per epoch from (seed, epoch)
  /**
   * Default true when shuffle. True: the tail that does not divide among the ranks and each rank's
   * last short batch are dropped; false: the epoch is padded by wrapping around to a multiple of
   * worldSize, and the last batch may be short (on every rank alike).
   */
  dropLast?: boolean;
  rank?: number; worldSize?: number; // each rank reads 1/worldSize of each epoch (disjoint, but for padding)
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
  /** Items this rank reads per epoch: the same on every rank. */
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
    // Cut or padded to the same number of items on every rank, so every rank takes as many steps.
    this.perRank = this.dropLast ? Math.floor(count / this.worldSize) : Math.ceil(count / this.worldSize);
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.perRank / this.batchSize) : Math.ceil(this.perRank / this.batchSize);
  }

  /** This rank's item indices for an epoch, in order (without dropLast, padding repeats the epoch's first items). */
  epochOrder(epoch: number): Int32Array {
    if (this.cache?.epoch === epoch) return this.cache.order;
    const n = this.count;
    const all = this.shuffle ? new Generator(mixSeed(SEED_STREAMS.order, this.seed, epoch)).permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    const order = new Int32Array(this.perRank);
    // Position p >= n is padding: the order wraps around (PyTorch repeats it as often as needed).
    for (let k = 0; k < this.perRank; k++) order[k] = all[(this.rank + k * this.worldSize) % n]!;
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
