// BERT (Devlin et al. 2018) with Hugging Face parity: BertModel and BertForMaskedLM load
// checkpoints in HF's layout and give the numbers transformers gives.
//
//   ids -> word + token-type + position embeddings -> LayerNorm
//     -> post-LN layers: x = LN(x + attn(x)); [x = LN(x + crossattn(x, encoder states))]; x = LN(x + ffn(x))
//     -> pooler (tanh(dense) on [CLS]) / MLM head (dense, act, LN, decoder tied to the word embeddings)
//
// BERT normalises after each residual add, so the engine's pre-LN TransformerBlock does not fit;
// the layer here keeps HF's module names (attention.self.query, attention.output.LayerNorm, ...),
// so checkpoint keys map onto module keys unchanged. The optional cross-attention sub-layer
// (crossattention.*, keys and values from a context of another width) is what BLIP's text
// encoder and decoder add to the same layer.
import { type HFConfig, type SaveHFOptions, loadPretrained, savePretrained, type CheckpointFormat } from '../io/hf.js';
import { type DecoderCache, type KeyValueCache, type LayerCache, attend, composedAttention, projectKeyValues } from '../nn/attention.js';
import { Dropout, Embedding, LayerNorm, Linear, fusedActivation, getActivation } from '../nn/layers.js';
import { Module, ModuleList, type ModuleOptions, paramZeros } from '../nn/module.js';
import { normal_, zeros_ } from '../nn/init.js';
import { type LinearActivation, crossEntropy, linear } from '../tensor/ops/nn.js';
import { getDefaultGenerator } from '../tensor/random.js';
import type { Generator } from '../tensor/random.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type Field, act, bool, configClass, int, num, tokenId } from './config_table.js';
import type { MaskedLanguageModel, ModelFamily, ModelSizes, OtherModel } from './family.js';

/** position_embedding_type: only 'absolute' is implemented; read and checked, not written back. */
const absolutePositions: Field<'absolute'> = {
  keys: ['position_embedding_type'],
  read: (c) => {
    const t = c.string('position_embedding_type', 'absolute');
    if (t !== 'absolute') throw new Error(`${c.label}: position_embedding_type '${t}' is not supported (only 'absolute')`);
    return t;
  },
  write: () => ({}),
};

/** BERT's hyperparameters: HF's config.json keys and defaults (bert-base-uncased). */
export class BertConfig extends configClass({
  name: 'BertConfig',
  modelType: 'bert',
  fields: {
    vocabSize: int('vocab_size', 30522),
    hiddenSize: int('hidden_size', 768),
    numHiddenLayers: int('num_hidden_layers', 12),
    numAttentionHeads: int('num_attention_heads', 12),
    intermediateSize: int('intermediate_size', 3072),
    /** The feed-forward layer's and the MLM transform's activation ('gelu': exact erf). */
    hiddenAct: act('hidden_act', 'gelu'),
    hiddenDropoutProb: num('hidden_dropout_prob', 0.1),
    attentionProbsDropoutProb: num('attention_probs_dropout_prob', 0.1),
    maxPositionEmbeddings: int('max_position_embeddings', 512),
    typeVocabSize: int('type_vocab_size', 2),
    initializerRange: num('initializer_range', 0.02),
    layerNormEps: num('layer_norm_eps', 1e-12),
    /** The word embedding row that gets no gradient (torch's padding_idx); null for none. */
    padTokenId: tokenId('pad_token_id', 0),
    /** The MLM decoder shares the word embedding matrix. */
    tieWordEmbeddings: bool('tie_word_embeddings', true),
    /** Causal self-attention (BERT used as a decoder). */
    isDecoder: bool('is_decoder', false),
    /** A cross-attention sub-layer in every layer. */
    addCrossAttention: bool('add_cross_attention', false),
    /** Width of the states cross-attention reads (BLIP: its vision width); written only when it differs from hidden_size. */
    encoderHiddenSize: int('encoder_hidden_size', (c) => c.hiddenSize),
    positionEmbeddingType: absolutePositions,
  },
  check: (c, label) => {
    if (c.hiddenSize % c.numAttentionHeads !== 0) {
      throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
    }
    if (c.padTokenId !== null && c.padTokenId >= c.vocabSize) {
      throw new Error(`${label}: pad_token_id ${c.padTokenId} is out of range for vocab_size ${c.vocabSize}`);
    }
  },
}) {
  override toHF(architectures?: readonly string[]): HFConfig {
    const out = super.toHF(architectures);
    if (this.encoderHiddenSize === this.hiddenSize) delete out.encoder_hidden_size;
    return out;
  }
}

export type BertConfigOptions = ConstructorParameters<typeof BertConfig>[0];

// ---------------------------------------------------------------------------------------------
// HF names <-> module names

/**
 * A checkpoint key -> the module key. Module keys are HF's names, so only the spellings of old
 * checkpoints change: TensorFlow-era LayerNorm.gamma / LayerNorm.beta become weight / bias, as
 * HF's loader renames them.
 */
export function bertKeyFromHF(key: string): string {
  return key.replace(/(LayerNorm)\.gamma$/, '$1.weight').replace(/(LayerNorm)\.beta$/, '$1.bias');
}

/** A module key -> its name in HF checkpoints (the same). */
export function bertKeyToHF(key: string): string {
  return key;
}

/** How Bert checkpoints read: the config and the key names. */
const BERT_CHECKPOINT: CheckpointFormat<BertConfig> = {
  parseConfig: (json, where) => BertConfig.fromHF(json, where),
  toCheckpointKey: bertKeyToHF,
};

// ---------------------------------------------------------------------------------------------
// Modules

export interface BertOptions extends ModuleOptions {
  /** BertForMaskedLM with an untied decoder: it has its own bias (default true); see BertLMHeadOptions. */
  untiedDecoderBias?: boolean;
  /** BertModel only: include the pooler (default true, as HF). */
  addPoolingLayer?: boolean;
  /**
   * Draw initial weights as HF does (normal with initializer_range, zero biases, zero padding
   * row); default true. fromPretrained skips it when every weight comes from the checkpoint.
   */
  initWeights?: boolean;
}

/** word + token-type + position embeddings, then LayerNorm and dropout (HF's BertEmbeddings). */
export class BertEmbeddings extends Module {
  readonly wordEmbeddings: Embedding;
  readonly positionEmbeddings: Embedding;
  readonly tokenTypeEmbeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  constructor(readonly config: BertConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    this.wordEmbeddings = this.module('word_embeddings', new Embedding(config.vocabSize, D, { ...opts, paddingIdx: config.padTokenId }));
    this.positionEmbeddings = this.module('position_embeddings', new Embedding(config.maxPositionEmbeddings, D, opts));
    this.tokenTypeEmbeddings = this.module('token_type_embeddings', new Embedding(config.typeVocabSize, D, opts));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(D, { ...opts, eps: config.layerNormEps }));
    this.dropout = this.module('dropout', new Dropout(config.hiddenDropoutProb, { generator: opts.generator }));
  }

  /**
   * ids [B, T] -> [B, T, D]. Token types default to 0 and positions to pastLength .. pastLength + T - 1
   * (pastLength: tokens already decoded before these).
   */
  forward(inputIds: Tensor, tokenTypeIds: Tensor | null = null, pastLength = 0): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`BERT: input_ids must be [B, T], got [${inputIds.shape}]`);
    const T = inputIds.shape[1]!;
    const P = this.config.maxPositionEmbeddings;
    if (pastLength + T > P) throw new Error(`BERT: ${pastLength + T} positions exceed max_position_embeddings ${P}`);
    if (tokenTypeIds && (tokenTypeIds.ndim !== 2 || tokenTypeIds.shape[0] !== inputIds.shape[0] || tokenTypeIds.shape[1] !== T)) {
      throw new Error(`BERT: token_type_ids [${tokenTypeIds.shape}] must match input_ids [${inputIds.shape}]`);
    }
    const words = this.wordEmbeddings.forward(inputIds);
    // Without token types every position takes row 0 (HF's all-zero buffer): a broadcast, no lookup.
    const types = tokenTypeIds ? this.tokenTypeEmbeddings.forward(tokenTypeIds) : this.tokenTypeEmbeddings.weight.select(0, 0);
    const positions = this.positionEmbeddings.weight.slice(0, pastLength, pastLength + T);
    // HF's order of the two additions, so the float sums round the same way.
    return this.dropout.forward(this.LayerNorm.forward(words.add(types).add(positions)));
  }
}

export interface BertAttentionCall {
  /** [B, Tk]: nonzero where a key may be attended to (HF's attention_mask); Tk counts cached keys. */
  keyPadding?: Tensor | null;
  /** Query i sees the keys up to its own position: bottom-right aligned, so new queries after a cache see every cached key. */
  causal?: boolean;
  /** [B, Tk, kvDim]: keys and values come from here (cross-attention). */
  context?: Tensor | null;
  /**
   * Incremental decoding: self-attention appends the new positions' keys and values to it and
   * attends to all; cross-attention projects the context once and reuses it.
   */
  cache?: KeyValueCache | null;
}

/** Query, key and value projections and multi-head attention (HF's BertSelfAttention). */
export class BertSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly numHeads: number;
  readonly headDim: number;
  readonly dropoutProb: number;
  readonly #generator: Generator | undefined;

  /** kvDim: width of the states keys and values are projected from (cross-attention); default hidden. */
  constructor(config: BertConfig, opts: ModuleOptions & { kvDim?: number } = {}) {
    super();
    const D = config.hiddenSize;
    this.numHeads = config.numAttentionHeads;
    this.headDim = D / this.numHeads;
    this.dropoutProb = config.attentionProbsDropoutProb;
    this.#generator = opts.generator;
    const kv = opts.kvDim ?? D;
    this.query = this.module('query', new Linear(D, D, opts));
    this.key = this.module('key', new Linear(kv, D, opts));
    this.value = this.module('value', new Linear(kv, D, opts));
  }

  /** x [B, Tq, D] -> the heads' outputs concatenated, [B, Tq, D] (before the output projection). */
  forward(x: Tensor, call: BertAttentionCall = {}): Tensor {
    const [B, Tq, D] = x.shape as [number, number, number];
    const ctx = call.context ?? x;
    // A cached context is not read again, so its batch may differ from the reordered cache's.
    const cachedContext = !!call.context && (call.cache?.length ?? 0) > 0;
    if (ctx.ndim !== 3 || (ctx.shape[0] !== B && !cachedContext) || ctx.shape[2] !== this.key.inFeatures) {
      throw new Error(`BERT attention: ${call.context ? 'encoder states' : 'input'} must be [${B}, T, ${this.key.inFeatures}], got [${ctx.shape}]`);
    }
    const heads = (t: Tensor) => t.reshape(B, t.shape[1]!, this.numHeads, this.headDim).permute(0, 2, 1, 3);
    const q = heads(this.query.forward(x));
    const { keys: k, values: v } = projectKeyValues(ctx, B, call, (t) => heads(this.key.forward(t)), (t) => heads(this.value.forward(t)));
    // Without a cache Tq = Tk and bottom-right is the usual top-left mask.
    const mask = { causal: call.causal ? 'bottom-right' as const : false, keyPadding: call.keyPadding ?? null };
    const o = this.training && this.dropoutProb > 0
      ? composedAttention(q, k, v, { ...mask, dropout: this.dropoutProb, generator: this.#generator })
      : attend(q, k, v, mask);
    return o.permute(0, 2, 1, 3).reshape(B, Tq, D);
  }
}

/** dense -> dropout -> LayerNorm(. + residual): BERT's post-LN step after each sub-layer. */
export class BertResidualOutput extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  constructor(config: BertConfig, inFeatures: number, opts: ModuleOptions = {}) {
    super();
    this.dense = this.module('dense', new Linear(inFeatures, config.hiddenSize, opts));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
    this.dropout = this.module('dropout', new Dropout(config.hiddenDropoutProb, { generator: opts.generator }));
  }

  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forwardAdd(this.dropout.forward(this.dense.forward(h)), residual).normed;
  }
}

/** Attention (self or cross) with its output projection and post-LN (HF's BertAttention). */
export class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: BertResidualOutput;

  constructor(config: BertConfig, opts: ModuleOptions & { kvDim?: number } = {}) {
    super();
    this.self = this.module('self', new BertSelfAttention(config, opts));
    this.output = this.module('output', new BertResidualOutput(config, config.hiddenSize, opts));
  }

  forward(x: Tensor, call: BertAttentionCall = {}): Tensor {
    return this.output.forward(this.self.forward(x, call), x);
  }
}

/** The feed-forward expansion with its activation (HF's BertIntermediate). */
export class BertIntermediate extends Module {
  readonly dense: Linear;
  readonly act: (x: Tensor) => Tensor;
  readonly #fused: LinearActivation | null;

  constructor(config: BertConfig, opts: ModuleOptions = {}) {
    super();
    this.dense = this.module('dense', new Linear(config.hiddenSize, config.intermediateSize, opts));
    this.act = getActivation(config.hiddenAct);
    this.#fused = fusedActivation(config.hiddenAct);
  }

  forward(x: Tensor): Tensor {
    return this.#fused ? this.dense.forward(x, this.#fused) : this.act(this.dense.forward(x));
  }
}

export interface BertLayerCall {
  /** [B, T]: nonzero where a token may be attended to; with a cache, T counts the cached positions too. */
  attentionMask?: Tensor | null;
  /** Causal self-attention; default the config's is_decoder. */
  causal?: boolean;
  /** [B, Tk, encoderHiddenSize]: what the cross-attention sub-layer reads (required when it exists). */
  encoderHiddenStates?: Tensor | null;
  /** [B, Tk]: nonzero where an encoder state may be attended to. */
  encoderAttentionMask?: Tensor | null;
  /** This layer's key/value caches for incremental decoding (x then holds the new positions only). */
  cache?: LayerCache | null;
}

export interface BertLayerOptions extends ModuleOptions {
  /** Add the cross-attention sub-layer; default the config's add_cross_attention. */
  crossAttention?: boolean;
}

/**
 * One post-LN BERT layer: self-attention, optionally cross-attention (BLIP's text model), then
 * the feed-forward block, each followed by residual add and LayerNorm.
 */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly crossattention: BertAttention | null;
  readonly intermediate: BertIntermediate;
  readonly output: BertResidualOutput;

  constructor(readonly config: BertConfig, opts: BertLayerOptions = {}) {
    super();
    this.attention = this.module('attention', new BertAttention(config, opts));
    const cross = opts.crossAttention ?? config.addCrossAttention;
    this.crossattention = cross ? this.module('crossattention', new BertAttention(config, { ...opts, kvDim: config.encoderHiddenSize })) : null;
    this.intermediate = this.module('intermediate', new BertIntermediate(config, opts));
    this.output = this.module('output', new BertResidualOutput(config, config.intermediateSize, opts));
  }

  forward(x: Tensor, call: BertLayerCall = {}): Tensor {
    let h = this.attention.forward(x, {
      keyPadding: call.attentionMask ?? null, causal: call.causal ?? this.config.isDecoder, cache: call.cache?.self ?? null,
    });
    if (this.crossattention) {
      if (!call.encoderHiddenStates) throw new Error('BERT: this layer has cross-attention and needs encoderHiddenStates');
      h = this.crossattention.forward(h, { context: call.encoderHiddenStates, keyPadding: call.encoderAttentionMask ?? null, cache: call.cache?.cross ?? null });
    }
    return this.output.forward(this.intermediate.forward(h), h);
  }
}

export interface BertEncoderCall extends Omit<BertLayerCall, 'cache'> {
  /** Receives the hidden states as HF's output_hidden_states lists them: the input, then each layer's output. */
  hiddenStates?: Tensor[];
  /** One LayerCache per layer, for incremental decoding. */
  cache?: DecoderCache | null;
}

/** The layer calls of a stack: the same masks and states, each layer its own cache. */
export function layerCalls(call: Omit<BertLayerCall, 'cache'>, cache: DecoderCache | null | undefined, numLayers: number): BertLayerCall[] {
  if (cache && cache.layers.length !== numLayers) throw new Error(`BERT: the cache has ${cache.layers.length} layers, the model ${numLayers}`);
  return Array.from({ length: numLayers }, (_, i) => ({ ...call, cache: cache?.layers[i] ?? null }));
}

/** The stack of layers, registered as layer.0, layer.1, ... (HF's BertEncoder). */
export class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;

  constructor(config: BertConfig, opts: BertLayerOptions = {}) {
    super();
    this.layer = this.module('layer', new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new BertLayer(config, opts))));
  }

  forward(x: Tensor, call: BertEncoderCall = {}): Tensor {
    const { hiddenStates, cache, ...layerCall } = call;
    const calls = layerCalls(layerCall, cache, this.layer.length);
    hiddenStates?.push(x);
    let i = 0;
    for (const layer of this.layer) {
      x = layer.forward(x, calls[i++]!);
      hiddenStates?.push(x);
    }
    return x;
  }
}

/** tanh(dense(first token)) (HF's BertPooler). */
export class BertPooler extends Module {
  readonly dense: Linear;

  constructor(config: BertConfig, opts: ModuleOptions = {}) {
    super();
    this.dense = this.module('dense', new Linear(config.hiddenSize, config.hiddenSize, opts));
  }

  forward(hidden: Tensor): Tensor {
    return this.dense.forward(hidden.select(1, 0), 'tanh');
  }
}

/** HF's _init_weights for BERT: normal(0, initializer_range) weights, zero biases, zero padding row. */
function initBertWeights(root: Module, config: BertConfig, opts: ModuleOptions): void {
  const g = opts.generator ?? getDefaultGenerator();
  const std = config.initializerRange;
  root.apply((m) => {
    if (m instanceof Linear) {
      normal_(m.weight, 0, std, g);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof Embedding) {
      normal_(m.weight, 0, std, g);
      if (m.paddingIdx !== null) zeros_(m.weight.select(0, m.paddingIdx));
    } else if (m instanceof BertLMPredictionHead) {
      zeros_(m.bias);
    }
  });
}

export interface BertForwardOptions {
  /** [B, T]: 1 for tokens to attend to, 0 for padding (HF's attention_mask); default all ones. */
  attentionMask?: Tensor | null;
  /** [B, T]: segment ids; default all 0. */
  tokenTypeIds?: Tensor | null;
  /** For models with cross-attention: the states to attend to, and their padding mask. */
  encoderHiddenStates?: Tensor | null;
  encoderAttentionMask?: Tensor | null;
  /** Causal self-attention for this call; default the config's is_decoder. */
  causal?: boolean;
  /** Also return the hidden states (embeddings, then each layer's output). */
  outputHiddenStates?: boolean;
  /**
   * Incremental decoding (a decoder: causal): input ids are the new positions only, placed after
   * the cache.length cached ones, whose keys and values the cache holds and receives. The
   * attention mask then covers cached and new positions, [B, cache.length + T].
   */
  cache?: DecoderCache | null;
}

export interface BertModelOutput {
  /** [B, T, D]. */
  lastHiddenState: Tensor;
  /** [B, D], or null without a pooler. */
  poolerOutput: Tensor | null;
  hiddenStates: Tensor[] | null;
}

/** The BERT encoder: embeddings, layers and (optionally) the pooler (HF's BertModel). */
export class BertModel extends Module implements OtherModel {
  readonly kind = 'text-encoder';
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler: BertPooler | null;

  constructor(readonly config: BertConfig, opts: BertOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new BertEmbeddings(config, opts));
    this.encoder = this.module('encoder', new BertEncoder(config, opts));
    this.pooler = (opts.addPoolingLayer ?? true) ? this.module('pooler', new BertPooler(config, opts)) : null;
    if (opts.initWeights ?? true) initBertWeights(this, config, opts);
  }

  forward(inputIds: Tensor, opts: BertForwardOptions = {}): BertModelOutput {
    const mask = opts.attentionMask ?? null;
    const past = opts.cache?.length ?? 0;
    if (mask && (mask.ndim !== 2 || mask.shape[0] !== inputIds.shape[0] || mask.shape[1] !== past + inputIds.shape[1]!)) {
      throw new Error(past > 0
        ? `BERT: attention_mask [${mask.shape}] must cover the ${past} cached and ${inputIds.shape[1]} new positions of input_ids [${inputIds.shape}]`
        : `BERT: attention_mask [${mask.shape}] must match input_ids [${inputIds.shape}]`);
    }
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.embeddings.forward(inputIds, opts.tokenTypeIds ?? null, past);
    const lastHiddenState = this.encoder.forward(x, {
      attentionMask: mask, causal: opts.causal, hiddenStates, cache: opts.cache ?? null,
      encoderHiddenStates: opts.encoderHiddenStates ?? null, encoderAttentionMask: opts.encoderAttentionMask ?? null,
    });
    return { lastHiddenState, poolerOutput: this.pooler?.forward(lastHiddenState) ?? null, hiddenStates: hiddenStates ?? null };
  }

  /**
   * Loads a folder in HF's layout: a BertModel checkpoint, or the `bert.` part of one with heads
   * (whose head weights are dropped, as HF does).
   */
  static fromPretrained(dir: string, opts: BertOptions & { strict?: boolean } = {}): BertModel {
    return loadPretrained(dir, opts, BERT_CHECKPOINT, (config, weights, o) => {
      const headed = weights.names.some((k) => k.startsWith('bert.'));
      const base = (k: string) => (headed ? (k.startsWith('bert.') ? k.slice(5) : null) : k);
      const pooled = weights.names.some((k) => base(k)?.startsWith('pooler.'));
      const model = new BertModel(config, { addPoolingLayer: pooled, ...o });
      return {
        model,
        toModuleKey: (k) => {
          const b = base(k);
          return b === null || b === 'embeddings.position_ids' ? null : bertKeyFromHF(b);
        },
      };
    });
  }

  /** Writes config.json and model.safetensors (or shards) as HF's save_pretrained does. */
  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['BertModel']), bertKeyToHF, opts);
  }

  get family(): ModelFamily {
    return BERT;
  }

  imageTower(): null {
    return null;
  }
}

/** dense -> activation -> LayerNorm before the decoder (HF's BertPredictionHeadTransform). */
export class BertPredictionHeadTransform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly act: (x: Tensor) => Tensor;
  readonly #fused: LinearActivation | null;

  constructor(config: BertConfig, opts: ModuleOptions = {}) {
    super();
    this.dense = this.module('dense', new Linear(config.hiddenSize, config.hiddenSize, opts));
    this.act = getActivation(config.hiddenAct);
    this.#fused = fusedActivation(config.hiddenAct);
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
  }

  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.#fused ? this.dense.forward(x, this.#fused) : this.act(this.dense.forward(x)));
  }
}

/** An untied decoder: its matrix [vocab, hidden] and, unless shared, its bias, as HF's decoder.weight / decoder.bias. */
class BertDecoder extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(config: BertConfig, ownBias: boolean, opts: ModuleOptions) {
    super();
    this.weight = this.param('weight', paramZeros([config.vocabSize, config.hiddenSize], opts));
    this.bias = ownBias ? this.param('bias', paramZeros([config.vocabSize], opts)) : null;
  }
}

export interface BertLMHeadOptions extends ModuleOptions {
  /**
   * With an untied decoder (tie_word_embeddings false): whether it has a bias of its own
   * (decoder.bias), as transformers 5 builds it, with `bias` then left unused; false shares
   * `bias`, as transformers 4 tied the two. Default true.
   */
  untiedDecoderBias?: boolean;
}

/**
 * transform, then logits = h W^T + b. Tied (the default): W is the word embedding matrix and b
 * is `bias` (HF's decoder.bias is the same tensor). Untied: W is decoder.weight and b is
 * decoder.bias, or `bias` when the decoder shares it (untiedDecoderBias false).
 */
export class BertLMPredictionHead extends Module {
  readonly transform: BertPredictionHeadTransform;
  readonly decoder: BertDecoder | null;
  readonly bias: Tensor;

  constructor(config: BertConfig, readonly wordEmbeddings: Embedding, opts: BertLMHeadOptions = {}) {
    super();
    this.transform = this.module('transform', new BertPredictionHeadTransform(config, opts));
    // A tied decoder is no parameter of its own: the embedding matrix appears once in the
    // parameters (one gradient, one optimizer state) and once in the state dict, as HF saves it.
    this.decoder = config.tieWordEmbeddings ? null : this.module('decoder', new BertDecoder(config, opts.untiedDecoderBias ?? true, opts));
    this.bias = this.param('bias', paramZeros([config.vocabSize], opts));
  }

  get decoderWeight(): Tensor {
    return this.decoder ? this.decoder.weight : this.wordEmbeddings.weight;
  }

  /** The bias the logits get. */
  get decoderBias(): Tensor {
    return this.decoder?.bias ?? this.bias;
  }

  forward(hidden: Tensor): Tensor {
    return linear(this.transform.forward(hidden), this.decoderWeight, this.decoderBias);
  }
}

/** HF's BertOnlyMLMHead: a holder, so the keys read cls.predictions.* */
export class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;

  constructor(config: BertConfig, wordEmbeddings: Embedding, opts: BertLMHeadOptions = {}) {
    super();
    this.predictions = this.module('predictions', new BertLMPredictionHead(config, wordEmbeddings, opts));
  }
}

export interface BertMaskedLMOutput {
  /** [B, T, vocab]. */
  logits: Tensor;
  /** Mean cross-entropy over the labelled positions (label -100 = ignored), when labels were given. */
  loss: Tensor | null;
  hiddenStates: Tensor[] | null;
}

/** BERT with the masked-language-model head (HF's BertForMaskedLM; no pooler). */
export class BertForMaskedLM extends Module implements MaskedLanguageModel {
  readonly kind = 'masked-lm';
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;

  constructor(readonly config: BertConfig, opts: BertOptions = {}) {
    super();
    const init = opts.initWeights ?? true;
    this.bert = this.module('bert', new BertModel(config, { ...opts, addPoolingLayer: false, initWeights: false }));
    this.cls = this.module('cls', new BertOnlyMLMHead(config, this.bert.embeddings.wordEmbeddings, opts));
    if (init) {
      initBertWeights(this, config, opts);
      // Untied, HF's tie step leaves the decoder drawn as a Linear weight.
      if (this.cls.predictions.decoder) normal_(this.cls.predictions.decoder.weight, 0, config.initializerRange, opts.generator ?? getDefaultGenerator());
    }
  }

  /** Logits for every position; with labels [B, T], the MLM loss (label -100 = not scored). */
  forward(inputIds: Tensor, opts: BertForwardOptions & { labels?: Tensor | null } = {}): BertMaskedLMOutput {
    const out = this.bert.forward(inputIds, opts);
    const logits = this.cls.predictions.forward(out.lastHiddenState);
    const labels = opts.labels ?? null;
    const loss = labels ? crossEntropy(logits.reshape(-1, this.config.vocabSize), labels.reshape(-1), { ignoreIndex: -100 }) : null;
    return { logits, loss, hiddenStates: out.hiddenStates };
  }

  /**
   * forward's loss with the head applied only where labels are scored (not -100): the same value
   * and gradients without vocabulary logits for the positions MLM pretraining does not score (85%
   * of them), which are most of a small model's step.
   */
  maskedLMLoss(inputIds: Tensor, labels: Tensor, opts: BertForwardOptions = {}): Tensor {
    const hidden = this.bert.forward(inputIds, opts).lastHiddenState;
    const flat = labels.reshape(-1).toArray();
    const positions: number[] = [];
    const targets: number[] = [];
    flat.forEach((l, i) => {
      if (l !== -100) positions.push(i), targets.push(l);
    });
    if (positions.length === 0) return this.forward(inputIds, { ...opts, labels }).loss!; // nothing scored: forward's answer (NaN, as HF's)
    const int = (v: number[]) => tensor(Int32Array.from(v), { shape: [v.length], dtype: 'int32', backend: hidden.backend });
    const scored = indexSelect(hidden.reshape(-1, this.config.hiddenSize), 0, int(positions));
    return crossEntropy(this.cls.predictions.forward(scored), int(targets));
  }

  /**
   * Loads a folder in HF's layout. Tied decoder weights may be absent (HF does not save them);
   * when present they are ignored, since the embedding matrix is the decoder. A bare BertModel
   * checkpoint (no `bert.` prefix) loads into the encoder; the MLM head is then missing, an error
   * unless strict is false. Weights of heads this model lacks (the pooler, next-sentence
   * prediction) are dropped, as HF does. An untied decoder gets its own bias when the file holds
   * both decoder.bias and predictions.bias (transformers 5); with one of them, that one is shared.
   */
  static fromPretrained(dir: string, opts: BertOptions & { strict?: boolean } = {}): BertForMaskedLM {
    return loadPretrained(dir, opts, BERT_CHECKPOINT, (config, weights, o) => {
      const headed = weights.names.some((k) => k.startsWith('bert.') || k.startsWith('cls.'));
      const hasBias = weights.has('cls.predictions.bias');
      const ownDecoderBias = !config.tieWordEmbeddings && hasBias && weights.has('cls.predictions.decoder.bias');
      const model = new BertForMaskedLM(config, { ...o, untiedDecoderBias: ownDecoderBias });
      const toModuleKey = (k: string): string | null => {
        const key = headed ? k : `bert.${k}`;
        if (key === 'bert.embeddings.position_ids' || key.startsWith('bert.pooler.') || key.startsWith('cls.seq_relationship.')) return null;
        if (key === 'cls.predictions.decoder.weight' && config.tieWordEmbeddings) return null;
        // Shared, HF's decoder.bias is predictions.bias under another name; older checkpoints hold both.
        if (key === 'cls.predictions.decoder.bias' && !ownDecoderBias) return hasBias ? null : 'cls.predictions.bias';
        return bertKeyFromHF(key);
      };
      return { model, toModuleKey };
    });
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['BertForMaskedLM']), bertKeyToHF, opts);
  }

  get family(): ModelFamily {
    return BERT;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get maxPositions(): number {
    return this.config.maxPositionEmbeddings;
  }

  fillMask(inputIds: Tensor, labels?: Tensor): { logits: Tensor; loss: Tensor | null } {
    const { logits, loss } = this.forward(inputIds, { labels });
    return { logits, loss };
  }

  imageTower(): null {
    return null;
  }
}

/** config.json of a masked language model of these sizes (a training config's model.custom). */
// BertConfig's own check catches a width that the heads do not divide.
function sizedConfig(s: ModelSizes): HFConfig {
  return {
    architectures: ['BertForMaskedLM'],
    model_type: 'bert',
    vocab_size: s.vocab_size, hidden_size: s.width, num_hidden_layers: s.layers, num_attention_heads: s.heads,
    intermediate_size: Math.round(s.width * s.mlp_ratio), max_position_embeddings: s.context_length,
    pad_token_id: s.pad_token_id ?? 0,
  };
}

export const BERT: ModelFamily = {
  modelType: 'bert',
  title: 'BERT',
  config: BertConfig,
  architectures: { BertModel, BertForMaskedLM },
  imageProcessor: null,
  sizedConfig,
};
