// The data loader: shuffled (per epoch, from a seed), sharded by rank, batched, decoded and
// augmented ahead of the training step in worker threads, and resumable from any batch.
//
// How workers get samples: a worker cannot receive a Dataset object, so a dataset that carries a
// `spec` (every built-in source does) is opened again inside each worker from that plain-data
// description, and the worker reads, decodes and augments by itself. A dataset without a spec (one
// a user wrote) is read on the main thread, on the worker's request, and the worker decodes and
// augments. Either way a batch is a pure function of (dataset, options, epoch, batch): the order
// comes from the seed and epoch, and each sample's augmentation from (seed, epoch, index), so
// results do not depend on the number of workers or on where a run was resumed.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Dataset, DatasetSpec, Sample } from './dataset.js';
import { ImageProcessor } from './image.js';
import type { PadMode } from './augment.js';
import { BatchBuilder, type BatchJob, type BatchResult, type PipelineConfig } from './pipeline.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type WarningSink, consoleWarning, errorMessage } from './common.js';
import { checkInt, EpochSampler, type LoaderPosition, nextPosition } from './sampler.js';

export interface AugmentOptions {
  /** open_clip/timm RandomResizedCrop: area scale range (e.g. [0.9, 1]) and aspect ratio range; off when absent. */
  randomResizedCrop?: { scale: [number, number]; ratio?: [number, number] };
  /** Pad by n pixels (reflect or zero) then random crop back (CIFAR/Fashion-MNIST style). */
  padCrop?: number;
  /** How padCrop pads (default 'zero', torchvision's RandomCrop default). */
  padMode?: PadMode;
  horizontalFlip?: boolean;
}

export interface LoaderOptions {
  batchSize: number;
  /** Output size and normalisation: an ImageProcessor (src/data/image.ts) or { size, mean, std }. */
  processor: ImageProcessor | { size: number; mean: readonly number[]; std: readonly number[] };
  seed?: number;              // default 0
  shuffle?: boolean;          // default true; reshuffled per epoch from (seed, epoch)
  dropLast?: boolean;         // default true when shuffle
  rank?: number; worldSize?: number; // sharding for data parallel, as PyTorch's DistributedSampler (src/data/sampler.ts)
  augment?: AugmentOptions;   // random, deterministic under (seed, epoch, index)
  workers?: number;           // worker threads decoding+augmenting ahead (default: min(2, cores)); 0 = main thread
  prefetch?: number;          // batches prepared ahead (default 2, at least one per worker)
  /** Where warnings about skipped samples go (default console.warn). */
  onWarning?: (message: string) => void;
}

export type { LoaderPosition } from './sampler.js';

export interface Batch {
  readonly pixelValues: Tensor;          // [B, 3, H, W] float32, normalised
  readonly captions: readonly (string | undefined)[];
  readonly labels: readonly (number | undefined)[];
  readonly keys: readonly string[];
  /** Per sample, the source's `clean` flag (scenes with corrupted captions), else undefined. */
  readonly clean: readonly (boolean | undefined)[];
  readonly position: LoaderPosition;     // the position of THIS batch
}

/** The ImageProcessor a `{ size, mean, std }` stands for: CLIP's bicubic shortest-edge resize and centre crop. */
function processorOf(p: LoaderOptions['processor']): ImageProcessor {
  if (p instanceof ImageProcessor) return p;
  const { size, mean, std } = p;
  if (!Number.isInteger(size) || size < 1) throw new Error(`DataLoader: processor.size must be a positive integer, got ${size}`);
  for (const [what, v] of [['mean', mean], ['std', std]] as const) {
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new Error(`DataLoader: processor.${what} must be three numbers, got ${JSON.stringify(v)}`);
    }
  }
  return new ImageProcessor('clip', {
    size: { shortestEdge: size }, cropSize: { height: size, width: size }, doCenterCrop: true, resample: 'bicubic',
    imageMean: [mean[0]!, mean[1]!, mean[2]!], imageStd: [std[0]!, std[1]!, std[2]!],
  });
}

const check = (v: number, what: string, lo: number, hi?: number): number => checkInt(v, `DataLoader: ${what}`, lo, hi);

function checkAugment(a: AugmentOptions | undefined): void {
  if (!a) return;
  const r = a.randomResizedCrop;
  if (r) {
    const [s0, s1] = r.scale ?? [];
    if (!(typeof s0 === 'number' && typeof s1 === 'number' && s0 > 0 && s0 <= s1 && s1 <= 1)) {
      throw new Error(`DataLoader: randomResizedCrop.scale must be [lo, hi] with 0 < lo <= hi <= 1, got ${JSON.stringify(r.scale)}`);
    }
    if (r.ratio && !(r.ratio[0] > 0 && r.ratio[0] <= r.ratio[1])) throw new Error(`DataLoader: randomResizedCrop.ratio must be [lo, hi] with 0 < lo <= hi, got ${JSON.stringify(r.ratio)}`);
  }
  if (a.padCrop !== undefined) check(a.padCrop, 'augment.padCrop', 0);
  if (a.padMode !== undefined && a.padMode !== 'zero' && a.padMode !== 'reflect') throw new Error(`DataLoader: augment.padMode must be 'zero' or 'reflect', got ${JSON.stringify(a.padMode)}`);
}

/** Messages between the loader and its workers. */
export type ToWorker =
  | { type: 'job'; job: BatchJob }
  | { type: 'sample'; request: number; sample: Sample }
  | { type: 'sampleError'; request: number; message: string };
export type FromWorker =
  | { type: 'done'; result: BatchResult }
  | { type: 'failed'; id: number; message: string }
  | { type: 'read'; request: number; index: number };
export interface WorkerInit {
  readonly pipeline: PipelineConfig;
  readonly spec?: DatasetSpec;
}

interface Pending {
  resolve(r: BatchResult): void;
  reject(e: Error): void;
}

/**
 * The parent's Node options without those about its own entry point (`-e` code, `--input-type`),
 * which a worker would apply to its module file and fail on; the rest (source maps, loaders,
 * memory limits) carry over as Node's default would.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (['-e', '--eval', '-p', '--print', '--input-type'].includes(a)) i++; // and its value
    else if (!a.startsWith('--input-type=') && !a.startsWith('--eval=') && !a.startsWith('--print=')) out.push(a);
  }
  return out;
}

class LoaderWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  failure: Error | null = null;
  /** A timer that holds the event loop open while a batch is owed (the worker itself never does). */
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(init: WorkerInit, private readonly dataset: Dataset) {
    this.worker = new Worker(new URL('./loader_worker.js', import.meta.url), { workerData: init, execArgv: workerExecArgv() });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (e) => this.fail(new Error(`DataLoader: a worker failed: ${e.message}`, { cause: e })));
    this.worker.on('exit', (code) => this.fail(new Error(`DataLoader: a worker exited (code ${code})`)));
    // Never keeps the process alive by itself (a loader left open must not hang the exit); while a
    // batch is owed, a timer does instead (see run). After the listeners: adding a 'message'
    // listener references the worker's port again.
    this.worker.unref();
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'read') {
      const { request, index } = m;
      const refuse = (message: string): void => this.worker.postMessage({ type: 'sampleError', request, message } satisfies ToWorker);
      this.dataset.get(index).then(
        (sample) => {
          try {
            this.worker.postMessage({ type: 'sample', request, sample } satisfies ToWorker);
          } catch (e) {
            refuse(`sample ${sample.key} cannot be sent to a worker thread: ${errorMessage(e)}`);
          }
        },
        (e: unknown) => refuse(errorMessage(e)),
      );
      return;
    }
    const id = m.type === 'done' ? m.result.id : m.id;
    const p = this.pending.get(id);
    if (!p) return; // a batch nobody waits for any more
    this.pending.delete(id);
    this.settled();
    if (m.type === 'done') p.resolve(m.result);
    else p.reject(new Error(m.message));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.settled();
  }

  private settled(): void {
    if (this.pending.size === 0 && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }

  run(job: BatchJob): Promise<BatchResult> {
    if (this.failure) return Promise.reject(this.failure);
    // Keeps the event loop running while the main thread waits for this worker.
    this.keepAlive ??= setInterval(() => {}, 2 ** 30);
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      this.worker.postMessage({ type: 'job', job } satisfies ToWorker);
    });
  }
}

export class DataLoader {
  readonly batchesPerEpoch: number;
  readonly batchSize: number;
  private skippedCount = 0;
  private readonly warned = new Set<string>();
  private readonly warn: WarningSink;
  private readonly sampler: EpochSampler;
  private readonly workerCount: number;
  private readonly prefetch: number;
  private readonly pipeline: PipelineConfig;
  private readonly height: number;
  private readonly width: number;
  private local: BatchBuilder | null = null;
  private workers: LoaderWorker[] | null = null;
  private nextJobId = 0;
  private closed = false;

  constructor(private readonly dataset: Dataset, options: LoaderOptions) {
    const n = dataset.length;
    if (!Number.isInteger(n) || n < 1) throw new Error(`DataLoader: dataset ${dataset.name} is empty`);
    this.sampler = new EpochSampler(n, options, 'DataLoader');
    this.batchSize = this.sampler.batchSize;
    this.batchesPerEpoch = this.sampler.batchesPerEpoch;
    const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    this.workerCount = check(options.workers ?? Math.min(2, cores), 'workers', 0, 256);
    this.prefetch = Math.max(check(options.prefetch ?? 2, 'prefetch', 1, 1024), this.workerCount);
    this.warn = options.onWarning ?? consoleWarning;
    checkAugment(options.augment);
    if (this.batchesPerEpoch < 1) {
      throw new Error(`DataLoader: ${dataset.name} has ${n} samples, ${this.sampler.perRank} per rank: not one full batch of ${this.batchSize} (use a smaller batch or dropLast: false)`);
    }
    const processor = processorOf(options.processor);
    this.pipeline = {
      processor: { family: processor.family, config: processor.config },
      augment: options.augment,
      seed: this.sampler.seed,
      datasetName: dataset.name,
      datasetLength: n,
    };
    // Checks the processor's output size now rather than in a worker.
    const probe = new BatchBuilder(this.pipeline, (i) => dataset.get(i));
    this.height = probe.height;
    this.width = probe.width;
    if (this.workerCount === 0) this.local = probe;
  }

  /** Samples skipped so far because they were corrupt or missing (each warned once, with its key). */
  get skipped(): number {
    return this.skippedCount;
  }

  /** This rank's dataset indices for an epoch, in order. */
  epochOrder(epoch: number): Int32Array {
    return this.sampler.epochOrder(epoch);
  }

  private startWorkers(): LoaderWorker[] {
    if (!this.workers) {
      const spec = this.dataset.spec;
      const init: WorkerInit = { pipeline: this.pipeline, spec };
      this.workers = Array.from({ length: this.workerCount }, () => new LoaderWorker(init, this.dataset));
    }
    return this.workers;
  }

  private run(position: LoaderPosition): Promise<BatchResult> {
    const job: BatchJob = { id: this.nextJobId++, epoch: position.epoch, indices: Array.from(this.sampler.indices(position)) };
    if (this.local) return this.local.build(job);
    const workers = this.startWorkers();
    let best = workers[0]!;
    for (const w of workers) if (w.pending.size < best.pending.size) best = w;
    return best.run(job);
  }

  /** Batches from `from` (default epoch 0 batch 0) on, epoch after epoch, forever (the trainer stops). */
  async *batches(from: LoaderPosition = { epoch: 0, batch: 0 }): AsyncGenerator<Batch> {
    if (this.closed) throw new Error('DataLoader: batches() after close()');
    check(from.epoch, 'from.epoch', 0);
    check(from.batch, 'from.batch', 0, this.batchesPerEpoch - 1);
    const advance = (p: LoaderPosition): LoaderPosition => nextPosition(p, this.batchesPerEpoch);
    const queue: { position: LoaderPosition; result: Promise<BatchResult> }[] = [];
    let next = from;
    try {
      for (;;) {
        while (queue.length < this.prefetch) {
          const result = this.run(next);
          result.catch(() => {}); // observed when its turn comes; not an unhandled rejection before
          queue.push({ position: next, result });
          next = advance(next);
        }
        const { position, result } = queue.shift()!;
        const r = await result;
        for (const f of r.failures) {
          this.skippedCount++;
          if (!this.warned.has(f.key)) {
            this.warned.add(f.key);
            this.warn(`DataLoader: skipped sample ${f.key}: ${f.message}`);
          }
        }
        yield {
          pixelValues: tensor(r.pixels, { shape: [r.keys.length, 3, this.height, this.width] }),
          captions: r.captions, labels: r.labels, keys: r.keys, clean: r.clean, position,
        };
      }
    } finally {
      // Batches still being made are dropped; their workers finish them and stay ready.
      queue.length = 0;
    }
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers ?? [];
    this.workers = null;
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}
