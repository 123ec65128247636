// The MPI communicator on real ranks: mpi_worker.ts under mpirun checks every operation against
// direct computations, on Open MPI's shared-memory transport and on TCP (the path that runs across
// machines take), with 2 ranks and with 3 (sums of more than two terms, rings of three).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpirun as mpirunScript, mpiSkipReason } from './mpirun.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'mpi_worker.js');

const skip = mpiSkipReason();

function mpirun(ranks: number, mca: string[], mode: string, dir: string) {
  return mpirunScript(ranks, worker, [], { mca, env: { GLIMPSE_MPI_WORKER: mode, GLIMPSE_MPI_TEST_DIR: dir } });
}

function runRanks(ranks: number, mca: string[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'glimpse-mpi-'));
  try {
    const run = mpirun(ranks, mca, '1', dir);
    const output = run.output;
    assert.equal(run.status, 0, output);
    for (let r = 0; r < ranks; r++) {
      assert.match(run.stdout, new RegExp(`^rank ${r}/${ranks}: \\d+ checks passed$`, 'm'), output);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('MPI: every operation on 2 ranks, shared memory', { skip }, () => {
  runRanks(2, []);
});

test('MPI: every operation on 2 ranks, TCP', { skip }, () => {
  runRanks(2, ['--mca', 'btl', 'tcp,self']);
});

test('MPI: every operation on 3 ranks', { skip }, () => {
  runRanks(3, []);
});

test('MPI: a rank that fails while the others wait in a collective ends the job', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'glimpse-mpi-'));
  try {
    const run = mpirun(2, [], 'fail-rank-0', dir);
    assert.notEqual(run.status, 0, run.output);
    assert.match(run.output, /rank 0 fails on purpose/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
