// The model a training config describes: built (registered name, folder or custom sizes) with
// seeded initial weights, with what reads its inputs (tokenizer, image processor), the layout of
// its image tower (for LiT's locking and layer-wise lr decay), and how to save it as a Hugging
// Face folder.
import fs from 'node:fs';
import path from 'node:path';
import { type ImageFamily, ImageProcessor, type ImageProcessorConfig } from '../data/image.js';
import { clipTokenizer } from '../data/tokenizers/clip.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizers/tokenizer.js';
import type { HFConfig } from '../io/hf.js';
import { CLIPConfig, CLIPModel } from '../models/clip.js';
import { byteTokenizer } from '../models/configs.js';
import { clipConfigFromOpenClip } from '../models/openclip.js';
import { BertConfig, BertForMaskedLM } from '../models/bert.js';
import { createModel, models } from '../models/registry.js';
import { SiglipConfig, SiglipModel } from '../models/siglip.js';
import { ViTConfig, ViTForImageClassification } from '../models/vit.js';
import { vitClassifierFromMAE, ViTMAEConfig, ViTMAEForPreTraining } from '../models/vit_mae.js';
import { trainWordPieceTokenizer } from '../data/tokenizers/wordpiece.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { SIGLIP_INIT } from '../nn/losses.js';
import { ConfigError, type CustomModelConfig, type TrainConfig } from './config.js';

export type TrainFamily = 'clip' | 'siglip' | 'vit' | 'mae' | 'bert';

/** Where the image tower's parameters live, by dotted prefix. */
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

export interface TrainModel {
  model: CLIPModel | SiglipModel | ViTForImageClassification | ViTMAEForPreTraining | BertForMaskedLM;
  family: TrainFamily;
  /** Null for image-only models. */
  tokenizer: TextTokenizer | null;
  /** Tokens per caption or packed sequence (0 for image-only models). */
  contextLength: number;
  /** Null for text-only models (and so are the two fields below). */
  imageSize: number | null;
  imageProcessor: ImageProcessor | null;
  imageTower: ImageTowerLayout | null;
  /** The inverse-temperature parameter clamped after each step (dual encoders). */
  logitScale: Tensor | null;
  /** Drew the initial weights; the model's dropout layers draw from it next (a checkpoint keeps its state). */
  generator: Generator;
}

/** The processor evaluation and inference use: the family's defaults at the model's image size. */
export function processorFor(family: Exclude<TrainFamily, 'bert'>, imageSize: number): ImageProcessor {
  return ImageProcessor.atSize(family === 'mae' ? 'vit' : family, imageSize); // HF's ViT-MAE uses ViTImageProcessor
}

function customConfig(c: CustomModelConfig, classNames: readonly string[] | undefined): HFConfig {
  const mlp = (w: number) => Math.round(w * c.mlp_ratio);
  if (c.width % c.heads !== 0) throw new ConfigError('model.custom.heads', `width ${c.width} is not a multiple of heads ${c.heads}`);
  if (c.family !== 'vit' && c.text_width % c.text_heads !== 0) {
    throw new ConfigError('model.custom.text_heads', `text_width ${c.text_width} is not a multiple of text_heads ${c.text_heads}`);
  }
  if (c.image_size < c.patch_size) throw new ConfigError('model.custom.patch_size', `patch ${c.patch_size} is larger than the image (${c.image_size})`);
  if (c.family === 'mae') {
    if (c.image_size % c.patch_size !== 0) {
      throw new ConfigError('model.custom.image_size', `${c.image_size} is not a multiple of the patch size ${c.patch_size} (MAE masks whole patches)`);
    }
    if (c.decoder_width % c.decoder_heads !== 0) {
      throw new ConfigError('model.custom.decoder_heads', `decoder_width ${c.decoder_width} is not a multiple of decoder_heads ${c.decoder_heads}`);
    }
    return {
      architectures: ['ViTMAEForPreTraining'],
      model_type: 'vit_mae',
      hidden_size: c.width, num_hidden_layers: c.layers, num_attention_heads: c.heads, intermediate_size: mlp(c.width),
      image_size: c.image_size, patch_size: c.patch_size,
      decoder_hidden_size: c.decoder_width, decoder_num_hidden_layers: c.decoder_layers, decoder_num_attention_heads: c.decoder_heads,
      decoder_intermediate_size: mlp(c.decoder_width),
    };
  }
  if (c.family === 'clip') {
    return clipConfigFromOpenClip({
      embed_dim: c.embed_dim,
      vision_cfg: { image_size: c.image_size, patch_size: c.patch_size, width: c.width, layers: c.layers, head_width: c.width / c.heads, mlp_ratio: c.mlp_ratio },
      text_cfg: { context_length: c.context_length, vocab_size: c.vocab_size, width: c.text_width, heads: c.text_heads, layers: c.text_layers, mlp_ratio: c.mlp_ratio },
    }, 'model.custom').toHF(['CLIPModel']);
  }
  if (c.family === 'siglip') {
    return {
      architectures: ['SiglipModel'],
      model_type: 'siglip',
      text_config: {
        vocab_size: c.vocab_size, hidden_size: c.text_width, intermediate_size: mlp(c.text_width), num_hidden_layers: c.text_layers,
        num_attention_heads: c.text_heads, max_position_embeddings: c.context_length, projection_size: c.width,
        pad_token_id: 0, bos_token_id: 256, eos_token_id: 257,
      },
      vision_config: {
        hidden_size: c.width, intermediate_size: mlp(c.width), num_hidden_layers: c.layers, num_attention_heads: c.heads,
        image_size: c.image_size, patch_size: c.patch_size,
      },
    };
  }
  return {
    architectures: ['ViTForImageClassification'],
    model_type: 'vit',
    hidden_size: c.width, num_hidden_layers: c.layers, num_attention_heads: c.heads, intermediate_size: mlp(c.width),
    image_size: c.image_size, patch_size: c.patch_size,
    ...labelConfig(classNames),
  };
}

function labelNames(classNames: readonly string[] | undefined): readonly string[] {
  if (!classNames || classNames.length === 0) throw new ConfigError('data.train', 'the ce task needs a labelled dataset (one with class names)');
  return classNames;
}

function labelConfig(names: readonly string[] | undefined): HFConfig {
  const classNames = labelNames(names);
  return { id2label: Object.fromEntries(classNames.map((n, i) => [String(i), n])), label2id: Object.fromEntries(classNames.map((n, i) => [n, i])) };
}

function layoutOf(model: TrainModel['model']): ImageTowerLayout | null {
  if (model instanceof BertForMaskedLM) return null;
  if (model instanceof ViTMAEForPreTraining) {
    return { prefixes: ['vit'], blocks: 'vit.encoder.layers', numBlocks: model.config.numHiddenLayers, after: ['vit.layernorm'], modules: [model.vit] };
  }
  if (model instanceof CLIPModel) {
    return {
      prefixes: ['vision_model', 'visual_projection'], blocks: 'vision_model.encoder.layers', numBlocks: model.config.visionConfig.numHiddenLayers,
      after: ['vision_model.post_layernorm', 'visual_projection'], modules: [model.visionModel, model.visualProjection],
    };
  }
  if (model instanceof SiglipModel) {
    return {
      prefixes: ['vision_model'], blocks: 'vision_model.encoder.layers', numBlocks: model.config.visionConfig.numHiddenLayers,
      after: ['vision_model.post_layernorm', ...(model.visionModel.head ? ['vision_model.head'] : [])], modules: [model.visionModel],
    };
  }
  return {
    prefixes: ['vit'], blocks: 'vit.encoder.layers', numBlocks: model.config.numHiddenLayers, after: ['vit.layernorm'], modules: [model.vit],
  };
}

/** What a model is sized or read by, besides the config. */
export interface TrainModelInputs {
  /** The training set's class names (sizes a classifier). */
  classNames?: readonly string[];
  /** The training corpus (mlm): a WordPiece vocabulary is trained from it when the model has no tokenizer. */
  documents?: () => Promise<readonly string[]>;
  /** A tokenizer folder to use instead of training one (a resumed mlm run's). */
  tokenizerDir?: string;
}

/**
 * Builds the model of `config.model` for `config.task`, its initial weights drawn from a
 * generator seeded with `config.seed`. A classifier (ce) of a registered ViT or of an MAE folder
 * is sized to `inputs.classNames`; from an MAE folder it starts from the MAE encoder.
 */
export async function buildTrainModel(config: TrainConfig, inputs: TrainModelInputs = {}): Promise<TrainModel> {
  const generator = new Generator(config.seed);
  const { classNames } = inputs;
  const m = config.model;
  const task = config.task;
  const label = m.custom ? 'model.custom' : `model '${m.name}'`;
  let model: Module;
  let tokenizer: TextTokenizer | null = null;
  if (m.custom) {
    const fam = m.custom.family;
    if (fam === 'bert') {
      tokenizer = await mlmTokenizer(config, inputs, null);
      model = new BertForMaskedLM(BertConfig.fromHF(bertCustomConfig(m.custom, tokenizer), 'model.custom'), { generator });
    } else {
      const raw = customConfig(m.custom, task === 'ce' ? classNames : undefined);
      if (fam === 'clip') model = new CLIPModel(CLIPConfig.fromHF(raw, 'model.custom'), { generator });
      else if (fam === 'siglip') model = new SiglipModel(SiglipConfig.fromHF(raw, 'model.custom'), { generator });
      else if (fam === 'mae') model = new ViTMAEForPreTraining(ViTMAEConfig.fromHF(raw, 'model.custom'), { generator });
      else model = new ViTForImageClassification(ViTConfig.fromHF(raw, 'model.custom'), { generator });
      if (fam === 'clip' || fam === 'siglip') tokenizer = byteTokenizer(m.custom.context_length);
    }
  } else {
    const name = m.name!;
    const entry = models.find(name);
    const folder = entry ? m.weights : name;
    if (task === 'ce' && entry && entry.family === 'vit' && m.weights === null) {
      // A registered ViT gets a classifier head sized to the training labels.
      const raw = { ...entry.config, architectures: ['ViTForImageClassification'], ...labelConfig(classNames) };
      model = new ViTForImageClassification(ViTConfig.fromHF(raw, `model '${entry.name}'`), { generator });
    } else {
      model = await createModel(name, { weights: m.weights ?? undefined, generator });
    }
    if (task === 'ce' && model instanceof ViTMAEForPreTraining) {
      // Fine-tuning from MAE: the encoder's weights, a fresh classifier (HF's ViTForImageClassification.from_pretrained does the same).
      model = vitClassifierFromMAE(model, { labels: labelNames(classNames), generator });
    }
    if (folder !== null && fs.existsSync(path.join(folder, 'tokenizer.json'))) tokenizer = loadTokenizer(folder);
    else if (entry?.tokenizer) tokenizer = entry.tokenizer();
    else if (model instanceof CLIPModel) tokenizer = clipTokenizer();
    else if (model instanceof BertForMaskedLM) tokenizer = await mlmTokenizer(config, inputs, model.config.vocabSize);
  }
  const expected: Record<typeof task, { is: (x: Module) => boolean; what: string }> = {
    clip: { is: (x) => x instanceof CLIPModel, what: 'a CLIP model' },
    siglip: { is: (x) => x instanceof SiglipModel, what: 'a SigLIP model' },
    catlip: { is: (x) => x instanceof CLIPModel || x instanceof SiglipModel, what: 'a CLIP or SigLIP model (it trains the image tower)' },
    ce: { is: (x) => x instanceof ViTForImageClassification, what: 'an image classifier (ViT, or an MAE folder to fine-tune)' },
    mae: { is: (x) => x instanceof ViTMAEForPreTraining, what: 'a ViT-MAE model' },
    mlm: { is: (x) => x instanceof BertForMaskedLM, what: 'a BERT model with its MLM head (BertForMaskedLM)' },
  };
  if (!expected[task].is(model)) throw new ConfigError('task', `the ${task} task needs ${expected[task].what}; ${label} is ${model.constructor.name}`);
  if (model instanceof ViTForImageClassification && task === 'ce' && classNames && model.config.numLabels !== classNames.length) {
    throw new ConfigError('model', `${label} classifies into ${model.config.numLabels} classes, the data has ${classNames.length}`);
  }
  if ((task === 'clip' || task === 'siglip') && !tokenizer) {
    throw new ConfigError('model', `${label}: no tokenizer (give a folder with tokenizer.json)`);
  }
  if (model instanceof ViTMAEForPreTraining) model = withMaskingOf(model, config);
  const typed = model as TrainModel['model'];
  let family: TrainFamily;
  let imageSize: number | null;
  let contextLength = 0;
  let logitScale: Tensor | null = null;
  if (typed instanceof CLIPModel) {
    family = 'clip';
    imageSize = typed.config.visionConfig.imageSize;
    contextLength = typed.config.textConfig.maxPositionEmbeddings;
    logitScale = typed.logitScale;
  } else if (typed instanceof SiglipModel) {
    family = 'siglip';
    imageSize = typed.config.visionConfig.imageSize;
    contextLength = typed.config.textConfig.maxPositionEmbeddings;
    logitScale = typed.logitScale;
    // Trained from scratch, SigLIP starts at t = 10, b = -10 (the paper's init; HF's init is for loading).
    const fresh = m.custom !== null || (m.weights === null && models.find(m.name!) !== undefined);
    if (fresh) {
      noGrad(() => {
        typed.logitScale.backend.fill(typed.logitScale.view('siglip init'), SIGLIP_INIT.logitScale);
        typed.logitBias.backend.fill(typed.logitBias.view('siglip init'), SIGLIP_INIT.logitBias);
      });
    }
  } else if (typed instanceof BertForMaskedLM) {
    family = 'bert';
    imageSize = null;
    contextLength = m.custom ? m.custom.context_length : typed.config.maxPositionEmbeddings;
    if (contextLength > typed.config.maxPositionEmbeddings) {
      throw new ConfigError('model', `${label}: sequences of ${contextLength} tokens exceed its ${typed.config.maxPositionEmbeddings} positions`);
    }
  } else {
    family = typed instanceof ViTMAEForPreTraining ? 'mae' : 'vit';
    const size = typed.config.imageSize;
    imageSize = size[0];
    if (size[1] !== imageSize) throw new ConfigError('model', `${label}: training needs a square image size, got [${size}]`);
  }
  return {
    model: typed, family, tokenizer, contextLength, imageSize,
    imageProcessor: family === 'bert' ? null : processorFor(family, imageSize!),
    imageTower: layoutOf(typed),
    logitScale,
    generator,
  };
}

/** The MAE model with config.mae's mask ratio and loss (the training objective is the run's choice, not the folder's). */
function withMaskingOf(model: ViTMAEForPreTraining, config: TrainConfig): ViTMAEForPreTraining {
  const { mask_ratio: ratio, norm_pix_loss: normPix } = config.mae;
  if (model.config.maskRatio === ratio && model.config.normPixLoss === normPix) return model;
  const raw = { ...model.config.toHF(['ViTMAEForPreTraining']), mask_ratio: ratio, norm_pix_loss: normPix };
  const out = new ViTMAEForPreTraining(ViTMAEConfig.fromHF(raw, 'mae'), { initWeights: false });
  out.loadStateDict(model.stateDict());
  return out;
}

function bertCustomConfig(c: CustomModelConfig, tokenizer: TextTokenizer): HFConfig {
  if (c.width % c.heads !== 0) throw new ConfigError('model.custom.heads', `width ${c.width} is not a multiple of heads ${c.heads}`);
  return {
    architectures: ['BertForMaskedLM'],
    model_type: 'bert',
    vocab_size: tokenizer.vocabSize, hidden_size: c.width, num_hidden_layers: c.layers, num_attention_heads: c.heads,
    intermediate_size: Math.round(c.width * c.mlp_ratio), max_position_embeddings: c.context_length,
    pad_token_id: tokenizer.tokenToId('[PAD]') ?? 0,
  };
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
export function lockImageTower(tm: TrainModel, unlockLastBlocks: number): string[] {
  const t = tm.imageTower;
  if (!t) throw new ConfigError('lock_image', `${tm.model.constructor.name} has no image tower to lock`);
  if (unlockLastBlocks > t.numBlocks) {
    throw new ConfigError('unlock_last_blocks', `the image tower has ${t.numBlocks} blocks, cannot unlock ${unlockLastBlocks}`);
  }
  const unlocked = unlockLastBlocks === 0 ? [] : [
    ...Array.from({ length: unlockLastBlocks }, (_, i) => `${t.blocks}.${t.numBlocks - unlockLastBlocks + i}`),
    ...t.after,
  ];
  const under = (name: string, prefixes: readonly string[]) => prefixes.some((p) => name === p || name.startsWith(`${p}.`));
  const frozen: string[] = [];
  for (const [name, p] of tm.model.namedParameters()) {
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

/**
 * Saves the trained model as a Hugging Face folder (config.json, model.safetensors,
 * preprocessor_config.json and, for dual encoders, tokenizer.json + tokenizer_config.json), so
 * `glimpse classify/embed` and HF's from_pretrained load it.
 */
export function saveTrainedModel(tm: TrainModel, dir: string): void {
  tm.model.savePretrained(dir);
  if (tm.imageProcessor) fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), `${JSON.stringify(preprocessorJson(tm.imageProcessor), null, 2)}\n`);
  tm.tokenizer?.save(dir);
}
