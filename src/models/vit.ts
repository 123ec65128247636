// ViT (Dosovitskiy et al. 2020) with Hugging Face parity: ViTModel and ViTForImageClassification
// load checkpoints in HF's layout and give the numbers transformers gives.
//
//   pixels [B, C, H, W] -> patch conv -> [CLS] + patches -> + position embeddings
//     -> pre-LN transformer layers -> final layer norm -> classifier on the CLS token
//
// The encoder is the engine's TransformerEncoder (fused attention, fused residual + layer norm,
// fused bias + GELU): ViT's layer computes exactly what that block computes, so it is reused
// rather than written again under other names, and HF's names are mapped onto it (vitKeyToHF,
// vitKeyFromHF). Everything outside the encoder keeps HF's names as they are.
import { type HFConfig, type SaveHFOptions, labelFields, loadPretrained, savePretrained, type CheckpointFormat } from '../io/hf.js';
import { Dropout, LayerNorm, Linear, type PatchDropoutOptions, checkPatchDropout, getActivation, patchDropout } from '../nn/layers.js';
import { Module, type ModuleOptions, paramZeros } from '../nn/module.js';
import { TransformerEncoder, type TransformerBlockOptions } from '../nn/transformer.js';
import { truncNormal_, zeros_ } from '../nn/init.js';
import { concat } from '../tensor/ops/indexing.js';
import { binaryCrossEntropyWithLogits, conv2d, crossEntropy } from '../tensor/ops/nn.js';
import { cast } from '../tensor/ops/elementwise.js';
import { getDefaultGenerator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { act, bool, configClass, int, labels, num, oneOf, pair } from './config_table.js';
import type { ImageClassifier, ImageEncodeOptions, ImageEncoder, ImageTowerLayout, ModelFamily, ModelSizes } from './family.js';
import { interpolateBicubic } from './interpolate.js';

const PROBLEM_TYPES = ['regression', 'single_label_classification', 'multi_label_classification'] as const;

/** The encoder's fields, which ViT-MAE's config shares: HF's keys and defaults (google/vit-base-patch16-224). */
export const VIT_ENCODER_FIELDS = {
  hiddenSize: int('hidden_size', 768),
  numHiddenLayers: int('num_hidden_layers', 12),
  numAttentionHeads: int('num_attention_heads', 12),
  intermediateSize: int('intermediate_size', 3072),
  hiddenAct: act('hidden_act', 'gelu'),
  hiddenDropoutProb: num('hidden_dropout_prob', 0),
  attentionProbsDropoutProb: num('attention_probs_dropout_prob', 0),
  initializerRange: num('initializer_range', 0.02),
  layerNormEps: num('layer_norm_eps', 1e-12),
  /** Pixels, square or [height, width]. */
  imageSize: pair('image_size', 224),
  patchSize: pair('patch_size', 16),
  numChannels: int('num_channels', 3),
  qkvBias: bool('qkv_bias', true),
};

/** ViT's hyperparameters: the encoder's, the pooler's and the classifier's. */
export class ViTConfig extends configClass({
  name: 'ViTConfig',
  modelType: 'vit',
  fields: {
    ...VIT_ENCODER_FIELDS,
    /** ViTModel's pooler: output width and activation. */
    poolerOutputSize: int('pooler_output_size', (c) => c.hiddenSize),
    poolerAct: act('pooler_act', 'tanh'),
    /** Class names, by index (HF's id2label). */
    labels: labels(),
    problemType: oneOf('problem_type', PROBLEM_TYPES),
  },
  check: (c, label) => {
    if (c.hiddenSize % c.numAttentionHeads !== 0) {
      throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
    }
    if (c.imageSize[0] < c.patchSize[0] || c.imageSize[1] < c.patchSize[1]) {
      throw new Error(`${label}: image_size [${c.imageSize}] is smaller than patch_size [${c.patchSize}]`);
    }
  },
}) {
  get numLabels(): number {
    return this.labels.length;
  }

  /** Patches per column and per row at the native image size. */
  get gridSize(): [number, number] {
    return [Math.floor(this.imageSize[0] / this.patchSize[0]), Math.floor(this.imageSize[1] / this.patchSize[1])];
  }
}

export type ViTConfigOptions = ConstructorParameters<typeof ViTConfig>[0];
export type ProblemType = (typeof PROBLEM_TYPES)[number];

// ---------------------------------------------------------------------------------------------
// HF names <-> module names

/** Sub-paths of one encoder layer: [engine (TransformerBlock), HF checkpoint, HF transformers 5 module]. */
const LAYER_NAMES: readonly (readonly [string, string, string])[] = [
  ['layer_norm1', 'layernorm_before', 'layernorm_before'],
  ['self_attn.q_proj', 'attention.attention.query', 'attention.q_proj'],
  ['self_attn.k_proj', 'attention.attention.key', 'attention.k_proj'],
  ['self_attn.v_proj', 'attention.attention.value', 'attention.v_proj'],
  ['self_attn.out_proj', 'attention.output.dense', 'attention.o_proj'],
  ['layer_norm2', 'layernorm_after', 'layernorm_after'],
  ['mlp.fc1', 'intermediate.dense', 'mlp.fc1'],
  ['mlp.fc2', 'output.dense', 'mlp.fc2'],
];

function renameLayerPart(rest: string, from: 0 | 1 | 2, to: 0 | 1 | 2): string | null {
  for (const names of LAYER_NAMES) {
    if (rest.startsWith(`${names[from]}.`)) return names[to] + rest.slice(names[from].length);
  }
  return null;
}

/** A module key -> its name in HF checkpoints ('encoder.layers.0.self_attn.q_proj.weight' -> 'encoder.layer.0.attention.attention.query.weight'). */
export function vitKeyToHF(key: string): string {
  const m = /^((?:vit\.)?)encoder\.layers\.(\d+)\.(.+)$/.exec(key);
  const rest = m && renameLayerPart(m[3]!, 0, 1);
  return m && rest ? `${m[1]}encoder.layer.${m[2]}.${rest}` : key;
}

/** How ViT checkpoints read: the config and the key names. */
const VIT_CHECKPOINT: CheckpointFormat<ViTConfig> = {
  parseConfig: (json, where) => ViTConfig.fromHF(json, where),
  toCheckpointKey: vitKeyToHF,
};

/**
 * An HF name -> the module key. Accepts the checkpoint layout (encoder.layer.N.attention.attention.query)
 * and the module names of transformers 5 (layers.N.attention.q_proj), which its gradients and
 * parameters carry; other keys are returned unchanged.
 */
export function vitKeyFromHF(key: string): string {
  let m = /^((?:vit\.)?)encoder\.layer\.(\d+)\.(.+)$/.exec(key);
  let rest = m && renameLayerPart(m[3]!, 1, 0);
  if (m && rest) return `${m[1]}encoder.layers.${m[2]}.${rest}`;
  m = /^((?:vit\.)?)layers\.(\d+)\.(.+)$/.exec(key);
  rest = m && renameLayerPart(m[3]!, 2, 0);
  return m && rest ? `${m[1]}encoder.layers.${m[2]}.${rest}` : key;
}

// ---------------------------------------------------------------------------------------------
// Modules

/** The patch convolution (kernel = stride = patch size), registered as HF's nn.Conv2d 'projection'. */
class PatchProjection extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(config: ViTConfig, opts: ModuleOptions) {
    super();
    const [ph, pw] = config.patchSize;
    this.weight = this.param('weight', paramZeros([config.hiddenSize, config.numChannels, ph, pw], opts));
    this.bias = this.param('bias', paramZeros([config.hiddenSize], opts));
  }
}

/** pixels [B, C, H, W] -> patch embeddings [B, (H/p)(W/p), D], row-major over the patch grid. */
export class ViTPatchEmbeddings extends Module {
  readonly projection: PatchProjection;

  constructor(readonly config: ViTConfig, opts: ModuleOptions = {}) {
    super();
    this.projection = this.module('projection', new PatchProjection(config, opts));
  }

  forward(pixels: Tensor): Tensor {
    const [ph, pw] = this.config.patchSize;
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    const gh = Math.floor(H / ph);
    const gw = Math.floor(W / pw);
    if (gh < 1 || gw < 1) throw new Error(`ViT: image ${H}x${W} is smaller than one ${ph}x${pw} patch`);
    // As PyTorch's strided convolution, rows and columns past the last whole patch are dropped.
    const x = H === gh * ph && W === gw * pw ? pixels : pixels.slice(2, 0, gh * ph).slice(3, 0, gw * pw);
    const y = conv2d(x, this.projection.weight, this.projection.bias); // [B, D, gh, gw], a view of [B, gh, gw, D]
    return y.permute(0, 2, 3, 1).reshape(B, gh * gw, this.config.hiddenSize);
  }
}

/** [CLS] + patch embeddings + position embeddings (HF's ViTEmbeddings, without the mask token). */
export class ViTEmbeddings extends Module {
  readonly clsToken: Tensor;
  readonly positionEmbeddings: Tensor;
  readonly patchEmbeddings: ViTPatchEmbeddings;
  readonly dropout: Dropout;

  constructor(readonly config: ViTConfig, opts: ModuleOptions = {}) {
    super();
    const [gh, gw] = config.gridSize;
    this.clsToken = this.param('cls_token', paramZeros([1, 1, config.hiddenSize], opts));
    this.patchEmbeddings = this.module('patch_embeddings', new ViTPatchEmbeddings(config, opts));
    this.positionEmbeddings = this.param('position_embeddings', paramZeros([1, gh * gw + 1, config.hiddenSize], opts));
    this.dropout = this.module('dropout', new Dropout(config.hiddenDropoutProb, { generator: opts.generator }));
  }

  /**
   * pixels [B, C, H, W] -> [B, 1 + patches, D]. Without interpolatePosEncoding the image must have
   * the configured size (as HF requires); with it, any size of at least one patch.
   */
  forward(pixels: Tensor, interpolatePosEncoding = false): Tensor {
    const { numChannels: C, imageSize, hiddenSize: D } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`ViT: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (!interpolatePosEncoding && (H !== imageSize[0] || W !== imageSize[1])) {
      throw new Error(`ViT: input image size (${H}*${W}) doesn't match the model (${imageSize[0]}*${imageSize[1]}); ` +
        'pass interpolatePosEncoding: true to run at other sizes');
    }
    const patches = this.patchEmbeddings.forward(pixels);
    const x = concat([this.clsToken.expand(B, 1, D), patches], 1);
    const pos = interpolatePosEncoding ? this.interpolatePosEncoding(H, W) : this.positionEmbeddings;
    return this.dropout.forward(x.add(pos));
  }

  /**
   * The position embeddings [1, 1 + patches, D] for an H x W image, as HF's interpolate_pos_encoding:
   * the table itself when the patch count is unchanged and the image is square, else the patch
   * grid resized with bicubic interpolation (align_corners=False, to the new grid's size) and
   * the CLS position prepended. Differentiable.
   */
  interpolatePosEncoding(H: number, W: number): Tensor {
    const [ph, pw] = this.config.patchSize;
    const [g0h, g0w] = this.config.gridSize;
    const D = this.config.hiddenSize;
    const gh = Math.floor(H / ph);
    const gw = Math.floor(W / pw);
    if (gh * gw === g0h * g0w && H === W) return this.positionEmbeddings;
    const grid = this.positionEmbeddings.slice(1, 1).reshape(g0h, g0w, D).permute(2, 0, 1);
    const resized = interpolateBicubic(grid, [gh, gw]).permute(1, 2, 0).reshape(1, gh * gw, D);
    return concat([this.positionEmbeddings.slice(1, 0, 1), resized], 1);
  }
}

/** tanh(dense(CLS token)), ViTModel's pooled output. */
export class ViTPooler extends Module {
  readonly dense: Linear;
  readonly act: (x: Tensor) => Tensor;

  constructor(config: ViTConfig, opts: ModuleOptions = {}) {
    super();
    this.dense = this.module('dense', new Linear(config.hiddenSize, config.poolerOutputSize, opts));
    this.act = getActivation(config.poolerAct);
  }

  forward(hidden: Tensor): Tensor {
    return this.act(this.dense.forward(hidden.select(1, 0)));
  }
}

export interface ViTOptions extends ModuleOptions {
  /** ViTModel only: include the pooler (default true, as HF). */
  addPoolingLayer?: boolean;
  /**
   * Draw initial weights as HF does (truncated normal with initializer_range, zero biases);
   * default true. fromPretrained skips it when every weight comes from the checkpoint.
   */
  initWeights?: boolean;
}

export interface ViTForwardOptions {
  /** Run at an image size other than the configured one (see ViTEmbeddings.interpolatePosEncoding). */
  interpolatePosEncoding?: boolean;
  /** Also return the hidden states: the embeddings, then each layer's output (before the final norm). */
  outputHiddenStates?: boolean;
  /**
   * FLIP's patch dropout, in training mode only (ignored in eval mode): each image keeps a random
   * round((1 - ratio) * patches) of its patch tokens, and the CLS token.
   */
  patchDropout?: PatchDropoutOptions;
}

export interface ViTModelOutput {
  /** [B, 1 + patches, D], after the final layer norm. */
  lastHiddenState: Tensor;
  /** [B, poolerOutputSize], or null without a pooler. */
  poolerOutput: Tensor | null;
  hiddenStates: Tensor[] | null;
}

export interface PatchFeatureOptions {
  interpolatePosEncoding?: boolean;
  /**
   * Which hidden state, indexed as HF's hidden_states (0 = embeddings, i = after layer i,
   * negative from the end: -1 is the last layer, -2 what LLaVA-style models take by default);
   * these are before the final layer norm, and later layers are not run. Default: the final
   * output after the final layer norm.
   */
  layer?: number;
}

function problemOf(config: ViTConfig, labels: Tensor): ProblemType {
  if (config.problemType) return config.problemType;
  if (config.numLabels === 1) return 'regression';
  return labels.dtype === 'int32' || labels.dtype === 'int64' ? 'single_label_classification' : 'multi_label_classification';
}

/** HF's _init_weights for ViT: truncated normal weights, zero biases, unit layer norms. */
function initViTWeights(root: Module, config: ViTConfig, opts: ModuleOptions): void {
  const g = opts.generator ?? getDefaultGenerator();
  const std = config.initializerRange;
  root.apply((m) => {
    if (m instanceof Linear || m instanceof PatchProjection) {
      truncNormal_(m.weight, 0, std, -2, 2, g);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof ViTEmbeddings) {
      truncNormal_(m.positionEmbeddings, 0, std, -2, 2, g);
      truncNormal_(m.clsToken, 0, std, -2, 2, g);
    }
  });
}

/** The ViT encoder: embeddings, transformer layers, final layer norm and (optionally) the pooler. */
export class ViTModel extends Module implements ImageEncoder {
  readonly kind = 'image-encoder';
  readonly embeddings: ViTEmbeddings;
  readonly encoder: TransformerEncoder;
  readonly layernorm: LayerNorm;
  readonly pooler: ViTPooler | null;

  constructor(readonly config: ViTConfig, opts: ViTOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new ViTEmbeddings(config, opts));
    // PyTorch's default init would be overwritten by HF's scheme or by the checkpoint.
    const block: TransformerBlockOptions = {
      ...opts,
      init: false,
      mlpDim: config.intermediateSize,
      act: config.hiddenAct,
      eps: config.layerNormEps,
      bias: true,
      qkvBias: config.qkvBias,
      dropout: config.hiddenDropoutProb,
      attnDropout: config.attentionProbsDropoutProb,
    };
    this.encoder = this.module('encoder', new TransformerEncoder(config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads, block));
    this.layernorm = this.module('layernorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
    this.pooler = (opts.addPoolingLayer ?? true) ? this.module('pooler', new ViTPooler(config, opts)) : null;
    if (opts.initWeights ?? true) initViTWeights(this, config, opts);
  }

  forward(pixels: Tensor, opts: ViTForwardOptions = {}): ViTModelOutput {
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.encoder.forward(this.#tokens(pixels, opts), { hiddenStates });
    const lastHiddenState = this.layernorm.forward(x);
    return { lastHiddenState, poolerOutput: this.pooler?.forward(lastHiddenState) ?? null, hiddenStates: hiddenStates ?? null };
  }

  /**
   * The CLS token's final state [B, D]: forward's lastHiddenState.select(1, 0), with the last
   * layer computed for that row alone (the other rows' outputs are never read). Patch dropout
   * keeps the CLS token at row 0, so it combines.
   */
  clsState(pixels: Tensor, opts: Omit<ViTForwardOptions, 'outputHiddenStates'> = {}): Tensor {
    const cls = this.encoder.forward(this.#tokens(pixels, opts), { rows: 'first' });
    return this.layernorm.forward(cls).reshape(cls.shape[0]!, this.config.hiddenSize);
  }

  /** The encoder's input: embeddings, then (training only) patch dropout. */
  #tokens(pixels: Tensor, opts: ViTForwardOptions): Tensor {
    const tokens = this.embeddings.forward(pixels, opts.interpolatePosEncoding);
    if (!opts.patchDropout) return tokens;
    checkPatchDropout(opts.patchDropout, 'ViT');
    return this.training ? patchDropout(tokens, 1, opts.patchDropout) : tokens;
  }

  /** The patch tokens [B, patches, D] (the CLS token left out), as multimodal models consume them. */
  patchFeatures(pixels: Tensor, opts: PatchFeatureOptions = {}): Tensor {
    const interp = opts.interpolatePosEncoding;
    if (opts.layer === undefined) return this.forward(pixels, { interpolatePosEncoding: interp }).lastHiddenState.slice(1, 1);
    const n = this.config.numHiddenLayers;
    const upTo = opts.layer < 0 ? n + 1 + opts.layer : opts.layer;
    if (!Number.isInteger(opts.layer) || upTo < 0 || upTo > n) {
      throw new RangeError(`patchFeatures: layer ${opts.layer} is out of range for ${n} layers (hidden states 0..${n}, or -${n + 1}..-1)`);
    }
    let x = this.embeddings.forward(pixels, interp);
    for (let i = 0; i < upTo; i++) x = this.encoder.layers.get(i).forward(x);
    return x.slice(1, 1);
  }

  /** Loads a folder in HF's layout (a ViTModel checkpoint, or the `vit.` part of one with a head). */
  static fromPretrained(dir: string, opts: ViTOptions & { strict?: boolean } = {}): ViTModel {
    return loadPretrained(dir, opts, VIT_CHECKPOINT, (config, weights, o) => {
      const headed = weights.names.some((k) => k.startsWith('vit.'));
      const base = (k: string) => (headed ? (k.startsWith('vit.') ? k.slice(4) : null) : k);
      const pooled = weights.names.some((k) => base(k)?.startsWith('pooler.'));
      const model = new ViTModel(config, { addPoolingLayer: pooled, ...o });
      // Keys outside `vit.` belong to the head, which this model does not have: HF drops them too.
      return { model, toModuleKey: (k) => { const b = base(k); return b === null ? null : vitKeyFromHF(b); } };
    });
  }

  /** Writes config.json and model.safetensors (or shards) as HF's save_pretrained does. */
  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['ViTModel']), vitKeyToHF, opts);
  }

  get family(): ModelFamily {
    return VIT;
  }

  get imageSize(): readonly [number, number] {
    return this.config.imageSize;
  }

  tokenStates(pixels: Tensor): Tensor {
    return this.forward(pixels).lastHiddenState;
  }

  imageEncoder(): ImageEncoder {
    return this;
  }

  imageTower(): ImageTowerLayout {
    return vitTower(this, '');
  }
}

/** The layout of a ViT encoder at `prefix` (empty, or 'vit.' under a head). */
export function vitTower(vit: ViTModel, prefix: string): ImageTowerLayout {
  const at = prefix.replace(/\.$/, '');
  return {
    prefixes: [at || 'embeddings', ...(at ? [] : ['encoder', 'layernorm', 'pooler'])],
    blocks: `${prefix}encoder.layers`,
    numBlocks: vit.config.numHiddenLayers,
    after: [`${prefix}layernorm`, ...(at ? [] : ['pooler'])],
    modules: [vit],
  };
}

export interface ViTClassificationOutput {
  /** [B, numLabels]. */
  logits: Tensor;
  /** The scalar loss when labels were given. */
  loss: Tensor | null;
  hiddenStates: Tensor[] | null;
}

/** ViT with a linear classifier on the final CLS token (HF's ViTForImageClassification). */
export class ViTForImageClassification extends Module implements ImageClassifier {
  readonly kind = 'image-classifier';
  readonly vit: ViTModel;
  readonly classifier: Linear | null;

  constructor(readonly config: ViTConfig, opts: ViTOptions = {}) {
    super();
    const init = opts.initWeights ?? true;
    this.vit = this.module('vit', new ViTModel(config, { ...opts, addPoolingLayer: false, initWeights: false }));
    this.classifier = config.numLabels > 0 ? this.module('classifier', new Linear(config.hiddenSize, config.numLabels, opts)) : null;
    if (init) initViTWeights(this, config, opts);
  }

  /**
   * Logits from the CLS token; with labels, the loss HF computes for the config's problem type
   * (cross-entropy for integer class labels [B], MSE for regression, BCE with logits for
   * multi-label float targets [B, numLabels]). Unless hidden states are asked for, the last
   * layer runs for the CLS row only (ViTModel.clsState): the same logits, less work.
   */
  forward(pixels: Tensor, opts: ViTForwardOptions & { labels?: Tensor | null } = {}): ViTClassificationOutput {
    const out = opts.outputHiddenStates ? this.vit.forward(pixels, opts) : null;
    const cls = out ? out.lastHiddenState.select(1, 0) : this.vit.clsState(pixels, opts);
    const logits = this.classifier ? this.classifier.forward(cls) : cls;
    let loss: Tensor | null = null;
    const labels = opts.labels;
    if (labels) {
      const problem = problemOf(this.config, labels);
      if (problem === 'single_label_classification') {
        loss = crossEntropy(logits.reshape(-1, this.config.numLabels), labels.reshape(-1));
      } else if (problem === 'regression') {
        const target = cast(labels, logits.dtype);
        const diff = this.config.numLabels === 1 ? logits.reshape(-1).sub(target.reshape(-1)) : logits.sub(target);
        loss = diff.square().mean();
      } else {
        loss = binaryCrossEntropyWithLogits(logits, cast(labels, logits.dtype));
      }
    }
    return { logits, loss, hiddenStates: out?.hiddenStates ?? null };
  }

  /** The patch tokens of the encoder; see ViTModel.patchFeatures. */
  patchFeatures(pixels: Tensor, opts: PatchFeatureOptions = {}): Tensor {
    return this.vit.patchFeatures(pixels, opts);
  }

  /**
   * Loads a folder in HF's layout. A checkpoint of the bare ViTModel (no `vit.` prefix) loads
   * into the encoder; its classifier is then missing, which is an error unless strict is false.
   */
  static fromPretrained(dir: string, opts: ViTOptions & { strict?: boolean } = {}): ViTForImageClassification {
    return loadPretrained(dir, opts, VIT_CHECKPOINT, (config, weights, o) => {
      const headed = weights.names.some((k) => k.startsWith('vit.'));
      return { model: new ViTForImageClassification(config, o), toModuleKey: (k) => vitKeyFromHF(headed ? k : `vit.${k}`) };
    });
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['ViTForImageClassification']), vitKeyToHF, opts);
  }

  get family(): ModelFamily {
    return VIT;
  }

  get labels(): readonly string[] {
    return this.config.labels;
  }

  get imageSize(): readonly [number, number] {
    return this.config.imageSize;
  }

  classify(pixels: Tensor, opts: ImageEncodeOptions = {}): Tensor {
    return this.forward(pixels, opts).logits;
  }

  imageEncoder(): ImageEncoder {
    return this.vit;
  }

  imageTower(): ImageTowerLayout {
    return vitTower(this.vit, 'vit.');
  }
}

/** config.json of a classifier of these sizes (a training config's model.custom). */
function sizedConfig(s: ModelSizes): HFConfig {
  return {
    architectures: ['ViTForImageClassification'],
    model_type: 'vit',
    hidden_size: s.width, num_hidden_layers: s.layers, num_attention_heads: s.heads, intermediate_size: Math.round(s.width * s.mlp_ratio),
    image_size: s.image_size, patch_size: s.patch_size,
    ...(s.labels ? labelFields(s.labels) : {}),
  };
}

export const VIT: ModelFamily = {
  modelType: 'vit',
  title: 'ViT',
  config: ViTConfig,
  architectures: { ViTModel, ViTForImageClassification },
  imageClassifier: 'ViTForImageClassification',
  imageProcessor: 'vit',
  sizedConfig,
};


