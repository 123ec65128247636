// The MPI communicator on real ranks: mpi_worker.ts under mpirun checks every operation against
// direct computations, on Open MPI's shared-memory transport and on TCP (the path that runs across
// machines take), with 2 ranks and with 3 (sums of more than two terms, rings of three).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpiAddonPath } from '../../src/dist/mpi.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'mpi_worker.js');

function skipReason(): string | undefined {
  const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return 'mpirun is not installed: run scripts/install-mpi.sh, then npm rebuild, to run the MPI tests';
  }
  if (!existsSync(mpiAddonPath())) {
    return `the MPI addon is not built (${mpiAddonPath()}): run npm rebuild (or scripts/install-mpi.sh first) to run the MPI tests`;
  }
  return undefined;
}

const skip = skipReason();

function mpirun(ranks: number, mca: string[], mode: string, dir: string): { status: number | null; stdout: string; output: string } {
  // Open MPI refuses to run as root without --allow-run-as-root (CI runs as root).
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const args = [...root, '--oversubscribe', ...mca, '-n', String(ranks), process.execPath, worker];
  const run = spawnSync('mpirun', args, {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, GLIMPSE_MPI_WORKER: mode, GLIMPSE_MPI_TEST_DIR: dir, GLIMPSE_NUM_THREADS: '1' },
  });
  const output = `mpirun ${args.join(' ')}\n${run.stdout}\n${run.stderr}`;
  // A job that hangs is killed by the timeout and fails here.
  assert.equal(run.error, undefined, output);
  return { status: run.status, stdout: run.stdout, output };
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
