// One rank of `npm run bench -- allreduce` (bench/allreduce.ts starts it under mpirun): times
// Glimpse's MPI communicator (src/dist) doing in-place float32 sum all-reduces. The plan and the
// timing policy are the same as allreduce_mpi4py.py's, which times the same MPI from Python.
//   node allreduce_glimpse.js BYTES:ITERS[,BYTES:ITERS...] REPEATS
// Rank 0 prints one line, RESULT_PREFIX + JSON (WorkerResult): per size, each repeat's seconds per
// all-reduce, the slowest rank's (a collective is done when its last rank is).
import { mpiCommunicator } from '../../src/dist/index.js';
import { tensor } from '../../src/tensor/index.js';
import { parsePlan, RESULT_PREFIX, type WorkerResult } from '../lib/allreduce_plan.js';

async function main(): Promise<void> {
  const [planText, repeatsText] = process.argv.slice(2);
  const plan = parsePlan(planText ?? '');
  const repeats = Number(repeatsText);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`allreduce worker: REPEATS must be a positive integer, got '${repeatsText}'`);
  const comm = mpiCommunicator();

  // The bench measures a reduction only if one happens: every rank sends rank + 1.
  const probe = tensor(new Float32Array(3).fill(comm.rank + 1));
  await comm.allReduce(probe, 'sum');
  const expected = (comm.worldSize * (comm.worldSize + 1)) / 2;
  for (const v of probe.data() as Float32Array) {
    if (v !== expected) throw new Error(`allreduce worker: rank ${comm.rank} got ${v} from a sum all-reduce, expected ${expected}`);
  }

  const results: WorkerResult['results'] = [];
  for (const { bytes, iters } of plan) {
    // Zeros: an in-place sum repeated over the iterations would take any other values to
    // infinity, and float addition costs the same for every normal value.
    const t = tensor(new Float32Array(bytes / 4));
    for (let i = 0; i < iters; i++) await comm.allReduce(t, 'sum'); // warm-up: one untimed repeat
    const seconds = new Float32Array(repeats);
    for (let r = 0; r < repeats; r++) {
      await comm.barrier();
      // From before the call to the Promise's resolution: the cost a caller sees.
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; i++) await comm.allReduce(t, 'sum');
      seconds[r] = Number(process.hrtime.bigint() - t0) / 1e9 / iters;
    }
    await comm.allReduce(tensor(seconds), 'max');
    results.push({ bytes, iters, seconds: [...seconds] });
  }
  if (comm.rank === 0) {
    const out: WorkerResult = { library: 'glimpse', version: process.version, worldSize: comm.worldSize, results };
    console.log(RESULT_PREFIX + JSON.stringify(out));
  }
  comm.close();
}

await main();
