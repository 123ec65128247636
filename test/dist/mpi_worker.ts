// One rank of the MPI tests (mpi.test.ts starts it under mpirun with GLIMPSE_MPI_WORKER=1): runs
// every operation of the MPI communicator on data that each rank can compute for every rank, and
// checks the results against direct computations. Prints one line per rank when all pass; an
// assertion failure exits non-zero, which fails the mpirun job.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mpiCommunicator, shareRows } from '../../src/dist/index.js';
import { tensor } from '../../src/tensor/index.js';

/** Rank r's data for a case: a deterministic generator (mulberry32) seeded by both. */
function data(rank: number, caseId: number, n: number, scale = 10): Float32Array {
  let s = (rank * 7919 + caseId * 104729 + 1) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (Math.abs(actual[i]! - e) > 1e-5 * Math.max(1, Math.abs(e))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${e}`);
    }
  }
}

async function main(): Promise<void> {
  const c = mpiCommunicator();
  const { rank, worldSize: n } = c;
  const ranks = [...Array(n).keys()];
  let checks = 0;

  // Rank, world size and local rank match what mpirun told this process.
  assert.equal(c.transport, 'mpi');
  assert.equal(rank, Number(process.env.OMPI_COMM_WORLD_RANK));
  assert.equal(n, Number(process.env.OMPI_COMM_WORLD_SIZE));
  assert.equal(c.localRank, Number(process.env.OMPI_COMM_WORLD_LOCAL_RANK));
  assert.equal(c.localSize, Number(process.env.OMPI_COMM_WORLD_LOCAL_SIZE));
  checks++;

  const sizes = [0, 1, 7, 1_000_003];
  let caseId = 0;
  for (const size of sizes) {
    for (const op of ['sum', 'avg', 'max'] as const) {
      caseId++;
      const inputs = ranks.map((r) => data(r, caseId, size));
      const expected = new Float64Array(size);
      for (let i = 0; i < size; i++) {
        const values = inputs.map((x) => x[i]!);
        const sum = values.reduce((a, b) => a + b, 0);
        expected[i] = op === 'max' ? Math.max(...values) : op === 'avg' ? sum / n : sum;
      }
      const t = tensor(data(rank, caseId, size));
      const returned = await c.allReduce(t, op);
      assert.equal(returned, t, 'allReduce resolves to its tensor');
      close(t.data() as Float32Array, expected, `allReduce ${op} of ${size}`);
      checks++;
    }
  }

  // reduceScatter: shapes whose first dimension splits unevenly (or leaves some ranks nothing).
  for (const shape of [[0], [1], [5], [7, 3], [100_003]]) {
    for (const op of ['sum', 'avg', 'max'] as const) {
      caseId++;
      const size = shape.reduce((a, b) => a * b, 1);
      const rowSize = size / Math.max(shape[0]!, 1);
      const inputs = ranks.map((r) => data(r, caseId, size));
      const rows = shareRows(shape[0]!, n);
      const first = rows.slice(0, rank).reduce((a, b) => a + b, 0) * rowSize;
      const expected = new Float64Array(rows[rank]! * rowSize);
      for (let i = 0; i < expected.length; i++) {
        const values = inputs.map((x) => x[first + i]!);
        const sum = values.reduce((a, b) => a + b, 0);
        expected[i] = op === 'max' ? Math.max(...values) : op === 'avg' ? sum / n : sum;
      }
      const share = await c.reduceScatter(tensor(data(rank, caseId, size), { shape }), op);
      assert.deepEqual(share.shape, [rows[rank]!, ...shape.slice(1)], `reduceScatter ${op} of [${shape}]: shape`);
      close(share.data() as Float32Array, expected, `reduceScatter ${op} of [${shape}]`);
      checks++;
    }
  }

  // In place on a view with an offset: only the view's elements change.
  {
    caseId++;
    const base = tensor(data(rank, caseId, 12), { shape: [4, 3] });
    const before = base.data() as Float32Array;
    await c.allReduce(base.narrow(0, 1, 2), 'sum');
    const after = base.data() as Float32Array;
    const all = ranks.map((r) => data(r, caseId, 12));
    for (let i = 0; i < 12; i++) {
      const expected = i >= 3 && i < 9 ? all.reduce((a, x) => a + x[i]!, 0) : before[i]!;
      close([after[i]!], [expected], `allReduce of a narrowed view, element ${i}`);
    }
    checks++;
  }

  // Broadcast from every root, float32 and int32.
  for (const root of ranks) {
    for (const size of sizes) {
      caseId++;
      const t = tensor(data(rank, caseId, size));
      await c.broadcast(t, root);
      close(t.data() as Float32Array, data(root, caseId, size), `broadcast of ${size} from ${root}`);
      const ints = tensor(Int32Array.from(data(rank, caseId, size, 1e6), Math.round));
      await c.broadcast(ints, root);
      assert.deepEqual(ints.data(), Int32Array.from(data(root, caseId, size, 1e6), Math.round), `int32 broadcast from ${root}`);
      checks += 2;
    }
  }

  // allGather: equal sizes, unequal sizes (one rank sends no rows), int32, scalars.
  {
    caseId++;
    const gathered = await c.allGather(tensor(data(rank, caseId, 15), { shape: [3, 5] }));
    assert.equal(gathered.length, n);
    for (const r of ranks) {
      assert.deepEqual(gathered[r]!.shape, [3, 5]);
      close(gathered[r]!.data() as Float32Array, data(r, caseId, 15), `allGather from ${r}`);
    }
    checks++;
    caseId++;
    const rows = (r: number): number => (r === 1 ? 0 : 2 * r + 1);
    const unequal = await c.allGather(tensor(data(rank, caseId, rows(rank) * 3), { shape: [rows(rank), 3] }));
    for (const r of ranks) {
      assert.deepEqual(unequal[r]!.shape, [rows(r), 3], `allGather of unequal sizes: rank ${r}'s shape`);
      close(unequal[r]!.data() as Float32Array, data(r, caseId, rows(r) * 3), `allGather of unequal sizes from ${r}`);
    }
    checks++;
    const ints = await c.allGather(tensor(Int32Array.from({ length: rank + 1 }, (_, i) => rank * 100 + i)));
    for (const r of ranks) {
      assert.equal(ints[r]!.dtype, 'int32');
      assert.deepEqual(ints[r]!.toArray(), Array.from({ length: r + 1 }, (_, i) => r * 100 + i));
    }
    checks++;
    const scalars = await c.allGather(tensor(rank * 2.5));
    assert.deepEqual(scalars.map((s) => [s.shape.length, s.item()]), ranks.map((r) => [0, r * 2.5]));
    checks++;
  }

  await c.barrier();
  checks++;

  // send/recv: rank 0 exchanges with every other rank, one direction then the other.
  for (const size of [0, 7, 1_000_003]) {
    caseId++;
    if (rank === 0) {
      for (const r of ranks.slice(1)) {
        await c.send(tensor(data(0, caseId, size)), r);
        const got = await c.recv(tensor(new Float32Array(size)), r);
        close(got.data() as Float32Array, data(r, caseId, size), `recv of ${size} from ${r}`);
      }
    } else {
      const got = await c.recv(tensor(new Float32Array(size)), 0);
      close(got.data() as Float32Array, data(0, caseId, size), `recv of ${size} from 0`);
      await c.send(tensor(data(rank, caseId, size)), 0);
    }
    checks++;
  }

  // sendRecv around the ring, both directions: every rank sends and receives at once.
  for (const size of [0, 1, 1_000_003]) {
    for (const step of [1, n - 1]) {
      caseId++;
      const dest = (rank + step) % n;
      const source = (rank - step + n) % n;
      const got = await c.sendRecv(tensor(data(rank, caseId, size)), dest, tensor(new Float32Array(size)), source);
      close(got.data() as Float32Array, data(source, caseId, size), `sendRecv of ${size} from ${source}`);
      checks++;
    }
  }

  // The event loop runs while a collective is in progress: rank 0 starts a barrier, and only
  // after its event loop has turned does it write the file that the other ranks wait for before
  // they enter the barrier. A barrier that held the event loop would never let it write the file.
  {
    const go = join(process.env.GLIMPSE_MPI_TEST_DIR!, 'go');
    if (rank === 0) {
      const pending = c.barrier();
      await new Promise((resolve) => setImmediate(resolve));
      writeFileSync(go, '');
      await pending;
    } else {
      while (!existsSync(go)) await new Promise((resolve) => setTimeout(resolve, 5));
      await c.barrier();
    }
    checks++;
  }

  // busySeconds grows by the communication thread's time in each operation, which lies within the
  // time from queueing the operation to its Promise settling (nothing else is queued meanwhile).
  {
    const t = tensor(data(rank, 999, 1_000_003));
    const before = c.busySeconds;
    const start = performance.now();
    await c.allReduce(t, 'sum');
    const waited = (performance.now() - start) / 1000;
    const spent = c.busySeconds - before;
    assert.ok(spent > 0, `busySeconds grew by ${spent} over an all-reduce of 4 MB`);
    assert.ok(spent <= waited + 1e-3, `busySeconds grew by ${spent} s over an all-reduce that was awaited for ${waited} s`);
    checks++;
  }

  // Errors that need no other rank: they are thrown before anything is queued.
  await assert.rejects(c.allReduce(tensor(new Int32Array(3))), /float32 tensors only/);
  await assert.rejects(c.broadcast(tensor([1, 2]), n), new RegExp(`rank ${n} is not in this world of ${n}`));
  await assert.rejects(c.send(tensor([[1, 2], [3, 4]]).transpose(), 0), /not contiguous; pass t.contiguous\(\)/);
  checks++;

  c.close();
  await assert.rejects(c.barrier(), /the communicator is closed/);
  console.log(`rank ${rank}/${n}: ${checks} checks passed`);
}

/** Rank 0 fails while the other ranks wait for it in a barrier: the job must end, not hang. */
async function failOnRankZero(): Promise<void> {
  const c = mpiCommunicator();
  if (c.rank === 0) throw new Error('rank 0 fails on purpose');
  await c.barrier();
}

// node --test runs every file under test/; this one does its work only when mpirun starts it.
if (process.env.GLIMPSE_MPI_WORKER === '1') await main();
if (process.env.GLIMPSE_MPI_WORKER === 'fail-rank-0') await failOnRankZero();

