// Backward recycles the storages of gradients it has consumed (src/tensor/recycle.ts): gradients
// must come out bit for bit as without recycling, through graphs where gradients are views of one
// another, reach several inputs at once, and feed leaves. A no-grad encoder reuses its blocks'
// intermediates (releasingSteps): its outputs must be those of a fresh forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { noGrad, record } from '../../src/tensor/autograd.js';
import { getBackend } from '../../src/tensor/device.js';
import { recycledAllocations, releasingSteps, withoutRecycling } from '../../src/tensor/recycle.js';
import { TransformerEncoder } from '../../src/nn/transformer.js';
import { Generator } from '../../src/tensor/random.js';
import { layerNorm, linear, scaledDotProductAttention } from '../../src/tensor/ops/nn.js';
import { randomData, rng } from '../helpers.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';

const B = 3, T = 5, H = 2, Dh = 4, D = H * Dh;

/** Two pre-LN blocks with residuals, head split/merge views, a tensor used twice and a broadcast. */
function step(seed: number) {
  const backend = getBackend('native');
  const r = rng(seed);
  const leaf = (shape: number[], scale = 0.5) =>
    tensor((randomData(r, 'float32', shape.reduce((a, b) => a * b, 1)) as Float32Array).map((v) => v * scale), { shape, backend, requiresGrad: true });
  const x = leaf([B, T, D], 1);
  const params = [0, 1].map(() => ({ g: leaf([D]), b: leaf([D]), wqkv: leaf([3 * D, D]), wo: leaf([D, D]), w1: leaf([2 * D, D]), b1: leaf([2 * D]), w2: leaf([D, 2 * D]) }));
  const scale = leaf([D]);
  let h: Tensor = x;
  for (const p of params) {
    const qkv = linear(layerNorm(h, p.g, p.b), p.wqkv).reshape([B, T, 3, H, Dh]);
    const heads = (i: number) => qkv.select(2, i).permute([0, 2, 1, 3]);
    const att = scaledDotProductAttention(heads(0), heads(1), heads(2), { causal: true }).permute([0, 2, 1, 3]).reshape([B, T, D]);
    h = h.add(linear(att, p.wo));
    h = h.add(linear(linear(layerNorm(h, p.g, null), p.w1, p.b1, 'gelu_erf'), p.w2));
  }
  const loss = h.mul(h).add(h.mul(scale)).sum(); // h reaches the loss twice, scale through a broadcast
  loss.backward();
  return [x, scale, ...params.flatMap((p) => Object.values(p))];
}

test('recycled gradient storages give the gradients of fresh ones, bit for bit', { skip: !loadAddon() && 'the native addon is not built' }, () => {
  for (const seed of [1, 2]) {
    const before = recycledAllocations();
    const recycled = step(seed);
    assert.ok(recycledAllocations() > before, 'backward served some allocations from consumed gradients');
    const fresh = withoutRecycling(() => step(seed));
    recycled.forEach((t, i) => {
      assert.deepEqual(Array.from(t.grad!.data() as Float32Array), Array.from(fresh[i]!.grad!.data() as Float32Array), `gradient of leaf ${i} (seed ${seed})`);
    });
  }
});

test('a leaf\'s gradient is never recycled: a second backward accumulates onto intact values', { skip: !loadAddon() && 'the native addon is not built' }, () => {
  const backend = getBackend('native');
  const w = tensor([[1, 2], [3, 4]], { backend, requiresGrad: true });
  const x = tensor([[1, -1], [2, 0.5]], { backend });
  const run = () => w.matmul(x).reshape([4]).mul(tensor([1, 2, 3, 4], { backend })).sum().backward();
  run();
  const first = Array.from(w.grad!.data() as Float32Array);
  const held = w.grad!;
  run();
  assert.deepEqual(Array.from(held.data() as Float32Array), first, 'the first .grad tensor is untouched');
  assert.deepEqual(Array.from(w.grad!.data() as Float32Array), first.map((v) => 2 * v));
});

test('a backward run inside a backward rule leaves the outer pass\'s gradient intact', { skip: !loadAddon() && 'the native addon is not built' }, () => {
  const backend = getBackend('native');
  const t = (v: number[], requiresGrad = false) => tensor(v, { backend, requiresGrad });
  const x = t([1, 2, 3, 4], true);
  const h = x.mul(t([2, 2, 2, 2]));
  // An op whose rule runs a backward of its own from the gradient it was given, then passes that
  // gradient through: the inner pass must not recycle a storage the outer one still holds.
  const out = noGrad(() => h.mul(t([1, 1, 1, 1])));
  const z = t([1, 1, 1, 1], true);
  const zOut = z.mul(t([5, 5, 5, 5])).mul(t([7, 7, 7, 7])); // backward: two products of g's size after g is consumed
  record('nested', [h], out, (g) => {
    zOut.backward(g);
    return [g];
  });
  out.mul(t([1, 2, 3, 4])).sum().backward();
  assert.deepEqual(x.grad!.tolist(), [2, 4, 6, 8]);
  assert.deepEqual(z.grad!.tolist(), [35, 70, 105, 140]);
});

test('a no-grad encoder reuses its blocks\' intermediates and gives the outputs of a fresh forward, bit for bit', { skip: !loadAddon() && 'the native addon is not built' }, () => {
  const backend = getBackend('native');
  const encoder = new TransformerEncoder(3, D, H, { generator: new Generator(5), backend, act: 'quick_gelu' });
  const x = tensor(randomData(rng(4), 'float32', B * T * D) as Float32Array, { shape: [B, T, D], backend });
  const fresh = withoutRecycling(() => noGrad(() => encoder.forward(x))).toArray();
  const pooledFresh = withoutRecycling(() => noGrad(() => encoder.forward(x, { rows: 'first' }))).toArray();
  const before = recycledAllocations();
  const out = noGrad(() => encoder.forward(x));
  assert.ok(recycledAllocations() > before, 'later blocks take the storages earlier ones released');
  assert.deepEqual(Array.from(out.toArray()), Array.from(fresh));
  assert.deepEqual(Array.from(noGrad(() => encoder.forward(x, { rows: 'first' })).toArray()), Array.from(pooledFresh));
  assert.deepEqual(Array.from(x.toArray()), Array.from(randomData(rng(4), 'float32', B * T * D) as Float32Array), 'the input is never released');
  // With gradients, or with hidden states asked for, every block allocates afresh.
  const hidden: Tensor[] = [];
  const n = recycledAllocations();
  noGrad(() => encoder.forward(x, { hiddenStates: hidden }));
  encoder.forward(x);
  assert.equal(recycledAllocations(), n);
  assert.deepEqual(Array.from(hidden[3]!.toArray()), Array.from(fresh));
});

test('releasingSteps keeps what a step\'s result holds, a view of one of its buffers included', { skip: !loadAddon() && 'the native addon is not built' }, () => {
  const backend = getBackend('native');
  const x = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3], backend });
  const out = releasingSteps(x, 4, (h) => h.mul(2).add(1).slice(1, 0, 3).mul(1), (h) => [h.storage]);
  assert.deepEqual(out.tolist(), [[31, 47, 63], [79, 95, 111]]);
  // A step whose result is a view into a buffer it made: that buffer is kept, the others reused.
  const views = releasingSteps(x, 3, (h) => h.add(1).mul(3).reshape([3, 2]).reshape([2, 3]), (h) => [h.storage]);
  assert.deepEqual(views.tolist(), [[66, 93, 120], [147, 174, 201]]);
});
