// What a model family provides, and what its models offer the layers above: training,
// evaluation and the tasks ask a model for a capability (its `kind` and the methods that go with
// it), never for its class. A family is one file (vit.ts, clip.ts, ...) that exports a
// `ModelFamily` and is listed in registry.ts; docs/ARCHITECTURE.md says what that file holds.
import type { ImageFamily } from '../data/image.js';
import type { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import type { HFConfig, SaveHFOptions } from '../io/hf.js';
import type { PatchDropoutOptions } from '../nn/layers.js';
import type { Module, ModuleOptions } from '../nn/module.js';
import type { BatchShard, Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Where an image tower's parameters live, by dotted prefix (LiT's locking, layer-wise lr decay). */
export interface ImageTowerLayout {
  /** Every parameter of the tower starts with one of these. */
  prefixes: string[];
  /** The prefix of block i is `${blocks}.${i}`. */
  blocks: string;
  numBlocks: number;
  /** Parameters after the last block (final norm, pooling head, projection): trained with any unlocked block. */
  after: string[];
  /** The tower's modules, switched to eval mode when fully locked. */
  modules: Module[];
}

/** What a model of any family is: a module with its config, saved as a Hugging Face folder. */
export interface ModelBase extends Module {
  /** The family's `ModelFamily`, e.g. for its image processor. */
  readonly family: ModelFamily;
  readonly config: { toHF(architectures?: readonly string[]): HFConfig };
  /** Writes config.json and the weights as HF's save_pretrained does; returns the files written. */
  savePretrained(dir: string, opts?: SaveHFOptions): string[];
  /** The image tower's layout, or null for a text-only model. */
  imageTower(): ImageTowerLayout | null;
  /** The ViT encoder whose token states a linear probe reads (every patch, none masked); absent where there is none. */
  imageEncoder?(): ImageEncoder;
}

/** Pixels [B, C, H, W] -> features [B, D]; FLIP's patch dropout applies in training mode only. */
export interface ImageEncodeOptions {
  patchDropout?: PatchDropoutOptions;
}

/** A dual encoder (CLIP, SigLIP): images and texts into one space, scored against each other. */
export interface DualEncoder extends ModelBase {
  readonly kind: 'dual-encoder';
  /** The loss its logit parameters belong to: InfoNCE with a temperature ('clip') or the sigmoid loss with a bias ('siglip'). */
  readonly contrastiveLoss: 'clip' | 'siglip';
  /** Image features before L2 normalisation [B, D]. */
  encodeImage(pixels: Tensor, opts?: ImageEncodeOptions): Tensor;
  /** Text features before L2 normalisation [B, D]; ids [B, T] padded to the context length. */
  encodeText(inputIds: Tensor): Tensor;
  /** The width of encodeImage's features. */
  readonly imageEmbedDim: number;
  /** The learned log inverse temperature (clamped after each training step). */
  readonly logitScale: Tensor;
  /** SigLIP's learned bias; null for CLIP. */
  readonly logitBias: Tensor | null;
  /** Pixels the image tower takes (square). */
  readonly imageSize: number;
  /** Tokens per text the text tower takes. */
  readonly contextLength: number;
  /** Token ids the text tower embeds (its vocabulary size): a tokenizer's ids must be below it. */
  readonly vocabSize: number;
  /** The loss of a batch of matching pairs, from L2-normalised image and text embeddings. */
  pairLoss(imageEmbeds: Tensor, textEmbeds: Tensor): Tensor;
  /** Scaled image-text logits [I, T] of normalised embeddings, and their probabilities (softmax over texts, or sigmoid). */
  pairLogits(imageEmbeds: Tensor, textEmbeds: Tensor): { logits: Tensor; probs: Tensor };
  /** The initial state for training from scratch where it differs from loading's (SigLIP's t = 10, b = -10). */
  initForTraining(): void;
}

/** An image encoder whose token states a linear probe reads (ViT, and ViT's encoder inside other models). */
export interface ImageEncoder extends ModelBase {
  readonly kind: 'image-encoder';
  /** Final token states [B, 1 + patches, D] after the last layer norm; row 0 is the class token. */
  tokenStates(pixels: Tensor): Tensor;
  /** [height, width] in pixels. */
  readonly imageSize: readonly [number, number];
}

/** An image classifier (ViTForImageClassification). */
export interface ImageClassifier extends ModelBase {
  readonly kind: 'image-classifier';
  /** Class logits [B, numLabels]. */
  classify(pixels: Tensor, opts?: ImageEncodeOptions): Tensor;
  readonly labels: readonly string[];
  readonly imageSize: readonly [number, number];
}

/** Masked image modelling (ViT-MAE pretraining). */
export interface MaskedImageModel extends ModelBase {
  readonly kind: 'masked-image-model';
  /** The reconstruction loss of a batch, masks drawn from `generator` for the global batch `shard` is part of. */
  maskedLoss(pixels: Tensor, generator: Generator, shard?: BatchShard): Tensor;
  /**
   * Each image's reconstruction loss [B] (the mean over its masked patches), the masks from
   * `noise` [B, patches]: what maskedLoss averages, per image.
   */
  imageLosses(pixels: Tensor, noise: Tensor): Tensor;
  /**
   * The prediction of every patch [B, patches, patch pixels] and the mask [B, patches] (1 =
   * hidden from the encoder), the masks from `noise` ([B, patches]: the smallest kept) or drawn.
   */
  reconstruct(pixels: Tensor, opts: { noise?: Tensor | null; generator?: Generator }): { logits: Tensor; mask: Tensor };
  /** The patches it masks and predicts: channels, image and patch size, and whether targets are normalised per patch. */
  readonly patches: { numChannels: number; imageSize: readonly [number, number]; patchSize: readonly [number, number]; normPixLoss: boolean };
  readonly imageSize: readonly [number, number];
  /** The same weights under another mask ratio and loss (the training run's choice). */
  withMasking(maskRatio: number, normPixLoss: boolean): MaskedImageModel;
  /** A classifier starting from the encoder, its head fresh (fine-tuning). */
  imageClassifier(labels: readonly string[], opts?: ModuleOptions): ImageClassifier;
}

/** Masked language modelling (BERT with its MLM head). */
export interface MaskedLanguageModel extends ModelBase {
  readonly kind: 'masked-lm';
  /** Logits [B, T, vocab] and, with labels (-100 = not selected), the mean loss over the selected tokens. */
  fillMask(inputIds: Tensor, labels?: Tensor): { logits: Tensor; loss: Tensor | null };
  readonly vocabSize: number;
  readonly maxPositions: number;
}

/** What an online action detector gives for a batch of windows: raw class scores (logits). */
export interface OnlineDetectorOutput {
  /** The current (last) chunk's class scores [B, C]. */
  encoderScores: Tensor;
  /** The anticipated class scores of the next Q chunks [B, Q, C]. */
  decoderScores: Tensor;
}

/** A detector's training loss and its two weighted parts (unweighted here). */
export interface OnlineDetectorLoss {
  /** The weighted sum that is trained. */
  loss: Tensor;
  /** The current-chunk term. */
  encoder: Tensor;
  /** The anticipation term. */
  decoder: Tensor;
}

/** Online action detection (OadTR): per-chunk features of a window -> the current chunk's actions and the next ones'. */
export interface OnlineActionDetector extends ModelBase {
  readonly kind: 'online-action-detector';
  /** camera [B, T, cameraDim], motion [B, T, motionDim] (null where that width is 0); T = window. */
  forward(camera: Tensor | null, motion: Tensor | null): OnlineDetectorOutput;
  /** The training loss of a forward's output against soft targets [B, C] and [B, Q, C]. */
  loss(out: OnlineDetectorOutput, encoderTarget: Tensor, decoderTarget: Tensor): OnlineDetectorLoss;
  /** Chunks per window (T). */
  readonly window: number;
  readonly numClasses: number;
  /** Anticipated future chunks (Q). */
  readonly queries: number;
  readonly cameraDim: number;
  readonly motionDim: number;
}

/** The models no training objective takes yet: text encoders, BLIP's captioner and matcher. */
export interface OtherModel extends ModelBase {
  readonly kind: 'text-encoder' | 'captioner' | 'image-text-matcher' | 'masked-image-encoder';
}

/** Every model the zoo builds; `kind` says which capabilities it has. */
export type Model = DualEncoder | ImageEncoder | ImageClassifier | MaskedImageModel | MaskedLanguageModel | OnlineActionDetector | OtherModel;
export type ModelKind = Model['kind'];

/** A model class as every family writes it. */
export interface ModelClass {
  new (config: never, opts?: ModuleOptions): Model;
  fromPretrained(dir: string, opts?: ModuleOptions & { strict?: boolean }): Model;
}

/** Sizes of a model trained from scratch (a training config's model.custom), as the family reads them. */
export interface ModelSizes {
  width: number;
  layers: number;
  heads: number;
  mlp_ratio: number;
  image_size: number;
  patch_size: number;
  /** The dual encoders' shared width. */
  embed_dim: number;
  text_width: number;
  text_layers: number;
  text_heads: number;
  context_length: number;
  vocab_size: number;
  /** The text model's padding id, where its tokenizer has one. */
  pad_token_id?: number;
  /** MAE's decoder. */
  decoder_width: number;
  decoder_layers: number;
  decoder_heads: number;
  /** A classifier's class names. */
  labels?: readonly string[];
}

/** One model family: config.json's model_type, its config class, its architectures. */
export interface ModelFamily {
  /** config.json's model_type. */
  readonly modelType: string;
  /** Its name in messages (CLIP, BLIP, ...). */
  readonly title: string;
  readonly config: { fromHF(raw: HFConfig, label?: string): unknown };
  /** The model classes by HF architecture name; the first is built when config.json names none of them. */
  readonly architectures: Readonly<Record<string, ModelClass>>;
  /** The architecture that puts a classifier on its image encoder (HF's *ForImageClassification), where it has one. */
  readonly imageClassifier?: string;
  /** Whose preprocessor_config.json defaults its pixels follow; null for text-only models. */
  readonly imageProcessor: ImageFamily | null;
  /** The tokenizer packaged for the family, for a folder without tokenizer.json (CLIP's BPE); absent where none is. */
  tokenizer?(): TextTokenizer;
  /** config.json of a model of these sizes, for training from scratch; absent where the family offers none. */
  sizedConfig?(sizes: ModelSizes, label: string): HFConfig;
}

/** The architecture config.json names (its first the family has), else the family's first. */
export function architectureOf(family: ModelFamily, config: HFConfig): string {
  const names = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  return names.find((a) => Object.hasOwn(family.architectures, a)) ?? Object.keys(family.architectures)[0]!;
}
