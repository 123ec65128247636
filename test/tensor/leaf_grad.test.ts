// Leaf gradients: dense, owned by the leaf, whatever layout the incoming gradient has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/tensor/tensor.js';

test('a gradient that reaches a leaf transposed is stored dense, with the right values', () => {
  const w = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
  const c = tensor([[1, 10], [100, 1000], [1e4, 1e5]]);
  // d/dw sum(w^T * c) = c^T, which arrives as a transposed view of c-shaped data.
  w.transpose(0, 1).mul(c).sum().backward();
  assert.ok(w.grad!.isContiguous());
  assert.deepEqual(w.grad!.tolist(), [[1, 100, 1e4], [10, 1000, 1e5]]);
  w.transpose(0, 1).mul(c).sum().backward();
  assert.deepEqual(w.grad!.tolist(), [[2, 200, 2e4], [20, 2000, 2e5]], 'a second backward accumulates');
});

test('leaves that receive the same gradient tensor each own a copy', () => {
  const a = tensor([1, 2], { requiresGrad: true });
  const b = tensor([3, 4], { requiresGrad: true });
  a.add(b).mul(tensor([5, 7])).sum().backward(); // add hands one gradient tensor to both inputs
  assert.notEqual(a.grad!.storage, b.grad!.storage);
  assert.deepEqual(a.grad!.tolist(), [5, 7]);
  assert.deepEqual(b.grad!.tolist(), [5, 7]);
});
