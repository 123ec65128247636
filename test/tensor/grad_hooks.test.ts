// Post-accumulate-grad hooks: called once per backward per leaf, after .grad holds that pass's
// contribution, in the order backward finishes the leaves (the reverse of their use).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/tensor/tensor.js';
import type { Tensor } from '../../src/tensor/tensor.js';

test('a hook fires once per backward, after .grad holds the sum over every use of the leaf', () => {
  const w = tensor([1, 2], { requiresGrad: true });
  const seen: number[][] = [];
  w.registerPostAccumulateGradHook((t) => seen.push(t.grad!.toArray()));
  // w is used twice: d/dw sum(w*3 + w*w) = 3 + 2w.
  w.mul(3).add(w.mul(w)).sum().backward();
  assert.deepEqual(seen, [[5, 7]]);
  // A second backward accumulates into .grad; the hook sees the accumulated value.
  w.mul(10).sum().backward();
  assert.deepEqual(seen, [[5, 7], [15, 17]]);
});

test('hooks fire in the reverse order of use; leaves the backward does not reach do not fire', () => {
  const a = tensor([1], { requiresGrad: true });
  const b = tensor([2], { requiresGrad: true });
  const c = tensor([3], { requiresGrad: true });
  const unused = tensor([4], { requiresGrad: true });
  const order: string[] = [];
  for (const [name, t] of [['a', a], ['b', b], ['c', c], ['unused', unused]] as [string, Tensor][]) {
    t.registerPostAccumulateGradHook((x) => {
      assert.equal(x, t);
      assert.notEqual(x.grad, null, `${name}'s grad is set when its hook runs`);
      order.push(name);
    });
  }
  // a, then b, then c: a chain whose backward reaches c first and a last.
  a.mul(2).add(b).mul(3).add(c).sum().backward();
  assert.deepEqual(order, ['c', 'b', 'a']);
  assert.equal(unused.grad, null);
});

test('remove() unregisters a hook; the others stay', () => {
  const w = tensor([1, 2], { requiresGrad: true });
  let first = 0;
  let second = 0;
  const h = w.registerPostAccumulateGradHook(() => first++);
  w.registerPostAccumulateGradHook(() => second++);
  w.sum().backward();
  h.remove();
  w.sum().backward();
  assert.deepEqual([first, second], [1, 2]);
});

test('only leaves that require grad take hooks', () => {
  assert.throws(() => tensor([1]).registerPostAccumulateGradHook(() => {}), /does not require grad/);
  const y = tensor([1], { requiresGrad: true }).mul(2);
  assert.throws(() => y.registerPostAccumulateGradHook(() => {}), /only leaf tensors/);
});
