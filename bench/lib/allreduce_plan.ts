// What bench/allreduce.ts hands its mpirun workers (bench/workers/allreduce_*) and how they answer.

/** Rank 0 of a worker prints its result as one line: this prefix, then JSON (WorkerResult). */
export const RESULT_PREFIX = 'ALLREDUCE_RESULT ';

/** One message size of the plan: its bytes, and the all-reduces timed per repeat. */
export interface PlanItem {
  bytes: number;
  iters: number;
}

export interface WorkerResult {
  library: string;
  /** The library's own version string, and the MPI library's. */
  version?: string;
  mpi?: string;
  worldSize: number;
  /** Per size, each repeat's seconds per all-reduce, the slowest rank's. */
  results: { bytes: number; iters: number; seconds: number[] }[];
}

/** The plan as the workers' command-line argument: "BYTES:ITERS,BYTES:ITERS,...". */
export function formatPlan(plan: readonly PlanItem[]): string {
  return plan.map((p) => `${p.bytes}:${p.iters}`).join(',');
}

export function parsePlan(text: string): PlanItem[] {
  return text.split(',').map((item) => {
    const [bytes, iters] = item.split(':').map(Number);
    if (!Number.isInteger(bytes) || bytes! < 4 || bytes! % 4 !== 0 || !Number.isInteger(iters) || iters! < 1) {
      throw new Error(`allreduce plan: bad item '${item}' (want BYTES:ITERS, BYTES a positive multiple of 4)`);
    }
    return { bytes: bytes!, iters: iters! };
  });
}
