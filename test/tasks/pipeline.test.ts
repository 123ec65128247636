// pipeline(): each task's results against the computation done directly with the model, the
// result shapes transformers.js gives (one image: a list; several: a list per image; features: a
// Tensor with a batch axis), and the errors for a model of the wrong kind and for bad options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ImageProcessor } from '../../src/data/image.js';
import { labelFields } from '../../src/io/hf.js';
import type { BertForMaskedLM, BertModel } from '../../src/models/bert.js';
import { byteTokenizer } from '../../src/models/configs.js';
import type { DualEncoder, ImageClassifier, ImageEncoder, Model } from '../../src/models/family.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import { constant_ } from '../../src/nn/init.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Generator } from '../../src/tensor/random.js';
import { tensor } from '../../src/tensor/tensor.js';
import { caption, loadBlipModel } from '../../src/tasks/caption.js';
import { pipeline } from '../../src/tasks/pipeline.js';
import { embedImages, embedTexts, loadVisionLanguageModel, rows, tokenize } from '../../src/tasks/zeroshot.js';
import { tempDirs, writeNoiseImage } from '../helpers.js';

const tmp = tempDirs('pipeline');
const imgDir = tmp();
fs.mkdirSync(imgDir, { recursive: true });


const images = await Promise.all([1, 2, 3].map((seed) => writeNoiseImage(path.join(imgDir, `${seed}.png`), seed, 30 + 5 * seed, 36)));

/** A registered test model's architecture with fresh weights, built without createModel. */
function build(name: string, generatorSeed: number, fields: Record<string, unknown> = {}): Model {
  return modelFromConfig({ ...getModelEntry(name).config, ...fields }, { generator: new Generator(generatorSeed) });
}

/** The model saved as a folder, with its entry's tokenizer where it has one. */
function saveFolder(model: Model, tokenizerOf?: string): string {
  const dir = tmp();
  model.savePretrained(dir);
  if (tokenizerOf) getModelEntry(tokenizerOf).tokenizer!().save(dir);
  return dir;
}

const close = (a: readonly number[], b: readonly number[], tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

/** The images as ViT's processor makes them at 32 px. */
const vitImages = await new ImageProcessor('vit', { size: { height: 32, width: 32 }, cropSize: { height: 32, width: 32 } }).preprocess(images);

const clip = build('test-clip', 11) as DualEncoder;
const clipDir = saveFolder(clip, 'test-clip');
const siglip = build('test-siglip', 12) as DualEncoder;
// A non-zero bias, so that SigLIP's sigmoid(scale * cos + bias) is tested in full.
constant_(siglip.logitBias!, -0.75);
const siglipDir = saveFolder(siglip, 'test-siglip');

const CLASSES = ['circle', 'square', 'triangle', 'star', 'hexagon', 'cross'];
const classifier = build('test-vit', 13, { architectures: ['ViTForImageClassification'], ...labelFields(CLASSES) }) as ImageClassifier;
const classifierDir = saveFolder(classifier);

/** Per image, every label's score as transformers.js computes it: softmax (CLIP) or sigmoid (SigLIP) of scale * cos (+ bias). */
async function zeroShotScores(dir: string, files: readonly string[], labels: readonly string[], template: string): Promise<number[][]> {
  const vl = await loadVisionLanguageModel(dir);
  const m = vl.model;
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  const pixels = await vl.imageProcessor.preprocess(files);
  const img = rows(noGrad(() => m.encodeImage(pixels))).map(unit);
  const txt = rows(noGrad(() => m.encodeText(tokenize(vl, labels.map((l) => template.replace('{}', l)))))).map(unit);
  const scale = Math.exp(m.logitScale.toArray()[0]!);
  const bias = m.logitBias?.toArray()[0] ?? 0;
  return img.map((v) => {
    const logits = txt.map((t) => scale * t.reduce((s, x, j) => s + x * v[j]!, 0) + bias);
    if (m.contrastiveLoss === 'siglip') return logits.map((l) => 1 / (1 + Math.exp(-l)));
    const e = logits.map((l) => Math.exp(l - Math.max(...logits)));
    return e.map((x) => x / e.reduce((a, b) => a + b, 0));
  });
}

test('zero-shot-image-classification: every label, sorted, scored as transformers.js does (CLIP softmax, SigLIP sigmoid)', async () => {
  const labels = ['cat', 'dog', 'bird', 'car'];
  for (const dir of [clipDir, siglipDir]) {
    const classify = await pipeline('zero-shot-image-classification', dir);
    assert.equal(classify.task, 'zero-shot-image-classification');
    const want = await zeroShotScores(dir, images, labels, 'This is a photo of {}');
    const all = await classify(images, labels);
    assert.equal(all.length, 3);
    all.forEach((ranked, i) => {
      assert.deepEqual(ranked.map((r) => r.label).sort(), [...labels].sort());
      for (let j = 1; j < ranked.length; j++) assert.ok(ranked[j - 1]!.score >= ranked[j]!.score, 'best first');
      close(ranked.map((r) => r.score), ranked.map((r) => want[i]![labels.indexOf(r.label)]!), 1e-5, `${dir} image ${i}`);
    });
    // One image: one list, the same as that image's in the batch.
    const one = await classify(images[1]!, labels);
    assert.deepEqual(one.map((r) => r.label), all[1]!.map((r) => r.label));
    close(one.map((r) => r.score), all[1]!.map((r) => r.score), 1e-6, 'single image');
    // The prompt is the template's.
    const prompted = await classify(images[0]!, labels, { hypothesis_template: 'a drawing of a {}' });
    const wantPrompted = (await zeroShotScores(dir, [images[0]!], labels, 'a drawing of a {}'))[0]!;
    close(prompted.map((r) => r.score), prompted.map((r) => wantPrompted[labels.indexOf(r.label)]!), 1e-5, 'hypothesis_template');
  }
  const classify = await pipeline('zero-shot-image-classification', clipDir);
  await assert.rejects(classify(images[0]!, 'cat' as unknown as string[]), /candidate labels must be a list of strings/);
  await assert.rejects(classify(images[0]!, ['cat'], { hypothesis_template: '{}', templates: ['{}'] }), /not both/);
  await assert.rejects(classify(images[0]!, []), /no labels/);
});

test('image-classification: the head\'s id2label ranked by softmax; top_k 5 by default, null for all', async () => {
  const logits = noGrad(() => classifier.classify(vitImages));
  const probs = rows(noGrad(() => logits.softmax(-1)));
  for (const model of [classifierDir, classifier]) {
    const classify = await pipeline('image-classification', model);
    assert.equal(classify.task, 'image-classification');
    const all = await classify(images);
    assert.equal(all.length, 3);
    all.forEach((top, i) => {
      assert.equal(top.length, 5, 'transformers.js keeps 5 by default');
      const want = CLASSES.map((label, j) => ({ label, score: probs[i]![j]! })).sort((a, b) => b.score - a.score).slice(0, 5);
      assert.deepEqual(top.map((r) => r.label), want.map((r) => r.label));
      close(top.map((r) => r.score), want.map((r) => r.score), 1e-6, `image ${i}`);
    });
    const one = await classify(images[2]!, { top_k: 2 });
    assert.deepEqual(one.map((r) => r.label), all[2]!.slice(0, 2).map((r) => r.label));
    const every = await classify(images[0]!, { top_k: null });
    assert.equal(every.length, CLASSES.length);
    close([every.reduce((s, r) => s + r.score, 0)], [1], 1e-5, 'softmax sums to 1');
    assert.equal((await classify(images[0]!, { top_k: 100 })).length, CLASSES.length);
    await assert.rejects(classify(images[0]!, { top_k: -1 }), /top_k\) must be a positive integer/);
  }
});

test('image-to-text: [{generated_text}] per image, the captions of caption() with the generation options mapped', async () => {
  const raw = getModelEntry('test-blip').config;
  const blip = modelFromConfig({ ...raw, initializer_range: 0.5 }, { generator: new Generator(23) });
  const dir = saveFolder(blip);
  const captioner = await pipeline('image-to-text', dir);
  assert.equal(captioner.task, 'image-to-text');
  const m = await loadBlipModel(dir);
  const greedy = await caption(m, images, { maxTokens: 5 });
  assert.deepEqual(await captioner(images, { max_new_tokens: 5 }), greedy.map((t) => [{ generated_text: t }]));
  assert.deepEqual(await captioner(images[1]!, { max_new_tokens: 5 }), [{ generated_text: greedy[1]! }]);
  const beams = await caption(m, [images[0]!], { maxTokens: 6, beams: 2 });
  assert.deepEqual(await captioner(images[0]!, { max_new_tokens: 6, num_beams: 2 }), [{ generated_text: beams[0]! }]);
  const sampled = await caption(m, [images[0]!], { maxTokens: 6, topP: 0.9, seed: 4 });
  assert.deepEqual(await captioner(images[0]!, { max_new_tokens: 6, do_sample: true, top_p: 0.9, seed: 4 }), [{ generated_text: sampled[0]! }]);
  // top_p without do_sample is greedy, as in HF's generate.
  assert.deepEqual(await captioner(images[1]!, { max_new_tokens: 5, top_p: 0.5 }), [{ generated_text: greedy[1]! }]);
});

test('feature-extraction: a dual encoder\'s text embeddings, raw or normalised', async () => {
  const extract = await pipeline('feature-extraction', clipDir);
  const vl = await loadVisionLanguageModel(clipDir);
  const texts = ['a cat', 'a photo of a dog on a mat'];
  const raw = await extract(texts);
  assert.deepEqual(raw.shape, [2, 16]);
  close(raw.toArray(), noGrad(() => vl.model.encodeText(tokenize(vl, texts))).toArray(), 1e-6, 'encodeText');
  close((await extract(texts, { normalize: true })).toArray(), (await embedTexts(vl, texts)).toArray(), 1e-6, 'normalised: embedTexts');
  assert.deepEqual((await extract('a cat')).shape, [1, 16], 'one text keeps the batch axis');
  await assert.rejects(extract(texts, { pooling: 'mean' }), /dual encoder, whose embeddings are pooled already/);
});

test('feature-extraction: BERT token states padded to the longest text, mean (masked) and cls pooling, normalize', async () => {
  const bert = build('test-bert', 31, { architectures: ['BertModel'] }) as unknown as BertModel;
  const tokenizer = byteTokenizer(64);
  const dir = tmp();
  bert.savePretrained(dir);
  tokenizer.save(dir);
  const texts = ['a cat', 'a much longer sentence about a dog'];
  const enc = tokenizer.encode(texts, { padding: 'longest' });
  const T = enc.inputIds[0]!.length;
  assert.equal(T, texts[1]!.length + 2);
  const ids = tensor(Int32Array.from(enc.inputIds.flat()), { shape: [2, T], dtype: 'int32' });
  const mask = tensor(Int32Array.from(enc.attentionMask.flat()), { shape: [2, T], dtype: 'int32' });
  bert.eval();
  const states = noGrad(() => bert.forward(ids, { attentionMask: mask }).lastHiddenState);
  const D = 32;
  const s = states.toArray();
  const at = (b: number, t: number) => s.slice((b * T + t) * D, (b * T + t + 1) * D);
  const extract = await pipeline('feature-extraction', dir);
  const none = await extract(texts);
  assert.deepEqual(none.shape, [2, T, D]);
  close(none.toArray(), s, 1e-5, 'token states');
  const mean = (await extract(texts, { pooling: 'mean' })).toArray();
  texts.forEach((_, b) => {
    const kept = enc.attentionMask[b]!.reduce((a, v) => a + v, 0);
    const want = Array.from({ length: D }, (_, d) => Array.from({ length: kept }, (_, t) => at(b, t)[d]!).reduce((a, v) => a + v, 0) / kept);
    close(mean.slice(b * D, (b + 1) * D), want, 1e-5, `mean of text ${b} over its ${kept} tokens`);
  });
  const cls = await extract(texts, { pooling: 'cls' });
  close(cls.toArray(), [...at(0, 0), ...at(1, 0)], 1e-5, 'cls');
  const unit = await extract(texts, { pooling: 'cls', normalize: true });
  close(rows(unit).map((r) => Math.hypot(...r)), [1, 1], 1e-5, 'normalised');
  await assert.rejects(extract(texts, { pooling: 'max' as 'mean' }), /pooling must be 'none', 'mean' or 'cls', got "max"/);

  // BertForMaskedLM: its encoder's states; a loaded model with its tokenizer.
  const mlm = build('test-bert', 32) as unknown as BertForMaskedLM;
  const fromMlm = await pipeline('feature-extraction', { model: mlm as unknown as Model, tokenizer });
  mlm.eval();
  close((await fromMlm(texts)).toArray(), noGrad(() => mlm.bert.forward(ids, { attentionMask: mask }).lastHiddenState).toArray(), 1e-5, 'MLM encoder');
  const bare = tmp();
  bert.savePretrained(bare);
  await assert.rejects(pipeline('feature-extraction', bare), /feature-extraction: no tokenizer for .*tokenizer option/);
});

test('image-feature-extraction: dual encoder embeddings; a ViT\'s token states, CLS or mean of the patches', async () => {
  const extract = await pipeline('image-feature-extraction', clipDir);
  const vl = await loadVisionLanguageModel(clipDir);
  const pixels = await vl.imageProcessor.preprocess(images);
  const raw = await extract(images);
  assert.deepEqual(raw.shape, [3, 16]);
  close(raw.toArray(), noGrad(() => clip.encodeImage(pixels)).toArray(), 1e-5, 'encodeImage');
  close((await extract(images, { normalize: true })).toArray(), (await embedImages(vl, images)).toArray(), 1e-5, 'normalised: embedImages');
  close((await extract(pixels)).toArray(), raw.toArray(), 1e-6, 'from pixel values');
  assert.deepEqual((await extract(images[0]!)).shape, [1, 16]);
  await assert.rejects(extract(images, { pooling: 'cls' }), /pooled already/);

  const vit = build('test-vit', 41) as ImageEncoder;
  const vitDir = saveFolder(vit);
  const states = noGrad(() => vit.tokenStates(vitImages));
  const fromVit = await pipeline('image-feature-extraction', vitDir);
  const none = await fromVit(images);
  assert.deepEqual(none.shape, [3, 17, 32], '16 patches and the CLS token');
  close(none.toArray(), states.toArray(), 1e-5, 'token states');
  close((await fromVit(images, { pooling: 'cls' })).toArray(), states.select(1, 0).toArray(), 1e-5, 'cls');
  close((await fromVit(images, { pooling: 'mean' })).toArray(), states.slice(1, 1).mean(1).toArray(), 1e-5, 'mean of the patches');
  // A classifier's encoder, as a built model.
  const fromClassifier = await pipeline('image-feature-extraction', classifier);
  close((await fromClassifier(images, { pooling: 'cls' })).toArray(), noGrad(() => classifier.imageEncoder!().tokenStates(vitImages).select(1, 0)).toArray(), 1e-5, 'classifier encoder');
});

test('a model of the wrong kind is refused, naming the tasks it serves; unknown tasks are refused', async () => {
  await assert.rejects(pipeline('image-classification', clipDir),
    /^Error: image-classification needs an image classifier \(ViTForImageClassification\); .* is a dual encoder \(CLIPModel\): use zero-shot-image-classification or feature-extraction or image-feature-extraction$/);
  await assert.rejects(pipeline('zero-shot-image-classification', classifierDir),
    /needs a dual encoder \(CLIP or SigLIP\); .* is an image classifier \(ViTForImageClassification\): use image-classification or image-feature-extraction/);
  await assert.rejects(pipeline('image-to-text', classifier), /image-to-text needs a captioner .*; the ViTForImageClassification given is an image classifier/);
  const bert = build('test-bert', 5, { architectures: ['BertModel'] });
  await assert.rejects(pipeline('image-feature-extraction', bert), /needs an image encoder .* is a text encoder \(BertModel\): use feature-extraction$/);
  await assert.rejects(pipeline('text-generation' as 'image-to-text', clipDir), /unknown task "text-generation"; the tasks are zero-shot-image-classification, image-classification/);
  await assert.rejects(pipeline('image-classification', path.join(imgDir, 'missing')), /model folder does not exist/);
});

test('the loaders wrap a model already built from the name or folder instead of building it again', async () => {
  const vl = await loadVisionLanguageModel(clipDir, { model: clip });
  assert.equal(vl.model, clip);
  assert.ok(vl.tokenizer, 'the folder\'s tokenizer');
  const blip = modelFromConfig(getModelEntry('test-blip').config, { generator: new Generator(3) });
  const dir = saveFolder(blip);
  assert.equal((await loadBlipModel(dir, { model: blip })).model, blip);
});

test('a model switched to training mode is run in eval mode and left in training mode', async () => {
  const model = build('test-vit', 13, { architectures: ['ViTForImageClassification'], hidden_dropout_prob: 0.5, ...labelFields(CLASSES) }) as ImageClassifier;
  model.train();
  const classify = await pipeline('image-classification', model);
  const a = await classify(images[0]!, { top_k: null });
  const b = await classify(images[0]!, { top_k: null });
  assert.deepEqual(a, b, 'no dropout: the same scores twice');
  assert.equal(model.training, true);
});
