import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type LabelledFeatures, evaluateLinearProbe, logisticAccuracy, fitLogisticRegression, linearProbe, predictLogistic, stratifiedSplit,
} from '../../src/eval/linear_probe.js';
import { vitFeatureSource } from '../../src/eval/features.js';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { ImageProcessor } from '../../src/data/image.js';
import { createModel } from '../../src/models/registry.js';
import type { ViTModel } from '../../src/models/vit.js';
import { Generator } from '../../src/tensor/random.js';
import { rng } from '../helpers.js';

/** Gaussian clusters: class c centred at `spread` times a random unit-ish direction. */
function clusters(classes: number, perClass: number, dim: number, spread: number, seed: number): LabelledFeatures {
  const g = new Generator(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => g.normal() * spread));
  const count = classes * perClass;
  const features = new Float64Array(count * dim);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let k = 0; k < dim; k++) features[i * dim + k] = centres[c]![k]! + g.normal();
  }
  return { features, labels, count, dim };
}

test('logistic regression: a symmetric two-point problem has the solution found by bisection', () => {
  // x = +1 (class 0) and x = -1 (class 1): by symmetry W = [w, -w], b = 0, and the objective
  // log(1 + e^{-2w}) + lambda w^2 is stationary where 2 lambda w = 2 / (1 + e^{2w}).
  const lambda = 0.1;
  const x: LabelledFeatures = { features: Float64Array.from([1, -1]), labels: Int32Array.from([0, 1]), count: 2, dim: 1 };
  let lo = 0;
  let hi = 10;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (2 * lambda * mid - 2 / (1 + Math.exp(2 * mid)) < 0) lo = mid;
    else hi = mid;
  }
  const m = fitLogisticRegression(x, 2, { weightDecay: lambda, gradientTolerance: 1e-12 });
  assert.ok(m.converged);
  assert.ok(Math.abs(m.weights[0]! - lo) < 1e-9 && Math.abs(m.weights[1]! + lo) < 1e-9, `w = ${[...m.weights]}, expected ±${lo}`);
  assert.ok(Math.abs(m.bias[0]!) < 1e-9 && Math.abs(m.bias[1]!) < 1e-9);
  assert.ok(Math.abs(m.loss - (Math.log1p(Math.exp(-2 * lo)) + lambda * lo * lo)) < 1e-12);
});

test('logistic regression: the solution is stationary (gradient by hand) and deterministic', () => {
  const x = clusters(4, 15, 6, 1, 5);
  const lambda = 1e-2;
  const m = fitLogisticRegression(x, 4, { weightDecay: lambda });
  assert.ok(m.converged, `converged in ${m.iterations} iterations`);
  // The gradient of mean CE + lambda/2 |W|^2, written out independently.
  const gW = new Float64Array(4 * 6);
  const gb = new Float64Array(4);
  for (let i = 0; i < x.count; i++) {
    const z = [0, 1, 2, 3].map((c) => m.bias[c]! + [...Array(6).keys()].reduce((s, k) => s + m.weights[c * 6 + k]! * x.features[i * 6 + k]!, 0));
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const sum = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < 4; c++) {
      const d = (e[c]! / sum - (x.labels[i] === c ? 1 : 0)) / x.count;
      gb[c]! += d;
      for (let k = 0; k < 6; k++) gW[c * 6 + k]! += d * x.features[i * 6 + k]!;
    }
  }
  for (let j = 0; j < gW.length; j++) assert.ok(Math.abs(gW[j]! + lambda * m.weights[j]!) <= 1e-6, `dW[${j}]`);
  for (const v of gb) assert.ok(Math.abs(v) <= 1e-6, 'db');
  const again = fitLogisticRegression(x, 4, { weightDecay: lambda });
  assert.deepEqual([...again.weights], [...m.weights]);
  assert.throws(() => fitLogisticRegression(x, 4, { weightDecay: -1 }), /weightDecay/);
  assert.throws(() => fitLogisticRegression(x, 3, { weightDecay: 0 }), /label 3, outside \[0, 3\)/);
  assert.throws(() => predictLogistic(m, { features: new Float64Array(5), count: 1, dim: 5 }), /dimension 5/);
});

test('stratified split: seeded, every class in both parts, disjoint and complete', () => {
  const labels = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3]);
  const a = stratifiedSplit(labels, 0.2, 1);
  const b = stratifiedSplit(labels, 0.2, 1);
  assert.deepEqual(a, b);
  assert.notDeepEqual(stratifiedSplit(labels, 0.2, 2), a);
  const all = [...a.train, ...a.val].sort((x, y) => x - y);
  assert.deepEqual(all, [...labels.keys()]);
  const count = (idx: Int32Array, c: number) => [...idx].filter((i) => labels[i] === c).length;
  assert.deepEqual([0, 1, 2, 3].map((c) => count(a.val, c)), [1, 2, 1, 0]); // round(0.2 * n), at least 1, a class of one stays in train
  assert.throws(() => stratifiedSplit(labels, 1, 0), /valFraction/);
});

test('linear probe: separable Gaussian clusters reach 100% on held-out data; the grid is reported', () => {
  const train = clusters(5, 30, 8, 4, 1);
  const test = clusters(5, 20, 8, 4, 1); // same centres (same seed), fresh noise below
  const g = new Generator(99);
  for (let i = 0; i < test.features.length; i++) test.features[i]! += g.normal() * 0.1;
  const res = linearProbe(train, test, { weightDecays: [1e-4, 1e-2, 1] });
  assert.equal(res.testAccuracy, 1);
  assert.equal(res.trainAccuracy, 1);
  assert.equal(res.valAccuracy, 1);
  assert.deepEqual(res.grid.map((r) => r.weightDecay), [1e-4, 1e-2, 1]);
  assert.equal(res.weightDecay, 1, 'ties go to the largest decay');
  assert.equal(logisticAccuracy(res.classifier, test), 1);

  // Overlapping clusters: the probe cannot be perfect; the chosen decay has the best validation accuracy.
  const hard = clusters(3, 40, 4, 0.8, 7);
  const r2 = linearProbe(hard, null, { weightDecays: [1e-3, 1e-1, 1e3] });
  assert.equal(r2.testAccuracy, null);
  assert.equal(r2.valAccuracy, Math.max(...r2.grid.map((g) => g.valAccuracy)));
  assert.equal(r2.grid.find((g) => g.weightDecay === r2.weightDecay)!.valAccuracy, r2.valAccuracy);
  assert.ok(r2.trainAccuracy < 1 && r2.trainAccuracy > 0.5, `${r2.trainAccuracy}`);
});

test('linear probe over datasets: a ViT\'s CLS features of dark vs bright images', async () => {
  const vit = (await createModel('test-vit', { init: 'random' })) as ViTModel;
  const size = vit.config.imageSize[0];
  const r = rng(5);
  const make = (n: number, tag: string): Dataset => {
    const samples: Sample[] = Array.from({ length: n }, (_, i) => {
      const label = i % 2;
      const data = new Uint8Array(size * size * 3).map(() => Math.floor((label ? 150 : 0) + r() * 100));
      return { key: `${tag}/${i}`, label, image: { kind: 'pixels', image: { width: size, height: size, data } } };
    });
    return { name: `bright(${tag})`, length: n, classNames: ['dark', 'bright'], get: async (i) => samples[i]! };
  };
  const processor = new ImageProcessor('vit', { size: { height: size, width: size } });
  const res = await evaluateLinearProbe(vitFeatureSource(vit, processor, 'mean'), make(20, 'train'), make(10, 'test'),
    { batchSize: 8, weightDecays: [1e-3, 1e-1] });
  assert.equal(res.trainSamples, 20);
  assert.equal(res.testSamples, 10);
  assert.equal(res.dim, vit.config.hiddenSize);
  assert.equal(res.testAccuracy, 1);
  assert.ok(vit.training, 'the model\'s mode is restored');
  await assert.rejects(evaluateLinearProbe(vitFeatureSource(vit, processor), { ...make(4, 'x'), get: async (i) => ({ ...(await make(4, 'x').get(i)), label: undefined }) }, null),
    /without a label/);
});
