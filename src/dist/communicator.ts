// The communication layer's interface: what distributed training needs from a transport. MPI
// implements it (mpi.ts); a GPU transport (NCCL) would implement the same interface.
import type { Tensor } from '../tensor/index.js';

/** How allReduce combines the ranks' tensors: element-wise sum, mean over ranks, or maximum. */
export type ReduceOp = 'sum' | 'avg' | 'max';

/**
 * A group of processes (ranks) that exchange tensors. Every operation returns a Promise and runs
 * off the JavaScript thread, so the event loop keeps running while it is in progress.
 *
 * As in MPI, every rank must issue the same collectives in the same order. Operations run one at a
 * time in the order they were issued on a rank; a tensor given to one must not be read or written
 * until its Promise settles. Tensors must be contiguous and in host memory; the operations are not
 * recorded by autograd.
 */
export interface Communicator {
  /** The transport's name ('mpi'). */
  readonly transport: string;
  /** This process's index in the group, 0 .. worldSize-1. */
  readonly rank: number;
  readonly worldSize: number;
  /** This process's index among the ranks on the same machine, and how many those are. */
  readonly localRank: number;
  readonly localSize: number;
  /**
   * Seconds the transport has spent running this rank's operations (for MPI: in MPI calls on the
   * communication thread), summed over the operations settled so far. Set against the time
   * JavaScript waited for them, it gives the share of communication hidden behind other work.
   */
  readonly busySeconds: number;
  /** Combines every rank's float32 tensor of the same shape into each rank's tensor, in place. */
  allReduce(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /**
   * Reduces every rank's float32 tensor of the same shape and returns this rank's share of the
   * result: the first dimension split as evenly as it goes, the first (rows mod worldSize) ranks
   * taking one row more (so a share may have 0 rows).
   */
  reduceScatter(t: Tensor, op?: ReduceOp): Promise<Tensor>;
  /** Copies root's tensor into every rank's tensor of the same shape and dtype, in place. */
  broadcast(t: Tensor, root?: number): Promise<Tensor>;
  /**
   * Every rank's tensor, indexed by rank. The tensors may differ in their first dimension (not in
   * the others, nor in dtype); concat(result, 0) is the gathered batch.
   */
  allGather(t: Tensor): Promise<Tensor[]>;
  /** Resolves when every rank has reached it. */
  barrier(): Promise<void>;
  /** Sends t to rank dest, whose recv of a tensor of the same size receives it. */
  send(t: Tensor, dest: number): Promise<void>;
  /** Receives into t (in place) what rank source sends. */
  recv(t: Tensor, source: number): Promise<Tensor>;
  /**
   * Sends `send` to dest and receives into `recv` from source at once, as one exchange, so that
   * ranks swapping tensors around a ring cannot deadlock (as two blocking sends could).
   */
  sendRecv(send: Tensor, dest: number, recv: Tensor, source: number): Promise<Tensor>;
  /** Ends the transport (MPI_Finalize); the communicator cannot be used afterwards. */
  close(): void;
}
