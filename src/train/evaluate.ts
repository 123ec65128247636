// Evaluation during and after training, on config.data.val, with the evaluations of src/eval:
// a classifier's accuracy; a dual encoder's zero-shot accuracy (when the set has class names) and
// image <-> text retrieval (when its samples have captions); an MAE's reconstruction loss (and a
// picture of its reconstructions); a BERT's masked-token accuracy and perplexity; an online
// action detector's frame-level mAP and mcAP and its anticipation (src/train/evaluate_oad.ts). Beside the
// metrics, what the report explains them with: each metric's chance level and the first
// validation images with the model's predictions (<out>/evaluation/step_<step>.json).
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { mixSeed } from '../data/common.js';
import type { Dataset } from '../data/dataset.js';
import { IGNORE_INDEX, maskedEvalBatches } from '../data/mlm.js';
import type { TextCorpus } from '../data/text.js';
import { evaluateClassifier, evaluateZeroShot } from '../eval/classification.js';
import { evaluateCompositional } from '../eval/compositional.js';
import { sampleImage, samplePixels, sampleRows } from '../eval/features.js';
import { gatherRows, isReportingRank, shardRange } from '../eval/shard.js';
import type { Communicator } from '../dist/communicator.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import type { MaskedImageModel, MaskedLanguageModel } from '../models/family.js';
import { maeReconstruction, writeReconstructionGrid } from '../tasks/mae.js';
import type { VisionLanguageModel } from '../tasks/zeroshot.js';
import { noGrad } from '../tensor/autograd.js';
import { concat } from '../tensor/ops/indexing.js';
import { Generator, rand } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';
import { isStreamSplit, isTextCorpus, maskingFor, packCorpus, type RunDataset } from './data.js';
import { evaluateOad } from './evaluate_oad.js';
import type { TrainModel } from './model_setup.js';

/** Metrics by name (`eval/...`), as metrics.jsonl and the report hold them. */
export type EvalMetrics = Record<string, number>;

/** The dual encoder with what reads its inputs, as src/tasks and src/eval take it. */
export function visionLanguageModel(setup: TrainModel, name: string): VisionLanguageModel {
  const m = setup.model;
  if (m.kind !== 'dual-encoder') throw new Error(`${m.constructor.name} is not a dual encoder`);
  if (!setup.tokenizer) throw new Error(`${name}: no tokenizer`);
  return { name, model: m, tokenizer: setup.tokenizer, imageProcessor: setup.imageProcessor!, contextLength: setup.contextLength };
}

/** Where a run's evaluation happens: the step it follows, and the ranks that share it. */
export interface EvalPoint {
  step: number;
  /**
   * The ranks of a distributed run, every one of which calls evaluateModel: each evaluates its
   * share of the validation samples, every rank gets the metrics of the whole set, and only rank
   * 0 writes files (the evaluation's details, an MAE's picture).
   */
  communicator?: Communicator | null;
}

/** First part of mixSeed for evaluation's fixed masks (MAE), apart from the data streams. */
const EVAL_MASK_STREAM = 201;

/**
 * The metrics of the model on `val`: for a classifier `eval/top1` (and `eval/top5` with five
 * classes or more); for a dual encoder `eval/zeroshot_top1`(/`top5`), on a set whose classes
 * compose (the scenes) accuracy per attribute and top-1 on seen and held-out compositions
 * (`eval/colour_acc_seen`, `eval/shape_acc_held_out`, `eval/zeroshot_top1_held_out`, ...), and
 * the retrieval recalls `eval/i2t_R@k`, `eval/t2i_R@k`. Beside them, evalDetailsFile gets the
 * chance levels and example predictions. The model is left in the mode it was in.
 */
export async function evaluateModel(setup: TrainModel, val: RunDataset, config: TrainConfig, at: EvalPoint = { step: 0 }): Promise<EvalMetrics> {
  const m = setup.model;
  if (isStreamSplit(val)) {
    if (m.kind !== 'online-action-detector') throw new Error(`evaluation: ${val.name} is a set of feature streams; ${m.constructor.name} is not an online action detector`);
    return evaluateOad(m, val, config, at);
  }
  if (m.kind === 'online-action-detector') throw new Error(`evaluation: an online action detector is evaluated on feature streams, not ${val.name}`);
  if (isTextCorpus(val)) {
    if (m.kind !== 'masked-lm') throw new Error(`evaluation: ${val.name} is a text corpus; ${m.constructor.name} is evaluated on images`);
    return evaluateMaskedLM(setup, m, val, config, at);
  }
  const ranks = at.communicator;
  const reporting = isReportingRank(ranks);
  const opts = { batchSize: config.eval.batch_size, limit: config.eval.max_samples ?? undefined, communicator: ranks };
  const out: EvalMetrics = {};
  if (m.kind === 'masked-image-model') return evaluateMAE(setup, m, val, config, at);
  if (m.kind === 'image-classifier') {
    if (!val.classNames) throw new Error(`evaluation: ${val.name} has no class names`);
    const r = await evaluateClassifier({ name: 'trained model', model: m, imageProcessor: setup.imageProcessor! }, val, opts);
    out['eval/top1'] = r.top1;
    if (r.top5 !== null) out['eval/top5'] = r.top5;
    if (reporting) {
      const examples = await predictionExamples(val, r.predictions, val.classNames);
      writeEvalDetails(config, at.step, { dataset: val.name, samples: r.samples, chance: topKChance('eval/', val.classNames.length), examples });
    }
    return out;
  }
  if (config.task === 'catlip') return out;
  const vl = visionLanguageModel(setup, 'trained model');
  const details: Omit<EvalDetails, 'step'> = { dataset: val.name, samples: 0, chance: {}, examples: [] };
  if (val.classNames && val.classNames.length > 0) {
    const zeroShotOpts = { ...opts, templates: config.eval.templates };
    const r = await evaluateZeroShot(vl, val, zeroShotOpts);
    out['eval/zeroshot_top1'] = r.top1;
    if (r.top5 !== null) out['eval/zeroshot_top5'] = r.top5;
    const C = val.classNames.length;
    details.samples = r.samples;
    details.chance = topKChance('eval/zeroshot_', C);
    if (reporting) details.examples = await predictionExamples(val, r.predictions, val.classNames);
    if (val.compositions) {
      const c = await evaluateCompositional(vl, val, zeroShotOpts, r);
      details.compositions = { datasets: c.datasets, samples: { seen: c.seen?.samples ?? 0, held_out: c.heldOut?.samples ?? 0 } };
      for (const [group, acc] of [['seen', c.seen], ['held_out', c.heldOut]] as const) {
        if (!acc) continue;
        out[`eval/zeroshot_top1_${group}`] = acc.exact;
        details.chance[`eval/zeroshot_top1_${group}`] = 1 / C;
        for (const [attribute, v] of Object.entries(acc.attributes)) {
          out[`eval/${attribute}_acc_${group}`] = v;
          details.chance[`eval/${attribute}_acc_${group}`] = c.chance[attribute]!;
        }
      }
    }
  }
  const first = await val.get(0);
  if (first.caption !== undefined) {
    const r = await evaluateRetrieval(vl, val, opts);
    details.samples ||= r.texts;
    for (const k of [1, 5, 10]) {
      // Chance: the true caption (image) among all candidates, k tries.
      if (r.imageToText.recall[k] !== undefined) {
        out[`eval/i2t_R@${k}`] = r.imageToText.recall[k]!;
        details.chance[`eval/i2t_R@${k}`] = Math.min(1, k / r.texts);
      }
      if (r.textToImage.recall[k] !== undefined) {
        out[`eval/t2i_R@${k}`] = r.textToImage.recall[k]!;
        details.chance[`eval/t2i_R@${k}`] = Math.min(1, k / r.images);
      }
    }
  }
  if (reporting) writeEvalDetails(config, at.step, details);
  return out;
}

/** A validation image with the model's prediction, as the report shows it. */
export interface PredictionExample {
  /** The image as a PNG data URI (at most EXAMPLE_SIDE pixels a side). */
  image: string;
  predicted: string;
  truth: string;
  /** The sample's caption, where it has one. */
  caption?: string;
  correct: boolean;
}

/** What the report says about an evaluation beside its metrics. */
export interface EvalDetails {
  step: number;
  /** The validation set and the samples evaluated. */
  dataset: string;
  samples: number;
  /** What a uniformly random guess scores, by metric (`eval/...`). */
  chance: Record<string, number>;
  /** The first validation samples with the model's predictions. */
  examples: PredictionExample[];
  /** Where accuracy per attribute was measured: the datasets, and the images of seen and of held-out compositions. */
  compositions?: { datasets: readonly string[]; samples: { seen: number; held_out: number } };
}

/** Validation samples shown with their predictions. */
const REPORT_EXAMPLES = 12;
/** The longest side of an example's picture, in pixels: the report shows it at this size, smaller images scaled up. */
const EXAMPLE_SIDE = 96;

/** Top-1 and top-5 accuracy of a uniform guess among `classes`, under `${prefix}top1` / `top5`. */
function topKChance(prefix: string, classes: number): Record<string, number> {
  const out: Record<string, number> = { [`${prefix}top1`]: 1 / classes };
  if (classes >= 5) out[`${prefix}top5`] = 5 / classes;
  return out;
}

/** The first REPORT_EXAMPLES samples of `val`, their pictures and the classes predicted for them. */
async function predictionExamples(val: Dataset, predictions: Int32Array, classNames: readonly string[]): Promise<PredictionExample[]> {
  const out: PredictionExample[] = [];
  for (let i = 0; i < Math.min(REPORT_EXAMPLES, predictions.length); i++) {
    const s = await val.get(i);
    const img = await sampleImage(s);
    const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize({ width: EXAMPLE_SIDE, height: EXAMPLE_SIDE, fit: 'inside', withoutEnlargement: true })
      .png().toBuffer();
    const predicted = classNames[predictions[i]!]!;
    const truth = s.label === undefined ? '?' : classNames[s.label]!;
    out.push({ image: `data:image/png;base64,${png.toString('base64')}`, predicted, truth, ...(s.caption !== undefined ? { caption: s.caption } : {}), correct: predictions[i] === s.label });
  }
  return out;
}

/** Where evaluateModel keeps an evaluation's details for the report. */
export function evalDetailsFile(config: TrainConfig, step: number): string {
  return path.join(config.out, 'evaluation', `step_${String(step).padStart(7, '0')}.json`);
}

function writeEvalDetails(config: TrainConfig, step: number, details: Omit<EvalDetails, 'step'>): void {
  const file = evalDetailsFile(config, step);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ step, ...details }));
  fs.renameSync(tmp, file);
}

/** The details evaluateModel wrote at `step`, or null where it wrote none (an MAE's or BERT's evaluation, a substituted one). */
export function readEvalDetails(config: TrainConfig, step: number): EvalDetails | null {
  const file = evalDetailsFile(config, step);
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as EvalDetails : null;
}

/**
 * An MAE's reconstruction loss on the validation images (`eval/mae_loss`), with the same masks at
 * every evaluation, and a picture of the first config.mae.pictures reconstructions in
 * <out>/reconstructions/step_<step>.png.
 */
async function evaluateMAE(setup: TrainModel, m: MaskedImageModel, val: Dataset, config: TrainConfig, at: EvalPoint): Promise<EvalMetrics> {
  const ranks = at.communicator;
  const patches = maskedPatchCount(m);
  // Each image's masks come from its own stream, so they do not depend on the batch it is in
  // (nor on the rank that evaluates it).
  const noiseOf = (indices: readonly number[]): Tensor => {
    const rows = indices.map((i) => rand([1, patches], { generator: new Generator(mixSeed(EVAL_MASK_STREAM, config.seed, 2, i)) }));
    return rows.length === 1 ? rows[0]! : concat(rows, 0);
  };
  const source = {
    imageProcessor: setup.imageProcessor!, module: m,
    extract: (pixels: Tensor, indices?: readonly number[]) => {
      if (!indices) throw new Error('evaluateMAE: the masks are drawn per sample, so the extractor needs the samples\' indices');
      return m.imageLosses(pixels, noiseOf(indices)).reshape([pixels.shape[0]!, 1]);
    },
  };
  const { rows } = await sampleRows(val, source, { batchSize: config.eval.batch_size, limit: config.eval.max_samples ?? undefined, communicator: ranks });
  // Every image has as many masked patches, so the mean of the images' losses is the mean over
  // all masked patches; summed in sample order, it is the same on every rank.
  const losses = rows.data() as Float32Array;
  let total = 0;
  for (const l of losses) total += l;
  const pictures = Math.min(config.mae.pictures, losses.length);
  if (pictures > 0 && isReportingRank(ranks)) {
    const samples = await Promise.all(Array.from({ length: pictures }, (_, i) => val.get(i)));
    const pixels = await samplePixels(samples, setup.imageProcessor!);
    const reconstructions = noGrad(() => maeReconstruction(m, pixels, { noise: noiseOf(samples.map((_, i) => i)), processor: setup.imageProcessor! }));
    await writeReconstructionGrid(reconstructionPicture(config, at.step), reconstructions);
  }
  return { 'eval/mae_loss': total / losses.length };
}

/** The patches an MAE divides its images into (what its masking noise is drawn over). */
function maskedPatchCount(m: MaskedImageModel): number {
  const { imageSize: [H, W], patchSize: [ph, pw] } = m.patches;
  return Math.floor(H / ph) * Math.floor(W / pw);
}

/** Where evaluateMAE draws the reconstructions of a step: original | masked | reconstruction | with the visible patches. */
export function reconstructionPicture(config: TrainConfig, step: number): string {
  return path.join(config.out, 'reconstructions', `step_${String(step).padStart(7, '0')}.png`);
}

const packedValidation = new WeakMap<TextCorpus, Int32Array>();

/**
 * A BERT's masked-token accuracy, loss and perplexity (exp of the mean loss per selected token)
 * on held-out text packed as in training, with the same masks at every evaluation. The ranks of
 * a distributed run share the batches (the same batches as in one process, so the sums are too).
 */
async function evaluateMaskedLM(setup: TrainModel, m: MaskedLanguageModel, val: TextCorpus, config: TrainConfig, at: EvalPoint): Promise<EvalMetrics> {
  const tokenizer = setup.tokenizer!;
  let blocks = packedValidation.get(val);
  if (!blocks) packedValidation.set(val, (blocks = packCorpus(val, tokenizer, setup.contextLength)));
  const T = setup.contextLength;
  const limit = config.eval.max_samples;
  if (limit !== null && limit * T < blocks.length) blocks = blocks.subarray(0, limit * T);
  const batches = maskedEvalBatches(blocks, { batchSize: config.eval.batch_size, contextLength: T, masking: maskingFor(tokenizer, config), seed: config.seed });
  const { start, end } = shardRange(batches.batchCount, at.communicator);
  // Per batch: its summed loss, its correct predictions, its selected tokens.
  const sums = new Float64Array((end - start) * 3);
  const wasTraining = m.training;
  m.eval();
  try {
    noGrad(() => {
      let b = 0;
      for (const batch of batches) {
        if (b >= start && b < end) {
          const out = m.fillMask(batch.inputIds, batch.labels);
          const labels = batch.labels.toArray();
          const predicted = out.logits.argmax(-1).toArray();
          let n = 0;
          let correct = 0;
          for (let i = 0; i < labels.length; i++) {
            if (labels[i] === IGNORE_INDEX) continue;
            n++;
            if (predicted[i] === labels[i]) correct++;
          }
          const row = (b - start) * 3;
          sums[row] = n > 0 ? out.loss!.item() * n : 0;
          sums[row + 1] = correct;
          sums[row + 2] = n;
        }
        b++;
      }
    });
  } finally {
    if (wasTraining) m.train();
  }
  const local = end > start ? tensor(sums, { shape: [end - start, 3] }) : null;
  const all = (await gatherRows(local, batches.batchCount, at.communicator, 'float64')).data() as Float64Array;
  let lossSum = 0;
  let correct = 0;
  let selected = 0;
  for (let row = 0; row < all.length; row += 3) {
    lossSum += all[row]!;
    correct += all[row + 1]!;
    selected += all[row + 2]!;
  }
  if (selected === 0) throw new Error(`evaluation: no token of ${val.name} was selected for masking (too little held-out text)`);
  const loss = lossSum / selected;
  return { 'eval/mlm_accuracy': correct / selected, 'eval/mlm_loss': loss, 'eval/perplexity': Math.exp(loss) };
}
