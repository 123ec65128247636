// Multi-head attention: q/k/v/out projections around the fused scaledDotProductAttention op,
// for self-attention and cross-attention (queries from x, keys and values from a context), and
// the key/value caches of incremental decoding.
//
// Causal masks come in two alignments. Top-left (PyTorch's is_causal, the fused kernel's): query i
// sees keys j <= i. Bottom-right: the queries are the last Tq of the Tk positions, so query i sees
// keys j <= i + (Tk - Tq); that is the mask of new tokens decoded after Tk - Tq cached ones. The
// two agree when Tq = Tk.
import { isGradEnabled } from '../tensor/autograd.js';
import { where } from '../tensor/ops/elementwise.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { softmax } from '../tensor/ops/reduce.js';
import { dropout, scaledDotProductAttention } from '../tensor/ops/nn.js';
import type { Generator } from '../tensor/random.js';
import { type Tensor, arange, empty, tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module, type ModuleOptions } from './module.js';

/** false: no causal mask; true or 'top-left': query i sees keys j <= i; 'bottom-right': j <= i + Tk - Tq. */
export type CausalMask = boolean | 'top-left' | 'bottom-right';

/** How many keys past its own index query i may also see: 0 top-left, Tk - Tq bottom-right; null without a causal mask. */
function causalShift(causal: CausalMask | undefined, Tq: number, Tk: number): number | null {
  if (!causal) return null;
  return causal === 'bottom-right' ? Tk - Tq : 0;
}

export interface ComposedAttentionOptions {
  causal?: CausalMask;
  /** [B, Tk], nonzero where a key may be attended to. */
  keyPadding?: Tensor | null;
  /** Default 1/sqrt(head dim). */
  scale?: number;
  /** Dropout on the attention probabilities; default 0. */
  dropout?: number;
  generator?: Generator;
}

/**
 * softmax(q k^T * scale + masks) v spelled out with matmul and softmax, materialising the
 * [B, H, Tq, Tk] probabilities: the path for attention dropout in training, which the fused
 * kernel does not do. A query whose keys are all masked gets 0, as in the fused kernel.
 */
export function composedAttention(q: Tensor, k: Tensor, v: Tensor, opts: ComposedAttentionOptions = {}): Tensor {
  const [B, , Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
  let allowed: Tensor | null = null;
  const shift = causalShift(opts.causal, Tq, Tk);
  if (shift !== null) {
    const i = arange(shift, Tq + shift, 1, { backend: q.backend }).reshape(Tq, 1);
    const j = arange(Tk, undefined, 1, { backend: q.backend }).reshape(1, Tk);
    allowed = j.le(i);
  }
  if (opts.keyPadding) {
    const keep = opts.keyPadding.ne(0).reshape(B, 1, 1, Tk);
    allowed = allowed ? allowed.logicalAnd(keep) : keep;
  }
  if (allowed) scores = where(allowed, scores, -Infinity);
  let p = softmax(scores, -1);
  if (allowed) p = where(allowed, p, 0);
  if (opts.dropout) p = dropout(p, opts.dropout, true, opts.generator);
  return p.matmul(v);
}

/**
 * Attention of q [B, H, Tq, D] over k, v [B, H, Tk, D] with either causal alignment: the fused
 * kernel wherever it applies (no dropout; a causal mask it can express), composedAttention
 * otherwise. A bottom-right mask is top-left when Tq = Tk, and no mask at all when every query
 * sees every key (one new token after a cache), so decoding steps stay on the fused kernel.
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, opts: ComposedAttentionOptions = {}): Tensor {
  const Tq = q.shape[2]!;
  const Tk = k.shape[2]!;
  const shift = causalShift(opts.causal, Tq, Tk);
  const fusedCausal = shift === null || shift >= Tk - 1 ? false : shift === 0 ? true : null;
  if (fusedCausal === null || opts.dropout) return composedAttention(q, k, v, opts);
  return scaledDotProductAttention(q, k, v, { causal: fusedCausal, keyPadding: opts.keyPadding ?? null, scale: opts.scale });
}

/**
 * The keys and values [B, H, T, D] of the positions one attention layer has already seen, for
 * incremental decoding (HF's past_key_values for one layer). They live in buffers with room to
 * grow, so a step writes only its new positions. Inference only: nothing here is differentiable.
 */
export class KeyValueCache {
  #keys: Tensor | null = null;
  #values: Tensor | null = null;
  #length = 0;

  /** Positions cached. */
  get length(): number {
    return this.#length;
  }

  /** Batch rows cached (0 when empty). */
  get rows(): number {
    return this.#keys?.shape[0] ?? 0;
  }

  /** The cached keys [B, H, length, D] (a view of the buffer), or null when empty. */
  get keys(): Tensor | null {
    return this.#keys && this.#length > 0 ? this.#keys.slice(2, 0, this.#length) : null;
  }

  get values(): Tensor | null {
    return this.#values && this.#length > 0 ? this.#values.slice(2, 0, this.#length) : null;
  }

  /** Appends the keys and values [B, H, T, D] of T new positions; returns all of them, cached and new. */
  append(keys: Tensor, values: Tensor): { keys: Tensor; values: Tensor } {
    if (isGradEnabled() && (keys.requiresGrad || values.requiresGrad)) {
      throw new Error('KeyValueCache: the cache is for inference; run decoding under noGrad');
    }
    if (keys.ndim !== 4 || values.ndim !== 4 || keys.shape[2] !== values.shape[2] || keys.shape[0] !== values.shape[0] || keys.shape[1] !== values.shape[1]) {
      throw new Error(`KeyValueCache: keys [${keys.shape}] and values [${values.shape}] must be [B, H, T, D] with equal B, H, T`);
    }
    const T = keys.shape[2]!;
    const need = this.#length + T;
    if (this.#keys && this.#values) {
      const [B, H, , D] = this.#keys.shape;
      const Dv = this.#values.shape[3];
      if (keys.shape[0] !== B || keys.shape[1] !== H || keys.shape[3] !== D || values.shape[3] !== Dv) {
        throw new Error(`KeyValueCache: new keys [${keys.shape}] / values [${values.shape}] do not fit the cached [${this.#keys.shape}] / [${this.#values.shape}]`);
      }
    }
    if (!this.#keys || this.#keys.shape[2]! < need) this.#grow(keys, values, need);
    const write = (buf: Tensor, x: Tensor) => buf.slice(2, this.#length, need).copy_(x, 'KeyValueCache');
    write(this.#keys!, keys);
    write(this.#values!, values);
    this.#length = need;
    return { keys: this.keys!, values: this.values! };
  }

  /** New buffers of at least `need` positions (doubling, so appends cost amortised O(T)), holding what is cached. */
  #grow(keys: Tensor, values: Tensor, need: number): void {
    const capacity = Math.max(need, 2 * (this.#keys?.shape[2] ?? 0), 16);
    const alloc = (like: Tensor, old: Tensor | null): Tensor => {
      const [B, H, , D] = like.shape as [number, number, number, number];
      const out = empty([B, H, capacity, D], { dtype: like.dtype, backend: like.backend });
      if (old && this.#length > 0) out.slice(2, 0, this.#length).copy_(old.slice(2, 0, this.#length), 'KeyValueCache');
      return out;
    };
    this.#keys = alloc(keys, this.#keys);
    this.#values = alloc(values, this.#values);
  }

  /**
   * Keeps the batch rows `index` picks, in that order (rows may repeat or drop): what beam search
   * does when it reselects beams, and greedy decoding when rows finish.
   */
  reorder(index: Tensor): void {
    if (!this.#keys || !this.#values) return;
    this.#keys = indexSelect(this.#keys.slice(2, 0, this.#length), 0, index);
    this.#values = indexSelect(this.#values.slice(2, 0, this.#length), 0, index);
  }
}

/**
 * One decoder layer's caches: its self-attention keys and values (growing by the new positions
 * at each step) and its cross-attention ones (the encoder states', computed on the first step
 * and reused after).
 */
export interface LayerCache {
  readonly self: KeyValueCache;
  readonly cross: KeyValueCache;
}

/**
 * The caches of a stack of decoder layers, one LayerCache per layer. A cross-attention cache of
 * one row (one context read by every row, as beam search over one image) is shared: reorder
 * leaves it as it is, and attention broadcasts it to the rows, so beams never copy it.
 */
export class DecoderCache {
  readonly layers: readonly LayerCache[];

  constructor(numLayers: number) {
    if (!Number.isInteger(numLayers) || numLayers < 1) throw new Error(`DecoderCache: numLayers must be a positive integer, got ${numLayers}`);
    this.layers = Array.from({ length: numLayers }, () => ({ self: new KeyValueCache(), cross: new KeyValueCache() }));
  }

  /** Positions already decoded (the self-attention caches' length). */
  get length(): number {
    return this.layers[0]!.self.length;
  }

  /** Keeps the batch rows `index` picks (int32 [n] or a list), in every layer's self and cross caches. */
  reorder(index: Tensor | readonly number[]): void {
    const backend = this.layers[0]!.self.keys?.backend;
    if (!backend) return;
    const idx = Array.isArray(index) ? tensor(Int32Array.from(index as readonly number[]), { shape: [index.length], dtype: 'int32', backend }) : index as Tensor;
    for (const l of this.layers) {
      l.self.reorder(idx);
      if (l.cross.rows !== 1) l.cross.reorder(idx);
    }
  }
}

export interface MultiHeadAttentionOptions extends ModuleOptions {
  /** Biases on all four projections; default true. */
  bias?: boolean;
  /** Overrides `bias` for the q, k and v projections. */
  qkvBias?: boolean;
  /** Overrides `bias` for the output projection. */
  outBias?: boolean;
  /** Width of the sequence keys and values are projected from (cross-attention); default embedDim. */
  kvDim?: number;
  /** Dropout on the attention probabilities in training mode; default 0. */
  dropout?: number;
  /** Causal masking unless a call says otherwise; default false. */
  causal?: CausalMask;
}

export interface AttentionCall {
  /** [B, Tk, kvDim]: keys and values come from here instead of x (cross-attention). */
  context?: Tensor | null;
  /** [B, Tk]: nonzero (true) where a key may be attended to, as HF's attention_mask; Tk counts cached keys. */
  keyPadding?: Tensor | null;
  /** The causal mask; `true` is top-left aligned without a cache and bottom-right with one. */
  causal?: CausalMask;
  /**
   * Incremental decoding. Self-attention: x holds the new positions only; their keys and values
   * are appended and the queries attend to all. Cross-attention: the context's keys and values
   * are projected on the first call and reused after (the context is then not read again).
   */
  cache?: KeyValueCache | null;
}

/**
 * The keys and values [B, H, Tk, D] that B queries attend to: projected from `source` (x or the
 * context); with a self-attention cache, appended to the cached ones; with a cross-attention
 * cache, projected once and reused (one cached row broadcast to all B, see DecoderCache).
 */
export function projectKeyValues(source: Tensor, B: number, call: { context?: Tensor | null; cache?: KeyValueCache | null },
  keys: (t: Tensor) => Tensor, values: (t: Tensor) => Tensor): { keys: Tensor; values: Tensor } {
  const cache = call.cache ?? null;
  if (cache && call.context && cache.length > 0) {
    if (cache.length !== source.shape[1]) {
      throw new Error(`attention: the cross-attention cache holds ${cache.length} positions but the context has ${source.shape[1]}`);
    }
    const [k, v] = [cache.keys!, cache.values!];
    if (cache.rows === B) return { keys: k, values: v };
    if (cache.rows !== 1) throw new Error(`attention: the cross-attention cache holds ${cache.rows} rows for ${B} queries`);
    // Stride 0 along the batch: the attention kernels read the one row for every query.
    return { keys: k.expand(B, k.shape[1]!, k.shape[2]!, k.shape[3]!), values: v.expand(B, v.shape[1]!, v.shape[2]!, v.shape[3]!) };
  }
  const k = keys(source);
  const v = values(source);
  return cache ? cache.append(k, v) : { keys: k, values: v };
}

/**
 * Multi-head attention on [B, T, embedDim] with projections named as HF CLIP's
 * (q_proj, k_proj, v_proj, out_proj). Heads are split by view + permute, without copies.
 */
export class MultiHeadAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  readonly headDim: number;
  readonly kvDim: number;
  readonly dropout: number;
  readonly causal: CausalMask;
  readonly #generator: Generator | undefined;

  constructor(readonly embedDim: number, readonly numHeads: number, opts: MultiHeadAttentionOptions = {}) {
    super();
    if (!Number.isInteger(numHeads) || numHeads < 1 || embedDim % numHeads !== 0) {
      throw new Error(`MultiHeadAttention: embedDim ${embedDim} is not divisible into ${numHeads} heads`);
    }
    this.headDim = embedDim / numHeads;
    this.kvDim = opts.kvDim ?? embedDim;
    this.dropout = opts.dropout ?? 0;
    this.causal = opts.causal ?? false;
    this.#generator = opts.generator;
    const bias = opts.bias ?? true;
    const qkv = { ...opts, bias: opts.qkvBias ?? bias };
    this.qProj = this.module('q_proj', new Linear(embedDim, embedDim, qkv));
    this.kProj = this.module('k_proj', new Linear(this.kvDim, embedDim, qkv));
    this.vProj = this.module('v_proj', new Linear(this.kvDim, embedDim, qkv));
    this.outProj = this.module('out_proj', new Linear(embedDim, embedDim, { ...opts, bias: opts.outBias ?? bias }));
  }

  forward(x: Tensor, call: AttentionCall = {}): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.embedDim) {
      throw new Error(`MultiHeadAttention: input must be [B, T, ${this.embedDim}], got [${x.shape}]`);
    }
    const [B, Tq] = x.shape as [number, number];
    const ctx = call.context ?? x;
    // A cached context is not read again, so its batch may differ from the reordered cache's.
    const cachedContext = !!call.context && (call.cache?.length ?? 0) > 0;
    if (ctx.ndim !== 3 || (ctx.shape[0] !== B && !cachedContext) || ctx.shape[2] !== this.kvDim) {
      throw new Error(`MultiHeadAttention: context must be [${B}, Tk, ${this.kvDim}], got [${ctx.shape}]`);
    }
    const q = this.#heads(this.qProj.forward(x), B, Tq);
    const { keys: k, values: v } = projectKeyValues(ctx, B, call, (t) => this.#heads(this.kProj.forward(t), B, t.shape[1]!),
      (t) => this.#heads(this.vProj.forward(t), B, t.shape[1]!));
    let causal = call.causal ?? this.causal;
    if (causal === true && call.cache && !call.context) causal = 'bottom-right';
    const mask = { causal, keyPadding: call.keyPadding ?? null };
    const o = this.training && this.dropout > 0
      ? composedAttention(q, k, v, { ...mask, dropout: this.dropout, generator: this.#generator })
      : attend(q, k, v, mask);
    return this.outProj.forward(o.permute(0, 2, 1, 3).reshape(B, Tq, this.embedDim));
  }

  /** [B, T, H*D] -> [B, H, T, D] as a view. */
  #heads(t: Tensor, B: number, T: number): Tensor {
    return t.reshape(B, T, this.numHeads, this.headDim).permute(0, 2, 1, 3);
  }
}
