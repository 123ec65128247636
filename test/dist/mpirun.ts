// Running a test worker under a real mpirun: the skip reason when MPI is not installed or the
// addon is not built, and one job run with its output kept for assertion messages.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mpiAddonPath } from '../../src/dist/mpi.js';

/** Why the MPI tests cannot run here, or undefined when they can. */
export function mpiSkipReason(): string | undefined {
  const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return 'mpirun is not installed: run scripts/install-mpi.sh, then npm rebuild, to run the MPI tests';
  }
  if (!existsSync(mpiAddonPath())) {
    return `the MPI addon is not built (${mpiAddonPath()}): run npm rebuild (or scripts/install-mpi.sh first) to run the MPI tests`;
  }
  return undefined;
}

/**
 * Set in the jobs mpirun() starts: node --test runs every .js file under a test folder, workers
 * included, and a worker run that way (without it) does nothing.
 */
export const WORKER_ENV = 'GLIMPSE_TEST_WORKER';

/** Whether this process is a worker that mpirun() started. */
export const isWorker = (): boolean => process.env[WORKER_ENV] === '1';

/** Open MPI refuses to run as root without --allow-run-as-root (CI runs as root). */
export const MPIRUN_ROOT_FLAGS: readonly string[] = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];

export interface MpirunOptions {
  /** Extra mpirun flags (e.g. ['--mca', 'btl', 'tcp,self']). */
  mca?: readonly string[];
  /** Environment added to this process's (GLIMPSE_NUM_THREADS is 1 unless set here). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface MpirunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The command line, stdout and stderr together, for assertion messages. */
  output: string;
}

/** Runs `node script ...args` on `ranks` ranks under mpirun; a job that hangs fails at the timeout. */
export function mpirun(ranks: number, script: string, args: readonly string[] = [], o: MpirunOptions = {}): MpirunResult {
  const argv = [...MPIRUN_ROOT_FLAGS, '--oversubscribe', ...(o.mca ?? []), '-n', String(ranks), process.execPath, script, ...args];
  const run = spawnSync('mpirun', argv, {
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 180_000,
    env: { ...process.env, GLIMPSE_NUM_THREADS: '1', [WORKER_ENV]: '1', ...o.env },
  });
  const output = `mpirun ${argv.join(' ')}\n${run.stdout}\n${run.stderr}`;
  assert.equal(run.error, undefined, output);
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, output };
}
