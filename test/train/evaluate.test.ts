// The trainer's evaluation of a classifier is src/eval's evaluateClassifier: the same accuracy,
// and the same check of the validation set's class names against the model's labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { evaluateClassifier } from '../../src/eval/classification.js';
import { resolveConfig } from '../../src/train/config.js';
import { evaluateModel } from '../../src/train/evaluate.js';
import { buildTrainModel } from '../../src/train/model_setup.js';
import { rng, tempDirs } from '../helpers.js';

const tmp = tempDirs('train-evaluate');

function labelled(n: number, classNames: readonly string[], seed: number): Dataset {
  const r = rng(seed);
  const samples: Sample[] = Array.from({ length: n }, (_, i) => ({
    key: `img${i}`, label: i % classNames.length,
    image: { kind: 'pixels', image: { width: 32, height: 32, data: Uint8Array.from({ length: 32 * 32 * 3 }, () => Math.floor(r() * 256)) } },
  }));
  return { name: 'random', length: n, classNames, get: async (i) => samples[i]! };
}

test('evaluateModel of a classifier: evaluateClassifier\'s top-1, and its class-name check', async () => {
  const classes = ['a', 'b', 'c', 'd', 'e', 'f'];
  const config = resolveConfig({ model: 'test-vit', task: 'ce', steps: 1, batch_size: 4, seed: 2, out: tmp(), data: { train: 'unused', workers: 0 }, eval: { batch_size: 5 } });
  const setup = await buildTrainModel(config, { classNames: classes });
  const val = labelled(12, classes, 3);
  const metrics = await evaluateModel(setup, val, config);
  const m = setup.model;
  assert.equal(m.kind, 'image-classifier');
  if (m.kind !== 'image-classifier') return;
  const direct = await evaluateClassifier({ name: 'x', model: m, imageProcessor: setup.imageProcessor! }, val);
  assert.deepEqual(metrics, { 'eval/top1': direct.top1, 'eval/top5': direct.top5! });
  await assert.rejects(evaluateModel(setup, labelled(12, [...classes].reverse(), 3), config), /has the class names of random in another order/);
  await assert.rejects(evaluateModel(setup, labelled(12, classes.slice(0, 4), 3), config), /classifies into 6 classes \(its id2label\), but random has 4/);
});
