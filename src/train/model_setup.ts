// The model a training config describes: built (registered name, folder or custom sizes) with
// seeded initial weights and made ready for the run's objective, with what reads its inputs
// (tokenizer, image processor) and the layout of its image tower (for LiT's locking and
// layer-wise lr decay), and how to save it as a Hugging Face folder. Nothing here asks a model
// for its class: its family and kind say what it is and offers.
import fs from 'node:fs';
import path from 'node:path';
import type { FeatureStreamInfo } from '../data/oad_streams.js';
import { type ImageFamily, ImageProcessor, type ImageProcessorConfig } from '../data/image.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { trainWordPieceTokenizer } from '../data/tokenizers/wordpiece.js';
import { byteTokenizer } from '../models/configs.js';
import type { ImageTowerLayout, Model, ModelFamily, ModelSizes } from '../models/family.js';
import type { HFConfig } from '../io/hf.js';
import { createModel, modelFamily, modelFromConfig, models } from '../models/registry.js';
import { writeZeroShotConfig, ZEROSHOT_CONFIG_FILE, type ZeroShotConfig } from '../tasks/zeroshot.js';
import { Generator } from '../tensor/random.js';
import { ConfigError, type CustomModelConfig, type TrainConfig } from './config.js';
import { objectives } from './objectives.js';

export interface TrainModel {
  model: Model;
  /** Null for image-only models. */
  tokenizer: TextTokenizer | null;
  /** Tokens per caption or packed sequence (0 for image-only models). */
  contextLength: number;
  /** Null for text-only models (and so are the two fields below). */
  imageSize: number | null;
  imageProcessor: ImageProcessor | null;
  imageTower: ImageTowerLayout | null;
  /** Drew the initial weights; the model's dropout layers draw from it next (a checkpoint keeps its state). */
  generator: Generator;
}

/** config.json's model_type of each family a training config's model.custom names. */
const CUSTOM_MODEL_TYPE: Record<CustomModelConfig['family'], string> = { clip: 'clip', siglip: 'siglip', vit: 'vit', mae: 'vit_mae', bert: 'bert', oadtr: 'oadtr' };

/** The checks every family's custom sizes share (a family checks its own in sizedConfig). */
function checkCustomSizes(c: CustomModelConfig): void {
  if (c.width % c.heads !== 0) throw new ConfigError('model.custom.heads', `width ${c.width} is not a multiple of heads ${c.heads}`);
  if (c.family === 'bert') return;
  if (c.family === 'oadtr') {
    if (c.width % c.decoder_heads !== 0) throw new ConfigError('model.custom.decoder_heads', `width ${c.width} is not a multiple of decoder_heads ${c.decoder_heads}`);
    return;
  }
  if (c.family !== 'vit' && c.family !== 'mae' && c.text_width % c.text_heads !== 0) {
    throw new ConfigError('model.custom.text_heads', `text_width ${c.text_width} is not a multiple of text_heads ${c.text_heads}`);
  }
  if (c.image_size < c.patch_size) throw new ConfigError('model.custom.patch_size', `patch ${c.patch_size} is larger than the image (${c.image_size})`);
}

/** What a model is sized or read by, besides the config. */
export interface TrainModelInputs {
  /** The training set's class names (sizes a classifier). */
  classNames?: readonly string[];
  /** The training streams' declaration (sizes and checks an online action detector). */
  streams?: Omit<FeatureStreamInfo, 'splits'>;
  /** The training corpus (mlm): a WordPiece vocabulary is trained from it when the model has no tokenizer. */
  documents?: () => Promise<readonly string[]>;
  /** A tokenizer folder to use instead of training one (a resumed mlm run's). */
  tokenizerDir?: string;
}

/** A model of custom sizes, with the tokenizer its texts take (the byte tokenizer, or a WordPiece trained from the corpus). */
async function customModel(config: TrainConfig, c: CustomModelConfig, inputs: TrainModelInputs, generator: Generator) {
  checkCustomSizes(c);
  if (c.family === 'oadtr') return { model: modelFromConfig(oadtrConfig(c, inputs), { generator }, 'model.custom'), tokenizer: null };
  const family = modelFamily(CUSTOM_MODEL_TYPE[c.family]);
  if (!family.sizedConfig) throw new ConfigError('model.custom.family', `${family.title} models cannot be built from sizes`);
  const tokenizer = c.family === 'bert' ? await mlmTokenizer(config, inputs, null)
    : c.family === 'clip' || c.family === 'siglip' ? byteTokenizer(c.context_length) : null;
  const sizes: ModelSizes = {
    ...c,
    labels: config.task === 'ce' ? inputs.classNames : undefined,
    ...(c.family === 'bert' && tokenizer ? { vocab_size: tokenizer.vocabSize, pad_token_id: tokenizer.tokenToId('[PAD]') ?? 0 } : {}),
  };
  try {
    return { model: modelFromConfig(family.sizedConfig(sizes, 'config: model.custom'), { generator }, 'model.custom'), tokenizer };
  } catch (e) {
    // A family's own checks name the key already ('config: model.custom.image_size: ...').
    if ((e as Error).message.startsWith('config: ')) throw e;
    throw new ConfigError('model.custom', (e as Error).message);
  }
}

/**
 * OadTR's config.json (the official argument names) for custom sizes: the classes, ambiguous class
 * and feature widths from the training streams; width is the embedding (and decoder) width, the
 * encoder's feed-forward is width * mlp_ratio wide, and the loss weights are the official 1.0 and 0.5.
 */
function oadtrConfig(c: CustomModelConfig, inputs: TrainModelInputs): HFConfig {
  const s = inputs.streams;
  if (!s) throw new ConfigError('data.train', 'an oadtr model is sized by its training streams (oad-synthetic:train or a stream-set folder)');
  return {
    model_type: 'oadtr', architectures: ['OadTR'],
    num_classes: s.classNames.length, ambiguous_class: s.ambiguousClass, camera_dim: s.cameraDim, motion_dim: s.motionDim,
    enc_layers: c.window, query_num: c.queries,
    embedding_dim: c.width, num_heads: c.heads, num_layers: c.layers, hidden_dim: Math.round(c.width * c.mlp_ratio),
    decoder_layers: c.decoder_layers, decoder_embedding_dim: c.width, decoder_embedding_dim_out: c.decoder_mlp_dim, decoder_num_heads: c.decoder_heads,
    dropout_rate: c.dropout, attn_dropout_rate: c.dropout, decoder_attn_dropout_rate: c.dropout,
    classification_h_loss_coef: 1, classification_pred_loss_coef: 0.5,
  };
}

/**
 * Builds the model of `config.model` for `config.task`, its initial weights drawn from a
 * generator seeded with `config.seed`, and makes it ready for the task's objective (a classifier
 * sized to `inputs.classNames`, from a ViT name or an MAE folder's encoder; MAE's mask ratio; ...).
 */
export async function buildTrainModel(config: TrainConfig, inputs: TrainModelInputs = {}): Promise<TrainModel> {
  const generator = new Generator(config.seed);
  const objective = objectives.get(config.task);
  const spec = config.model;
  const label = spec.custom ? 'model.custom' : `model '${spec.name}'`;
  const entry = spec.name !== null ? models.find(spec.name) : undefined;
  const fresh = spec.custom !== null || (entry !== undefined && spec.weights === null);
  let built: Model;
  let tokenizer: TextTokenizer | null = null;
  if (spec.custom) {
    ({ model: built, tokenizer } = await customModel(config, spec.custom, inputs, generator));
  } else {
    const name = spec.name!;
    const folder = entry ? spec.weights : name;
    const over = fresh && objective.freshConfig ? objective.freshConfig(modelFamily(entry!.family), inputs.classNames) : undefined;
    built = await createModel(name, { weights: spec.weights ?? undefined, init: fresh ? 'random' : undefined, generator, config: over });
    if (folder !== null && fs.existsSync(path.join(folder, 'tokenizer.json'))) tokenizer = loadTokenizer(folder);
    else if (entry?.tokenizer) tokenizer = entry.tokenizer();
    else if (built.family.tokenizer) tokenizer = built.family.tokenizer();
    else if (built.kind === 'masked-lm') tokenizer = await mlmTokenizer(config, inputs, built.vocabSize);
  }
  const model = objective.prepare ? objective.prepare(built, { config, classNames: inputs.classNames, streams: inputs.streams, generator, fresh, label }) : built;
  if (!objective.accepts(model)) throw new ConfigError('task', `the ${config.task} task needs ${objective.needs}; ${label} is ${model.constructor.name}`);
  const { imageSize, contextLength } = inputSizes(model, config, label);
  if (model.kind === 'dual-encoder' && !tokenizer) throw new ConfigError('model', `${label}: no tokenizer (give a folder with tokenizer.json)`);
  return {
    model, tokenizer, contextLength, imageSize,
    imageProcessor: imageSize === null ? null : processorFor(model.family, imageSize),
    imageTower: model.imageTower(),
    generator,
  };
}

/** The square image size and the tokens per text a model trains on. */
function inputSizes(model: Model, config: TrainConfig, label: string): { imageSize: number | null; contextLength: number } {
  switch (model.kind) {
    case 'dual-encoder':
      return { imageSize: model.imageSize, contextLength: model.contextLength };
    case 'masked-lm': {
      const contextLength = config.model.custom ? config.model.custom.context_length : model.maxPositions;
      if (contextLength > model.maxPositions) {
        throw new ConfigError('model', `${label}: sequences of ${contextLength} tokens exceed its ${model.maxPositions} positions`);
      }
      return { imageSize: null, contextLength };
    }
    case 'online-action-detector':
      return { imageSize: null, contextLength: 0 };
    case 'image-classifier':
    case 'masked-image-model':
    case 'image-encoder': {
      const [h, w] = model.imageSize;
      if (h !== w) throw new ConfigError('model', `${label}: training needs a square image size, got [${model.imageSize}]`);
      return { imageSize: h, contextLength: 0 };
    }
    default:
      throw new ConfigError('model', `${label}: ${model.constructor.name} is not a model Glimpse trains`);
  }
}

/** The processor evaluation and inference use: the family's defaults at the model's image size. */
function processorFor(family: ModelFamily, imageSize: number): ImageProcessor {
  if (family.imageProcessor === null) throw new Error(`${family.title} models take no images`);
  return ImageProcessor.atSize(family.imageProcessor, imageSize);
}

/**
 * The mlm task's tokenizer: the one in `inputs.tokenizerDir` (a resumed run's), else a WordPiece
 * vocabulary trained from the corpus — of config.mlm.vocab_size, or at most `modelVocab` for a
 * model whose embeddings are already sized.
 */
async function mlmTokenizer(config: TrainConfig, inputs: TrainModelInputs, modelVocab: number | null): Promise<TextTokenizer> {
  const contextLength = config.model.custom?.context_length ?? 512;
  if (inputs.tokenizerDir && fs.existsSync(path.join(inputs.tokenizerDir, 'tokenizer.json'))) return loadTokenizer(inputs.tokenizerDir);
  if (!inputs.documents) throw new ConfigError('data.train', 'the mlm task needs a text corpus to train its vocabulary from');
  const vocabSize = modelVocab ?? config.mlm.vocab_size;
  return trainWordPieceTokenizer(await inputs.documents(), { vocabSize, lowercase: config.mlm.lowercase, contextLength });
}

/**
 * LiT: freezes the image tower except its last `unlockLastBlocks` blocks and what follows them.
 * Returns the frozen parameter names. A fully locked tower is put in eval mode by the trainer.
 */
export function lockImageTower(setup: TrainModel, unlockLastBlocks: number): string[] {
  const t = setup.imageTower;
  if (!t) throw new ConfigError('lock_image', `${setup.model.constructor.name} has no image tower to lock`);
  if (unlockLastBlocks > t.numBlocks) {
    throw new ConfigError('unlock_last_blocks', `the image tower has ${t.numBlocks} blocks, cannot unlock ${unlockLastBlocks}`);
  }
  const unlocked = unlockLastBlocks === 0 ? [] : [
    ...Array.from({ length: unlockLastBlocks }, (_, i) => `${t.blocks}.${t.numBlocks - unlockLastBlocks + i}`),
    ...t.after,
  ];
  const under = (name: string, prefixes: readonly string[]) => prefixes.some((p) => name === p || name.startsWith(`${p}.`));
  const frozen: string[] = [];
  for (const [name, p] of setup.model.namedParameters()) {
    if (!under(name, t.prefixes) || under(name, unlocked)) continue;
    p.setRequiresGrad(false);
    p.grad = null;
    frozen.push(name);
  }
  return frozen;
}

const PIL_RESAMPLE: Record<string, number> = { nearest: 0, bilinear: 2, bicubic: 3 };
const PROCESSOR_CLASS: Record<ImageFamily, string> = {
  clip: 'CLIPImageProcessor', siglip: 'SiglipImageProcessor', vit: 'ViTImageProcessor', blip: 'BlipImageProcessor',
};

/** preprocessor_config.json for a processor, as HF's image processors write it. */
export function preprocessorJson(p: ImageProcessor): Record<string, unknown> {
  const c: ImageProcessorConfig = p.config;
  const size = 'shortestEdge' in c.size ? { shortest_edge: c.size.shortestEdge } : { height: c.size.height, width: c.size.width };
  return {
    image_processor_type: PROCESSOR_CLASS[p.family],
    do_resize: c.doResize, size, resample: PIL_RESAMPLE[c.resample],
    do_center_crop: c.doCenterCrop, crop_size: { height: c.cropSize.height, width: c.cropSize.width },
    do_rescale: c.doRescale, rescale_factor: c.rescaleFactor,
    do_normalize: c.doNormalize, image_mean: [...c.imageMean], image_std: [...c.imageStd],
  };
}

export interface SaveTrainedModelOptions {
  /** A dual encoder's zero-shot prompts and class names, as the run evaluated it (zeroshot_config.json). */
  zeroShot?: ZeroShotConfig;
}

/**
 * Saves the trained model as a Hugging Face folder: config.json and model.safetensors, with what
 * reads its inputs — preprocessor_config.json for a model of images, tokenizer.json +
 * tokenizer_config.json for a model of text — and, for a dual encoder, zeroshot_config.json with
 * the run's zero-shot prompts, so `glimpse eval zeroshot/classify/embed` use it as trained and
 * HF's from_pretrained loads it.
 */
export function saveTrainedModel(setup: TrainModel, dir: string, opts: SaveTrainedModelOptions = {}): void {
  setup.model.savePretrained(dir);
  if (setup.imageProcessor) fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), `${JSON.stringify(preprocessorJson(setup.imageProcessor), null, 2)}\n`);
  setup.tokenizer?.save(dir);
  // A folder saved again (a resumed run) keeps no record of an earlier run's prompts.
  if (opts.zeroShot && setup.model.kind === 'dual-encoder') writeZeroShotConfig(dir, opts.zeroShot);
  else fs.rmSync(path.join(dir, ZEROSHOT_CONFIG_FILE), { force: true });
}
