// Key/value caches for incremental decoding: bottom-right causal masks, the cache buffers, and
// cached against uncached decoding (logits of each step, generated ids) on BERT and BLIP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { DecoderCache, KeyValueCache, MultiHeadAttention, attend, composedAttention } from '../../src/nn/attention.js';
import { BertConfig, BertModel } from '../../src/models/bert.js';
import { BlipConfig, BlipForConditionalGeneration } from '../../src/models/blip.js';
import { getModelEntry } from '../../src/models/registry.js';
import { generateCaptionIds } from '../../src/tasks/caption.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { concat, indexSelect } from '../../src/tensor/ops/indexing.js';
import { scaledDotProductAttention } from '../../src/tensor/ops/nn.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { findShared, floats, sharedNotFound } from '../helpers.js';

function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = floats(a);
  const y = floats(b);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

const int32 = (rows: number[][]): Tensor => tensor(Int32Array.from(rows.flat()), { shape: [rows.length, rows[0]!.length], dtype: 'int32' });
const mask = (rows: number[][]): Tensor => tensor(Float32Array.from(rows.flat()), { shape: [rows.length, rows[0]!.length] });

// ---------------------------------------------------------------------------------------------
// Causal alignment

test('bottom-right causal attention is the last Tq rows of the full causal attention (fused and composed paths)', () => {
  const g = new Generator(1);
  const [B, H, Tk, D] = [2, 3, 7, 5];
  const q = randn([B, H, Tk, D], { generator: g });
  const k = randn([B, H, Tk, D], { generator: g });
  const v = randn([B, H, Tk, D], { generator: g });
  const pad = mask([[1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 1, 1]]);
  for (const keyPadding of [null, pad]) {
    const full = scaledDotProductAttention(q, k, v, { causal: true, keyPadding });
    // Tq = 1 (no mask needed: the fused kernel), Tq = 3 (the composed path), Tq = Tk (top-left = bottom-right).
    for (const Tq of [1, 3, Tk]) {
      const tail = (t: Tensor) => t.slice(2, Tk - Tq);
      const got = attend(tail(q), k, v, { causal: 'bottom-right', keyPadding });
      assert.ok(maxDiff(got, tail(full)) < 1e-6, `Tq ${Tq}, padding ${!!keyPadding}`);
      const composed = composedAttention(tail(q), k, v, { causal: 'bottom-right', keyPadding });
      assert.ok(maxDiff(composed, tail(full)) < 1e-6, `composed Tq ${Tq}`);
    }
  }
  // Top-left stays what it was: with Tq < Tk, query i sees keys 0..i only, unlike bottom-right.
  const q2 = q.slice(2, 0, 2);
  const topLeft = attend(q2, k, v, { causal: true });
  const composedTopLeft = composedAttention(q2, k, v, { causal: 'top-left' });
  assert.ok(maxDiff(topLeft, composedTopLeft) < 1e-6);
  assert.ok(maxDiff(topLeft, full2(q2, k, v)) < 1e-6);
  assert.ok(maxDiff(attend(q2, k, v, { causal: 'bottom-right' }), topLeft) > 1e-3);
});

/** Query i of q over keys 0..i of k, v, one query at a time. */
function full2(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const rows = Array.from({ length: q.shape[2]! }, (_, i) => scaledDotProductAttention(q.slice(2, i, i + 1), k.slice(2, 0, i + 1), v.slice(2, 0, i + 1)));
  return concat(rows, 2);
}

// ---------------------------------------------------------------------------------------------
// The cache buffers

test('KeyValueCache: appends past its initial capacity equal one concat; reorder picks rows; inference only', () => {
  const g = new Generator(2);
  const cache = new KeyValueCache();
  const ks: Tensor[] = [];
  const vs: Tensor[] = [];
  noGrad(() => {
    for (const T of [5, 1, 1, 12, 1, 20]) {
      // Keys as the attention layers give them: permuted views of a projection.
      const k = randn([2, T, 3, 4], { generator: g }).permute(0, 2, 1, 3);
      const v = randn([2, T, 3, 6], { generator: g }).permute(0, 2, 1, 3);
      ks.push(k);
      vs.push(v);
      const all = cache.append(k, v);
      assert.equal(cache.length, ks.reduce((s, t) => s + t.shape[2]!, 0));
      assert.deepEqual(floats(all.keys), floats(concat(ks, 2)));
      assert.deepEqual(floats(all.values), floats(concat(vs, 2)));
    }
    const idx = tensor(Int32Array.from([1, 1, 0]), { shape: [3], dtype: 'int32' });
    const before = { k: concat(ks, 2), v: concat(vs, 2) };
    cache.reorder(idx);
    assert.deepEqual(floats(cache.keys!), floats(indexSelect(before.k, 0, idx)));
    assert.deepEqual(floats(cache.values!), floats(indexSelect(before.v, 0, idx)));
    // Appending after a reorder continues the reordered rows.
    const k = randn([3, 3, 2, 4], { generator: g });
    const v = randn([3, 3, 2, 6], { generator: g });
    const after = cache.append(k, v);
    assert.deepEqual(floats(after.keys), floats(concat([indexSelect(before.k, 0, idx), k], 2)));
    assert.throws(() => cache.append(randn([2, 3, 1, 4]), randn([2, 3, 1, 6])), /do not fit/);
  });
  const w = randn([1, 1, 1, 4]).setRequiresGrad();
  assert.throws(() => new KeyValueCache().append(w, w), /inference/);
  assert.throws(() => new DecoderCache(0), /numLayers/);
});

test('MultiHeadAttention with a cache: causal self-attention and cached cross-attention, one token at a time', () => {
  const g = new Generator(3);
  const self = new MultiHeadAttention(8, 2, { generator: g, causal: true });
  const cross = new MultiHeadAttention(8, 2, { generator: g, kvDim: 6 });
  const x = randn([2, 6, 8], { generator: g });
  const ctx = randn([2, 5, 6], { generator: g });
  noGrad(() => {
    const fullSelf = self.forward(x);
    const fullCross = cross.forward(x, { context: ctx });
    const selfCache = new KeyValueCache();
    const crossCache = new KeyValueCache();
    // A block of 2, then single positions.
    for (const [a, b] of [[0, 2], [2, 3], [3, 4], [4, 6]] as const) {
      const step = x.slice(1, a, b);
      assert.ok(maxDiff(self.forward(step, { cache: selfCache }), fullSelf.slice(1, a, b)) < 1e-5, `self ${a}..${b}`);
      assert.ok(maxDiff(cross.forward(step, { context: ctx, cache: crossCache }), fullCross.slice(1, a, b)) < 1e-5, `cross ${a}..${b}`);
      assert.equal(crossCache.length, 5);
    }
    assert.equal(selfCache.length, 6);
    // A one-row cross cache serves any number of rows (beams of one image) without copies,
    // and a DecoderCache reorder leaves it as it is.
    const one = new DecoderCache(1);
    const ctx1 = ctx.slice(0, 0, 1);
    cross.forward(x.slice(0, 0, 1).slice(1, 0, 1), { context: ctx1, cache: one.layers[0]!.cross });
    one.layers[0]!.self.append(randn([1, 2, 1, 4], { generator: g }), randn([1, 2, 1, 4], { generator: g }));
    one.reorder([0, 0, 0]);
    assert.equal(one.layers[0]!.cross.rows, 1);
    assert.equal(one.layers[0]!.self.rows, 3);
    const x3 = randn([3, 2, 8], { generator: g });
    const want = cross.forward(x3, { context: ctx1.expand(3, 5, 6) });
    assert.ok(maxDiff(cross.forward(x3, { context: ctx1, cache: one.layers[0]!.cross }), want) < 1e-6);
    assert.throws(() => cross.forward(x3, { context: ctx, cache: crossCache }), /holds 2 rows for 3 queries/);
  });
});

// ---------------------------------------------------------------------------------------------
// BERT and BLIP decoders

test('BERT decoder: cached steps (with padding in the attention mask) give the full forward\'s hidden states', () => {
  const config = new BertConfig({ vocabSize: 30, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 20,
    maxPositionEmbeddings: 16, isDecoder: true, addCrossAttention: true, encoderHiddenSize: 12, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 });
  const model = new BertModel(config, { generator: new Generator(4), addPoolingLayer: false });
  const g = new Generator(5);
  const enc = randn([2, 4, 12], { generator: g });
  const ids = [[3, 4, 5, 6, 7, 8, 9], [0, 0, 11, 12, 13, 14, 15]];
  const m = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]];
  noGrad(() => {
    const full = model.forward(int32(ids), { attentionMask: mask(m), encoderHiddenStates: enc }).lastHiddenState;
    const cache = new DecoderCache(2);
    for (const [a, b] of [[0, 3], [3, 4], [4, 5], [5, 7]] as const) {
      const step = model.forward(int32(ids.map((r) => r.slice(a, b))), {
        attentionMask: mask(m.map((r) => r.slice(0, b))), encoderHiddenStates: enc, cache,
      }).lastHiddenState;
      assert.ok(maxDiff(step, full.slice(1, a, b)) < 1e-5, `positions ${a}..${b}`);
    }
    assert.equal(cache.length, 7);
    assert.throws(() => model.forward(int32([[1], [2]]), { attentionMask: mask([[1], [1]]), encoderHiddenStates: enc, cache }),
      /cover the 7 cached and 1 new positions/);
    assert.throws(() => model.forward(int32([[1], [2]]), { encoderHiddenStates: enc, cache: new DecoderCache(3) }), /cache has 3 layers, the model 2/);
  });
});

/** test-blip's config with larger initial weights, so that next-token distributions are peaked (no near ties). */
function tinyBlip(seed: number): BlipForConditionalGeneration {
  const raw = getModelEntry('test-blip').config;
  return new BlipForConditionalGeneration(BlipConfig.fromHF({ ...raw, initializer_range: 0.5 }), { generator: new Generator(seed) });
}

test('BLIP decoder: the logits of each cached step equal the teacher-forced forward\'s (to 1e-5)', () => {
  const model = tinyBlip(6);
  const tc = model.config.textConfig;
  const size = model.config.visionConfig.imageSize;
  const px = randn([2, 3, size, size], { generator: new Generator(7) });
  const ids = [[tc.bosTokenId, 5, 9, 40, 41, 7, 8, 3], [tc.bosTokenId, 60, 61, 62, 2, 1, 99, 100]];
  noGrad(() => {
    const full = model.forward(px, int32(ids)).logits;
    const image = model.visionModel.forward(px).lastHiddenState;
    const cache = model.textDecoder.newCache();
    for (const [a, b] of [[0, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 8]] as const) {
      const step = model.textDecoder.forward(int32(ids.map((r) => r.slice(a, b))), { encoderHiddenStates: image, cache }).logits;
      const err = maxDiff(step, full.slice(1, a, b));
      assert.ok(err < 1e-5, `positions ${a}..${b}: ${err}`);
    }
  });
});

test('BLIP captioning: cached and uncached decoding give the same ids (greedy, beams, sampling with a seed, prompt)', () => {
  const model = tinyBlip(8);
  const size = model.config.visionConfig.imageSize;
  const px = randn([3, 3, size, size], { generator: new Generator(9) });
  const cases = [
    { maxTokens: 12 },
    { maxTokens: 10, beams: 3 },
    { maxTokens: 8, beams: 4, lengthPenalty: 0.5 },
    { maxTokens: 12, topP: 0.9, temperature: 1.5, seed: 4 },
    { maxTokens: 6, promptIds: [70, 71, 72] },
    { maxTokens: 6, beams: 2, promptIds: [70] },
  ];
  for (const opts of cases) {
    const cached = generateCaptionIds(model, px, opts);
    const uncached = generateCaptionIds(model, px, { ...opts, useCache: false });
    assert.deepEqual(cached, uncached, JSON.stringify(opts));
  }
  // Beam search must have reselected beams (else the reorder went untested): it differs from greedy.
  assert.notDeepEqual(generateCaptionIds(model, px, { maxTokens: 10, beams: 3 }), generateCaptionIds(model, px, { maxTokens: 10 }));
});

test('BLIP captioning: rows that finish early leave the cached batch and the others decode on unchanged', () => {
  const model = tinyBlip(10);
  const tc = model.config.textConfig;
  const size = model.config.visionConfig.imageSize;
  const px = randn([4, 3, size, size], { generator: new Generator(11) });
  // Make sep likely without being certain: some rows stop early, others run on.
  const bias = model.textDecoder.cls.predictions.bias;
  noGrad(() => {
    const b = bias.select(0, tc.sepTokenId);
    b.backend.fill(b.view(), 0);
  });
  const greedy = generateCaptionIds(model, px, { maxTokens: 15 });
  let lengths = new Set(greedy.map((r) => r.length));
  for (let boost = 1; lengths.size < 2 && boost < 40; boost++) {
    noGrad(() => {
      const b = bias.select(0, tc.sepTokenId);
      b.backend.fill(b.view(), boost * 0.5);
    });
    lengths = new Set(generateCaptionIds(model, px, { maxTokens: 15 }).map((r) => r.length));
  }
  assert.ok(lengths.size >= 2, 'found a sep bias where rows finish at different steps');
  const cached = generateCaptionIds(model, px, { maxTokens: 15 });
  assert.deepEqual(cached, generateCaptionIds(model, px, { maxTokens: 15, useCache: false }));
  // Each row alone decodes to the same caption: nothing leaked between rows of the batch.
  cached.forEach((row, i) => assert.deepEqual(generateCaptionIds(model, px.slice(0, i, i + 1), { maxTokens: 15 })[0], row));
});

test('BlipForConditionalGeneration.generate: the cache changes no id, with a prompt and its attention mask', () => {
  const model = tinyBlip(12);
  const tc = model.config.textConfig;
  const size = model.config.visionConfig.imageSize;
  const px = randn([2, 3, size, size], { generator: new Generator(13) });
  const prompt = int32([[101, 70, 71, 72, 102], [101, 80, 81, 0, 102]]);
  const promptMask = mask([[1, 1, 1, 1, 1], [1, 1, 1, 0, 1]]);
  for (const opts of [{ maxNewTokens: 9 }, { maxNewTokens: 7, inputIds: prompt, attentionMask: promptMask }]) {
    const a = model.generate(px, opts);
    const b = model.generate(px, { ...opts, useCache: false });
    assert.deepEqual(a.shape, b.shape);
    assert.deepEqual(floats(a), floats(b), JSON.stringify(Object.keys(opts)));
    assert.equal(floats(a)[0], tc.bosTokenId);
  }
});

test('on transformers\' blip_caption fixture: cached and uncached generation both give its generated_ids', (t) => {
  const dir = findShared('fixtures/hf/blip_caption', 'config.json');
  if (!dir) return t.skip(sharedNotFound());
  const model = BlipForConditionalGeneration.fromPretrained(dir);
  const inputs = loadSafetensors(path.join(dir, 'inputs.safetensors')).tensors;
  const ref = loadSafetensors(path.join(dir, 'outputs.safetensors')).tensors.generated_ids!;
  const [B, T] = ref.shape as [number, number];
  const px = tensor(inputs.pixel_values!.data, { shape: inputs.pixel_values!.shape });
  const refIds = Array.from(ref.data as BigInt64Array, Number);
  for (const useCache of [true, false]) {
    const out = model.generate(px, { maxNewTokens: T - 1, useCache });
    assert.deepEqual(out.toArray(), refIds, `generate, useCache ${useCache}`);
    const rows = generateCaptionIds(model, px, { maxTokens: T - 1, useCache });
    const pad = model.config.textConfig.padTokenId ?? 0;
    assert.deepEqual(rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(pad)]).flat(), refIds, `generateCaptionIds, useCache ${useCache}`);
    assert.equal(rows.length, B);
  }
});
