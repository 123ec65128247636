// Classification of a labelled dataset: zero-shot, as open_clip's zero_shot.py evaluates it (a
// classifier of prompt-ensembled class embeddings, logits against it), or by a classifier's own
// head; top-1 and top-5 accuracy, with per-class accuracy and the confusion counts besides.
import type { Dataset } from '../data/dataset.js';
import { type ImageClassifierTask, loadImageClassifier } from '../tasks/image_classification.js';
import { buildZeroShotClassifier, loadVisionLanguageModel, type VisionLanguageModel, zeroShotTemplates } from '../tasks/zeroshot.js';
import type { Tensor } from '../tensor/tensor.js';
import { type DatasetPassOptions, imageEmbeddingSource, sampleRows, type SampleRows, withEvalMode } from './features.js';
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
  const C = classNames.length;
  const classifier = await withEvalMode(vl.model, () => buildZeroShotClassifier(vl, classNames, templates, { batchSize: options.batchSize }));
  const m = vl.model;
  const embed = imageEmbeddingSource(vl);
  const source = { ...embed, extract: (pixels: Tensor) => m.pairLogits(embed.extract(pixels), classifier).logits };
  const { scores, labels } = scoresAndLabels(await sampleRows(dataset, source, options), C, dataset, 'zero-shot');
  return { ...classificationMetrics(scores, labels, classNames), dataset: dataset.name, model: vl.name, templates };
}

/** Scores [N, C] and labels [N] of a pass whose rows are per-class scores; every sample needs a label. */
function scoresAndLabels({ rows, samples }: SampleRows, classes: number, dataset: Dataset, what: string): { scores: Float64Array; labels: Int32Array } {
  if (rows.shape[1] !== classes) throw new Error(`${what}: ${rows.shape[1]} scores per sample, not one per class of ${classes}`);
  const labels = Int32Array.from(samples, (s) => {
    if (s.label === undefined) throw new Error(`${what}: sample ${s.key} of ${dataset.name} has no label`);
    return s.label;
  });
  return { scores: Float64Array.from(rows.data() as Float32Array), labels };
}

/** A class whose name in a classifier's id2label is not the dataset's. */
export interface LabelMismatch {
  readonly index: number;
  /** The name in the model's id2label. */
  readonly model: string;
  /** The name in the dataset. */
  readonly dataset: string;
}

/**
 * A classifier's labels against a dataset's class names, index by index. A different count is an
 * error, and so are the same names in another order (each class would be read as another); the
 * other differences (e.g. a model saved without id2label, whose labels are LABEL_0, LABEL_1, ...)
 * are returned.
 */
export function compareClassNames(modelLabels: readonly string[], classNames: readonly string[], modelName: string, datasetName: string): LabelMismatch[] {
  if (modelLabels.length !== classNames.length) {
    throw new Error(`classification: ${modelName} classifies into ${modelLabels.length} classes (its id2label), but ${datasetName} has `
      + `${classNames.length}; evaluate it on data with the classes it was trained on`);
  }
  const mismatches = classNames.flatMap((name, index) => (modelLabels[index] === name ? [] : [{ index, model: modelLabels[index]!, dataset: name }]));
  const sorted = (xs: readonly string[]) => [...xs].sort().join('\n');
  if (mismatches.length > 0 && sorted(modelLabels) === sorted(classNames)) {
    const m = mismatches[0]!;
    throw new Error(`classification: ${modelName} has the class names of ${datasetName} in another order (class ${m.index} is '${m.model}' in `
      + `its id2label, '${m.dataset}' in the data), so its predictions would be scored against the wrong classes; use data whose class indices follow the model's`);
  }
  return mismatches;
}

export interface ClassifierEvalResult extends ClassificationMetrics {
  readonly dataset: string;
  readonly model: string;
  /** The classes whose names differ between the model's id2label and the dataset (the dataset's are reported). */
  readonly labelMismatches: LabelMismatch[];
}

/**
 * The accuracy of an image classifier (its head's logits; ViTForImageClassification) on a
 * labelled dataset, whose class indices must be the model's (see compareClassNames).
 */
export async function evaluateClassifier(classifier: ImageClassifierTask | string, dataset: Dataset,
  options: DatasetPassOptions = {}): Promise<ClassifierEvalResult> {
  const task = typeof classifier === 'string' ? await loadImageClassifier(classifier) : classifier;
  const classNames = dataset.classNames;
  if (!classNames || classNames.length === 0) throw new Error(`classification: ${dataset.name} has no class names; a classifier is evaluated on a labelled dataset`);
  const labelMismatches = compareClassNames(task.model.labels, classNames, task.name, dataset.name);
  const C = classNames.length;
  const model = task.model;
  const backend = model.parameters()[0]?.backend;
  const source = {
    imageProcessor: task.imageProcessor, module: model,
    extract: (pixels: Tensor) => model.classify(backend && pixels.backend !== backend ? pixels.to(backend) : pixels),
  };
  const { scores, labels } = scoresAndLabels(await sampleRows(dataset, source, options), C, dataset, 'classification');
  return { ...classificationMetrics(scores, labels, classNames), dataset: dataset.name, model: task.name, labelMismatches };
}
