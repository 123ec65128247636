// What one training step computes for each task: the loss of a micro-batch (mean over its
// samples, or over its masked patches / tokens), from the model's forward pass and the losses of
// losses.ts.
import { CaptionVocab } from '../data/caption_vocab.js';
import { BertForMaskedLM } from '../models/bert.js';
import { CLIPModel, l2Normalize } from '../models/clip.js';
import { SiglipModel } from '../models/siglip.js';
import { ViTForImageClassification } from '../models/vit.js';
import { ViTMAEForPreTraining } from '../models/vit_mae.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Generator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import type { TaskName } from './config.js';
import { catlipLoss, classificationLoss, clampLogitScale, clipContrastiveLoss, siglipSigmoidLoss } from '../nn/losses.js';
import type { TrainModel } from './model_setup.js';

/** A batch of images as the data loader gives it (see src/data/loader.ts). */
export interface ImageBatch {
  readonly pixelValues: Tensor;
  readonly captions: readonly (string | undefined)[];
  readonly labels: readonly (number | undefined)[];
  readonly keys: readonly string[];
  readonly position: { readonly epoch: number; readonly batch: number };
}

/** A batch of packed, masked token sequences (see src/data/mlm.ts). */
export interface TokenBatch {
  /** [B, T] int32, with the selected tokens replaced. */
  readonly inputIds: Tensor;
  /** [B, T] int32: the original token where one was selected, -100 elsewhere. */
  readonly labels: Tensor;
  readonly keys: readonly string[];
  readonly position: { readonly epoch: number; readonly batch: number };
}

export type TrainBatch = ImageBatch | TokenBatch;

/** The samples (images or sequences) in a batch. */
export function batchSize(b: TrainBatch): number {
  return ('pixelValues' in b ? b.pixelValues : b.inputIds).shape[0]!;
}

function imagesOf(batch: TrainBatch, task: string): ImageBatch {
  if (!('pixelValues' in batch)) throw new Error(`${task} task: the data gives token sequences, not images`);
  return batch;
}

/** FLIP's patch dropout, as the vision towers take it in training mode. */
export interface PatchDropout {
  ratio: number;
  generator: Generator;
}

export interface StepContext {
  /** Null when patch dropout is off. */
  patchDropout: PatchDropout | null;
  /** The task's own randomness (MAE's masking noise); its state is kept in checkpoints. */
  generator: Generator;
}

export interface TrainTask {
  readonly name: TaskName;
  /** The mean loss over the micro-batch's samples. */
  loss(batch: TrainBatch, ctx: StepContext): Tensor;
  /** After each optimizer step (CLIP/SigLIP: the logit scale is clamped as open_clip does). */
  afterStep(): void;
  /** Modules trained besides the model (CatLIP's head); their parameters join the optimizer. */
  readonly extraModules: Record<string, Module>;
  /** JSON kept in checkpoints to rebuild the task (CatLIP's vocabulary). */
  toJSON(): Record<string, unknown>;
}

function captionsOf(batch: TrainBatch, task: string): string[] {
  return imagesOf(batch, task).captions.map((c, i) => {
    if (typeof c !== 'string') throw new Error(`${task} task: sample ${batch.keys[i]} has no caption`);
    return c;
  });
}

function labelsOf(batch: ImageBatch): Tensor {
  const ids = batch.labels.map((l, i) => {
    if (typeof l !== 'number') throw new Error(`ce task: sample ${batch.keys[i]} has no class label`);
    return l;
  });
  return tensor(Int32Array.from(ids), { shape: [ids.length], dtype: 'int32', backend: batch.pixelValues.backend });
}

function tokenIds(tm: TrainModel, captions: readonly string[]): Tensor {
  return tm.tokenizer!.encodeTensors(captions, { contextLength: tm.contextLength, padding: 'max_length' }).inputIds;
}

/** The image tower's features (before normalisation), with FLIP's patch dropout when on. */
function imageFeatures(tm: TrainModel, pixels: Tensor, ctx: StepContext): Tensor {
  const patchDropout = ctx.patchDropout ?? undefined;
  const m = tm.model;
  if (m instanceof CLIPModel) return m.visualProjection.forward(m.visionModel.forward(pixels, { patchDropout }).poolerOutput);
  if (m instanceof SiglipModel) return m.visionModel.forward(pixels, { patchDropout }).poolerOutput!;
  throw new Error(`${m.constructor.name} has no image features for a contrastive task`);
}

/** The contrastive tasks: features of both towers, L2-normalised, then InfoNCE or the sigmoid loss. */
function contrastiveTask(tm: TrainModel, name: 'clip' | 'siglip'): TrainTask {
  const model = tm.model;
  return {
    name,
    extraModules: {},
    loss(batch, ctx) {
      const captions = captionsOf(batch, name);
      const ids = tokenIds(tm, captions);
      const img = l2Normalize(imageFeatures(tm, imagesOf(batch, name).pixelValues, ctx));
      const txt = l2Normalize((model as CLIPModel | SiglipModel).getTextFeatures(ids));
      if (model instanceof SiglipModel) return siglipSigmoidLoss(img, txt, model.logitScale, model.logitBias);
      return clipContrastiveLoss(img, txt, (model as CLIPModel).logitScale);
    },
    afterStep() {
      if (tm.logitScale) clampLogitScale(tm.logitScale);
    },
    toJSON: () => ({}),
  };
}

function classificationTask(tm: TrainModel, labelSmoothing: number): TrainTask {
  const model = tm.model as ViTForImageClassification;
  return {
    name: 'ce',
    extraModules: {},
    loss(batch, ctx) {
      const images = imagesOf(batch, 'ce');
      const out = model.forward(images.pixelValues, { patchDropout: ctx.patchDropout ?? undefined });
      return classificationLoss(out.logits, labelsOf(images), { labelSmoothing });
    },
    afterStep() {},
    toJSON: () => ({}),
  };
}

/** CatLIP's head: the image features onto the caption vocabulary. */
export class CatlipHead extends Module {
  readonly proj: Linear;
  constructor(inFeatures: number, vocabSize: number, generator: Generator) {
    super();
    this.proj = this.module('proj', new Linear(inFeatures, vocabSize, { generator }));
  }
}

function catlipTask(tm: TrainModel, vocab: CaptionVocab, generator: Generator): TrainTask {
  const model = tm.model as CLIPModel | SiglipModel;
  const width = model instanceof CLIPModel ? model.config.projectionDim : model.config.visionConfig.hiddenSize;
  const head = new CatlipHead(width, vocab.size, generator);
  return {
    name: 'catlip',
    extraModules: { catlip_head: head },
    loss(batch, ctx) {
      const images = imagesOf(batch, 'catlip');
      const targets = vocab.multiHot(captionsOf(images, 'catlip'), { backend: images.pixelValues.backend });
      return catlipLoss(head.proj.forward(imageFeatures(tm, images.pixelValues, ctx)), targets);
    },
    afterStep() {},
    toJSON: () => ({ vocab: vocab.toJSON() }),
  };
}

/** MAE: the normalised-pixel loss on the patches the encoder did not see (the model computes it). */
function maeTask(tm: TrainModel): TrainTask {
  const model = tm.model as ViTMAEForPreTraining;
  return {
    name: 'mae',
    extraModules: {},
    loss: (batch, ctx) => model.forward(imagesOf(batch, 'mae').pixelValues, { generator: ctx.generator }).loss,
    afterStep() {},
    toJSON: () => ({}),
  };
}

/** BERT MLM: cross-entropy on the selected tokens (the loader selected and replaced them). */
function mlmTask(tm: TrainModel): TrainTask {
  const model = tm.model as BertForMaskedLM;
  return {
    name: 'mlm',
    extraModules: {},
    loss(batch) {
      if (!('inputIds' in batch)) throw new Error('mlm task: the data gives images, not token sequences');
      return model.maskedLMLoss(batch.inputIds, batch.labels);
    },
    afterStep() {},
    toJSON: () => ({}),
  };
}

export interface MakeTaskOptions {
  /** CatLIP: the training captions the vocabulary is built from (when `saved` has none). */
  captions?: () => Promise<string[]>;
  /** A task's JSON from a checkpoint (CatLIP's vocabulary, so a resumed run keeps its head's meaning). */
  saved?: Record<string, unknown>;
  /** Initial weights of task-owned modules. */
  generator: Generator;
  /** The ce task's label smoothing (0: off). */
  labelSmoothing?: number;
}

export async function makeTask(name: TaskName, tm: TrainModel, opts: MakeTaskOptions): Promise<TrainTask> {
  switch (name) {
    case 'clip':
    case 'siglip':
      return contrastiveTask(tm, name);
    case 'ce':
      return classificationTask(tm, opts.labelSmoothing ?? 0);
    case 'mae':
      return maeTask(tm);
    case 'mlm':
      return mlmTask(tm);
    case 'catlip': {
      let vocab: CaptionVocab;
      if (opts.saved?.vocab) vocab = CaptionVocab.fromJSON(opts.saved.vocab, 'checkpoint caption vocabulary');
      else if (opts.captions) vocab = CaptionVocab.build(await opts.captions(), { minCount: 2 });
      else throw new Error('catlip task: no captions to build the vocabulary from');
      return catlipTask(tm, vocab, opts.generator);
    }
  }
}
