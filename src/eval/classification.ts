// Zero-shot classification of a labelled dataset, as open_clip's zero_shot.py evaluates it: a
// classifier of prompt-ensembled class embeddings, logits against it, top-1 and top-5 accuracy;
// with per-class accuracy and the confusion counts besides.
import type { Dataset } from '../data/dataset.js';
import { buildZeroShotClassifier, loadVisionLanguageModel, type VisionLanguageModel, zeroShotTemplates } from '../tasks/zeroshot.js';
import { noGrad } from '../tensor/autograd.js';
import { type DatasetPassOptions, evaluatedCount, forEachBatch, imageEmbeddingSource, withEvalMode } from './features.js';
import { bestRank } from './retrieval.js';

export interface ClassAccuracy {
  readonly name: string;
  /** Samples of the class. */
  readonly count: number;
  readonly correct: number;
  /** correct / count, or null for a class without samples. */
  readonly accuracy: number | null;
}

export interface ClassificationMetrics {
  readonly samples: number;
  readonly top1: number;
  /** Top-5 accuracy, null with fewer than 5 classes (where torch's topk(5) would fail in open_clip). */
  readonly top5: number | null;
  /** Mean of the per-class accuracies over classes with samples (balanced accuracy). */
  readonly meanPerClassAccuracy: number;
  readonly perClass: ClassAccuracy[];
  /** confusion[true][predicted]: sample counts. */
  readonly confusion: number[][];
  /** Per sample, the predicted class. */
  readonly predictions: Int32Array;
}

/** The index of the largest of xs[offset .. offset + n), the first on ties. */
function argmax(xs: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let c = 1; c < n; c++) if (xs[offset + c]! > xs[offset + best]!) best = c;
  return best;
}

/**
 * Accuracy metrics of scores [N, C] (row-major; any monotone form: logits, probabilities) against
 * labels [N]. The prediction is the best score, the lowest class index on ties.
 */
export function classificationMetrics(scores: ArrayLike<number>, labels: ArrayLike<number>, classNames: readonly string[]): ClassificationMetrics {
  const C = classNames.length;
  const N = labels.length;
  if (C === 0) throw new Error('classification: no classes');
  if (N === 0) throw new Error('classification: no samples');
  if (scores.length !== N * C) throw new Error(`classification: ${scores.length} scores, not ${N} samples x ${C} classes`);
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  const predictions = new Int32Array(N);
  let top1 = 0;
  let top5 = 0;
  for (let i = 0; i < N; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= C) throw new Error(`classification: sample ${i} has label ${y}, outside [0, ${C})`);
    const pred = argmax(scores, i * C, C);
    predictions[i] = pred;
    confusion[y]![pred]!++;
    const rank = bestRank(scores, i * C, C, [y]) - 1; // 0 = predicted first
    if (rank < 1) top1++;
    if (rank < 5) top5++;
  }
  const perClass = classNames.map((name, c) => {
    const row = confusion[c]!;
    const count = row.reduce((a, b) => a + b, 0);
    return { name, count, correct: row[c]!, accuracy: count ? row[c]! / count : null };
  });
  const present = perClass.filter((p) => p.accuracy !== null);
  return {
    samples: N,
    top1: top1 / N,
    top5: C >= 5 ? top5 / N : null,
    meanPerClassAccuracy: present.reduce((a, p) => a + p.accuracy!, 0) / present.length,
    perClass,
    confusion,
    predictions,
  };
}

export interface ZeroShotEvalOptions extends DatasetPassOptions {
  /**
   * Prompt templates with {} for the class name (default: those the model folder records in
   * zeroshot_config.json, else open_clip's 'a photo of a {}.').
   */
  templates?: readonly string[];
  /** Class names for the prompts (default the dataset's classNames, else those the model folder records). */
  classNames?: readonly string[];
}

export interface ZeroShotEvalResult extends ClassificationMetrics {
  readonly dataset: string;
  readonly model: string;
  readonly templates: readonly string[];
}

/**
 * Zero-shot accuracy of a CLIP or SigLIP model on a labelled dataset: logits = exp(logit_scale) *
 * image . class (+ logit_bias for SigLIP) against the classifier of buildZeroShotClassifier. The
 * ranking is the same whether read as CLIP's softmax or SigLIP's per-class sigmoid.
 */
export async function evaluateZeroShot(model: VisionLanguageModel | string, dataset: Dataset,
  options: ZeroShotEvalOptions = {}): Promise<ZeroShotEvalResult> {
  const vl = typeof model === 'string' ? await loadVisionLanguageModel(model) : model;
  const classNames = options.classNames ?? dataset.classNames ?? vl.zeroShot?.classNames;
  if (!classNames || classNames.length === 0) throw new Error(`zero-shot: ${dataset.name} has no class names (pass classNames)`);
  if (dataset.classNames && dataset.classNames.length !== classNames.length) {
    throw new Error(`zero-shot: ${classNames.length} class names given, but ${dataset.name} has ${dataset.classNames.length} classes`);
  }
  const templates = zeroShotTemplates(vl, options.templates);
  const n = evaluatedCount(dataset, options.limit);
  const C = classNames.length;
  const classifier = await withEvalMode(vl.model, () => buildZeroShotClassifier(vl, classNames, templates, { batchSize: options.batchSize }));
  const m = vl.model;
  const scores = new Float64Array(n * C);
  const labels = new Int32Array(n);
  let done = 0;
  await forEachBatch(dataset, imageEmbeddingSource(vl), options, (samples, img) => {
    const logits = noGrad(() => m.pairLogits(img, classifier).logits);
    scores.set(logits.toArray(), done * C);
    for (const s of samples) {
      if (s.label === undefined) throw new Error(`zero-shot: sample ${s.key} of ${dataset.name} has no label`);
      labels[done++] = s.label;
    }
  });
  return { ...classificationMetrics(scores, labels, classNames), dataset: dataset.name, model: vl.name, templates };
}
