// Tasks on top of the zoo's dual encoders (CLIP, SigLIP): image and text embeddings and
// zero-shot classification with prompt ensembling, as open_clip builds its zero-shot classifier.
import fs from 'node:fs';
import path from 'node:path';
import { type ImageInput, ImageProcessor } from '../data/image.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { l2Normalize } from '../models/clip.js';
import type { DualEncoder, Model } from '../models/family.js';
import { type CreateModelOptions, createModel, modelFamily, modelSource } from '../models/registry.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import type { Tensor } from '../tensor/tensor.js';

/** A dual encoder with what it needs to read inputs: its tokenizer and image processor. */
export interface VisionLanguageModel {
  /** The registered name or the folder it came from. */
  readonly name: string;
  readonly model: DualEncoder;
  readonly tokenizer: TextTokenizer;
  readonly imageProcessor: ImageProcessor;
  /** The text tower's context length (texts are padded to it, as the reference processors do). */
  readonly contextLength: number;
  /** How the model was evaluated zero-shot in training (its folder's zeroshot_config.json), if recorded. */
  readonly zeroShot?: ZeroShotConfig;
}

/** The file of a model folder that records its zero-shot prompts (HF's from_pretrained ignores it). */
export const ZEROSHOT_CONFIG_FILE = 'zeroshot_config.json';

/**
 * How a model is used zero-shot, as training evaluated it: the prompt templates (the default of
 * the zero-shot tasks for this model) and the class names of the evaluation set.
 */
export interface ZeroShotConfig {
  readonly templates: readonly string[];
  readonly classNames?: readonly string[];
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');

/** A folder's zeroshot_config.json ({templates, class_names}), or undefined when it has none. */
export function readZeroShotConfig(dir: string): ZeroShotConfig | undefined {
  const file = path.join(dir, ZEROSHOT_CONFIG_FILE);
  if (!fs.existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); fix or delete the file`, { cause: e });
  }
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (!isStringList(o.templates)) throw new Error(`${file}: "templates" must be a non-empty list of strings with {} for the class name; fix or delete the file`);
  for (const t of o.templates) fillTemplate(t, 'x'); // each names its template if it has no {}
  if (o.class_names !== undefined && !isStringList(o.class_names)) throw new Error(`${file}: "class_names" must be a non-empty list of strings; fix or delete the file`);
  return { templates: o.templates, ...(o.class_names !== undefined ? { classNames: o.class_names as string[] } : {}) };
}

/** Writes zeroshot_config.json into a model folder. */
export function writeZeroShotConfig(dir: string, c: ZeroShotConfig): void {
  const json = { templates: c.templates, ...(c.classNames ? { class_names: c.classNames } : {}) };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, ZEROSHOT_CONFIG_FILE), `${JSON.stringify(json, null, 2)}\n`);
}

export interface LoadVisionLanguageOptions extends CreateModelOptions {
  /** A folder with tokenizer.json, overriding the model's own. */
  tokenizer?: string;
  /** The model `nameOrDir` names, already built (by createModel): it is wrapped instead of built again. */
  model?: Model;
}

const hasFile = (dir: string | undefined, file: string): dir is string => dir !== undefined && fs.existsSync(path.join(dir, file));

/** A dual encoder's image processor: its folder's preprocessor_config.json, else its family's defaults at its size. */
export function dualEncoderProcessor(model: DualEncoder, dir: string | undefined): ImageProcessor {
  const family = model.family.imageProcessor!;
  if (hasFile(dir, 'preprocessor_config.json')) return ImageProcessor.fromPretrained(dir, family);
  return ImageProcessor.atSize(family, model.imageSize);
}

/**
 * A CLIP or SigLIP model ready for the tasks: by registered name (with `weights`, or untrained
 * with `init: 'random'`), by HF or open_clip folder, or an already built model (wrapped with a
 * tokenizer and processor). The tokenizer is `options.tokenizer`'s, else the folder's
 * tokenizer.json, else the one packaged for the name or the family (CLIP's BPE; the byte
 * tokenizer of the tiny models); a tokenizer whose ids the text tower cannot embed is an error.
 * A folder's zeroshot_config.json (written by training) gives the prompt templates the zero-shot
 * tasks use by default.
 */
export async function loadVisionLanguageModel(nameOrDir: string, options: LoadVisionLanguageOptions = {}): Promise<VisionLanguageModel> {
  // These checks come before building the model, which for a full-size name takes a while.
  const { entry, folder, modelType } = modelSource(nameOrDir, options, (type) => {
    if (type !== 'clip' && type !== 'siglip') throw new Error(`${nameOrDir}: a ${type} model is not a dual encoder (CLIP or SigLIP), which these tasks need`);
  });
  const family = modelFamily(modelType);
  const noTokenizer = (title: string) => new Error(`${nameOrDir}: no tokenizer is packaged for ${title}; pass a weights folder with tokenizer.json, or the tokenizer option`);
  let tokenizer: TextTokenizer | undefined;
  // Where the tokenizer comes from, for the error when it does not fit: a file, or what it is packaged for.
  let file: string | undefined;
  let packagedFor: string | undefined;
  if (options.tokenizer !== undefined) {
    tokenizer = loadTokenizer(options.tokenizer);
    file = `the tokenizer in ${options.tokenizer}`;
  } else if (hasFile(folder, 'tokenizer.json') || hasFile(folder, 'tokenizer.json.gz')) {
    tokenizer = loadTokenizer(folder);
    file = `${folder}/tokenizer.json`;
  } else if (entry?.tokenizer) {
    tokenizer = entry.tokenizer();
    packagedFor = `model '${entry.name}'`;
  } else if (!family.tokenizer) throw noTokenizer(family.title);
  const { tokenizer: _tokenizer, model: built, ...createOptions } = options;
  const model = built ?? await createModel(nameOrDir, createOptions);
  if (model.kind !== 'dual-encoder') {
    throw new Error(`${nameOrDir}: ${model.constructor.name} is not a dual encoder (CLIP or SigLIP), which these tasks need`);
  }
  if (!tokenizer) {
    if (!model.family.tokenizer) throw noTokenizer(model.family.title);
    tokenizer = model.family.tokenizer();
    packagedFor = model.family.title;
  }
  // Ids past the text tower's embedding table would fail deep in the forward pass (an index out
  // of range): name the cause instead.
  if (tokenizer.vocabSize > model.vocabSize) {
    const sizes = `${tokenizer.vocabSize} tokens, but the text model embeds ${model.vocabSize}`;
    if (file !== undefined) throw new Error(`${folder ?? nameOrDir}: ${file} has ${sizes}; pass the tokenizer the model was trained with (--tokenizer <folder>)`);
    if (folder === undefined) throw new Error(`${nameOrDir}: the tokenizer packaged for it has ${sizes}`);
    throw new Error(`${folder}: no tokenizer.json, and the tokenizer packaged for ${packagedFor} has ${sizes}: `
      + 'add the tokenizer.json the model was trained with to the folder, or pass its folder as the tokenizer option (--tokenizer <folder>)');
  }
  const zeroShot = folder !== undefined ? readZeroShotConfig(folder) : undefined;
  return {
    name: entry?.name ?? nameOrDir, model, tokenizer, imageProcessor: dualEncoderProcessor(model, folder), contextLength: model.contextLength,
    ...(zeroShot ? { zeroShot } : {}),
  };
}

type ModelArg = VisionLanguageModel | string;

const resolve = (m: ModelArg): Promise<VisionLanguageModel> => (typeof m === 'string' ? loadVisionLanguageModel(m) : Promise.resolve(m));

export interface EmbedOptions {
  /** Inputs run through the model at once (default 32). */
  batchSize?: number;
}

function batches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`batchSize must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Token ids [B, contextLength] as the reference processors give them (padded to the context). */
export function tokenize(vl: VisionLanguageModel, texts: readonly string[]): Tensor {
  return vl.tokenizer.encodeTensors(texts, { contextLength: vl.contextLength, padding: 'max_length' }).inputIds;
}

/** Text embeddings [N, D], L2-normalised. */
export async function embedTexts(model: ModelArg, texts: readonly string[], options: EmbedOptions = {}): Promise<Tensor> {
  const vl = await resolve(model);
  if (texts.length === 0) throw new Error('embedTexts: no texts');
  const backend = vl.model.parameters()[0]?.backend;
  const parts = batches(texts, options.batchSize ?? 32).map((b) => noGrad(() => {
    const ids = tokenize(vl, b);
    const feats = vl.model.encodeText(backend && ids.backend !== backend ? ids.to(backend) : ids);
    return l2Normalize(feats);
  }));
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

/**
 * Image embeddings [N, D], L2-normalised, of image files (or encoded bytes), or of pixel values
 * [N, 3, H, W] already preprocessed.
 */
export async function embedImages(model: ModelArg, images: readonly ImageInput[] | Tensor, options: EmbedOptions = {}): Promise<Tensor> {
  const vl = await resolve(model);
  const backend = vl.model.parameters()[0]?.backend;
  const run = (pixels: Tensor) => noGrad(() => l2Normalize(vl.model.encodeImage(backend && pixels.backend !== backend ? pixels.to(backend) : pixels)));
  if (!Array.isArray(images)) {
    const pixels = images as Tensor;
    if (pixels.ndim !== 4) throw new Error(`embedImages: pixel values must be [N, 3, H, W], got [${pixels.shape}]`);
    return run(pixels);
  }
  const list = images as readonly ImageInput[];
  if (list.length === 0) throw new Error('embedImages: no images');
  const parts: Tensor[] = [];
  for (const b of batches(list, options.batchSize ?? 32)) parts.push(run(await vl.imageProcessor.preprocess(b, { backend })));
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

/** A template applied to a class name: `{}` or `{c}` marks where the name goes. */
export function fillTemplate(template: string, label: string): string {
  if (!/\{c?\}/.test(template)) throw new Error(`template ${JSON.stringify(template)} has no {} (or {c}) for the class name`);
  return template.replace(/\{c?\}/g, () => label);
}

/** open_clip's default single prompt. */
export const DEFAULT_TEMPLATES: readonly string[] = ['a photo of a {}.'];

/** The templates a zero-shot task uses: the given ones, else the model folder's, else open_clip's default. */
export function zeroShotTemplates(vl: VisionLanguageModel, templates?: readonly string[]): readonly string[] {
  return templates ?? vl.zeroShot?.templates ?? DEFAULT_TEMPLATES;
}

/**
 * The zero-shot classifier [C, D] as open_clip builds it: for each class, every template's text
 * embedding, each L2-normalised, averaged, and the mean normalised again. Templates default as
 * zeroShotTemplates says.
 */
export async function buildZeroShotClassifier(model: ModelArg, labels: readonly string[], templates?: readonly string[],
  options: EmbedOptions = {}): Promise<Tensor> {
  const vl = await resolve(model);
  const prompts = zeroShotTemplates(vl, templates);
  if (labels.length === 0) throw new Error('zero-shot: no labels');
  if (prompts.length === 0) throw new Error('zero-shot: no templates');
  const texts = labels.flatMap((l) => prompts.map((t) => fillTemplate(t, l)));
  const emb = await embedTexts(vl, texts, options);
  const D = emb.shape[1]!;
  return noGrad(() => l2Normalize(emb.reshape([labels.length, prompts.length, D]).mean(1)));
}

export interface ZeroShotOptions extends EmbedOptions {
  /** Prompt templates with `{}` for the class name (default: the model folder's, else 'a photo of a {}.'). */
  templates?: readonly string[];
  /** Labels kept per image, best first (default 5, at most the number of labels). */
  topK?: number;
}

export interface LabelScore {
  label: string;
  /** The probability: softmax over the labels (CLIP) or each label's sigmoid (SigLIP). */
  score: number;
}

export interface ZeroShotResult {
  /** Per image, the top-k labels, best first. */
  predictions: LabelScore[][];
  /** [images, labels] logits: scale * cos (+ bias for SigLIP). */
  logits: Tensor;
  /** [images, labels] softmax (CLIP) or sigmoid (SigLIP) of the logits. */
  probs: Tensor;
}

/**
 * Zero-shot classification: logits = exp(logit_scale) * image . class (+ logit_bias for SigLIP)
 * against the prompt-ensembled classifier; scores are the softmax over labels for CLIP, and
 * each label's own sigmoid for SigLIP.
 */
export async function zeroShotClassify(model: ModelArg, images: readonly ImageInput[] | Tensor, labels: readonly string[],
  options: ZeroShotOptions = {}): Promise<ZeroShotResult> {
  const vl = await resolve(model);
  const classifier = await buildZeroShotClassifier(vl, labels, options.templates, options);
  const img = await embedImages(vl, images, options);
  const { logits, probs } = noGrad(() => vl.model.pairLogits(img, classifier));
  const k = Math.min(options.topK ?? 5, labels.length);
  if (!Number.isInteger(k) || k < 1) throw new Error(`zero-shot: topK must be a positive integer, got ${options.topK}`);
  return { predictions: rankLabels(probs, labels, k), logits, probs };
}

/** Per row of scores [N, labels], the k best labels with their scores, best first (equal scores keep the labels' order). */
export function rankLabels(scores: Tensor, labels: readonly string[], k: number): LabelScore[][] {
  const p = scores.toArray();
  const C = labels.length;
  return Array.from({ length: p.length / C }, (_, i) => {
    const row = p.slice(i * C, (i + 1) * C).map((score, j) => ({ label: labels[j]!, score }));
    return row.sort((a, b) => b.score - a.score).slice(0, k);
  });
}

/** The rows of a [N, D] tensor as arrays. */
export function rows(t: Tensor): number[][] {
  const [n, d] = t.shape as [number, number];
  const flat = t.toArray();
  return Array.from({ length: n }, (_, i) => flat.slice(i * d, (i + 1) * d));
}
