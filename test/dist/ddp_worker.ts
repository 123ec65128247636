// One rank of the DataParallel tests (ddp.test.ts starts it under mpirun with GLIMPSE_DDP_WORKER
// set to a case group). Each rank can compute every rank's data, so the expected averaged
// gradients are computed here in one process, on a replica of rank 0's initial model, and compared
// with what DataParallel produced. Prints one line per rank when all checks pass; an assertion
// failure exits non-zero, which fails the mpirun job.
import assert from 'node:assert/strict';
import { DataParallel, mpiCommunicator, type Communicator, type DataParallelOptions } from '../../src/dist/index.js';
import { Linear, Module } from '../../src/nn/index.js';
import { Generator, randn, tensor, type Tensor } from '../../src/tensor/index.js';

interface NetOptions {
  hidden?: number;
  /** Freeze the first layer (as a locked tower). */
  frozenFirst?: boolean;
}

class Net extends Module {
  readonly a: Linear;
  readonly b: Linear;
  readonly c: Linear;
  /** Used unless the loss is told not to. */
  readonly extra: Linear;
  readonly shift: Tensor;

  constructor(seed: number, o: NetOptions = {}) {
    super();
    const generator = new Generator(seed);
    const hidden = o.hidden ?? 7;
    this.a = this.module('a', new Linear(5, hidden, { generator }));
    this.b = this.module('b', new Linear(hidden, 3, { generator }));
    this.c = this.module('c', new Linear(3, 2, { generator }));
    this.extra = this.module('extra', new Linear(2, 2, { generator }));
    this.shift = this.buffer('shift', randn([2], { generator }));
    if (o.frozenFirst) for (const p of this.a.parameters()) p.setRequiresGrad(false);
  }

  loss(x: Tensor, useExtra = true): Tensor {
    let y = this.c.forward(this.b.forward(this.a.forward(x).relu()).tanh());
    if (useExtra) y = this.extra.forward(y);
    return y.add(this.shift).square().mean();
  }
}

const INIT_SEED = 100;

/** Rank r's micro-batch k of a case. */
function batch(caseId: number, rank: number, k = 0): Tensor {
  return randn([4, 5], { generator: new Generator(1000 * caseId + 10 * rank + k) });
}

/** Each parameter's gradient (null where none) after backward over the given micro-batches, from zero. */
function gradsOf(net: Net, micro: { x: Tensor; useExtra?: boolean }[]): Map<string, Float32Array | null> {
  for (const p of net.parameters()) p.zeroGrad();
  for (const { x, useExtra } of micro) net.loss(x, useExtra).backward();
  return new Map(net.namedParameters().map(([name, p]) => [name, p.grad ? (p.grad.data() as Float32Array) : null]));
}

/** The average over ranks of each parameter's gradient, a rank without one contributing zeros. */
function averageGrads(perRank: Map<string, Float32Array | null>[]): Map<string, Float64Array | null> {
  const out = new Map<string, Float64Array | null>();
  for (const name of perRank[0]!.keys()) {
    const gs = perRank.map((m) => m.get(name)!);
    const some = gs.find((g) => g !== null);
    if (!some) {
      out.set(name, null);
      continue;
    }
    const avg = new Float64Array(some.length);
    for (const g of gs) if (g) g.forEach((v, i) => (avg[i]! += v / gs.length));
    out.set(name, avg);
  }
  return out;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (Math.abs(actual[i]! - e) > 1e-5 * Math.max(1, Math.abs(e))) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${e}`);
  }
}

function checkGrads(net: Net, expected: Map<string, Float64Array | null>, what: string): void {
  for (const [name, p] of net.namedParameters()) {
    const e = expected.get(name)!;
    if (e === null) assert.equal(p.grad, null, `${what}: ${name} has a gradient where none was expected`);
    else {
      assert.ok(p.grad, `${what}: ${name} has no gradient`);
      close(p.grad.data() as Float32Array, e, `${what}: ${name}`);
    }
  }
}

async function ddpOf(c: Communicator, net: Net, opts: DataParallelOptions = {}): Promise<DataParallel> {
  return DataParallel.create(c, net.namedParameters(), net.namedBuffers(), opts);
}

/** One synchronised step of every rank on its own data equals the average of the per-rank gradients. */
async function equivalence(c: Communicator, ranks: number[], opts: DataParallelOptions, caseId: number): Promise<DataParallel> {
  const net = new Net(INIT_SEED + c.rank);
  const ddp = await ddpOf(c, net, opts);
  const reference = new Net(INIT_SEED);
  for (const step of [0, 1]) {
    const expected = averageGrads(ranks.map((r) => gradsOf(reference, [{ x: batch(caseId + step, r) }])));
    for (const p of net.parameters()) p.zeroGrad();
    const before = ddp.stats.buckets;
    net.loss(batch(caseId + step, c.rank)).backward();
    // Every parameter is used, so every bucket became ready, and was launched, during backward.
    assert.equal(ddp.stats.buckets - before, ddp.bucketNames.length, 'buckets launched during backward');
    await ddp.synchronize();
    checkGrads(net, expected, `step ${step}`);
  }
  return ddp;
}

async function main(c: Communicator): Promise<number> {
  const ranks = [...Array(c.worldSize).keys()];
  let checks = 0;

  // The broadcast: rank 1 started from other weights (and another buffer) and now holds rank 0's.
  {
    const net = new Net(INIT_SEED + c.rank);
    const reference = new Net(INIT_SEED);
    if (c.rank > 0) assert.notDeepEqual(net.a.weight.toArray(), reference.a.weight.toArray());
    const ddp = await ddpOf(c, net, { checkParameters: true });
    for (const [[name, t], [, r]] of [...net.namedParameters(), ...net.namedBuffers()].map((e, i) => [e, [...reference.namedParameters(), ...reference.namedBuffers()][i]!] as const)) {
      assert.deepEqual(t.toArray(), r.toArray(), `${name} after the broadcast`);
    }
    ddp.close();
    checks++;
  }

  // Equivalence with the default buckets (one bucket: the model is small).
  {
    const ddp = await equivalence(c, ranks, {}, 1);
    assert.equal(ddp.bucketNames.length, 1);
    assert.equal(ddp.stats.steps, 2);
    assert.ok(ddp.stats.allReduceSeconds > 0, `allReduceSeconds ${ddp.stats.allReduceSeconds}`);
    ddp.close();
    checks++;
  }

  // Tiny caps: several buckets in reverse registration order, each launched during backward.
  {
    // 0.0001 MB = 26 floats: a.weight (35 floats) is larger than the cap, a bucket of its own.
    const ddp = await equivalence(c, ranks, { bucketCapMB: 0.0001, firstBucketCapMB: 0.00005 }, 3);
    const names = ddp.bucketNames;
    assert.ok(names.length >= 4, `buckets: ${JSON.stringify(names)}`);
    const registration = new Net(0).namedParameters().map(([n]) => n);
    assert.deepEqual(names.flat(), [...registration].reverse(), 'buckets hold the parameters in reverse registration order');
    assert.ok(names.some((b) => b.length === 1 && b[0] === 'a.weight'), `a.weight alone: ${JSON.stringify(names)}`);
    // The first bucket is capped at 0.00005 MB = 13 floats: extra.weight (4), extra.bias (2), c.bias (2) fit; c.weight (6) does not.
    assert.deepEqual(names[0], ['extra.bias', 'extra.weight', 'c.bias']);
    // Every rank has the same buckets (MPI needs the same collectives in the same order).
    const all = await c.allGather(tensor(new TextEncoder().encode(JSON.stringify(names))));
    for (const t of all) assert.equal(new TextDecoder().decode(t.data() as Uint8Array), JSON.stringify(names));
    assert.ok(ddp.stats.bytes > 0);
    ddp.close();
    checks++;
  }

  // Gradient accumulation: two micro-batches inside noSync, then one synchronised; the result is
  // the average over ranks of the accumulated gradients. Nothing is communicated inside noSync.
  {
    const net = new Net(INIT_SEED + c.rank);
    const ddp = await ddpOf(c, net, { bucketCapMB: 0.0001 });
    const reference = new Net(INIT_SEED);
    const micro = (r: number) => [0, 1, 2].map((k) => ({ x: batch(5, r, k) }));
    const expected = averageGrads(ranks.map((r) => gradsOf(reference, micro(r))));
    const mine = micro(c.rank);
    const result = await ddp.noSync(async () => {
      net.loss(mine[0]!.x).backward();
      await Promise.resolve();
      net.loss(mine[1]!.x).backward();
      return 'inner';
    });
    assert.equal(result, 'inner');
    assert.equal(ddp.stats.buckets, 0, 'no bucket launched inside noSync');
    net.loss(mine[2]!.x).backward();
    assert.equal(ddp.stats.buckets, ddp.bucketNames.length, 'the synchronised backward launched every bucket');
    await ddp.synchronize();
    checkGrads(net, expected, 'accumulated');

    // Accumulated inside noSync only: synchronize launches every bucket itself.
    for (const p of net.parameters()) p.zeroGrad();
    await ddp.noSync(() => net.loss(mine[0]!.x).backward());
    await ddp.synchronize();
    checkGrads(net, averageGrads(ranks.map((r) => gradsOf(reference, [micro(r)[0]!]))), 'noSync only');

    // A second synchronised backward in a step is an error; the step still completes on every rank.
    for (const p of net.parameters()) p.zeroGrad();
    net.loss(mine[0]!.x).backward();
    assert.throws(() => net.loss(mine[1]!.x).backward(), /one synchronised backward per step/);
    await ddp.synchronize();
    // A noSync backward after the synchronised one changes launched buckets: an error as well.
    for (const p of net.parameters()) p.zeroGrad();
    net.loss(mine[0]!.x).backward();
    assert.throws(() => ddp.noSync(() => net.loss(mine[1]!.x).backward()), /after its bucket's all-reduce had started/);
    await ddp.synchronize();
    ddp.close();
    checks++;
  }

  // A frozen layer is in no bucket and keeps grad null; the rest is averaged.
  {
    const net = new Net(INIT_SEED + c.rank, { frozenFirst: true });
    const ddp = await ddpOf(c, net, { bucketCapMB: 0.0001 });
    assert.ok(!ddp.bucketNames.flat().some((n) => n.startsWith('a.')), JSON.stringify(ddp.bucketNames));
    const reference = new Net(INIT_SEED, { frozenFirst: true });
    const expected = averageGrads(ranks.map((r) => gradsOf(reference, [{ x: batch(6, r) }])));
    assert.equal(expected.get('a.weight'), null);
    net.loss(batch(6, c.rank)).backward();
    await ddp.synchronize();
    checkGrads(net, expected, 'frozen');
    ddp.close();
    checks++;
  }

  // Unused parameters. `extra` is left out of the forward: an error naming it, on every rank.
  {
    const net = new Net(INIT_SEED + c.rank);
    const ddp = await ddpOf(c, net, { bucketCapMB: 0.0001 });
    net.loss(batch(7, c.rank), false).backward();
    await assert.rejects(ddp.synchronize(), /parameter extra\.(weight|bias) received no gradient in this step .*find_unused_parameters: true/);
    // The failed step was reset: a step that uses everything goes through.
    for (const p of net.parameters()) p.zeroGrad();
    net.loss(batch(7, c.rank), true).backward();
    await ddp.synchronize();
    ddp.close();
    checks++;
  }
  {
    // With findUnusedParameters: `extra` used on no rank keeps grad null; when only the last rank
    // uses it, every rank gets that rank's gradient over the world size.
    const net = new Net(INIT_SEED + c.rank);
    const ddp = await ddpOf(c, net, { findUnusedParameters: true, bucketCapMB: 0.0001 });
    const reference = new Net(INIT_SEED);
    const last = c.worldSize - 1;
    for (const [caseId, userOfExtra] of [[8, -1], [9, last]] as const) {
      const expected = averageGrads(ranks.map((r) => gradsOf(reference, [{ x: batch(caseId, r), useExtra: r === userOfExtra }])));
      assert.equal(expected.get('extra.weight') === null, userOfExtra < 0);
      for (const p of net.parameters()) p.zeroGrad();
      net.loss(batch(caseId, c.rank), c.rank === userOfExtra).backward();
      await ddp.synchronize();
      checkGrads(net, expected, `find unused, extra used by rank ${userOfExtra}`);
    }
    ddp.close();
    checks++;
  }

  // A model whose shapes differ on one rank: an error on every rank naming it, not a hang.
  {
    const net = new Net(INIT_SEED, { hidden: c.rank === 1 ? 8 : 7 });
    await assert.rejects(ddpOf(c, net), /the ranks' models differ \(rank 1 has parameter a\.weight \[8,5\] float32 where rank 0 has parameter a\.weight \[7,5\] float32/);
    checks++;
  }
  return checks;
}

async function threeRanks(c: Communicator): Promise<number> {
  const ranks = [...Array(c.worldSize).keys()];
  const ddp = await equivalence(c, ranks, { bucketCapMB: 0.0001 }, 11);
  ddp.close();
  return 1;
}

// node --test runs every file under test/; this one does its work only when mpirun starts it.
const mode = process.env.GLIMPSE_DDP_WORKER;
if (mode === 'main' || mode === 'equivalence') {
  const c = mpiCommunicator();
  const checks = mode === 'main' ? await main(c) : await threeRanks(c);
  c.close();
  console.log(`rank ${c.rank}/${c.worldSize}: ${checks} checks passed`);
}
