// The data a run reads: the training loader (seeded, sharded by rank, resumable from a batch
// position) and the evaluation dataset, opened from the config's specs.
import type { Dataset } from '../data/dataset.js';
import type { ImageProcessor } from '../data/image.js';
import { DataLoader, type LoaderPosition } from '../data/loader.js';
import { openDataset } from '../data/sources.js';
import type { TrainConfig } from './config.js';
import type { TrainBatch } from './tasks.js';

/** What the trainer needs of a data loader (src/data/loader.ts's DataLoader is one). */
export interface BatchSource {
  /** Batches per epoch on this rank. */
  readonly batchesPerEpoch: number;
  /** Batches from `from` on, epoch after epoch, without end. */
  batches(from?: LoaderPosition): AsyncGenerator<TrainBatch>;
  close(): Promise<void>;
}

export interface TrainData {
  /** The training set (for class names and CatLIP's caption vocabulary). */
  trainDataset: Dataset;
  train: BatchSource;
  val: Dataset | null;
}

export interface OpenTrainDataOptions {
  /** Micro-batch size (batch_size / grad_accum). */
  batchSize: number;
  processor: ImageProcessor;
  rank: number;
  worldSize: number;
}

type Options = Record<string, unknown>;
const isPlainObject = (v: unknown): v is Options => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `over` on top of `base`, nested objects merged key by key (val_options.scenes.length keeps options.scenes.size). */
export function mergeOptions(base: Options, over: Options): Options {
  const out: Options = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeOptions(out[k] as Options, v) : v;
  return out;
}

/** Opens config.data's datasets: the training set and the validation set (when given). */
export async function openDatasets(config: TrainConfig): Promise<Omit<TrainData, 'train'>> {
  const trainDataset = await openDataset(config.data.train, config.data.options);
  const val = config.data.val === null ? null : await openDataset(config.data.val, mergeOptions(config.data.options, config.data.val_options));
  return { trainDataset, val };
}

/** The training loader: augmented as config.data.augment says, shuffled by config.seed, sharded by rank. */
export function makeTrainLoader(dataset: Dataset, config: TrainConfig, opts: OpenTrainDataOptions): BatchSource {
  const a = config.data.augment;
  const augment = {
    ...(a.random_resized_crop ? { randomResizedCrop: { scale: a.random_resized_crop, ratio: a.crop_ratio } } : {}),
    ...(a.pad_crop > 0 ? { padCrop: a.pad_crop } : {}),
    ...(a.horizontal_flip ? { horizontalFlip: true } : {}),
  };
  const train = new DataLoader(dataset, {
    batchSize: opts.batchSize,
    processor: opts.processor,
    seed: config.seed,
    shuffle: true,
    dropLast: true,
    rank: opts.rank,
    worldSize: opts.worldSize,
    augment,
    workers: config.data.workers,
    prefetch: config.data.prefetch,
  });
  if (train.batchesPerEpoch < 1) {
    throw new Error(`data.train: ${dataset.name} has ${dataset.length} samples, fewer than one batch of ${opts.batchSize} per rank`);
  }
  return train;
}
