// OadTR (Wang et al., ICCV 2021): online action detection with transformers, as the official
// code defines it (VisionTransformer_v3), so its checkpoints load under their own names.
//
//   the last T chunks' camera (RGB) and motion (flow) features, concatenated per chunk
//     -> linear encoding -> the task token appended after the T chunks -> + learned positions
//     -> pre-norm encoder blocks -> layer norm (pre_head_ln)
//   decoder: Q learned queries, causal self-attention, cross-attention to the encoded window,
//     a kernel-1 convolution feed-forward, post-norm; a final layer norm
//     -> per query: the anticipated actions of the next Q chunks (classifier)
//   current chunk: mlp_head(concat(task token's output, mean of the decoder outputs))
// With decoder_layers 0 (the paper's ablation without the decoder) the head reads the task token
// alone and nothing is anticipated.
//
// The state dict keeps the official names and shapes (encoder.net.N.fn.fn.qkv, the decoder's
// conv1 weight [d_ff, D, 1], the position_ids buffers, the decoder's position encoding, which the
// official forward never uses and which therefore gets no gradient).
import path from 'node:path';
import { HFWeights, type SaveHFOptions, WEIGHTS_NAME, loadHFStateDict, loadPretrained, savePretrained, type CheckpointFormat } from '../io/hf.js';
import { attend } from '../nn/attention.js';
import { kaimingUniform_, uniform_ } from '../nn/init.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { softLabelCrossEntropy } from '../nn/losses.js';
import { Module, ModuleList, type ModuleOptions, paramZeros } from '../nn/module.js';
import { concat } from '../tensor/ops/indexing.js';
import { linear } from '../tensor/ops/nn.js';
import { getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type Field, configClass, int, num } from './config_table.js';
import type { ModelFamily, OnlineActionDetector, OnlineDetectorOutput, OnlineDetectorLoss } from './family.js';

const POSITIONAL_ENCODINGS = ['learned', 'fixed'] as const;
export type PositionalEncodingType = (typeof POSITIONAL_ENCODINGS)[number];

/** One of a few strings, with a default. */
const choice = <S extends string>(key: string, values: readonly S[], fallback: S): Field<S> => ({
  keys: [key],
  read: (c) => {
    const v = c.string(key, fallback);
    if (!(values as readonly string[]).includes(v)) throw new Error(`${c.label}: unknown ${key} '${v}' (known: ${values.join(', ')})`);
    return v as S;
  },
  write: (v) => ({ [key]: v }),
});

/** The class the loss ignores (a non-negative index), or null (explicit null in config.json) for none. */
const ambiguousClass = (key: string): Field<number | null> => ({
  keys: [key],
  read: (c, earlier) => (c.raw[key] === null ? null : c.int(key, (earlier.numClasses as number) - 1, true)),
  write: (v) => ({ [key]: v }),
});

/**
 * OadTR's hyperparameters under the official argument names (config.py), with the official
 * defaults (THUMOS'14 with TSN features: 2048 RGB + 1024 flow, 22 classes, the last ambiguous).
 */
export class OadTRConfig extends configClass({
  name: 'OadTRConfig',
  modelType: 'oadtr',
  fields: {
    /** Classes including background (0) and the ambiguous class (official --numclass). */
    numClasses: int('num_classes', 22),
    /** Targets of this class are left out of the loss (official ignore_index 21); null: none. */
    ambiguousClass: ambiguousClass('ambiguous_class'),
    /** Chunks in the window the model reads (official --enc_layers). */
    window: int('enc_layers', 64),
    /** Per-chunk camera (RGB) feature width; 0 = no camera stream. */
    cameraDim: int('camera_dim', 2048, { min: 0 }),
    /** Per-chunk motion (optical flow) feature width; 0 = no motion stream. */
    motionDim: int('motion_dim', 1024, { min: 0 }),
    embeddingDim: int('embedding_dim', 1024),
    numHeads: int('num_heads', 8),
    /** Encoder blocks. */
    numLayers: int('num_layers', 3),
    /** The encoder feed-forward's hidden width. */
    hiddenDim: int('hidden_dim', 1024),
    dropoutRate: num('dropout_rate', 0.1),
    attnDropoutRate: num('attn_dropout_rate', 0.1),
    positionalEncodingType: choice('positional_encoding_type', POSITIONAL_ENCODINGS, 'learned'),
    /** Decoder blocks; 0: no decoder, the paper's ablation without anticipation (the head reads the task token alone). */
    decoderLayers: int('decoder_layers', 5, { min: 0 }),
    /** The decoder's width; must equal embedding_dim (the official code assumes it). */
    decoderEmbeddingDim: int('decoder_embedding_dim', (c) => c.embeddingDim),
    /** The decoder feed-forward's hidden width (d_ff). */
    decoderEmbeddingDimOut: int('decoder_embedding_dim_out', 1024),
    decoderNumHeads: int('decoder_num_heads', 4),
    decoderAttnDropoutRate: num('decoder_attn_dropout_rate', 0.1),
    /** Decoder queries: the future chunks anticipated (official --query_num). */
    queryNum: int('query_num', 8),
    /** The loss weights of the current-chunk (encoder) and anticipation (decoder) terms. */
    classificationHLossCoef: num('classification_h_loss_coef', 1),
    classificationPredLossCoef: num('classification_pred_loss_coef', 0.5),
  },
  check: (c, label) => {
    if (c.cameraDim + c.motionDim === 0) throw new Error(`${label}: camera_dim and motion_dim are both 0; the model needs at least one feature stream`);
    if (c.embeddingDim % c.numHeads !== 0) throw new Error(`${label}: embedding_dim ${c.embeddingDim} is not a multiple of num_heads ${c.numHeads}`);
    if (c.decoderEmbeddingDim !== c.embeddingDim) {
      throw new Error(`${label}: decoder_embedding_dim ${c.decoderEmbeddingDim} must equal embedding_dim ${c.embeddingDim} (the decoder attends to the encoder's outputs at that width)`);
    }
    if (c.embeddingDim % c.decoderNumHeads !== 0) {
      throw new Error(`${label}: decoder_embedding_dim ${c.embeddingDim} is not a multiple of decoder_num_heads ${c.decoderNumHeads}`);
    }
    if (c.ambiguousClass !== null && c.ambiguousClass >= c.numClasses) {
      throw new Error(`${label}: ambiguous_class ${c.ambiguousClass} is not a class (num_classes ${c.numClasses})`);
    }
    for (const [key, p] of [['dropout_rate', c.dropoutRate], ['attn_dropout_rate', c.attnDropoutRate], ['decoder_attn_dropout_rate', c.decoderAttnDropoutRate]] as const) {
      if (!(p >= 0 && p < 1)) throw new Error(`${label}: ${key} must be in [0, 1), got ${p}`);
    }
  },
}) {
  /** Per-chunk input width: camera and motion features concatenated (official dim_feature). */
  get featureDim(): number {
    return this.cameraDim + this.motionDim;
  }
}

export type OadTRConfigOptions = ConstructorParameters<typeof OadTRConfig>[0];

// ---------------------------------------------------------------------------------------------
// Position encodings

/** The official LearnedPositionalEncoding: a table `pe` [N, D] read at `position_ids` [1, N]. */
class LearnedPositionalEncoding extends Module {
  readonly pe: Embedding;
  readonly positionIds: Tensor;

  constructor(readonly length: number, dim: number, opts: ModuleOptions) {
    super();
    this.pe = this.module('pe', new Embedding(length, dim, opts));
    const ids = BigInt64Array.from({ length }, (_, i) => BigInt(i));
    this.positionIds = this.buffer('position_ids', tensor(ids, { shape: [1, length], dtype: 'int64', backend: opts.backend }));
  }

  /** x [B, N, D] + the table's first N rows, read through position_ids as the official code does. */
  forward(x: Tensor): Tensor {
    return x.add(this.pe.forward(this.positionIds.slice(1, 0, x.shape[1]!)));
  }
}

/**
 * Sinusoids by token position (sin on even, cos on odd features, base 10000). The official
 * FixedPositionalEncoding indexes its table by x.size(0), which with batch-first inputs is the
 * sample's index in the batch, not the token's position; this one follows the paper instead, so
 * a 'fixed' model here does not reproduce the official code's numbers.
 */
class FixedPositionalEncoding extends Module {
  readonly table: Tensor;

  constructor(length: number, dim: number, opts: ModuleOptions) {
    super();
    const data = new Float32Array(length * dim);
    for (let p = 0; p < length; p++) {
      for (let i = 0; i < dim; i += 2) {
        const angle = p * Math.exp(-Math.log(10000) * i / dim);
        data[p * dim + i] = Math.sin(angle);
        if (i + 1 < dim) data[p * dim + i + 1] = Math.cos(angle);
      }
    }
    this.table = this.buffer('pe', tensor(data, { shape: [1, length, dim], backend: opts.backend }), false);
  }

  forward(x: Tensor): Tensor {
    return x.add(this.table.slice(1, 0, x.shape[1]!));
  }
}

type PositionalEncoding = LearnedPositionalEncoding | FixedPositionalEncoding;

const positionalEncoding = (type: PositionalEncodingType, length: number, dim: number, opts: ModuleOptions): PositionalEncoding =>
  type === 'learned' ? new LearnedPositionalEncoding(length, dim, opts) : new FixedPositionalEncoding(length, dim, opts);

// ---------------------------------------------------------------------------------------------
// Encoder: pre-norm blocks, named as the official TransformerModel (net.2i: attention, net.2i+1: feed-forward)

/** [B, N, H*d] -> [B, H, N, d] as a view. */
const splitHeads = (t: Tensor, heads: number): Tensor => {
  const [B, N, C] = t.shape as [number, number, number];
  return t.reshape(B, N, heads, C / heads).permute(0, 2, 1, 3);
};

/** [B, H, N, d] -> [B, N, H*d]. */
const mergeHeads = (t: Tensor): Tensor => {
  const [B, H, N, d] = t.shape as [number, number, number, number];
  return t.permute(0, 2, 1, 3).reshape(B, N, H * d);
};

/** Multi-head self-attention with one packed qkv projection (no bias) and an output projection. */
class SelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly attnDrop: number;
  readonly projDrop: Dropout;

  constructor(dim: number, readonly heads: number, dropout: number, readonly opts: ModuleOptions) {
    super();
    this.qkv = this.module('qkv', new Linear(dim, 3 * dim, { ...opts, bias: false }));
    this.proj = this.module('proj', new Linear(dim, dim, opts));
    this.attnDrop = dropout;
    this.projDrop = this.module('proj_drop', new Dropout(dropout, { generator: opts.generator }));
  }

  forward(x: Tensor): Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const d = C / this.heads;
    // [B, N, 3, H, d] -> three [B, H, N, d] views.
    const qkv = this.qkv.forward(x).reshape(B, N, 3, this.heads, d).permute(2, 0, 3, 1, 4);
    const [q, k, v] = [qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2)];
    const o = attend(q, k, v, { dropout: this.training ? this.attnDrop : 0, generator: this.opts.generator });
    return this.projDrop.forward(this.proj.forward(mergeHeads(o)));
  }
}

/** Linear -> GELU (erf) -> dropout -> Linear -> dropout, the Linears at the official net.0 and net.3. */
class FeedForwardNet extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;

  constructor(dim: number, hidden: number, dropout: number, opts: ModuleOptions) {
    super();
    this.fc1 = this.module('0', new Linear(dim, hidden, opts));
    this.fc2 = this.module('3', new Linear(hidden, dim, opts));
    this.drop = this.module('drop', new Dropout(dropout, { generator: opts.generator }));
  }

  forward(x: Tensor): Tensor {
    return this.drop.forward(this.fc2.forward(this.drop.forward(this.fc1.forward(x, 'gelu_erf'))));
  }
}

class FeedForward extends Module {
  readonly net: FeedForwardNet;

  constructor(dim: number, hidden: number, dropout: number, opts: ModuleOptions) {
    super();
    this.net = this.module('net', new FeedForwardNet(dim, hidden, dropout, opts));
  }

  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

/** fn(norm(x)), then dropout (PreNormDrop; the feed-forward's PreNorm has none: p = 0). */
class PreNorm extends Module {
  readonly norm: LayerNorm;
  readonly fn: SelfAttention | FeedForward;
  readonly drop: Dropout;

  constructor(dim: number, fn: SelfAttention | FeedForward, dropout: number, opts: ModuleOptions) {
    super();
    this.norm = this.module('norm', new LayerNorm(dim, opts));
    this.fn = this.module('fn', fn);
    this.drop = this.module('drop', new Dropout(dropout, { generator: opts.generator }));
  }

  forward(x: Tensor): Tensor {
    return this.drop.forward(this.fn.forward(this.norm.forward(x)));
  }
}

/** x + fn(x). */
class Residual extends Module {
  readonly fn: PreNorm;

  constructor(fn: PreNorm) {
    super();
    this.fn = this.module('fn', fn);
  }

  forward(x: Tensor): Tensor {
    return x.add(this.fn.forward(x));
  }
}

/** The encoder: per block, x + drop(attn(ln(x))) then x + ffn(ln(x)). */
class Encoder extends Module {
  readonly net: ModuleList<Residual>;

  constructor(config: OadTRConfig, opts: ModuleOptions) {
    super();
    const { embeddingDim: D, numHeads, hiddenDim, dropoutRate, attnDropoutRate } = config;
    this.net = this.module('net', new ModuleList<Residual>());
    for (let i = 0; i < config.numLayers; i++) {
      this.net.push(new Residual(new PreNorm(D, new SelfAttention(D, numHeads, attnDropoutRate, opts), dropoutRate, opts)));
      this.net.push(new Residual(new PreNorm(D, new FeedForward(D, hiddenDim, dropoutRate, opts), 0, opts)));
    }
  }

  forward(x: Tensor): Tensor {
    for (const block of this.net) x = block.forward(x);
    return x;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder: the official Informer-style layers (AttentionLayer, kernel-1 Conv1d feed-forward, post-norm)

/** Multi-head attention with separate query/key/value/out projections, all with bias. */
class AttentionLayer extends Module {
  readonly queryProjection: Linear;
  readonly keyProjection: Linear;
  readonly valueProjection: Linear;
  readonly outProjection: Linear;

  constructor(dim: number, readonly heads: number, readonly causal: boolean, readonly dropout: number, readonly opts: ModuleOptions) {
    super();
    this.queryProjection = this.module('query_projection', new Linear(dim, dim, opts));
    this.keyProjection = this.module('key_projection', new Linear(dim, dim, opts));
    this.valueProjection = this.module('value_projection', new Linear(dim, dim, opts));
    this.outProjection = this.module('out_projection', new Linear(dim, dim, opts));
  }

  /** Queries [B, L, D] attend to keys and values from `context` [B, S, D]; causal: query i sees keys j <= i. */
  forward(x: Tensor, context: Tensor): Tensor {
    const q = splitHeads(this.queryProjection.forward(x), this.heads);
    const k = splitHeads(this.keyProjection.forward(context), this.heads);
    const v = splitHeads(this.valueProjection.forward(context), this.heads);
    const o = attend(q, k, v, { causal: this.causal, dropout: this.training ? this.dropout : 0, generator: this.opts.generator });
    return this.outProjection.forward(mergeHeads(o));
  }
}

/** A Conv1d with kernel size 1 over [B, L, C]: a Linear whose weight is stored as [out, in, 1]. */
class PointwiseConv extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly inChannels: number, readonly outChannels: number, opts: ModuleOptions) {
    super();
    this.weight = this.param('weight', paramZeros([outChannels, inChannels, 1], opts));
    this.bias = this.param('bias', paramZeros([outChannels], opts));
    if (opts.init ?? true) {
      const g = opts.generator ?? getDefaultGenerator();
      kaimingUniform_(this.weight, { a: Math.sqrt(5), generator: g });
      uniform_(this.bias, -1 / Math.sqrt(inChannels), 1 / Math.sqrt(inChannels), g);
    }
  }

  forward(x: Tensor, activation?: 'gelu_erf'): Tensor {
    return linear(x, this.weight.reshape(this.outChannels, this.inChannels), this.bias, activation);
  }
}

/** norm1(x + self-attn(x)), norm2(. + cross-attn(., encoder)), norm3(. + conv2(gelu(conv1(.)))). */
class DecoderLayer extends Module {
  readonly selfAttention: AttentionLayer;
  readonly crossAttention: AttentionLayer;
  readonly conv1: PointwiseConv;
  readonly conv2: PointwiseConv;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  readonly drop: Dropout;

  constructor(config: OadTRConfig, opts: ModuleOptions) {
    super();
    const { embeddingDim: D, decoderNumHeads: H, decoderEmbeddingDimOut: ff, decoderAttnDropoutRate: p } = config;
    this.selfAttention = this.module('self_attention', new AttentionLayer(D, H, true, p, opts));
    this.crossAttention = this.module('cross_attention', new AttentionLayer(D, H, false, p, opts));
    this.conv1 = this.module('conv1', new PointwiseConv(D, ff, opts));
    this.conv2 = this.module('conv2', new PointwiseConv(ff, D, opts));
    this.norm1 = this.module('norm1', new LayerNorm(D, opts));
    this.norm2 = this.module('norm2', new LayerNorm(D, opts));
    this.norm3 = this.module('norm3', new LayerNorm(D, opts));
    this.drop = this.module('drop', new Dropout(p, { generator: opts.generator }));
  }

  forward(x: Tensor, encoded: Tensor): Tensor {
    x = this.norm1.forward(x.add(this.drop.forward(this.selfAttention.forward(x, x))));
    x = this.norm2.forward(x.add(this.drop.forward(this.crossAttention.forward(x, encoded))));
    const y = this.drop.forward(this.conv2.forward(this.drop.forward(this.conv1.forward(x, 'gelu_erf'))));
    return this.norm3.forward(x.add(y));
  }
}

class Decoder extends Module {
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: LayerNorm;

  constructor(config: OadTRConfig, opts: ModuleOptions) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: config.decoderLayers }, () => new DecoderLayer(config, opts))));
    this.norm = this.module('norm', new LayerNorm(config.embeddingDim, opts));
  }

  forward(queries: Tensor, encoded: Tensor): Tensor {
    let x = queries;
    for (const layer of this.layers) x = layer.forward(x, encoded);
    return this.norm.forward(x);
  }
}

// ---------------------------------------------------------------------------------------------
// The model

export interface OadTROptions extends ModuleOptions {
  /**
   * Draw initial weights (PyTorch's defaults, which the official code keeps); default true.
   * fromPretrained skips it when every weight comes from the checkpoint.
   */
  initWeights?: boolean;
}

/** The checkpoint names are the module names; nothing is renamed. */
const OADTR_CHECKPOINT: CheckpointFormat<OadTRConfig> = {
  parseConfig: (json, where) => OadTRConfig.fromHF(json, where),
};

export class OadTR extends Module implements OnlineActionDetector {
  readonly kind = 'online-action-detector';
  /** The task token, appended after the window's chunks. */
  readonly clsToken: Tensor;
  /** The decoder's learned queries, one per anticipated chunk (null without a decoder). */
  readonly decoderClsToken: Tensor | null;
  readonly linearEncoding: Linear;
  readonly positionEncoding: PositionalEncoding;
  readonly peDropout: Dropout;
  readonly encoder: Encoder;
  readonly preHeadLn: LayerNorm;
  readonly mlpHead: Linear;
  readonly decoder: Decoder | null;
  /** In the official state dict, though the official forward leaves the queries without positions. */
  readonly decoderPositionEncoding: PositionalEncoding | null;
  readonly classifier: Linear | null;
  readonly afterDropout: Dropout;

  constructor(readonly config: OadTRConfig, options: OadTROptions = {}) {
    super();
    const opts: ModuleOptions = { ...options, init: options.init ?? options.initWeights ?? true };
    const D = config.embeddingDim;
    const C = config.numClasses;
    this.clsToken = this.param('cls_token', paramZeros([1, 1, D], opts));
    const anticipates = config.decoderLayers > 0;
    this.decoderClsToken = anticipates ? this.param('decoder_cls_token', paramZeros([1, config.queryNum, D], opts)) : null;
    this.linearEncoding = this.module('linear_encoding', new Linear(config.featureDim, D, opts));
    this.positionEncoding = this.module('position_encoding', positionalEncoding(config.positionalEncodingType, config.window + 1, D, opts));
    this.peDropout = this.module('pe_dropout', new Dropout(config.dropoutRate, { generator: opts.generator }));
    this.encoder = this.module('encoder', new Encoder(config, opts));
    this.preHeadLn = this.module('pre_head_ln', new LayerNorm(D, opts));
    this.mlpHead = this.module('mlp_head', new Linear(anticipates ? 2 * D : D, C, opts));
    this.decoder = anticipates ? this.module('decoder', new Decoder(config, opts)) : null;
    this.decoderPositionEncoding = anticipates
      ? this.module('decoder_position_encoding', positionalEncoding(config.positionalEncodingType, config.queryNum, D, opts))
      : null;
    this.classifier = anticipates ? this.module('classifier', new Linear(D, C, opts)) : null;
    this.afterDropout = this.module('after_dropout', new Dropout(config.dropoutRate, { generator: opts.generator }));
  }

  /**
   * camera [B, T, cameraDim] and motion [B, T, motionDim] (either null where its width is 0),
   * T the window -> current-chunk scores [B, C] and the next Q chunks' scores [B, Q, C] (logits).
   */
  forward(camera: Tensor | null, motion: Tensor | null): OnlineDetectorOutput {
    const chunks = this.#chunkFeatures(camera, motion);
    const B = chunks.shape[0]!;
    const D = this.config.embeddingDim;
    // The task token sits after the last chunk, so it reads as "now".
    let x = concat([this.linearEncoding.forward(chunks), this.clsToken.expand(B, 1, D)], 1);
    x = this.peDropout.forward(this.positionEncoding.forward(x));
    const encoded = this.preHeadLn.forward(this.encoder.forward(x));
    const taskToken = encoded.select(1, this.config.window);
    if (!this.decoder) {
      const none = tensor(new Float32Array(0), { shape: [B, 0, this.config.numClasses], backend: taskToken.backend });
      return { encoderScores: this.mlpHead.forward(taskToken), decoderScores: none };
    }
    const queries = this.decoderClsToken!.expand(B, this.config.queryNum, D);
    const anticipated = this.afterDropout.forward(this.decoder.forward(queries, encoded));
    const decoderScores = this.classifier!.forward(anticipated);
    const encoderScores = this.mlpHead.forward(concat([taskToken, anticipated.mean(1)], 1));
    return { encoderScores, decoderScores };
  }

  /** The model's input [B, T, featureDim], checked against the config. */
  #chunkFeatures(camera: Tensor | null, motion: Tensor | null): Tensor {
    const { window: T, cameraDim, motionDim } = this.config;
    const streams: Tensor[] = [];
    let B: number | null = null;
    for (const [what, x, dim] of [['camera', camera, cameraDim], ['motion', motion, motionDim]] as const) {
      if (dim === 0) {
        if (x) throw new Error(`OadTR: this model has no ${what} stream (${what}_dim 0), but ${what} features [${x.shape}] were given`);
        continue;
      }
      if (!x) throw new Error(`OadTR: ${what} features [B, ${T}, ${dim}] are required`);
      if (x.ndim !== 3 || x.shape[1] !== T || x.shape[2] !== dim) {
        throw new Error(`OadTR: ${what} features must be [B, ${T}, ${dim}] (batch, window, ${what}_dim), got [${x.shape}]`);
      }
      if (B !== null && x.shape[0] !== B) throw new Error(`OadTR: camera and motion features have different batch sizes (${B} and ${x.shape[0]})`);
      B = x.shape[0]!;
      streams.push(x);
    }
    return streams.length === 1 ? streams[0]! : concat(streams, 2);
  }

  /**
   * The official training loss: weight_h * CE(current) + weight_pred * CE(anticipated), each the
   * soft-label cross-entropy over the classes other than the ambiguous one, averaged over the
   * samples whose target is not the ambiguous class. encoderTarget [B, C], decoderTarget [B, Q, C].
   */
  loss(out: OnlineDetectorOutput, encoderTarget: Tensor, decoderTarget: Tensor): OnlineDetectorLoss {
    const { numClasses: C } = this.config;
    const Q = this.queries;
    const B = out.encoderScores.shape[0]!;
    if (encoderTarget.ndim !== 2 || encoderTarget.shape[0] !== B || encoderTarget.shape[1] !== C) {
      throw new Error(`OadTR loss: the current-chunk target must be [${B}, ${C}] (batch, classes), got [${encoderTarget.shape}]`);
    }
    if (decoderTarget.ndim !== 3 || decoderTarget.shape[0] !== B || decoderTarget.shape[1] !== Q || decoderTarget.shape[2] !== C) {
      throw new Error(`OadTR loss: the anticipation target must be [${B}, ${Q}, ${C}] (batch, queries, classes), got [${decoderTarget.shape}]`);
    }
    const ignore = { ignoreClass: this.config.ambiguousClass };
    const encoder = softLabelCrossEntropy(out.encoderScores, encoderTarget, ignore);
    const decoder = Q > 0
      ? softLabelCrossEntropy(out.decoderScores.reshape(B * Q, C), decoderTarget.reshape(B * Q, C), ignore)
      : tensor([0], { shape: [], backend: encoder.backend });
    const loss = encoder.mul(this.config.classificationHLossCoef).add(decoder.mul(this.config.classificationPredLossCoef));
    return { loss, encoder, decoder };
  }

  get window(): number {
    return this.config.window;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  /** The future chunks anticipated: the decoder's queries, none without a decoder. */
  get queries(): number {
    return this.decoder ? this.config.queryNum : 0;
  }

  get cameraDim(): number {
    return this.config.cameraDim;
  }

  get motionDim(): number {
    return this.config.motionDim;
  }

  /** Loads config.json + model.safetensors with the official state dict names. */
  static fromPretrained(dir: string, opts: OadTROptions & { strict?: boolean } = {}): OadTR {
    return loadPretrained(dir, opts, OADTR_CHECKPOINT, (config, _weights, o) => ({ model: new OadTR(config, { ...o, init: o.initWeights }) }));
  }

  /**
   * Loads an official state dict saved as safetensors without a config.json (dir/model.safetensors):
   * the sizes come from the weights' shapes (inferOadTRConfig); `given` supplies what shapes do
   * not tell (the camera/motion split, head counts, dropout rates, the ambiguous class).
   */
  static fromOfficialWeights(dir: string, given: OadTRConfigOptions = {}, opts: OadTROptions & { strict?: boolean } = {}): OadTR {
    const weights = HFWeights.open(dir);
    try {
      const shapes = Object.fromEntries(weights.names.map((n) => [n, weights.info(n).shape]));
      const model = new OadTR(inferOadTRConfig(shapes, given, path.join(dir, WEIGHTS_NAME)), { ...opts, init: !(opts.strict ?? true) });
      loadHFStateDict(model, weights, { strict: opts.strict ?? true });
      model.eval();
      return model;
    } finally {
      weights.close();
    }
  }

  /** Writes config.json and model.safetensors, the weights under the official names. */
  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['OadTR']), (k) => k, opts);
  }

  get family(): ModelFamily {
    return OADTR;
  }

  imageTower(): null {
    return null;
  }
}

/**
 * The config of an official state dict, from its tensors' shapes: widths, window, queries,
 * classes and layer counts. `given` supplies what shapes cannot tell: the camera/motion split
 * (default: all camera), num_heads and decoder_num_heads (which must then divide the width),
 * dropout rates, the ambiguous class; a given size the shapes contradict is an error.
 */
export function inferOadTRConfig(shapes: Readonly<Record<string, readonly number[]>>, given: OadTRConfigOptions = {}, label = 'OadTR weights'): OadTRConfig {
  const shape = (name: string): readonly number[] => {
    const s = shapes[name];
    if (!s) throw new Error(`${label}: no ${name} (not an official OadTR state dict?)`);
    return s;
  };
  const count = (re: RegExp): number => new Set(Object.keys(shapes).flatMap((k) => re.exec(k)?.[1] ?? [])).size;
  const featureDim = shape('linear_encoding.weight')[1]!;
  const learned = shapes['position_encoding.pe.weight'] !== undefined;
  // Weights without a decoder are the ablation without anticipation (decoder_layers 0).
  const anticipates = shapes.decoder_cls_token !== undefined;
  const inferred: OadTRConfigOptions = {
    numClasses: shape('mlp_head.weight')[0]!,
    embeddingDim: shape('cls_token')[2]!,
    numLayers: count(/^encoder\.net\.(\d+)\./) / 2,
    hiddenDim: shape('encoder.net.1.fn.fn.net.0.weight')[0]!,
    decoderLayers: count(/^decoder\.layers\.(\d+)\./),
    ...(anticipates ? { queryNum: shape('decoder_cls_token')[1]!, decoderEmbeddingDimOut: shape('decoder.layers.0.conv1.weight')[0]! } : {}),
    ...(learned ? { window: shape('position_encoding.pe.weight')[0]! - 1, positionalEncodingType: 'learned' as const } : {}),
  };
  for (const [k, v] of Object.entries(inferred)) {
    const g = (given as Record<string, unknown>)[k];
    if (g !== undefined && g !== v) throw new Error(`${label}: ${k} is given as ${String(g)} but the weights have ${String(v)}`);
  }
  const cameraDim = given.cameraDim ?? (given.motionDim !== undefined ? featureDim - given.motionDim : featureDim);
  const motionDim = given.motionDim ?? featureDim - cameraDim;
  if (cameraDim < 0 || motionDim < 0 || cameraDim + motionDim !== featureDim) {
    throw new Error(`${label}: camera_dim ${cameraDim} + motion_dim ${motionDim} must equal the linear encoding's input width ${featureDim}`);
  }
  return new OadTRConfig({ ...given, ...inferred, cameraDim, motionDim });
}

export const OADTR: ModelFamily = {
  modelType: 'oadtr',
  title: 'OadTR',
  config: OadTRConfig,
  architectures: { OadTR },
  imageProcessor: null,
};
