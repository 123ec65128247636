// The data a run reads: the training loader (seeded, sharded by rank, resumable from a batch
// position) and the evaluation data, opened from the config's specs: image datasets, or for the
// mlm task text corpora packed into sequences and masked.
import type { Dataset } from '../data/dataset.js';
import type { ImageProcessor } from '../data/image.js';
import { DataLoader, type LoaderPosition } from '../data/loader.js';
import { type MaskingOptions, packSequences, TokenBatchLoader } from '../data/mlm.js';
import { openDataset } from '../data/registry.js';
import { openTextCorpus, type TextCorpus } from '../data/text.js';
import type { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import type { TrainConfig } from './config.js';
import type { TrainModel } from './model_setup.js';
import type { TrainBatch } from './objectives.js';

/** What the trainer needs of a data loader (src/data/loader.ts's DataLoader is one). */
export interface BatchSource {
  /** Batches per epoch on this rank. */
  readonly batchesPerEpoch: number;
  /** Batches from `from` on, epoch after epoch, without end. */
  batches(from?: LoaderPosition): AsyncGenerator<TrainBatch>;
  close(): Promise<void>;
}

export interface TrainData {
  /** The training set (for class names, CatLIP's caption vocabulary, or the mlm task's vocabulary). */
  trainDataset: Dataset | TextCorpus;
  train: BatchSource;
  val: Dataset | TextCorpus | null;
}

export function isTextCorpus(d: Dataset | TextCorpus): d is TextCorpus {
  return 'documents' in d;
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

/**
 * Opens config.data's datasets: the training set and the validation set (when given); text
 * corpora for the mlm task (data.train 'debian-descriptions:train', a .txt file, ...).
 */
export async function openDatasets(config: TrainConfig): Promise<Omit<TrainData, 'train'>> {
  const open = async (spec: string, options: Options) => (config.task === 'mlm' ? openTextCorpus(spec, options) : openDataset(spec, options));
  const trainDataset = await open(config.data.train, config.data.options);
  const val = config.data.val === null ? null : await open(config.data.val, mergeOptions(config.data.options, config.data.val_options));
  return { trainDataset, val };
}

/** The training loader of a run: images (makeTrainLoader) or packed, masked token sequences. */
export function makeLoader(data: Dataset | TextCorpus, setup: TrainModel, config: TrainConfig, opts: Omit<OpenTrainDataOptions, 'processor'>): BatchSource {
  if (!isTextCorpus(data)) {
    if (!setup.imageProcessor) throw new Error(`data.train: ${setup.model.constructor.name} takes text, but ${data.name} is an image dataset`);
    return makeTrainLoader(data, config, { ...opts, processor: setup.imageProcessor });
  }
  if (!setup.tokenizer || setup.imageProcessor) throw new Error(`data.train: ${data.name} is a text corpus, which ${setup.model.constructor.name} does not train on`);
  return new TokenBatchLoader(packCorpus(data, setup.tokenizer, setup.contextLength), {
    batchSize: opts.batchSize, contextLength: setup.contextLength, masking: maskingFor(setup.tokenizer, config),
    seed: config.seed, rank: opts.rank, worldSize: opts.worldSize,
  });
}

/** The corpus as blocks of `contextLength` tokens, documents joined as [CLS] doc [SEP] [CLS] doc [SEP] ... */
export function packCorpus(corpus: TextCorpus, tokenizer: TextTokenizer, contextLength: number): Int32Array {
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false, padding: 'none', truncation: false, contextLength: null }).inputIds[0]!;
  return packSequences(corpus.documents, encode, { contextLength, clsId: specialId(tokenizer, 'cls'), sepId: specialId(tokenizer, 'sep') });
}

/**
 * BERT's masking rule with config.mlm's selection rate, over the tokenizer's vocabulary. As with
 * HF's run_mlm, only the tokens packing adds ([CLS], [SEP]) and [PAD], [MASK] are never selected.
 */
export function maskingFor(tokenizer: TextTokenizer, config: TrainConfig): MaskingOptions {
  const roles = ['pad', 'cls', 'sep', 'mask'] as const;
  const specials = roles.map((r) => roleId(tokenizer, r)).filter((id): id is number => id !== undefined);
  return { vocabSize: tokenizer.vocabSize, maskId: specialId(tokenizer, 'mask'), specialIds: specials, probability: config.mlm.mask_prob };
}

/** A BERT special token's id: as tokenizer_config.json names it, else by BERT's own name ([MASK]). */
function roleId(tokenizer: TextTokenizer, role: 'pad' | 'cls' | 'sep' | 'mask'): number | undefined {
  return tokenizer.specialTokenId(role) ?? tokenizer.tokenToId(`[${role.toUpperCase()}]`);
}

function specialId(tokenizer: TextTokenizer, role: 'cls' | 'sep' | 'mask'): number {
  const id = roleId(tokenizer, role);
  if (id === undefined) throw new Error(`the mlm task needs a BERT tokenizer: this one has no ${role} token ([${role.toUpperCase()}])`);
  return id;
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
