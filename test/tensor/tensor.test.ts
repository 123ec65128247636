// Tensor basics: creation, dtypes, views that share storage, autograd mechanics, bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  tensor, zeros, ones, arange, full, noGrad, randn, manualSeed, Generator, concat, crossEntropy,
  embedding, gather, scaledDotProductAttention, getBackend, hasBackend, layerNorm, linear,
} from '../../src/tensor/index.js';

for (const name of ['reference', ...(hasBackend('native') ? ['native'] : [])]) {
  const backend = getBackend(name);
  const opts = { backend };

  test(`${name}: creation from nested arrays, typed arrays and dtypes`, () => {
    const t = tensor([[1, 2, 3], [4, 5, 6]], opts);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.tolist(), [[1, 2, 3], [4, 5, 6]]);
    assert.equal(tensor(3.5, opts).item(), 3.5);
    assert.deepEqual(tensor(new Int32Array([1, 2]), opts).dtype, 'int32');
    assert.deepEqual(tensor([true, false], { ...opts, dtype: 'bool' }).tolist(), [true, false]);
    assert.deepEqual(tensor([1, 2], { ...opts, dtype: 'int64' }).to('float32').tolist(), [1, 2]);
    assert.deepEqual(arange(5, undefined, 1, opts).tolist(), [0, 1, 2, 3, 4]);
    assert.deepEqual(arange(1, 2, 0.25, { ...opts, dtype: 'float32' }).tolist(), [1, 1.25, 1.5, 1.75]);
    assert.deepEqual(full([2], 7, opts).tolist(), [7, 7]);
    assert.deepEqual(tensor([-1.7, 2.9], opts).to('int32').tolist(), [-1, 2]); // truncation, as PyTorch
    assert.throws(() => tensor([[1, 2], [3]], opts), /ragged/);
  });

  test(`${name}: views share storage; reshape copies only when strides do not allow a view`, () => {
    const t = arange(24, undefined, 1, { ...opts, dtype: 'float32' }).reshape(2, 3, 4);
    const p = t.permute(2, 0, 1);
    assert.equal(p.storage, t.storage);
    assert.deepEqual(p.strides, [1, 12, 4]);
    assert.equal(t.reshape(6, 4).storage, t.storage);
    assert.equal(t.transpose(0, 1).reshape(3, 2, 2, 2).storage, t.storage, 'splitting an axis of a permuted view is a view');
    const merged = t.transpose(1, 2).reshape(2, 12);
    assert.notEqual(merged.storage, t.storage, 'merging non-adjacent axes must copy');
    assert.deepEqual(merged.select(0, 0).tolist(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    const s = t.slice(2, 1, 4, 2);
    assert.equal(s.storage, t.storage);
    assert.deepEqual(s.tolist(), [[[1, 3], [5, 7], [9, 11]], [[13, 15], [17, 19], [21, 23]]]);
    assert.equal(t.expand(5, 2, 3, 4).strides[0], 0);
    assert.deepEqual(t.select(1, -1).unsqueeze(0).shape, [1, 2, 4]);
    assert.deepEqual(t.flatten(1).shape, [2, 12]);
    assert.equal(t.contiguous(), t);
  });

  test(`${name}: gradients accumulate, flow through views, and stop at detach and noGrad`, () => {
    const x = tensor([[1, 2], [3, 4]], { ...opts, requiresGrad: true });
    x.T.mul(x.T).sum().backward();
    assert.deepEqual(x.grad!.tolist(), [[2, 4], [6, 8]]);
    x.slice(1, 0, 1).sum().backward();
    assert.deepEqual(x.grad!.tolist(), [[3, 4], [7, 8]], 'second backward accumulates');
    x.zeroGrad();
    const y = x.mul(2);
    const z = y.detach().mul(y).sum();
    z.backward();
    assert.deepEqual(x.grad!.tolist(), [[4, 8], [12, 16]], 'detached factor is a constant');
    const w = noGrad(() => x.mul(3));
    assert.equal(w.requiresGrad, false);
    assert.equal(w.gradFn, null);
    // a tensor used twice collects both paths
    const a = tensor([3], { ...opts, requiresGrad: true });
    a.mul(a).add(a).sum().backward();
    assert.deepEqual(a.grad!.tolist(), [7]);
  });

  test(`${name}: the graph is freed after backward unless retained`, () => {
    const x = tensor([1, 2, 3], { ...opts, requiresGrad: true });
    const y = x.exp().sum();
    y.backward();
    assert.throws(() => y.backward(), /already freed/);
    const kept = x.exp().sum();
    kept.backward(undefined, { retainGraph: true });
    kept.backward();
    assert.ok(Math.abs(x.grad!.toArray()[0]! - 3 * Math.E) < 1e-5);
  });

  test(`${name}: bad input names the op and the shapes`, () => {
    const a = zeros([2, 3], opts);
    const b = zeros([4], opts);
    assert.throws(() => a.add(b), /add: shapes \[2,3\] and \[4\] cannot be broadcast/);
    assert.throws(() => a.matmul(zeros([2, 3], opts)), /matmul: shapes \[2,3\] and \[2,3\] cannot be multiplied/);
    assert.throws(() => a.reshape(4, 2), /reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/);
    assert.throws(() => a.permute(0, 0), /permute/);
    assert.throws(() => a.sum(2), /sum: axis 2 is out of range for a 2-d tensor/);
    assert.throws(() => a.select(0, 5), /select: index 5 is out of range/);
    assert.throws(() => embedding(zeros([5, 2], opts), tensor([1, 7], { ...opts, dtype: 'int32' })), /index 7 is out of range for a dimension of size 5/);
    assert.throws(() => embedding(zeros([5, 2], opts), tensor([1.5], opts)), /indices must be int32 or int64, got float32/);
    assert.throws(() => gather(zeros([2, 3], opts), 1, tensor([[0]], { ...opts, dtype: 'int32' })), /gather: index \[1,1\] must match input \[2,3\]/);
    assert.throws(() => crossEntropy(zeros([2, 3], opts), tensor([0, 3], { ...opts, dtype: 'int32' })), /target 3 is out of range for 3 classes/);
    assert.throws(() => crossEntropy(zeros([2, 3], opts), tensor([0], { ...opts, dtype: 'int32' })), /target \[1\] must be \[2\]/);
    assert.throws(() => layerNorm(zeros([2, 3], opts), ones([4], opts), null), /layerNorm: weight \[4\] must be \[3\]/);
    assert.throws(() => linear(zeros([2, 3], opts), zeros([4, 5], opts)), /linear: input \[2,3\] does not fit weight \[4,5\]/);
    const q = zeros([1, 2, 3, 4], opts);
    assert.throws(() => scaledDotProductAttention(q, zeros([1, 2, 3, 5], opts), q), /attention: q \[1,2,3,4\], k \[1,2,3,5\]/);
    assert.throws(() => concat([a, b]), /concat/);
    const d = zeros([2], opts);
    d.dispose();
    assert.throws(() => d.add(1), /use of a disposed tensor \[2\]/);
    assert.throws(() => d.toArray(), /disposed/);
    assert.throws(() => zeros([2], { ...opts, dtype: 'int32' }).setRequiresGrad(), /only float tensors can require grad/);
    assert.throws(() => zeros([2, 2], opts).setRequiresGrad().mul(2).backward(), /a gradient is needed for a non-scalar tensor/);
  });

  test(`${name}: seeded randomness is reproducible`, () => {
    manualSeed(42);
    const a = randn([100], opts).toArray();
    manualSeed(42);
    const b = randn([100], opts).toArray();
    assert.deepEqual(a, b);
    const g = new Generator(1);
    const state = g.getState();
    const first = [g.normal(), g.uniform(), g.normal()];
    g.setState(state);
    assert.deepEqual([g.normal(), g.uniform(), g.normal()], first);
    const many = randn([20000], { ...opts, generator: new Generator(3) }).toArray();
    const mean = many.reduce((s, v) => s + v, 0) / many.length;
    const std = Math.sqrt(many.reduce((s, v) => s + (v - mean) ** 2, 0) / many.length);
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(std - 1) < 0.03, `normal mean ${mean} std ${std}`);
  });
}

