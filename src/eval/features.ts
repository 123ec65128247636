// Features of a whole Dataset for the evaluations: samples read in index order, decoded and
// preprocessed by the model's image processor, run through a feature extractor in batches with
// gradients off and the model in eval mode.
import type { Dataset, Sample } from '../data/dataset.js';
import { decodeImage, type ImageProcessor, type RgbImage } from '../data/image.js';
import { l2Normalize } from '../models/clip.js';
import type { ImageEncoder } from '../models/family.js';
import { type CreateModelOptions, createModel, modelSource } from '../models/registry.js';
import type { Module } from '../nn/module.js';
import { imageEncoderProcessor, poolImageTokens } from '../tasks/image_features.js';
import { dualEncoderProcessor, type VisionLanguageModel } from '../tasks/zeroshot.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type EvalRanks, gatherItems, gatherRows, isShared, shardRange } from './shard.js';

/**
 * Image features of a batch: pixel values [B, 3, H, W] -> [B, D]. `indices` are the batch's
 * samples' indices in the dataset, for an extractor whose result must not depend on which batch a
 * sample is in (an MAE's masks, drawn per sample).
 */
export type FeatureExtractor = (pixelValues: Tensor, indices?: readonly number[]) => Tensor;

/** What reads a dataset's images into a model's pixel values, and the model to run in eval mode. */
export interface ImageFeatureSource {
  readonly imageProcessor: ImageProcessor;
  readonly extract: FeatureExtractor;
  /** Put in eval mode while features are computed (then restored). */
  readonly module?: Module;
}

/** A dual encoder's L2-normalised image embeddings (what zero-shot, retrieval and filtering compare). */
export function imageEmbeddingSource(vl: Pick<VisionLanguageModel, 'model' | 'imageProcessor'>): ImageFeatureSource {
  const backend = vl.model.parameters()[0]?.backend;
  return {
    imageProcessor: vl.imageProcessor,
    module: vl.model,
    extract: (pixels) => l2Normalize(vl.model.encodeImage(backend && pixels.backend !== backend ? pixels.to(backend) : pixels)),
  };
}

/**
 * An image encoder's features for a linear probe: the final CLS token ('cls', after the last
 * layer norm) or the mean of the patch tokens ('mean').
 */
export function vitFeatureSource(model: ImageEncoder, imageProcessor: ImageProcessor, pooling: 'cls' | 'mean' = 'cls'): ImageFeatureSource {
  return {
    imageProcessor,
    module: model,
    extract: (pixels) => poolImageTokens(model.tokenStates(pixels), pooling),
  };
}

export interface FeatureSourceOptions extends Pick<CreateModelOptions, 'weights' | 'init' | 'backend'> {
  /** For a ViT: the final CLS token (default) or the mean of the patch tokens. */
  pooling?: 'cls' | 'mean';
}

/**
 * The image features of a model by registered name or folder: a CLIP or SigLIP model's
 * L2-normalised image embeddings, or a ViT's pooled tokens (with or without its classifier head,
 * which is not used). A ViT-MAE's encoder is probed as the ViT it is (vitModelFromMAE): every
 * patch, none masked, the decoder unused. Its image processor is the folder's, else the ViT
 * family's at the model's size.
 */
export async function loadFeatureSource(nameOrDir: string, options: FeatureSourceOptions = {}): Promise<ImageFeatureSource> {
  const { pooling, ...createOptions } = options;
  const { folder } = modelSource(nameOrDir, createOptions);
  const model = await createModel(nameOrDir, createOptions);
  if (model.kind === 'dual-encoder') return imageEmbeddingSource({ model, imageProcessor: dualEncoderProcessor(model, folder) });
  const vit = model.imageEncoder?.();
  if (!vit) throw new Error(`${nameOrDir}: ${model.constructor.name} has no image features to probe (a CLIP, SigLIP, ViT or ViT-MAE model is needed)`);
  return vitFeatureSource(vit, imageEncoderProcessor(vit.imageSize, folder), pooling ?? 'cls');
}

/** The decoded RGB image of a sample. */
export async function sampleImage(sample: Sample): Promise<RgbImage> {
  return sample.image.kind === 'pixels' ? sample.image.image : decodeImage(sample.image.bytes, { name: sample.image.name });
}

/**
 * fn over items with at most `limit` calls in flight, results in order: decoding and reading
 * overlap (sharp decodes on libuv's threads) while no more than `limit` full-size images are held.
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** Decodes at once (sharp's worker count, as ImageProcessor.preprocess). */
const DECODE_CONCURRENCY = 4;

/** Pixel values [B, 3, H, W] of samples, all processed to one size. */
export async function samplePixels(samples: readonly Sample[], processor: ImageProcessor): Promise<Tensor> {
  if (samples.length === 0) throw new Error('samplePixels: no samples');
  const pixels = await mapConcurrent(samples, DECODE_CONCURRENCY, async (s) => processor.pixelValues(await sampleImage(s)));
  const { height, width } = pixels[0]!;
  const plane = pixels[0]!.data.length;
  const data = new Float32Array(samples.length * plane);
  pixels.forEach((p, i) => {
    if (p.height !== height || p.width !== width) {
      throw new Error(`${samples[i]!.key}: preprocessed to ${p.height}x${p.width}, but ${samples[0]!.key} to ${height}x${width}; a batch needs one size`);
    }
    data.set(p.data, i * plane);
  });
  return tensor(data, { shape: [samples.length, 3, height, width] });
}

export interface DatasetPassOptions {
  /** Samples per forward pass (default 32). */
  batchSize?: number;
  /** Only the first `limit` samples. */
  limit?: number;
  /** Called after each batch with the samples done so far (of this rank's share, when shared). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The ranks of a job that share the pass: each computes the rows of its share of the samples
   * and every rank gets all of them (sampleRows). Every rank must make the same call.
   */
  communicator?: EvalRanks;
}

/** The samples evaluated: the first `limit` (default all), checked. */
export function evaluatedCount(dataset: Dataset, limit?: number): number {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new Error(`limit must be a positive integer, got ${limit}`);
  const n = Math.min(dataset.length, limit ?? Infinity);
  if (n === 0) throw new Error(`${dataset.name}: the dataset is empty`);
  return n;
}

export function batchSizeOf(options: DatasetPassOptions): number {
  const b = options.batchSize ?? 32;
  if (!Number.isInteger(b) || b < 1) throw new Error(`batchSize must be a positive integer, got ${b}`);
  return b;
}

/** Runs `fn` with `module` in eval mode (dropout off), restoring its mode after. */
export async function withEvalMode<T>(module: Module | undefined, fn: () => Promise<T>): Promise<T> {
  const wasTraining = module?.training ?? false;
  module?.eval();
  try {
    return await fn();
  } finally {
    if (wasTraining) module?.train();
  }
}

/** The features [B, D] of a batch of samples (at `indices` in their dataset), gradients off. */
export async function embedSamples(samples: readonly Sample[], source: ImageFeatureSource, indices?: readonly number[]): Promise<Tensor> {
  const pixels = await samplePixels(samples, source.imageProcessor);
  const features = noGrad(() => source.extract(pixels, indices));
  if (features.ndim !== 2 || features.shape[0] !== samples.length) {
    throw new Error(`feature extractor: expected [${samples.length}, D] features, got [${features.shape}]`);
  }
  return features;
}

/**
 * Walks a dataset in index order, batch by batch, in this process alone: `visit` gets each
 * batch's samples and their features. The source's module is in eval mode meanwhile; gradients
 * are off. (A pass the ranks of a job share is sampleRows.)
 */
export async function forEachBatch(dataset: Dataset, source: ImageFeatureSource, options: DatasetPassOptions,
  visit: (samples: Sample[], features: Tensor) => void | Promise<void>): Promise<void> {
  if (isShared(options.communicator)) throw new Error(`forEachBatch: ${dataset.name} would be walked whole by each of ${options.communicator.worldSize} ranks; share the pass with sampleRows`);
  const n = evaluatedCount(dataset, options.limit);
  const batchSize = batchSizeOf(options);
  await withEvalMode(source.module, async () => {
    for (let start = 0; start < n; start += batchSize) {
      const indices = Array.from({ length: Math.min(n, start + batchSize) - start }, (_, k) => start + k);
      const samples = await mapConcurrent(indices, DECODE_CONCURRENCY, (i) => dataset.get(i));
      await visit(samples, await embedSamples(samples, source, indices));
      options.onProgress?.(start + samples.length, n);
    }
  });
}

/** What the evaluations read of a sample beside its image. */
export interface SampleInfo {
  readonly key: string;
  readonly label?: number;
  readonly caption?: string;
}

function sampleInfo(s: Sample): SampleInfo {
  return { key: s.key, ...(s.label !== undefined ? { label: s.label } : {}), ...(s.caption !== undefined ? { caption: s.caption } : {}) };
}

/** One row per sample of a pass, in the order of its indices, with what each sample says. */
export interface SampleRows {
  /** [samples, D]: the source's output per sample, on the host. */
  readonly rows: Tensor;
  readonly samples: SampleInfo[];
}

/**
 * The source's rows [count, D] for the samples at `indices` (default the first `limit`), in that
 * order, batch by batch with the source's module in eval mode and gradients off. With a
 * communicator of several ranks each rank computes a contiguous share (batches of batchSize
 * within it) and every rank gets every row, so the result is the one process's, up to the float
 * rounding of forward passes over batches made up differently.
 */
export async function sampleRows(dataset: Dataset, source: ImageFeatureSource, options: DatasetPassOptions & { indices?: readonly number[] } = {}): Promise<SampleRows> {
  const all = options.indices ?? Array.from({ length: evaluatedCount(dataset, options.limit) }, (_, i) => i);
  if (all.length === 0) throw new Error(`${dataset.name}: no samples to evaluate`);
  const batchSize = batchSizeOf(options);
  const { start, end } = shardRange(all.length, options.communicator);
  const mine = all.slice(start, end);
  const parts: Tensor[] = [];
  const infos: SampleInfo[] = [];
  await withEvalMode(source.module, async () => {
    for (let b = 0; b < mine.length; b += batchSize) {
      const indices = mine.slice(b, b + batchSize);
      const samples = await mapConcurrent(indices, DECODE_CONCURRENCY, (i) => dataset.get(i));
      parts.push(await embedSamples(samples, source, indices));
      infos.push(...samples.map(sampleInfo));
      options.onProgress?.(b + indices.length, mine.length);
    }
  });
  const local = parts.length === 0 ? null : parts.length === 1 ? parts[0]! : concat(parts, 0);
  const rows = await gatherRows(local, all.length, options.communicator);
  return { rows, samples: await gatherItems(infos, options.communicator) };
}

/** Features of a dataset's images, with what the samples say about them. */
export interface DatasetFeatures {
  /** Row-major [count, dim], float64 (the probe and the metrics compute in double). */
  readonly features: Float64Array;
  readonly count: number;
  readonly dim: number;
  readonly keys: string[];
  /** Class ids, when every sample has one. */
  readonly labels?: Int32Array;
  /** Captions, when every sample has one. */
  readonly captions?: string[];
}

/** Every image's features (see sampleRows), in dataset order. */
export async function extractFeatures(dataset: Dataset, source: ImageFeatureSource, options: DatasetPassOptions = {}): Promise<DatasetFeatures> {
  const { rows, samples } = await sampleRows(dataset, source, options);
  const keys = samples.map((s) => s.key);
  const labels = samples.map((s) => s.label);
  const captions = samples.map((s) => s.caption);
  const all = <T>(xs: (T | undefined)[]): xs is T[] => xs.every((x) => x !== undefined);
  return {
    features: Float64Array.from(rows.data() as Float32Array), count: samples.length, dim: rows.shape[1]!, keys,
    labels: all(labels) ? Int32Array.from(labels) : undefined,
    captions: all(captions) ? captions : undefined,
  };
}
