// Evaluation during and after training, on config.data.val, with the evaluations of src/eval:
// a classifier's accuracy; a dual encoder's zero-shot accuracy (when the set has class names) and
// image <-> text retrieval (when its samples have captions); an MAE's reconstruction loss (and a
// picture of its reconstructions); a BERT's masked-token accuracy and perplexity. Beside the
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
import { forEachBatch, sampleImage } from '../eval/features.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import type { MaskedImageModel, MaskedLanguageModel } from '../models/family.js';
import { maeReconstruction, writeReconstructionGrid } from '../tasks/mae.js';
import type { VisionLanguageModel } from '../tasks/zeroshot.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';
import { isTextCorpus, maskingFor, packCorpus } from './data.js';
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

/** Where a run's evaluation happens: the step it follows. */
export interface EvalPoint {
  step: number;
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
export async function evaluateModel(setup: TrainModel, val: Dataset | TextCorpus, config: TrainConfig, at: EvalPoint = { step: 0 }): Promise<EvalMetrics> {
  const m = setup.model;
  if (isTextCorpus(val)) {
    if (m.kind !== 'masked-lm') throw new Error(`evaluation: ${val.name} is a text corpus; ${m.constructor.name} is evaluated on images`);
    return evaluateMaskedLM(setup, m, val, config);
  }
  const opts = { batchSize: config.eval.batch_size, limit: config.eval.max_samples ?? undefined };
  const out: EvalMetrics = {};
  if (m.kind === 'masked-image-model') return evaluateMAE(setup, m, val, config, at);
  if (m.kind === 'image-classifier') {
    if (!val.classNames) throw new Error(`evaluation: ${val.name} has no class names`);
    const r = await evaluateClassifier({ name: 'trained model', model: m, imageProcessor: setup.imageProcessor! }, val, opts);
    out['eval/top1'] = r.top1;
    if (r.top5 !== null) out['eval/top5'] = r.top5;
    const examples = await predictionExamples(val, r.predictions, val.classNames);
    writeEvalDetails(config, at.step, { dataset: val.name, samples: r.samples, chance: topKChance('eval/', val.classNames.length), examples });
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
    details.examples = await predictionExamples(val, r.predictions, val.classNames);
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
  writeEvalDetails(config, at.step, details);
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
  const generator = new Generator(mixSeed(EVAL_MASK_STREAM, config.seed));
  const seen: { first: Tensor | null } = { first: null }; // the first batch, for the picture
  let total = 0;
  let count = 0;
  // The loss is a mean over the batch's masked patches; every image has as many, so weighting
  // each batch's loss by its images gives the mean over the whole set.
  const source = {
    imageProcessor: setup.imageProcessor!, module: m,
    extract: (pixels: Tensor) => {
      seen.first ??= pixels;
      return m.maskedLoss(pixels, generator).reshape([1, 1]).expand(pixels.shape[0]!, 1);
    },
  };
  await forEachBatch(val, source, { batchSize: config.eval.batch_size, limit: config.eval.max_samples ?? undefined }, (samples, loss) => {
    total += loss.toArray()[0]! * samples.length;
    count += samples.length;
  });
  const pictures = Math.min(config.mae.pictures, seen.first?.shape[0] ?? 0);
  if (pictures > 0) {
    const pixels = seen.first!.slice(0, 0, pictures);
    const rows = noGrad(() => maeReconstruction(m, pixels, { generator: new Generator(mixSeed(EVAL_MASK_STREAM, config.seed, 1)), processor: setup.imageProcessor! }));
    await writeReconstructionGrid(reconstructionPicture(config, at.step), rows);
  }
  return { 'eval/mae_loss': total / count };
}

/** Where evaluateMAE draws the reconstructions of a step: original | masked | reconstruction | with the visible patches. */
export function reconstructionPicture(config: TrainConfig, step: number): string {
  return path.join(config.out, 'reconstructions', `step_${String(step).padStart(7, '0')}.png`);
}

const packedValidation = new WeakMap<TextCorpus, Int32Array>();

/**
 * A BERT's masked-token accuracy, loss and perplexity (exp of the mean loss per selected token)
 * on held-out text packed as in training, with the same masks at every evaluation.
 */
function evaluateMaskedLM(setup: TrainModel, m: MaskedLanguageModel, val: TextCorpus, config: TrainConfig): EvalMetrics {
  const tokenizer = setup.tokenizer!;
  let blocks = packedValidation.get(val);
  if (!blocks) packedValidation.set(val, (blocks = packCorpus(val, tokenizer, setup.contextLength)));
  const T = setup.contextLength;
  const limit = config.eval.max_samples;
  if (limit !== null && limit * T < blocks.length) blocks = blocks.subarray(0, limit * T);
  const batches = maskedEvalBatches(blocks, { batchSize: config.eval.batch_size, contextLength: T, masking: maskingFor(tokenizer, config), seed: config.seed });
  let lossSum = 0;
  let correct = 0;
  let selected = 0;
  const wasTraining = m.training;
  m.eval();
  try {
    noGrad(() => {
      for (const b of batches) {
        const out = m.fillMask(b.inputIds, b.labels);
        const labels = b.labels.toArray();
        const predicted = out.logits.argmax(-1).toArray();
        let n = 0;
        for (let i = 0; i < labels.length; i++) {
          if (labels[i] === IGNORE_INDEX) continue;
          n++;
          if (predicted[i] === labels[i]) correct++;
        }
        if (n > 0) lossSum += out.loss!.item() * n;
        selected += n;
      }
    });
  } finally {
    if (wasTraining) m.train();
  }
  if (selected === 0) throw new Error(`evaluation: no token of ${val.name} was selected for masking (too little held-out text)`);
  const loss = lossSum / selected;
  return { 'eval/mlm_accuracy': correct / selected, 'eval/mlm_loss': loss, 'eval/perplexity': Math.exp(loss) };
}
