// A DataLoader worker thread: builds the batches the loader sends it. It opens the dataset itself
// from its spec when there is one; otherwise it asks the main thread for each sample.
import { parentPort, workerData } from 'node:worker_threads';
import type { Dataset, Sample } from './dataset.js';
import type { FromWorker, ToWorker, WorkerInit } from './loader.js';
import { BatchBuilder } from './pipeline.js';
import { openDataset } from './registry.js';
import { errorMessage } from './common.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

const waiting = new Map<number, { resolve(s: Sample): void; reject(e: Error): void }>();
let nextRequest = 0;
function readRemote(index: number): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const request = nextRequest++;
    waiting.set(request, { resolve, reject });
    post({ type: 'read', request, index });
  });
}

// The main thread already opened (and warned about) this dataset: its warnings are not repeated.
const dataset: Promise<Dataset | null> = init.spec
  ? openDataset(init.spec.source, { ...init.spec.options, onWarning: () => {} })
  : Promise.resolve(null);
const builder: Promise<BatchBuilder> = dataset.then((d) => new BatchBuilder(init.pipeline, d ? (i) => d.get(i) : readRemote));
// A dataset that cannot be opened here is reported with each job, not as a crash of the thread.
builder.catch(() => {});

port.on('message', (m: ToWorker) => {
  if (m.type === 'job') {
    builder
      .then((b) => b.build(m.job))
      .then(
        (result) => post({ type: 'done', result }, [result.pixels.buffer as ArrayBuffer]),
        (e: unknown) => post({ type: 'failed', id: m.job.id, message: errorMessage(e) }),
      );
    return;
  }
  const w = waiting.get(m.request);
  if (!w) return;
  waiting.delete(m.request);
  if (m.type === 'sample') w.resolve(m.sample);
  else w.reject(new Error(m.message));
});
