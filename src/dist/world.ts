// Which MPI job this process belongs to. A process that mpirun, srun or `glimpse launch` started
// finds its rank in the environment the launcher sets; joining that job (MPI_Init) is then
// implicit, as with Horovod. A process on its own is a world of one and needs no MPI.
import type { Communicator } from './communicator.js';
import { mpiCommunicator } from './mpi.js';

/** This process's place in a job as its launcher describes it. */
export interface LaunchEnvironment {
  /** Which launcher's variables were read ('open-mpi', 'pmix', 'mpich', 'slurm'). */
  launcher: string;
  rank: number;
  worldSize: number;
  /** Among the ranks on this machine; null when the launcher does not say. */
  localRank: number | null;
  localSize: number | null;
}

// Launchers and the variables they set, most specific first (Open MPI also sets PMIX_RANK; srun
// sets SLURM_* also for a job step that runs one task).
const LAUNCHERS: readonly { launcher: string; rank: string; size: string; localRank?: string; localSize?: string }[] = [
  { launcher: 'open-mpi', rank: 'OMPI_COMM_WORLD_RANK', size: 'OMPI_COMM_WORLD_SIZE', localRank: 'OMPI_COMM_WORLD_LOCAL_RANK', localSize: 'OMPI_COMM_WORLD_LOCAL_SIZE' },
  { launcher: 'mpich', rank: 'PMI_RANK', size: 'PMI_SIZE', localRank: 'MPI_LOCALRANKID', localSize: 'MPI_LOCALNRANKS' },
  { launcher: 'pmix', rank: 'PMIX_RANK', size: 'PMIX_SIZE' },
  { launcher: 'slurm', rank: 'SLURM_PROCID', size: 'SLURM_NTASKS', localRank: 'SLURM_LOCALID' },
];

function intVar(env: NodeJS.ProcessEnv, name: string | undefined): number | null {
  if (name === undefined || env[name] === undefined) return null;
  const v = Number(env[name]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`glimpse: the launcher's ${name}=${env[name]} is not a rank or count`);
  return v;
}

/**
 * How many tasks of the Slurm job step run on this node: SLURM_STEP_TASKS_PER_NODE (else
 * SLURM_TASKS_PER_NODE) lists the counts of the step's nodes in order, runs written as `2(x3)`,
 * and SLURM_NODEID is this node's place in that list. Null when the variables are absent or
 * not in that form.
 */
function slurmTasksOnThisNode(env: NodeJS.ProcessEnv): number | null {
  const list = env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE;
  const node = intVar(env, 'SLURM_NODEID');
  if (list === undefined || node === null) return null;
  let first = 0;
  for (const run of list.split(',')) {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(run.trim());
    if (!m) return null;
    const nodes = m[2] === undefined ? 1 : Number(m[2]);
    if (node < first + nodes) return Number(m[1]);
    first += nodes;
  }
  return null;
}

/** The job this process was launched into, read from the launcher's variables; null when none set them. */
export function launchEnvironment(env: NodeJS.ProcessEnv = process.env): LaunchEnvironment | null {
  for (const l of LAUNCHERS) {
    const rank = intVar(env, l.rank);
    const worldSize = intVar(env, l.size);
    if (rank === null || worldSize === null) continue;
    if (rank >= worldSize) throw new Error(`glimpse: the launcher says rank ${rank} of ${worldSize} (${l.rank}, ${l.size})`);
    const localSize = l.launcher === 'slurm' ? slurmTasksOnThisNode(env) : intVar(env, l.localSize);
    return { launcher: l.launcher, rank, worldSize, localRank: intVar(env, l.localRank), localSize };
  }
  return null;
}

/**
 * The communicator of this process's job: MPI's world when a launcher started this process as one
 * of several ranks, or when `distributed` asks for it; null for a process on its own. Throws,
 * naming scripts/install-mpi.sh, when MPI is needed and not installed.
 */
export function joinWorld(opts: { distributed?: boolean } = {}): Communicator | null {
  const launched = launchEnvironment();
  if (!opts.distributed && (launched === null || launched.worldSize <= 1)) return null;
  return mpiCommunicator();
}
