import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  LOGIT_SCALE_MAX, LOSSES, SIGLIP_INIT, catlipLoss, clampLogitScale, classificationLoss, clipContrastiveLoss, clipLoss,
  siglipLoss, siglipSigmoidLoss,
} from '../../src/nn/losses.js';
import { CaptionVocab, STOP_WORDS, captionWords } from '../../src/data/caption_vocab.js';
import { l2Normalize } from '../../src/models/clip.js';
import { loadOpenClip } from '../../src/models/openclip.js';
import { losses } from '../../src/models/registry.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { getBackend } from '../../src/tensor/device.js';
import { gradcheck } from '../../src/tensor/gradcheck.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { assertClose, findShared, rng, sharedNotFound } from '../helpers.js';

const ref = getBackend('reference');

function features(n: number, d: number, seed: number, dtype: 'float32' | 'float64' = 'float32'): Tensor {
  const g = new Generator(seed);
  return l2Normalize(randn([n, d], { generator: g, dtype, backend: dtype === 'float64' ? ref : undefined }));
}

const leaf = (t: Tensor): Tensor => tensor(t.data(), { shape: t.shape, dtype: t.dtype, backend: t.backend, requiresGrad: true });
const scalar = (v: number, dtype: 'float32' | 'float64' = 'float64'): Tensor =>
  tensor([v], { shape: [], dtype, backend: dtype === 'float64' ? ref : undefined, requiresGrad: true });

test('CLIP loss: the features form equals the logits form, and open_clip\'s ClipLoss on the fixture', (t) => {
  const img = features(9, 12, 1);
  const txt = features(9, 12, 2);
  const scale = 2.6592;
  const mine = clipContrastiveLoss(img, txt, scale).item();
  const theirs = clipLoss(txt.matmul(img.transpose(0, 1)).mul(Math.exp(scale))).item();
  assertClose([mine], [theirs], 1e-6, 0, 'clip loss vs clipLoss');
  // A perfectly aligned batch at the top temperature has (almost) no loss.
  assert.ok(clipContrastiveLoss(img, img, LOGIT_SCALE_MAX).item() < clipContrastiveLoss(img, txt, LOGIT_SCALE_MAX).item());

  const dir = findShared('fixtures/open_clip', 'open_clip_config.json');
  if (!dir) return t.skip(sharedNotFound());
  const model = loadOpenClip(dir);
  const out = loadSafetensors(path.join(dir, 'outputs.safetensors')).tensors;
  const f = (name: string) => l2Normalize(tensor(out[name]!.data, { shape: out[name]!.shape }));
  const loss = clipContrastiveLoss(f('image_features'), f('text_features'), model.logitScale).item();
  assertClose([loss], [Number(out.clip_loss!.data[0])], 1e-5, 1e-6, 'open_clip ClipLoss');
  const sig = siglipSigmoidLoss(f('image_features'), f('text_features'), SIGLIP_INIT.logitScale, SIGLIP_INIT.logitBias, { chunkSize: 2 }).item();
  assertClose([sig], [Number(out.siglip_loss_t10_bm10!.data[0])], 1e-5, 1e-6, 'open_clip SigLipLoss (t = log 10, b = -10)');
});

test('SigLIP loss: every chunk size gives the unchunked loss and its gradients', () => {
  const N = 7;
  const img = features(N, 5, 3, 'float64');
  const txt = features(N, 5, 4, 'float64');
  const run = (chunkSize: number | null) => {
    const [i, x, s, b] = [leaf(img), leaf(txt), scalar(1.3), scalar(-2.5)];
    const loss = chunkSize === null
      ? siglipLoss(x.matmul(i.transpose(0, 1)).mul(s.exp()).add(b))
      : siglipSigmoidLoss(i, x, s, b, { chunkSize });
    loss.backward();
    return { loss: loss.item(), grads: [i, x, s, b].map((p) => p.grad!.toArray()) };
  };
  const whole = run(null);
  for (const chunk of [1, 2, 3, 6, 7, 100]) {
    const got = run(chunk);
    assertClose([got.loss], [whole.loss], 1e-13, 0, `chunk ${chunk}: loss`);
    got.grads.forEach((g, k) => assertClose(g, whole.grads[k]!, 1e-12, 1e-14, `chunk ${chunk}: gradient ${['images', 'texts', 'scale', 'bias'][k]}`));
  }
  assert.equal(siglipLoss(img.matmul(txt.transpose(0, 1))).item(), siglipLoss(txt.matmul(img.transpose(0, 1)).transpose(0, 1)).item());
  // The positive pair's term: with one pair, -log sigmoid(e^t cos + b).
  const one = siglipSigmoidLoss(img.slice(0, 0, 1), txt.slice(0, 0, 1), 0.5, 0.25).item();
  const x = Math.exp(0.5) * img.slice(0, 0, 1).mul(txt.slice(0, 0, 1)).sum().item() + 0.25;
  assertClose([one], [Math.log1p(Math.exp(-x))], 1e-14, 0, 'single pair');
});

test('contrastive losses: autograd matches finite differences (features, scale, bias)', () => {
  const img = features(5, 4, 5, 'float64');
  const txt = features(5, 4, 6, 'float64');
  gradcheck((i, x, s, b) => siglipSigmoidLoss(i, x, s, b, { chunkSize: 2 }), [img, txt, scalar(0.7), scalar(-1.5)], { samples: 20 });
  gradcheck((i, x, s) => clipContrastiveLoss(i, x, s), [img, txt, scalar(1.1)], { samples: 20 });
});

test('contrastive losses: mismatched or empty batches are errors naming the shapes', () => {
  assert.throws(() => clipContrastiveLoss(features(3, 4, 1), features(4, 4, 2), 1), /\[3,4\].*\[4,4\].*pair up/);
  assert.throws(() => siglipSigmoidLoss(features(3, 4, 1), features(3, 5, 2), 1, 0), /pair up/);
  assert.throws(() => siglipSigmoidLoss(features(3, 4, 1), features(3, 4, 2), 1, 0, { chunkSize: 0 }), /chunkSize/);
  assert.throws(() => clipLoss(tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] })), /square/);
});

test('clampLogitScale: keeps exp(scale) in [1, 100] in place, records nothing, keeps the gradient', () => {
  for (const [v, want] of [[5, Math.fround(Math.log(100))], [-0.5, 0], [2, 2]] as const) {
    const p = tensor([v], { shape: [], requiresGrad: true });
    p.exp().mul(3).backward();
    const grad = p.grad!.item();
    const storage = p.storage;
    clampLogitScale(p);
    assert.equal(p.item(), Math.fround(want));
    assert.equal(p.storage, storage, 'same storage (optimizers hold it)');
    assert.equal(p.grad!.item(), grad);
    assert.ok(p.requiresGrad && p.isLeaf);
  }
  const p = tensor([3], { shape: [] });
  clampLogitScale(p, 1);
  assert.equal(p.item(), 1);
  assert.throws(() => clampLogitScale(p, -1), /max must be >= 0/);
});

test('classification and CatLIP losses: the formulas, by hand', () => {
  const logits = tensor([[2, 0.5, -1], [0.1, 0.2, 3]], { dtype: 'float64', backend: ref });
  const labels = tensor([0, 2], { dtype: 'int32', backend: ref });
  const eps = 0.2;
  const byHand = [[2, 0.5, -1, 0], [0.1, 0.2, 3, 2]].map(([a, b, c, y]) => {
    const row = [a!, b!, c!];
    const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
    const logp = row.map((v) => v - lse);
    return -(1 - eps) * logp[y!]! - eps * (logp.reduce((s, v) => s + v, 0) / 3);
  });
  assertClose([classificationLoss(logits, labels, { labelSmoothing: eps }).item()], [(byHand[0]! + byHand[1]!) / 2], 1e-14, 0, 'smoothed CE');

  const targets = tensor([[1, 0, 0], [0, 1, 1]], { dtype: 'float64', backend: ref });
  const sp = (x: number) => Math.log1p(Math.exp(x));
  const y = [[1, 0, 0], [0, 1, 1]];
  let sum = 0;
  [[2, 0.5, -1], [0.1, 0.2, 3]].forEach((row, b) => row.forEach((x, v) => { sum += sp(x) - x * y[b]![v]!; }));
  assertClose([catlipLoss(logits, targets).item()], [sum / 2], 1e-14, 0, 'CatLIP batch-mean');
  assertClose([catlipLoss(logits, targets, { reduction: 'mean' }).item()], [sum / 6], 1e-14, 0, 'CatLIP mean');
  assert.throws(() => catlipLoss(logits, tensor([[1, 0]], { dtype: 'float64', backend: ref })), /differ/);
});

test('caption vocabulary: content words by frequency then alphabetically, min count, cap, JSON round trip', () => {
  assert.deepEqual(captionWords("A dog's ball, on the GRASS -- (red)!"), ['dogs', 'ball', 'on', 'the', 'grass', 'red']);
  const captions = ['A red ball on the grass.', 'The red car.', 'a blue car and a red ball', 'Blue sky; red car!', 'a cat'];
  const vocab = CaptionVocab.build(captions, { minCount: 2 });
  // red 4, car 3, ball 2, blue 2 (ties alphabetical); grass, sky, cat once; a/the/on/and are stop words.
  assert.deepEqual(vocab.words, ['red', 'car', 'ball', 'blue']);
  assert.deepEqual(vocab.counts, [4, 3, 2, 2]);
  assert.deepEqual(vocab.tags('A blue ball, a RED ball.'), [0, 2, 3]);
  assert.deepEqual(vocab.tags('nothing known'), []);
  assert.deepEqual(vocab.multiHot(['red car', 'blue']).toArray(), [1, 1, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(CaptionVocab.build(captions, { minCount: 1, maxSize: 3 }).words, ['red', 'car', 'ball']);
  assert.ok(['the', 'a', 'and', 'of', 'with'].every((w) => STOP_WORDS.has(w)));

  const back = CaptionVocab.fromJSON(JSON.parse(JSON.stringify(vocab)));
  assert.deepEqual(back.toJSON(), vocab.toJSON());
  assert.deepEqual(back.tags('blue car'), vocab.tags('blue car'));
  assert.throws(() => CaptionVocab.fromJSON({ format: 'glimpse-caption-vocab', version: 1, words: ['a', 'a'], counts: [1, 1], captions: 2 }), /'a' appears twice/);
  assert.throws(() => CaptionVocab.fromJSON({ format: 'glimpse-caption-vocab', version: 1, words: ['a'], counts: [], captions: 2 }), /counts/);
  assert.throws(() => CaptionVocab.fromJSON({ words: [] }), /not a caption vocabulary/);
  assert.throws(() => CaptionVocab.build(['the a'], { minCount: 1 }), /no word/);
  assert.throws(() => CaptionVocab.build(captions, { minCount: 0 }), /minCount/);
});

test('LOSSES are the registered losses, by name and alias', () => {
  for (const e of LOSSES) {
    assert.equal(losses.get(e.name).fn, e.fn, e.name);
    for (const a of e.aliases) assert.equal(losses.get(a).name, e.name, `${a} names ${e.name}`);
  }
  const r = rng(7);
  const logits = tensor(Array.from({ length: 16 }, () => r() * 4 - 2), { shape: [4, 4] });
  assert.equal(losses.get('infonce').fn(logits).item(), clipLoss(logits).item());
  assert.throws(() => losses.get('catlip').fn(logits), /needs a target/);
});
