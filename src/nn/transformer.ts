// The pre-LN transformer block and an encoder stack of them. Names follow HF CLIP / SigLIP
// (layers.N.layer_norm1, .self_attn.{q,k,v,out}_proj, .layer_norm2, .mlp.fc1/.fc2), so those
// checkpoints' encoder weights load directly.
import { isGradEnabled } from '../tensor/autograd.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { releasingSteps } from '../tensor/recycle.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
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

/**
 * The one row per sample that is read after an encoder: 'first' (a [CLS] token at position 0) or
 * each sample's own position (CLIP's end-of-text token).
 */
export type PooledRows = 'first' | readonly number[];

export interface BlockCall {
  /** [B, T]: nonzero where a position may be attended to. */
  keyPadding?: Tensor | null;
  causal?: boolean;
  /**
   * Compute the output for these rows only, [B, 1, D]: their queries attend to the keys and
   * values of every row (a causal query at position p to those at positions <= p), and the rest
   * of the block runs on them alone. The rows' values equal the full output's.
   */
  rows?: PooledRows;
}

/** The pooled row of each sample of x [B, T, D], as [B, 1, D]. */
function selectRows(x: Tensor, rows: PooledRows): Tensor {
  const [B, T, D] = x.shape as [number, number, number];
  if (rows === 'first') return x.slice(1, 0, 1);
  const flat = Int32Array.from(rows, (t, b) => b * T + t);
  const index = tensor(flat, { shape: [B], dtype: 'int32', backend: x.backend });
  return indexSelect(x.reshape(B * T, D), 0, index).reshape(B, 1, D);
}

/** Throws unless `rows` names one position in [0, T) for each of B samples. */
function checkRows(rows: PooledRows, B: number, T: number): void {
  if (rows === 'first') return;
  if (!Array.isArray(rows) || rows.length !== B) {
    throw new Error(`TransformerBlock: rows must be 'first' or one position per sample (${B}), got ${Array.isArray(rows) ? `${rows.length} positions` : String(rows)}`);
  }
  const bad = rows.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= T);
  if (bad >= 0) throw new Error(`TransformerBlock: rows[${bad}] = ${rows[bad]} is not a position in [0, ${T})`);
}

/**
 * The keys [B, T] each pooled row's query may see, as a uint8 mask: the key padding, and under a
 * causal mask only positions up to the row's own (what the full causal mask gives that row).
 * Null when every key is visible.
 */
function rowKeyMask(rows: PooledRows, B: number, T: number, causal: boolean, keyPadding: Tensor | null, backend: Tensor['backend']): Tensor | null {
  if (!causal) return keyPadding;
  const keep = new Uint8Array(B * T);
  const pad = keyPadding ? keyPadding.toArray() : null;
  for (let b = 0; b < B; b++) {
    const p = rows === 'first' ? 0 : rows[b]!;
    for (let j = 0; j <= p; j++) keep[b * T + j] = pad === null || Number(pad[b * T + j]) !== 0 ? 1 : 0;
  }
  return tensor(keep, { shape: [B, T], dtype: 'uint8', backend });
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
    if (call.rows !== undefined) return this.#forwardRows(x, call.rows, call);
    // h = x + attn(...) and ln2(h) come from one fused pass.
    const { sum: h, normed } = this.ln2.forwardAdd(x, this.drop.forward(this.attn.forward(this.ln1.forward(x), call)));
    return h.add(this.drop.forward(this.mlp.forward(normed)));
  }

  /**
   * The block for the pooled rows only: keys and values need every row's ln1, but the queries,
   * attention output, residuals, ln2 and MLP only the rows that are read. The row's causal mask
   * becomes a key mask, as its query no longer sits at its own index.
   */
  #forwardRows(x: Tensor, rows: PooledRows, call: BlockCall): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dim) throw new Error(`TransformerBlock: input must be [B, T, ${this.dim}], got [${x.shape}]`);
    const [B, T] = x.shape as [number, number];
    checkRows(rows, B, T);
    const causal = call.causal ?? !!this.attn.causal;
    const keyPadding = rowKeyMask(rows, B, T, causal, call.keyPadding ?? null, x.backend);
    const normed1 = this.ln1.forward(x);
    const attended = this.attn.forward(selectRows(normed1, rows), { context: normed1, keyPadding, causal: false });
    const { sum: h, normed } = this.ln2.forwardAdd(selectRows(x, rows), this.drop.forward(attended));
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

  /**
   * [B, T, D] -> [B, T, D]; with `rows`, [B, 1, D]: the last layer runs for those rows only
   * (earlier layers feed every row's keys and values, so they run in full). Hidden states are
   * not available then, as the last layer's are partial.
   */
  forward(x: Tensor, call: EncoderCall = {}): Tensor {
    const { hiddenStates, rows, ...blockCall } = call;
    if (rows !== undefined && hiddenStates) throw new Error('TransformerEncoder: rows and hiddenStates cannot be combined (the last layer computes only the pooled rows)');
    hiddenStates?.push(x);
    const last = this.layers.length - 1;
    if (rows !== undefined && last < 0) {
      checkRows(rows, x.shape[0]!, x.shape[1]!);
      return selectRows(x, rows);
    }
    const layer = (h: Tensor, i: number) => this.layers.get(i).forward(h, i === last && rows !== undefined ? { ...blockCall, rows } : blockCall);
    // Without gradients, a block's intermediates are dead once it returns: later blocks reuse them.
    if (!hiddenStates && !isGradEnabled()) return releasingSteps(x, last + 1, layer, (h) => [h.storage]);
    for (let i = 0; i <= last; i++) {
      x = layer(x, i);
      hiddenStates?.push(x);
    }
    return x;
  }
}
