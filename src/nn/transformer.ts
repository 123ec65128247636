// The pre-LN transformer block and an encoder stack of them. Names follow HF CLIP / SigLIP
// (layers.N.layer_norm1, .self_attn.{q,k,v,out}_proj, .layer_norm2, .mlp.fc1/.fc2), so those
// checkpoints' encoder weights load directly.
import type { Tensor } from '../tensor/tensor.js';
import { MultiHeadAttention } from './attention.js';
import { type ActivationName, Dropout, LayerNorm, MLP } from './layers.js';
import { Module, ModuleList, type ModuleOptions } from './module.js';

export interface TransformerBlockOptions extends ModuleOptions {
  /** Hidden width of the MLP; default 4 * dim. */
  mlpDim?: number;
  /** MLP activation by HF name; default 'gelu'. */
  act?: ActivationName | string;
  /** Layer-norm epsilon; default 1e-5. */
  eps?: number;
  /** Biases in the attention and MLP projections; default true. */
  bias?: boolean;
  /** Biases in the query, key and value projections; default: as `bias`. */
  qkvBias?: boolean;
  /** Dropout on each residual branch (training only); default 0. */
  dropout?: number;
  /** Dropout on the attention probabilities (training only); default 0. */
  attnDropout?: number;
  /** Causal self-attention unless a call says otherwise; default false. */
  causal?: boolean;
}

export interface BlockCall {
  /** [B, T]: nonzero where a position may be attended to. */
  keyPadding?: Tensor | null;
  causal?: boolean;
}

/** x + attn(ln1(x)), then x + mlp(ln2(x)). */
export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;
  readonly drop: Dropout;

  constructor(readonly dim: number, readonly numHeads: number, opts: TransformerBlockOptions = {}) {
    super();
    const ln = { ...opts, eps: opts.eps ?? 1e-5 };
    this.ln1 = this.module('layer_norm1', new LayerNorm(dim, ln));
    this.attn = this.module('self_attn', new MultiHeadAttention(dim, numHeads, {
      ...opts, dropout: opts.attnDropout ?? 0, causal: opts.causal ?? false,
    }));
    this.ln2 = this.module('layer_norm2', new LayerNorm(dim, ln));
    this.mlp = this.module('mlp', new MLP(dim, opts.mlpDim ?? 4 * dim, { ...opts, act: opts.act ?? 'gelu', dropout: 0 }));
    this.drop = this.module('drop', new Dropout(opts.dropout ?? 0, { generator: opts.generator }));
  }

  forward(x: Tensor, call: BlockCall = {}): Tensor {
    // h = x + attn(...) and ln2(h) come from one fused pass.
    const { sum: h, normed } = this.ln2.forwardAdd(x, this.drop.forward(this.attn.forward(this.ln1.forward(x), call)));
    return h.add(this.drop.forward(this.mlp.forward(normed)));
  }
}

export interface EncoderCall extends BlockCall {
  /**
   * When given, receives the hidden states as HF's output_hidden_states lists them: the input,
   * then the output of each layer.
   */
  hiddenStates?: Tensor[];
}

/** A stack of pre-LN transformer blocks, registered as layers.0, layers.1, ... */
export class TransformerEncoder extends Module {
  readonly layers: ModuleList<TransformerBlock>;

  constructor(numLayers: number, dim: number, numHeads: number, opts: TransformerBlockOptions = {}) {
    super();
    const blocks = Array.from({ length: numLayers }, () => new TransformerBlock(dim, numHeads, opts));
    this.layers = this.module('layers', new ModuleList(blocks));
  }

  forward(x: Tensor, call: EncoderCall = {}): Tensor {
    const { hiddenStates, ...blockCall } = call;
    hiddenStates?.push(x);
    for (const layer of this.layers) {
      x = layer.forward(x, blockCall);
      hiddenStates?.push(x);
    }
    return x;
  }
}
