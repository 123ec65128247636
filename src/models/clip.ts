// CLIP (Radford et al. 2021) with Hugging Face parity: CLIPModel loads checkpoints in HF's layout
// and gives the numbers transformers gives.
//
//   image: patch conv (no bias) -> [class] + patches -> + positions -> pre-LN -> encoder
//          -> post-LN on the class token -> visual_projection (no bias)
//   text:  tokens + positions -> causal encoder -> final LN -> the EOS token -> text_projection
//   both L2-normalised; logits = exp(logit_scale) * text . image
//
// The towers' encoders are the engine's TransformerEncoder, whose submodule names are HF CLIP's,
// so checkpoint keys are the module keys as they are (no key map, unlike ViT).
import { clipLoss } from '../nn/losses.js';
import { ConfigReader, type HFConfig, type SaveHFOptions, loadPretrained, savePretrained } from '../io/hf.js';
import { Embedding, LayerNorm, Linear, type PatchDropoutOptions, checkPatchDropout, getActivation, patchDropout } from '../nn/layers.js';
import { Module, type ModuleOptions, paramZeros } from '../nn/module.js';
import { TransformerEncoder } from '../nn/transformer.js';
import { constant_, normal_ } from '../nn/init.js';
import { concat, indexSelect } from '../tensor/ops/indexing.js';
import { conv2d } from '../tensor/ops/nn.js';
import { type Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { interpolateBicubic } from './interpolate.js';

// ---------------------------------------------------------------------------------------------
// Configuration

/** Fields common to both towers. */
interface TowerOptions {
  hiddenSize?: number;
  intermediateSize?: number;
  numHiddenLayers?: number;
  numAttentionHeads?: number;
  /** HF activation name; default 'quick_gelu' (OpenAI's CLIP). */
  hiddenAct?: string;
  layerNormEps?: number;
  attentionDropout?: number;
  initializerRange?: number;
  initializerFactor?: number;
  /** Read only by HF's *WithProjection tower models; CLIPModel uses CLIPConfig.projectionDim. */
  projectionDim?: number;
}

export interface CLIPTextConfigOptions extends TowerOptions {
  vocabSize?: number;
  maxPositionEmbeddings?: number;
  padTokenId?: number;
  bosTokenId?: number;
  /**
   * The token whose final state is pooled (its first occurrence). 2, the value of configs written
   * before HF had the field, means the legacy rule: the position of the largest id.
   */
  eosTokenId?: number;
}

export interface CLIPVisionConfigOptions extends TowerOptions {
  imageSize?: number;
  patchSize?: number;
  numChannels?: number;
}

const TOWER_FIELDS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'hidden_act',
  'layer_norm_eps', 'attention_dropout', 'initializer_range', 'initializer_factor', 'projection_dim'];

function checkTower(name: string, t: Required<TowerOptions>): void {
  for (const k of ['hiddenSize', 'intermediateSize', 'numHiddenLayers', 'numAttentionHeads', 'projectionDim'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < (k === 'numHiddenLayers' ? 0 : 1)) throw new Error(`${name}: ${k} must be a positive integer, got ${t[k]}`);
  }
  if (t.hiddenSize % t.numAttentionHeads !== 0) {
    throw new Error(`${name}: hidden_size ${t.hiddenSize} is not a multiple of num_attention_heads ${t.numAttentionHeads}`);
  }
  getActivation(t.hiddenAct);
}

function readTower(c: ConfigReader, d: Required<TowerOptions>): Required<TowerOptions> {
  return {
    hiddenSize: c.int('hidden_size', d.hiddenSize),
    intermediateSize: c.int('intermediate_size', d.intermediateSize),
    numHiddenLayers: c.int('num_hidden_layers', d.numHiddenLayers, true),
    numAttentionHeads: c.int('num_attention_heads', d.numAttentionHeads),
    hiddenAct: c.string('hidden_act', d.hiddenAct),
    layerNormEps: c.number('layer_norm_eps', d.layerNormEps),
    attentionDropout: c.number('attention_dropout', d.attentionDropout),
    initializerRange: c.number('initializer_range', d.initializerRange),
    initializerFactor: c.number('initializer_factor', d.initializerFactor),
    projectionDim: c.int('projection_dim', d.projectionDim),
  };
}

function towerFields(t: Required<TowerOptions>): HFConfig {
  return {
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numHiddenLayers,
    num_attention_heads: t.numAttentionHeads,
    hidden_act: t.hiddenAct,
    layer_norm_eps: t.layerNormEps,
    attention_dropout: t.attentionDropout,
    initializer_range: t.initializerRange,
    initializer_factor: t.initializerFactor,
    projection_dim: t.projectionDim,
  };
}

const extraOf = (raw: HFConfig, read: readonly string[]): HFConfig => {
  const known = new Set(read);
  return Object.fromEntries(Object.entries(raw).filter(([k]) => !known.has(k)));
};

function subConfig(raw: HFConfig, key: string, label: string): HFConfig {
  const v = raw[key] ?? {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${label}: ${key} must be an object`);
  return v as HFConfig;
}

/** The text tower's hyperparameters, with HF's defaults (openai/clip-vit-base-patch32). */
export class CLIPTextConfig implements Required<CLIPTextConfigOptions> {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly hiddenAct: string;
  readonly layerNormEps: number;
  readonly attentionDropout: number;
  readonly initializerRange: number;
  readonly initializerFactor: number;
  readonly projectionDim: number;
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;

  static readonly DEFAULTS: Required<CLIPTextConfigOptions> = {
    hiddenSize: 512, intermediateSize: 2048, numHiddenLayers: 12, numAttentionHeads: 8, hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5, attentionDropout: 0, initializerRange: 0.02, initializerFactor: 1, projectionDim: 512,
    vocabSize: 49408, maxPositionEmbeddings: 77, padTokenId: 1, bosTokenId: 49406, eosTokenId: 49407,
  };

  /** `extra`: text_config fields CLIP does not read, written back unchanged on save. */
  constructor(opts: CLIPTextConfigOptions = {}, readonly extra: HFConfig = {}) {
    const o = { ...CLIPTextConfig.DEFAULTS, ...definedOnly(opts) };
    this.hiddenSize = o.hiddenSize;
    this.intermediateSize = o.intermediateSize;
    this.numHiddenLayers = o.numHiddenLayers;
    this.numAttentionHeads = o.numAttentionHeads;
    this.hiddenAct = o.hiddenAct;
    this.layerNormEps = o.layerNormEps;
    this.attentionDropout = o.attentionDropout;
    this.initializerRange = o.initializerRange;
    this.initializerFactor = o.initializerFactor;
    this.projectionDim = o.projectionDim;
    this.vocabSize = o.vocabSize;
    this.maxPositionEmbeddings = o.maxPositionEmbeddings;
    this.padTokenId = o.padTokenId;
    this.bosTokenId = o.bosTokenId;
    this.eosTokenId = o.eosTokenId;
    checkTower('CLIPTextConfig', this);
    if (!Number.isInteger(this.vocabSize) || this.vocabSize < 1) throw new Error(`CLIPTextConfig: vocabSize must be a positive integer, got ${this.vocabSize}`);
    if (!Number.isInteger(this.maxPositionEmbeddings) || this.maxPositionEmbeddings < 1) {
      throw new Error(`CLIPTextConfig: maxPositionEmbeddings must be a positive integer, got ${this.maxPositionEmbeddings}`);
    }
  }

  /** Pooling by the largest id (configs from before eos_token_id was honoured carry 2). */
  get legacyPooling(): boolean {
    return this.eosTokenId === 2;
  }

  static fromHF(raw: HFConfig, label = 'text_config'): CLIPTextConfig {
    const c = new ConfigReader(raw, label);
    const d = CLIPTextConfig.DEFAULTS;
    const read = [...TOWER_FIELDS, 'vocab_size', 'max_position_embeddings', 'pad_token_id', 'bos_token_id', 'eos_token_id'];
    return new CLIPTextConfig({
      ...readTower(c, d),
      vocabSize: c.int('vocab_size', d.vocabSize),
      maxPositionEmbeddings: c.int('max_position_embeddings', d.maxPositionEmbeddings),
      padTokenId: c.number('pad_token_id', d.padTokenId),
      bosTokenId: c.number('bos_token_id', d.bosTokenId),
      eosTokenId: c.number('eos_token_id', d.eosTokenId),
    }, extraOf(raw, read));
  }

  toHF(): HFConfig {
    return {
      model_type: 'clip_text_model',
      ...this.extra,
      ...towerFields(this),
      vocab_size: this.vocabSize,
      max_position_embeddings: this.maxPositionEmbeddings,
      pad_token_id: this.padTokenId,
      bos_token_id: this.bosTokenId,
      eos_token_id: this.eosTokenId,
    };
  }
}

/** The vision tower's hyperparameters, with HF's defaults (openai/clip-vit-base-patch32). */
export class CLIPVisionConfig implements Required<CLIPVisionConfigOptions> {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly hiddenAct: string;
  readonly layerNormEps: number;
  readonly attentionDropout: number;
  readonly initializerRange: number;
  readonly initializerFactor: number;
  readonly projectionDim: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly numChannels: number;

  static readonly DEFAULTS: Required<CLIPVisionConfigOptions> = {
    hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12, hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5, attentionDropout: 0, initializerRange: 0.02, initializerFactor: 1, projectionDim: 512,
    imageSize: 224, patchSize: 32, numChannels: 3,
  };

  constructor(opts: CLIPVisionConfigOptions = {}, readonly extra: HFConfig = {}) {
    const o = { ...CLIPVisionConfig.DEFAULTS, ...definedOnly(opts) };
    this.hiddenSize = o.hiddenSize;
    this.intermediateSize = o.intermediateSize;
    this.numHiddenLayers = o.numHiddenLayers;
    this.numAttentionHeads = o.numAttentionHeads;
    this.hiddenAct = o.hiddenAct;
    this.layerNormEps = o.layerNormEps;
    this.attentionDropout = o.attentionDropout;
    this.initializerRange = o.initializerRange;
    this.initializerFactor = o.initializerFactor;
    this.projectionDim = o.projectionDim;
    this.imageSize = o.imageSize;
    this.patchSize = o.patchSize;
    this.numChannels = o.numChannels;
    checkTower('CLIPVisionConfig', this);
    for (const k of ['imageSize', 'patchSize', 'numChannels'] as const) {
      if (!Number.isInteger(this[k]) || this[k] < 1) throw new Error(`CLIPVisionConfig: ${k} must be a positive integer, got ${this[k]}`);
    }
    if (this.gridSize < 1) throw new Error(`CLIPVisionConfig: image_size ${this.imageSize} is smaller than patch_size ${this.patchSize}`);
  }

  /** Patches per side at the native image size. */
  get gridSize(): number {
    return Math.floor(this.imageSize / this.patchSize);
  }

  static fromHF(raw: HFConfig, label = 'vision_config'): CLIPVisionConfig {
    const c = new ConfigReader(raw, label);
    const d = CLIPVisionConfig.DEFAULTS;
    return new CLIPVisionConfig({
      ...readTower(c, d),
      imageSize: c.int('image_size', d.imageSize),
      patchSize: c.int('patch_size', d.patchSize),
      numChannels: c.int('num_channels', d.numChannels),
    }, extraOf(raw, [...TOWER_FIELDS, 'image_size', 'patch_size', 'num_channels']));
  }

  toHF(): HFConfig {
    return {
      model_type: 'clip_vision_model',
      ...this.extra,
      ...towerFields(this),
      image_size: this.imageSize,
      patch_size: this.patchSize,
      num_channels: this.numChannels,
    };
  }
}

export interface CLIPConfigOptions {
  textConfig?: CLIPTextConfig | CLIPTextConfigOptions;
  visionConfig?: CLIPVisionConfig | CLIPVisionConfigOptions;
  /** Width of the shared embedding space; default 512. */
  projectionDim?: number;
  /** Initial log of the logit scale; default 2.6592 (= log(1 / 0.07)). */
  logitScaleInitValue?: number;
  initializerFactor?: number;
}

/** CLIPModel's configuration: both towers, the projection width and the initial logit scale. */
export class CLIPConfig {
  readonly textConfig: CLIPTextConfig;
  readonly visionConfig: CLIPVisionConfig;
  readonly projectionDim: number;
  readonly logitScaleInitValue: number;
  readonly initializerFactor: number;

  constructor(opts: CLIPConfigOptions = {}, readonly extra: HFConfig = {}) {
    this.textConfig = opts.textConfig instanceof CLIPTextConfig ? opts.textConfig : new CLIPTextConfig(opts.textConfig);
    this.visionConfig = opts.visionConfig instanceof CLIPVisionConfig ? opts.visionConfig : new CLIPVisionConfig(opts.visionConfig);
    this.projectionDim = opts.projectionDim ?? 512;
    this.logitScaleInitValue = opts.logitScaleInitValue ?? 2.6592;
    this.initializerFactor = opts.initializerFactor ?? 1;
    if (!Number.isInteger(this.projectionDim) || this.projectionDim < 1) {
      throw new Error(`CLIPConfig: projectionDim must be a positive integer, got ${this.projectionDim}`);
    }
  }

  /** From config.json's fields (HF's names and defaults); `label` names the file in errors. */
  static fromHF(raw: HFConfig, label = 'config.json'): CLIPConfig {
    const c = new ConfigReader(raw, label);
    const modelType = c.string('model_type', 'clip');
    if (modelType !== 'clip') throw new Error(`${label}: model_type is '${modelType}', not 'clip'`);
    // Configs from before transformers 4.x named the towers *_config_dict.
    const textKey = raw.text_config == null && raw.text_config_dict != null ? 'text_config_dict' : 'text_config';
    const visionKey = raw.vision_config == null && raw.vision_config_dict != null ? 'vision_config_dict' : 'vision_config';
    const read = ['text_config', 'vision_config', 'text_config_dict', 'vision_config_dict', 'projection_dim',
      'logit_scale_init_value', 'initializer_factor', 'model_type', 'architectures', 'dtype', 'torch_dtype'];
    return new CLIPConfig({
      textConfig: CLIPTextConfig.fromHF(subConfig(raw, textKey, label), `${label}: ${textKey}`),
      visionConfig: CLIPVisionConfig.fromHF(subConfig(raw, visionKey, label), `${label}: ${visionKey}`),
      projectionDim: c.int('projection_dim', 512),
      logitScaleInitValue: c.number('logit_scale_init_value', 2.6592),
      initializerFactor: c.number('initializer_factor', 1),
    }, extraOf(raw, read));
  }

  /** config.json's fields for this config, as HF's CLIPConfig writes them. */
  toHF(architectures: readonly string[] = ['CLIPModel']): HFConfig {
    return {
      ...this.extra,
      architectures: [...architectures],
      model_type: 'clip',
      text_config: this.textConfig.toHF(),
      vision_config: this.visionConfig.toHF(),
      projection_dim: this.projectionDim,
      logit_scale_init_value: this.logitScaleInitValue,
      initializer_factor: this.initializerFactor,
    };
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------
// Modules

export interface CLIPOptions extends ModuleOptions {
  /**
   * Draw initial weights as HF's _init_weights does; default true. fromPretrained skips it when
   * every weight comes from the checkpoint.
   */
  initWeights?: boolean;
}

export interface CLIPTowerOutput {
  /**
   * [B, T, D]: text after the final layer norm; vision before the post layer norm (as HF). With
   * pooledOnly, [B, 1, D]: the pooled row alone (the EOS token's, the class token's).
   */
  lastHiddenState: Tensor;
  /** [B, D]: the EOS token's state (text) or the post-normed class token (vision), unprojected. */
  poolerOutput: Tensor;
  /** The embeddings, then each layer's output, when asked for. */
  hiddenStates: Tensor[] | null;
}

function encoderFor(config: CLIPTextConfig | CLIPVisionConfig, opts: ModuleOptions, causal: boolean): TransformerEncoder {
  return new TransformerEncoder(config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads, {
    ...opts,
    mlpDim: config.intermediateSize,
    act: config.hiddenAct,
    eps: config.layerNormEps,
    bias: true,
    attnDropout: config.attentionDropout,
    causal,
  });
}

/** Token embeddings plus learned absolute positions. */
export class CLIPTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;

  constructor(readonly config: CLIPTextConfig, opts: ModuleOptions = {}) {
    super();
    this.tokenEmbedding = this.module('token_embedding', new Embedding(config.vocabSize, config.hiddenSize, opts));
    this.positionEmbedding = this.module('position_embedding', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, opts));
  }

  /** ids [B, T] -> [B, T, D]. */
  forward(inputIds: Tensor): Tensor {
    if (inputIds.ndim !== 2) throw new Error(`CLIP: input_ids must be [B, T], got [${inputIds.shape}]`);
    const T = inputIds.shape[1]!;
    const max = this.config.maxPositionEmbeddings;
    if (T > max) throw new Error(`CLIP: sequence length ${T} exceeds max_position_embeddings ${max}`);
    return this.tokenEmbedding.forward(inputIds).add(this.positionEmbedding.weight.slice(0, 0, T));
  }
}

/**
 * Where each sequence is pooled: the first eos_token_id, or (legacy configs, eos_token_id 2) the
 * first largest id, as HF's argmax picks them. A row without the EOS token pools position 0, as
 * argmax over all-false does.
 */
export function eosPositions(inputIds: Tensor, config: CLIPTextConfig): number[] {
  const [B, T] = inputIds.shape as [number, number];
  const ids = inputIds.toArray();
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const row = ids.slice(b * T, (b + 1) * T);
    if (config.legacyPooling) {
      let best = 0;
      for (let t = 1; t < T; t++) if (row[t]! > row[best]!) best = t;
      out.push(best);
    } else {
      out.push(Math.max(0, row.indexOf(config.eosTokenId)));
    }
  }
  return out;
}

export interface CLIPTextForwardOptions {
  outputHiddenStates?: boolean;
  /**
   * Only the pooled output is read: the positions after the batch's last EOS are skipped, the last
   * layer runs for each sequence's EOS row alone, and lastHiddenState is [B, 1, D]. The same pooled
   * output as the full pass, with less work; not with outputHiddenStates.
   */
  pooledOnly?: boolean;
}

/** Throws when pooledOnly, which leaves the last layer's other rows uncomputed, meets outputHiddenStates. */
function checkPooledOnly(opts: { outputHiddenStates?: boolean; pooledOnly?: boolean }, where: string): void {
  if (opts.pooledOnly && opts.outputHiddenStates) throw new Error(`${where}: pooledOnly and outputHiddenStates cannot be combined`);
}

/** HF's CLIPTextTransformer: embeddings, causal encoder, final layer norm, EOS pooling. */
export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: TransformerEncoder;
  readonly finalLayerNorm: LayerNorm;

  constructor(readonly config: CLIPTextConfig, opts: ModuleOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new CLIPTextEmbeddings(config, opts));
    this.encoder = this.module('encoder', encoderFor(config, opts, true));
    this.finalLayerNorm = this.module('final_layer_norm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
  }

  /** attentionMask [B, T]: nonzero for real tokens; padded keys are masked on top of the causal mask. */
  forward(inputIds: Tensor, attentionMask: Tensor | null = null, opts: CLIPTextForwardOptions = {}): CLIPTowerOutput {
    checkPooledOnly(opts, 'CLIP text model');
    const embedded = this.embeddings.forward(inputIds);
    if (opts.pooledOnly) {
      const rows = eosPositions(inputIds, this.config);
      // Under the causal mask no position reads a later one: the positions after the batch's last
      // EOS change nothing pooled, so they are not computed (a prompt padded to 77 runs ~10 rows).
      const T = Math.max(...rows) + 1;
      const upToT = (t: Tensor) => (T < t.shape[1]! ? t.slice(1, 0, T).contiguous() : t);
      const pooled = this.encoder.forward(upToT(embedded), { keyPadding: attentionMask && upToT(attentionMask), causal: true, rows });
      const lastHiddenState = this.finalLayerNorm.forward(pooled);
      return { lastHiddenState, poolerOutput: lastHiddenState.reshape(pooled.shape[0]!, this.config.hiddenSize), hiddenStates: null };
    }
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.encoder.forward(embedded, { keyPadding: attentionMask, causal: true, hiddenStates });
    const lastHiddenState = this.finalLayerNorm.forward(x);
    const [B, T, D] = lastHiddenState.shape as [number, number, number];
    const rows = eosPositions(inputIds, this.config).map((t, b) => b * T + t);
    const index = tensor(Int32Array.from(rows), { shape: [B], dtype: 'int32', backend: lastHiddenState.backend });
    const poolerOutput = indexSelect(lastHiddenState.reshape(B * T, D), 0, index);
    return { lastHiddenState, poolerOutput, hiddenStates: hiddenStates ?? null };
  }
}

/** The bias-free patch convolution, registered as HF's nn.Conv2d 'patch_embedding'. */
class PatchEmbedding extends Module {
  readonly weight: Tensor;

  constructor(config: CLIPVisionConfig, opts: ModuleOptions) {
    super();
    const p = config.patchSize;
    this.weight = this.param('weight', paramZeros([config.hiddenSize, config.numChannels, p, p], opts));
  }
}

/** [class] + patch embeddings + position embeddings (HF's CLIPVisionEmbeddings). */
export class CLIPVisionEmbeddings extends Module {
  readonly classEmbedding: Tensor;
  readonly patchEmbedding: PatchEmbedding;
  readonly positionEmbedding: Embedding;

  constructor(readonly config: CLIPVisionConfig, opts: ModuleOptions = {}) {
    super();
    const g = config.gridSize;
    this.classEmbedding = this.param('class_embedding', paramZeros([config.hiddenSize], opts));
    this.patchEmbedding = this.module('patch_embedding', new PatchEmbedding(config, opts));
    this.positionEmbedding = this.module('position_embedding', new Embedding(g * g + 1, config.hiddenSize, opts));
  }

  /**
   * pixels [B, C, H, W] -> [B, 1 + patches, D]. Without interpolatePosEncoding the image must have
   * the configured size (as HF requires); with it, any size of at least one patch.
   */
  forward(pixels: Tensor, interpolatePosEncoding = false): Tensor {
    const { numChannels: C, imageSize, hiddenSize: D, patchSize: p } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`CLIP: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (!interpolatePosEncoding && (H !== imageSize || W !== imageSize)) {
      throw new Error(`CLIP: input image size (${H}*${W}) doesn't match the model (${imageSize}*${imageSize}); ` +
        'pass interpolatePosEncoding: true to run at other sizes');
    }
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    if (gh < 1 || gw < 1) throw new Error(`CLIP: image ${H}x${W} is smaller than one ${p}x${p} patch`);
    // As PyTorch's strided convolution, rows and columns past the last whole patch are dropped.
    const x = H === gh * p && W === gw * p ? pixels : pixels.slice(2, 0, gh * p).slice(3, 0, gw * p);
    const patches = conv2d(x, this.patchEmbedding.weight).permute(0, 2, 3, 1).reshape(B, gh * gw, D);
    const cls = this.classEmbedding.reshape(1, 1, D).expand(B, 1, D);
    const pos = interpolatePosEncoding ? this.interpolatePosEncoding(H, W) : this.positionEmbedding.weight;
    return concat([cls, patches], 1).add(pos);
  }

  /**
   * The position table [1 + patches, D] for an H x W image, as HF's interpolate_pos_encoding: the
   * table itself when the patch count is unchanged and the image square, else the patch grid
   * resized bicubically (align_corners=False) with the class position kept. Differentiable.
   */
  interpolatePosEncoding(H: number, W: number): Tensor {
    const { patchSize: p, hiddenSize: D, gridSize: g0 } = this.config;
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    const table = this.positionEmbedding.weight;
    if (gh * gw === g0 * g0 && H === W) return table;
    const grid = table.slice(0, 1).reshape(g0, g0, D).permute(2, 0, 1);
    const resized = interpolateBicubic(grid, [gh, gw]).permute(1, 2, 0).reshape(gh * gw, D);
    return concat([table.slice(0, 0, 1), resized], 0);
  }
}

export interface CLIPVisionForwardOptions {
  /** Run at an image size other than the configured one (see CLIPVisionEmbeddings.interpolatePosEncoding). */
  interpolatePosEncoding?: boolean;
  outputHiddenStates?: boolean;
  /**
   * FLIP's patch dropout, in training mode only (ignored in eval mode): each image keeps a random
   * round((1 - ratio) * patches) of its patch tokens, and the class token.
   */
  patchDropout?: PatchDropoutOptions;
  /**
   * Only the pooled output is read: the last layer runs for the class token alone, and
   * lastHiddenState is [B, 1, D]. The same pooled output as the full pass, with less work; not
   * with outputHiddenStates.
   */
  pooledOnly?: boolean;
}

/** HF's CLIPVisionTransformer: embeddings, pre layer norm, encoder, post layer norm on the class token. */
export class CLIPVisionTransformer extends Module {
  readonly embeddings: CLIPVisionEmbeddings;
  readonly preLayernorm: LayerNorm;
  readonly encoder: TransformerEncoder;
  readonly postLayernorm: LayerNorm;

  constructor(readonly config: CLIPVisionConfig, opts: ModuleOptions = {}) {
    super();
    const ln = { ...opts, eps: config.layerNormEps };
    this.embeddings = this.module('embeddings', new CLIPVisionEmbeddings(config, opts));
    // HF's attribute name, misspelling included: it is the checkpoint key.
    this.preLayernorm = this.module('pre_layrnorm', new LayerNorm(config.hiddenSize, ln));
    this.encoder = this.module('encoder', encoderFor(config, opts, false));
    this.postLayernorm = this.module('post_layernorm', new LayerNorm(config.hiddenSize, ln));
  }

  forward(pixels: Tensor, opts: CLIPVisionForwardOptions = {}): CLIPTowerOutput {
    checkPooledOnly(opts, 'CLIP vision model');
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    let tokens = this.embeddings.forward(pixels, opts.interpolatePosEncoding);
    if (opts.patchDropout) {
      checkPatchDropout(opts.patchDropout, 'CLIP');
      // As open_clip: after the position embeddings, before ln_pre; the class token always stays.
      if (this.training) tokens = patchDropout(tokens, 1, opts.patchDropout);
    }
    const x = this.preLayernorm.forward(tokens);
    if (opts.pooledOnly) {
      const lastHiddenState = this.encoder.forward(x, { rows: 'first' });
      const poolerOutput = this.postLayernorm.forward(lastHiddenState.reshape(x.shape[0]!, this.config.hiddenSize));
      return { lastHiddenState, poolerOutput, hiddenStates: null };
    }
    const lastHiddenState = this.encoder.forward(x, { hiddenStates });
    const poolerOutput = this.postLayernorm.forward(lastHiddenState.select(1, 0));
    return { lastHiddenState, poolerOutput, hiddenStates: hiddenStates ?? null };
  }
}

export interface CLIPForwardOptions extends CLIPVisionForwardOptions {
  /** Also compute the contrastive loss (needs as many texts as images). */
  returnLoss?: boolean;
}

export interface CLIPOutput {
  /** [B_image, B_text]: exp(logit_scale) * cosine similarity. */
  logitsPerImage: Tensor;
  /** [B_text, B_image], the transpose. */
  logitsPerText: Tensor;
  /** [B_text, projectionDim], L2-normalised. */
  textEmbeds: Tensor;
  /** [B_image, projectionDim], L2-normalised. */
  imageEmbeds: Tensor;
  /** The projected features before normalisation (HF 5's pooler_output of get_*_features). */
  textFeatures: Tensor;
  imageFeatures: Tensor;
  textModelOutput: CLIPTowerOutput;
  visionModelOutput: CLIPTowerOutput;
  /** With returnLoss, the symmetric cross-entropy. */
  loss: Tensor | null;
}

/** x / ||x||_2 along the last axis. */
export function l2Normalize(x: Tensor): Tensor {
  return x.div(x.square().sum(-1, true).sqrt());
}

/** HF's _init_weights for CLIP. */
function initCLIPWeights(model: CLIPModel, generator: Generator): void {
  const normal = (t: Tensor, std: number) => normal_(t, 0, std, generator);
  const initEncoder = (enc: TransformerEncoder, c: CLIPTextConfig | CLIPVisionConfig) => {
    const f = c.initializerFactor;
    const D = c.hiddenSize;
    const inStd = D ** -0.5 * (2 * c.numHiddenLayers) ** -0.5 * f;
    for (const layer of enc.layers) {
      const a = layer.attn;
      for (const lin of [a.qProj, a.kProj, a.vProj]) normal(lin.weight, inStd);
      normal(a.outProj.weight, D ** -0.5 * f);
      normal(layer.mlp.fc1.weight, (2 * D) ** -0.5 * f);
      normal(layer.mlp.fc2.weight, inStd);
    }
  };
  const t = model.textModel;
  const tc = model.config.textConfig;
  normal(t.embeddings.tokenEmbedding.weight, 0.02 * tc.initializerFactor);
  normal(t.embeddings.positionEmbedding.weight, 0.02 * tc.initializerFactor);
  initEncoder(t.encoder, tc);
  const v = model.visionModel;
  const vc = model.config.visionConfig;
  normal(v.embeddings.classEmbedding, vc.hiddenSize ** -0.5 * vc.initializerFactor);
  normal(v.embeddings.patchEmbedding.weight, vc.initializerRange * vc.initializerFactor);
  normal(v.embeddings.positionEmbedding.weight, vc.initializerRange * vc.initializerFactor);
  initEncoder(v.encoder, vc);
  const f = model.config.initializerFactor;
  normal(model.visualProjection.weight, vc.hiddenSize ** -0.5 * f);
  normal(model.textProjection.weight, tc.hiddenSize ** -0.5 * f);
  constant_(model.logitScale, model.config.logitScaleInitValue);
  model.apply((m) => {
    if (m instanceof LayerNorm) {
      if (m.weight) constant_(m.weight, 1);
      if (m.bias) constant_(m.bias, 0);
    } else if (m instanceof Linear && m.bias) {
      constant_(m.bias, 0);
    }
  });
}

/** Both towers, their bias-free projections into a shared space, and the learned logit scale. */
export class CLIPModel extends Module {
  readonly textModel: CLIPTextTransformer;
  readonly visionModel: CLIPVisionTransformer;
  readonly visualProjection: Linear;
  readonly textProjection: Linear;
  /** log of the temperature's reciprocal, a scalar. */
  readonly logitScale: Tensor;

  constructor(readonly config: CLIPConfig, opts: CLIPOptions = {}) {
    super();
    const tc = config.textConfig;
    const vc = config.visionConfig;
    this.textModel = this.module('text_model', new CLIPTextTransformer(tc, opts));
    this.visionModel = this.module('vision_model', new CLIPVisionTransformer(vc, opts));
    this.visualProjection = this.module('visual_projection', new Linear(vc.hiddenSize, config.projectionDim, { ...opts, bias: false }));
    this.textProjection = this.module('text_projection', new Linear(tc.hiddenSize, config.projectionDim, { ...opts, bias: false }));
    this.logitScale = this.param('logit_scale', paramZeros([], opts));
    constant_(this.logitScale, config.logitScaleInitValue);
    if (opts.initWeights ?? true) initCLIPWeights(this, opts.generator ?? getDefaultGenerator());
  }

  /**
   * Projected text features [B, projectionDim], not normalised (HF's get_text_features). Only
   * the pooled row is read, so the last layer runs for it alone (pooledOnly).
   */
  getTextFeatures(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    return this.textProjection.forward(this.textModel.forward(inputIds, attentionMask, { pooledOnly: true }).poolerOutput);
  }

  /**
   * Projected image features [B, projectionDim], not normalised (HF's get_image_features), with
   * the last layer run for the class token alone (pooledOnly); patchDropout applies in training.
   */
  getImageFeatures(pixels: Tensor, opts: Omit<CLIPVisionForwardOptions, 'outputHiddenStates' | 'pooledOnly'> = {}): Tensor {
    return this.visualProjection.forward(this.visionModel.forward(pixels, { ...opts, pooledOnly: true }).poolerOutput);
  }

  /**
   * Similarity logits of every text with every image; with returnLoss, the contrastive loss.
   * pooledOnly applies to both towers (their lastHiddenState is then [B, 1, D]).
   */
  forward(inputIds: Tensor, pixels: Tensor, attentionMask: Tensor | null = null, opts: CLIPForwardOptions = {}): CLIPOutput {
    const visionModelOutput = this.visionModel.forward(pixels, opts);
    const textModelOutput = this.textModel.forward(inputIds, attentionMask, opts);
    const imageFeatures = this.visualProjection.forward(visionModelOutput.poolerOutput);
    const textFeatures = this.textProjection.forward(textModelOutput.poolerOutput);
    const imageEmbeds = l2Normalize(imageFeatures);
    const textEmbeds = l2Normalize(textFeatures);
    const logitsPerText = textEmbeds.matmul(imageEmbeds.transpose(0, 1)).mul(this.logitScale.exp());
    const logitsPerImage = logitsPerText.transpose(0, 1);
    const loss = opts.returnLoss ? clipLoss(logitsPerText) : null;
    return { logitsPerImage, logitsPerText, textEmbeds, imageEmbeds, textFeatures, imageFeatures, textModelOutput, visionModelOutput, loss };
  }

  /**
   * Loads a CLIPModel folder in HF's layout. Old checkpoints' position_ids buffers are skipped
   * (HF no longer stores them).
   */
  static fromPretrained(dir: string, opts: CLIPOptions & { strict?: boolean } = {}): CLIPModel {
    return loadPretrained(dir, opts, { parseConfig: (json, where) => CLIPConfig.fromHF(json, where) },
      (config, _weights, o) => ({ model: new CLIPModel(config, o), toModuleKey: clipKeyFromHF }));
  }

  /** Writes config.json and model.safetensors (or shards) as HF's save_pretrained does. */
  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['CLIPModel']), undefined, opts);
  }
}

/** An HF checkpoint key -> the module key: the same, except stale position_ids buffers, dropped. */
export function clipKeyFromHF(key: string): string | null {
  return /^(text_model|vision_model)\.embeddings\.position_ids$/.test(key) ? null : key;
}
