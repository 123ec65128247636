// pipeline(task, model, options): inference as transformers.js offers it, over the tasks of this
// folder. The model is a registered name, a folder, a model already built, or one already
// wrapped with its tokenizer and image processor (what loadVisionLanguageModel and loadBlipModel
// return); its kind is checked against the task before anything runs. A pipeline is a function
// taking transformers.js's inputs and options and returning what transformers.js returns: labels
// with scores, best first (a list per image when given a list of images), [{generated_text}] per
// image, or a Tensor of features. Every call runs with gradients off and the model in eval mode.
import fs from 'node:fs';
import path from 'node:path';
import { type ImageInput, ImageProcessor } from '../data/image.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizers/tokenizer.js';
import type { BertForMaskedLM, BertModel } from '../models/bert.js';
import type { BlipForConditionalGeneration } from '../models/blip.js';
import { l2Normalize } from '../models/clip.js';
import type { DualEncoder, ImageClassifier, ImageEncoder, Model, ModelKind } from '../models/family.js';
import { type CreateModelOptions, createModel, models } from '../models/registry.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { Tensor, tensor } from '../tensor/tensor.js';
import { type BlipTaskModel, caption, loadBlipModel } from './caption.js';
import { classifyImages, imageClassifierTask } from './image_classification.js';
import { imageEncoderProcessor, poolImageTokens } from './image_features.js';
import { dualEncoderProcessor, type LabelScore, loadVisionLanguageModel, tokenize, type VisionLanguageModel, zeroShotClassify } from './zeroshot.js';

/** The tasks pipeline() builds, by transformers.js's names. */
export const PIPELINE_TASKS = ['zero-shot-image-classification', 'image-classification', 'image-to-text', 'feature-extraction', 'image-feature-extraction'] as const;
export type PipelineTask = (typeof PIPELINE_TASKS)[number];

/** What each task needs of a model, and the test of its kind and capabilities. */
const TASKS: Readonly<Record<PipelineTask, { needs: string; accepts: (m: Model) => boolean }>> = {
  'zero-shot-image-classification': { needs: 'a dual encoder (CLIP or SigLIP)', accepts: (m) => m.kind === 'dual-encoder' },
  'image-classification': { needs: 'an image classifier (ViTForImageClassification)', accepts: (m) => m.kind === 'image-classifier' },
  'image-to-text': { needs: 'a captioner (BlipForConditionalGeneration)', accepts: (m) => m.kind === 'captioner' },
  'feature-extraction': {
    needs: 'a text encoder (CLIP, SigLIP or BERT)',
    accepts: (m) => m.kind === 'dual-encoder' || m.kind === 'text-encoder' || m.kind === 'masked-lm',
  },
  'image-feature-extraction': {
    needs: 'an image encoder (CLIP, SigLIP, ViT or ViT-MAE)',
    accepts: (m) => m.kind === 'dual-encoder' || m.imageEncoder !== undefined,
  },
};

const KIND_NAMES: Readonly<Record<ModelKind, string>> = {
  'dual-encoder': 'a dual encoder',
  'image-encoder': 'an image encoder',
  'image-classifier': 'an image classifier',
  'masked-image-model': 'a masked image model',
  'masked-image-encoder': 'a masked image encoder',
  'masked-lm': 'a masked language model',
  'text-encoder': 'a text encoder',
  'captioner': 'a captioner',
  'image-text-matcher': 'an image-text matcher',
  'online-action-detector': 'an online action detector',
};

export interface PipelineOptions extends CreateModelOptions {
  /** A folder with tokenizer.json (or the file), overriding the model's own. */
  tokenizer?: string;
  /** Inputs run through the model at once (default 32; 8 images for image-to-text). */
  batchSize?: number;
}

/** A model with what reads its inputs, as loadVisionLanguageModel and loadBlipModel return one. */
export interface LoadedModel {
  readonly model: Model;
  /** The registered name or folder it came from: where a tokenizer or image processor not given here is found. */
  readonly name?: string;
  readonly tokenizer?: TextTokenizer | null;
  readonly imageProcessor?: ImageProcessor;
}

/** A registered name or a folder, a built model, or a model with its tokenizer and image processor. */
export type PipelineModel = string | Model | LoadedModel;

/** One image (a path or encoded bytes), several, or pixel values [N, 3, H, W] already preprocessed. */
export type PipelineImages = ImageInput | readonly ImageInput[] | Tensor;

export interface ZeroShotImageClassificationOptions {
  /** The prompt, with {} where the label goes (default transformers.js's 'This is a photo of {}'). */
  hypothesis_template?: string;
  /** Several prompts whose text embeddings are averaged per label (open_clip's prompt ensembling), instead of hypothesis_template. */
  templates?: readonly string[];
}

export interface ImageClassificationOptions {
  /** Labels returned per image, best first (default 5; null or 0: all). */
  top_k?: number | null;
}

/** Generation options by transformers.js's (and HF generate's) names. */
export interface ImageToTextOptions {
  /** New tokens at most, the end token included (default 20). */
  max_new_tokens?: number;
  /** Beam search width (default 1: greedy). */
  num_beams?: number;
  length_penalty?: number;
  /** Sample (nucleus sampling with top_p, default 1) instead of taking the most likely token. */
  do_sample?: boolean;
  top_p?: number;
  temperature?: number;
  /** The sampling generator's seed (default 0). */
  seed?: number;
}

/** How a feature extractor's token states [N, T, D] are pooled: kept ('none'), their mean, or the first (CLS) token. */
export type FeaturePooling = 'none' | 'mean' | 'cls';

export interface FeatureExtractionOptions {
  /**
   * 'none' (default): a text encoder's token states [N, T, D], or a dual encoder's text
   * embeddings [N, D]; 'mean' (over the tokens the attention mask keeps) or 'cls': [N, D].
   */
  pooling?: FeaturePooling;
  /** L2-normalise each vector of the last axis (default false). */
  normalize?: boolean;
}

export interface ImageFeatureExtractionOptions {
  /**
   * 'none' (default): an image encoder's token states [N, 1 + patches, D], or a dual encoder's
   * image embeddings [N, D]; 'cls' (the final CLS token) or 'mean' (of the patch tokens): [N, D].
   */
  pooling?: FeaturePooling;
  /** L2-normalise each vector of the last axis (default false). */
  normalize?: boolean;
}

export interface GeneratedText {
  generated_text: string;
}

interface PipelineBase<T extends PipelineTask, M extends Model> {
  readonly task: T;
  readonly model: M;
}

export interface ZeroShotImageClassificationPipeline extends PipelineBase<'zero-shot-image-classification', DualEncoder> {
  /** Every candidate label with its score (CLIP: softmax over the labels; SigLIP: each label's sigmoid), best first. */
  (image: ImageInput, candidateLabels: readonly string[], options?: ZeroShotImageClassificationOptions): Promise<LabelScore[]>;
  (images: readonly ImageInput[] | Tensor, candidateLabels: readonly string[], options?: ZeroShotImageClassificationOptions): Promise<LabelScore[][]>;
  readonly tokenizer: TextTokenizer;
  readonly imageProcessor: ImageProcessor;
}

export interface ImageClassificationPipeline extends PipelineBase<'image-classification', ImageClassifier> {
  /** The top_k labels of the classifier's id2label with their softmax probabilities, best first. */
  (image: ImageInput, options?: ImageClassificationOptions): Promise<LabelScore[]>;
  (images: readonly ImageInput[] | Tensor, options?: ImageClassificationOptions): Promise<LabelScore[][]>;
  readonly imageProcessor: ImageProcessor;
}

export interface ImageToTextPipeline extends PipelineBase<'image-to-text', Model> {
  /** The caption of each image, as [{generated_text}]. */
  (image: ImageInput, options?: ImageToTextOptions): Promise<GeneratedText[]>;
  (images: readonly ImageInput[] | Tensor, options?: ImageToTextOptions): Promise<GeneratedText[][]>;
  readonly tokenizer: TextTokenizer;
  readonly imageProcessor: ImageProcessor;
}

export interface FeatureExtractionPipeline extends PipelineBase<'feature-extraction', Model> {
  /** Features of one text or several, always with a batch axis (see FeatureExtractionOptions). */
  (texts: string | readonly string[], options?: FeatureExtractionOptions): Promise<Tensor>;
  readonly tokenizer: TextTokenizer;
}

export interface ImageFeatureExtractionPipeline extends PipelineBase<'image-feature-extraction', Model> {
  /** Features of one image or several, always with a batch axis (see ImageFeatureExtractionOptions). */
  (images: PipelineImages, options?: ImageFeatureExtractionOptions): Promise<Tensor>;
  readonly imageProcessor: ImageProcessor;
}

/** The pipeline of each task. */
export interface PipelineTypes {
  'zero-shot-image-classification': ZeroShotImageClassificationPipeline;
  'image-classification': ImageClassificationPipeline;
  'image-to-text': ImageToTextPipeline;
  'feature-extraction': FeatureExtractionPipeline;
  'image-feature-extraction': ImageFeatureExtractionPipeline;
}

export type Pipeline = PipelineTypes[PipelineTask];

/** The model as pipeline() got it, with its name for messages and where to find its files. */
interface Source {
  readonly model: Model;
  /** A registered name or a folder; undefined for a built model given alone. */
  readonly nameOrDir: string | undefined;
  /** How messages name it. */
  readonly label: string;
  readonly tokenizer?: TextTokenizer | null;
  readonly imageProcessor?: ImageProcessor;
}

const isModel = (m: Model | LoadedModel): m is Model => typeof (m as Model).kind === 'string';

async function resolveSource(model: PipelineModel, createOptions: CreateModelOptions): Promise<Source> {
  if (typeof model === 'string') {
    const built = await createModel(model, createOptions);
    return { model: built, nameOrDir: model, label: models.find(model)?.name ?? model };
  }
  if (isModel(model)) return { model, nameOrDir: undefined, label: `the ${model.constructor.name} given` };
  if (!model || typeof model !== 'object' || !model.model || !isModel(model.model)) {
    throw new Error('pipeline: the model must be a registered name, a folder, a model, or an object with the model as `model` (and optionally its tokenizer and imageProcessor)');
  }
  const label = model.name ?? `the ${model.model.constructor.name} given`;
  return { model: model.model, nameOrDir: model.name, label, tokenizer: model.tokenizer, imageProcessor: model.imageProcessor };
}

/** The folder a name or folder reads its files from: the weights folder of a registered name, else the folder itself. */
function folderOf(src: Source, options: PipelineOptions): string | undefined {
  if (src.nameOrDir === undefined) return undefined;
  return models.find(src.nameOrDir) ? options.weights : src.nameOrDir;
}

/** The task's model check: a model of another kind is an error naming the tasks it serves. */
function checkPipelineTask(task: PipelineTask, model: Model, label: string): void {
  if (TASKS[task].accepts(model)) return;
  const fits = PIPELINE_TASKS.filter((t) => TASKS[t].accepts(model));
  const advice = fits.length ? `use ${fits.join(' or ')}` : 'no pipeline task takes it';
  throw new Error(`${task} needs ${TASKS[task].needs}; ${label} is ${KIND_NAMES[model.kind]} (${model.constructor.name}): ${advice}`);
}

/** Runs `fn` with the model in eval mode (dropout off), restoring its mode after. */
async function inEvalMode<T>(model: Model, fn: () => Promise<T>): Promise<T> {
  const wasTraining = model.training;
  model.eval();
  try {
    return await fn();
  } finally {
    if (wasTraining) model.train();
  }
}

/** The images of a call as a batch, and whether one image was given (its result is then not wrapped in a list). */
function imageBatch(images: PipelineImages, task: PipelineTask): { batch: readonly ImageInput[] | Tensor; single: boolean } {
  if (typeof images === 'string' || images instanceof Uint8Array) return { batch: [images], single: true };
  if (Array.isArray(images) || images instanceof Tensor) return { batch: images as readonly ImageInput[] | Tensor, single: false };
  throw new Error(`${task}: images must be a path, encoded bytes (Uint8Array), a list of those, or pixel values [N, 3, H, W]`);
}

function batchSizeOf(options: PipelineOptions, fallback: number): number {
  const b = options.batchSize ?? fallback;
  if (!Number.isInteger(b) || b < 1) throw new Error(`pipeline: batchSize must be a positive integer, got ${b}`);
  return b;
}

function checkPooling(task: PipelineTask, pooling: unknown): FeaturePooling {
  if (pooling === undefined) return 'none';
  if (pooling === 'none' || pooling === 'mean' || pooling === 'cls') return pooling;
  throw new Error(`${task}: pooling must be 'none', 'mean' or 'cls', got ${JSON.stringify(pooling)}`);
}

/** Dual encoders' embeddings are one vector per input already: only pooling 'none' applies. */
function dualEncoderPooling(task: PipelineTask, pooling: FeaturePooling, label: string): void {
  if (pooling !== 'none') {
    throw new Error(`${task}: ${label} is a dual encoder, whose embeddings are pooled already (one per input); leave pooling out, or set it to 'none'`);
  }
}

const hasFile = (dir: string | undefined, file: string): dir is string => dir !== undefined && fs.existsSync(path.join(dir, file));

/** A dual encoder with its tokenizer and image processor, found as loadVisionLanguageModel finds them. */
async function visionLanguageModel(src: Source, options: PipelineOptions): Promise<VisionLanguageModel> {
  const model = src.model as DualEncoder;
  const wrap = (tokenizer: TextTokenizer, imageProcessor: ImageProcessor): VisionLanguageModel =>
    ({ name: src.label, model, tokenizer, imageProcessor, contextLength: model.contextLength });
  if (src.tokenizer && src.imageProcessor) return wrap(src.tokenizer, src.imageProcessor);
  if (src.nameOrDir !== undefined) {
    const vl = await loadVisionLanguageModel(src.nameOrDir, { ...options, model });
    // The folder's zero-shot prompts (zeroshot_config.json) stay with it.
    return { ...wrap(src.tokenizer ?? vl.tokenizer, src.imageProcessor ?? vl.imageProcessor), ...(vl.zeroShot ? { zeroShot: vl.zeroShot } : {}) };
  }
  const tokenizer = src.tokenizer ?? (options.tokenizer !== undefined ? loadTokenizer(options.tokenizer) : model.family.tokenizer?.());
  if (!tokenizer) throw new Error(`${src.label}: no tokenizer is packaged for ${model.family.title}; pass the tokenizer option (a folder with tokenizer.json)`);
  return wrap(tokenizer, src.imageProcessor ?? dualEncoderProcessor(model, undefined));
}

/** A BLIP captioner with its tokenizer and image processor, found as loadBlipModel finds them. */
async function captioner(src: Source, options: PipelineOptions): Promise<BlipTaskModel & { tokenizer: TextTokenizer }> {
  const model = src.model as BlipForConditionalGeneration;
  let m: BlipTaskModel;
  if (src.nameOrDir !== undefined && (src.tokenizer === undefined || src.imageProcessor === undefined)) {
    m = await loadBlipModel(src.nameOrDir, { ...options, model });
  } else {
    const size = model.config.visionConfig.imageSize;
    m = { name: src.label, model, tokenizer: options.tokenizer !== undefined ? loadTokenizer(options.tokenizer) : null, imageProcessor: ImageProcessor.atSize('blip', size) };
  }
  const tokenizer = src.tokenizer ?? m.tokenizer;
  if (!tokenizer) throw new Error(`image-to-text: ${src.label} has no tokenizer to decode captions; pass the tokenizer option (a folder with tokenizer.json)`);
  return { name: src.label, model, tokenizer, imageProcessor: src.imageProcessor ?? m.imageProcessor };
}

/** A text encoder's tokenizer: the one given, else the tokenizer option's, the folder's tokenizer.json, or the one packaged for the name. */
function textEncoderTokenizer(src: Source, options: PipelineOptions): TextTokenizer {
  if (src.tokenizer) return src.tokenizer;
  if (options.tokenizer !== undefined) return loadTokenizer(options.tokenizer);
  const folder = folderOf(src, options);
  if (hasFile(folder, 'tokenizer.json') || hasFile(folder, 'tokenizer.json.gz')) return loadTokenizer(folder);
  const packaged = src.nameOrDir !== undefined ? models.find(src.nameOrDir)?.tokenizer : undefined;
  if (packaged) return packaged();
  throw new Error(`feature-extraction: no tokenizer for ${src.label}; give a folder with tokenizer.json, or pass the tokenizer option`);
}

function zeroShotPipeline(vl: VisionLanguageModel, batchSize: number): ZeroShotImageClassificationPipeline {
  const task = 'zero-shot-image-classification';
  const run = async (images: PipelineImages, candidateLabels: readonly string[], options: ZeroShotImageClassificationOptions = {}) => {
    const { batch, single } = imageBatch(images, task);
    if (!Array.isArray(candidateLabels)) throw new Error(`${task}: the candidate labels must be a list of strings, e.g. ['cat', 'dog']`);
    if (options.templates !== undefined && options.hypothesis_template !== undefined) throw new Error(`${task}: give hypothesis_template or templates, not both`);
    // transformers.js's default prompt, unless the model folder keeps the prompts it was trained and evaluated with.
    const templates = options.templates ?? (options.hypothesis_template !== undefined ? [options.hypothesis_template]
      : vl.zeroShot?.templates ?? ['This is a photo of {}']);
    const { predictions } = await inEvalMode(vl.model, () => zeroShotClassify(vl, batch, candidateLabels, { templates, topK: candidateLabels.length, batchSize }));
    return single ? predictions[0]! : predictions;
  };
  return Object.assign(run, { task, model: vl.model, tokenizer: vl.tokenizer, imageProcessor: vl.imageProcessor } as const) as unknown as ZeroShotImageClassificationPipeline;
}

function imageClassificationPipeline(model: ImageClassifier, label: string, folder: string | undefined, given: ImageProcessor | undefined,
  batchSize: number): ImageClassificationPipeline {
  const task = 'image-classification';
  const classifier = { ...imageClassifierTask(model, label, folder), ...(given ? { imageProcessor: given } : {}) };
  const run = async (images: PipelineImages, options: ImageClassificationOptions = {}) => {
    const { batch, single } = imageBatch(images, task);
    const { predictions } = await inEvalMode(model, () => classifyImages(classifier, batch, { topK: options.top_k, batchSize }));
    return single ? predictions[0]! : predictions;
  };
  return Object.assign(run, { task, model, imageProcessor: classifier.imageProcessor } as const) as unknown as ImageClassificationPipeline;
}

function imageToTextPipeline(m: BlipTaskModel & { tokenizer: TextTokenizer }, batchSize: number): ImageToTextPipeline {
  const task = 'image-to-text';
  const run = async (images: PipelineImages, options: ImageToTextOptions = {}) => {
    const { batch, single } = imageBatch(images, task);
    const sample = options.do_sample ?? false;
    const captions = await inEvalMode(m.model, () => caption(m, batch, {
      maxTokens: options.max_new_tokens, beams: options.num_beams, lengthPenalty: options.length_penalty,
      // As HF's generate: top_p and temperature shape sampling only.
      topP: sample ? (options.top_p ?? 1) : undefined, temperature: sample ? options.temperature : undefined, seed: options.seed,
      batchSize,
    }));
    const out = captions.map((text) => [{ generated_text: text }]);
    return single ? out[0]! : out;
  };
  return Object.assign(run, { task, model: m.model, tokenizer: m.tokenizer, imageProcessor: m.imageProcessor } as const) as unknown as ImageToTextPipeline;
}

/** Runs `f` on consecutive slices of `n` rows, `size` at a time, and joins the results along axis 0. */
function inBatches(n: number, size: number, f: (start: number, end: number) => Tensor): Tensor {
  const parts: Tensor[] = [];
  for (let start = 0; start < n; start += size) parts.push(f(start, Math.min(n, start + size)));
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

function textList(texts: string | readonly string[], task: PipelineTask): readonly string[] {
  const list = typeof texts === 'string' ? [texts] : texts;
  if (!Array.isArray(list) || list.some((t) => typeof t !== 'string')) throw new Error(`${task}: texts must be a string or a list of strings`);
  if (list.length === 0) throw new Error(`${task}: no texts`);
  return list;
}

function featureExtractionPipeline(src: Source, options: PipelineOptions, vl: VisionLanguageModel | null, batchSize: number): FeatureExtractionPipeline {
  const task = 'feature-extraction';
  const model = src.model;
  const tokenizer = vl ? vl.tokenizer : textEncoderTokenizer(src, options);
  const backend = model.parameters()[0]?.backend;
  const onModel = (t: Tensor) => (backend && t.backend !== backend ? t.to(backend) : t);
  const run = async (texts: string | readonly string[], opts: FeatureExtractionOptions = {}) => {
    const list = textList(texts, task);
    const pooling = checkPooling(task, opts.pooling);
    if (vl) dualEncoderPooling(task, pooling, src.label);
    const features = await inEvalMode(model, async () => noGrad(() => {
      if (vl) return inBatches(list.length, batchSize, (s, e) => vl.model.encodeText(onModel(tokenize(vl, list.slice(s, e)))));
      // BERT: every text padded to the longest of the call, as transformers.js tokenizes them.
      const bert = model.kind === 'masked-lm' ? (model as BertForMaskedLM).bert : (model as BertModel);
      const limit = Math.min(tokenizer.settings.contextLength ?? Infinity, bert.config.maxPositionEmbeddings);
      const enc = tokenizer.encode(list, { padding: 'longest', truncation: true, contextLength: limit });
      const T = enc.inputIds[0]!.length;
      const rows = (xs: number[][], s: number, e: number) => tensor(Int32Array.from(xs.slice(s, e).flat()), { shape: [e - s, T], dtype: 'int32', backend });
      return inBatches(list.length, batchSize, (s, e) => {
        const mask = rows(enc.attentionMask, s, e);
        const states = bert.forward(rows(enc.inputIds, s, e), { attentionMask: mask, tokenTypeIds: rows(enc.tokenTypeIds, s, e) }).lastHiddenState;
        if (pooling === 'cls') return states.select(1, 0);
        if (pooling === 'none') return states;
        const weights = tensor(Float32Array.from(enc.attentionMask.slice(s, e).flat()), { shape: [e - s, T, 1], backend });
        return states.mul(weights).sum(1).div(weights.sum(1));
      });
    }));
    return opts.normalize ? noGrad(() => l2Normalize(features)) : features;
  };
  return Object.assign(run, { task, model, tokenizer } as const) as unknown as FeatureExtractionPipeline;
}

function imageFeatureExtractionPipeline(src: Source, options: PipelineOptions, batchSize: number): ImageFeatureExtractionPipeline {
  const task = 'image-feature-extraction';
  const model = src.model;
  const folder = folderOf(src, options);
  const dual = model.kind === 'dual-encoder' ? model : null;
  const encoder: ImageEncoder | null = dual ? null : model.imageEncoder!();
  const imageProcessor = src.imageProcessor ?? (dual ? dualEncoderProcessor(dual, folder) : imageEncoderProcessor(encoder!.imageSize, folder));
  const backend = model.parameters()[0]?.backend;
  const run = async (images: PipelineImages, opts: ImageFeatureExtractionOptions = {}) => {
    const { batch } = imageBatch(images, task);
    const pooling = checkPooling(task, opts.pooling);
    if (dual) dualEncoderPooling(task, pooling, src.label);
    const extract = (pixels: Tensor): Tensor => {
      const px = backend && pixels.backend !== backend ? pixels.to(backend) : pixels;
      if (dual) return dual.encodeImage(px);
      const states = encoder!.tokenStates(px);
      return pooling === 'none' ? states : poolImageTokens(states, pooling);
    };
    const features = await inEvalMode(model, async () => {
      if (!Array.isArray(batch)) {
        const pixels = batch as Tensor;
        if (pixels.ndim !== 4) throw new Error(`${task}: pixel values must be [N, 3, H, W], got [${pixels.shape}]`);
        return noGrad(() => extract(pixels));
      }
      const list = batch as readonly ImageInput[];
      if (list.length === 0) throw new Error(`${task}: no images`);
      const parts: Tensor[] = [];
      for (let i = 0; i < list.length; i += batchSize) {
        const pixels = await imageProcessor.preprocess(list.slice(i, i + batchSize), { backend });
        parts.push(noGrad(() => extract(pixels)));
      }
      return parts.length === 1 ? parts[0]! : concat(parts, 0);
    });
    return opts.normalize ? noGrad(() => l2Normalize(features)) : features;
  };
  return Object.assign(run, { task, model, imageProcessor } as const) as unknown as ImageFeatureExtractionPipeline;
}

/**
 * A pipeline for `task` on `model`, as transformers.js's pipeline(): a registered name or folder
 * (built with `options`, which go to createModel: weights, backend, ...), a built model, or a
 * model with its tokenizer and image processor. A model of a kind the task cannot use is an
 * error naming the tasks it serves.
 *
 * ```ts
 * const classify = await pipeline('zero-shot-image-classification', 'runs/demo/model');
 * await classify('cat.jpg', ['cat', 'dog']); // [{ label: 'cat', score: 0.93 }, { label: 'dog', score: 0.07 }]
 * ```
 */
export async function pipeline<T extends PipelineTask>(task: T, model: PipelineModel, options: PipelineOptions = {}): Promise<PipelineTypes[T]> {
  if (!(PIPELINE_TASKS as readonly string[]).includes(task)) {
    throw new Error(`pipeline: unknown task ${JSON.stringify(task)}; the tasks are ${PIPELINE_TASKS.join(', ')}`);
  }
  const { tokenizer: _tokenizer, batchSize: _batchSize, ...createOptions } = options;
  const src = await resolveSource(model, createOptions);
  checkPipelineTask(task, src.model, src.label);
  const m = src.model;
  const t: PipelineTask = task;
  let out: Pipeline;
  switch (t) {
    case 'zero-shot-image-classification':
      out = zeroShotPipeline(await visionLanguageModel(src, options), batchSizeOf(options, 32));
      break;
    case 'image-classification':
      out = imageClassificationPipeline(m as ImageClassifier, src.label, folderOf(src, options), src.imageProcessor, batchSizeOf(options, 32));
      break;
    case 'image-to-text':
      out = imageToTextPipeline(await captioner(src, options), batchSizeOf(options, 8));
      break;
    case 'feature-extraction':
      out = featureExtractionPipeline(src, options, m.kind === 'dual-encoder' ? await visionLanguageModel(src, options) : null, batchSizeOf(options, 32));
      break;
    case 'image-feature-extraction':
      out = imageFeatureExtractionPipeline(src, options, batchSizeOf(options, 32));
      break;
  }
  return out as PipelineTypes[T];
}
