// SigLIP (Zhai et al. 2023) with Hugging Face parity: SiglipModel loads checkpoints in HF's
// layout and gives the numbers transformers gives.
//
//   image: pixels -> patch conv (no CLS token) + position embeddings -> pre-LN encoder
//          -> post_layernorm -> MAP head (a learned probe attends over the patches, then
//          layer norm + MLP residual) -> image features
//   text:  tokens + positions -> pre-LN encoder (bidirectional, no causal mask)
//          -> final_layer_norm -> last token -> head Linear -> text features
//   both L2-normalised; logits = text . image^T * exp(logit_scale) + logit_bias;
//   loss = mean over texts of sum over images of -log sigmoid(+-logit) (+ on the diagonal).
//
// Both encoders are the engine's TransformerEncoder, whose submodule names are SigLIP's, and the
// MAP head keeps nn.MultiheadAttention's packed in_proj_weight / in_proj_bias as parameters
// (sliced into q, k and v at run time), so every module key is the HF checkpoint name itself.
import { SIGLIP_INIT, siglipLoss, siglipSigmoidLoss } from '../nn/losses.js';
import { type HFConfig, type SaveHFOptions, loadPretrained, savePretrained } from '../io/hf.js';
import { Embedding, LayerNorm, Linear, MLP, type PatchDropoutOptions, checkPatchDropout, patchDropout } from '../nn/layers.js';
import { Module, type ModuleOptions, paramZeros } from '../nn/module.js';
import { TransformerEncoder, type TransformerBlockOptions } from '../nn/transformer.js';
import { fans, normal_, ones_, truncNormal_, xavierUniform_, zeros_ } from '../nn/init.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { conv2d, linear, scaledDotProductAttention } from '../tensor/ops/nn.js';
import { getDefaultGenerator } from '../tensor/random.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { act, bool, configClass, int, num, omitWhen, sub } from './config_table.js';
import type { DualEncoder, ImageEncodeOptions, ImageTowerLayout, ModelFamily, ModelSizes } from './family.js';
import { interpolateBicubic } from './interpolate.js';

const checkHeads = (c: { hiddenSize: number; numAttentionHeads: number }, label: string): void => {
  if (c.hiddenSize % c.numAttentionHeads !== 0) {
    throw new Error(`${label}: hidden_size ${c.hiddenSize} is not a multiple of num_attention_heads ${c.numAttentionHeads}`);
  }
};

/** SigLIP's text tower, with HF's defaults (google/siglip-base-patch16-224). */
export class SiglipTextConfig extends configClass({
  name: 'SiglipTextConfig',
  modelType: 'siglip_text_model',
  nested: true,
  fields: {
    vocabSize: int('vocab_size', 32000),
    hiddenSize: int('hidden_size', 768),
    intermediateSize: int('intermediate_size', 3072),
    numHiddenLayers: int('num_hidden_layers', 12, { min: 0 }),
    numAttentionHeads: int('num_attention_heads', 12),
    maxPositionEmbeddings: int('max_position_embeddings', 64),
    hiddenAct: act('hidden_act', 'gelu_pytorch_tanh'),
    layerNormEps: num('layer_norm_eps', 1e-6),
    attentionDropout: num('attention_dropout', 0),
    padTokenId: int('pad_token_id', 1, { min: 0 }),
    bosTokenId: int('bos_token_id', 49406, { min: 0 }),
    eosTokenId: int('eos_token_id', 49407, { min: 0 }),
    /** Width of the text head's output. */
    projectionSize: int('projection_size', (c) => c.hiddenSize),
  },
  check: checkHeads,
}) {}

/** SigLIP's vision tower, with HF's defaults (google/siglip-base-patch16-224). */
export class SiglipVisionConfig extends configClass({
  name: 'SiglipVisionConfig',
  modelType: 'siglip_vision_model',
  nested: true,
  fields: {
    hiddenSize: int('hidden_size', 768),
    intermediateSize: int('intermediate_size', 3072),
    numHiddenLayers: int('num_hidden_layers', 12, { min: 0 }),
    numAttentionHeads: int('num_attention_heads', 12),
    numChannels: int('num_channels', 3),
    /** Square images of this many pixels a side. */
    imageSize: int('image_size', 224),
    patchSize: int('patch_size', 16),
    hiddenAct: act('hidden_act', 'gelu_pytorch_tanh'),
    layerNormEps: num('layer_norm_eps', 1e-6),
    attentionDropout: num('attention_dropout', 0),
    /** The MAP head (written only when off, as HF). */
    useHead: omitWhen(bool('vision_use_head', true), true),
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

  get numPatches(): number {
    return this.gridSize ** 2;
  }
}

export type SiglipTextConfigOptions = ConstructorParameters<typeof SiglipTextConfig>[0];
export type SiglipVisionConfigOptions = ConstructorParameters<typeof SiglipVisionConfig>[0];

/** SiglipModel's config: the two towers and initializer_factor. */
export class SiglipConfig extends configClass({
  name: 'SiglipConfig',
  modelType: 'siglip',
  fields: {
    initializerFactor: num('initializer_factor', 1),
    textConfig: sub<SiglipTextConfig, SiglipTextConfigOptions>('text_config', SiglipTextConfig),
    visionConfig: sub<SiglipVisionConfig, SiglipVisionConfigOptions>('vision_config', SiglipVisionConfig),
  },
}) {}

export type SiglipConfigOptions = ConstructorParameters<typeof SiglipConfig>[0];

// ---------------------------------------------------------------------------------------------
// HF names <-> module names

/**
 * A module key -> its HF checkpoint name. The modules carry HF's names (the encoders' layers are
 * named as SigLIP's, and the MAP head keeps the packed in_proj), so this is the identity; it is
 * kept as the one place a renaming would go.
 */
export function siglipKeyToHF(key: string): string {
  return key;
}

/** An HF checkpoint (or transformers 5 parameter) name -> the module key; see siglipKeyToHF. */
export function siglipKeyFromHF(key: string): string {
  return key;
}

// ---------------------------------------------------------------------------------------------
// Vision tower

/** The patch convolution (kernel = stride = patch size), registered as HF's nn.Conv2d. */
class PatchConv extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(config: SiglipVisionConfig, opts: ModuleOptions) {
    super();
    const p = config.patchSize;
    this.weight = this.param('weight', paramZeros([config.hiddenSize, config.numChannels, p, p], opts));
    this.bias = this.param('bias', paramZeros([config.hiddenSize], opts));
  }
}

/** pixels [B, C, H, W] -> patch embeddings + position embeddings [B, patches, D] (no CLS token). */
export class SiglipVisionEmbeddings extends Module {
  readonly patchEmbedding: PatchConv;
  readonly positionEmbedding: Embedding;

  constructor(readonly config: SiglipVisionConfig, opts: ModuleOptions = {}) {
    super();
    this.patchEmbedding = this.module('patch_embedding', new PatchConv(config, opts));
    this.positionEmbedding = this.module('position_embedding', new Embedding(config.numPatches, config.hiddenSize, opts));
  }

  /**
   * Without interpolatePosEncoding the image must have the configured size; with it, any size of
   * at least one patch (rows and columns past the last whole patch are dropped, as the strided
   * convolution does).
   */
  forward(pixels: Tensor, interpolatePosEncoding = false): Tensor {
    const { numChannels: C, imageSize, hiddenSize: D, patchSize: p } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`SigLIP: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (!interpolatePosEncoding && (H !== imageSize || W !== imageSize)) {
      throw new Error(`SigLIP: input image size (${H}*${W}) doesn't match the model (${imageSize}*${imageSize}); ` +
        'pass interpolatePosEncoding: true to run at other sizes');
    }
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    if (gh < 1 || gw < 1) throw new Error(`SigLIP: image ${H}x${W} is smaller than one ${p}x${p} patch`);
    const x = H === gh * p && W === gw * p ? pixels : pixels.slice(2, 0, gh * p).slice(3, 0, gw * p);
    const y = conv2d(x, this.patchEmbedding.weight, this.patchEmbedding.bias); // [B, D, gh, gw], a view of [B, gh, gw, D]
    const patches = y.permute(0, 2, 3, 1).reshape(B, gh * gw, D);
    const pos = interpolatePosEncoding ? this.interpolatePosEncoding(H, W) : this.positionEmbedding.weight;
    return patches.add(pos);
  }

  /**
   * The position table [patches, D] for an H x W image, as HF's interpolate_pos_encoding: the
   * table itself when the patch count is unchanged and the image square, else the grid resized
   * bicubically (align_corners=False) to the new grid. Differentiable.
   */
  interpolatePosEncoding(H: number, W: number): Tensor {
    const { patchSize: p, gridSize: g0, hiddenSize: D } = this.config;
    const gh = Math.floor(H / p);
    const gw = Math.floor(W / p);
    const table = this.positionEmbedding.weight;
    if (gh * gw === g0 * g0 && H === W) return table;
    const grid = table.reshape(g0, g0, D).permute(2, 0, 1);
    return interpolateBicubic(grid, [gh, gw]).permute(1, 2, 0).reshape(gh * gw, D);
  }
}

/** nn.MultiheadAttention's parameters: packed q/k/v input projection and the output projection. */
export class PackedMultiheadAttention extends Module {
  readonly inProjWeight: Tensor;
  readonly inProjBias: Tensor;
  readonly outProj: Linear;
  readonly headDim: number;

  constructor(readonly embedDim: number, readonly numHeads: number, opts: ModuleOptions = {}) {
    super();
    this.headDim = embedDim / numHeads;
    this.inProjWeight = this.param('in_proj_weight', paramZeros([3 * embedDim, embedDim], opts));
    this.inProjBias = this.param('in_proj_bias', paramZeros([3 * embedDim], opts));
    this.outProj = this.module('out_proj', new Linear(embedDim, embedDim, opts));
  }

  /** Queries [B, Tq, D] attend over keys = values = context [B, Tk, D]; no masks. */
  forward(query: Tensor, context: Tensor): Tensor {
    const D = this.embedDim;
    const [B, Tq] = query.shape as [number, number];
    const Tk = context.shape[1]!;
    const q = linear(query, this.inProjWeight.slice(0, 0, D), this.inProjBias.slice(0, 0, D));
    // Keys and values from one matmul over the context.
    const kv = linear(context, this.inProjWeight.slice(0, D), this.inProjBias.slice(0, D));
    const heads = (t: Tensor, T: number) => t.reshape(B, T, this.numHeads, this.headDim).permute(0, 2, 1, 3);
    const o = scaledDotProductAttention(heads(q, Tq), heads(kv.slice(2, 0, D), Tk), heads(kv.slice(2, D), Tk));
    return this.outProj.forward(o.permute(0, 2, 1, 3).reshape(B, Tq, D));
  }
}

/** Multihead attention pooling: a learned probe attends over the tokens, then a layer norm + MLP residual. */
export class SiglipMultiheadAttentionPoolingHead extends Module {
  readonly probe: Tensor;
  readonly attention: PackedMultiheadAttention;
  readonly layernorm: LayerNorm;
  readonly mlp: MLP;

  constructor(readonly config: SiglipVisionConfig, opts: ModuleOptions = {}) {
    super();
    const D = config.hiddenSize;
    this.probe = this.param('probe', paramZeros([1, 1, D], opts));
    this.attention = this.module('attention', new PackedMultiheadAttention(D, config.numAttentionHeads, opts));
    this.layernorm = this.module('layernorm', new LayerNorm(D, { ...opts, eps: config.layerNormEps }));
    this.mlp = this.module('mlp', new MLP(D, config.intermediateSize, { ...opts, act: config.hiddenAct }));
  }

  /** [B, T, D] -> [B, D]. */
  forward(hidden: Tensor): Tensor {
    const [B, , D] = hidden.shape as [number, number, number];
    const h = this.attention.forward(this.probe.expand(B, 1, D), hidden);
    return h.add(this.mlp.forward(this.layernorm.forward(h))).select(1, 0);
  }
}

export interface SiglipTowerOutput {
  /** [B, T, D], after the final layer norm. */
  lastHiddenState: Tensor;
  /** Vision: the MAP head's output [B, D] (null without the head); text: the head on the last token [B, projectionSize]. */
  poolerOutput: Tensor | null;
  /** With outputHiddenStates: the embeddings, then each layer's output (before the final norm). */
  hiddenStates: Tensor[] | null;
}

export interface SiglipOptions extends ModuleOptions {
  /**
   * Draw initial weights as HF's _init_weights does (lecun normal, xavier uniform for attention
   * and MLPs, ...); default true. fromPretrained skips it when every weight comes from the file.
   */
  initWeights?: boolean;
}

function encoderOptions(c: { intermediateSize: number; hiddenAct: string; layerNormEps: number; attentionDropout: number }, opts: ModuleOptions): TransformerBlockOptions {
  return { ...opts, mlpDim: c.intermediateSize, act: c.hiddenAct, eps: c.layerNormEps, bias: true, dropout: 0, attnDropout: c.attentionDropout, causal: false };
}

export interface SiglipVisionForwardOptions {
  interpolatePosEncoding?: boolean;
  outputHiddenStates?: boolean;
  /**
   * FLIP's patch dropout, in training mode only (ignored in eval mode): each image keeps a random
   * round((1 - ratio) * patches) of its patch tokens.
   */
  patchDropout?: PatchDropoutOptions;
}

/** HF's SiglipVisionTransformer: embeddings, encoder, post_layernorm, MAP head. */
export class SiglipVisionTransformer extends Module {
  readonly embeddings: SiglipVisionEmbeddings;
  readonly encoder: TransformerEncoder;
  readonly postLayernorm: LayerNorm;
  readonly head: SiglipMultiheadAttentionPoolingHead | null;

  constructor(readonly config: SiglipVisionConfig, opts: ModuleOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new SiglipVisionEmbeddings(config, opts));
    this.encoder = this.module('encoder', new TransformerEncoder(config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads,
      encoderOptions(config, opts)));
    this.postLayernorm = this.module('post_layernorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
    this.head = config.useHead ? this.module('head', new SiglipMultiheadAttentionPoolingHead(config, opts)) : null;
  }

  forward(pixels: Tensor, opts: SiglipVisionForwardOptions = {}): SiglipTowerOutput {
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    let tokens = this.embeddings.forward(pixels, opts.interpolatePosEncoding);
    if (opts.patchDropout) {
      checkPatchDropout(opts.patchDropout, 'SigLIP');
      // No class token: the MAP head pools over whichever patches were kept.
      if (this.training) tokens = patchDropout(tokens, 0, opts.patchDropout);
    }
    const x = this.encoder.forward(tokens, { hiddenStates });
    const lastHiddenState = this.postLayernorm.forward(x);
    return { lastHiddenState, poolerOutput: this.head?.forward(lastHiddenState) ?? null, hiddenStates: hiddenStates ?? null };
  }
}

// ---------------------------------------------------------------------------------------------
// Text tower

/** Token embeddings + absolute position embeddings (positions 0..T-1). */
export class SiglipTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;

  constructor(readonly config: SiglipTextConfig, opts: ModuleOptions = {}) {
    super();
    this.tokenEmbedding = this.module('token_embedding', new Embedding(config.vocabSize, config.hiddenSize, opts));
    this.positionEmbedding = this.module('position_embedding', new Embedding(config.maxPositionEmbeddings, config.hiddenSize, opts));
  }

  /** ids [B, T] (int32 or int64) -> [B, T, D]. */
  forward(ids: Tensor): Tensor {
    if (ids.ndim !== 2) throw new Error(`SigLIP: input_ids must be [B, T], got [${ids.shape}]`);
    const T = ids.shape[1]!;
    const max = this.config.maxPositionEmbeddings;
    if (T > max) throw new Error(`SigLIP: sequence length ${T} exceeds max_position_embeddings ${max}`);
    if (T < 1) throw new Error('SigLIP: input_ids has no tokens');
    return this.tokenEmbedding.forward(ids).add(this.positionEmbedding.weight.slice(0, 0, T));
  }
}

/** HF's SiglipTextTransformer: embeddings, bidirectional encoder, final_layer_norm, head on the last token. */
export class SiglipTextTransformer extends Module {
  readonly embeddings: SiglipTextEmbeddings;
  readonly encoder: TransformerEncoder;
  readonly finalLayerNorm: LayerNorm;
  readonly head: Linear;

  constructor(readonly config: SiglipTextConfig, opts: ModuleOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new SiglipTextEmbeddings(config, opts));
    this.encoder = this.module('encoder', new TransformerEncoder(config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads,
      encoderOptions(config, opts)));
    this.finalLayerNorm = this.module('final_layer_norm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
    this.head = this.module('head', new Linear(config.hiddenSize, config.projectionSize, opts));
  }

  /**
   * attentionMask [B, T]: nonzero where a token may be attended to (keys only, as HF). Pooling
   * takes the last position whatever the mask: SigLIP pads to a fixed length and is trained so.
   */
  forward(ids: Tensor, opts: { attentionMask?: Tensor | null; outputHiddenStates?: boolean } = {}): SiglipTowerOutput {
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const x = this.encoder.forward(this.embeddings.forward(ids), { hiddenStates, keyPadding: opts.attentionMask ?? null, causal: false });
    const lastHiddenState = this.finalLayerNorm.forward(x);
    const T = lastHiddenState.shape[1]!;
    return { lastHiddenState, poolerOutput: this.head.forward(lastHiddenState.select(1, T - 1)), hiddenStates: hiddenStates ?? null };
  }
}

// ---------------------------------------------------------------------------------------------
// The dual encoder

export interface SiglipForwardOptions extends SiglipVisionForwardOptions {
  attentionMask?: Tensor | null;
  /** Compute the pairwise sigmoid loss (texts and images must be paired: equal batch sizes). */
  returnLoss?: boolean;
}

export interface SiglipOutput {
  /** [images, texts]. */
  logitsPerImage: Tensor;
  /** [texts, images]. */
  logitsPerText: Tensor;
  /** L2-normalised [texts, projectionSize]. */
  textEmbeds: Tensor;
  /** L2-normalised [images, D]. */
  imageEmbeds: Tensor;
  loss: Tensor | null;
  textOutput: SiglipTowerOutput;
  visionOutput: SiglipTowerOutput;
}

const l2Normalize = (x: Tensor): Tensor => x.div(x.square().sum(-1, true).sqrt());

/** HF's _init_weights for SigLIP (children first, so a block's own rule overrides its layers'). */
function initSiglipWeights(root: Module, opts: ModuleOptions): void {
  const g = opts.generator ?? getDefaultGenerator();
  // lecun_normal_: truncated normal in [-2, 2] standard units, rescaled to variance 1 / fan_in.
  const lecun = (t: Tensor) => {
    const std = Math.sqrt(1 / fans(t.shape).fanIn) / 0.87962566103423978;
    truncNormal_(t, 0, std, -2 * std, 2 * std, g);
  };
  root.apply((m) => {
    if (m instanceof SiglipVisionEmbeddings) {
      normal_(m.positionEmbedding.weight, 0, 1 / Math.sqrt(m.config.hiddenSize), g);
    } else if (m instanceof Embedding) {
      normal_(m.weight, 0, Math.sqrt(1 / fans(m.weight.shape).fanIn), g);
    } else if (m instanceof SiglipMultiheadAttentionPoolingHead) {
      xavierUniform_(m.probe, 1, g);
      xavierUniform_(m.attention.inProjWeight, 1, g);
      zeros_(m.attention.inProjBias);
    } else if (m instanceof MLP) {
      xavierUniform_(m.fc1.weight, 1, g);
      xavierUniform_(m.fc2.weight, 1, g);
      normal_(m.fc1.bias!, 0, 1e-6, g);
      normal_(m.fc2.bias!, 0, 1e-6, g);
    } else if (m instanceof SiglipModel) {
      zeros_(m.logitScale); // log(1)
      zeros_(m.logitBias);
    } else if (m instanceof Linear || m instanceof PatchConv) {
      lecun(m.weight);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof LayerNorm) {
      if (m.weight) ones_(m.weight);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof MultiHeadAttention) {
      for (const l of [m.qProj, m.kProj, m.vProj, m.outProj]) {
        xavierUniform_(l.weight, 1, g);
        if (l.bias) zeros_(l.bias);
      }
    }
  });
}

/** SigLIP's dual encoder (HF's SiglipModel). */
export class SiglipModel extends Module implements DualEncoder {
  readonly kind = 'dual-encoder';
  readonly contrastiveLoss = 'siglip';
  readonly textModel: SiglipTextTransformer;
  readonly visionModel: SiglipVisionTransformer;
  readonly logitScale: Tensor;
  readonly logitBias: Tensor;

  constructor(readonly config: SiglipConfig, opts: SiglipOptions = {}) {
    super();
    if (!config.visionConfig.useHead) throw new Error('SiglipModel: the vision tower needs its head (vision_use_head) for image features');
    this.textModel = this.module('text_model', new SiglipTextTransformer(config.textConfig, opts));
    this.visionModel = this.module('vision_model', new SiglipVisionTransformer(config.visionConfig, opts));
    this.logitScale = this.param('logit_scale', paramZeros([1], opts));
    this.logitBias = this.param('logit_bias', paramZeros([1], opts));
    if (config.textConfig.projectionSize !== config.visionConfig.hiddenSize) {
      throw new Error(`SiglipModel: text projection_size ${config.textConfig.projectionSize} differs from the vision hidden_size ` +
        `${config.visionConfig.hiddenSize}; their embeddings could not be compared`);
    }
    if (opts.initWeights ?? true) initSiglipWeights(this, opts);
  }

  /** Text features [B, projectionSize]: the text head on the last token (not normalised). */
  getTextFeatures(ids: Tensor, opts: { attentionMask?: Tensor | null } = {}): Tensor {
    return this.textModel.forward(ids, opts).poolerOutput!;
  }

  /** Image features [B, D]: the MAP head's output (not normalised). */
  getImageFeatures(pixels: Tensor, opts: { interpolatePosEncoding?: boolean } = {}): Tensor {
    return this.visionModel.forward(pixels, opts).poolerOutput!;
  }

  forward(ids: Tensor, pixels: Tensor, opts: SiglipForwardOptions = {}): SiglipOutput {
    const visionOutput = this.visionModel.forward(pixels, opts);
    const textOutput = this.textModel.forward(ids, opts);
    const imageEmbeds = l2Normalize(visionOutput.poolerOutput!);
    const textEmbeds = l2Normalize(textOutput.poolerOutput!);
    const logitsPerText = textEmbeds.matmul(imageEmbeds.transpose(0, 1)).mul(this.logitScale.exp()).add(this.logitBias);
    const logitsPerImage = logitsPerText.transpose(0, 1);
    const loss = opts.returnLoss ? siglipLoss(logitsPerText) : null;
    return { logitsPerImage, logitsPerText, textEmbeds, imageEmbeds, loss, textOutput, visionOutput };
  }

  /** Loads a folder in HF's layout (a SiglipModel checkpoint); returns the model in eval mode. */
  static fromPretrained(dir: string, opts: SiglipOptions & { strict?: boolean } = {}): SiglipModel {
    return loadPretrained(dir, opts, { parseConfig: (json, where) => SiglipConfig.fromHF(json, where), toCheckpointKey: siglipKeyToHF },
      (config, _weights, o) => ({ model: new SiglipModel(config, o), toModuleKey: siglipKeyFromHF }));
  }

  /** Writes config.json and model.safetensors (or shards) as HF's save_pretrained does. */
  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['SiglipModel']), siglipKeyToHF, opts);
  }

  get family(): ModelFamily {
    return SIGLIP;
  }

  get imageEmbedDim(): number {
    return this.config.visionConfig.hiddenSize;
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
    return this.visionModel.forward(pixels, { patchDropout: opts.patchDropout }).poolerOutput!;
  }

  encodeText(inputIds: Tensor): Tensor {
    return this.getTextFeatures(inputIds);
  }

  pairLoss(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor {
    return siglipSigmoidLoss(imageEmbeds, textEmbeds, this.logitScale, this.logitBias);
  }

  pairLogits(imageEmbeds: Tensor, textEmbeds: Tensor): { logits: Tensor; probs: Tensor } {
    const logits = imageEmbeds.matmul(textEmbeds.transpose(0, 1)).mul(this.logitScale.exp()).add(this.logitBias);
    return { logits, probs: logits.sigmoid() };
  }

  /** The paper's t' = log 10, b = -10 (loading's init zeroes both). */
  initForTraining(): void {
    noGrad(() => {
      this.logitScale.fill_(SIGLIP_INIT.logitScale);
      this.logitBias.fill_(SIGLIP_INIT.logitBias);
    });
  }

  imageTower(): ImageTowerLayout {
    return {
      prefixes: ['vision_model'], blocks: 'vision_model.encoder.layers', numBlocks: this.config.visionConfig.numHiddenLayers,
      after: ['vision_model.post_layernorm', ...(this.visionModel.head ? ['vision_model.head'] : [])], modules: [this.visionModel],
    };
  }
}

/** config.json of a SigLIP of these sizes (a training config's model.custom; byte-level text ids). */
function sizedConfig(s: ModelSizes): HFConfig {
  const mlp = (w: number) => Math.round(w * s.mlp_ratio);
  return {
    architectures: ['SiglipModel'],
    model_type: 'siglip',
    text_config: {
      vocab_size: s.vocab_size, hidden_size: s.text_width, intermediate_size: mlp(s.text_width), num_hidden_layers: s.text_layers,
      num_attention_heads: s.text_heads, max_position_embeddings: s.context_length, projection_size: s.width,
      pad_token_id: 0, bos_token_id: 256, eos_token_id: 257,
    },
    vision_config: {
      hidden_size: s.width, intermediate_size: mlp(s.width), num_hidden_layers: s.layers, num_attention_heads: s.heads,
      image_size: s.image_size, patch_size: s.patch_size,
    },
  };
}

export const SIGLIP: ModelFamily = {
  modelType: 'siglip',
  title: 'SigLIP',
  config: SiglipConfig,
  architectures: { SiglipModel },
  imageProcessor: 'siglip',
  sizedConfig,
};
