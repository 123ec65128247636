// A classifier's accuracy on a labelled dataset (evaluateClassifier, `glimpse eval accuracy`): the
// metrics against the model's own predictions, and the check of the dataset's class names
// against the model's id2label.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { type Command } from 'commander';
import { evalCommands } from '../../src/cli/eval.js';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { ImageProcessor } from '../../src/data/image.js';
import { openDataset } from '../../src/data/registry.js';
import { SCENE_CLASS_NAMES } from '../../src/data/scenes.js';
import { labelFields } from '../../src/io/hf.js';
import { evaluateClassifier } from '../../src/eval/classification.js';
import type { DualEncoder, ImageClassifier } from '../../src/models/family.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Generator } from '../../src/tensor/random.js';
import { tensor } from '../../src/tensor/tensor.js';
import { imageClassifierTask, loadImageClassifier } from '../../src/tasks/image_classification.js';
import { preprocessorJson } from '../../src/train/model_setup.js';
import { rng, runCommand, tempDirs } from '../helpers.js';

const tmp = tempDirs('eval-accuracy');

function classifierOf(labels: readonly string[] | null, seed: number, numLabels?: number): ImageClassifier {
  const fields = labels ? labelFields(labels) : { num_labels: numLabels };
  return modelFromConfig({ ...getModelEntry('test-vit').config, architectures: ['ViTForImageClassification'], ...fields },
    { generator: new Generator(seed) }) as ImageClassifier;
}

function saved(model: ImageClassifier | DualEncoder): string {
  const dir = tmp();
  model.savePretrained(dir);
  return dir;
}

const accuracy = (): Command => evalCommands().find((c) => c.name() === 'accuracy')!;
const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;

const CLASSES = ['circle', 'square', 'triangle', 'star', 'hexagon', 'cross'];

test('evaluateClassifier: top-1, top-5 and per-class accuracy of the head\'s predictions', async () => {
  const model = classifierOf(CLASSES, 3);
  const task = imageClassifierTask(model, 'tiny classifier');
  // Random 32x32 images; the model's own ranking decides each label: even samples get its first
  // choice, odd ones its last, so top-1 is exactly 1/2 and top-5 (of 6 classes) too.
  const r = rng(9);
  const n = 10;
  const pictures = Array.from({ length: n }, () => ({ width: 32, height: 32, data: Uint8Array.from({ length: 32 * 32 * 3 }, () => Math.floor(r() * 256)) }));
  const processor = task.imageProcessor;
  const pixels = tensor(Float32Array.from(pictures.flatMap((p) => Array.from(processor.pixelValues(p).data))), { shape: [n, 3, 32, 32] });
  model.eval();
  const logits = noGrad(() => model.classify(pixels)).toArray();
  const ranking = (i: number) => CLASSES.map((_, c) => c).sort((a, b) => logits[i * 6 + b]! - logits[i * 6 + a]!);
  const labels = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? ranking(i)[0]! : ranking(i)[5]!));
  const samples: Sample[] = pictures.map((image, i) => ({ key: `img${i}`, image: { kind: 'pixels', image }, label: labels[i]! }));
  const dataset: Dataset = { name: 'ranked', length: n, classNames: CLASSES, get: async (i) => samples[i]! };
  model.train();
  const result = await evaluateClassifier(task, dataset, { batchSize: 3 });
  assert.equal(model.training, true, 'the model is left in the mode it was in');
  assert.equal(result.samples, n);
  assert.equal(result.top1, 0.5);
  assert.equal(result.top5, 0.5);
  assert.deepEqual(Array.from(result.predictions), Array.from({ length: n }, (_, i) => ranking(i)[0]!));
  assert.deepEqual(result.perClass.map((c) => c.count), CLASSES.map((_, c) => labels.filter((l) => l === c).length));
  assert.deepEqual(result.labelMismatches, []);
  assert.equal(result.model, 'tiny classifier');
  const whole = await evaluateClassifier(task, dataset, { batchSize: 32 });
  assert.deepEqual(Array.from(whole.predictions), Array.from(result.predictions), 'batching changes nothing');
});

test('glimpse eval accuracy on scenes: --json prints one object; the text names top-1, top-5 and the classes', async () => {
  const dir = saved(classifierOf(SCENE_CLASS_NAMES, 4));
  const j = lastJson(await runCommand(accuracy(), ['--model', dir, '--data', 'scenes:val', '--limit', '7', '--batch-size', '3', '--json']));
  assert.equal(j.task, 'accuracy');
  assert.equal(j.model, dir);
  assert.equal(j.dataset, 'scenes(val)');
  assert.equal(j.samples, 7);
  assert.deepEqual(j.label_mismatches, []);
  assert.equal((j.confusion as number[][]).flat().reduce((a, b) => a + b, 0), 7);
  assert.equal((j.per_class as unknown[]).length, SCENE_CLASS_NAMES.length);
  const direct = await evaluateClassifier(dir, await openDataset('scenes:val'), { limit: 7 });
  assert.equal(j.top1, direct.top1);
  assert.equal(j.top5, direct.top5);
  const text = await runCommand(accuracy(), ['--model', dir, '--data', 'scenes', '--split', 'val', '--limit', '3']);
  assert.match(text, new RegExp(`^accuracy of .* on scenes\\(val\\): 3 images, ${SCENE_CLASS_NAMES.length} classes\\n {2}top-1 .*top-5 .*mean per class`));
  assert.doesNotMatch(text, /note:/);
});

test('eval accuracy checks the class names against id2label: count and order are errors, other names a note', async () => {
  const six = saved(classifierOf(CLASSES, 5));
  await assert.rejects(runCommand(accuracy(), ['--model', six, '--data', 'scenes:val', '--limit', '2']),
    new RegExp(`classifies into 6 classes \\(its id2label\\), but scenes\\(val\\) has ${SCENE_CLASS_NAMES.length}; evaluate it on data with the classes it was trained on`));
  const reversed = saved(classifierOf([...SCENE_CLASS_NAMES].reverse(), 5));
  await assert.rejects(runCommand(accuracy(), ['--model', reversed, '--data', 'scenes:val', '--limit', '2']),
    /has the class names of scenes\(val\) in another order \(class 0 is '.*' in its id2label, 'red circle' in the data\)/);
  // Saved without id2label: LABEL_0, LABEL_1, ... are matched to the data's classes by index, with a note.
  const unnamed = saved(classifierOf(null, 6, SCENE_CLASS_NAMES.length));
  const text = await runCommand(accuracy(), ['--model', unnamed, '--data', 'scenes:val', '--limit', '2']);
  assert.match(text, new RegExp(`note: ${SCENE_CLASS_NAMES.length} of ${SCENE_CLASS_NAMES.length} class names differ .*: 0 'LABEL_0' / 'red circle', .*, \\.\\.\\.; classes are matched by index`));
  const j = lastJson(await runCommand(accuracy(), ['--model', unnamed, '--data', 'scenes:val', '--limit', '2', '--json']));
  assert.deepEqual((j.label_mismatches as { index: number; model: string; dataset: string }[])[1], { index: 1, model: 'LABEL_1', dataset: SCENE_CLASS_NAMES[1] });
  // A dual encoder has no head: the error says zero-shot is its way to classify.
  const clip = saved(modelFromConfig(getModelEntry('test-clip').config, { generator: new Generator(7) }) as DualEncoder);
  await assert.rejects(runCommand(accuracy(), ['--model', clip, '--data', 'scenes:val']), /CLIPModel has no classifier head; .*classifies zero-shot/);
  await assert.rejects(evaluateClassifier(imageClassifierTask(classifierOf(CLASSES, 8), 'x'), { name: 'unlabelled', length: 1, get: async () => { throw new Error('unread'); } }),
    /unlabelled has no class names/);
});

test('a classifier folder\'s preprocessor_config.json is its image processor', async () => {
  const model = classifierOf(CLASSES, 10);
  const dir = saved(model);
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessorJson(new ImageProcessor('vit', {
    size: { height: 32, width: 32 }, cropSize: { height: 32, width: 32 }, imageMean: [0.1, 0.2, 0.3], imageStd: [0.9, 0.8, 0.7],
  }))));
  const loaded = await loadImageClassifier(dir);
  assert.deepEqual(loaded.imageProcessor.config.imageMean, [0.1, 0.2, 0.3]);
});
