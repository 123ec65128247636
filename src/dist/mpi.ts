// The Communicator over MPI, through the optional addon glimpse_mpi (native/mpi.cc). The addon
// runs MPI on one communication thread of its own (Horovod's design): each call here queues a
// request to it and gets a Promise, so the event loop runs during a collective.
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { tensor, type Tensor, type TypedArray } from '../tensor/index.js';
import { hostData } from '../tensor/backends/host.js';
import { packageRoot } from '../tensor/backends/native/addon.js';
import type { Communicator, ReduceOp } from './communicator.js';
import { shareRows } from './shares.js';

interface MpiAddon {
  init(): { rank: number; size: number; localRank: number; localSize: number };
  finalize(): void;
  // Each operation resolves with the seconds its MPI calls took on the communication thread.
  allReduce(data: Float32Array, op: number): Promise<number>;
  reduceScatter(input: Float32Array, output: Float32Array, counts: number[], op: number): Promise<number>;
  broadcast(data: TypedArray, root: number): Promise<number>;
  allGather(data: TypedArray): Promise<{ buffer: ArrayBuffer; counts: number[]; seconds: number }>;
  barrier(): Promise<number>;
  send(data: TypedArray, dest: number): Promise<number>;
  recv(data: TypedArray, source: number): Promise<number>;
  sendRecv(send: TypedArray, dest: number, recv: TypedArray, source: number): Promise<number>;
}

const OP_CODES: Record<ReduceOp, number> = { sum: 0, avg: 1, max: 2 };

/** Where the MPI addon is loaded from: GLIMPSE_MPI_ADDON, or the package's build/Release. */
export function mpiAddonPath(): string {
  return process.env.GLIMPSE_MPI_ADDON ?? join(packageRoot(), 'build', 'Release', 'glimpse_mpi.node');
}

function loadMpiAddon(): MpiAddon {
  const path = mpiAddonPath();
  if (!existsSync(path)) {
    throw new Error(
      `glimpse: the distributed layer needs MPI, and the MPI addon is not built (no ${path}). ` +
        'Install Open MPI with scripts/install-mpi.sh, then rebuild the addons with npm rebuild.',
    );
  }
  const mod = { exports: {} as MpiAddon };
  try {
    // RTLD_GLOBAL: Open MPI loads its components as plugins that resolve symbols of libmpi, which
    // they find only if libmpi's symbols were loaded into the global scope.
    process.dlopen(mod, path, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
  } catch (e) {
    throw new Error(
      `glimpse: the MPI addon at ${path} does not load (${(e as Error).message}). ` +
        'Install Open MPI with scripts/install-mpi.sh, then rebuild the addons with npm rebuild.',
      { cause: e },
    );
  }
  return mod.exports;
}

/** The memory of a contiguous host tensor: a view of its storage, not a copy. */
function buffer(t: Tensor, what: string): TypedArray {
  if (!t.isContiguous()) throw new Error(`${what}: the tensor [${t.shape}] is not contiguous; pass t.contiguous()`);
  const data = hostData(t.storage);
  return data.subarray(t.offset, t.offset + t.size) as TypedArray;
}

class MpiCommunicator implements Communicator {
  readonly transport = 'mpi';
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly localSize: number;
  private busy = 0;
  private closed = false;

  constructor(private readonly addon: MpiAddon) {
    const info = addon.init();
    this.rank = info.rank;
    this.worldSize = info.size;
    this.localRank = info.localRank;
    this.localSize = info.localSize;
  }

  get busySeconds(): number {
    return this.busy;
  }

  // Not `busy += await op`: that reads busy before the await and would lose concurrent operations' time.
  private addBusy(seconds: number): void {
    this.busy += seconds;
  }

  private check(what: string): void {
    if (this.closed) throw new Error(`${what}: the communicator is closed`);
  }

  private rankArg(r: number, what: string): number {
    if (!Number.isInteger(r) || r < 0 || r >= this.worldSize) {
      throw new Error(`${what}: rank ${r} is not in this world of ${this.worldSize} (0..${this.worldSize - 1})`);
    }
    return r;
  }

  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    this.check('allReduce');
    if (t.dtype !== 'float32') throw new Error(`allReduce: float32 tensors only, got ${t.dtype}`);
    const code = OP_CODES[op];
    if (code === undefined) throw new Error(`allReduce: op must be 'sum', 'avg' or 'max', got '${op}'`);
    this.addBusy(await this.addon.allReduce(buffer(t, 'allReduce') as Float32Array, code));
    return t;
  }

  async reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Promise<Tensor> {
    this.check('reduceScatter');
    if (t.dtype !== 'float32') throw new Error(`reduceScatter: float32 tensors only, got ${t.dtype}`);
    if (t.ndim === 0) throw new Error('reduceScatter: the tensor needs a first dimension to split; got a scalar');
    const code = OP_CODES[op];
    if (code === undefined) throw new Error(`reduceScatter: op must be 'sum', 'avg' or 'max', got '${op}'`);
    const input = buffer(t, 'reduceScatter') as Float32Array;
    const rowSize = t.size / Math.max(t.shape[0]!, 1);
    const rows = shareRows(t.shape[0]!, this.worldSize);
    const out = new Float32Array(rows[this.rank]! * rowSize);
    this.addBusy(await this.addon.reduceScatter(input, out, rows.map((r) => r * rowSize), code));
    return tensor(out, { shape: [rows[this.rank]!, ...t.shape.slice(1)], backend: t.backend });
  }

  async broadcast(t: Tensor, root = 0): Promise<Tensor> {
    this.check('broadcast');
    this.addBusy(await this.addon.broadcast(buffer(t, 'broadcast'), this.rankArg(root, 'broadcast')));
    return t;
  }

  async allGather(t: Tensor): Promise<Tensor[]> {
    this.check('allGather');
    const data = buffer(t, 'allGather');
    const { buffer: gathered, counts, seconds } = await this.addon.allGather(data);
    this.addBusy(seconds);
    const bytesPerElement = data.BYTES_PER_ELEMENT;
    const rest = t.shape.slice(1);
    const rowSize = rest.reduce((a, b) => a * b, 1);
    const Ctor = data.constructor as new (b: ArrayBuffer, offset: number, length: number) => TypedArray;
    const out: Tensor[] = [];
    let at = 0;
    for (let r = 0; r < counts.length; r++) {
      const elements = counts[r]! / bytesPerElement;
      let shape: number[];
      if (t.ndim === 0) {
        if (elements !== 1) throw new Error(`allGather: rank ${r} sent ${elements} elements where this rank sent a scalar; every rank must send a scalar`);
        shape = [];
      } else {
        if (!Number.isInteger(elements) || elements % Math.max(rowSize, 1) !== 0 || (rowSize === 0 && elements !== 0)) {
          throw new Error(`allGather: rank ${r} sent ${counts[r]} bytes, which is not whole rows of [${rest}] ${t.dtype}; the tensors may differ only in their first dimension`);
        }
        shape = [rowSize === 0 ? 0 : elements / rowSize, ...rest];
      }
      out.push(tensor(new Ctor(gathered, at, elements), { dtype: t.dtype, shape, backend: t.backend }));
      at += counts[r]!;
    }
    return out;
  }

  async barrier(): Promise<void> {
    this.check('barrier');
    this.addBusy(await this.addon.barrier());
  }

  async send(t: Tensor, dest: number): Promise<void> {
    this.check('send');
    this.addBusy(await this.addon.send(buffer(t, 'send'), this.rankArg(dest, 'send')));
  }

  async recv(t: Tensor, source: number): Promise<Tensor> {
    this.check('recv');
    this.addBusy(await this.addon.recv(buffer(t, 'recv'), this.rankArg(source, 'recv')));
    return t;
  }

  async sendRecv(send: Tensor, dest: number, recv: Tensor, source: number): Promise<Tensor> {
    this.check('sendRecv');
    this.addBusy(await this.addon.sendRecv(buffer(send, 'sendRecv'), this.rankArg(dest, 'sendRecv'), buffer(recv, 'sendRecv'), this.rankArg(source, 'sendRecv')));
    return recv;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.finalize();
  }
}

let world: MpiCommunicator | undefined;

/**
 * The MPI communicator of this process's job (MPI_COMM_WORLD), initialising MPI on first use. A
 * process started without mpirun is a world of one rank. Throws at once, naming
 * scripts/install-mpi.sh, when the MPI addon is not built.
 */
export function mpiCommunicator(): Communicator {
  world ??= new MpiCommunicator(loadMpiAddon());
  return world;
}
