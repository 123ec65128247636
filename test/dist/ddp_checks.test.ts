// DataParallel's checks that need no MPI: a stand-in communicator plays a second rank whose
// gathered data is what the test says, so mismatches are reported as they would be on real ranks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataParallel, type Communicator } from '../../src/dist/index.js';
import { tensor, type Tensor } from '../../src/tensor/index.js';

/** Rank 0 of two; rank 1 sends what `other` makes of rank 0's tensor; broadcast changes nothing. */
function twoRanks(other: (t: Tensor) => Tensor): Communicator {
  const unused = () => Promise.reject(new Error('not used by these tests'));
  return {
    transport: 'stand-in', rank: 0, worldSize: 2, localRank: 0, localSize: 2, busySeconds: 0,
    allReduce: (t) => Promise.resolve(t),
    reduceScatter: unused,
    broadcast: (t) => Promise.resolve(t),
    allGather: (t) => Promise.resolve([t, other(t)]),
    barrier: () => Promise.resolve(),
    send: unused,
    recv: unused,
    sendRecv: unused,
    close: () => {},
  };
}

function model(): [string, Tensor][] {
  return [
    ['w', tensor([[1, 2], [3, 4]], { requiresGrad: true })],
    ['b', tensor([0.5, -0.5], { requiresGrad: true })],
  ];
}

test('checkParameters names the first tensor whose checksum differs, and the rank', async () => {
  // Rank 1's description equals rank 0's; its checksums differ in the second tensor.
  const comm = twoRanks((t) => {
    if (t.dtype !== 'float64') return t;
    const sums = Float64Array.from(t.data() as Float64Array);
    sums[1]! += 1e-3;
    return tensor(sums);
  });
  await assert.rejects(DataParallel.create(comm, model(), [], { checkParameters: true }), /after the broadcast, b on rank 1 differs from rank 0's/);
  // Without the debug mode no checksum is gathered.
  (await DataParallel.create(comm, model(), [])).close();
});

test('a model described differently on another rank is an error naming the difference', async () => {
  const comm = twoRanks((t) => {
    const text = new TextDecoder().decode(t.data() as Uint8Array).replace('parameter b [2]', 'parameter b [3]');
    return tensor(new TextEncoder().encode(text));
  });
  await assert.rejects(DataParallel.create(comm, model(), []), /rank 1 has parameter b \[3\] float32 where rank 0 has parameter b \[2\] float32/);
  const fewer = twoRanks((t) => {
    const list = JSON.parse(new TextDecoder().decode(t.data() as Uint8Array)) as string[];
    return tensor(new TextEncoder().encode(JSON.stringify(list.slice(0, 1))));
  });
  await assert.rejects(DataParallel.create(fewer, model(), []), /rank 1 lacks parameter b \[2\] float32 that rank 0 has/);
});

test('bad options and inputs are errors that name them', async () => {
  const comm = twoRanks((t) => t);
  await assert.rejects(DataParallel.create(comm, model(), [], { bucketCapMB: 0 }), /bucketCapMB must be a positive number of MB, got 0/);
  await assert.rejects(DataParallel.create(comm, model(), [], { firstBucketCapMB: Number.NaN }), /firstBucketCapMB must be a positive/);
  const [w] = model();
  await assert.rejects(DataParallel.create(comm, [w!, ['again', w![1]]], []), /again is the same tensor as an earlier parameter or buffer/);
  const double = tensor(new Float64Array([1, 2]), { requiresGrad: true });
  await assert.rejects(DataParallel.create(comm, [['d', double]], []), /parameter d is float64; only float32 parameters/);
});

test('close() removes the hooks: later backward passes launch nothing', async () => {
  const params = model();
  const ddp = await DataParallel.create(twoRanks((t) => t), params, []);
  const [[, w], [, b]] = params as [[string, Tensor], [string, Tensor]];
  w.sum().add(b.sum()).backward();
  assert.equal(ddp.stats.buckets, 1);
  await ddp.synchronize();
  ddp.close();
  w.sum().add(b.sum()).backward();
  assert.equal(ddp.stats.buckets, 1);
  await assert.rejects(ddp.synchronize(), /synchronize\(\) after close\(\)/);
});
