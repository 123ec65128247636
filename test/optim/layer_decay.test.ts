// Layer-wise learning-rate decay: the groups, and that the optimizer and the scheduler honour them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViTConfig, ViTForImageClassification, ViTModel } from '../../src/models/vit.js';
import { AdamW } from '../../src/optim/adamw.js';
import { defaultNoDecay, paramGroupsLayerDecay, vitLayerOf } from '../../src/optim/groups.js';
import { LRScheduler, warmupCosineSchedule } from '../../src/optim/schedule.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { floats } from '../helpers.js';

const L = 3;
const config = new ViTConfig({ hiddenSize: 16, numHiddenLayers: L, numAttentionHeads: 2, intermediateSize: 24, imageSize: 16, patchSize: 8, labels: ['a', 'b', 'c'] });
const classifier = (seed = 1) => new ViTForImageClassification(config, { generator: new Generator(seed) });

test('vitLayerOf: embeddings 0, block i at i + 1, the rest at L + 1', () => {
  const of = vitLayerOf(L);
  assert.equal(of('vit.embeddings.cls_token'), 0);
  assert.equal(of('vit.embeddings.position_embeddings'), 0);
  assert.equal(of('vit.embeddings.patch_embeddings.projection.weight'), 0);
  assert.equal(of('vit.encoder.layers.0.self_attn.q_proj.weight'), 1);
  assert.equal(of('vit.encoder.layers.2.mlp.fc2.bias'), 3);
  assert.equal(of('vit.layernorm.weight'), 4);
  assert.equal(of('classifier.weight'), 4);
  // A bare ViTModel has no prefix; names under another prefix are not embeddings or blocks.
  const bare = vitLayerOf(L, '');
  assert.equal(bare('embeddings.cls_token'), 0);
  assert.equal(bare('encoder.layers.1.layer_norm1.weight'), 2);
  assert.equal(bare('pooler.dense.weight'), 4);
  assert.equal(of('encoder.layers.1.layer_norm1.weight'), 4);
  assert.throws(() => of('vit.encoder.layers.3.mlp.fc1.weight'), /block 3, but the model was said to have 3 blocks/);
});

test('paramGroupsLayerDecay: one group per (layer, decay), lr decayed per layer, each parameter once', () => {
  const model = classifier();
  model.vit.embeddings.positionEmbeddings.setRequiresGrad(false);
  const groups = paramGroupsLayerDecay(model, { weightDecay: 0.05, layerDecay: 0.5, baseLr: 1e-3, numLayers: L, layerOf: vitLayerOf(L) });
  const nameOf = new Map<Tensor, string>(model.namedParameters().map(([n, p]) => [p, n]));
  const seen = new Map<string, number>();
  for (const g of groups) {
    assert.ok(g.params.length > 0);
    assert.equal(g.lr, 1e-3 * 0.5 ** (L + 1 - g.layerId), `layer ${g.layerId}`);
    for (const p of g.params) {
      const name = nameOf.get(p)!;
      seen.set(name, (seen.get(name) ?? 0) + 1);
      assert.equal(vitLayerOf(L)(name), g.layerId, name);
      assert.equal(g.weightDecay, defaultNoDecay(name, p) ? 0 : 0.05, name);
    }
  }
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n).sort();
  assert.deepEqual([...seen.keys()].sort(), trainable);
  assert.ok([...seen.values()].every((n) => n === 1), 'no parameter in two groups');
  assert.ok(!seen.has('vit.embeddings.position_embeddings'), 'frozen parameters are left out');
  // Ordered by layer, decayed before not decayed; defaultNoDecay exempts all of the embeddings
  // ('embed' in every name), so layer 0 has no decayed group.
  assert.deepEqual(groups.map((g) => [g.layerId, g.weightDecay]), [[0, 0], ...[1, 2, 3, 4].flatMap((id) => [[id, 0.05], [id, 0]])]);
  // layerDecay 1 is plain grouping: every lr the base lr.
  const flat = paramGroupsLayerDecay(model, { weightDecay: 0.05, layerDecay: 1, baseLr: 1e-3, numLayers: L, layerOf: vitLayerOf(L) });
  assert.ok(flat.every((g) => g.lr === 1e-3));
});

test('paramGroupsLayerDecay rejects bad settings and layer ids, naming them', () => {
  const model = new ViTModel(config, { generator: new Generator(1) });
  const base = { weightDecay: 0.05, layerDecay: 0.75, baseLr: 1e-3, numLayers: L, layerOf: vitLayerOf(L, '') };
  assert.throws(() => paramGroupsLayerDecay(model, { ...base, layerDecay: 0 }), /layerDecay must be in \(0, 1\], got 0/);
  assert.throws(() => paramGroupsLayerDecay(model, { ...base, layerDecay: 1.5 }), /layerDecay/);
  assert.throws(() => paramGroupsLayerDecay(model, { ...base, baseLr: -1 }), /baseLr must be >= 0/);
  assert.throws(() => paramGroupsLayerDecay(model, { ...base, numLayers: 1.5 }), /numLayers must be a non-negative integer/);
  assert.throws(() => paramGroupsLayerDecay(model, { ...base, layerOf: (n) => (n.startsWith('pooler') ? 5 : 0) }),
    /layerOf\('pooler\.dense\.weight'\) is 5; layer ids run from 0 to numLayers \+ 1 = 4/);
});

test('AdamW moves each group by its own lr, and a scheduler scales every group by the schedule', () => {
  const model = classifier(2);
  const groups = paramGroupsLayerDecay(model, { weightDecay: 0, layerDecay: 0.1, baseLr: 1e-2, numLayers: L, layerOf: vitLayerOf(L) });
  const opt = new AdamW(groups, { eps: 1e-12 });
  const schedule = warmupCosineSchedule({ warmupSteps: 2, totalSteps: 10 });
  const sched = new LRScheduler(opt, schedule);
  const initial = groups.map((g) => 1e-2 * 0.1 ** (L + 1 - g.layerId));
  assert.deepEqual(sched.baseLrs, initial);
  sched.step(); // step 1: half-way through the warm-up
  assert.deepEqual(sched.lastLr(), initial.map((lr) => lr * schedule(1)));

  const before = opt.paramGroups.map((g) => g.params.map((p) => floats(p).slice()));
  const pixels = randn([2, 3, 16, 16], { generator: new Generator(3) });
  const labels = randint(0, 3, [2], { generator: new Generator(4), dtype: 'int32' });
  model.forward(pixels, { labels }).loss!.backward();
  opt.step();
  // Adam's first step moves each element by lr * g / (|g| + eps): lr wherever the gradient is not
  // tiny, up to the float32 rounding of the weight itself.
  opt.paramGroups.forEach((g, gi) => {
    let moved = 0;
    g.params.forEach((p, pi) => {
      const now = floats(p);
      const grad = floats(p.grad!);
      now.forEach((v, i) => {
        if (Math.abs(grad[i]!) < 1e-8) return;
        const step = Math.abs(v - before[gi]![pi]![i]!);
        assert.ok(Math.abs(step - g.lr) <= 1e-3 * g.lr + Math.abs(v) * 2 ** -22, `group ${gi} (layer ${groups[gi]!.layerId}): moved ${step}, lr ${g.lr}`);
        moved++;
      });
    });
    assert.ok(moved > 0, `group ${gi} has parameters with gradients`);
  });
  for (let s = 2; s <= 6; s++) {
    sched.step();
    assert.deepEqual(sched.lastLr(), initial.map((lr) => lr * schedule(s)), `step ${s}`);
  }
  // The lrs and base lrs survive a save and load of both states.
  const again = new AdamW(paramGroupsLayerDecay(model, { weightDecay: 0, layerDecay: 0.1, baseLr: 5, numLayers: L, layerOf: vitLayerOf(L) }));
  again.loadStateDict(opt.stateDict());
  const resumed = new LRScheduler(again, schedule);
  resumed.loadStateDict(sched.stateDict());
  assert.deepEqual(resumed.lastLr(), sched.lastLr());
});
