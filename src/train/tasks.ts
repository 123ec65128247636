// What one training step computes for each task: the loss of a micro-batch (mean over its
// samples, or over its masked patches / tokens), from the model's forward pass and the losses of
// losses.ts. The contrastive tasks also accumulate gradients over micro-batches themselves, so
// that every image still meets every caption of the whole batch as a negative.
import { CaptionVocab } from '../data/caption_vocab.js';
import { BertForMaskedLM } from '../models/bert.js';
import { CLIPModel, l2Normalize } from '../models/clip.js';
import { SiglipModel } from '../models/siglip.js';
import { ViTForImageClassification } from '../models/vit.js';
import { ViTMAEForPreTraining } from '../models/vit_mae.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { type Generator, getDefaultGenerator } from '../tensor/random.js';
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
  /**
   * Runs backward for the loss of the whole batch the micro-batches make up, adding into the
   * parameters' .grad, and returns that loss. For losses that couple the samples of a batch (the
   * contrastive ones), where the size-weighted mean of micro-batch losses is a different loss.
   * Absent: the trainer weights and sums the micro-batch losses (accumulateGradients).
   */
  accumulate?(micro: readonly TrainBatch[], ctx: StepContext): number;
  /** After each optimizer step (CLIP/SigLIP: the logit scale is clamped as open_clip does). */
  afterStep?(): void;
  /** Modules trained besides the model (CatLIP's head); their parameters join the optimizer. */
  readonly extraModules?: Record<string, Module>;
  /** JSON kept in checkpoints to rebuild the task (CatLIP's vocabulary). */
  toJSON?(): Record<string, unknown>;
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
  if (m instanceof CLIPModel) return m.getImageFeatures(pixels, { patchDropout });
  if (m instanceof SiglipModel) return m.visionModel.forward(pixels, { patchDropout }).poolerOutput!;
  throw new Error(`${m.constructor.name} has no image features for a contrastive task`);
}

/** Whether any parameter of the image tower trains (none of a fully locked LiT tower does). */
function imageTowerTrains(tm: TrainModel): boolean {
  const prefixes = tm.imageTower?.prefixes ?? [];
  return tm.model.namedParameters().some(([name, p]) => p.requiresGrad && prefixes.some((q) => name === q || name.startsWith(`${q}.`)));
}

/** Every generator a forward pass may draw from, so a second pass can replay the first's draws. */
function forwardGenerators(tm: TrainModel, ctx: StepContext): Generator[] {
  const all = [ctx.patchDropout?.generator, tm.generator, getDefaultGenerator()];
  return [...new Set(all.filter((g): g is Generator => g !== undefined))];
}
const saveStates = (gens: readonly Generator[]): number[][] => gens.map((g) => g.getState());
const restoreStates = (gens: readonly Generator[], states: readonly number[][]): void => gens.forEach((g, i) => g.setState(states[i]!));

/** The contrastive tasks: features of both towers, L2-normalised, then InfoNCE or the sigmoid loss. */
function contrastiveTask(tm: TrainModel, name: 'clip' | 'siglip'): TrainTask {
  const model = tm.model as CLIPModel | SiglipModel;
  const imageEmbeds = (pixels: Tensor, ctx: StepContext) => l2Normalize(imageFeatures(tm, pixels, ctx));
  const textEmbeds = (ids: Tensor) => l2Normalize(model.getTextFeatures(ids));
  const pairLoss = (img: Tensor, txt: Tensor) => (model instanceof SiglipModel
    ? siglipSigmoidLoss(img, txt, model.logitScale, model.logitBias)
    : clipContrastiveLoss(img, txt, model.logitScale));
  const task: TrainTask = {
    name,
    loss(batch, ctx) {
      const ids = tokenIds(tm, captionsOf(batch, name));
      return pairLoss(imageEmbeds(imagesOf(batch, name).pixelValues, ctx), textEmbeds(ids));
    },
    // open_clip's accum_freq, with the loss's backward done once (as GradCache): (1) every
    // micro-batch's features without a graph; (2) the whole batch's loss on them, whose backward
    // gives dL/d(features) and the logit scale's and bias's gradients; (3) each micro-batch
    // again with its graph, its slice of dL/d(features) sent back through the towers. The cached
    // features are the values step 3 recomputes, so the gradients are the whole batch's; the
    // price is one more forward per micro-batch.
    accumulate(micro, ctx) {
      if (micro.length === 0) throw new Error(`${name} task: no micro-batches to accumulate`);
      if (micro.length === 1) {
        const loss = task.loss(micro[0]!, ctx);
        loss.backward();
        return loss.item();
      }
      // Patch dropout (and any dropout) draws in the forward: step 3 replays each tower's
      // forward from the generator states step 1 started it from, so it drops the same patches.
      const gens = forwardGenerators(tm, ctx);
      const imageTrains = imageTowerTrains(tm);
      const cached = noGrad(() => micro.map((b) => {
        const ids = tokenIds(tm, captionsOf(b, name));
        const pixels = imagesOf(b, name).pixelValues;
        const imageRng = saveStates(gens);
        const img = imageEmbeds(pixels, ctx);
        const textRng = saveStates(gens);
        return { ids, pixels, img, imageRng, textRng, txt: textEmbeds(ids) };
      }));
      const endRng = saveStates(gens);

      const img = concat(cached.map((c) => c.img), 0).setRequiresGrad(imageTrains);
      const txt = concat(cached.map((c) => c.txt), 0).setRequiresGrad();
      const loss = pairLoss(img, txt);
      loss.backward();
      const value = loss.item();

      let start = 0;
      for (const c of cached) {
        const end = start + c.img.shape[0]!;
        // A locked image tower has no gradient to take: its cached features are all it gives.
        if (imageTrains) {
          restoreStates(gens, c.imageRng);
          imageEmbeds(c.pixels, ctx).backward(img.grad!.slice(0, start, end));
        }
        restoreStates(gens, c.textRng);
        textEmbeds(c.ids).backward(txt.grad!.slice(0, start, end));
        start = end;
      }
      restoreStates(gens, endRng);
      return value;
    },
    afterStep() {
      if (tm.logitScale) clampLogitScale(tm.logitScale);
    },
  };
  return task;
}

function classificationTask(tm: TrainModel, labelSmoothing: number): TrainTask {
  const model = tm.model as ViTForImageClassification;
  return {
    name: 'ce',
    loss(batch, ctx) {
      const images = imagesOf(batch, 'ce');
      const out = model.forward(images.pixelValues, { patchDropout: ctx.patchDropout ?? undefined });
      return classificationLoss(out.logits, labelsOf(images), { labelSmoothing });
    },
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
    toJSON: () => ({ vocab: vocab.toJSON() }),
  };
}

/** MAE: the normalised-pixel loss on the patches the encoder did not see (the model computes it). */
function maeTask(tm: TrainModel): TrainTask {
  const model = tm.model as ViTMAEForPreTraining;
  return {
    name: 'mae',
    loss: (batch, ctx) => model.forward(imagesOf(batch, 'mae').pixelValues, { generator: ctx.generator }).loss,
  };
}

/** BERT MLM: cross-entropy on the selected tokens (the loader selected and replaced them). */
function mlmTask(tm: TrainModel): TrainTask {
  const model = tm.model as BertForMaskedLM;
  return {
    name: 'mlm',
    loss(batch) {
      if (!('inputIds' in batch)) throw new Error('mlm task: the data gives images, not token sequences');
      return model.maskedLMLoss(batch.inputIds, batch.labels);
    },
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
