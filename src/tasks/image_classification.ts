// Image classification with a classifier head (ViTForImageClassification): the model with its
// image processor, and each image's labels (config.json's id2label) ranked by the softmax of its
// logits, as the image-classification pipelines of HF transformers and transformers.js rank them.
import type { ImageInput, ImageProcessor } from '../data/image.js';
import type { ImageClassifier } from '../models/family.js';
import { type CreateModelOptions, createModel, models } from '../models/registry.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import type { Tensor } from '../tensor/tensor.js';
import { imageEncoderProcessor } from './image_features.js';
import { type LabelScore, rankLabels } from './zeroshot.js';

/** An image classifier with the processor that reads its images. */
export interface ImageClassifierTask {
  /** The registered name or the folder it came from. */
  readonly name: string;
  readonly model: ImageClassifier;
  readonly imageProcessor: ImageProcessor;
}

/** A built classifier with its image processor: the folder's preprocessor_config.json, else ViT's defaults at its size. */
export function imageClassifierTask(model: ImageClassifier, name: string, folder?: string): ImageClassifierTask {
  return { name, model, imageProcessor: imageEncoderProcessor(model.imageSize, folder) };
}

/**
 * An image classifier by folder (a ViTForImageClassification, e.g. a ce training run's model/) or
 * by registered name with `weights`; a model without a classifier head is an error.
 */
export async function loadImageClassifier(nameOrDir: string, options: CreateModelOptions = {}): Promise<ImageClassifierTask> {
  const entry = models.find(nameOrDir);
  const name = entry?.name ?? nameOrDir;
  const model = await createModel(nameOrDir, options);
  if (model.kind !== 'image-classifier') {
    const zeroShot = model.kind === 'dual-encoder' ? '; a CLIP or SigLIP model classifies zero-shot, against class names' : '';
    throw new Error(`${name}: ${model.constructor.name} has no classifier head; image classification needs an image classifier `
      + `(ViTForImageClassification with its id2label, such as a ce training run's model)${zeroShot}`);
  }
  return imageClassifierTask(model, name, entry ? options.weights : nameOrDir);
}

export interface ClassifyImagesOptions {
  /** Labels kept per image, best first: default 5 (transformers.js's), at most the number of labels; null or 0 keeps them all. */
  topK?: number | null;
  /** Images run through the model at once (default 32). */
  batchSize?: number;
}

export interface ImageClassificationResult {
  /** Per image, the top-k labels with their probabilities, best first. */
  predictions: LabelScore[][];
  /** [images, labels] class logits. */
  logits: Tensor;
  /** [images, labels] softmax of the logits. */
  probs: Tensor;
}

/** Pixel values [B, 3, H, W] of image files or bytes in batches, or the given pixel values, on the model's backend. */
async function pixelBatches(task: ImageClassifierTask, images: readonly ImageInput[] | Tensor, batchSize: number): Promise<Tensor[]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const backend = task.model.parameters()[0]?.backend;
  if (!Array.isArray(images)) {
    const pixels = images as Tensor;
    if (pixels.ndim !== 4) throw new Error(`image classification: pixel values must be [N, 3, H, W], got [${pixels.shape}]`);
    return [backend && pixels.backend !== backend ? pixels.to(backend) : pixels];
  }
  const list = images as readonly ImageInput[];
  if (list.length === 0) throw new Error('image classification: no images');
  const out: Tensor[] = [];
  for (let i = 0; i < list.length; i += batchSize) out.push(await task.imageProcessor.preprocess(list.slice(i, i + batchSize), { backend }));
  return out;
}

/** The number of labels kept of `count`: topK clamped to it; null or 0 is all of them. */
function keptLabels(topK: number | null | undefined, count: number): number {
  const k = topK === undefined ? 5 : topK;
  if (k === null || k === 0) return count;
  if (!Number.isInteger(k) || k < 0) throw new Error(`image classification: topK (top_k) must be a positive integer, or null or 0 for every label; got ${k}`);
  return Math.min(k, count);
}

/**
 * Classifies images (files, encoded bytes, or pixel values [N, 3, H, W] already preprocessed)
 * with the classifier's head: per image its labels ranked by softmax probability.
 */
export async function classifyImages(classifier: ImageClassifierTask | string, images: readonly ImageInput[] | Tensor,
  options: ClassifyImagesOptions = {}): Promise<ImageClassificationResult> {
  const task = typeof classifier === 'string' ? await loadImageClassifier(classifier) : classifier;
  const labels = task.model.labels;
  const k = keptLabels(options.topK, labels.length);
  const parts = (await pixelBatches(task, images, options.batchSize ?? 32)).map((px) => noGrad(() => task.model.classify(px)));
  const logits = parts.length === 1 ? parts[0]! : concat(parts, 0);
  const probs = noGrad(() => logits.softmax(-1));
  return { predictions: rankLabels(probs, labels, k), logits, probs };
}
