// Multi-head attention: q/k/v/out projections around the fused scaledDotProductAttention op,
// for self-attention and cross-attention (queries from x, keys and values from a context).
import { where } from '../tensor/ops/elementwise.js';
import { softmax } from '../tensor/ops/reduce.js';
import { dropout, scaledDotProductAttention } from '../tensor/ops/nn.js';
import type { Generator } from '../tensor/random.js';
import { type Tensor, arange } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module, type ModuleOptions } from './module.js';

export interface ComposedAttentionOptions {
  causal?: boolean;
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
  if (opts.causal) {
    const i = arange(Tq, undefined, 1, { backend: q.backend }).reshape(Tq, 1);
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
  causal?: boolean;
}

export interface AttentionCall {
  /** [B, Tk, kvDim]: keys and values come from here instead of x (cross-attention). */
  context?: Tensor | null;
  /** [B, Tk]: nonzero (true) where a key may be attended to, as HF's attention_mask. */
  keyPadding?: Tensor | null;
  /** Query i attends keys j <= i (top-left aligned). */
  causal?: boolean;
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
  readonly causal: boolean;
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
    if (ctx.ndim !== 3 || ctx.shape[0] !== B || ctx.shape[2] !== this.kvDim) {
      throw new Error(`MultiHeadAttention: context must be [${B}, Tk, ${this.kvDim}], got [${ctx.shape}]`);
    }
    const Tk = ctx.shape[1]!;
    const q = this.#heads(this.qProj.forward(x), B, Tq);
    const k = this.#heads(this.kProj.forward(ctx), B, Tk);
    const v = this.#heads(this.vProj.forward(ctx), B, Tk);
    const mask = { causal: call.causal ?? this.causal, keyPadding: call.keyPadding ?? null };
    const o = this.training && this.dropout > 0
      ? composedAttention(q, k, v, { ...mask, dropout: this.dropout, generator: this.#generator })
      : scaledDotProductAttention(q, k, v, mask);
    return this.outProj.forward(o.permute(0, 2, 1, 3).reshape(B, Tq, this.embedDim));
  }

  /** [B, T, H*D] -> [B, H, T, D] as a view. */
  #heads(t: Tensor, B: number, T: number): Tensor {
    return t.reshape(B, T, this.numHeads, this.headDim).permute(0, 2, 1, 3);
  }
}
