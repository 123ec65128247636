// The training objectives: what one step computes for a config's `task` (clip, siglip, catlip,
// ce, mae, mlm, oad) — the loss of a micro-batch (mean over its samples, or over its masked patches /
// tokens) from the model's forward pass and the losses of nn/losses.ts — and what the objective
// owns besides (CatLIP's head, MAE's pictures). Each is registered by name with the kind of model
// it trains; the contrastive objectives also accumulate gradients over micro-batches themselves,
// so that every image still meets every caption of the whole batch as a negative.
import fs from 'node:fs';
import path from 'node:path';
import { CaptionVocab } from '../data/caption_vocab.js';
import { Registry, type RegistryEntry } from '../data/registry.js';
import { type HFConfig, labelFields } from '../io/hf.js';
import { writeSafetensors } from '../io/safetensors.js';
import type { FeatureStreamInfo } from '../data/oad_streams.js';
import type { DualEncoder, ImageClassifier, MaskedImageModel, MaskedLanguageModel, Model, ModelFamily, OnlineActionDetector } from '../models/family.js';
import { l2Normalize } from '../models/clip.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Communicator } from '../dist/communicator.js';
import { pairLossAcrossRanks } from '../dist/contrastive.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { type BatchShard, type Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { ConfigError, type TaskName, type TrainConfig } from './config.js';
import { catlipLoss, classificationLoss, clampLogitScale } from '../nn/losses.js';
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

/** A batch of windows of feature streams (see src/data/oad_streams.ts), for the oad task. */
export interface WindowBatch {
  /** [B, W, cameraDim]: the window's chunks, the current one last. */
  readonly camera: Tensor;
  /** [B, W, motionDim] */
  readonly motion: Tensor;
  /** [B, C]: the current chunk's label row. */
  readonly encTarget: Tensor;
  /** [B, Q, C]: the label rows of the Q chunks after it. */
  readonly decTarget: Tensor;
  /** `<video>/<current chunk>` per window. */
  readonly keys: readonly string[];
  readonly position: { readonly epoch: number; readonly batch: number };
}

export type TrainBatch = ImageBatch | TokenBatch | WindowBatch;

/** The samples (images, sequences or windows) in a batch. */
export function batchSize(b: TrainBatch): number {
  return ('pixelValues' in b ? b.pixelValues : 'inputIds' in b ? b.inputIds : b.encTarget).shape[0]!;
}

function imagesOf(batch: TrainBatch, task: string): ImageBatch {
  if (!('pixelValues' in batch)) throw new Error(`${task} task: the data gives token sequences, not images`);
  return batch;
}

/** FLIP's patch dropout, as the vision towers take it in training mode. */
export interface PatchDropout {
  ratio: number;
  generator: Generator;
  /** As StepContext.shard. */
  shard?: BatchShard;
}

export interface StepContext {
  /** Null when patch dropout is off. */
  patchDropout: PatchDropout | null;
  /** The objective's own randomness (MAE's masking noise); its state is kept in checkpoints. */
  generator: Generator;
  /** The rows of each global micro-batch this process holds (data-parallel; default all); per-sample draws follow it. */
  shard?: BatchShard;
  /** The job's communicator (data-parallel); the contrastive losses exchange features over it. */
  communicator?: Communicator | null;
  /**
   * Runs a backward pass that is not the step's last without synchronising gradients across ranks
   * (PyTorch's no_sync): they accumulate locally, and the last pass's all-reduce carries them.
   * Absent for one process.
   */
  noSync?: <T>(fn: () => T) => T;
}

/** A picture the run's report shows. */
export interface ReportPicture {
  title: string;
  file: string;
}

/** One training objective, made for a run's model. */
export interface Objective {
  readonly name: TaskName;
  /** The mean loss over the micro-batch's samples. */
  loss(batch: TrainBatch, ctx: StepContext): Tensor;
  /**
   * Runs backward for the loss of the whole batch the micro-batches make up, adding into the
   * parameters' .grad, and returns that loss. For losses that couple the samples of a batch (the
   * contrastive ones), where the size-weighted mean of micro-batch losses is a different loss.
   * Absent: the trainer weights and sums the micro-batch losses (accumulateGradients).
   */
  accumulate?(micro: readonly TrainBatch[], ctx: StepContext): number | Promise<number>;
  /** After each optimizer step (CLIP/SigLIP: the logit scale is clamped as open_clip does). */
  afterStep?(): void;
  /** Modules trained besides the model (CatLIP's head); their parameters join the optimizer. */
  readonly extraModules?: Record<string, Module>;
  /** JSON kept in checkpoints to rebuild the objective (CatLIP's vocabulary). */
  toJSON?(): Record<string, unknown>;
  /** Writes what the objective owns beside the saved model (CatLIP's head and vocabulary). */
  saveBeside?(modelDir: string): void;
  /** Pictures for the report, after an evaluation at `step` (MAE's reconstructions). */
  reportPictures?(step: number): ReportPicture[];
}

/** What preparing a built model for an objective may use. */
export interface PrepareContext {
  config: TrainConfig;
  /** The training set's class names (a classifier's labels). */
  classNames?: readonly string[];
  /** The training streams' declaration (the oad task: what the detector must read and predict). */
  streams?: Omit<FeatureStreamInfo, 'splits'>;
  generator: Generator;
  /** Built with fresh weights (a registered name or custom sizes, no weights folder). */
  fresh: boolean;
  /** Names the model in errors. */
  label: string;
}

export interface MakeObjectiveOptions {
  /** CatLIP: the training captions the vocabulary is built from (when `saved` has none). */
  captions?: () => Promise<string[]>;
  /** An objective's JSON from a checkpoint (CatLIP's vocabulary, so a resumed run keeps its head's meaning). */
  saved?: Record<string, unknown>;
  /** Initial weights of objective-owned modules. */
  generator: Generator;
  /** The ce objective's label smoothing (0: off). */
  labelSmoothing?: number;
  /** Where MAE's evaluation draws its pictures (see reconstructionPicture). */
  pictureAt?: (step: number) => string;
}

/** An objective by name: the model it trains, how a built model is made ready for it, and the objective itself. */
export interface ObjectiveEntry extends RegistryEntry {
  readonly kind: 'objective';
  readonly name: TaskName;
  /** What it trains, for errors ('a CLIP model', ...). */
  readonly needs: string;
  accepts(model: Model): boolean;
  /** The model to train from the one built (MAE fine-tuning's classifier, a run's mask ratio, SigLIP's init). */
  prepare?(model: Model, ctx: PrepareContext): Model;
  /** config.json fields over a registered name's when it is built fresh (ViT's classifier head, sized to the labels). */
  freshConfig?(family: ModelFamily, classNames: readonly string[] | undefined): HFConfig;
  create(setup: TrainModel, opts: MakeObjectiveOptions): Promise<Objective>;
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

function tokenIds(setup: TrainModel, captions: readonly string[]): Tensor {
  return setup.tokenizer!.encodeTensors(captions, { contextLength: setup.contextLength, padding: 'max_length' }).inputIds;
}

/** Whether any parameter of the image tower trains (none of a fully locked LiT tower does). */
function imageTowerTrains(setup: TrainModel): boolean {
  const prefixes = setup.imageTower?.prefixes ?? [];
  return setup.model.namedParameters().some(([name, p]) => p.requiresGrad && prefixes.some((q) => name === q || name.startsWith(`${q}.`)));
}

/** Every generator a forward pass may draw from, so a second pass can replay the first's draws. */
function forwardGenerators(setup: TrainModel, ctx: StepContext): Generator[] {
  const all = [ctx.patchDropout?.generator, setup.generator, getDefaultGenerator()];
  return [...new Set(all.filter((g): g is Generator => g !== undefined))];
}
const saveStates = (gens: readonly Generator[]): number[][] => gens.map((g) => g.getState());
const restoreStates = (gens: readonly Generator[], states: readonly number[][]): void => gens.forEach((g, i) => g.setState(states[i]!));

/** The contrastive objectives: features of both towers, L2-normalised, then the model's pair loss (InfoNCE or sigmoid). */
function contrastiveObjective(setup: TrainModel, name: 'clip' | 'siglip'): Objective {
  const model = setup.model as DualEncoder;
  const imageEmbeds = (pixels: Tensor, ctx: StepContext) => l2Normalize(model.encodeImage(pixels, { patchDropout: ctx.patchDropout ?? undefined }));
  const textEmbeds = (ids: Tensor) => l2Normalize(model.encodeText(ids));
  const objective: Objective = {
    name,
    loss(batch, ctx) {
      const ids = tokenIds(setup, captionsOf(batch, name));
      return model.pairLoss(imageEmbeds(imagesOf(batch, name).pixelValues, ctx), textEmbeds(ids));
    },
    // The loss of the whole global batch, its backward split in two: the pair loss's backward to
    // the L2-normalised features (pairLossAcrossRanks, where the ranks exchange features and
    // their gradients), then each micro-batch's towers from its slice of those gradients. One
    // micro-batch keeps its forward graph for the second half. Several (open_clip's accum_freq)
    // are run without a graph first and again with one for their backward, as GradCache does:
    // the recomputed features are the cached ones, so the gradients are the whole batch's; the
    // price is one more forward per micro-batch.
    async accumulate(micro, ctx) {
      if (micro.length === 0) throw new Error(`${name} task: no micro-batches to accumulate`);
      const keepGraph = micro.length === 1;
      // Patch dropout (and any dropout) draws in the forward: a recomputed tower replays its
      // forward from the generator states the first pass started it from, so it drops the same patches.
      const gens = forwardGenerators(setup, ctx);
      const imageTrains = imageTowerTrains(setup);
      const forward = () => micro.map((b) => {
        const ids = tokenIds(setup, captionsOf(b, name));
        const pixels = imagesOf(b, name).pixelValues;
        const imageRng = saveStates(gens);
        const img = imageEmbeds(pixels, ctx);
        const textRng = saveStates(gens);
        return { ids, pixels, img, imageRng, textRng, txt: textEmbeds(ids) };
      });
      const passes = keepGraph ? forward() : noGrad(forward);
      const endRng = saveStates(gens);

      const img = concat(passes.map((p) => p.img.detach()), 0).setRequiresGrad(imageTrains);
      const txt = concat(passes.map((p) => p.txt.detach()), 0).setRequiresGrad();
      // The loss's backward passes (one per block of SigLIP's ring) reach the logit scale and bias:
      // their gradients are final only after the last, so they are synchronised with the towers'.
      const pairLoss = () => pairLossAcrossRanks(ctx.communicator ?? null, { kind: model.contrastiveLoss, logitScale: model.logitScale, logitBias: model.logitBias }, img, txt);
      const value = await (ctx.noSync ? ctx.noSync(pairLoss) : pairLoss());

      let start = 0;
      passes.forEach((p, i) => {
        const end = start + p.img.shape[0]!;
        const backward = () => {
          // A locked image tower has no gradient to take: its features are all it gives.
          if (imageTrains) {
            if (!keepGraph) restoreStates(gens, p.imageRng);
            (keepGraph ? p.img : imageEmbeds(p.pixels, ctx)).backward(img.grad!.slice(0, start, end));
          }
          if (!keepGraph) restoreStates(gens, p.textRng);
          (keepGraph ? p.txt : textEmbeds(p.ids)).backward(txt.grad!.slice(0, start, end));
        };
        // Gradients are synchronised across ranks in the last micro-batch's backward only.
        if (i < passes.length - 1 && ctx.noSync) ctx.noSync(backward);
        else backward();
        start = end;
      });
      restoreStates(gens, endRng);
      return value;
    },
    afterStep() {
      clampLogitScale(model.logitScale);
    },
  };
  return objective;
}

function classificationObjective(setup: TrainModel, labelSmoothing: number): Objective {
  const model = setup.model as ImageClassifier;
  return {
    name: 'ce',
    loss(batch, ctx) {
      const images = imagesOf(batch, 'ce');
      const logits = model.classify(images.pixelValues, { patchDropout: ctx.patchDropout ?? undefined });
      return classificationLoss(logits, labelsOf(images), { labelSmoothing });
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

function catlipObjective(setup: TrainModel, vocab: CaptionVocab, generator: Generator): Objective {
  const model = setup.model as DualEncoder;
  const head = new CatlipHead(model.imageEmbedDim, vocab.size, generator);
  const extraModules = { catlip_head: head };
  const saved = () => ({ vocab: vocab.toJSON() });
  return {
    name: 'catlip',
    extraModules,
    loss(batch, ctx) {
      const images = imagesOf(batch, 'catlip');
      const targets = vocab.multiHot(captionsOf(images, 'catlip'), { backend: images.pixelValues.backend });
      const features = model.encodeImage(images.pixelValues, { patchDropout: ctx.patchDropout ?? undefined });
      return catlipLoss(head.proj.forward(features), targets);
    },
    toJSON: saved,
    // The vision tower is the product; the head and vocabulary go beside it.
    saveBeside(dir) {
      for (const [name, m] of Object.entries(extraModules)) {
        const tensors = Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: t.contiguous().data() }]));
        writeSafetensors(path.join(dir, `${name}.safetensors`), tensors);
      }
      fs.writeFileSync(path.join(dir, 'catlip.json'), `${JSON.stringify(saved())}\n`);
    },
  };
}

/** MAE: the normalised-pixel loss on the patches the encoder did not see (the model computes it). */
function maeObjective(setup: TrainModel, pictureAt: ((step: number) => string) | undefined): Objective {
  const model = setup.model as MaskedImageModel;
  return {
    name: 'mae',
    loss: (batch, ctx) => model.maskedLoss(imagesOf(batch, 'mae').pixelValues, ctx.generator, ctx.shard),
    reportPictures: (step) => (pictureAt
      ? [{ title: `reconstructions at step ${step}: original | masked | reconstruction | with the visible patches`, file: pictureAt(step) }]
      : []),
  };
}

/** BERT MLM: cross-entropy on the selected tokens (the loader selected and replaced them). */
function mlmObjective(setup: TrainModel): Objective {
  const model = setup.model as MaskedLanguageModel;
  return {
    name: 'mlm',
    loss(batch) {
      if (!('inputIds' in batch)) throw new Error('mlm task: the data gives images, not token sequences');
      return model.fillMask(batch.inputIds, batch.labels).loss!;
    },
  };
}

/**
 * OadTR: the official loss on a batch of windows — soft-label cross-entropy of the current chunk
 * (weight 1.0) and of the anticipated chunks (weight 0.5), the ambiguous class left out — as the
 * model computes it.
 */
function oadObjective(setup: TrainModel): Objective {
  const model = setup.model as OnlineActionDetector;
  return {
    name: 'oad',
    loss(batch) {
      if (!('encTarget' in batch)) throw new Error('oad task: the data gives images or token sequences, not windows of feature streams');
      const out = model.forward(model.cameraDim > 0 ? batch.camera : null, model.motionDim > 0 ? batch.motion : null);
      return model.loss(out, batch.encTarget, batch.decTarget).loss;
    },
  };
}

/** A detector built elsewhere (a folder) must read the training streams' features and predict their classes. */
function checkDetectorFits(model: OnlineActionDetector, streams: Omit<FeatureStreamInfo, 'splits'> | undefined, label: string): void {
  if (!streams) throw new ConfigError('data.train', 'the oad task trains on feature streams (oad-synthetic:train or a stream-set folder)');
  const wanted = [['classes', model.numClasses, streams.classNames.length], ['camera_dim', model.cameraDim, streams.cameraDim], ['motion_dim', model.motionDim, streams.motionDim]] as const;
  for (const [what, has, data] of wanted) {
    if (has !== data) throw new ConfigError('model', `${label} has ${what} ${has}, the training streams have ${data}`);
  }
}

function labelNames(classNames: readonly string[] | undefined): readonly string[] {
  if (!classNames || classNames.length === 0) throw new ConfigError('data.train', 'the ce task needs a labelled dataset (one with class names)');
  return classNames;
}

const isDual = (m: Model, loss?: 'clip' | 'siglip'): m is DualEncoder => m.kind === 'dual-encoder' && (loss === undefined || m.contrastiveLoss === loss);

/** A dual encoder trained from scratch starts where its loss's paper starts it (SigLIP: t = 10, b = -10). */
function initDual(model: Model, ctx: PrepareContext): Model {
  if (ctx.fresh && isDual(model)) model.initForTraining();
  return model;
}

/** Objectives by name, as a config's `task` names them. */
export const objectives = new Registry<ObjectiveEntry>('objective');

export function registerObjective(entry: Omit<ObjectiveEntry, 'kind' | 'aliases'> & { aliases?: readonly string[] }): ObjectiveEntry {
  return objectives.register({ ...entry, kind: 'objective', aliases: entry.aliases ?? [] });
}

registerObjective({
  name: 'clip', description: "CLIP's symmetric InfoNCE over image-caption pairs", needs: 'a CLIP model',
  accepts: (m) => isDual(m, 'clip'), prepare: initDual, create: async (setup) => contrastiveObjective(setup, 'clip'),
});
registerObjective({
  name: 'siglip', description: "SigLIP's pairwise sigmoid loss over image-caption pairs", needs: 'a SigLIP model',
  accepts: (m) => isDual(m, 'siglip'), prepare: initDual, create: async (setup) => contrastiveObjective(setup, 'siglip'),
});
registerObjective({
  name: 'catlip', description: "CatLIP: the image tower predicts the caption's words (multi-label BCE)",
  needs: 'a CLIP or SigLIP model (it trains the image tower)', accepts: (m) => isDual(m), prepare: initDual,
  async create(setup, opts) {
    let vocab: CaptionVocab;
    if (opts.saved?.vocab) vocab = CaptionVocab.fromJSON(opts.saved.vocab, 'checkpoint caption vocabulary');
    else if (opts.captions) vocab = CaptionVocab.build(await opts.captions(), { minCount: 2 });
    else throw new Error('catlip task: no captions to build the vocabulary from');
    return catlipObjective(setup, vocab, opts.generator);
  },
});
registerObjective({
  name: 'ce', description: 'image classification: cross-entropy over class labels', needs: 'an image classifier (ViT, or an MAE folder to fine-tune)',
  accepts: (m) => m.kind === 'image-classifier',
  freshConfig: (family, classNames) => (family.imageClassifier
    ? { architectures: [family.imageClassifier], ...labelFields(labelNames(classNames)) }
    : {}),
  prepare(model, ctx) {
    const labels = labelNames(ctx.classNames);
    // Fine-tuning from MAE: the encoder's weights, a fresh classifier (HF's ViTForImageClassification.from_pretrained does the same).
    const m = model.kind === 'masked-image-model' ? model.imageClassifier(labels, { generator: ctx.generator }) : model;
    if (m.kind === 'image-classifier' && m.labels.length !== labels.length) {
      throw new ConfigError('model', `${ctx.label} classifies into ${m.labels.length} classes, the data has ${labels.length}`);
    }
    return m;
  },
  create: async (setup, opts) => classificationObjective(setup, opts.labelSmoothing ?? 0),
});
registerObjective({
  name: 'mae', description: "MAE: reconstruct the pixels of the masked patches", needs: 'a ViT-MAE model',
  accepts: (m) => m.kind === 'masked-image-model',
  // The mask ratio and loss are the run's choice, not the folder's.
  prepare: (model, ctx) => (model.kind === 'masked-image-model' ? model.withMasking(ctx.config.mae.mask_ratio, ctx.config.mae.norm_pix_loss) : model),
  create: async (setup, opts) => maeObjective(setup, opts.pictureAt),
});
registerObjective({
  name: 'mlm', description: "BERT's masked-language modelling", needs: 'a BERT model with its MLM head (BertForMaskedLM)',
  accepts: (m) => m.kind === 'masked-lm', create: async (setup) => mlmObjective(setup),
});

registerObjective({
  name: 'oad', description: 'OadTR: online action detection, the current chunk and the anticipated ones (soft-label CE)',
  needs: 'an online action detector (model.custom family oadtr, or an OadTR folder)',
  accepts: (m) => m.kind === 'online-action-detector',
  prepare(model, ctx) {
    if (model.kind === 'online-action-detector') checkDetectorFits(model, ctx.streams, ctx.label);
    return model;
  },
  create: async (setup) => oadObjective(setup),
});

/** The objective a config's task names, made for the run's model. */
export async function makeObjective(name: TaskName, setup: TrainModel, opts: MakeObjectiveOptions): Promise<Objective> {
  return objectives.get(name).create(setup, opts);
}
