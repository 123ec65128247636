// The data a run reads: the training loader (seeded, sharded by rank, resumable from a batch
// position) and the evaluation data, opened from the config's specs: image datasets, for the
// mlm task text corpora packed into sequences and masked, for the oad task feature streams cut
// into windows.
import type { Dataset } from '../data/dataset.js';
import type { ImageProcessor } from '../data/image.js';
import { DataLoader, type LoaderPosition } from '../data/loader.js';
import { nextPosition } from '../data/sampler.js';
import { type MaskingOptions, packSequences, TokenBatchLoader } from '../data/mlm.js';
import { type FeatureStream, type FeatureStreamSet, OadWindowSampler } from '../data/oad_streams.js';
import { openDataset, type OpenStreamsOptions } from '../data/registry.js';
import { openTextCorpus, type TextCorpus } from '../data/text.js';
import type { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { openStreams } from '../tasks/oad_streams.js';
import { tensor } from '../tensor/tensor.js';
import { ConfigError, type TrainConfig } from './config.js';
import type { TrainModel } from './model_setup.js';
import type { TrainBatch, WindowBatch } from './objectives.js';

/** What the trainer needs of a data loader (src/data/loader.ts's DataLoader is one). */
export interface BatchSource {
  /** Batches per epoch on this rank. */
  readonly batchesPerEpoch: number;
  /** Batches from `from` on, epoch after epoch, without end. */
  batches(from?: LoaderPosition): AsyncGenerator<TrainBatch>;
  close(): Promise<void>;
}

/** One split of a set of feature streams (the oad task's data), its videos read. */
export interface StreamSplitData {
  /** For logs and the report: the spec it was opened from. */
  readonly name: string;
  readonly set: FeatureStreamSet;
  readonly split: string;
  readonly videos: readonly FeatureStream[];
}

/** What a run's data spec opens: images, a text corpus (mlm) or feature streams (oad). */
export type RunDataset = Dataset | TextCorpus | StreamSplitData;

export interface TrainData {
  /** The training set (for class names, CatLIP's caption vocabulary, the mlm task's vocabulary, the oad model's sizes). */
  trainDataset: RunDataset;
  train: BatchSource;
  val: RunDataset | null;
}

export function isTextCorpus(d: RunDataset): d is TextCorpus {
  return 'documents' in d;
}

export function isStreamSplit(d: RunDataset): d is StreamSplitData {
  return 'videos' in d && 'set' in d;
}

/** An image dataset, or an error naming what the data is instead. */
export function imageDataset(d: RunDataset, what: string): Dataset {
  if (isTextCorpus(d)) throw new Error(`${what}: ${d.name} is a text corpus, not an image dataset`);
  if (isStreamSplit(d)) throw new Error(`${what}: ${d.name} is a set of feature streams, not an image dataset`);
  return d;
}

/** The videos of a stream spec's split (oad-synthetic:train, a folder with options.split). */
export async function openStreamSplit(spec: string, options: Options, defaultSplit: string): Promise<StreamSplitData> {
  const { set, split } = openStreams(spec, { ...options, split: (options.split as string | undefined) ?? defaultSplit } as OpenStreamsOptions);
  return { name: spec, set, split, videos: await set.videos(split) };
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
  const open = async (spec: string, options: Options, split: string): Promise<RunDataset> => {
    if (config.task === 'mlm') return openTextCorpus(spec, options);
    if (config.task === 'oad') return openStreamSplit(spec, options, split);
    return openDataset(spec, options);
  };
  const trainDataset = await open(config.data.train, config.data.options, 'train');
  const val = config.data.val === null ? null : await open(config.data.val, mergeOptions(config.data.options, config.data.val_options), 'test');
  if (val && isStreamSplit(trainDataset) && isStreamSplit(val)) checkSameStreams(trainDataset, val);
  return { trainDataset, val };
}

/** The validation streams must be read as the training ones: the same features and classes. */
function checkSameStreams(train: StreamSplitData, val: StreamSplitData): void {
  const t = train.set;
  const v = val.set;
  const differ = [
    ['class names', t.classNames.join(', '), v.classNames.join(', ')], ['ambiguous class', t.ambiguousClass, v.ambiguousClass],
    ['camera dim', t.cameraDim, v.cameraDim], ['motion dim', t.motionDim, v.motionDim],
  ].find(([, a, b]) => a !== b);
  if (differ) throw new ConfigError('data.val', `${val.name} has ${differ[0]} ${differ[2]}, the training streams ${train.name} have ${differ[1]}`);
}

/** The training loader of a run: images (makeTrainLoader), packed, masked token sequences, or windows of feature streams. */
export function makeLoader(data: RunDataset, setup: TrainModel, config: TrainConfig, opts: Omit<OpenTrainDataOptions, 'processor'>): BatchSource {
  if (isStreamSplit(data)) {
    if (setup.model.kind !== 'online-action-detector') throw new Error(`data.train: ${data.name} is a set of feature streams, which ${setup.model.constructor.name} does not train on`);
    return new WindowLoader(data, { encSteps: setup.model.window, decSteps: setup.model.queries, batchSize: opts.batchSize, seed: config.seed, rank: opts.rank, worldSize: opts.worldSize });
  }
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

/**
 * The oad task's loader: the training windows of a stream split as the official data layer cuts
 * them (a random first offset per video, whole windows, ambiguous current chunks skipped), in an
 * order reshuffled per epoch from the seed, sharded by rank, resumable from a batch position.
 */
export class WindowLoader implements BatchSource {
  readonly sampler: OadWindowSampler;

  constructor(readonly data: StreamSplitData, opts: { encSteps: number; decSteps: number; batchSize: number; seed: number; rank: number; worldSize: number }) {
    this.sampler = new OadWindowSampler(data.videos, data.set, { ...opts, cover: 'official', shuffle: true, dropLast: true });
    if (this.sampler.batchesPerEpoch < 1) {
      throw new Error(`data.train: ${data.name} has ${this.sampler.length} windows of ${opts.encSteps} chunks, fewer than one batch of ${opts.batchSize} per rank`);
    }
  }

  get batchesPerEpoch(): number {
    return this.sampler.batchesPerEpoch;
  }

  async* batches(from: LoaderPosition = { epoch: 0, batch: 0 }): AsyncGenerator<TrainBatch> {
    const { encSteps: W, decSteps: Q, classes: C, info } = this.sampler;
    let position = from;
    for (const b of this.sampler.batches(from)) {
      const B = b.size;
      const batch: WindowBatch = {
        camera: tensor(b.camera, { shape: [B, W, info.cameraDim] }),
        motion: tensor(b.motion, { shape: [B, W, info.motionDim] }),
        encTarget: tensor(b.encTarget, { shape: [B, C] }),
        decTarget: tensor(b.decTarget, { shape: [B, Q, C] }),
        keys: b.keys,
        position,
      };
      yield batch;
      position = nextPosition(position, this.batchesPerEpoch);
    }
  }

  async close(): Promise<void> {}
}
