// Accuracy per attribute on seen and held-out compositions: against per-image counting, on the
// scenes' classes, and the errors for descriptions that do not fit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClassCompositions } from '../../src/data/dataset.js';
import { SCENE_CLASS_NAMES, SCENE_HELD_OUT, ScenesDataset } from '../../src/data/scenes.js';
import { classificationMetrics } from '../../src/eval/classification.js';
import { compositionalAccuracy } from '../../src/eval/compositional.js';
import { rng } from '../helpers.js';

const compositions = new ScenesDataset('test').compositions;
const classOf = (name: string) => SCENE_CLASS_NAMES.indexOf(name);

test('compositional accuracy: hand-counted predictions on seen and held-out pairs, chance 1/8 per attribute', () => {
  // Held out: a red star taken for a red circle (colour right), a blue triangle for a green triangle
  // (shape right), a white cross right. Seen: a red circle right, a blue star taken for a green heart (both wrong).
  const pairs: [string, string][] = [
    ['red star', 'red circle'], ['blue triangle', 'green triangle'], ['white cross', 'white cross'],
    ['red circle', 'red circle'], ['blue star', 'green heart'],
  ];
  const labels = pairs.map(([t]) => classOf(t));
  const scores = pairs.flatMap(([, p]) => SCENE_CLASS_NAMES.map((_, c) => (c === classOf(p) ? 1 : 0)));
  const { confusion } = classificationMetrics(scores, labels, SCENE_CLASS_NAMES);
  const r = compositionalAccuracy(confusion, compositions);
  assert.deepEqual(r.heldOut, { samples: 3, exact: 1 / 3, attributes: { colour: 2 / 3, shape: 2 / 3 } });
  assert.deepEqual(r.seen, { samples: 2, exact: 1 / 2, attributes: { colour: 1 / 2, shape: 1 / 2 } });
  assert.deepEqual(r.chance, { colour: 1 / 8, shape: 1 / 8 });
});

test('compositional accuracy: random predictions against a per-image count; an empty group is null', () => {
  const r = rng(7);
  const heldOut = SCENE_HELD_OUT.map(classOf);
  const labels = Array.from({ length: 300 }, () => heldOut[Math.floor(r() * heldOut.length)]!);
  const predicted = labels.map(() => Math.floor(r() * SCENE_CLASS_NAMES.length));
  const scores = predicted.flatMap((p) => SCENE_CLASS_NAMES.map((_, c) => (c === p ? 1 : 0)));
  const acc = compositionalAccuracy(classificationMetrics(scores, labels, SCENE_CLASS_NAMES).confusion, compositions);
  const word = (k: number, i: number) => SCENE_CLASS_NAMES[k]!.split(' ')[i];
  const share = (f: (t: number, p: number) => boolean) => labels.filter((t, i) => f(t, predicted[i]!)).length / labels.length;
  assert.equal(acc.seen, null);
  assert.equal(acc.heldOut!.samples, 300);
  assert.equal(acc.heldOut!.attributes.colour, share((t, p) => word(t, 0) === word(p, 0)));
  assert.equal(acc.heldOut!.attributes.shape, share((t, p) => word(t, 1) === word(p, 1)));
  assert.equal(acc.heldOut!.exact, share((t, p) => t === p));
});

test('compositional accuracy: a description that does not fit the predictions is named', () => {
  const confusion = [[1, 0], [0, 1]];
  assert.throws(() => compositionalAccuracy(confusion, compositions), /64 classes described, but the predictions have 2/);
  const bad: ClassCompositions = { attributes: ['colour', 'shape'], values: [['red', 'star'], ['red']], heldOut: new Set([0]) };
  assert.throws(() => compositionalAccuracy(confusion, bad), /class 1 has 1 attribute values, not 2 \(colour, shape\)/);
});
