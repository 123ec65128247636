// `glimpse classify` by the model's kind: an image classifier's own labels (its head and
// id2label), or zero-shot against --labels for a CLIP or SigLIP model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { classifyCommand } from '../../src/cli/classify.js';
import { ImageProcessor } from '../../src/data/image.js';
import { labelFields } from '../../src/io/hf.js';
import type { DualEncoder, ImageClassifier } from '../../src/models/family.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Generator } from '../../src/tensor/random.js';
import { rows } from '../../src/tasks/zeroshot.js';
import { tempDirs } from '../helpers.js';

const tmp = tempDirs('classify');
const imgDir = tmp();
fs.mkdirSync(imgDir, { recursive: true });
const images: string[] = [];
for (const seed of [1, 2]) {
  const data = Buffer.alloc(40 * 36 * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  const file = path.join(imgDir, `${seed}.png`);
  await sharp(data, { raw: { width: 40, height: 36, channels: 3 } }).png().toFile(file);
  images.push(file);
}

const CLASSES = ['circle', 'square', 'triangle', 'star', 'hexagon', 'cross'];
const classifier = modelFromConfig({ ...getModelEntry('test-vit').config, architectures: ['ViTForImageClassification'], ...labelFields(CLASSES) },
  { generator: new Generator(5) }) as ImageClassifier;
const classifierDir = tmp();
classifier.savePretrained(classifierDir);

type Printed = { image: string; predictions: { label: string; score: number }[] }[];

test('classify with an image classifier folder: its own labels, softmax scores, best first', async () => {
  const pixels = await new ImageProcessor('vit', { size: { height: 32, width: 32 }, cropSize: { height: 32, width: 32 } }).preprocess(images);
  const probs = rows(noGrad(() => classifier.classify(pixels).softmax(-1)));
  const out = JSON.parse(await classifyCommand([path.join(imgDir, '*.png')], { model: classifierDir, json: true })) as Printed;
  assert.deepEqual(out.map((o) => o.image), images);
  out.forEach((o, i) => {
    const want = CLASSES.map((label, j) => ({ label, score: probs[i]![j]! })).sort((a, b) => b.score - a.score).slice(0, 5);
    assert.deepEqual(o.predictions.map((p) => p.label), want.map((p) => p.label));
    o.predictions.forEach((p, k) => assert.ok(Math.abs(p.score - want[k]!.score) < 1e-6, `${p.label}: ${p.score} vs ${want[k]!.score}`));
  });
  const text = (await classifyCommand([images[0]!], { model: classifierDir, topK: 2 })).split('\n');
  assert.equal(text[0], images[0]);
  assert.equal(text.length, 3);
  assert.match(text[1]!, new RegExp(`^ {2}${out[0]!.predictions[0]!.label} +0\\.\\d{4}$`));
});

test('classify: --labels or --template with an image classifier is an error; zero-shot models still need labels', async () => {
  await assert.rejects(classifyCommand([images[0]!], { model: classifierDir, labels: ['cat', 'dog'] }),
    /is an image classifier with its own 6 labels \(config.json's id2label\); --labels, --labels-file and --template are for zero-shot models .*leave them out/);
  await assert.rejects(classifyCommand([images[0]!], { model: classifierDir, templates: ['a {}'] }), /leave them out/);
  await assert.rejects(classifyCommand([images[0]!], { model: classifierDir, topK: 0 }), /--top-k must be a positive integer, got 0/);

  const clip = modelFromConfig(getModelEntry('test-clip').config, { generator: new Generator(6) }) as DualEncoder;
  const clipDir = tmp();
  clip.savePretrained(clipDir);
  getModelEntry('test-clip').tokenizer!().save(clipDir);
  const zs = JSON.parse(await classifyCommand(images, { model: clipDir, labels: ['cat,dog', 'bird'], topK: 2, json: true })) as Printed;
  for (const o of zs) {
    assert.equal(o.predictions.length, 2);
    assert.ok(o.predictions.every((p) => ['cat', 'dog', 'bird'].includes(p.label)));
    assert.ok(o.predictions[0]!.score >= o.predictions[1]!.score);
  }
  await assert.rejects(classifyCommand([images[0]!], { model: clipDir }), /no labels/);
});
