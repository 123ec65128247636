// Data filtering as Data Filtering Networks do it: a CLIP or SigLIP model scores every
// image-caption pair by the cosine similarity of their embeddings, and the best-scoring pairs
// are kept (a top fraction, or those above a threshold), written out as a new WebDataset.
import fs from 'node:fs';
import path from 'node:path';
import type { Dataset, Sample } from '../data/dataset.js';
import { type WebDatasetRecord, writeWebDataset } from '../data/webdataset.js';
import { embedTexts, loadVisionLanguageModel, type VisionLanguageModel } from '../tasks/zeroshot.js';
import { noGrad } from '../tensor/autograd.js';
import { type DatasetPassOptions, evaluatedCount, forEachBatch, imageEmbeddingSource } from './features.js';

export interface FilterOptions extends DatasetPassOptions {
  /** Keep this fraction of the pairs, the best-scoring (in (0, 1]). */
  keepFraction?: number;
  /** Or keep every pair scoring at least this cosine similarity. */
  threshold?: number;
  /** Output folder: shards `shard-000000.tar`, ..., and `scores.jsonl`. Without it nothing is written. */
  out?: string;
  /** Samples per output shard (default 10000). */
  samplesPerShard?: number;
}

export interface FilterReport {
  readonly dataset: string;
  readonly model: string;
  readonly samples: number;
  readonly kept: number;
  /** The lowest kept score (with keepFraction, the score at the cut). */
  readonly threshold: number;
  /** Per sample (dataset order), its cosine similarity and whether it was kept. */
  readonly scores: Float64Array;
  readonly keep: Uint8Array;
  readonly shards: string[];
  readonly scoresFile: string | null;
  /**
   * When every sample says whether its caption is clean: precision (clean among kept), recall
   * (kept among clean) and the clean fraction before filtering.
   */
  readonly clean: { precision: number; recall: number; cleanBefore: number } | null;
}

/** The kept samples: the `round(fraction * n)` best scores (ties by index), at least one. */
export function topFraction(scores: ArrayLike<number>, fraction: number): Uint8Array {
  if (!(fraction > 0 && fraction <= 1)) throw new Error(`filter: keepFraction must be in (0, 1], got ${fraction}`);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const keep = new Uint8Array(n);
  const k = Math.max(1, Math.round(fraction * n));
  for (let r = 0; r < k; r++) keep[order[r]!] = 1;
  return keep;
}

export interface PairScores {
  /** Cosine similarity of each sample's image and caption, in dataset order. */
  readonly scores: Float64Array;
  readonly keys: string[];
  /** Each sample's clean flag, as the source gives it. */
  readonly clean: (boolean | undefined)[];
}

/** Scores every sample's image-caption pair (one pass over the dataset). */
export async function scorePairs(vl: VisionLanguageModel, dataset: Dataset, options: DatasetPassOptions = {}): Promise<PairScores> {
  const scores = new Float64Array(evaluatedCount(dataset, options.limit));
  const keys: string[] = [];
  const clean: (boolean | undefined)[] = [];
  await forEachBatch(dataset, imageEmbeddingSource(vl), options, async (samples, img) => {
    const captions = samples.map((s) => {
      if (s.caption === undefined) throw new Error(`filter: sample ${s.key} of ${dataset.name} has no caption to score`);
      return s.caption;
    });
    const txt = await embedTexts(vl, captions, { batchSize: options.batchSize });
    scores.set(noGrad(() => img.mul(txt).sum(-1)).toArray(), keys.length);
    for (const s of samples) {
      keys.push(s.key);
      clean.push(s.clean);
    }
  });
  return { scores, keys, clean };
}

/**
 * Scores every pair, keeps the best (keepFraction or threshold, exactly one of them) and, with
 * `out`, writes the kept samples in dataset order as WebDataset shards (keys are the source
 * index, zero-padded; `<key>.json` holds the source key and the score) and `scores.jsonl` (one
 * line per source sample: key, index, score, kept).
 */
export async function filterDataset(model: VisionLanguageModel | string, dataset: Dataset, options: FilterOptions): Promise<FilterReport> {
  const byFraction = options.keepFraction !== undefined;
  if (byFraction === (options.threshold !== undefined)) throw new Error('filter: give exactly one of keepFraction and threshold');
  if (!byFraction && !Number.isFinite(options.threshold)) throw new Error(`filter: threshold must be a number, got ${options.threshold}`);
  const vl = typeof model === 'string' ? await loadVisionLanguageModel(model) : model;
  const { scores, keys, clean: flags } = await scorePairs(vl, dataset, options);
  const n = scores.length;
  const keepMask = byFraction ? topFraction(scores, options.keepFraction!) : Uint8Array.from(scores, (s) => (s >= options.threshold! ? 1 : 0));
  let kept = 0;
  let lowest = Infinity;
  for (let i = 0; i < n; i++) {
    if (keepMask[i]) {
      kept++;
      lowest = Math.min(lowest, scores[i]!);
    }
  }

  // Precision and recall of keeping clean pairs, where the source knows which are.
  let clean: FilterReport['clean'] = null;
  if (flags.every((f) => f !== undefined)) {
    let cleanTotal = 0;
    let cleanKept = 0;
    flags.forEach((f, i) => {
      if (f) {
        cleanTotal++;
        if (keepMask[i]) cleanKept++;
      }
    });
    clean = { precision: kept ? cleanKept / kept : 0, recall: cleanTotal ? cleanKept / cleanTotal : 0, cleanBefore: cleanTotal / n };
  }

  let shards: string[] = [];
  let scoresFile: string | null = null;
  if (options.out !== undefined) {
    fs.mkdirSync(options.out, { recursive: true });
    const width = Math.max(6, String(n - 1).length);
    const name = (i: number) => String(i).padStart(width, '0');
    async function* keptRecords(): AsyncGenerator<WebDatasetRecord> {
      for (let i = 0; i < n; i++) {
        if (!keepMask[i]) continue;
        const s: Sample = await dataset.get(i);
        yield { key: name(i), image: s.image, caption: s.caption, label: s.label, json: { source_key: s.key, score: scores[i] } };
      }
    }
    ({ shards } = await writeWebDataset(keptRecords(), path.join(options.out, 'shard-%06d.tar'), { samplesPerShard: options.samplesPerShard }));
    scoresFile = path.join(options.out, 'scores.jsonl');
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(JSON.stringify({ key: keys[i], index: i, score: scores[i], kept: keepMask[i] === 1 }));
    fs.writeFileSync(scoresFile, `${lines.join('\n')}\n`);
  }
  return {
    dataset: dataset.name, model: vl.name, samples: n, kept, threshold: byFraction ? lowest : options.threshold!,
    scores, keep: keepMask, shards, scoresFile, clean,
  };
}
