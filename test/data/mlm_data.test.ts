// MLM data: packing documents into blocks, the 80/10/10 masking rule (statistics on 200k tokens),
// and the token batch loader's determinism, resumption, sharding and per-epoch reshuffling.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IGNORE_INDEX, type MaskingOptions, TokenBatchLoader, type TokenBatch, maskTokens, maskedEvalBatches, packSequences } from '../../src/data/mlm.js';
import { Generator } from '../../src/tensor/random.js';
import { rng } from '../helpers.js';

const CLS = 1;
const SEP = 2;
const MASK = 3;
const PAD = 0;

test('packSequences: [CLS] ids [SEP] per document, concatenated, cut into blocks, remainder dropped', () => {
  const words: Record<string, number> = { a: 10, b: 11, c: 12, d: 13, e: 14, f: 15 };
  const encode = (s: string): number[] => s.split(' ').filter((w) => w).map((w) => words[w]!);
  // The stream is 1 10 11 2 | 1 12 2 | 1 13 14 15 2 (12 tokens): two blocks of 5, two tokens dropped.
  assert.deepEqual([...packSequences(['a b', 'c', 'd e f'], encode, { contextLength: 5, clsId: CLS, sepId: SEP })], [1, 10, 11, 2, 1, 12, 2, 1, 13, 14]);
  assert.deepEqual([...packSequences(['a b', 'c', 'd e f'], encode, { contextLength: 4, clsId: CLS, sepId: SEP })], [1, 10, 11, 2, 1, 12, 2, 1, 13, 14, 15, 2]);
  // An empty document is [CLS] [SEP], as a tokenizer gives it.
  assert.deepEqual([...packSequences(['', 'a'], encode, { contextLength: 2, clsId: CLS, sepId: SEP })], [1, 2, 1, 10]);
});

test('packSequences invariants on random documents', () => {
  const r = rng(5);
  const docs = Array.from({ length: 300 }, () => Array.from({ length: Math.floor(r() * 40) }, () => 4 + Math.floor(r() * 500)));
  const texts = docs.map((_, i) => String(i));
  const T = 17;
  const packed = packSequences(texts, (s) => docs[Number(s)]!, { contextLength: T, clsId: CLS, sepId: SEP });
  const total = docs.reduce((n, d) => n + d.length + 2, 0);
  assert.equal(packed.length, Math.floor(total / T) * T);
  assert.ok(total - packed.length < T, 'more than a partial block was dropped');
  // Reading the blocks back: every kept document is [CLS] its ids [SEP], in order, up to the cut.
  let k = 0;
  for (const d of docs) {
    for (const id of [CLS, ...d, SEP]) {
      if (k === packed.length) break;
      assert.equal(packed[k], id, `position ${k}`);
      k++;
    }
  }
  assert.equal(k, packed.length);
  // Growing the buffer past its first allocation keeps every id.
  const long = packSequences(['x'], () => Array.from({ length: 200000 }, (_, i) => 4 + (i % 97)), { contextLength: 1000, clsId: CLS, sepId: SEP });
  assert.equal(long.length, 200000);
  assert.equal(long[0], CLS);
  assert.equal(long[199999], 4 + (199998 % 97));
});

test('packSequences rejects a corpus without a full block and bad ids', () => {
  const opts = { contextLength: 8, clsId: CLS, sepId: SEP };
  assert.throws(() => packSequences(['a', 'b'], () => [5], opts), /2 documents give 6 tokens with \[CLS\] and \[SEP\], not one block of 8/);
  assert.throws(() => packSequences(['a'], () => [5, -1, 6, 7, 8, 9, 10], opts), /encode gave -1 at position 1 of document 0/);
  assert.throws(() => packSequences(['a'], () => [5, 1.5], opts), /encode gave 1.5/);
  assert.throws(() => packSequences(['a'], () => [5], { ...opts, contextLength: 1 }), /contextLength must be an integer in \[2/);
});

const V = 1000;
const MASKING: MaskingOptions = { vocabSize: V, maskId: MASK, specialIds: [PAD, CLS, SEP, MASK] };

/** Random ids with a special token at every 10th position. */
function randomIds(n: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, (_, i) => (i % 10 === 0 ? [PAD, CLS, SEP][i % 3]! : 4 + Math.floor(r() * (V - 4))));
}

test('maskTokens: 15% of non-special tokens selected, then 80% [MASK], 10% random, 10% unchanged', () => {
  const n = 200000;
  const ids = randomIds(n, 1);
  const { inputIds, labels } = maskTokens(ids, { ...MASKING, generator: new Generator(7) });
  let candidates = 0;
  let selected = 0;
  let masked = 0;
  let unchanged = 0;
  let randomSum = 0;
  let randomCount = 0;
  for (let i = 0; i < n; i++) {
    const special = i % 10 === 0;
    if (labels[i] === IGNORE_INDEX) {
      assert.equal(inputIds[i], ids[i], `position ${i} was changed but not selected`);
    } else {
      assert.ok(!special, `special token selected at ${i}`);
      assert.equal(labels[i], ids[i], `label at ${i} is not the original token`);
      selected++;
      if (inputIds[i] === MASK) masked++;
      else if (inputIds[i] === ids[i]) unchanged++;
      else {
        randomSum += inputIds[i]!;
        randomCount++;
      }
      assert.ok(inputIds[i]! >= 0 && inputIds[i]! < V);
    }
    if (!special) candidates++;
  }
  // Tolerances of 5 binomial standard deviations.
  const within = (count: number, trials: number, p: number, what: string): void => {
    const sd = Math.sqrt(trials * p * (1 - p));
    assert.ok(Math.abs(count - trials * p) < 5 * sd, `${what}: ${count} of ${trials}, expected ${(trials * p).toFixed(0)} ± ${(5 * sd).toFixed(0)}`);
  };
  within(selected, candidates, 0.15, 'selected');
  // A random replacement hits [MASK] or the original token 1 time in 1000 each.
  within(masked, selected, 0.8 + 0.1 / V, '[MASK]');
  within(unchanged, selected, 0.1 + 0.1 / V, 'unchanged');
  within(randomCount, selected, 0.1 * (1 - 2 / V), 'random');
  // Random ids are uniform over [0, V): mean (V - 1) / 2, sd of the mean (V / sqrt(12)) / sqrt(count).
  const sdMean = V / Math.sqrt(12) / Math.sqrt(randomCount);
  assert.ok(Math.abs(randomSum / randomCount - (V - 1) / 2) < 5 * sdMean, `random ids average ${randomSum / randomCount}`);
});

test('maskTokens is a function of the generator state; other shares and bad inputs', () => {
  const ids = randomIds(5000, 2);
  const a = maskTokens(ids, { ...MASKING, generator: new Generator(3) });
  const b = maskTokens(ids, { ...MASKING, generator: new Generator(3) });
  const c = maskTokens(ids, { ...MASKING, generator: new Generator(4) });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.labels, c.labels);
  // Every non-special token selected and masked; or every one replaced at random.
  const all = maskTokens(ids, { ...MASKING, probability: 1, maskReplaceProbability: 1, randomReplaceProbability: 0, generator: new Generator(0) });
  for (let i = 0; i < ids.length; i++) assert.equal(all.inputIds[i], i % 10 === 0 ? ids[i] : MASK);
  const random = maskTokens(ids, { ...MASKING, probability: 1, maskReplaceProbability: 0, randomReplaceProbability: 1, generator: new Generator(0) });
  let same = 0;
  for (let i = 0; i < ids.length; i++) if (i % 10 !== 0 && random.inputIds[i] === ids[i]) same++;
  assert.ok(same < 20, `${same} tokens kept although all were replaced at random`);
  const none = maskTokens(ids, { ...MASKING, probability: 0, generator: new Generator(0) });
  assert.ok(none.labels.every((l) => l === IGNORE_INDEX));
  assert.deepEqual(none.inputIds, ids);

  const g = new Generator(0);
  assert.throws(() => maskTokens(Int32Array.of(5, 1000), { ...MASKING, generator: g }), /token 1000 at position 1 is outside the vocabulary \[0, 1000\)/);
  assert.throws(() => maskTokens(ids, { ...MASKING, maskId: 1000, generator: g }), /maskId must be an integer in \[0, 999\]/);
  assert.throws(() => maskTokens(ids, { ...MASKING, probability: 1.5, generator: g }), /probability must be in \[0, 1\]/);
  assert.throws(() => maskTokens(ids, { ...MASKING, maskReplaceProbability: 0.8, randomReplaceProbability: 0.3, generator: g }), /must be at most 1/);
  assert.throws(() => maskTokens(ids, { ...MASKING, specialIds: [-1], generator: g }), /a special id must be an integer/);
  assert.throws(() => maskTokens([1, 2] as unknown as Int32Array, { ...MASKING, generator: g }), /ids must be an Int32Array/);
});

const T = 8;
const BLOCKS = 103;
/** Packed ids whose block i is 4 + (8i .. 8i+7) mod 996: each block's content says which it is. */
const blocks = Int32Array.from({ length: BLOCKS * T }, (_, k) => 4 + (k % (V - 4)));

const ints = (b: TokenBatch): { inputIds: Int32Array; labels: Int32Array } => ({ inputIds: b.inputIds.data() as Int32Array, labels: b.labels.data() as Int32Array });

async function take(it: AsyncGenerator<TokenBatch>, n: number): Promise<TokenBatch[]> {
  const out: TokenBatch[] = [];
  for await (const b of it) {
    out.push(b);
    if (out.length === n) break;
  }
  return out;
}

test('TokenBatchLoader: batches of masked blocks, resumed identically, reshuffled each epoch', async () => {
  const loader = new TokenBatchLoader(blocks, { batchSize: 4, contextLength: T, masking: MASKING, seed: 11 });
  assert.equal(loader.batchesPerEpoch, 25); // 103 blocks, the last 3 dropped
  const run = await take(loader.batches(), 60);
  assert.deepEqual(run.slice(24, 27).map((b) => b.position), [{ epoch: 0, batch: 24 }, { epoch: 1, batch: 0 }, { epoch: 1, batch: 1 }]);
  for (const b of run.slice(0, 5)) {
    assert.deepEqual(b.inputIds.shape, [4, T]);
    assert.equal(b.inputIds.dtype, 'int32');
    assert.equal(b.labels.dtype, 'int32');
    const { inputIds, labels } = ints(b);
    b.keys.forEach((key, r) => {
      const block = Number(/^block:(\d+)$/.exec(key)![1]);
      for (let j = 0; j < T; j++) {
        const original = blocks[block * T + j]!;
        if (labels[r * T + j] === IGNORE_INDEX) assert.equal(inputIds[r * T + j], original);
        else assert.equal(labels[r * T + j], original);
      }
    });
  }
  // Resuming at (1, 7) gives what the uninterrupted run gave there, masks included.
  const resumed = await take(new TokenBatchLoader(blocks, { batchSize: 4, contextLength: T, masking: MASKING, seed: 11 }).batches({ epoch: 1, batch: 7 }), 20);
  resumed.forEach((b, k) => {
    const expected = run[25 + 7 + k]!;
    assert.deepEqual(b.position, expected.position);
    assert.deepEqual(b.keys, expected.keys);
    assert.deepEqual(ints(b), ints(expected));
  });
  // A new order each epoch, and a block gets new masks each epoch.
  const e0 = loader.epochOrder(0);
  const e1 = loader.epochOrder(1);
  assert.notDeepEqual([...e0], [...e1]);
  const sorted = (order: Int32Array): number[] => [...order].sort((x, y) => x - y);
  assert.deepEqual(sorted(e0), Array.from({ length: BLOCKS }, (_, i) => i));
  assert.deepEqual(sorted(e1), sorted(e0));
  let selected = 0;
  let differ = 0;
  const labelsOf = (epoch: number, order: Int32Array, block: number): Int32Array => {
    const k = order.indexOf(block);
    const r = k % 4;
    return ints(loader.batchAt({ epoch, batch: (k - r) / 4 })).labels.slice(r * T, (r + 1) * T);
  };
  let compared = 0;
  // The blocks served in both epochs (the last 3 of each order are dropped).
  for (const block of e0.slice(0, 100)) {
    if (e1.indexOf(block) >= 100) continue;
    compared++;
    const l0 = labelsOf(0, e0, block);
    const l1 = labelsOf(1, e1, block);
    selected += l0.filter((l) => l !== IGNORE_INDEX).length;
    if (l0.some((l, j) => l !== l1[j])) differ++;
  }
  // Identical 8-token masks in two epochs happen by chance about 1 time in 3.
  assert.ok(selected > 0 && differ > compared / 2, `only ${differ} of ${compared} blocks got new masks in a new epoch`);
  await loader.close();
  await assert.rejects(take(loader.batches(), 1), /batches\(\) after close\(\)/);
});

test('TokenBatchLoader: ranks take disjoint shards that cover an epoch, with the same masks as one rank', async () => {
  const worldSize = 3;
  const single = new TokenBatchLoader(blocks, { batchSize: 2, contextLength: T, masking: MASKING, seed: 5 });
  const seen = new Map<string, { inputIds: Int32Array; labels: Int32Array }>();
  for (let rank = 0; rank < worldSize; rank++) {
    const loader = new TokenBatchLoader(blocks, { batchSize: 2, contextLength: T, masking: MASKING, seed: 5, rank, worldSize });
    assert.equal(loader.batchesPerEpoch, 17); // 103 / 3 = 34 blocks per rank
    for (const b of await take(loader.batches(), loader.batchesPerEpoch)) {
      const { inputIds, labels } = ints(b);
      b.keys.forEach((key, r) => {
        assert.ok(!seen.has(key), `${key} is on two ranks`);
        seen.set(key, { inputIds: inputIds.slice(r * T, (r + 1) * T), labels: labels.slice(r * T, (r + 1) * T) });
      });
    }
  }
  assert.equal(seen.size, 102);
  // The ranks' blocks are the single loader's epoch (less its last block), masked the same way.
  const order = Int32Array.from(single.epochOrder(0));
  assert.deepEqual(new Set(seen.keys()), new Set([...order.slice(0, 102)].map((i) => `block:${i}`)));
  for (let batch = 0; batch < 10; batch++) {
    const b = single.batchAt({ epoch: 0, batch });
    const { inputIds, labels } = ints(b);
    b.keys.forEach((key, r) => assert.deepEqual(seen.get(key), { inputIds: inputIds.slice(r * T, (r + 1) * T), labels: labels.slice(r * T, (r + 1) * T) }, key));
  }
});

test('TokenBatchLoader without shuffling keeps the order and the last partial batch; bad options', async () => {
  const loader = new TokenBatchLoader(blocks, { batchSize: 10, contextLength: T, masking: MASKING, shuffle: false });
  assert.equal(loader.batchesPerEpoch, 11);
  const epoch = await take(loader.batches(), 11);
  assert.deepEqual(epoch.flatMap((b) => b.keys), Array.from({ length: BLOCKS }, (_, i) => `block:${i}`));
  assert.deepEqual(epoch[10]!.inputIds.shape, [3, T]);
  assert.throws(() => new TokenBatchLoader(blocks.subarray(0, 8 * T + 3), { batchSize: 2, contextLength: T, masking: MASKING }), /67 ids are not a whole number of blocks of 8/);
  assert.throws(() => new TokenBatchLoader(blocks, { batchSize: 200, contextLength: T, masking: MASKING }), /103 blocks of 8 tokens, 103 per rank: not one full batch of 200/);
  assert.throws(() => new TokenBatchLoader(blocks, { batchSize: 2, contextLength: T, masking: MASKING, rank: 2, worldSize: 2 }), /rank must be an integer in \[0, 1\]/);
  assert.throws(() => new TokenBatchLoader(blocks, { batchSize: 2, contextLength: T, masking: { ...MASKING, vocabSize: 0 } }), /vocabSize must be an integer/);
  await assert.rejects(take(loader.batches({ epoch: 0, batch: 11 }), 1), /from\.batch must be an integer in \[0, 10\]/);
});

test('maskedEvalBatches: every block once, in order, the same masks at every evaluation', () => {
  const evalSet = maskedEvalBatches(blocks, { batchSize: 16, contextLength: T, masking: MASKING, seed: 2 });
  assert.equal(evalSet.batchCount, 7);
  assert.equal(evalSet.blockCount, BLOCKS);
  const first = [...evalSet];
  const second = [...evalSet];
  assert.equal(first.length, 7);
  assert.deepEqual(first.flatMap((b) => b.keys), Array.from({ length: BLOCKS }, (_, i) => `block:${i}`));
  assert.deepEqual(first[6]!.labels.shape, [103 - 96, T]);
  first.forEach((b, k) => assert.deepEqual(ints(b), ints(second[k]!)));
  let selected = 0;
  for (const b of first) selected += ints(b).labels.filter((l) => l !== IGNORE_INDEX).length;
  assert.ok(Math.abs(selected - 0.15 * BLOCKS * T) < 5 * Math.sqrt(BLOCKS * T * 0.15 * 0.85), `${selected} selected`);
  const other = [...maskedEvalBatches(blocks, { batchSize: 16, contextLength: T, masking: MASKING, seed: 3 })];
  assert.notDeepEqual(ints(first[0]!).labels, ints(other[0]!).labels);
  assert.throws(() => maskedEvalBatches(blocks, { batchSize: 0, contextLength: T, masking: MASKING }), /batchSize must be an integer in \[1/);
});

test('TokenBatchLoader: a global batch of 12 read by 1, 2 or 4 ranks: the k-th batches of the ranks together are the same blocks, masked alike', async () => {
  const G = 12;
  const union = async (worldSize: number): Promise<Map<string, number[]>[]> => {
    const perRank = await Promise.all(Array.from({ length: worldSize }, async (_, rank) => {
      const loader = new TokenBatchLoader(blocks, { batchSize: G / worldSize, contextLength: T, masking: MASKING, seed: 5, rank, worldSize });
      assert.equal(loader.batchesPerEpoch, 8, `world size ${worldSize}`); // 96 of the 103 blocks in full global batches
      return take(loader.batches({ epoch: 1, batch: 0 }), 10); // into epoch 2
    }));
    return perRank[0]!.map((_, k) => {
      const blocksOf = new Map<string, number[]>();
      for (const batches of perRank) {
        const b = batches[k]!;
        const { inputIds } = ints(b);
        b.keys.forEach((key, r) => blocksOf.set(key, [...inputIds.slice(r * T, (r + 1) * T)]));
      }
      return blocksOf;
    });
  };
  const sorted = (m: Map<string, number[]>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const single = (await union(1)).map(sorted);
  assert.ok(single.every((b) => b.length === G));
  assert.deepEqual((await union(2)).map(sorted), single);
  assert.deepEqual((await union(4)).map(sorted), single);
});
