// ViT-MAE (He et al. 2021, masked autoencoders) with Hugging Face parity: ViTMAEModel and
// ViTMAEForPreTraining load checkpoints in HF's layout and give the numbers transformers gives.
//
//   pixels -> patch conv -> + fixed sin-cos positions -> keep a random (1 - mask_ratio) of the
//     patches per sample -> [CLS] + kept patches -> ViT encoder -> layer norm
//   decoder: linear to the decoder width -> mask tokens for the dropped patches, unshuffled
//     back into place -> + fixed sin-cos positions -> transformer layers -> norm -> pixels per patch
//   loss: mean squared error on the dropped patches, against per-patch normalised pixels
//
// The encoder runs on the kept patches only, which is what makes MAE pre-training cheap. The
// masking is a per-sample shuffle: argsort of a noise tensor (given, or drawn uniform in [0, 1)).
// Both transformer stacks are the engine's TransformerEncoder, named as in HF through vit.ts's
// key map; the patch embedding is vit.ts's. At the end: the encoder turned into a ViTModel or
// ViTForImageClassification, where fine-tuning and linear probing start.
import { type HFConfig, type SaveHFOptions, loadPretrained, savePretrained, type CheckpointFormat } from '../io/hf.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { Module, type ModuleOptions, type StateDict, paramZeros } from '../nn/module.js';
import { TransformerEncoder, type TransformerBlockOptions } from '../nn/transformer.js';
import { normal_, ones_, truncNormal_, uniform_, zeros_ } from '../nn/init.js';
import { argsort, concat, gather } from '../tensor/ops/indexing.js';
import { cast } from '../tensor/ops/elementwise.js';
import { type BatchShard, type Generator, getDefaultGenerator, rand, WHOLE_BATCH } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type Field, bool, configClass, int } from './config_table.js';
import type { ImageClassifier, ImageEncoder, ImageTowerLayout, MaskedImageModel, ModelFamily, ModelSizes, OtherModel } from './family.js';
import { VIT_ENCODER_FIELDS, ViTConfig, ViTForImageClassification, ViTModel, ViTPatchEmbeddings, vitKeyFromHF, vitKeyToHF } from './vit.js';

/** mask_ratio, strictly between 0 and 1: any number (NaN too) that is not gets this range error. */
const maskRatio: Field<number> = {
  keys: ['mask_ratio'],
  read: (c) => {
    const v = typeof c.raw.mask_ratio === 'number' ? c.raw.mask_ratio : c.number('mask_ratio', 0.75);
    if (!(v > 0 && v < 1)) throw new Error(`${c.label}: mask_ratio must lie strictly between 0 and 1, got ${v}`);
    return v;
  },
  write: (v) => ({ mask_ratio: v }),
};

/** ViT-MAE's hyperparameters: HF's config.json keys and defaults (facebook/vit-mae-base). */
export class ViTMAEConfig extends configClass({
  name: 'ViTMAEConfig',
  modelType: 'vit_mae',
  fields: {
    // The encoder's (hidden_act also serves the decoder); images a whole number of patches each way.
    ...VIT_ENCODER_FIELDS,
    decoderNumAttentionHeads: int('decoder_num_attention_heads', 16),
    decoderHiddenSize: int('decoder_hidden_size', 512),
    decoderNumHiddenLayers: int('decoder_num_hidden_layers', 8, { min: 0 }),
    decoderIntermediateSize: int('decoder_intermediate_size', 2048),
    /** Fraction of patches dropped before the encoder. */
    maskRatio,
    /** Compare against each patch's pixels normalised to zero mean and unit variance. */
    normPixLoss: bool('norm_pix_loss', false),
  },
  check: (c, label) => {
    for (const [name, width, heads] of [['hidden_size', c.hiddenSize, c.numAttentionHeads],
      ['decoder_hidden_size', c.decoderHiddenSize, c.decoderNumAttentionHeads]] as const) {
      if (width % heads !== 0) throw new Error(`${label}: ${name} ${width} is not a multiple of its number of attention heads ${heads}`);
      // Half the sin-cos table encodes rows, half columns, each as sines and cosines.
      if (width % 4 !== 0) throw new Error(`${label}: ${name} ${width} must be a multiple of 4 for the 2-D sin-cos position embeddings`);
    }
    const [[H, W], [ph, pw]] = [c.imageSize, c.patchSize];
    if (H % ph !== 0 || W % pw !== 0) throw new Error(`${label}: image_size [${H}, ${W}] is not a whole number of patches of [${ph}, ${pw}]`);
  },
}) {
  /** Patches per column and per row. */
  get gridSize(): [number, number] {
    return [this.imageSize[0] / this.patchSize[0], this.imageSize[1] / this.patchSize[1]];
  }

  get numPatches(): number {
    return this.gridSize[0] * this.gridSize[1];
  }

  /** Patches the encoder sees per image (HF's int(L * (1 - mask_ratio))). */
  get numKept(): number {
    return Math.floor(this.numPatches * (1 - this.maskRatio));
  }

  /** The encoder's hyperparameters as a ViTConfig (for the shared patch embedding); see maeEncoderConfig. */
  toViTConfig(): ViTConfig {
    return maeEncoderConfig(this);
  }
}

export type ViTMAEConfigOptions = ConstructorParameters<typeof ViTMAEConfig>[0];

// ---------------------------------------------------------------------------------------------
// Fixed position embeddings

/**
 * MAE's fixed 2-D sin-cos table [1 + gh*gw, dim] (row 0, for [CLS], is zeros), computed in
 * float64 and rounded to float32 as HF's get_2d_sincos_pos_embed does. For the patch at row r,
 * column c: the first half of the features encodes c, the second half r, each as
 * [sin(p * w_k) for k < dim/4, cos(p * w_k) for k < dim/4] with w_k = 10000^(-k / (dim/4)).
 */
export function sincosPositionTable(dim: number, grid: readonly [number, number]): Float32Array {
  if (dim % 4 !== 0) throw new Error(`sincosPositionTable: dim ${dim} must be a multiple of 4`);
  const [gh, gw] = grid;
  const quarter = dim / 4;
  const omega = Array.from({ length: quarter }, (_, k) => 1 / 10000 ** (k / quarter));
  const out = new Float32Array((1 + gh * gw) * dim);
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const row = out.subarray((1 + r * gw + c) * dim);
      for (const [half, p] of [[0, c], [1, r]] as const) {
        for (let k = 0; k < quarter; k++) {
          row[half * 2 * quarter + k] = Math.sin(p * omega[k]!);
          row[half * 2 * quarter + quarter + k] = Math.cos(p * omega[k]!);
        }
      }
    }
  }
  return out;
}

function positionBuffer(dim: number, grid: [number, number], opts: ModuleOptions): Tensor {
  return tensor(sincosPositionTable(dim, grid), { shape: [1, 1 + grid[0] * grid[1], dim], backend: opts.backend });
}

// ---------------------------------------------------------------------------------------------
// HF names <-> module names

/**
 * A module key -> its name in HF checkpoints. The decoder's layers go where transformers 5
 * save_pretrained writes them (decoder.decoder_encoder.layer.N with ViT's on-disk layer names).
 */
export function vitMaeKeyToHF(key: string): string {
  const m = /^decoder\.encoder\.(layers\..+)$/.exec(key);
  if (m) return `decoder.decoder_${vitKeyToHF(`encoder.${m[1]}`)}`;
  return vitKeyToHF(key);
}


/**
 * An HF name -> the module key. Decoder layers are accepted as decoder.decoder_encoder.layer.N
 * (what transformers 5 writes), decoder.decoder_layers.N with on-disk names (older
 * checkpoints such as facebook/vit-mae-base) and decoder.decoder_layers.N with transformers 5
 * module names (its gradients); the encoder as vitKeyFromHF accepts it. Unknown keys come back
 * unchanged.
 */
export function vitMaeKeyFromHF(key: string): string {
  let m = /^decoder\.decoder_encoder\.layer\.(\d+\..+)$/.exec(key);
  if (m) {
    const k = vitKeyFromHF(`encoder.layer.${m[1]}`);
    return k.startsWith('encoder.layers.') ? `decoder.${k}` : key;
  }
  m = /^decoder\.decoder_layers\.(\d+\..+)$/.exec(key);
  if (m) {
    let k = vitKeyFromHF(`layers.${m[1]}`);
    if (!k.startsWith('encoder.layers.')) k = vitKeyFromHF(`encoder.layer.${m[1]}`);
    return k.startsWith('encoder.layers.') ? `decoder.${k}` : key;
  }
  return vitKeyFromHF(key);
}

/** Fixed buffers a checkpoint may leave out (they are recomputed then). */
const FIXED_BUFFERS = /(^|\.)(embeddings\.position_embeddings|decoder\.decoder_pos_embed)$/;

/** How ViTMAE checkpoints read: the config and the key names. */
const VIT_MAE_CHECKPOINT: CheckpointFormat<ViTMAEConfig> = {
  parseConfig: (json, where) => ViTMAEConfig.fromHF(json, where),
  toCheckpointKey: vitMaeKeyToHF,
  // The fixed position tables may be absent from the file: they keep their computed values.
  optionalKeys: FIXED_BUFFERS,
};

// ---------------------------------------------------------------------------------------------
// Modules

export interface Masking {
  /** [B, 1 + kept, D]: [CLS] then the kept patches, in the order of the shuffle. */
  embeddings: Tensor;
  /** [B, patches] float32: 1 where the patch was dropped, 0 where kept. */
  mask: Tensor;
  /** [B, patches] int32: where each patch sits in the shuffled order (argsort of the shuffle). */
  idsRestore: Tensor;
}

/** Patch embeddings + fixed positions, random masking, then [CLS] (HF's ViTMAEEmbeddings). */
export class ViTMAEEmbeddings extends Module {
  readonly clsToken: Tensor;
  readonly patchEmbeddings: ViTPatchEmbeddings;
  readonly positionEmbeddings: Tensor;

  constructor(readonly config: ViTMAEConfig, opts: ModuleOptions = {}) {
    super();
    this.clsToken = this.param('cls_token', paramZeros([1, 1, config.hiddenSize], opts));
    this.patchEmbeddings = this.module('patch_embeddings', new ViTPatchEmbeddings(config.toViTConfig(), opts));
    // HF keeps it as a frozen parameter; here it is state that is saved but never trained.
    this.positionEmbeddings = this.buffer('position_embeddings', positionBuffer(config.hiddenSize, config.gridSize, opts));
  }

  /**
   * pixels [B, C, H, W] at the configured size; noise [B, patches] decides the shuffle
   * (smallest noise kept first), drawn uniform in [0, 1) from `generator` when not given.
   */
  forward(pixels: Tensor, noise?: Tensor | null, generator?: Generator, shard: BatchShard = WHOLE_BATCH): Masking {
    const { numChannels: C, imageSize, hiddenSize: D } = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`ViTMAE: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (H !== imageSize[0] || W !== imageSize[1]) {
      throw new Error(`ViTMAE: input image size (${H}*${W}) doesn't match the model (${imageSize[0]}*${imageSize[1]})`);
    }
    const L = this.config.numPatches;
    const x = this.patchEmbeddings.forward(pixels).add(this.positionEmbeddings.slice(1, 1));
    // Drawn for every row of the global batch, this shard's rows kept (see BatchShard).
    noise ??= rand([B, shard.count, L], { generator, backend: x.backend }).slice(1, shard.index, shard.index + 1).reshape(B, L);
    const { kept, mask, idsRestore } = randomMasking(x, this.config.numKept, noise);
    const cls = this.clsToken.add(this.positionEmbeddings.slice(1, 0, 1)).expand(B, 1, D);
    return { embeddings: concat([cls, kept], 1), mask, idsRestore };
  }
}

/**
 * Keeps `keep` tokens of x [B, L, D] per sample: those with the smallest noise, in order of
 * increasing noise. Differentiable in x (a gather).
 */
export function randomMasking(x: Tensor, keep: number, noise: Tensor): { kept: Tensor; mask: Tensor; idsRestore: Tensor } {
  const [B, L, D] = x.shape as [number, number, number];
  if (noise.ndim !== 2 || noise.shape[0] !== B || noise.shape[1] !== L) {
    throw new Error(`ViTMAE: noise must be [${B}, ${L}] (batch, patches), got [${noise.shape}]`);
  }
  const idsShuffle = argsort(noise, 1);
  // The inverse permutation; float32 holds these small indices exactly.
  const idsRestore = argsort(cast(idsShuffle, 'float32'), 1);
  const idsKeep = idsShuffle.slice(1, 0, keep).unsqueeze(-1).expand(B, keep, D);
  const kept = gather(x, 1, idsKeep);
  const mask = cast(idsRestore.ge(keep), x.dtype);
  return { kept, mask, idsRestore };
}

function blockOptions(config: ViTMAEConfig, opts: ModuleOptions, mlpDim: number): TransformerBlockOptions {
  return {
    ...opts,
    init: false,
    mlpDim,
    act: config.hiddenAct,
    eps: config.layerNormEps,
    bias: true,
    qkvBias: config.qkvBias,
    dropout: config.hiddenDropoutProb,
    attnDropout: config.attentionProbsDropoutProb,
  };
}

export interface ViTMAEOptions extends ModuleOptions {
  /**
   * Draw initial weights as HF does (normal with initializer_range, zero biases, Xavier-uniform
   * patch projection); default true. fromPretrained skips it when every weight comes from the file.
   */
  initWeights?: boolean;
}

export interface ViTMAEForwardOptions {
  /** [B, patches]: decides which patches are kept (the smallest); default uniform noise. */
  noise?: Tensor | null;
  /** Draws the default noise; default the global generator. */
  generator?: Generator;
  /** The rows of the global batch these images are (data-parallel training); default the whole batch. */
  shard?: BatchShard;
  /** Also return the hidden states: the embeddings, then each encoder layer's output. */
  outputHiddenStates?: boolean;
}

export interface ViTMAEModelOutput extends Omit<Masking, 'embeddings'> {
  /** [B, 1 + kept, D], after the final layer norm. */
  lastHiddenState: Tensor;
  hiddenStates: Tensor[] | null;
}

/** HF's _init_weights for ViT-MAE (the fixed position tables are set at construction). */
function initMAEWeights(root: Module, config: ViTMAEConfig, opts: ModuleOptions): void {
  const g = opts.generator ?? getDefaultGenerator();
  const std = config.initializerRange;
  root.apply((m) => {
    if (m instanceof Linear) {
      normal_(m.weight, 0, std, g);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof LayerNorm) {
      if (m.weight) ones_(m.weight);
      if (m.bias) zeros_(m.bias);
    } else if (m instanceof ViTMAEEmbeddings) {
      // The projection is initialised as a Linear over flattened patches: fan_in C*p*q, fan_out D.
      const w = m.patchEmbeddings.projection.weight;
      const bound = Math.sqrt(6 / (w.size / w.shape[0]! + w.shape[0]!));
      uniform_(w, -bound, bound, g);
      zeros_(m.patchEmbeddings.projection.bias);
      normal_(m.clsToken, 0, std, g);
    } else if (m instanceof ViTMAEDecoder) {
      normal_(m.maskToken, 0, std, g);
    }
  });
}

/** The MAE encoder: embeddings with masking, transformer layers on the kept patches, layer norm. */
export class ViTMAEModel extends Module implements OtherModel {
  readonly kind = 'masked-image-encoder';
  readonly embeddings: ViTMAEEmbeddings;
  readonly encoder: TransformerEncoder;
  readonly layernorm: LayerNorm;

  constructor(readonly config: ViTMAEConfig, opts: ViTMAEOptions = {}) {
    super();
    this.embeddings = this.module('embeddings', new ViTMAEEmbeddings(config, opts));
    const block = blockOptions(config, opts, config.intermediateSize);
    this.encoder = this.module('encoder', new TransformerEncoder(config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads, block));
    this.layernorm = this.module('layernorm', new LayerNorm(config.hiddenSize, { ...opts, eps: config.layerNormEps }));
    if (opts.initWeights ?? true) initMAEWeights(this, config, opts);
  }

  forward(pixels: Tensor, opts: ViTMAEForwardOptions = {}): ViTMAEModelOutput {
    const hiddenStates: Tensor[] | undefined = opts.outputHiddenStates ? [] : undefined;
    const { embeddings, mask, idsRestore } = this.embeddings.forward(pixels, opts.noise, opts.generator, opts.shard);
    const x = this.encoder.forward(embeddings, { hiddenStates });
    return { lastHiddenState: this.layernorm.forward(x), mask, idsRestore, hiddenStates: hiddenStates ?? null };
  }

  static fromPretrained(dir: string, opts: ViTMAEOptions & { strict?: boolean } = {}): ViTMAEModel {
    return loadPretrained(dir, opts, VIT_MAE_CHECKPOINT, (config, weights, o) => {
      const headed = weights.names.some((k) => k.startsWith('vit.'));
      // A pre-training checkpoint: the encoder is under `vit.`, and the decoder is dropped (as HF does).
      const toModuleKey = (k: string) => (!headed ? vitMaeKeyFromHF(k) : k.startsWith('vit.') ? vitMaeKeyFromHF(k.slice(4)) : null);
      return { model: new ViTMAEModel(config, o), toModuleKey };
    });
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['ViTMAEModel']), vitMaeKeyToHF, opts);
  }

  get family(): ModelFamily {
    return VIT_MAE;
  }

  imageEncoder(): ImageEncoder {
    return vitModelFromMAE(this);
  }

  imageTower(): ImageTowerLayout {
    return maeTower(this, '');
  }
}

/** The layout of an MAE encoder at `prefix` (empty, or 'vit.' under the decoder's model). */
function maeTower(vit: ViTMAEModel, prefix: '' | 'vit.'): ImageTowerLayout {
  return {
    prefixes: prefix ? ['vit'] : ['embeddings', 'encoder', 'layernorm'],
    blocks: `${prefix}encoder.layers`,
    numBlocks: vit.config.numHiddenLayers,
    after: [`${prefix}layernorm`],
    modules: [vit],
  };
}

/** The pixel decoder (HF's ViTMAEDecoder); its layers are the module's `encoder`. */
export class ViTMAEDecoder extends Module {
  readonly decoderEmbed: Linear;
  readonly maskToken: Tensor;
  readonly decoderPosEmbed: Tensor;
  readonly encoder: TransformerEncoder;
  readonly decoderNorm: LayerNorm;
  readonly decoderPred: Linear;

  constructor(readonly config: ViTMAEConfig, opts: ModuleOptions = {}) {
    super();
    const Dd = config.decoderHiddenSize;
    const [ph, pw] = config.patchSize;
    this.decoderEmbed = this.module('decoder_embed', new Linear(config.hiddenSize, Dd, opts));
    this.maskToken = this.param('mask_token', paramZeros([1, 1, Dd], opts));
    this.decoderPosEmbed = this.buffer('decoder_pos_embed', positionBuffer(Dd, config.gridSize, opts));
    const block = blockOptions(config, opts, config.decoderIntermediateSize);
    this.encoder = this.module('encoder', new TransformerEncoder(config.decoderNumHiddenLayers, Dd, config.decoderNumAttentionHeads, block));
    this.decoderNorm = this.module('decoder_norm', new LayerNorm(Dd, { ...opts, eps: config.layerNormEps }));
    this.decoderPred = this.module('decoder_pred', new Linear(Dd, ph * pw * config.numChannels, opts));
  }

  /** latent [B, 1 + kept, D] and idsRestore [B, patches] -> predicted pixels [B, patches, p*q*C]. */
  forward(latent: Tensor, idsRestore: Tensor): Tensor {
    const [B, T] = latent.shape as [number, number, number];
    const L = idsRestore.shape[1]!;
    const Dd = this.config.decoderHiddenSize;
    if (idsRestore.ndim !== 2 || idsRestore.shape[0] !== B || T - 1 > L) {
      throw new Error(`ViTMAE decoder: ids_restore [${idsRestore.shape}] does not fit a latent of [${latent.shape}]`);
    }
    const x = this.decoderEmbed.forward(latent);
    const shuffled = concat([x.slice(1, 1), this.maskToken.expand(B, L - (T - 1), Dd)], 1);
    const patches = gather(shuffled, 1, idsRestore.unsqueeze(-1).expand(B, L, Dd));
    const h = concat([x.slice(1, 0, 1), patches], 1).add(this.decoderPosEmbed);
    const y = this.decoderNorm.forward(this.encoder.forward(h));
    return this.decoderPred.forward(y.slice(1, 1));
  }
}

export interface ViTMAEPreTrainingOutput extends Omit<Masking, 'embeddings'> {
  /** The reconstruction loss on the dropped patches (a scalar). */
  loss: Tensor;
  /** [B, patches, p*q*C]: predicted pixels per patch, ordered (row, column, channel) in a patch. */
  logits: Tensor;
  hiddenStates: Tensor[] | null;
}

/** Encoder + decoder + reconstruction loss (HF's ViTMAEForPreTraining). */
export class ViTMAEForPreTraining extends Module implements MaskedImageModel {
  readonly kind = 'masked-image-model';
  readonly vit: ViTMAEModel;
  readonly decoder: ViTMAEDecoder;

  constructor(readonly config: ViTMAEConfig, opts: ViTMAEOptions = {}) {
    super();
    this.vit = this.module('vit', new ViTMAEModel(config, { ...opts, initWeights: false }));
    this.decoder = this.module('decoder', new ViTMAEDecoder(config, opts));
    if (opts.initWeights ?? true) initMAEWeights(this, config, opts);
  }

  forward(pixels: Tensor, opts: ViTMAEForwardOptions = {}): ViTMAEPreTrainingOutput {
    const out = this.vit.forward(pixels, opts);
    const logits = this.decoder.forward(out.lastHiddenState, out.idsRestore);
    const loss = this.reconstructionLoss(pixels, logits, out.mask);
    return { loss, logits, mask: out.mask, idsRestore: out.idsRestore, hiddenStates: out.hiddenStates };
  }

  /** pixels [B, C, H, W] -> [B, patches, p*q*C], patches row-major, each ordered (row, column, channel). */
  patchify(pixels: Tensor): Tensor {
    const [ph, pw] = this.config.patchSize;
    const C = this.config.numChannels;
    if (pixels.ndim !== 4 || pixels.shape[1] !== C) throw new Error(`ViTMAE.patchify: pixel values must be [B, ${C}, H, W], got [${pixels.shape}]`);
    const [B, , H, W] = pixels.shape as [number, number, number, number];
    if (H % ph !== 0 || W % pw !== 0) throw new Error(`ViTMAE.patchify: image ${H}x${W} is not a whole number of ${ph}x${pw} patches`);
    const gh = H / ph;
    const gw = W / pw;
    return pixels.reshape(B, C, gh, ph, gw, pw).permute(0, 2, 4, 3, 5, 1).reshape(B, gh * gw, ph * pw * C);
  }

  /** The inverse of patchify, for an image of [height, width] (default the configured size). */
  unpatchify(patches: Tensor, size: readonly [number, number] = this.config.imageSize): Tensor {
    const [ph, pw] = this.config.patchSize;
    const C = this.config.numChannels;
    const gh = Math.floor(size[0] / ph);
    const gw = Math.floor(size[1] / pw);
    if (patches.ndim !== 3 || patches.shape[1] !== gh * gw || patches.shape[2] !== ph * pw * C) {
      throw new Error(`ViTMAE.unpatchify: expected [B, ${gh * gw}, ${ph * pw * C}] for a ${size[0]}x${size[1]} image, got [${patches.shape}]`);
    }
    const B = patches.shape[0]!;
    return patches.reshape(B, gh, gw, ph, pw, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, gh * ph, gw * pw);
  }

  /**
   * Mean over the dropped patches of the per-patch mean squared error; with norm_pix_loss the
   * target is each patch normalised by its mean and unbiased variance (+1e-6), as HF does.
   */
  reconstructionLoss(pixels: Tensor, pred: Tensor, mask: Tensor): Tensor {
    const perPatch = this.patchLosses(pixels, pred);
    return perPatch.mul(mask).sum().div(mask.sum());
  }

  /** Each image's loss [B]: the mean over its dropped patches (as many in every image). */
  imageLosses(pixels: Tensor, noise: Tensor): Tensor {
    const out = this.forward(pixels, { noise });
    return this.patchLosses(pixels, out.logits).mul(out.mask).sum(-1).div(out.mask.sum(-1));
  }

  /** The mean squared error of each patch's prediction [B, patches] against its (normalised) target. */
  private patchLosses(pixels: Tensor, pred: Tensor): Tensor {
    let target = this.patchify(pixels);
    if (this.config.normPixLoss) {
      const n = target.shape[2]!;
      const centred = target.sub(target.mean(-1, true));
      const variance = centred.square().sum(-1, true).div(n - 1);
      target = centred.div(variance.add(1e-6).sqrt());
    }
    return pred.sub(target).square().mean(-1);
  }

  static fromPretrained(dir: string, opts: ViTMAEOptions & { strict?: boolean } = {}): ViTMAEForPreTraining {
    return loadPretrained(dir, opts, VIT_MAE_CHECKPOINT, (config, _weights, o) => ({ model: new ViTMAEForPreTraining(config, o), toModuleKey: vitMaeKeyFromHF }));
  }

  savePretrained(dir: string, opts: SaveHFOptions = {}): string[] {
    return savePretrained(dir, this, this.config.toHF(['ViTMAEForPreTraining']), vitMaeKeyToHF, opts);
  }

  get family(): ModelFamily {
    return VIT_MAE;
  }

  get imageSize(): readonly [number, number] {
    return this.config.imageSize;
  }

  maskedLoss(pixels: Tensor, generator: Generator, shard?: BatchShard): Tensor {
    return this.forward(pixels, { generator, shard }).loss;
  }

  reconstruct(pixels: Tensor, opts: { noise?: Tensor | null; generator?: Generator }): { logits: Tensor; mask: Tensor } {
    return this.forward(pixels, opts);
  }

  get patches(): MaskedImageModel['patches'] {
    const { numChannels, imageSize, patchSize, normPixLoss } = this.config;
    return { numChannels, imageSize, patchSize, normPixLoss };
  }

  /** This model when the masking is unchanged, else a copy of its weights under the new mask ratio and loss. */
  withMasking(maskRatio: number, normPixLoss: boolean): ViTMAEForPreTraining {
    if (this.config.maskRatio === maskRatio && this.config.normPixLoss === normPixLoss) return this;
    const raw = { ...this.config.toHF(['ViTMAEForPreTraining']), mask_ratio: maskRatio, norm_pix_loss: normPixLoss };
    const out = new ViTMAEForPreTraining(ViTMAEConfig.fromHF(raw, 'mae'), { initWeights: false });
    out.loadStateDict(this.stateDict());
    return out;
  }

  imageClassifier(labels: readonly string[], opts: ModuleOptions = {}): ImageClassifier {
    return vitClassifierFromMAE(this, { ...opts, labels });
  }

  imageEncoder(): ImageEncoder {
    return vitModelFromMAE(this);
  }

  imageTower(): ImageTowerLayout {
    return maeTower(this.vit, 'vit.');
  }
}

// ---------------------------------------------------------------------------------------------
// From an MAE to a ViT (fine-tuning and probing start here)
//
// MAE's encoder is a ViT whose position embeddings happen to be fixed sin-cos tables: run on all
// patches in order (no masking), it computes exactly what ViTModel computes, and its `vit.*` weights
// carry ViTModel's names. So the conversion is a state-dict copy, as HF's
// ViTForImageClassification.from_pretrained(mae_folder) takes the `vit.*` weights; the position
// table becomes an ordinary (trainable) parameter of the ViT, as in MAE's fine-tuning recipe.

const LABEL_FIELDS = new Set(['id2label', 'label2id', 'num_labels']);

/**
 * The encoder's hyperparameters as a ViTConfig. `labels` are the classes of a classifier made
 * from it (default ViT's two placeholders); config.json fields neither family reads are kept.
 */
export function maeEncoderConfig(config: ViTMAEConfig, labels?: readonly string[]): ViTConfig {
  const extra = Object.fromEntries(Object.entries(config.extra).filter(([k]) => !LABEL_FIELDS.has(k)));
  const encoder = Object.keys(VIT_ENCODER_FIELDS).map((k) => [k, config[k as keyof typeof VIT_ENCODER_FIELDS]]);
  return new ViTConfig({ ...Object.fromEntries(encoder), labels }, extra);
}

/**
 * Where the encoder weights come from: a pre-training model, a bare MAE encoder, or a config with
 * a state dict (module names or the names in HF checkpoints, with or without the `vit.` prefix).
 */
export type MAEEncoderSource = ViTMAEForPreTraining | ViTMAEModel | { readonly config: ViTMAEConfig; readonly stateDict: StateDict };

/** The encoder's weights under ViTModel's names (the decoder's are left out). */
export function maeEncoderState(source: MAEEncoderSource): StateDict {
  const { config, dict } = source instanceof ViTMAEForPreTraining ? { config: source.config, dict: source.vit.stateDict() as StateDict }
    : source instanceof ViTMAEModel ? { config: source.config, dict: source.stateDict() as StateDict }
    : { config: source.config, dict: source.stateDict };
  const headed = Object.keys(dict).some((k) => k.startsWith('vit.'));
  const out: StateDict = {};
  for (const [k, v] of Object.entries(dict)) {
    if (headed && !k.startsWith('vit.')) continue;
    const key = vitMaeKeyFromHF(headed ? k.slice(4) : k);
    if (!key.startsWith('decoder.')) out[key] = v;
  }
  // Checkpoints may leave the fixed table out (FIXED_BUFFERS); it is the computed one then.
  out['embeddings.position_embeddings'] ??= { shape: [1, 1 + config.numPatches, config.hiddenSize], data: sincosPositionTable(config.hiddenSize, config.gridSize) };
  return out;
}

/** The backend of a module source's weights, so the ViT lands beside it unless told otherwise. */
function backendOf(source: MAEEncoderSource): ModuleOptions['backend'] {
  return source instanceof Module ? source.parameters()[0]?.backend : undefined;
}

/**
 * The MAE's encoder as a ViTModel without a pooler, its weights copied (the MAE is left as it
 * is). On the same pixels, its hidden states are the MAE encoder's applied to every patch.
 */
export function vitModelFromMAE(source: MAEEncoderSource, opts: ModuleOptions = {}): ViTModel {
  const vit = new ViTModel(maeEncoderConfig(source.config), { backend: backendOf(source), ...opts, addPoolingLayer: false, initWeights: false });
  vit.loadStateDict(maeEncoderState(source));
  return vit;
}

export interface MAEClassifierOptions extends ModuleOptions {
  /** Class names by index (id2label); at least one, no repeats. */
  labels: readonly string[];
  /**
   * Std of the fresh classifier's truncated-normal weights (biases start at zero); default the
   * config's initializer_range, as HF initialises a missing head. MAE's own recipe uses 2e-5.
   */
  classifierStd?: number;
}

/**
 * A ViTForImageClassification whose encoder is the MAE's (weights copied) and whose classifier is
 * new, drawn from `opts.generator`.
 */
export function vitClassifierFromMAE(source: MAEEncoderSource, opts: MAEClassifierOptions): ViTForImageClassification {
  const { labels, classifierStd, ...moduleOpts } = opts;
  if (labels.length === 0) throw new Error('vitClassifierFromMAE: labels is empty; a classifier needs at least one class');
  const repeated = labels.filter((l, i) => labels.indexOf(l) !== i);
  if (repeated.length) throw new Error(`vitClassifierFromMAE: labels repeat ${JSON.stringify([...new Set(repeated)])}; id2label needs distinct names`);
  const config = maeEncoderConfig(source.config, labels);
  const std = classifierStd ?? config.initializerRange;
  if (!(std > 0)) throw new RangeError(`vitClassifierFromMAE: classifierStd must be positive, got ${std}`);
  const model = new ViTForImageClassification(config, { backend: backendOf(source), ...moduleOpts, initWeights: false });
  model.vit.loadStateDict(maeEncoderState(source));
  truncNormal_(model.classifier!.weight, 0, std, -2, 2, moduleOpts.generator ?? getDefaultGenerator());
  zeros_(model.classifier!.bias!);
  return model;
}

/** config.json of a pre-training model of these sizes (a training config's model.custom). */
function sizedConfig(s: ModelSizes, label: string): HFConfig {
  if (s.image_size % s.patch_size !== 0) {
    throw new Error(`${label}.image_size: ${s.image_size} is not a multiple of the patch size ${s.patch_size} (MAE masks whole patches)`);
  }
  if (s.decoder_width % s.decoder_heads !== 0) {
    throw new Error(`${label}.decoder_heads: decoder_width ${s.decoder_width} is not a multiple of decoder_heads ${s.decoder_heads}`);
  }
  const mlp = (w: number) => Math.round(w * s.mlp_ratio);
  return {
    architectures: ['ViTMAEForPreTraining'],
    model_type: 'vit_mae',
    hidden_size: s.width, num_hidden_layers: s.layers, num_attention_heads: s.heads, intermediate_size: mlp(s.width),
    image_size: s.image_size, patch_size: s.patch_size,
    decoder_hidden_size: s.decoder_width, decoder_num_hidden_layers: s.decoder_layers, decoder_num_attention_heads: s.decoder_heads,
    decoder_intermediate_size: mlp(s.decoder_width),
  };
}

export const VIT_MAE: ModelFamily = {
  modelType: 'vit_mae',
  title: 'ViT-MAE',
  config: ViTMAEConfig,
  architectures: { ViTMAEForPreTraining, ViTMAEModel },
  imageProcessor: 'vit',
  sizedConfig,
};
