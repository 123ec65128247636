// The pooled-rows short path: an encoder whose output is read at one row per sample runs its last
// layer for those rows only. Outputs and every parameter gradient must equal the full pass's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIPConfig, CLIPModel, eosPositions } from '../../src/models/clip.js';
import { ViTConfig, ViTForImageClassification } from '../../src/models/vit.js';
import type { Module } from '../../src/nn/module.js';
import { TransformerEncoder } from '../../src/nn/transformer.js';
import type { Backend } from '../../src/tensor/backend.js';
import { getBackend } from '../../src/tensor/device.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { floats, maxAbs, relMaxError } from '../helpers.js';

const backends: [string, Backend | undefined][] = [['default', undefined], ['reference', getBackend('reference')]];

const host = (t: Tensor): Float64Array => Float64Array.from(t.toArray() as ArrayLike<number>);

/**
 * Runs `outputs` on the full and the short path (each from the same state, the gradients cleared
 * before), backpropagates a fixed random weighting of the outputs, and checks that outputs agree
 * to 1e-5 and each parameter's gradient to 1e-4, relative to their largest element. A gradient
 * that is zero in exact arithmetic (a key bias: softmax ignores a shift shared by all keys) holds
 * float noise that differs between the paths: below 1e-6 of the model's largest gradient on the
 * full path, it must stay below that on the short one. `trained` lists parameter-name prefixes
 * that must receive a gradient.
 */
function assertSamePaths(model: Module, outputs: (short: boolean) => Tensor[], trained: readonly string[]): void {
  const run = (short: boolean) => {
    model.zeroGrad();
    const outs = outputs(short);
    let total: Tensor | null = null;
    outs.forEach((o, i) => {
      const w = randn(o.shape, { generator: new Generator(100 + i), backend: o.backend, dtype: o.dtype });
      const term = o.mul(w).sum();
      total = total ? total.add(term) : term;
    });
    total!.backward();
    const grads = new Map(model.namedParameters().map(([k, p]) => [k, p.grad ? host(p.grad) : null]));
    return { outs: outs.map(host), grads };
  };
  const full = run(false);
  const short = run(true);
  full.outs.forEach((o, i) => {
    assert.equal(short.outs[i]!.length, o.length, `output ${i} size`);
    const err = relMaxError(short.outs[i]!, o);
    assert.ok(err < 1e-5, `output ${i}: relative error ${err}`);
  });
  const noise = 1e-6 * Math.max(...[...full.grads.values()].map((g) => (g ? maxAbs(g) : 0)));
  for (const [name, g] of full.grads) {
    const s = short.grads.get(name)!;
    if (trained.some((p) => name.startsWith(p))) assert.ok(g && s, `${name} has a gradient on both paths`);
    assert.equal(s === null, g === null, `${name}: gradient on one path only`);
    if (!g || !s) continue;
    if (maxAbs(g) < noise) {
      assert.ok(maxAbs(s) < noise, `${name}: zero gradient on the full path, ${maxAbs(s)} on the short one`);
      continue;
    }
    const err = relMaxError(s, g);
    assert.ok(err < 1e-4, `${name}: gradient relative error ${err}`);
  }
}

function vitConfig(): ViTConfig {
  return new ViTConfig({
    hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 24, imageSize: 12, patchSize: 4,
    labels: ['a', 'b', 'c'],
  });
}

function clipConfig(): CLIPConfig {
  return new CLIPConfig({
    projectionDim: 10,
    textConfig: {
      vocabSize: 40, hiddenSize: 16, intermediateSize: 30, numHiddenLayers: 2, numAttentionHeads: 2,
      maxPositionEmbeddings: 8, hiddenAct: 'gelu', eosTokenId: 39,
    },
    visionConfig: { hiddenSize: 24, intermediateSize: 20, numHiddenLayers: 2, numAttentionHeads: 3, imageSize: 12, patchSize: 4 },
  });
}

// EOS (39) at the last position, in the middle before padding, at position 0, and missing (pools row 0).
const TEXT = [[3, 7, 12, 5, 8, 21, 9, 39], [4, 11, 39, 0, 0, 0, 0, 0], [39, 0, 0, 0, 0, 0, 0, 0], [6, 2, 30, 14, 1, 0, 0, 0]];
const MASK = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]];

// The batch's last EOS at position 4: the pooled text path skips positions 5-7.
const SHORT_TEXT = [[3, 7, 12, 5, 39, 0, 0, 0], [4, 11, 39, 0, 0, 0, 0, 0], [39, 0, 0, 0, 0, 0, 0, 0], [6, 2, 30, 0, 0, 0, 0, 0]];
const SHORT_MASK = [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]];

const textIds = (backend?: Backend, rows = TEXT) => tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [4, 8], dtype: 'int64', backend });
const textMask = (backend?: Backend, rows = MASK) => tensor(Int32Array.from(rows.flat()), { shape: [4, 8], dtype: 'int32', backend });

test('TransformerEncoder rows: the pooled rows equal the full output\'s, causal and padded or not', () => {
  const D = 12;
  const enc = new TransformerEncoder(2, D, 3, { generator: new Generator(1), mlpDim: 20 });
  const x = randn([4, 8, D], { generator: new Generator(2) });
  const padding = textMask();
  const rows = [7, 2, 0, 4];
  for (const [causal, keyPadding] of [[false, null], [true, null], [true, padding], [false, padding]] as const) {
    const full = floats(enc.forward(x, { causal, keyPadding }));
    const pooled = enc.forward(x, { causal, keyPadding, rows });
    assert.deepEqual(pooled.shape, [4, 1, D]);
    const want = rows.flatMap((t, b) => Array.from(full.subarray((b * 8 + t) * D, (b * 8 + t + 1) * D)));
    const err = relMaxError(floats(pooled), want);
    assert.ok(err < 1e-5, `causal ${causal}, padding ${!!keyPadding}: relative error ${err}`);
    const first = floats(enc.forward(x, { causal, keyPadding, rows: 'first' }));
    const wantFirst = [0, 1, 2, 3].flatMap((b) => Array.from(full.subarray(b * 8 * D, (b * 8 + 1) * D)));
    assert.ok(relMaxError(first, wantFirst) < 1e-5, `causal ${causal}, padding ${!!keyPadding}: first row`);
  }
  // No layers: the rows of the input itself.
  const none = new TransformerEncoder(0, D, 3).forward(x, { rows });
  assert.deepEqual(floats(none).subarray(D, 2 * D), floats(x).subarray((8 + 2) * D, (8 + 3) * D));
});

test('TransformerEncoder rows: bad rows and hidden states are refused with a clear error', () => {
  const enc = new TransformerEncoder(1, 8, 2, { generator: new Generator(3) });
  const x = randn([2, 5, 8], { generator: new Generator(4) });
  assert.throws(() => enc.forward(x, { rows: [0, 5] }), /rows\[1\] = 5 is not a position in \[0, 5\)/);
  assert.throws(() => enc.forward(x, { rows: [0] }), /one position per sample \(2\), got 1 positions/);
  assert.throws(() => enc.forward(x, { rows: 'first', hiddenStates: [] }), /rows and hiddenStates cannot be combined/);
});

for (const [name, backend] of backends) {
  test(`ViT classifier (${name} backend): CLS-only logits, loss and gradients equal the full pass's, with and without patch dropout`, () => {
    const model = new ViTForImageClassification(vitConfig(), { generator: new Generator(5), backend });
    const pixels = randn([3, 3, 12, 12], { generator: new Generator(6), backend });
    const labels = tensor(Int32Array.from([2, 0, 1]), { shape: [3], dtype: 'int32', backend });
    for (const ratio of [null, 0.5]) {
      model.train(ratio !== null);
      // outputHiddenStates forces the full pass; without it forward takes the short one.
      assertSamePaths(model, (short) => {
        const patchDropout = ratio === null ? undefined : { ratio, generator: new Generator(7) };
        const out = model.forward(pixels, { labels, patchDropout, outputHiddenStates: !short });
        assert.equal(out.hiddenStates === null, short);
        return [out.logits, out.loss!];
      }, ['vit.', 'classifier.']);
    }
  });

  test(`CLIP (${name} backend): pooledOnly towers give the full pass's features, loss and gradients (padding, EOS anywhere, positions after the last EOS skipped, patch dropout)`, () => {
    const model = new CLIPModel(clipConfig(), { generator: new Generator(8), backend });
    const ids = textIds(backend);
    const mask = textMask(backend);
    const pixels = randn([4, 3, 12, 12], { generator: new Generator(9), backend });
    assert.deepEqual(eosPositions(ids, model.config.textConfig), [7, 2, 0, 0]);
    for (const ratio of [null, 0.5]) {
      model.train(ratio !== null);
      const patchDropout = () => (ratio === null ? undefined : { ratio, generator: new Generator(10) });
      assertSamePaths(model, (short) => {
        const out = model.forward(ids, pixels, mask, { returnLoss: true, pooledOnly: short, patchDropout: patchDropout() });
        assert.deepEqual(out.textModelOutput.lastHiddenState.shape, short ? [4, 1, 16] : [4, 8, 16]);
        return [out.textEmbeds, out.imageEmbeds, out.loss!];
      }, ['text_model.', 'vision_model.', 'text_projection.', 'visual_projection.', 'logit_scale']);
      // getImageFeatures / getTextFeatures always take the short path; the full one spelled out.
      assertSamePaths(model, (short) => [short
        ? model.getImageFeatures(pixels, { patchDropout: patchDropout() })
        : model.visualProjection.forward(model.visionModel.forward(pixels, { patchDropout: patchDropout() }).poolerOutput)],
      ['vision_model.', 'visual_projection.']);
    }
    model.train(false);
    for (const [textRows, maskRows] of [[TEXT, MASK], [SHORT_TEXT, SHORT_MASK]]) {
      const [rowIds, rowMask] = [textIds(backend, textRows), textMask(backend, maskRows)];
      assertSamePaths(model, (short) => [short
        ? model.getTextFeatures(rowIds, rowMask)
        : model.textProjection.forward(model.textModel.forward(rowIds, rowMask).poolerOutput)], ['text_model.', 'text_projection.']);
    }
  });
}

test('CLIP pooledOnly with outputHiddenStates is refused', () => {
  const model = new CLIPModel(clipConfig(), { generator: new Generator(11) });
  assert.throws(() => model.textModel.forward(textIds(), null, { pooledOnly: true, outputHiddenStates: true }), /CLIP text model: pooledOnly and outputHiddenStates/);
  const pixels = randn([1, 3, 12, 12], { generator: new Generator(12) });
  assert.throws(() => model.visionModel.forward(pixels, { pooledOnly: true, outputHiddenStates: true }), /CLIP vision model: pooledOnly and outputHiddenStates/);
});
