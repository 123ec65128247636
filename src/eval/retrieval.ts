// Image <-> text retrieval as open_clip's evaluate reports it (get_clip_metrics): for every query
// the 1-based rank of its ground truth among all candidates, then recall at 1, 5 and 10, the mean
// rank and the median rank. Several captions of one image are handled as the retrieval
// benchmarks do: a text's ground truth is its image; an image's rank is its best-ranked caption's.
import { createHash } from 'node:crypto';
import type { Dataset, Sample } from '../data/dataset.js';
import { embedTexts, loadVisionLanguageModel, type VisionLanguageModel } from '../tasks/zeroshot.js';
import type { Tensor } from '../tensor/tensor.js';
import { batchSizeOf, type DatasetPassOptions, evaluatedCount, imageEmbeddingSource, sampleRows, withEvalMode } from './features.js';
import { gatherRows, shardRange } from './shard.js';

export interface RankMetrics {
  /** Fraction of queries whose ground truth ranks within k, by k (1, 5, 10 by default). */
  readonly recall: Readonly<Record<number, number>>;
  /** Mean of the 1-based ranks. */
  readonly meanRank: number;
  /** open_clip's median rank: floor(median of the 0-based ranks) + 1. */
  readonly medianRank: number;
  /** Every query's 1-based rank. */
  readonly ranks: Int32Array;
}

export interface RetrievalMetrics {
  readonly images: number;
  readonly texts: number;
  /** Images as queries, texts as candidates. */
  readonly imageToText: RankMetrics;
  /** Texts as queries, images as candidates. */
  readonly textToImage: RankMetrics;
}

export const DEFAULT_RECALL_AT: readonly number[] = [1, 5, 10];

/**
 * The 1-based rank of the best-ranked target among `scores[offset .. offset + count)`, ranking by
 * score, higher first, equal scores by index (a stable sort's order), so ties are never counted
 * in the query's favour twice nor depend on the sort.
 */
export function bestRank(scores: ArrayLike<number>, offset: number, count: number, targets: readonly number[]): number {
  if (targets.length === 0) throw new Error('bestRank: no targets');
  let best = targets[0]!;
  for (const t of targets) {
    const s = scores[offset + t]!;
    const b = scores[offset + best]!;
    if (s > b || (s === b && t < best)) best = t;
  }
  const sb = scores[offset + best]!;
  let ahead = 0;
  for (let j = 0; j < count; j++) {
    const s = scores[offset + j]!;
    if (Number.isNaN(s)) throw new Error(`bestRank: a NaN score (candidate ${j})`);
    if (s > sb || (s === sb && j < best)) ahead++;
  }
  return ahead + 1;
}

/** Recall at each k, mean and median rank, from 1-based ranks (open_clip's definitions). */
export function rankMetrics(ranks: Int32Array, recallAt: readonly number[] = DEFAULT_RECALL_AT): RankMetrics {
  const n = ranks.length;
  if (n === 0) throw new Error('rankMetrics: no queries');
  const recall: Record<number, number> = {};
  for (const k of recallAt) {
    let hits = 0;
    for (const r of ranks) if (r <= k) hits++;
    recall[k] = hits / n;
  }
  let sum = 0;
  for (const r of ranks) sum += r;
  const sorted = Int32Array.from(ranks).sort();
  const mid = n >> 1;
  const median0 = n % 2 === 1 ? sorted[mid]! - 1 : (sorted[mid - 1]! + sorted[mid]! - 2) / 2;
  return { recall, meanRank: sum / n, medianRank: Math.floor(median0) + 1, ranks };
}

function checkTextImage(textImage: ArrayLike<number>, images: number): number[][] {
  const captionsOf: number[][] = Array.from({ length: images }, () => []);
  for (let t = 0; t < textImage.length; t++) {
    const i = textImage[t]!;
    if (!Number.isInteger(i) || i < 0 || i >= images) throw new Error(`retrieval: text ${t} names image ${i}, but there are ${images}`);
    captionsOf[i]!.push(t);
  }
  const without = captionsOf.findIndex((c) => c.length === 0);
  if (without >= 0) throw new Error(`retrieval: image ${without} has no caption`);
  return captionsOf;
}

/**
 * Retrieval metrics of a similarity matrix [images, texts] (row-major), text t being a caption of
 * image textImage[t]. Every image needs at least one caption.
 */
export function retrievalMetrics(similarity: ArrayLike<number>, images: number, textImage: ArrayLike<number>,
  recallAt: readonly number[] = DEFAULT_RECALL_AT): RetrievalMetrics {
  const texts = textImage.length;
  if (similarity.length !== images * texts) throw new Error(`retrieval: similarity has ${similarity.length} entries, not ${images} x ${texts}`);
  const captionsOf = checkTextImage(textImage, images);
  const i2t = new Int32Array(images);
  for (let i = 0; i < images; i++) i2t[i] = bestRank(similarity, i * texts, texts, captionsOf[i]!);
  // Texts as queries: the similarity's columns.
  const column = new Float64Array(images);
  const t2i = new Int32Array(texts);
  for (let t = 0; t < texts; t++) {
    for (let i = 0; i < images; i++) column[i] = similarity[i * texts + t]!;
    t2i[t] = bestRank(column, 0, images, [textImage[t]!]);
  }
  return { images, texts, imageToText: rankMetrics(i2t, recallAt), textToImage: rankMetrics(t2i, recallAt) };
}

/**
 * Retrieval metrics of L2-normalised embeddings (images [I, D], texts [T, D]); similarities are
 * computed in row blocks, so memory grows with the block, not I x T.
 */
export function retrievalMetricsOfEmbeddings(imageEmbeds: Tensor, textEmbeds: Tensor, textImage: ArrayLike<number>,
  recallAt: readonly number[] = DEFAULT_RECALL_AT, blockRows = 1024): RetrievalMetrics {
  const images = imageEmbeds.shape[0]!;
  const texts = textEmbeds.shape[0]!;
  if (textImage.length !== texts) throw new Error(`retrieval: ${texts} text embeddings but ${textImage.length} ground-truth images`);
  const captionsOf = checkTextImage(textImage, images);
  const ranks = (queries: Tensor, candidates: Tensor, targets: (q: number) => number[]): Int32Array => {
    const nq = queries.shape[0]!;
    const nc = candidates.shape[0]!;
    const out = new Int32Array(nq);
    const candT = candidates.transpose(0, 1);
    for (let start = 0; start < nq; start += blockRows) {
      const end = Math.min(nq, start + blockRows);
      const scores = queries.slice(0, start, end).matmul(candT).data() as ArrayLike<number>; // float embeddings
      for (let q = start; q < end; q++) out[q] = bestRank(scores, (q - start) * nc, nc, targets(q));
    }
    return out;
  };
  return {
    images, texts,
    imageToText: rankMetrics(ranks(imageEmbeds, textEmbeds, (i) => captionsOf[i]!), recallAt),
    textToImage: rankMetrics(ranks(textEmbeds, imageEmbeds, (t) => [textImage[t]!]), recallAt),
  };
}

/** The metrics under open_clip's names (image_to_text_R@1, ..., text_to_image_median_rank). */
export function openClipRetrievalNames(m: RetrievalMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, r] of [['image_to_text', m.imageToText], ['text_to_image', m.textToImage]] as const) {
    out[`${name}_mean_rank`] = r.meanRank;
    out[`${name}_median_rank`] = r.medianRank;
    for (const [k, v] of Object.entries(r.recall)) out[`${name}_R@${k}`] = v;
  }
  return out;
}

export interface RetrievalEvalOptions extends DatasetPassOptions {
  /**
   * How samples map to images: 'content' (default) takes samples with identical image data as one
   * image with several captions (a CSV listing an image once per caption); 'sample' takes every
   * sample as its own image.
   */
  groupImages?: 'content' | 'sample';
  recallAt?: readonly number[];
}

export interface RetrievalEvalResult extends RetrievalMetrics {
  readonly dataset: string;
  readonly model: string;
  /** The metrics under open_clip's names. */
  readonly metrics: Record<string, number>;
}

function imageDigest(s: Sample): string {
  const h = createHash('sha1');
  if (s.image.kind === 'encoded') h.update('e').update(s.image.bytes);
  else h.update(`p${s.image.image.width}x${s.image.image.height}`).update(s.image.image.data);
  return h.digest('hex');
}

/** Image <-> text retrieval over a captioned dataset with a CLIP or SigLIP model. */
export async function evaluateRetrieval(model: VisionLanguageModel | string, dataset: Dataset,
  options: RetrievalEvalOptions = {}): Promise<RetrievalEvalResult> {
  const vl = typeof model === 'string' ? await loadVisionLanguageModel(model) : model;
  const n = evaluatedCount(dataset, options.limit);
  const batchSize = batchSizeOf(options);
  const group = options.groupImages ?? 'content';
  if (group !== 'content' && group !== 'sample') throw new Error(`retrieval: groupImages must be 'content' or 'sample', got ${String(group)}`);
  // Every rank reads every sample's caption and image digest (cheap beside a forward pass);
  // the image embeddings, one per distinct image, and the caption embeddings are shared.
  const captions: string[] = [];
  const textImage: number[] = [];
  const imageOf = new Map<string, number>();
  const imageSample: number[] = []; // the dataset index of each image's first sample
  for (let i = 0; i < n; i++) {
    const s = await dataset.get(i);
    if (s.caption === undefined) throw new Error(`retrieval: sample ${s.key} of ${dataset.name} has no caption`);
    const id = group === 'content' ? imageDigest(s) : String(i);
    let img = imageOf.get(id);
    if (img === undefined) {
      img = imageSample.length;
      imageOf.set(id, img);
      imageSample.push(i);
    }
    captions.push(s.caption);
    textImage.push(img);
  }
  const passOptions = { ...options, indices: imageSample };
  const imageEmbeds = (await sampleRows(dataset, imageEmbeddingSource(vl), passOptions)).rows;
  return withEvalMode(vl.model, async () => {
    const { start, end } = shardRange(captions.length, options.communicator);
    const mine = start < end ? await embedTexts(vl, captions.slice(start, end), { batchSize }) : null;
    const textEmbeds = await gatherRows(mine, captions.length, options.communicator);
    const m = retrievalMetricsOfEmbeddings(imageEmbeds, textEmbeds, textImage, options.recallAt ?? DEFAULT_RECALL_AT);
    return { ...m, dataset: dataset.name, model: vl.name, metrics: openClipRetrievalNames(m) };
  });
}
