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
import { clipTokenizer } from '../data/tokenizers/clip.js';
import { clipContrastiveLoss, clipLoss } from '../nn/losses.js';
import { type HFConfig, type SaveHFOptions, loadPretrained, savePretrained } from '../io/hf.js';
import { Embedding, LayerNorm, Linear, type PatchDropoutOptions, checkPatchDropout, patchDropout } from '../nn/layers.js';
import { Module, type ModuleOptions, paramZeros } from '../nn/module.js';
import { TransformerEncoder } from '../nn/transformer.js';
import { constant_, normal_ } from '../nn/init.js';
import { concat, indexSelect } from '../tensor/ops/indexing.js';
import { conv2d } from '../tensor/ops/nn.js';
import { type Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { act, configClass, int, num, str, sub } from './config_table.js';
import type { DualEncoder, ImageEncodeOptions, ImageTowerLayout, ModelFamily, ModelSizes } from './family.js';
import { interpolateBicubic } from './interpolate.js';
import { clipConfigFromOpenClip } from './openclip.js';

// ---------------------------------------------------------------------------------------------
// Configuration

/** Fields both towers have, with the defaults they differ in (openai/clip-vit-base-patch32). */
const towerFields = (modelType: string, hiddenSize: number, intermediateSize: number, numAttentionHeads: number) => ({
  /** Written back as read; HF names each tower's type. */
  modelType: str('model_type', modelType),
  hiddenSize: int('hidden_size', hiddenSize),
  intermediateSize: int('intermediate_size', intermediateSize),
  numHiddenLayers: int('num_hidden_layers', 12, { min: 0 }),
  numAttentionHeads: int('num_attention_heads', numAttentionHeads),
  hiddenAct: act('hidden_act', 'quick_gelu'),
  layerNormEps: num('layer_norm_eps', 1e-5),
  attentionDropout: num('attention_dropout', 0),
  initializerRange: num('initializer_range', 0.02),
  initializerFactor: num('initializer_factor', 1),
  /** Read only by HF's *WithProjection tower models; CLIPModel uses CLIPConfig.projectionDim. */
  projectionDim: int('projection_dim', 512),
});

function checkHeads(c: { hiddenSize: number; numAttentionHeads: number }, label: string): void {
  if (c.hiddenSize % c.numAttentionHeads !== 0) {
    throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
  }
}

/** The text tower's hyperparameters: HF's keys and defaults. */
export class CLIPTextConfig extends configClass({
  name: 'CLIPTextConfig',
  modelType: null,
  fields: {
    ...towerFields('clip_text_model', 512, 2048, 8),
    vocabSize: int('vocab_size', 49408),
    maxPositionEmbeddings: int('max_position_embeddings', 77),
    padTokenId: num('pad_token_id', 1),
    bosTokenId: num('bos_token_id', 49406),
    /** The token whose final state is pooled (its first occurrence); 2 means the legacy rule (legacyPooling). */
    eosTokenId: num('eos_token_id', 49407),
  },
  check: checkHeads,
}) {
  /** Pooling by the largest id (configs from before eos_token_id was honoured carry 2). */
  get legacyPooling(): boolean {
    return this.eosTokenId === 2;
  }
}

/** The vision tower's hyperparameters: HF's keys and defaults. */
export class CLIPVisionConfig extends configClass({
  name: 'CLIPVisionConfig',
  modelType: null,
  fields: {
    ...towerFields('clip_vision_model', 768, 3072, 12),
    imageSize: int('image_size', 224),
    patchSize: int('patch_size', 32),
    numChannels: int('num_channels', 3),
  },
  check: (c, label) => {
    checkHeads(c, label);
    if (c.imageSize < c.patchSize) throw new Error(`${label}: image_size ${c.imageSize} is smaller than patch_size ${c.patchSize}`);
  },
}) {
  /** Patches per side at the native image size. */
  get gridSize(): number {
    return Math.floor(this.imageSize / this.patchSize);
  }
}

/** CLIPModel's configuration: both towers, the projection width and the initial logit scale. */
export class CLIPConfig extends configClass({
  name: 'CLIPConfig',
  modelType: 'clip',
  fields: {
    // Configs from before transformers 4 named the towers *_config_dict.
    textConfig: sub<CLIPTextConfig, CLIPTextConfigOptions>('text_config', CLIPTextConfig, 'text_config_dict'),
    visionConfig: sub<CLIPVisionConfig, CLIPVisionConfigOptions>('vision_config', CLIPVisionConfig, 'vision_config_dict'),
    /** Width of the shared embedding space. */
    projectionDim: int('projection_dim', 512),
    /** Initial log of the logit scale (log(1 / 0.07)). */
    logitScaleInitValue: num('logit_scale_init_value', 2.6592),
    initializerFactor: num('initializer_factor', 1),
  },
}) {
  override toHF(architectures: readonly string[] = ['CLIPModel']): HFConfig {
    return super.toHF(architectures);
  }
}

export type CLIPTextConfigOptions = ConstructorParameters<typeof CLIPTextConfig>[0];
export type CLIPVisionConfigOptions = ConstructorParameters<typeof CLIPVisionConfig>[0];
export type CLIPConfigOptions = ConstructorParameters<typeof CLIPConfig>[0];

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
export class CLIPModel extends Module implements DualEncoder {
  readonly kind = 'dual-encoder';
  readonly contrastiveLoss = 'clip';
  readonly logitBias = null;
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

  get family(): ModelFamily {
    return CLIP;
  }

  get imageEmbedDim(): number {
    return this.config.projectionDim;
  }

  get imageSize(): number {
    return this.config.visionConfig.imageSize;
  }

  get contextLength(): number {
    return this.config.textConfig.maxPositionEmbeddings;
  }

  get vocabSize(): number {
    return this.config.textConfig.vocabSize;
  }

  encodeImage(pixels: Tensor, opts: ImageEncodeOptions = {}): Tensor {
    return this.getImageFeatures(pixels, { patchDropout: opts.patchDropout });
  }

  encodeText(inputIds: Tensor): Tensor {
    return this.getTextFeatures(inputIds);
  }

  pairLoss(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return clipContrastiveLoss(imageEmbeds, textEmbeds, this.logitScale);
  }

  pairLogits(imageEmbeds: Tensor, textEmbeds: Tensor): { logits: Tensor; probs: Tensor } {
    const logits = imageEmbeds.matmul(textEmbeds.transpose(0, 1)).mul(this.logitScale.exp());
    return { logits, probs: logits.softmax(-1) };
  }

  initForTraining(): void {}

  imageTower(): ImageTowerLayout {
    return {
      prefixes: ['vision_model', 'visual_projection'],
      blocks: 'vision_model.encoder.layers',
      numBlocks: this.config.visionConfig.numHiddenLayers,
      after: ['vision_model.post_layernorm', 'visual_projection'],
      modules: [this.visionModel, this.visualProjection],
    };
  }
}

/** An HF checkpoint key -> the module key: the same, except stale position_ids buffers, dropped. */
export function clipKeyFromHF(key: string): string | null {
  return /^(text_model|vision_model)\.embeddings\.position_ids$/.test(key) ? null : key;
}

/** config.json of a CLIP of these sizes (a training config's model.custom), built as open_clip's config. */
function sizedConfig(s: ModelSizes, label: string): HFConfig {
  return clipConfigFromOpenClip({
    embed_dim: s.embed_dim,
    vision_cfg: { image_size: s.image_size, patch_size: s.patch_size, width: s.width, layers: s.layers, head_width: s.width / s.heads, mlp_ratio: s.mlp_ratio },
    text_cfg: { context_length: s.context_length, vocab_size: s.vocab_size, width: s.text_width, heads: s.text_heads, layers: s.text_layers, mlp_ratio: s.mlp_ratio },
  }, label).toHF(['CLIPModel']);
}

export const CLIP: ModelFamily = {
  modelType: 'clip',
  title: 'CLIP',
  config: CLIPConfig,
  architectures: { CLIPModel },
  imageProcessor: 'clip',
  tokenizer: clipTokenizer,
  sizedConfig,
};
