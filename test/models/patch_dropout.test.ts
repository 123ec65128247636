// FLIP patch dropout: the op itself (which tokens survive, determinism, gradients) and the
// patchDropout forward option of the CLIP, SigLIP and ViT vision towers.
import { test } from 'node:test';
import { indexSelect } from '../../src/tensor/ops/indexing.js';
import assert from 'node:assert/strict';
import { patchDropout } from '../../src/nn/layers.js';
import { CLIPConfig, CLIPModel } from '../../src/models/clip.js';
import { SiglipConfig, SiglipModel, SiglipTextConfig, SiglipVisionConfig } from '../../src/models/siglip.js';
import { ViTConfig, ViTModel } from '../../src/models/vit.js';
import { gradcheck } from '../../src/tensor/gradcheck.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { floats } from '../helpers.js';

/** For each sample of out [B, K, D], the token indices of x [B, T, D] its rows are copies of. */
function keptTokens(x: Tensor, out: Tensor): number[][] {
  const [B, T, D] = x.shape as [number, number, number];
  const K = out.shape[1]!;
  const xs = floats(x);
  const os = floats(out);
  const rowOf = (b: number, k: number): number => {
    const found: number[] = [];
    for (let t = 0; t < T; t++) {
      let same = true;
      for (let d = 0; d < D && same; d++) same = os[(b * K + k) * D + d] === xs[(b * T + t) * D + d];
      if (same) found.push(t);
    }
    assert.equal(found.length, 1, `output row ${b},${k} must copy exactly one input token`);
    return found[0]!;
  };
  return Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => rowOf(b, k)));
}

test('patchDropout keeps round((1 - ratio) N) patches per sample, in order, and the prefix tokens', () => {
  const x = randn([6, 1 + 16, 5], { generator: new Generator(1) });
  for (const [ratio, K] of [[0.5, 8], [0.25, 12], [0.7, 5], [0.99, 1]] as const) {
    const out = patchDropout(x, 1, { ratio, generator: new Generator(2) });
    assert.deepEqual(out.shape, [6, 1 + K, 5]);
    for (const rows of keptTokens(x, out)) {
      assert.equal(rows[0], 0, 'the class token comes first');
      for (let i = 1; i < rows.length; i++) assert.ok(rows[i]! > rows[i - 1]!, `tokens keep their order: ${rows}`);
    }
  }
  // Without a prefix (SigLIP) every kept token is a patch.
  const noCls = randn([3, 9, 4], { generator: new Generator(3) });
  assert.deepEqual(patchDropout(noCls, 0, { ratio: 0.5, generator: new Generator(4) }).shape, [3, 5, 4]);
  // Ratio 0 is the identity (the same tensor, nothing drawn).
  assert.equal(patchDropout(x, 1, { ratio: 0 }), x);
});

test('patchDropout is deterministic under a seed, and samples keep different patches', () => {
  const x = randn([8, 1 + 49, 3], { generator: new Generator(5) });
  const a = keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: new Generator(6) }));
  const b = keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: new Generator(6) }));
  const c = keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: new Generator(7) }));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const distinct = new Set(a.map((rows) => rows.join(',')));
  assert.equal(distinct.size, a.length, 'each sample draws its own subset');
  // The generator advances: a second call with it draws another subset.
  const g = new Generator(6);
  const first = keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: g }));
  assert.notDeepEqual(keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: g })), first);
});

test('patchDropout refuses a ratio outside [0, 1) and inputs without patches', () => {
  const x = randn([2, 5, 3]);
  for (const ratio of [1, -0.1, 1.5, Number.NaN]) {
    assert.throws(() => patchDropout(x, 1, { ratio }), /patchDropout\.ratio must be in \[0, 1\)/);
  }
  assert.throws(() => patchDropout(randn([2, 1, 3]), 1, { ratio: 0.5 }), /leave no patch/);
  assert.throws(() => patchDropout(randn([2, 5]), 1, { ratio: 0.5 }), /must be \[B, T, D\]/);
});

test('patchDropout gradients: finite differences agree, dropped tokens get exactly zero', () => {
  const x = randn([3, 1 + 6, 4], { generator: new Generator(8) });
  // A fresh generator per call, so every evaluation of the finite differences drops the same tokens.
  gradcheck((t) => patchDropout(t, 1, { ratio: 0.5, generator: new Generator(9) }).tanh(), [x], { samples: x.size });
  const leaf = tensor(floats(x), { shape: x.shape, requiresGrad: true });
  const out = patchDropout(leaf, 1, { ratio: 0.5, generator: new Generator(9) });
  out.mul(randn(out.shape, { generator: new Generator(10) })).sum().backward();
  const kept = keptTokens(x, out);
  const grad = floats(leaf.grad!);
  for (let b = 0; b < 3; b++) {
    for (let t = 0; t < 7; t++) {
      const row = grad.subarray((b * 7 + t) * 4, (b * 7 + t + 1) * 4);
      const isKept = kept[b]!.includes(t);
      assert.equal(row.some((v) => v !== 0), isKept, `sample ${b} token ${t} (${isKept ? 'kept' : 'dropped'}): gradient [${row}]`);
    }
  }
});

function smallClip(): CLIPModel {
  return new CLIPModel(new CLIPConfig({
    projectionDim: 6,
    textConfig: { vocabSize: 30, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2, maxPositionEmbeddings: 5, eosTokenId: 2 },
    visionConfig: { hiddenSize: 12, intermediateSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, imageSize: 16, patchSize: 4 },
  }), { generator: new Generator(11) });
}

test('CLIP: patch dropout in training shortens the vision tokens; eval mode ignores it', () => {
  const model = smallClip();
  const px = randn([3, 3, 16, 16], { generator: new Generator(12) });
  const ids = randint(0, 30, [3, 5], { generator: new Generator(13) });
  const opts = { patchDropout: { ratio: 0.5, generator: new Generator(14) } };
  const out = model.forward(ids, px, null, { ...opts, returnLoss: true });
  assert.deepEqual(out.visionModelOutput.lastHiddenState.shape, [3, 1 + 8, 12]);
  assert.ok(Number.isFinite(out.loss!.item()));
  model.eval();
  const plain = model.forward(ids, px);
  const ignored = model.forward(ids, px, null, { patchDropout: { ratio: 0.5, generator: new Generator(14) } });
  assert.deepEqual(ignored.visionModelOutput.lastHiddenState.shape, [3, 17, 12]);
  assert.deepEqual(floats(ignored.logitsPerText), floats(plain.logitsPerText));
  // The ratio is checked in either mode.
  assert.throws(() => model.forward(ids, px, null, { patchDropout: { ratio: 1 } }), /CLIP: patchDropout\.ratio must be in \[0, 1\), got 1/);
  model.train();
  assert.throws(() => model.visionModel.forward(px, { patchDropout: { ratio: -1 } }), /CLIP: patchDropout\.ratio/);
});

test("CLIP: the pixels of dropped patches get zero gradient, kept patches' pixels do not", () => {
  const model = smallClip();
  const P = 4;
  const px = tensor(floats(randn([2, 3, 16, 16], { generator: new Generator(15) })), { shape: [2, 3, 16, 16], requiresGrad: true });
  const vision = model.visionModel;
  const out = vision.forward(px, { patchDropout: { ratio: 0.5, generator: new Generator(16) } });
  out.poolerOutput.square().sum().add(out.lastHiddenState.sum()).backward();
  // Which patches survived: the same draw replayed on the embeddings (token 1 + i is patch i).
  const tokens = vision.embeddings.forward(px);
  const kept = keptTokens(tokens, patchDropout(tokens, 1, { ratio: 0.5, generator: new Generator(16) }));
  const g = floats(px.grad!);
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < 16; i++) {
      const [py, pxx] = [Math.floor(i / 4), i % 4];
      let any = false;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < P; y++) for (let x = 0; x < P; x++) any ||= g[((b * 3 + c) * 16 + py * P + y) * 16 + pxx * P + x] !== 0;
      }
      assert.equal(any, kept[b]!.includes(1 + i), `image ${b} patch ${i}`);
    }
  }
});

test('SigLIP: patch dropout without a class token; eval mode ignores it', () => {
  const config = new SiglipConfig({
    textConfig: new SiglipTextConfig({ vocabSize: 20, hiddenSize: 10, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2, maxPositionEmbeddings: 4 }),
    visionConfig: new SiglipVisionConfig({ hiddenSize: 10, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2, imageSize: 12, patchSize: 3 }),
  });
  const model = new SiglipModel(config, { generator: new Generator(17) });
  const px = randn([2, 3, 12, 12], { generator: new Generator(18) });
  const ids = randint(0, 20, [2, 4], { generator: new Generator(19) });
  const out = model.forward(ids, px, { returnLoss: true, patchDropout: { ratio: 0.75, generator: new Generator(20) } });
  assert.deepEqual(out.visionOutput.lastHiddenState.shape, [2, 4, 10]);
  assert.ok(Number.isFinite(out.loss!.item()));
  model.eval();
  const ignored = model.forward(ids, px, { patchDropout: { ratio: 0.75 } });
  assert.deepEqual(floats(ignored.logitsPerText), floats(model.forward(ids, px).logitsPerText));
  assert.throws(() => model.forward(ids, px, { patchDropout: { ratio: 2 } }), /SigLIP: patchDropout\.ratio/);
});

test('ViT: patch dropout keeps the CLS token; eval mode ignores it', () => {
  const model = new ViTModel(new ViTConfig({ hiddenSize: 12, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16, imageSize: 12, patchSize: 3 }),
    { generator: new Generator(21) });
  const px = randn([2, 3, 12, 12], { generator: new Generator(22) });
  const out = model.forward(px, { patchDropout: { ratio: 0.5, generator: new Generator(23) }, outputHiddenStates: true });
  assert.deepEqual(out.lastHiddenState.shape, [2, 1 + 8, 12]);
  model.eval();
  const ignored = model.forward(px, { patchDropout: { ratio: 0.5 } });
  assert.deepEqual(ignored.lastHiddenState.shape, [2, 17, 12]);
  assert.deepEqual(floats(ignored.lastHiddenState), floats(model.forward(px).lastHiddenState));
  assert.throws(() => model.forward(px, { patchDropout: { ratio: 1 } }), /ViT: patchDropout\.ratio/);
});

test('patchDropout on a shard of the global batch keeps the patches its rows keep in the whole batch', () => {
  const x = randn([6, 1 + 16, 4], { generator: new Generator(8) });
  const whole = new Generator(9);
  const all = keptTokens(x, patchDropout(x, 1, { ratio: 0.5, generator: whole }));
  for (const index of [0, 1]) {
    const g = new Generator(9);
    const rows = [index, index + 2, index + 4];
    const mine = indexSelect(x, 0, tensor(Int32Array.from(rows), { dtype: 'int32' }));
    const kept = keptTokens(mine, patchDropout(mine, 1, { ratio: 0.5, generator: g, shard: { index, count: 2 } }));
    assert.deepEqual(kept, rows.map((r) => all[r]), `shard ${index} of 2`);
    assert.deepEqual(g.getState(), whole.getState(), 'every shard leaves the generator where the whole batch does');
  }
});
