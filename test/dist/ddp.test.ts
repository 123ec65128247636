// DataParallel on real ranks: ddp_worker.ts under mpirun checks the broadcast, the averaged
// gradients against a one-process computation, bucketing, noSync, frozen and unused parameters,
// and a model mismatch across ranks; on shared memory and on TCP, and the averaging on 3 ranks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpirun, mpiSkipReason } from './mpirun.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'ddp_worker.js');

const skip = mpiSkipReason();

function run(ranks: number, mode: string, mca: string[] = []): void {
  const job = mpirun(ranks, worker, [], { mca, env: { GLIMPSE_DDP_WORKER: mode } });
  assert.equal(job.status, 0, job.output);
  for (let r = 0; r < ranks; r++) assert.match(job.stdout, new RegExp(`^rank ${r}/${ranks}: \\d+ checks passed$`, 'm'), job.output);
}

test('DataParallel on 2 ranks, shared memory', { skip }, () => {
  run(2, 'main');
});

test('DataParallel on 2 ranks, TCP', { skip }, () => {
  run(2, 'main', ['--mca', 'btl', 'tcp,self']);
});

test('DataParallel averages over 3 ranks', { skip }, () => {
  run(3, 'equivalence');
});
