// Basic layers: Linear, LayerNorm, Embedding, Dropout, FLIP's patch dropout, activations by name,
// and the MLP of a transformer block. Parameter names and initial distributions follow PyTorch's
// defaults.
import { where } from '../tensor/ops/elementwise.js';
import { embedding, indexSelect } from '../tensor/ops/indexing.js';
import { type AddLayerNormResult, type LinearActivation, addLayerNorm, dropout, layerNorm, linear } from '../tensor/ops/nn.js';
import type { BatchShard, Generator } from '../tensor/random.js';
import { getDefaultGenerator, inShard, WHOLE_BATCH } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { kaimingUniform_, normal_, ones_, uniform_, zeros_ } from './init.js';
import { type Layer, Module, type ModuleOptions, paramZeros } from './module.js';

export interface LinearOptions extends ModuleOptions {
  /** Default true. */
  bias?: boolean;
}

/**
 * y = x W^T + b with weight [out, in]. Initialised as PyTorch does: weight by kaiming_uniform
 * with a = sqrt(5), and bias, both U(-1/sqrt(in), 1/sqrt(in)).
 */
export class Linear extends Module implements Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const generator = opts.generator ?? getDefaultGenerator();
    this.weight = this.param('weight', paramZeros([outFeatures, inFeatures], opts));
    const init = opts.init ?? true;
    if (init) kaimingUniform_(this.weight, { a: Math.sqrt(5), generator });
    this.bias = null;
    if (opts.bias ?? true) {
      this.bias = this.param('bias', paramZeros([outFeatures], opts));
      const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
      if (init) uniform_(this.bias, -bound, bound, generator);
    }
  }

  /** With an activation, act(x W^T + b), the bias and activation fused into one pass. */
  forward(x: Tensor, activation?: LinearActivation | null): Tensor {
    return linear(x, this.weight, this.bias, activation);
  }
}

export interface LayerNormOptions extends ModuleOptions {
  /** Default 1e-5 (as PyTorch; many HF configs use 1e-12 or 1e-6). */
  eps?: number;
  /** Learnable weight (ones) and bias (zeros); default true. */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether there is a bias; default true. */
  bias?: boolean;
}

/** Layer norm over the last axis of size `dim`. */
export class LayerNorm extends Module implements Layer {
  readonly weight: Tensor | null = null;
  readonly bias: Tensor | null = null;
  readonly eps: number;

  constructor(readonly dim: number, opts: LayerNormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    if (opts.elementwiseAffine ?? true) {
      this.weight = ones_(this.param('weight', paramZeros([dim], opts)));
      if (opts.bias ?? true) this.bias = zeros_(this.param('bias', paramZeros([dim], opts)));
    }
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }

  /** x + residual and its layer norm, in one pass over the rows (a pre-LN block's residual step). */
  forwardAdd(x: Tensor, residual: Tensor): AddLayerNormResult {
    return addLayerNorm(x, residual, this.weight, this.bias, this.eps);
  }
}

export interface EmbeddingOptions extends ModuleOptions {
  /** This row starts at zero and gets no gradient (torch's padding_idx). */
  paddingIdx?: number | null;
}

/** A lookup table [num, dim], initialised N(0, 1) as PyTorch's. */
export class Embedding extends Module {
  readonly weight: Tensor;
  readonly paddingIdx: number | null;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    let pad = opts.paddingIdx ?? null;
    if (pad !== null) {
      if (!Number.isInteger(pad) || pad < -numEmbeddings || pad >= numEmbeddings) {
        throw new RangeError(`Embedding: paddingIdx ${pad} is out of range for ${numEmbeddings} embeddings`);
      }
      if (pad < 0) pad += numEmbeddings;
    }
    this.paddingIdx = pad;
    this.weight = this.param('weight', paramZeros([numEmbeddings, embeddingDim], opts));
    if (opts.init ?? true) normal_(this.weight, 0, 1, opts.generator ?? getDefaultGenerator());
    if (pad !== null) zeros_(this.weight.select(0, pad));
  }

  /** ids of any shape (int32 or int64) -> [...ids.shape, dim]. */
  forward(ids: Tensor): Tensor {
    const out = embedding(this.weight, ids);
    if (this.paddingIdx === null || !out.requiresGrad) return out;
    // Where the id is the padding index the output is taken from a detached copy of that row,
    // so no gradient flows into it; the values are unchanged.
    const isPad = ids.eq(this.paddingIdx).unsqueeze(-1);
    return where(isPad, this.weight.detach().select(0, this.paddingIdx), out);
  }
}

export interface DropoutOptions {
  /** Default: the global generator at each call. */
  generator?: Generator;
}

/** Zeroes elements with probability p in training mode (scaling the rest by 1/(1-p)); identity in eval. */
export class Dropout extends Module implements Layer {
  readonly generator: Generator | undefined;

  constructor(readonly p = 0.5, opts: DropoutOptions = {}) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
    this.generator = opts.generator;
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}

export interface PatchDropoutOptions {
  /** The fraction of patch tokens dropped, in [0, 1); 0 keeps them all. */
  ratio: number;
  /** Draws which patches each image keeps; default the global generator. */
  generator?: Generator;
  /** The rows of the global batch these images are (data-parallel training); default the whole batch. */
  shard?: BatchShard;
}

/** Throws unless opts.ratio is in [0, 1) (a ratio of 1 would leave no patch). */
export function checkPatchDropout(opts: PatchDropoutOptions, where = 'patchDropout'): void {
  if (typeof opts.ratio !== 'number' || !(opts.ratio >= 0 && opts.ratio < 1)) {
    throw new RangeError(`${where}: patchDropout.ratio must be in [0, 1), got ${opts.ratio}`);
  }
}

/**
 * FLIP's patch dropout (Li et al. 2023): tokens [B, prefix + N, D] -> [B, prefix + K, D] with
 * K = round((1 - ratio) N), at least 1. Each image keeps its `prefix` leading tokens (the class
 * token) and its own random K of the N patch tokens, in their original order; the encoder then
 * runs on fewer tokens, which is the point. The selection is an indexSelect, so gradients reach
 * the kept tokens only. Callers apply it in training mode only, after the position embeddings.
 */
export function patchDropout(x: Tensor, prefix: number, opts: PatchDropoutOptions): Tensor {
  checkPatchDropout(opts);
  if (x.ndim !== 3) throw new Error(`patchDropout: tokens must be [B, T, D], got [${x.shape}]`);
  const [B, T, D] = x.shape as [number, number, number];
  const N = T - prefix;
  if (!(Number.isInteger(prefix) && prefix >= 0 && N >= 1)) throw new Error(`patchDropout: ${T} tokens leave no patch after ${prefix} prefix tokens`);
  if (opts.ratio === 0) return x;
  const K = Math.max(1, Math.round((1 - opts.ratio) * N));
  const generator = opts.generator ?? getDefaultGenerator();
  const shard = opts.shard ?? WHOLE_BATCH;
  const rows = new Int32Array(B * (prefix + K));
  const chosen = new Uint8Array(N);
  let r = 0;
  // Every row of the global batch draws, so the generator ends where it does on every process.
  for (let row = 0, b = 0; row < B * shard.count; row++) {
    // The first K of a uniform permutation, written back in token order.
    const perm = generator.permutation(N);
    if (!inShard(row, shard)) continue;
    for (let j = 0; j < prefix; j++) rows[r++] = b * T + j;
    chosen.fill(0);
    for (let i = 0; i < K; i++) chosen[perm[i]!] = 1;
    for (let i = 0; i < N; i++) if (chosen[i]) rows[r++] = b * T + prefix + i;
    b++;
  }
  const index = tensor(rows, { shape: [rows.length], dtype: 'int32', backend: x.backend });
  return indexSelect(x.reshape(B * T, D), 0, index).reshape(B, prefix + K, D);
}

/** An activation function: what HF configs name in hidden_act / hidden_activation. */
export type ActivationName =
  | 'gelu' | 'gelu_tanh' | 'gelu_pytorch_tanh' | 'gelu_new' | 'gelu_fast' | 'quick_gelu'
  | 'relu' | 'tanh' | 'sigmoid' | 'silu' | 'swish';

const ACTIVATIONS: Record<ActivationName, (x: Tensor) => Tensor> = {
  gelu: (x) => x.gelu(),
  // The tanh approximation under its various HF names (gelu_new and gelu_fast are the same formula).
  gelu_tanh: (x) => x.gelu('tanh'),
  gelu_pytorch_tanh: (x) => x.gelu('tanh'),
  gelu_new: (x) => x.gelu('tanh'),
  gelu_fast: (x) => x.gelu('tanh'),
  quick_gelu: (x) => x.quickGelu(),
  relu: (x) => x.relu(),
  tanh: (x) => x.tanh(),
  sigmoid: (x) => x.sigmoid(),
  silu: (x) => x.mul(x.sigmoid()),
  swish: (x) => x.mul(x.sigmoid()),
};

/** The names linear can apply in its fused bias + activation kernel. */
const FUSED_ACTIVATIONS: Partial<Record<ActivationName, LinearActivation>> = {
  gelu: 'gelu_erf',
  gelu_tanh: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  quick_gelu: 'quick_gelu',
  relu: 'relu',
  tanh: 'tanh',
  sigmoid: 'sigmoid',
};

/** The activation linear applies inside its bias kernel for an HF activation name, or null. */
export function fusedActivation(name: string): LinearActivation | null {
  return Object.hasOwn(FUSED_ACTIVATIONS, name) ? FUSED_ACTIVATIONS[name as ActivationName]! : null;
}

/** The activation function of a name, or an error listing the known names. */
export function getActivation(name: string): (x: Tensor) => Tensor {
  const f = Object.hasOwn(ACTIVATIONS, name) ? ACTIVATIONS[name as ActivationName] : undefined;
  if (!f) throw new Error(`unknown activation '${name}' (known: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return f;
}

export interface MLPOptions extends ModuleOptions {
  /** Default: inFeatures. */
  outFeatures?: number;
  /** Default 'gelu' (exact, erf). */
  act?: ActivationName | string;
  /** Biases on both layers; default true. */
  bias?: boolean;
  /** Dropout after the activation and after fc2 (in training); default 0. */
  dropout?: number;
}

/** fc1 -> activation -> fc2, the feed-forward part of a transformer block (HF CLIP's names). */
export class MLP extends Module implements Layer {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly act: (x: Tensor) => Tensor;
  readonly drop: Dropout;
  /** The activation as fc1 applies it after its bias, when the kernel has it; else act runs after fc1. */
  private readonly fusedAct: LinearActivation | null;

  constructor(inFeatures: number, hiddenFeatures: number, opts: MLPOptions = {}) {
    super();
    const lin = { ...opts, bias: opts.bias ?? true };
    this.fc1 = this.module('fc1', new Linear(inFeatures, hiddenFeatures, lin));
    const act = opts.act ?? 'gelu';
    this.act = getActivation(act);
    this.fusedAct = fusedActivation(act);
    this.fc2 = this.module('fc2', new Linear(hiddenFeatures, opts.outFeatures ?? inFeatures, lin));
    this.drop = this.module('drop', new Dropout(opts.dropout ?? 0, { generator: opts.generator }));
  }

  forward(x: Tensor): Tensor {
    const a = this.fusedAct ? this.fc1.forward(x, this.fusedAct) : this.act(this.fc1.forward(x));
    const h = this.drop.forward(a);
    return this.drop.forward(this.fc2.forward(h));
  }
}
