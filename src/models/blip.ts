// BLIP (Li et al. 2022) with Hugging Face parity: BlipForImageTextRetrieval and
// BlipForConditionalGeneration load checkpoints in HF's layout and give the numbers transformers gives.
//
//   image: patch conv (with bias) -> [class] + patches -> + positions -> pre-LN encoder (fused qkv)
//          -> post-LN over every token (the image embeddings); the class token is normed once more
//          for the pooled output
//   text:  word + position embeddings -> LN -> post-LN BERT layers, each with cross-attention to
//          the image embeddings when they are given
//   retrieval: ITM head on the [CLS] state of the image-grounded text encoder; ITC: cosine of the
//              projected [CLS] states of the image and of the text encoder run without the image
//   captioning: the same text stack run causally, BERT's LM head tied to the word embeddings,
//               next-token cross-entropy, greedy generation from the bos token (with a key/value
//               cache: each step feeds one token, the image's cross-attention keys projected once)
//
// The vision layer's attention keeps HF's fused qkv projection (one [3D, D] matrix), so it is a
// small layer of its own rather than the engine's TransformerBlock (separate q/k/v); the text
// layers are BERT's (models/bert.ts), whose names BLIP's checkpoints use unchanged. Every module
// key is the HF checkpoint key.
import { type HFWeights, type SaveHFOptions, loadPretrained, savePretrained, type CheckpointFormat } from '../io/hf.js';
import { Dropout, Embedding, LayerNorm, Linear, MLP } from '../nn/layers.js';
import { Module, ModuleList, type ModuleOptions, paramZeros } from '../nn/module.js';
import { constant_, normal_, truncNormal_, zeros_ } from '../nn/init.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { conv2d, crossEntropy, scaledDotProductAttention } from '../tensor/ops/nn.js';
import { DecoderCache, composedAttention } from '../nn/attention.js';
import { type Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { BertConfig, BertLayer, type BertLayerCall, BertLMPredictionHead, BertOnlyMLMHead, bertKeyFromHF, layerCalls } from './bert.js';
import { act, bool, configClass, int, num, omitWhen, sub, tokenId } from './config_table.js';
import type { ImageTowerLayout, ModelFamily, OtherModel } from './family.js';
import { interpolateBicubic } from './interpolate.js';

// ---------------------------------------------------------------------------------------------
// Configuration

/** The text model's hyperparameters, with HF's BlipTextConfig defaults. */
export class BlipTextConfig extends configClass({
  name: 'BlipTextConfig',
  modelType: 'blip_text_model',
  nested: true,
  fields: {
    vocabSize: int('vocab_size', 30524),
    hiddenSize: int('hidden_size', 768),
    /** Width of the image embeddings the cross-attention reads. */
    encoderHiddenSize: int('encoder_hidden_size', 768),
    intermediateSize: int('intermediate_size', 3072),
    projectionDim: int('projection_dim', 768),
    numHiddenLayers: int('num_hidden_layers', 12),
    numAttentionHeads: int('num_attention_heads', 8),
    maxPositionEmbeddings: int('max_position_embeddings', 512),
    hiddenAct: act('hidden_act', 'gelu'),
    layerNormEps: num('layer_norm_eps', 1e-12),
    hiddenDropoutProb: num('hidden_dropout_prob', 0),
    attentionProbsDropoutProb: num('attention_probs_dropout_prob', 0),
    initializerRange: num('initializer_range', 0.02),
    bosTokenId: int('bos_token_id', 30522, { min: 0 }),
    eosTokenId: int('eos_token_id', 2, { min: 0 }),
    padTokenId: tokenId('pad_token_id', 0),
    /** Generation stops at this id (HF's BLIP passes sep_token_id as the eos of generate). */
    sepTokenId: int('sep_token_id', 102, { min: 0 }),
    /** Layers get the cross-attention sub-layer (HF's BLIP text layers have it exactly when is_decoder). */
    isDecoder: bool('is_decoder', true),
    /** Label smoothing of the captioning loss. */
    labelSmoothing: num('label_smoothing', 0),
    tieWordEmbeddings: bool('tie_word_embeddings', true),
  },
  check: (c, label) => {
    if (!(c.labelSmoothing >= 0 && c.labelSmoothing <= 1)) throw new Error(`${label}: label_smoothing must be in [0, 1], got ${c.labelSmoothing}`);
    if (c.hiddenSize % c.numAttentionHeads !== 0) {
      throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
    }
    for (const [name, id] of [['bos_token_id', c.bosTokenId], ['sep_token_id', c.sepTokenId], ['pad_token_id', c.padTokenId]] as const) {
      if (id !== null && id >= c.vocabSize) throw new Error(`${label}: ${name} ${id} is out of range for vocab_size ${c.vocabSize}`);
    }
  },
}) {
  #bert?: BertConfig;

  /** The same hyperparameters as BERT's layers and heads read them. */
  get bert(): BertConfig {
    return (this.#bert ??= new BertConfig({
      vocabSize: this.vocabSize, hiddenSize: this.hiddenSize, numHiddenLayers: this.numHiddenLayers,
      numAttentionHeads: this.numAttentionHeads, intermediateSize: this.intermediateSize, hiddenAct: this.hiddenAct,
      hiddenDropoutProb: this.hiddenDropoutProb, attentionProbsDropoutProb: this.attentionProbsDropoutProb,
      maxPositionEmbeddings: this.maxPositionEmbeddings, initializerRange: this.initializerRange, layerNormEps: this.layerNormEps,
      padTokenId: this.padTokenId, tieWordEmbeddings: this.tieWordEmbeddings, isDecoder: this.isDecoder,
      addCrossAttention: this.isDecoder, encoderHiddenSize: this.encoderHiddenSize,
    }));
  }
}

export type BlipTextConfigOptions = ConstructorParameters<typeof BlipTextConfig>[0];

/** The vision model's hyperparameters, with HF's BlipVisionConfig defaults. */
export class BlipVisionConfig extends configClass({
  name: 'BlipVisionConfig',
  modelType: 'blip_vision_model',
  nested: true,
  fields: {
    hiddenSize: int('hidden_size', 768),
    intermediateSize: int('intermediate_size', 3072),
    projectionDim: int('projection_dim', 512),
    numHiddenLayers: int('num_hidden_layers', 12),
    numAttentionHeads: int('num_attention_heads', 12),
    /** HF's BLIP vision config has no num_channels (its patch conv takes 3): only other values are written. */
    numChannels: omitWhen(int('num_channels', 3), 3),
    imageSize: int('image_size', 384),
    patchSize: int('patch_size', 16),
    hiddenAct: act('hidden_act', 'gelu'),
    layerNormEps: num('layer_norm_eps', 1e-5),
    attentionDropout: num('attention_dropout', 0),
    /** Standard deviation of the class and position embeddings' initial values. */
    initializerRange: num('initializer_range', 1e-10),
  },
  check: (c, label) => {
    if (c.hiddenSize % c.numAttentionHeads !== 0) {
      throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
    }
    if (c.imageSize < c.patchSize) throw new Error(`${label}: image_size ${c.imageSize} is smaller than patch_size ${c.patchSize}`);
  },
}) {
  /** Patches per side at the native image size. */
  get gridSize(): number {
    return Math.floor(this.imageSize / this.patchSize);
  }
}

export type BlipVisionConfigOptions = ConstructorParameters<typeof BlipVisionConfig>[0];

/** A BLIP checkpoint's configuration: both towers and the shared sizes. */
export class BlipConfig extends configClass({
  name: 'BlipConfig',
  modelType: 'blip',
  fields: {
    textConfig: sub<BlipTextConfig, BlipTextConfigOptions>('text_config', BlipTextConfig),
    visionConfig: sub<BlipVisionConfig, BlipVisionConfigOptions>('vision_config', BlipVisionConfig),
    /** Width of BlipModel's contrastive projections. */
    projectionDim: int('projection_dim', 512),
    /** Width of the retrieval model's ITC projections (vision_proj, text_proj). */
    imageTextHiddenSize: int('image_text_hidden_size', 256),
    logitScaleInitValue: num('logit_scale_init_value', 2.6592),
    /** Standard deviation of the initial Linear, Conv and Embedding weights. */
    initializerRange: num('initializer_range', 0.02),
    initializerFactor: num('initializer_factor', 1),
  },
  check: ({ textConfig: t, visionConfig: v }, label) => {
    if (t.isDecoder && t.encoderHiddenSize !== v.hiddenSize) {
      throw new Error(`${label}: text encoder_hidden_size ${t.encoderHiddenSize} must equal the vision hidden_size ${v.hiddenSize}`);
    }
  },
}) {}

export type BlipConfigOptions = ConstructorParameters<typeof BlipConfig>[0];

// ---------------------------------------------------------------------------------------------
// Vision model

/** The patch convolution (kernel = stride = patch size, with bias), registered as HF's nn.Conv2d. */
class PatchConv extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(config: BlipVisionConfig, opts: ModuleOptions) {
    super();
    const p = config.patchSize;
    this.weight = this.param('weight', paramZeros([config.hiddenSize, config.numChannels, p, p], opts));
    this.bias = this.param('bias', paramZeros([config.hiddenSize], opts));
  }
}

/** [class] + patch embeddings + position embeddings (HF's BlipVisionEmbeddings). */
export class BlipVisionEmbeddings extends Module {
  /** [1, 1, D]. */
  readonly classEmbedding: Tensor;
  readonly patchEmbedding: PatchConv;
  /** [1, 1 + patches, D]. */
  readonly positionEmbedding: Tensor;

  constructor(readonly config: BlipVisionConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    const g = config.gridSize;
    this.classEmbedding = this.param('class_embedding', paramZeros([1, 1, D], opts));
    this.patchEmbedding = this.module('patch_embedding', new PatchConv(config, opts));
    this.positionEmbedding = this.param('position_embedding', paramZeros([1, g * g + 1, D], opts));
  }

  /**
   * pixels [B, C, H, W] -> [B, 1 + patches, D]. Without interpolatePosEncoding the image must have
   * the configured size; with it, any size of at least one patch.
   */
  forward(pixels: Tensor, interpolatePosEncoding = false): Tensor {
    const { numChannels: C, imageSize, hiddenSize: D, patchSize: p } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`BLIP: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (!interpolatePosEncoding && (H !== imageSize || W !== imageSize)) {
      throw new Error(`BLIP: input image size (${H}*${W}) doesn't match the model (${imageSize}*${imageSize}); ` +
        'pass interpolatePosEncoding: true to run at other sizes');
    }
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    if (gh < 1 || gw < 1) throw new Error(`BLIP: image ${H}x${W} is smaller than one ${p}x${p} patch`);
    // As PyTorch's strided convolution, rows and columns past the last whole patch are dropped.
    const x = H === gh * p && W === gw * p ? pixels : pixels.slice(2, 0, gh * p).slice(3, 0, gw * p);
    const patches = conv2d(x, this.patchEmbedding.weight, this.patchEmbedding.bias, p).permute(0, 2, 3, 1).reshape(B, gh * gw, D);
    const cls = this.classEmbedding.expand(B, 1, D);
    const pos = interpolatePosEncoding ? this.interpolatePosEncoding(H, W) : this.positionEmbedding;
    return concat([cls, patches], 1).add(pos);
  }

  /**
   * The position table [1, 1 + patches, D] for an H x W image, as HF's interpolate_pos_encoding:
   * the table itself when the patch count is unchanged and the image square, else the patch grid
   * resized bicubically (align_corners=False) with the class position kept.
   */
  interpolatePosEncoding(H: number, W: number): Tensor {
    const { patchSize: p, hiddenSize: D, gridSize: g0 } = this.config;
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    const table = this.positionEmbedding;
    if (gh * gw === g0 * g0 && H === W) return table;
    const grid = table.slice(1, 1).reshape(g0, g0, D).permute(2, 0, 1);
    const resized = interpolateBicubic(grid, [gh, gw]).permute(1, 2, 0).reshape(1, gh * gw, D);
    return concat([table.slice(1, 0, 1), resized], 1);
  }
}

/** Multi-head self-attention with one fused qkv projection and an output `projection` (HF's BlipAttention). */
export class BlipAttention extends Module {
  readonly qkv: Linear;
  readonly projection: Linear;
  readonly numHeads: number;
  readonly headDim: number;
  readonly dropoutProb: number;
  readonly #generator: Generator | undefined;

  constructor(config: BlipVisionConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    this.numHeads = config.numAttentionHeads;
    this.headDim = D / this.numHeads;
    this.dropoutProb = config.attentionDropout;
    this.#generator = opts.generator;
    this.qkv = this.module('qkv', new Linear(D, 3 * D, opts));
    this.projection = this.module('projection', new Linear(D, D, opts));
  }

  forward(x: Tensor): Tensor {
    const [B, T, D] = x.shape as [number, number, number];
    // [B, T, 3D] viewed as [3, B, H, T, hd]: q, k and v are views of the one projection.
    const qkv = this.qkv.forward(x).reshape(B, T, 3, this.numHeads, this.headDim).permute(2, 0, 3, 1, 4);
    const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i)) as [Tensor, Tensor, Tensor];
    const o = this.training && this.dropoutProb > 0
      ? composedAttention(q, k, v, { dropout: this.dropoutProb, generator: this.#generator })
      : scaledDotProductAttention(q, k, v);
    return this.projection.forward(o.permute(0, 2, 1, 3).reshape(B, T, D));
  }
}

/** x + attn(ln1(x)), then x + mlp(ln2(x)) (HF's BlipEncoderLayer). */
export class BlipEncoderLayer extends Module {
  readonly layerNorm1: LayerNorm;
  readonly selfAttn: BlipAttention;
  readonly layerNorm2: LayerNorm;
  readonly mlp: MLP;

  constructor(config: BlipVisionConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    const ln = { ...opts, eps: config.layerNormEps };
    this.layerNorm1 = this.module('layer_norm1', new LayerNorm(D, ln));
    this.selfAttn = this.module('self_attn', new BlipAttention(config, opts));
    this.layerNorm2 = this.module('layer_norm2', new LayerNorm(D, ln));
    this.mlp = this.module('mlp', new MLP(D, config.intermediateSize, { ...opts, act: config.hiddenAct }));
  }

  forward(x: Tensor): Tensor {
    // h = x + attn(...) and ln2(h) come from one fused pass.
    const { sum: h, normed } = this.layerNorm2.forwardAdd(x, this.selfAttn.forward(this.layerNorm1.forward(x)));
    return h.add(this.mlp.forward(normed));
  }
}

/** The stack of vision layers, registered as layers.0, layers.1, ... (HF's BlipEncoder). */
export class BlipEncoder extends Module {
  readonly layers: ModuleList<BlipEncoderLayer>;

  constructor(config: BlipVisionConfig, opts: ModuleOptions = {}) {
    super();
    this.layers = this.module('layers', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new BlipEncoderLayer(config, opts))));
  }

  forward(x: Tensor, hiddenStates?: Tensor[]): Tensor {
    hiddenStates?.push(x);
    for (const layer of this.layers) {
      x = layer.forward(x);
      hiddenStates?.push(x);
    }
    return x;
  }
}

export interface BlipVisionOutput {
  /** [B, 1 + patches, D] after the post layer norm: the image embeddings the text model reads. */
  lastHiddenState: Tensor;
  /** [B, D]: the class token's normed state normed once more (as HF). */
  poolerOutput: Tensor;
  /** The embeddings, then each layer's output (before the post layer norm), when asked for. */
  hiddenStates: Tensor[] | null;
}

/** HF's BlipVisionModel: embeddings, encoder, post layer norm. */
export class BlipVisionModel extends Module {
  readonly embeddings: BlipVisionEmbeddings;
  readonly encoder: BlipEncoder;
  readonly postLayernorm: LayerNorm;

  constructor(readonly config: BlipVisionConfig, opts: ModuleOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new BlipVisionEmbeddings(config, opts));
    this.encoder = this.module('encoder', new BlipEncoder(config, opts));
    this.postLayernorm = this.module('post_layernorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
  }

  forward(pixels: Tensor, opts: { interpolatePosEncoding?: boolean; outputHiddenStates?: boolean } = {}): BlipVisionOutput {
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.encoder.forward(this.embeddings.forward(pixels, opts.interpolatePosEncoding), hiddenStates);
    const lastHiddenState = this.postLayernorm.forward(x);
    const poolerOutput = this.postLayernorm.forward(lastHiddenState.select(1, 0));
    return { lastHiddenState, poolerOutput, hiddenStates: hiddenStates ?? null };
  }
}

// ---------------------------------------------------------------------------------------------
// Text model

/** word + position embeddings, LayerNorm, dropout (HF's BlipTextEmbeddings: no token types). */
export class BlipTextEmbeddings extends Module {
  readonly wordEmbeddings: Embedding;
  readonly positionEmbeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  constructor(readonly config: BlipTextConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    this.wordEmbeddings = this.module('word_embeddings', new Embedding(config.vocabSize, D, { ...opts, paddingIdx: config.padTokenId }));
    this.positionEmbeddings = this.module('position_embeddings', new Embedding(config.maxPositionEmbeddings, D, opts));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(D, { ...opts, eps: config.layerNormEps }));
    this.dropout = this.module('dropout', new Dropout(config.hiddenDropoutProb, { generator: opts.generator }));
  }

  /** ids [B, T] -> [B, T, D]; positions pastLength .. pastLength + T - 1. */
  forward(inputIds: Tensor, pastLength = 0): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`BLIP: input_ids must be [B, T], got [${inputIds.shape}]`);
    const T = inputIds.shape[1]!;
    const P = this.config.maxPositionEmbeddings;
    if (pastLength + T > P) throw new Error(`BLIP: ${pastLength + T} positions exceed max_position_embeddings ${P}`);
    const positions = this.positionEmbeddings.weight.slice(0, pastLength, pastLength + T);
    return this.dropout.forward(this.LayerNorm.forward(this.wordEmbeddings.forward(inputIds).add(positions)));
  }
}

/**
 * BERT's post-LN layer as BLIP's text model uses it: the cross-attention sub-layer runs only when
 * image embeddings are given (the ITC text encoder runs the same layers without it).
 */
export class BlipTextLayer extends BertLayer {
  override forward(x: Tensor, call: BertLayerCall = {}): Tensor {
    if (call.encoderHiddenStates || !this.crossattention) return super.forward(x, call);
    const h = this.attention.forward(x, { keyPadding: call.attentionMask ?? null, causal: call.causal ?? false, cache: call.cache?.self ?? null });
    return this.output.forward(this.intermediate.forward(h), h);
  }
}

/** The stack of text layers, registered as layer.0, layer.1, ... (HF's BlipTextEncoder). */
export class BlipTextEncoder extends Module {
  readonly layer: ModuleList<BlipTextLayer>;

  constructor(config: BlipTextConfig, opts: ModuleOptions = {}) {
    super();
    this.layer = this.module('layer', new ModuleList(Array.from({ length: config.numHiddenLayers },
      () => new BlipTextLayer(config.bert, { ...opts, crossAttention: config.isDecoder }))));
  }

  /** cache: one LayerCache per layer, for incremental decoding. */
  forward(x: Tensor, call: Omit<BertLayerCall, 'cache'>, hiddenStates?: Tensor[], cache: DecoderCache | null = null): Tensor {
    const calls = layerCalls(call, cache, this.layer.length);
    hiddenStates?.push(x);
    let i = 0;
    for (const layer of this.layer) {
      x = layer.forward(x, calls[i++]!);
      hiddenStates?.push(x);
    }
    return x;
  }
}

export interface BlipTextForwardOptions {
  /** [B, T]: 1 for tokens to attend to, 0 for padding; default all ones. */
  attentionMask?: Tensor | null;
  /** [B, Tk, encoderHiddenSize]: the image embeddings; without them the cross-attention is skipped. */
  encoderHiddenStates?: Tensor | null;
  /** [B, Tk]: nonzero where an image embedding may be attended to; default all. */
  encoderAttentionMask?: Tensor | null;
  /** Causal self-attention (HF's is_decoder argument); default false. */
  causal?: boolean;
  outputHiddenStates?: boolean;
  /**
   * Incremental decoding (HF's past_key_values): input ids are the new positions only, placed
   * after the cache.length cached ones; the cache gives their keys and values and receives the
   * new ones, and holds the image embeddings' cross-attention keys and values after the first
   * call. The attention mask covers cached and new positions, [B, cache.length + T].
   */
  cache?: DecoderCache | null;
}

export interface BlipTextOutput {
  lastHiddenState: Tensor;
  hiddenStates: Tensor[] | null;
}

/** HF's BlipTextModel without the pooler: embeddings and the BERT layers. */
export class BlipTextModel extends Module {
  readonly embeddings: BlipTextEmbeddings;
  readonly encoder: BlipTextEncoder;

  constructor(readonly config: BlipTextConfig, opts: ModuleOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new BlipTextEmbeddings(config, opts));
    this.encoder = this.module('encoder', new BlipTextEncoder(config, opts));
  }

  forward(inputIds: Tensor, opts: BlipTextForwardOptions = {}): BlipTextOutput {
    const mask = opts.attentionMask ?? null;
    const cache = opts.cache ?? null;
    const past = cache?.length ?? 0;
    if (mask && (mask.ndim !== 2 || mask.shape[0] !== inputIds.shape[0] || mask.shape[1] !== past + inputIds.shape[1]!)) {
      throw new Error(past > 0
        ? `BLIP: attention_mask [${mask.shape}] must cover the ${past} cached and ${inputIds.shape[1]} new positions of input_ids [${inputIds.shape}]`
        : `BLIP: attention_mask [${mask.shape}] must match input_ids [${inputIds.shape}]`);
    }
    const image = opts.encoderHiddenStates ?? null;
    if (image && !this.config.isDecoder) throw new Error('BLIP: this text model has no cross-attention (is_decoder false) to read image embeddings');
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.embeddings.forward(inputIds, past);
    const lastHiddenState = this.encoder.forward(x, {
      attentionMask: mask, causal: opts.causal ?? false,
      encoderHiddenStates: image, encoderAttentionMask: opts.encoderAttentionMask ?? null,
    }, hiddenStates, cache);
    return { lastHiddenState, hiddenStates: hiddenStates ?? null };
  }
}

export interface BlipLMOutput {
  /** [B, T, vocab]. */
  logits: Tensor;
  /** Mean next-token cross-entropy (labels shifted left by one; -100 not scored), when labels were given. */
  loss: Tensor | null;
}

/** The causal text decoder with BERT's LM head (HF's BlipTextLMHeadModel). */
export class BlipTextLMHeadModel extends Module {
  readonly bert: BlipTextModel;
  readonly cls: BertOnlyMLMHead;

  constructor(readonly config: BlipTextConfig, opts: ModuleOptions = {}) {
    super();
    this.bert = this.module('bert', new BlipTextModel(config, opts));
    // An untied decoder shares cls.predictions.bias, as blipKeyFromHF loads it.
    this.cls = this.module('cls', new BertOnlyMLMHead(config.bert, this.bert.embeddings.wordEmbeddings, { ...opts, untiedDecoderBias: false }));
  }

  /** An empty key/value cache for incremental decoding with this decoder (BlipTextForwardOptions.cache). */
  newCache(): DecoderCache {
    return new DecoderCache(this.config.numHiddenLayers);
  }

  /** Causal by default (HF's is_decoder=True); labels [B, T] score logits[:, t] against labels[:, t + 1]. */
  forward(inputIds: Tensor, opts: BlipTextForwardOptions & { labels?: Tensor | null } = {}): BlipLMOutput {
    const hidden = this.bert.forward(inputIds, { ...opts, causal: opts.causal ?? true }).lastHiddenState;
    const logits = this.cls.predictions.forward(hidden);
    const labels = opts.labels ?? null;
    let loss: Tensor | null = null;
    if (labels) {
      const [B, T] = inputIds.shape as [number, number];
      if (labels.ndim !== 2 || labels.shape[0] !== B || labels.shape[1] !== T) throw new Error(`BLIP: labels [${labels.shape}] must match input_ids [${inputIds.shape}]`);
      const V = this.config.vocabSize;
      loss = crossEntropy(logits.slice(1, 0, T - 1).reshape(-1, V), labels.slice(1, 1).reshape(-1),
        { ignoreIndex: -100, labelSmoothing: this.config.labelSmoothing });
    }
    return { logits, loss };
  }
}

// ---------------------------------------------------------------------------------------------
// Task models

/** HF's BLIP _init_weights: normal(initializer_range) Linear/Conv/Embedding weights, zero biases, unit norms. */
function initBlipWeights(root: Module, config: BlipConfig, opts: ModuleOptions): void {
  const g = opts.generator ?? getDefaultGenerator();
  const std = config.initializerRange;
  root.apply((m) => {
    if (m instanceof Linear || m instanceof PatchConv) {
      normal_(m.weight, 0, std, g);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof Embedding) {
      normal_(m.weight, 0, std, g);
      if (m.paddingIdx !== null) zeros_(m.weight.select(0, m.paddingIdx));
    } else if (m instanceof LayerNorm) {
      if (m.weight) constant_(m.weight, 1);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof BlipVisionEmbeddings) {
      const s = config.visionConfig.initializerRange;
      truncNormal_(m.positionEmbedding, 0, s, -2, 2, g);
      truncNormal_(m.classEmbedding, 0, s, -2, 2, g);
    } else if (m instanceof BertLMPredictionHead) {
      zeros_(m.bias);
      if (m.decoder) normal_(m.decoder.weight, 0, std, g);
    }
  });
}

export interface BlipOptions extends ModuleOptions {
  /** Draw initial weights as HF does; default true. fromPretrained skips it when every weight comes from the checkpoint. */
  initWeights?: boolean;
}

/** The layout of the vision model, registered as vision_model in both task models. */
function blipTower(vision: BlipVisionModel): ImageTowerLayout {
  return {
    prefixes: ['vision_model'],
    blocks: 'vision_model.encoder.layers',
    numBlocks: vision.config.numHiddenLayers,
    after: ['vision_model.post_layernorm'],
    modules: [vision],
  };
}

/** x / max(||x||_2, 1e-12) along the last axis (torch's F.normalize). */
export function normalizeL2(x: Tensor): Tensor {
  return x.div(x.square().sum(-1, true).sqrt().clamp(1e-12));
}

export interface BlipRetrievalOutput {
  /** [B, 2]: not-matching / matching logits of each (image, text) pair, when useItmHead. */
  itmLogits: Tensor | null;
  /** [images, texts]: cosine similarities of the ITC features, when not useItmHead. */
  itcSimilarity: Tensor | null;
  vision: BlipVisionOutput;
  /** The text encoder's last hidden state (image-grounded for ITM). */
  questionEmbeds: Tensor;
}

/** Image-text matching and contrastive similarity (HF's BlipForImageTextRetrieval). */
export class BlipForImageTextRetrieval extends Module implements OtherModel {
  readonly kind = 'image-text-matcher';
  readonly visionModel: BlipVisionModel;
  readonly textEncoder: BlipTextModel;
  readonly visionProj: Linear;
  readonly textProj: Linear;
  readonly itmHead: Linear;

  constructor(readonly config: BlipConfig, opts: BlipOptions = {}) {
    super();
    const tc = config.textConfig;
    const vc = config.visionConfig;
    this.visionModel = this.module('vision_model', new BlipVisionModel(vc, opts));
    this.textEncoder = this.module('text_encoder', new BlipTextModel(tc, opts));
    this.visionProj = this.module('vision_proj', new Linear(vc.hiddenSize, config.imageTextHiddenSize, opts));
    this.textProj = this.module('text_proj', new Linear(tc.hiddenSize, config.imageTextHiddenSize, opts));
    this.itmHead = this.module('itm_head', new Linear(tc.hiddenSize, 2, opts));
    if (opts.initWeights ?? true) initBlipWeights(this, config, opts);
  }

  /** ITM logits [B, 2] from the image-grounded text encoder's [CLS] state, given the image embeddings. */
  itm(inputIds: Tensor, imageEmbeds: Tensor, attentionMask: Tensor | null = null): { logits: Tensor; questionEmbeds: Tensor } {
    const questionEmbeds = this.textEncoder.forward(inputIds, { attentionMask, encoderHiddenStates: imageEmbeds }).lastHiddenState;
    return { logits: this.itmHead.forward(questionEmbeds.select(1, 0)), questionEmbeds };
  }

  /** ITC similarity [images, texts] between normalised projected [CLS] states; the text encoder sees no image. */
  itc(inputIds: Tensor, imageEmbeds: Tensor, attentionMask: Tensor | null = null): { similarity: Tensor; questionEmbeds: Tensor } {
    const questionEmbeds = this.textEncoder.forward(inputIds, { attentionMask }).lastHiddenState;
    const imageFeat = normalizeL2(this.visionProj.forward(imageEmbeds.select(1, 0)));
    const textFeat = normalizeL2(this.textProj.forward(questionEmbeds.select(1, 0)));
    return { similarity: imageFeat.matmul(textFeat.transpose(0, 1)), questionEmbeds };
  }

  /** HF's forward: the ITM head (default) or, with useItmHead false, the ITC similarity. */
  forward(inputIds: Tensor, pixels: Tensor, opts: { attentionMask?: Tensor | null; useItmHead?: boolean; interpolatePosEncoding?: boolean } = {}): BlipRetrievalOutput {
    const vision = this.visionModel.forward(pixels, { interpolatePosEncoding: opts.interpolatePosEncoding });
    const mask = opts.attentionMask ?? null;
    if (opts.useItmHead ?? true) {
      const { logits, questionEmbeds } = this.itm(inputIds, vision.lastHiddenState, mask);
      return { itmLogits: logits, itcSimilarity: null, vision, questionEmbeds };
    }
    const { similarity, questionEmbeds } = this.itc(inputIds, vision.lastHiddenState, mask);
    return { itmLogits: null, itcSimilarity: similarity, vision, questionEmbeds };
  }

  static fromPretrained(dir: string, opts: BlipOptions & { strict?: boolean } = {}): BlipForImageTextRetrieval {
    return loadPretrained(dir, opts, BLIP_CHECKPOINT, (config, weights, o) => ({ model: new BlipForImageTextRetrieval(config, o), toModuleKey: blipModuleKeys(config, weights) }));
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['BlipForImageTextRetrieval']), blipKeyToHF, opts);
  }

  get family(): ModelFamily {
    return BLIP;
  }

  imageTower(): ImageTowerLayout {
    return blipTower(this.visionModel);
  }
}

export interface BlipGenerateOptions {
  /** A prompt [B, T]; as HF, its first token is replaced by bos and its last (the [SEP]) dropped. Default: bos alone. */
  inputIds?: Tensor | null;
  attentionMask?: Tensor | null;
  /** Tokens to add at most; default: up to maxLength. */
  maxNewTokens?: number;
  /** Total length at most (prompt included) when maxNewTokens is not given; default 20, as HF's generation default. */
  maxLength?: number;
  interpolatePosEncoding?: boolean;
  /** Keep the decoder's keys and values between steps (HF's use_cache) and feed only the new token; default true. */
  useCache?: boolean;
}

export interface BlipCaptionOutput extends BlipLMOutput {
  vision: BlipVisionOutput;
}

/** Image captioning (HF's BlipForConditionalGeneration). */
export class BlipForConditionalGeneration extends Module implements OtherModel {
  readonly kind = 'captioner';
  readonly visionModel: BlipVisionModel;
  readonly textDecoder: BlipTextLMHeadModel;

  constructor(readonly config: BlipConfig, opts: BlipOptions = {}) {
    super();
    if (!config.textConfig.isDecoder) throw new Error('BLIP captioning needs a text config with is_decoder true (the cross-attention layers)');
    this.visionModel = this.module('vision_model', new BlipVisionModel(config.visionConfig, opts));
    this.textDecoder = this.module('text_decoder', new BlipTextLMHeadModel(config.textConfig, opts));
    if (opts.initWeights ?? true) initBlipWeights(this, config, opts);
  }

  /** Teacher-forced logits of the caption [B, T] given the image; with labels, the LM loss. */
  forward(pixels: Tensor, inputIds: Tensor, opts: { attentionMask?: Tensor | null; labels?: Tensor | null; interpolatePosEncoding?: boolean } = {}): BlipCaptionOutput {
    const vision = this.visionModel.forward(pixels, { interpolatePosEncoding: opts.interpolatePosEncoding });
    const out = this.textDecoder.forward(inputIds, {
      attentionMask: opts.attentionMask ?? null, encoderHiddenStates: vision.lastHiddenState, labels: opts.labels ?? null,
    });
    return { ...out, vision };
  }

  /**
   * Greedy captions [B, T'] (int32): from bos (or a prompt), append the most likely next token
   * until sep_token_id (HF's BLIP stops there) or the length limit; a finished row is padded with
   * pad_token_id, and decoding stops once every row has finished. With the cache (the default)
   * the prompt is fed once, then one token a step.
   */
  generate(pixels: Tensor, opts: BlipGenerateOptions = {}): Tensor {
    return noGrad(() => {
      const tc = this.config.textConfig;
      const B = pixels.shape[0]!;
      const image = this.visionModel.forward(pixels, { interpolatePosEncoding: opts.interpolatePosEncoding }).lastHiddenState;
      let rows: number[][];
      let mask: number[][] | null = null;
      if (opts.inputIds) {
        const [b, T] = opts.inputIds.shape as [number, number];
        if (opts.inputIds.ndim !== 2 || b !== B || T < 2) throw new Error(`BLIP generate: inputIds must be [${B}, T >= 2], got [${opts.inputIds.shape}]`);
        const ids = opts.inputIds.toArray().map(Number);
        rows = Array.from({ length: B }, (_, i) => [tc.bosTokenId, ...ids.slice(i * T + 1, (i + 1) * T - 1)]);
        if (opts.attentionMask) {
          const m = opts.attentionMask.toArray().map(Number);
          mask = Array.from({ length: B }, (_, i) => m.slice(i * T, (i + 1) * T - 1));
        }
      } else {
        rows = Array.from({ length: B }, () => [tc.bosTokenId]);
      }
      const start = rows[0]!.length;
      const maxNew = opts.maxNewTokens ?? Math.max(0, (opts.maxLength ?? 20) - start);
      const pad = tc.padTokenId ?? tc.sepTokenId;
      const done = new Array<boolean>(B).fill(false);
      const backend = image.backend;
      const cache = (opts.useCache ?? true) ? this.textDecoder.newCache() : null;
      for (let step = 0; step < maxNew && !done.every(Boolean); step++) {
        const L = rows[0]!.length;
        // With a cache, only the positions not yet fed (the prompt, then one token a step).
        const fed = cache?.length ?? 0;
        const ids = tensor(Int32Array.from(rows.flatMap((r) => r.slice(fed))), { shape: [B, L - fed], dtype: 'int32', backend });
        const attn = mask ? tensor(Float32Array.from(mask.flat()), { shape: [B, L], backend }) : null;
        const hidden = this.textDecoder.bert.forward(ids, { attentionMask: attn, encoderHiddenStates: image, causal: true, cache }).lastHiddenState;
        // Only the last position's logits are needed: run the head on it alone.
        const logits = this.textDecoder.cls.predictions.forward(hidden.select(1, L - fed - 1)).data() as Float32Array;
        const V = tc.vocabSize;
        for (let b = 0; b < B; b++) {
          let next = pad;
          if (!done[b]) {
            next = 0;
            for (let v = 1; v < V; v++) if (logits[b * V + v]! > logits[b * V + next]!) next = v;
            if (next === tc.sepTokenId) done[b] = true;
          }
          rows[b]!.push(next);
          mask?.[b]!.push(1);
        }
      }
      return tensor(Int32Array.from(rows.flat()), { shape: [B, rows[0]!.length], dtype: 'int32', backend });
    });
  }

  static fromPretrained(dir: string, opts: BlipOptions & { strict?: boolean } = {}): BlipForConditionalGeneration {
    return loadPretrained(dir, opts, BLIP_CHECKPOINT, (config, weights, o) => ({ model: new BlipForConditionalGeneration(config, o), toModuleKey: blipModuleKeys(config, weights) }));
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['BlipForConditionalGeneration']), blipKeyToHF, opts);
  }

  get family(): ModelFamily {
    return BLIP;
  }

  imageTower(): ImageTowerLayout {
    return blipTower(this.visionModel);
  }
}

// ---------------------------------------------------------------------------------------------
// HF names <-> module names

/**
 * A checkpoint key -> the module key, or null for what HF also skips: stale position_ids buffers,
 * a tied LM decoder matrix (the word embeddings are the decoder), the text encoder's unused
 * pooler. An LM decoder.bias is cls.predictions.bias under another name (older checkpoints).
 */
export function blipKeyFromHF(key: string, opts: { tied?: boolean; hasLMBias?: boolean } = {}): string | null {
  if (/(^|\.)embeddings\.position_ids$/.test(key) || key.startsWith('text_encoder.pooler.')) return null;
  if (/cls\.predictions\.decoder\.weight$/.test(key) && (opts.tied ?? true)) return null;
  if (/cls\.predictions\.decoder\.bias$/.test(key)) return opts.hasLMBias ?? true ? null : key.replace(/decoder\.bias$/, 'bias');
  return bertKeyFromHF(key);
}

/** A module key -> its HF checkpoint name (the same). */
export function blipKeyToHF(key: string): string {
  return key;
}

/** How Blip checkpoints read: the config and the key names. */
const BLIP_CHECKPOINT: CheckpointFormat<BlipConfig> = {
  parseConfig: (json, where) => BlipConfig.fromHF(json, where),
  toCheckpointKey: blipKeyToHF,
};

/** The key map of a BLIP checkpoint: whether its LM head is tied and where its bias is stored. */
function blipModuleKeys(config: BlipConfig, weights: HFWeights): (key: string) => string | null {
  const hasLMBias = weights.names.some((k) => k.endsWith('cls.predictions.bias'));
  const tied = config.textConfig.tieWordEmbeddings;
  return (k) => blipKeyFromHF(k, { tied, hasLMBias });
}

export const BLIP: ModelFamily = {
  modelType: 'blip',
  title: 'BLIP',
  config: BlipConfig,
  architectures: { BlipForConditionalGeneration, BlipForImageTextRetrieval },
  imageProcessor: 'blip',
};
