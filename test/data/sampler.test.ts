// EpochSampler: PyTorch DistributedSampler's semantics (strided assignment, padding by wrapping
// around or dropping the tail, the same count on every rank) and a global batch position.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EpochSampler } from '../../src/data/sampler.js';

const ranks = (count: number, worldSize: number, options: { batchSize: number; shuffle?: boolean; dropLast?: boolean; seed?: number }) =>
  Array.from({ length: worldSize }, (_, rank) => new EpochSampler(count, { ...options, rank, worldSize }, 'test'));

test('without dropLast an epoch is padded by wrapping around, so every rank reads as many items and batches', () => {
  // 10 items over 4 ranks: padded to 12, positions 10 and 11 repeat items 0 and 1 of the order.
  const samplers = ranks(10, 4, { batchSize: 2, shuffle: false, dropLast: false });
  assert.deepEqual(samplers.map((s) => [...s.epochOrder(0)]), [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]);
  for (const s of samplers) {
    assert.equal(s.perRank, 3);
    assert.equal(s.batchesPerEpoch, 2); // one full batch and one of a single item, on every rank
    assert.deepEqual([...s.indices({ epoch: 0, batch: 1 })].length, 1);
  }

  // Shuffled: the padding is the start of the epoch's own permutation, which repeats on other ranks.
  const shuffled = ranks(10, 4, { batchSize: 3, seed: 7, dropLast: false });
  const single = new EpochSampler(10, { batchSize: 3, seed: 7, dropLast: false }, 'test').epochOrder(2);
  assert.deepEqual([...single].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i));
  const padded = [...single, single[0]!, single[1]!];
  shuffled.forEach((s, r) => assert.deepEqual([...s.epochOrder(2)], padded.filter((_, p) => p % 4 === r), `rank ${r}`));

  // Padding may need the epoch more than once (PyTorch repeats it): 3 items over 8 ranks.
  assert.deepEqual(ranks(3, 8, { batchSize: 1, shuffle: false, dropLast: false }).map((s) => s.epochOrder(0)[0]), [0, 1, 2, 0, 1, 2, 0, 1]);
});

test('with dropLast the tail that does not divide among the ranks is dropped, and the last short batch', () => {
  const samplers = ranks(10, 4, { batchSize: 2, seed: 3 });
  const order = new EpochSampler(10, { batchSize: 2, seed: 3 }, 'test').epochOrder(1);
  samplers.forEach((s, r) => {
    assert.equal(s.perRank, 2);
    assert.equal(s.batchesPerEpoch, 1);
    assert.deepEqual([...s.epochOrder(1)], [order[r]!, order[r + 4]!]); // strided from r
  });
  const read = samplers.flatMap((s) => [...s.epochOrder(1)]);
  assert.deepEqual(read.sort((a, b) => a - b), [...order.subarray(0, 8)].sort((a, b) => a - b));
  assert.deepEqual(ranks(11, 2, { batchSize: 2, shuffle: false, dropLast: true }).map((s) => s.batchesPerEpoch), [2, 2]); // 5 per rank
});

test('a batch position is global: the k-th batches of all ranks are the same items at every world size', () => {
  const G = 12;
  const count = 101; // 8 full global batches and a remainder
  for (const dropLast of [true, false]) {
    const at = (worldSize: number, epoch: number, batch: number) =>
      ranks(count, worldSize, { batchSize: G / worldSize, seed: 5, dropLast }).flatMap((s) => [...s.indices({ epoch, batch })]).sort((a, b) => a - b);
    for (const worldSize of [1, 2, 3, 4, 6]) {
      assert.equal(ranks(count, worldSize, { batchSize: G / worldSize, dropLast: true })[0]!.batchesPerEpoch, 8);
    }
    for (const epoch of [0, 3]) {
      const order = new EpochSampler(count, { batchSize: G, seed: 5 }, 'test').epochOrder(epoch);
      for (let batch = 0; batch < 8; batch++) {
        const expected = [...order.subarray(batch * G, (batch + 1) * G)].sort((a, b) => a - b);
        for (const worldSize of [1, 2, 3, 4, 6]) assert.deepEqual(at(worldSize, epoch, batch), expected, `world size ${worldSize}, epoch ${epoch}, batch ${batch}`);
      }
    }
  }
});
