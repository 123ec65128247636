// Which job a process belongs to, read from the variables each launcher sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchEnvironment } from '../../src/dist/index.js';

test('launchEnvironment reads Open MPI, MPICH, PMIx and Slurm variables, most specific first', () => {
  assert.equal(launchEnvironment({}), null);
  assert.deepEqual(launchEnvironment({
    OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2', PMIX_RANK: '1', PMIX_SIZE: '4',
  }), { launcher: 'open-mpi', rank: 1, worldSize: 4, localRank: 1, localSize: 2 });
  assert.deepEqual(launchEnvironment({ PMI_RANK: '2', PMI_SIZE: '3', MPI_LOCALRANKID: '0', MPI_LOCALNRANKS: '1' }),
    { launcher: 'mpich', rank: 2, worldSize: 3, localRank: 0, localSize: 1 });
  assert.deepEqual(launchEnvironment({ PMIX_RANK: '0', PMIX_SIZE: '2' }), { launcher: 'pmix', rank: 0, worldSize: 2, localRank: null, localSize: null });
  // A rank without a size is no job.
  assert.equal(launchEnvironment({ OMPI_COMM_WORLD_RANK: '0' }), null);
});

test("launchEnvironment finds a Slurm step's tasks on this node from its tasks-per-node list", () => {
  const slurm = { SLURM_PROCID: '5', SLURM_NTASKS: '7', SLURM_LOCALID: '1' };
  // Nodes 0..2 run 2 tasks each, node 3 runs 1.
  for (const [node, local] of [['0', 2], ['2', 2], ['3', 1]] as const) {
    const job = launchEnvironment({ ...slurm, SLURM_STEP_TASKS_PER_NODE: '2(x3),1', SLURM_NODEID: node });
    assert.deepEqual(job, { launcher: 'slurm', rank: 5, worldSize: 7, localRank: 1, localSize: local }, `node ${node}`);
  }
  // The allocation's list when the step's is absent; the step's when both are set.
  assert.equal(launchEnvironment({ ...slurm, SLURM_TASKS_PER_NODE: '4,3', SLURM_NODEID: '1' })?.localSize, 3);
  assert.equal(launchEnvironment({ ...slurm, SLURM_STEP_TASKS_PER_NODE: '1(x7)', SLURM_TASKS_PER_NODE: '4,3', SLURM_NODEID: '1' })?.localSize, 1);
  // Unknown when the list is missing, malformed, or does not reach this node.
  assert.equal(launchEnvironment(slurm)?.localSize, null);
  assert.equal(launchEnvironment({ ...slurm, SLURM_STEP_TASKS_PER_NODE: '2(3)', SLURM_NODEID: '0' })?.localSize, null);
  assert.equal(launchEnvironment({ ...slurm, SLURM_STEP_TASKS_PER_NODE: '2(x2)', SLURM_NODEID: '2' })?.localSize, null);
});

test('launchEnvironment refuses variables that are not ranks or counts', () => {
  assert.throws(() => launchEnvironment({ OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '2' }), /OMPI_COMM_WORLD_RANK=x is not a rank or count/);
  assert.throws(() => launchEnvironment({ PMI_RANK: '2', PMI_SIZE: '2' }), /the launcher says rank 2 of 2 \(PMI_RANK, PMI_SIZE\)/);
});
