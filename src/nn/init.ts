// In-place initialisers, as torch.nn.init, drawing from a seeded Generator (the global one from
// manualSeed unless one is given). Values are drawn in row-major order of the tensor's shape, one
// draw per element, so the same seed always gives the same weights on every backend.
import { noGrad } from '../tensor/autograd.js';
import type { TypedArray } from '../tensor/dtype.js';
import { allocHost, isFloat } from '../tensor/dtype.js';
import { type Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/** Writes draw() into every element of t, in row-major order, without recording a gradient. */
function fillFrom(t: Tensor, op: string, draw: () => number): Tensor {
  if (!isFloat(t.dtype)) throw new TypeError(`${op}: expected a float tensor, got ${t.dtype}`);
  const host: TypedArray = allocHost(t.dtype, t.size);
  for (let i = 0; i < host.length; i++) (host as Float32Array)[i] = draw();
  noGrad(() => t.copy_(tensor(host, { dtype: t.dtype, backend: t.backend, shape: t.shape }), op));
  return t;
}

function gen(g: Generator | undefined): Generator {
  return g ?? getDefaultGenerator();
}

export function constant_(t: Tensor, value: number): Tensor {
  noGrad(() => t.fill_(value, 'constant_'));
  return t;
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** U(low, high). */
export function uniform_(t: Tensor, low = 0, high = 1, generator?: Generator): Tensor {
  const g = gen(generator);
  return fillFrom(t, 'uniform_', () => low + (high - low) * g.uniform());
}

/** N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  const g = gen(generator);
  return fillFrom(t, 'normal_', () => mean + std * g.normal());
}

/**
 * N(mean, std²) restricted to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_). Exact
 * rejection sampling; the proposal is chosen so acceptance stays high wherever the interval is.
 */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2, generator?: Generator): Tensor {
  if (!(std > 0)) throw new RangeError(`truncNormal_: std must be positive, got ${std}`);
  if (!(a < b)) throw new RangeError(`truncNormal_: need a < b, got [${a}, ${b}]`);
  const g = gen(generator);
  const sample = truncatedStandardNormal((a - mean) / std, (b - mean) / std, g);
  return fillFrom(t, 'truncNormal_', () => Math.min(b, Math.max(a, mean + std * sample())));
}

/** A sampler of N(0, 1) restricted to [lo, hi] in standard units. */
function truncatedStandardNormal(lo: number, hi: number, g: Generator): () => number {
  if (hi <= 0) {
    const mirrored = truncatedStandardNormal(-hi, -lo, g);
    return () => -mirrored();
  }
  // Now hi > 0.
  if (lo <= 0 && hi - lo >= 2) {
    // The interval holds at least the mass of [-2, 0] (about 0.48): plain rejection.
    return () => {
      for (;;) {
        const z = g.normal();
        if (z >= lo && z <= hi) return z;
      }
    };
  }
  if (hi - lo <= 2) {
    // Narrow: a uniform proposal, accepted with the density relative to its maximum on [lo, hi].
    const peak = lo > 0 ? lo : 0;
    return () => {
      for (;;) {
        const z = lo + (hi - lo) * g.uniform();
        if (g.uniform() <= Math.exp((peak * peak - z * z) / 2)) return z;
      }
    };
  }
  // A wide tail [lo, hi] with lo > 0: Robert's (1995) shifted exponential proposal.
  const rate = (lo + Math.sqrt(lo * lo + 4)) / 2;
  return () => {
    for (;;) {
      const z = lo - Math.log(1 - g.uniform()) / rate;
      if (z <= hi && g.uniform() <= Math.exp(-((z - rate) ** 2) / 2)) return z;
    }
  };
}

/** fan_in and fan_out as PyTorch computes them: [out, in, ...receptive field]. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fan in/out need at least 2 dimensions, got [${shape}]`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i]!;
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export type Nonlinearity = 'linear' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
  }
}

export interface KaimingOptions {
  /** The negative slope of the leaky ReLU after this layer (0 for ReLU). */
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
  generator?: Generator;
}

/** U(-bound, bound) with bound = gain * sqrt(3 / fan), as torch.nn.init.kaiming_uniform_. */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t.shape);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const bound = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0) * Math.sqrt(3 / fan);
  return uniform_(t, -bound, bound, opts.generator);
}

/** N(0, std²) with std = gain / sqrt(fan), as torch.nn.init.kaiming_normal_. */
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(t.shape);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  return normal_(t, 0, calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0) / Math.sqrt(fan), opts.generator);
}

/** U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const { fanIn, fanOut } = fans(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, generator);
}

/** N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const { fanIn, fanOut } = fans(t.shape);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), generator);
}
