import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { evaluateZeroShot } from '../../src/eval/classification.js';
import { evaluateRetrieval, retrievalMetrics } from '../../src/eval/retrieval.js';
import { embedImages, embedTexts, loadVisionLanguageModel, zeroShotClassify } from '../../src/tasks/zeroshot.js';
import { rng } from '../helpers.js';

/** Random PNG images (`count` of them, `size` px), seeded. */
async function pngs(count: number, size: number, seed: number): Promise<Uint8Array[]> {
  const r = rng(seed);
  return Promise.all(Array.from({ length: count }, () => {
    const data = Buffer.from(Array.from({ length: size * size * 3 }, () => Math.floor(r() * 256)));
    return sharp(data, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer().then((b) => new Uint8Array(b));
  }));
}

function memoryDataset(name: string, samples: Sample[], classNames?: string[]): Dataset {
  return { name, length: samples.length, classNames, get: async (i) => samples[i]! };
}

const CLASSES = ['cat', 'dog', 'car', 'tree', 'boat', 'house'];

for (const modelName of ['test-clip', 'test-siglip']) {
  test(`zero-shot over a dataset (${modelName}): labels built from the model's own ranking give known accuracies`, async () => {
    const vl = await loadVisionLanguageModel(modelName, { init: 'random' });
    const images = await pngs(8, 40, 1);
    const templates = ['a photo of a {}.', 'a picture of the {}'];
    // The independent path: zeroShotClassify on the encoded images, through ImageProcessor.preprocess.
    const { predictions } = await zeroShotClassify(vl, images, CLASSES, { templates, topK: 6 });
    const id = (label: string) => CLASSES.indexOf(label);
    // Images 0-3 labelled with their top class, 4-5 with their second, 6-7 with their last.
    const labels = predictions.map((p, i) => id(p[i < 4 ? 0 : i < 6 ? 1 : 5]!.label));
    const samples: Sample[] = images.map((bytes, i) => ({ key: `img${i}`, image: { kind: 'encoded', bytes, name: `img${i}.png` }, label: labels[i] }));
    const res = await evaluateZeroShot(vl, memoryDataset('memory', samples, CLASSES), { templates, batchSize: 3 });
    assert.equal(res.samples, 8);
    assert.equal(res.top1, 4 / 8);
    assert.equal(res.top5, 6 / 8);
    assert.deepEqual([...res.predictions], predictions.map((p) => id(p[0]!.label)));
    assert.equal(res.confusion.flat().reduce((a, b) => a + b, 0), 8);
    for (let i = 0; i < 8; i++) assert.ok(res.confusion[labels[i]!]![res.predictions[i]!]! > 0);
    assert.equal(res.model, modelName);

    const limited = await evaluateZeroShot(vl, memoryDataset('memory', samples, CLASSES), { templates, limit: 4 });
    assert.equal(limited.samples, 4);
    assert.equal(limited.top1, 1);
    await assert.rejects(evaluateZeroShot(vl, memoryDataset('nameless', samples)), /nameless has no class names/);
    await assert.rejects(evaluateZeroShot(vl, memoryDataset('m', samples, CLASSES), { classNames: ['a', 'b'] }), /2 class names given, but m has 6/);
  });
}

test('retrieval over a dataset: repeated images are one image with several captions; equals the matrix form', async () => {
  const vl = await loadVisionLanguageModel('test-clip', { init: 'random' });
  const [a, b, c, d] = await pngs(4, 36, 2);
  const order = [a!, b!, c!, a!, d!, b!, a!];
  const captions = ['a red cat', 'a blue car', 'green trees', 'a cat on a mat', 'the sea', 'cars parked', 'one more cat'];
  const samples: Sample[] = order.map((bytes, i) => ({ key: `s${i}`, image: { kind: 'encoded', bytes, name: `s${i}.png` }, caption: captions[i] }));
  const ds = memoryDataset('captions', samples);
  const res = await evaluateRetrieval(vl, ds, { batchSize: 2 });
  assert.equal(res.images, 4);
  assert.equal(res.texts, 7);
  // Reference: unique images embedded through the task API, similarities, the matrix-form metrics.
  const img = await embedImages(vl, [a!, b!, c!, d!]);
  const txt = await embedTexts(vl, captions);
  const ref = retrievalMetrics(img.matmul(txt.transpose(0, 1)).toArray(), 4, [0, 1, 2, 0, 3, 1, 0]);
  assert.deepEqual([...res.imageToText.ranks], [...ref.imageToText.ranks]);
  assert.deepEqual([...res.textToImage.ranks], [...ref.textToImage.ranks]);
  assert.equal(res.metrics['image_to_text_R@1'], ref.imageToText.recall[1]);
  assert.equal(res.metrics.text_to_image_mean_rank, ref.textToImage.meanRank);

  const perSample = await evaluateRetrieval(vl, ds, { groupImages: 'sample' });
  assert.equal(perSample.images, 7);
  await assert.rejects(evaluateRetrieval(vl, memoryDataset('bare', [{ key: 'x', image: samples[0]!.image }])), /sample x of bare has no caption/);
});
