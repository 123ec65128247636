import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildZeroShotClassifier, embedImages, embedTexts, fillTemplate, loadVisionLanguageModel, rows, tokenize, zeroShotClassify,
  type VisionLanguageModel,
} from '../../src/tasks/zeroshot.js';
import { classifyCommand } from '../../src/cli/classify.js';
import { embedCommand, expandPaths } from '../../src/cli/embed.js';
import { constant_ } from '../../src/nn/init.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { CLIPModel } from '../../src/models/clip.js';
import { byteTokenizer } from '../../src/models/configs.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import type { HFConfig } from '../../src/io/hf.js';
import { clipTokenizer } from '../../src/data/tokenizers/clip.js';
import { loadBlipModel } from '../../src/tasks/caption.js';
import { loadFeatureSource } from '../../src/eval/features.js';
import { writeNoiseImage } from '../helpers.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-tasks-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const imgDir = path.join(tmpRoot, 'imgs');
fs.mkdirSync(path.join(imgDir, 'sub'), { recursive: true });


const images = await Promise.all([
  writeNoiseImage(path.join(imgDir, 'a.png'), 1),
  writeNoiseImage(path.join(imgDir, 'b.png'), 2, 50, 30),
  writeNoiseImage(path.join(imgDir, 'sub', 'c.png'), 3),
]);

const clip = await loadVisionLanguageModel('test-clip', { init: 'random', generator: new Generator(11) });
const siglip = await loadVisionLanguageModel('test-siglip', { init: 'random', generator: new Generator(12) });
// A non-zero bias, so that SigLIP's sigmoid(scale * cos + bias) is tested in full.
constant_((siglip.model as unknown as { logitBias: Tensor }).logitBias, -0.75);
constant_(siglip.model.logitScale, 1.3);

const norms = (t: Tensor): number[] => rows(t).map((r) => Math.hypot(...r));
const close = (a: readonly number[], b: readonly number[], tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('embedTexts: [N, D], unit norm, one row per text whatever the batching', async () => {
  const texts = ['a cat', 'a dog', 'a photo of a very long description that will be cut at the context'];
  for (const vl of [clip, siglip]) {
    const e = await embedTexts(vl, texts);
    assert.deepEqual(e.shape, [3, vl.model.contrastiveLoss === 'clip' ? 16 : 32]);
    close(norms(e), [1, 1, 1], 1e-5, 'norms');
    const one = await embedTexts(vl, texts, { batchSize: 1 });
    close(one.toArray(), e.toArray(), 1e-5, 'batch size 1');
  }
  await assert.rejects(embedTexts(clip, []), /no texts/);
});

test('embedImages: paths or pixel values, [N, D], unit norm', async () => {
  for (const vl of [clip, siglip]) {
    const e = await embedImages(vl, images, { batchSize: 2 });
    assert.deepEqual(e.shape[0], 3);
    close(norms(e), [1, 1, 1], 1e-5, 'norms');
    const pixels = await vl.imageProcessor.preprocess(images);
    assert.deepEqual(pixels.shape, [3, 3, 32, 32]);
    close((await embedImages(vl, pixels)).toArray(), e.toArray(), 1e-5, 'from pixels');
  }
  await assert.rejects(embedImages(clip, []), /no images/);
});

/** open_clip's classifier and scores, computed here one prompt at a time. */
function direct(vl: VisionLanguageModel, labels: string[], templates: string[], img: Tensor): { classifier: number[][]; probs: number[][] } {
  const classifier = labels.map((label) => {
    const embs = templates.map((t) => {
      const f = vl.model.encodeText(tokenize(vl, [t.replace('{}', label)])).toArray();
      const n = Math.hypot(...f);
      return f.map((x) => x / n);
    });
    const mean = embs[0]!.map((_, j) => embs.reduce((s, e) => s + e[j]!, 0) / embs.length);
    const n = Math.hypot(...mean);
    return mean.map((x) => x / n);
  });
  const scale = Math.exp(vl.model.logitScale.toArray()[0]!);
  const bias = vl.model.logitBias?.toArray()[0] ?? 0;
  const probs = rows(img).map((v) => {
    const logits = classifier.map((c) => scale * c.reduce((s, x, j) => s + x * v[j]!, 0) + bias);
    if (vl.model.contrastiveLoss === 'siglip') return logits.map((l) => 1 / (1 + Math.exp(-l)));
    const m = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - m));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  });
  return { classifier, probs };
}

test('zero-shot: prompt ensembling and scores match a direct computation (CLIP softmax, SigLIP sigmoid)', async () => {
  const labels = ['cat', 'dog', 'bird', 'car'];
  const templates = ['a photo of a {}.', 'a drawing of a {}.', '{} in the wild'];
  for (const vl of [clip, siglip]) {
    const img = await embedImages(vl, images);
    const want = direct(vl, labels, templates, img);
    const classifier = await buildZeroShotClassifier(vl, labels, templates);
    close(classifier.toArray(), want.classifier.flat(), 1e-5, `${vl.model.contrastiveLoss} classifier`);
    const r = await zeroShotClassify(vl, images, labels, { templates, topK: 2 });
    assert.deepEqual(r.probs.shape, [3, 4]);
    close(r.probs.toArray(), want.probs.flat(), 1e-5, `${vl.model.contrastiveLoss} probs`);
    for (let i = 0; i < 3; i++) {
      const order = labels.map((l, j) => ({ label: l, score: want.probs[i]![j]! })).sort((a, b) => b.score - a.score);
      assert.equal(r.predictions[i]!.length, 2);
      assert.deepEqual(r.predictions[i]!.map((p) => p.label), order.slice(0, 2).map((p) => p.label));
    }
    const sums = rows(r.probs).map((row) => row.reduce((a, b) => a + b, 0));
    if (vl.model.contrastiveLoss === 'clip') close(sums, [1, 1, 1], 1e-5, 'softmax sums');
    else assert.ok(sums.some((s) => Math.abs(s - 1) > 1e-3), 'SigLIP scores are independent sigmoids');
  }
  // One template is the plain normalised embedding.
  const one = await buildZeroShotClassifier(clip, ['cat'], ['a photo of a {}.']);
  close(one.toArray(), (await embedTexts(clip, ['a photo of a cat.'])).toArray(), 1e-6, 'single template');
});

test('templates need a {} slot; labels and templates must be given', async () => {
  assert.equal(fillTemplate('a {c} and a {}', 'cat'), 'a cat and a cat');
  assert.throws(() => fillTemplate('a photo', 'cat'), /has no \{\}/);
  await assert.rejects(zeroShotClassify(clip, images, []), /no labels/);
  await assert.rejects(zeroShotClassify(clip, images, ['a'], { templates: [] }), /no templates/);
  await assert.rejects(zeroShotClassify(clip, images, ['a'], { topK: 0 }), /topK/);
});

test('a model from a saved folder gets the same embeddings; non-dual encoders are refused', async () => {
  const dir = path.join(tmpRoot, 'clip-folder');
  (clip.model as CLIPModel).savePretrained(dir);
  // The folder has no tokenizer.json: the entry's own (byte) tokenizer is used.
  const loaded = await loadVisionLanguageModel('test-clip', { weights: dir });
  close((await embedImages(loaded, images)).toArray(), (await embedImages(clip, images)).toArray(), 1e-6, 'images');
  await assert.rejects(loadVisionLanguageModel('test-bert'), /a bert model is not a dual encoder/);
  await assert.rejects(loadVisionLanguageModel('BERT-base'), /not a dual encoder/);
  await assert.rejects(loadVisionLanguageModel('ViT-B-16-SigLIP', { init: 'random' }), /no tokenizer is packaged for SigLIP/);
});

test('every loader refuses a registered name without weights, saying how to get them', async () => {
  const refused = /model 'ViT-B-32' has no weights: .*openai\/clip-vit-base-patch32.*--weights <folder>.*init: 'random' \(--random-init/;
  await assert.rejects(zeroShotClassify('ViT-B-32', images, ['cat', 'dog']), refused);
  await assert.rejects(loadVisionLanguageModel('openai/clip-vit-base-patch32'), refused);
  await assert.rejects(loadFeatureSource('ViT-B-32'), refused);
  await assert.rejects(loadBlipModel('BLIP-base'), /model 'BLIP-base' has no weights: .*Salesforce\/blip-image-captioning-base/);
  await assert.rejects(classifyCommand([images[0]!], { model: 'ViT-B-32', labels: ['cat', 'dog'] }), refused);
  await assert.rejects(loadVisionLanguageModel('runs/x/model'), /^Error: runs\/x\/model: the model folder does not exist/);
  // A model of the wrong kind is reported before its missing weights.
  await assert.rejects(loadVisionLanguageModel('BLIP-base'), /a blip model is not a dual encoder/);
  await assert.rejects(loadBlipModel('ViT-B-32'), /a clip model is not BLIP/);
});

test('a packaged tokenizer that does not fit a folder\'s text model is an error naming the folder', async () => {
  // A CLIP folder whose text model embeds 99 tokens, without tokenizer.json: CLIP's packaged BPE
  // (49,408 tokens) would index past its embeddings.
  const entry = getModelEntry('test-clip');
  const small = modelFromConfig({ ...entry.config, text_config: { ...(entry.config.text_config as HFConfig), vocab_size: 99 } }, { generator: new Generator(4) });
  const dir = path.join(tmpRoot, 'clip-vocab-99');
  small.savePretrained(dir);
  await assert.rejects(loadVisionLanguageModel(dir), (e: Error) => {
    assert.match(e.message, new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no tokenizer\\.json, and the tokenizer packaged for CLIP has 49408 tokens, but the text model embeds 99`));
    assert.match(e.message, /add the tokenizer\.json the model was trained with to the folder, or pass its folder as the tokenizer option \(--tokenizer <folder>\)/);
    return true;
  });
  await assert.rejects(classifyCommand([images[0]!], { model: dir, labels: ['cat', 'dog'] }), /no tokenizer\.json, and the tokenizer packaged for CLIP has 49408 tokens/);
  // A given tokenizer that does not fit either is named.
  const bpeDir = path.join(tmpRoot, 'clip-bpe');
  clipTokenizer().save(bpeDir);
  await assert.rejects(loadVisionLanguageModel(dir, { tokenizer: bpeDir }), /the tokenizer in .*clip-bpe has 49408 tokens, but the text model embeds 99/);
  // A text model of 258 tokens fits the tiny models' byte tokenizer: passed as the tokenizer, or in the folder.
  const tokDir = path.join(tmpRoot, 'tok-fits');
  byteTokenizer(16).save(tokDir);
  const over = modelFromConfig({ ...entry.config, text_config: { ...(entry.config.text_config as HFConfig), vocab_size: 258 } }, { generator: new Generator(4) });
  const fits = path.join(tmpRoot, 'clip-vocab-258');
  over.savePretrained(fits);
  await assert.rejects(loadVisionLanguageModel(fits), /packaged for CLIP has 49408 tokens, but the text model embeds 258/);
  const vl = await loadVisionLanguageModel(fits, { tokenizer: tokDir });
  assert.equal(vl.tokenizer.vocabSize, 258);
  assert.deepEqual((await embedTexts(vl, ['a cat'])).shape, [1, 16]);
  const out = JSON.parse(await classifyCommand([images[0]!], { model: fits, tokenizer: tokDir, labels: ['cat', 'dog'], json: true })) as unknown[];
  assert.equal(out.length, 1);
  fs.copyFileSync(path.join(tokDir, 'tokenizer.json'), path.join(fits, 'tokenizer.json'));
  assert.equal((await loadVisionLanguageModel(fits)).tokenizer.vocabSize, 258);
});

test('expandPaths: plain paths, globs, ** and errors', () => {
  const rel = path.relative(process.cwd(), imgDir);
  assert.deepEqual(expandPaths([path.join(imgDir, '*.png')]), [path.join(imgDir, 'a.png'), path.join(imgDir, 'b.png')]);
  assert.deepEqual(expandPaths([path.join(imgDir, '**', '*.png')]).sort(), [...images].sort());
  assert.deepEqual(expandPaths([path.join(rel, '[b]?png')]), [path.normalize(path.join(rel, 'b.png'))]);
  assert.deepEqual(expandPaths([images[0]!, path.join(imgDir, '?.png')]), [images[0]!, path.join(imgDir, 'b.png')]);
  assert.throws(() => expandPaths([path.join(imgDir, '*.jpg')]), /no files match/);
  assert.throws(() => expandPaths([path.join(imgDir, 'nope.png')]), /no such file/);
  assert.throws(() => expandPaths([imgDir]), /not a file/);
});

test('glimpse classify and embed command outputs', async () => {
  const out = JSON.parse(await classifyCommand([path.join(imgDir, '*.png')], { model: 'test-clip', randomInit: true, labels: ['cat,dog', 'bird'], topK: 2, json: true })) as
    { image: string; predictions: { label: string; score: number }[] }[];
  assert.deepEqual(out.map((o) => o.image), [path.join(imgDir, 'a.png'), path.join(imgDir, 'b.png')]);
  for (const o of out) {
    assert.equal(o.predictions.length, 2);
    assert.ok(o.predictions[0]!.score >= o.predictions[1]!.score);
    assert.ok(o.predictions.every((p) => ['cat', 'dog', 'bird'].includes(p.label)));
  }
  const labelsFile = path.join(tmpRoot, 'labels.txt');
  fs.writeFileSync(labelsFile, 'cat\n\ndog\n');
  const text = await classifyCommand([images[0]!], { model: 'test-siglip', randomInit: true, labelsFile, templates: ['{}'] });
  const lines = text.split('\n');
  assert.equal(lines[0], images[0]);
  assert.equal(lines.length, 3);
  assert.match(lines[1]!, /^ {2}(cat|dog) +0\.\d{4}$/);
  await assert.rejects(classifyCommand([images[0]!], { model: 'test-clip', randomInit: true }), /no labels/);
  await assert.rejects(classifyCommand([images[0]!], { model: 'test-clip', randomInit: true, labels: ['a', 'a'] }), /given twice/);

  const emb = JSON.parse(await embedCommand([path.join(imgDir, 'sub', '*')], { model: 'test-clip', randomInit: true, json: true })) as { input: string; embedding: number[] }[];
  assert.equal(emb.length, 1);
  assert.equal(emb[0]!.input, images[2]);
  assert.equal(emb[0]!.embedding.length, 16);
  assert.ok(Math.abs(Math.hypot(...emb[0]!.embedding) - 1) < 1e-5);
  const textLines = (await embedCommand(['a cat', 'a dog'], { model: 'test-siglip', randomInit: true, text: true })).split('\n');
  assert.equal(textLines.length, 2);
  const [name, values] = textLines[0]!.split('\t');
  assert.equal(name, 'a cat');
  assert.equal(values!.split(' ').length, 32);
  await assert.rejects(embedCommand([], { model: 'test-clip' }), /no inputs/);
  await assert.rejects(embedCommand(['x.png'], { model: 'ViT-B-99' }), /did you mean/);
});
