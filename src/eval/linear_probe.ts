// Linear probe: multinomial logistic regression with an L2 penalty on frozen image features,
// fitted by full-batch L-BFGS in float64, the weight decay chosen on a validation split from a
// grid (CLIP's protocol, with scikit-learn's L-BFGS solver in mind). Nothing is random but the
// split, which is seeded, so a probe gives the same numbers every run.
import type { Dataset } from '../data/dataset.js';
import { Generator } from '../tensor/random.js';
import { type DatasetFeatures, type DatasetPassOptions, extractFeatures, type ImageFeatureSource } from './features.js';

/** Features with class ids: row-major [count, dim]. */
export interface LabelledFeatures {
  readonly features: Float64Array;
  readonly labels: Int32Array;
  readonly count: number;
  readonly dim: number;
}

export interface LogisticRegressionOptions {
  /** L2 penalty: the objective is mean cross-entropy + weightDecay / 2 * ||W||^2 (the bias is not penalised). */
  weightDecay: number;
  /** L-BFGS iterations at most (default 1000). */
  maxIterations?: number;
  /** Stop when the largest gradient entry is below this (default 1e-6). */
  gradientTolerance?: number;
  /** Correction pairs L-BFGS keeps (default 10). */
  history?: number;
}

/** A fitted classifier: logits = W x + b. */
export interface LogisticRegression {
  readonly classes: number;
  readonly dim: number;
  /** [classes, dim], row-major. */
  readonly weights: Float64Array;
  readonly bias: Float64Array;
  readonly weightDecay: number;
  /** The objective at the solution. */
  readonly loss: number;
  readonly iterations: number;
  /** Whether the gradient tolerance was reached (else the iteration cap, or no further progress). */
  readonly converged: boolean;
}

function checkFeatures(x: LabelledFeatures, classes: number, what: string): void {
  if (x.features.length !== x.count * x.dim) throw new Error(`${what}: ${x.features.length} feature values, not ${x.count} x ${x.dim}`);
  if (x.labels.length !== x.count) throw new Error(`${what}: ${x.labels.length} labels for ${x.count} samples`);
  if (x.count === 0) throw new Error(`${what}: no samples`);
  for (let i = 0; i < x.count; i++) {
    const y = x.labels[i]!;
    if (y < 0 || y >= classes) throw new Error(`${what}: sample ${i} has label ${y}, outside [0, ${classes})`);
  }
  for (let i = 0; i < x.features.length; i++) {
    if (!Number.isFinite(x.features[i]!)) throw new Error(`${what}: feature ${i % x.dim} of sample ${Math.floor(i / x.dim)} is ${x.features[i]}`);
  }
}

/** Logits [count, classes] of parameters theta = [W (classes x dim), b (classes)]. */
function logitsOf(theta: Float64Array, x: LabelledFeatures | Omit<LabelledFeatures, 'labels'>, classes: number): Float64Array {
  const { dim, count, features } = x;
  const out = new Float64Array(count * classes);
  const biasAt = classes * dim;
  for (let i = 0; i < count; i++) {
    const row = i * dim;
    for (let c = 0; c < classes; c++) {
      let s = theta[biasAt + c]!;
      const w = c * dim;
      for (let k = 0; k < dim; k++) s += theta[w + k]! * features[row + k]!;
      out[i * classes + c] = s;
    }
  }
  return out;
}

/** The objective and its gradient (written into `grad`). */
function objective(theta: Float64Array, grad: Float64Array, x: LabelledFeatures, classes: number, lambda: number): number {
  const { dim, count, features, labels } = x;
  const logits = logitsOf(theta, x, classes);
  grad.fill(0);
  const biasAt = classes * dim;
  let loss = 0;
  const p = new Float64Array(classes);
  for (let i = 0; i < count; i++) {
    const off = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[off + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += (p[c] = Math.exp(logits[off + c]! - max));
    const y = labels[i]!;
    loss += Math.log(z) + max - logits[off + y]!;
    const row = i * dim;
    for (let c = 0; c < classes; c++) {
      // d(CE)/d(logit_c) = softmax_c - [c == y], averaged over samples below.
      const g = p[c]! / z - (c === y ? 1 : 0);
      if (g === 0) continue;
      const w = c * dim;
      for (let k = 0; k < dim; k++) grad[w + k]! += g * features[row + k]!;
      grad[biasAt + c]! += g;
    }
  }
  let penalty = 0;
  for (let j = 0; j < theta.length; j++) {
    grad[j]! /= count;
    if (j < biasAt) {
      penalty += theta[j]! * theta[j]!;
      grad[j]! += lambda * theta[j]!;
    }
  }
  return loss / count + 0.5 * lambda * penalty;
}

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * Fits multinomial logistic regression by L-BFGS (two-loop recursion, backtracking line search
 * on the Armijo condition), from zero weights.
 */
export function fitLogisticRegression(x: LabelledFeatures, classes: number, options: LogisticRegressionOptions): LogisticRegression {
  const lambda = options.weightDecay;
  if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new Error(`logistic regression: weightDecay must be a finite number >= 0, got ${lambda}`);
  if (!Number.isInteger(classes) || classes < 2) throw new Error(`logistic regression: needs at least 2 classes, got ${classes}`);
  checkFeatures(x, classes, 'logistic regression');
  const maxIterations = options.maxIterations ?? 1000;
  const tolerance = options.gradientTolerance ?? 1e-6;
  const m = options.history ?? 10;
  const size = classes * x.dim + classes;
  let theta = new Float64Array(size);
  let grad = new Float64Array(size);
  let f = objective(theta, grad, x, classes, lambda);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const dir = new Float64Array(size);
  const alpha = new Float64Array(m);
  const gradMax = (g: Float64Array) => g.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  let iterations = 0;
  let converged = gradMax(grad) <= tolerance;
  while (!converged && iterations < maxIterations) {
    // Two-loop recursion: dir = -H grad.
    for (let j = 0; j < size; j++) dir[j] = -grad[j]!;
    for (let k = S.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(S[k]!, dir);
      const yk = Y[k]!;
      for (let j = 0; j < size; j++) dir[j]! -= alpha[k]! * yk[j]!;
    }
    const gamma = S.length ? dot(S[S.length - 1]!, Y[Y.length - 1]!) / dot(Y[Y.length - 1]!, Y[Y.length - 1]!) : 1 / Math.max(1, gradMax(grad));
    for (let j = 0; j < size; j++) dir[j]! *= gamma;
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k]! * dot(Y[k]!, dir);
      const sk = S[k]!;
      for (let j = 0; j < size; j++) dir[j]! += (alpha[k]! - beta) * sk[j]!;
    }
    let slope = dot(grad, dir);
    if (!(slope < 0)) {
      // Not a descent direction (curvature information gone stale): restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let j = 0; j < size; j++) dir[j] = -grad[j]! / Math.max(1, gradMax(grad));
      slope = dot(grad, dir);
    }
    let step = 1;
    const next = new Float64Array(size);
    const nextGrad = new Float64Array(size);
    let fNext = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let j = 0; j < size; j++) next[j] = theta[j]! + step * dir[j]!;
      fNext = objective(next, nextGrad, x, classes, lambda);
      if (fNext <= f + 1e-4 * step * slope) break;
      step /= 2;
    }
    iterations++;
    if (!(fNext < f)) break; // No decrease at any step size: as good as double precision allows.
    const s = new Float64Array(size);
    const y = new Float64Array(size);
    for (let j = 0; j < size; j++) {
      s[j] = next[j]! - theta[j]!;
      y[j] = nextGrad[j]! - grad[j]!;
    }
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    theta = next;
    grad = nextGrad;
    f = fNext;
    converged = gradMax(grad) <= tolerance;
  }
  const W = classes * x.dim;
  return {
    classes, dim: x.dim, weights: theta.slice(0, W), bias: theta.slice(W), weightDecay: lambda, loss: f, iterations, converged,
  };
}

/** The predicted class of each row (the first on ties). */
export function predictLogistic(model: LogisticRegression, x: Omit<LabelledFeatures, 'labels'>): Int32Array {
  if (x.dim !== model.dim) throw new Error(`logistic regression: features of dimension ${x.dim}, but the model takes ${model.dim}`);
  const theta = new Float64Array(model.weights.length + model.bias.length);
  theta.set(model.weights);
  theta.set(model.bias, model.weights.length);
  const logits = logitsOf(theta, x, model.classes);
  const out = new Int32Array(x.count);
  for (let i = 0; i < x.count; i++) {
    let best = 0;
    for (let c = 1; c < model.classes; c++) if (logits[i * model.classes + c]! > logits[i * model.classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** Fraction of rows the model classifies correctly. */
export function logisticAccuracy(model: LogisticRegression, x: LabelledFeatures): number {
  const pred = predictLogistic(model, x);
  let hits = 0;
  for (let i = 0; i < x.count; i++) if (pred[i] === x.labels[i]) hits++;
  return hits / x.count;
}

/** The rows `index` of a feature set. */
export function selectRows(x: LabelledFeatures, index: ArrayLike<number>): LabelledFeatures {
  const features = new Float64Array(index.length * x.dim);
  const labels = new Int32Array(index.length);
  for (let r = 0; r < index.length; r++) {
    const i = index[r]!;
    features.set(x.features.subarray(i * x.dim, (i + 1) * x.dim), r * x.dim);
    labels[r] = x.labels[i]!;
  }
  return { features, labels, count: index.length, dim: x.dim };
}

/**
 * A stratified split: from each class, a seeded shuffle of its samples, the first
 * round(valFraction * size) to validation (at least one while the class keeps one for training).
 */
export function stratifiedSplit(labels: Int32Array, valFraction: number, seed: number): { train: Int32Array; val: Int32Array } {
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`valFraction must be in (0, 1), got ${valFraction}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    const list = byClass.get(y);
    if (list) list.push(i);
    else byClass.set(y, [i]);
  });
  const gen = new Generator(seed);
  const train: number[] = [];
  const val: number[] = [];
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(y)!;
    const order = gen.permutation(members.length);
    const nVal = members.length < 2 ? 0 : Math.min(members.length - 1, Math.max(1, Math.round(valFraction * members.length)));
    order.forEach((o, r) => (r < nVal ? val : train).push(members[o]!));
  }
  const sorted = (xs: number[]) => Int32Array.from(xs).sort();
  return { train: sorted(train), val: sorted(val) };
}

export interface LinearProbeOptions {
  /** Weight decays tried (default 1e-6, 1e-5, ..., 1). */
  weightDecays?: readonly number[];
  /** Fraction of the training features held out to choose the weight decay (default 0.2). */
  valFraction?: number;
  /** Seed of the validation split (default 0). */
  seed?: number;
  /** Classes (default: the largest label + 1). */
  classes?: number;
  maxIterations?: number;
}

export interface LinearProbeResult {
  readonly weightDecay: number;
  /** Each weight decay's validation accuracy and L-BFGS run, in grid order. */
  readonly grid: { weightDecay: number; valAccuracy: number; iterations: number; converged: boolean }[];
  /** Accuracy of the final classifier (refitted on train + validation) on the training features. */
  readonly trainAccuracy: number;
  /** The chosen weight decay's validation accuracy (fitted on the training part only). */
  readonly valAccuracy: number;
  /** Accuracy of the final classifier on the test features, when given. */
  readonly testAccuracy: number | null;
  readonly classifier: LogisticRegression;
}

export const DEFAULT_WEIGHT_DECAYS: readonly number[] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];

/**
 * The probe: for each weight decay, fit on the training part of a stratified split and score
 * the validation part; the best validation accuracy wins (ties: the larger decay, the simpler
 * model). The final classifier is refitted with it on all training features.
 */
export function linearProbe(train: LabelledFeatures, test: LabelledFeatures | null, options: LinearProbeOptions = {}): LinearProbeResult {
  let maxLabel = 0;
  for (const y of train.labels) maxLabel = Math.max(maxLabel, y);
  const classes = options.classes ?? maxLabel + 1;
  const grid = [...(options.weightDecays ?? DEFAULT_WEIGHT_DECAYS)];
  if (grid.length === 0) throw new Error('linear probe: no weight decays to try');
  checkFeatures(train, classes, 'linear probe (train)');
  if (test) {
    checkFeatures(test, classes, 'linear probe (test)');
    if (test.dim !== train.dim) throw new Error(`linear probe: test features have dimension ${test.dim}, train features ${train.dim}`);
  }
  const split = stratifiedSplit(train.labels, options.valFraction ?? 0.2, options.seed ?? 0);
  if (split.val.length === 0) throw new Error('linear probe: too few samples per class for a validation split');
  const fitPart = selectRows(train, split.train);
  const valPart = selectRows(train, split.val);
  const fit = (x: LabelledFeatures, weightDecay: number) => fitLogisticRegression(x, classes, { weightDecay, maxIterations: options.maxIterations });
  const results = grid.map((weightDecay) => {
    const model = fit(fitPart, weightDecay);
    return { weightDecay, valAccuracy: logisticAccuracy(model, valPart), iterations: model.iterations, converged: model.converged };
  });
  let best = results[0]!;
  for (const r of results) if (r.valAccuracy > best.valAccuracy || (r.valAccuracy === best.valAccuracy && r.weightDecay > best.weightDecay)) best = r;
  const classifier = fit(train, best.weightDecay);
  return {
    weightDecay: best.weightDecay, grid: results, valAccuracy: best.valAccuracy, classifier,
    trainAccuracy: logisticAccuracy(classifier, train),
    testAccuracy: test ? logisticAccuracy(classifier, test) : null,
  };
}

function labelled(f: DatasetFeatures, name: string): LabelledFeatures {
  if (!f.labels) throw new Error(`linear probe: ${name} has samples without a label`);
  return { features: f.features, labels: f.labels, count: f.count, dim: f.dim };
}

export interface LinearProbeEvalResult extends LinearProbeResult {
  readonly trainDataset: string;
  readonly testDataset: string | null;
  readonly trainSamples: number;
  readonly testSamples: number | null;
  readonly dim: number;
}

/** Features of a training and a test dataset from `source`, then the probe. */
export async function evaluateLinearProbe(source: ImageFeatureSource, trainSet: Dataset, testSet: Dataset | null,
  options: LinearProbeOptions & DatasetPassOptions & { testLimit?: number } = {}): Promise<LinearProbeEvalResult> {
  const train = labelled(await extractFeatures(trainSet, source, options), trainSet.name);
  const test = testSet ? labelled(await extractFeatures(testSet, source, { ...options, limit: options.testLimit }), testSet.name) : null;
  const classes = options.classes ?? trainSet.classNames?.length;
  const result = linearProbe(train, test, { ...options, classes });
  return {
    ...result, trainDataset: trainSet.name, testDataset: testSet?.name ?? null, trainSamples: train.count, testSamples: test?.count ?? null, dim: train.dim,
  };
}
