// Data-parallel gradient synchronisation with PyTorch DDP's semantics (its reducer, simplified).
//
// At creation every rank's parameters and buffers are compared by name, shape and dtype (an
// all-gather of their description, so a mismatch is an error on every rank, not a hang), then
// broadcast from rank 0 in place; in debug mode (checkParameters) a float64 checksum of each is
// all-gathered and compared.
//
// Trainable parameters (requiresGrad) are grouped into buckets in reverse registration order,
// the order in which backward roughly finishes their gradients: the first bucket holds at most
// firstBucketCapMB, the others bucketCapMB, and a parameter larger than the cap is a bucket of its
// own. Each bucket owns one flat float32 buffer. Frozen parameters are in no bucket and never
// communicated.
//
// A post-accumulate-grad hook on each trainable parameter marks it ready when backward has
// finished its gradient. In a synchronised backward (outside noSync) a bucket whose parameters are
// all ready is launched at once, from inside backward: its parameters' gradients are copied into
// its buffer and allReduce(buffer, 'avg') is queued to the communicator, whose thread runs it while
// backward goes on. Bucket i is launched only after buckets 0..i-1, so that every rank issues the
// collectives in the same order, as MPI requires. Backward passes inside noSync only record which
// parameters got gradients (gradient accumulation): synchronize() launches, in order, the buckets
// the last backward did not, then waits for all and writes the averages into p.grad.
//
// A gradient must not change after its bucket was launched: a hook that fires for a launched
// bucket, or a second synchronised backward in a step, is an error. A trainable parameter that got
// no gradient in the step is an error naming it (after the step's collectives complete, so the
// other ranks do not hang), unless findUnusedParameters: then it contributes zeros, and a max
// all-reduce of one used flag per parameter tells which parameters no rank used; those keep
// grad === null, as in a single process.
//
// stats.allReduceSeconds is the communicator's busySeconds (time its thread spent in MPI) over each
// step, from the first bucket launch to the end of synchronize(); stats.exposedSeconds is the time
// synchronize() took to launch the remaining buckets and wait. The share of communication hidden
// behind backward is 1 - exposedSeconds / allReduceSeconds.
import { Tensor, tensor, zeros } from '../tensor/index.js';
import type { Communicator } from './communicator.js';
import { allGatherJSON } from './gather_json.js';

export interface DataParallelOptions {
  /** Bucket size cap in MB (default 25, PyTorch's bucket_cap_mb). */
  bucketCapMB?: number;
  /** The first bucket's cap in MB (default 1): the first all-reduce starts early in backward. */
  firstBucketCapMB?: number;
  /** Parameters that may get no gradient in a step (default false: such a parameter is an error naming it). */
  findUnusedParameters?: boolean;
  /** After the broadcast, check by checksum that every rank holds the same parameters and buffers (debug mode). */
  checkParameters?: boolean;
}

/** Communication statistics since creation. */
export interface DataParallelStats {
  /** synchronize() calls completed. */
  steps: number;
  /** Bucket all-reduces launched. */
  buckets: number;
  /** Bytes all-reduced in buckets (per rank, before the reduction). */
  bytes: number;
  /** Seconds the communicator's thread spent during the steps' communication. */
  allReduceSeconds: number;
  /** Seconds synchronize() spent launching the remaining buckets and waiting for all. */
  exposedSeconds: number;
}

type Named = readonly (readonly [string, Tensor])[];

interface Slot {
  readonly name: string;
  readonly param: Tensor;
  /** Index among the trainable parameters (registration order). */
  readonly index: number;
  readonly bucket: number;
  /** The parameter's place in its bucket's buffer, shaped as the parameter. */
  readonly view: Tensor;
}

interface Bucket {
  readonly slots: Slot[];
  readonly buffer: Tensor;
  /** Parameters marked ready in this step's synchronised backward. */
  ready: number;
  inFlight: Promise<unknown> | null;
}

const MB = 1024 * 1024;

function describe(params: Named, buffers: Named): string[] {
  return [
    ...params.map(([name, t]) => `parameter ${name} [${t.shape}] ${t.dtype}${t.requiresGrad ? '' : ' frozen'}`),
    ...buffers.map(([name, t]) => `buffer ${name} [${t.shape}] ${t.dtype}`),
  ];
}

function checkCap(value: number, what: string): number {
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`DataParallel: ${what} must be a positive number of MB, got ${value}`);
  return value;
}

/** Gradient synchronisation for one model replica per rank (PyTorch's DistributedDataParallel). */
export class DataParallel {
  readonly stats: DataParallelStats = { steps: 0, buckets: 0, bytes: 0, allReduceSeconds: 0, exposedSeconds: 0 };
  private readonly slots: Slot[] = [];
  private readonly buckets: Bucket[] = [];
  private readonly hooks: { remove(): void }[] = [];
  private readonly findUnused: boolean;
  private syncEnabled = true;
  private closed = false;
  // This step's state.
  private used: boolean[] = [];
  private readyInSync: boolean[] = [];
  private nextBucket = 0;
  private busyAtFirstLaunch: number | null = null;

  private constructor(
    private readonly comm: Communicator,
    params: Named,
    opts: DataParallelOptions,
  ) {
    this.findUnused = opts.findUnusedParameters ?? false;
    const firstCap = checkCap(opts.firstBucketCapMB ?? 1, 'firstBucketCapMB') * MB;
    const cap = checkCap(opts.bucketCapMB ?? 25, 'bucketCapMB') * MB;
    const trainable = params.filter(([, p]) => p.requiresGrad);
    // Reverse registration order; a bucket is closed before the parameter that would overflow it.
    const groups: (readonly [string, Tensor, number])[][] = [];
    let current: (readonly [string, Tensor, number])[] = [];
    let bytes = 0;
    for (let i = trainable.length - 1; i >= 0; i--) {
      const [name, p] = trainable[i]!;
      const limit = groups.length === 0 ? firstCap : cap;
      if (current.length > 0 && bytes + p.size * 4 > limit) {
        groups.push(current);
        current = [];
        bytes = 0;
      }
      current.push([name, p, i]);
      bytes += p.size * 4;
    }
    if (current.length > 0) groups.push(current);
    for (const group of groups) {
      const size = group.reduce((n, [, p]) => n + p.size, 0);
      const buffer = zeros([size]);
      const bucket: Bucket = { slots: [], buffer, ready: 0, inFlight: null };
      let offset = 0;
      for (const [name, p, index] of group) {
        const slot: Slot = { name, param: p, index, bucket: this.buckets.length, view: new Tensor(buffer.storage, p.shape, undefined, offset) };
        bucket.slots.push(slot);
        this.slots[index] = slot;
        offset += p.size;
      }
      this.buckets.push(bucket);
    }
    for (const slot of this.slots) this.hooks.push(slot.param.registerPostAccumulateGradHook(() => this.onGradReady(slot)));
    this.resetStep();
  }

  /** Broadcasts the parameters and buffers from rank 0 (in place), builds buckets, registers hooks. */
  static async create(
    comm: Communicator,
    params: readonly (readonly [string, Tensor])[],
    buffers: readonly (readonly [string, Tensor])[],
    opts: DataParallelOptions = {},
  ): Promise<DataParallel> {
    const seen = new Set<Tensor>();
    for (const [name, t] of [...params, ...buffers]) {
      if (seen.has(t)) throw new Error(`DataParallel: ${name} is the same tensor as an earlier parameter or buffer; pass each once`);
      seen.add(t);
      if (!t.isContiguous()) throw new Error(`DataParallel: ${name} [${t.shape}] is not contiguous`);
    }
    for (const [name, p] of params) {
      if (p.requiresGrad && p.dtype !== 'float32') throw new Error(`DataParallel: parameter ${name} is ${p.dtype}; only float32 parameters can be trained data-parallel`);
    }
    await checkSameModel(comm, params, buffers);
    const all = [...params, ...buffers];
    await Promise.all(all.map(([, t]) => comm.broadcast(t, 0)));
    if (opts.checkParameters) await checkSameValues(comm, all);
    return new DataParallel(comm, params, opts);
  }

  /** The trainable parameters' names in each bucket, buckets in launch order. */
  get bucketNames(): string[][] {
    return this.buckets.map((b) => b.slots.map((s) => s.name));
  }

  /**
   * Runs fn with gradient synchronisation off for its backward passes (PyTorch's no_sync): their
   * gradients accumulate locally, and the step's last, synchronised backward carries them. For an
   * async fn, synchronisation stays off until its Promise settles.
   */
  noSync<T>(fn: () => T): T {
    const prev = this.syncEnabled;
    this.syncEnabled = false;
    const restore = () => { this.syncEnabled = prev; };
    let result: T;
    try {
      result = fn();
    } catch (e) {
      restore();
      throw e;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  private onGradReady(slot: Slot): void {
    this.used[slot.index] = true;
    const bucket = this.buckets[slot.bucket]!;
    if (bucket.inFlight) {
      throw new Error(
        `DataParallel: parameter ${slot.name} received a gradient after its bucket's all-reduce had started; ` +
          'run one synchronised backward per step, as the last one (earlier micro-batches inside noSync), then synchronize()',
      );
    }
    if (!this.syncEnabled) return;
    if (this.readyInSync[slot.index]) {
      throw new Error(
        `DataParallel: parameter ${slot.name} received a gradient in a second synchronised backward of this step; ` +
          'run one synchronised backward per step, as the last one (earlier micro-batches inside noSync), then synchronize()',
      );
    }
    this.readyInSync[slot.index] = true;
    bucket.ready++;
    // Launch in bucket order only: every rank must issue the same collectives in the same order.
    while (this.nextBucket < this.buckets.length) {
      const next = this.buckets[this.nextBucket]!;
      if (next.ready < next.slots.length) break;
      this.launch(next);
    }
  }

  private launch(bucket: Bucket): void {
    this.nextBucket++;
    for (const { param, view } of bucket.slots) {
      if (param.grad) view.copy_(param.grad, 'DataParallel');
      else view.fill_(0, 'DataParallel');
    }
    this.busyAtFirstLaunch ??= this.comm.busySeconds;
    const op = this.comm.allReduce(bucket.buffer, 'avg');
    // synchronize() awaits it; until then a failure must not count as an unhandled rejection.
    op.catch(() => {});
    bucket.inFlight = op;
    this.stats.buckets++;
    this.stats.bytes += bucket.buffer.size * 4;
  }

  /**
   * After the step's last backward: starts the buckets not yet started (their gradients became
   * final outside a synchronised backward, or their parameters got none), waits for every bucket,
   * writes the averaged gradients into p.grad. Throws naming parameters that got no gradient this
   * step (unless findUnusedParameters). Resets for the next step.
   */
  async synchronize(): Promise<void> {
    if (this.closed) throw new Error('DataParallel: synchronize() after close()');
    try {
      const start = performance.now();
      while (this.nextBucket < this.buckets.length) this.launch(this.buckets[this.nextBucket]!);
      const waits: Promise<unknown>[] = this.buckets.map((b) => b.inFlight!);
      const usedFlags = this.findUnused ? tensor(Float32Array.from(this.slots, (s) => (this.used[s.index] ? 1 : 0))) : null;
      if (usedFlags) waits.push(this.comm.allReduce(usedFlags, 'max'));
      await Promise.all(waits);
      const usedAnywhere = usedFlags ? (usedFlags.data() as Float32Array) : null;
      this.stats.exposedSeconds += (performance.now() - start) / 1000;
      if (this.busyAtFirstLaunch !== null) this.stats.allReduceSeconds += this.comm.busySeconds - this.busyAtFirstLaunch;

      if (!this.findUnused) {
        const unused = this.slots.filter((s) => !this.used[s.index]).map((s) => s.name);
        if (unused.length > 0) {
          const more = unused.length > 1 ? ` (and ${unused.length - 1} more: ${unused.slice(1, 6).join(', ')}${unused.length > 6 ? ', ...' : ''})` : '';
          throw new Error(
            `DataParallel: parameter ${unused[0]} received no gradient in this step${more}; ` +
              'if it is unused by design set distributed.find_unused_parameters: true',
          );
        }
      }
      for (const slot of this.slots) {
        if (usedAnywhere && usedAnywhere[slot.index] === 0) continue;
        const p = slot.param;
        if (p.grad) p.grad.copy_(slot.view, 'DataParallel');
        else p.grad = slot.view.clone();
      }
      this.stats.steps++;
    } finally {
      this.resetStep();
    }
  }

  private resetStep(): void {
    this.used = this.slots.map(() => false);
    this.readyInSync = this.slots.map(() => false);
    for (const b of this.buckets) {
      b.ready = 0;
      b.inFlight = null;
    }
    this.nextBucket = 0;
    this.busyAtFirstLaunch = null;
  }

  /** Removes the hooks. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.hooks) h.remove();
  }
}

/** Every rank's model description must equal rank 0's; a difference is an error on every rank. */
async function checkSameModel(comm: Communicator, params: Named, buffers: Named): Promise<void> {
  const mine = describe(params, buffers);
  const lists = await allGatherJSON(comm, mine);
  const reference = lists[0]!;
  const problems: string[] = [];
  lists.forEach((list, rank) => {
    if (rank === 0) return;
    const i = list.findIndex((entry, k) => entry !== reference[k]);
    if (i >= 0) problems.push(`rank ${rank} has ${list[i]} where rank 0 has ${reference[i] ?? 'nothing'}`);
    else if (list.length !== reference.length) problems.push(`rank ${rank} lacks ${reference[list.length]} that rank 0 has`);
  });
  if (problems.length > 0) {
    throw new Error(`DataParallel: the ranks' models differ (${problems.join('; ')}); every rank must build the same model`);
  }
}

/** Every rank's parameters and buffers must sum (in float64) to rank 0's, bit for bit. */
async function checkSameValues(comm: Communicator, all: Named): Promise<void> {
  const sums = new Float64Array(all.length);
  all.forEach(([, t], i) => {
    let s = 0;
    const data = t.data();
    for (let k = 0; k < data.length; k++) s += Number(data[k]);
    sums[i] = s;
  });
  const gathered = (await comm.allGather(tensor(sums))).map((t) => t.data() as Float64Array);
  for (let i = 0; i < all.length; i++) {
    for (let rank = 1; rank < gathered.length; rank++) {
      if (!Object.is(gathered[rank]![i], gathered[0]![i])) {
        throw new Error(
          `DataParallel: after the broadcast, ${all[i]![0]} on rank ${rank} differs from rank 0's ` +
            `(checksum ${gathered[rank]![i]} against ${gathered[0]![i]})`,
        );
      }
    }
  }
}
