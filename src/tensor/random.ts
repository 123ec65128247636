// Seeded random numbers for initialisation, dropout and data order. A Generator is a
// xoshiro128** stream; the same seed gives the same numbers on every backend and machine.
import type { DType } from './dtype.js';
import { allocHost } from './dtype.js';
import { type Shape, type TensorOptions, type Tensor, tensor } from './tensor.js';
import { numel } from './backend.js';

export class Generator {
  private s = new Uint32Array(4);
  private spareNormal: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Resets the stream; seeds are expanded with splitmix32 so nearby seeds give unrelated streams. */
  manualSeed(seed: number): this {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
    this.spareNormal = null;
    return this;
  }

  /** The full state, to save in a checkpoint and restore with setState. */
  getState(): number[] {
    return [...this.s, this.spareNormal ?? NaN];
  }
  setState(state: readonly number[]): void {
    if (state.length !== 5) throw new Error('Generator.setState: expected 5 numbers from getState()');
    for (let i = 0; i < 4; i++) this.s[i] = state[i]! >>> 0;
    this.spareNormal = Number.isNaN(state[4]) ? null : state[4]!;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Standard normal by the Box-Muller transform (pairs; the spare is kept for the next call). */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo));
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let defaultGenerator = new Generator(0);

/** Seeds the default generator (as torch.manual_seed). */
export function manualSeed(seed: number): Generator {
  defaultGenerator = new Generator(seed);
  return defaultGenerator;
}

export function getDefaultGenerator(): Generator {
  return defaultGenerator;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

/**
 * The rows of a global batch one process holds, as the distributed sampler deals them out:
 * rows index, index + count, index + 2 count, ... A per-sample draw (patch dropout's, MAE's
 * masking noise) is made for every row of the global batch and the shard's rows kept, so that a
 * sample's randomness does not depend on how many processes share the batch.
 */
export interface BatchShard {
  readonly index: number;
  readonly count: number;
}

/** The whole batch, held by one process. */
export const WHOLE_BATCH: BatchShard = { index: 0, count: 1 };

/** Whether global row `row` is one of the shard's. */
export function inShard(row: number, shard: BatchShard): boolean {
  return row % shard.count === shard.index;
}

function fillWith(shape: Shape, opts: RandomOptions, draw: (g: Generator) => number, dtype: DType = 'float32'): Tensor {
  const g = opts.generator ?? defaultGenerator;
  const host = allocHost(opts.dtype ?? dtype, numel(shape));
  for (let i = 0; i < host.length; i++) (host as Float32Array)[i] = draw(g);
  return tensor(host, { ...opts, dtype: opts.dtype ?? dtype, shape });
}

export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  return fillWith(shape, opts, (g) => g.normal());
}

/** Uniform in [low, high). */
export function rand(shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const low = opts.low ?? 0;
  const high = opts.high ?? 1;
  return fillWith(shape, opts, (g) => low + (high - low) * g.uniform());
}

/** Integers in [low, high), int32. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  return fillWith(shape, opts, (g) => g.int(low, high), 'int32');
}

/** 1 with probability p, else 0 (float32 unless a dtype is given). */
export function bernoulli(shape: Shape, p: number, opts: RandomOptions = {}): Tensor {
  return fillWith(shape, opts, (g) => (g.uniform() < p ? 1 : 0));
}
