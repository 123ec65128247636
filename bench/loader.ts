// Data loader throughput (samples/s) with the work on the main thread (workers 0, the anchor) and
// in 2 worker threads, in the same run, on two sources: the built-in scenes (64 px, rendered while
// loading) and WebDataset shards of 320x240 JPEGs through CLIP's 224 px preprocessing.
//   npm run bench -- loader [--batch 32] [--batches 16] [--warmup 8] [--step-ms 0] [--rounds 2]
// Rounds alternate the two settings; each figure is the best round (the least disturbed).
// --step-ms stands for a training step: the consumer keeps the main thread busy that long per
// batch, which worker threads overlap and the main-thread loader cannot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { DataLoader } from '../src/data/loader.js';
import type { Dataset, Sample } from '../src/data/dataset.js';
import { ImageProcessor } from '../src/data/image.js';
import { ScenesDataset } from '../src/data/scenes.js';
import { WebDataset, writeWebDataset } from '../src/data/webdataset.js';
import { flag } from './lib/timing.js';

async function jpegShards(dir: string, n: number): Promise<string> {
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const [w, h] = [320, 240];
    const data = new Uint8Array(w * h * 3);
    for (let p = 0; p < w * h; p++) {
      const x = p % w, y = Math.floor(p / w);
      data[3 * p] = (x + i * 7) % 256;
      data[3 * p + 1] = (y * 2 + i) % 256;
      data[3 * p + 2] = ((x ^ y) + i) % 256;
    }
    const bytes = await sharp(data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    samples.push({ key: `s${i}`, image: { kind: 'encoded', bytes, name: `s${i}.jpg` }, caption: `sample ${i}` });
  }
  await writeWebDataset(samples, path.join(dir, 'b-%02d.tar'), { samplesPerShard: 64 });
  return path.join(dir, `b-{00..${String(Math.ceil(n / 64) - 1).padStart(2, '0')}}.tar`);
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a stand-in for the training step */ }
}

/**
 * Samples per second over `batches` batches after `warmup` (worker start-up and each thread's
 * compilation of the hot loops excluded: a training run pays them once).
 */
async function throughput(ds: Dataset, processor: ImageProcessor, workers: number, batch: number, warmup: number, batches: number, stepMs: number): Promise<number> {
  const loader = new DataLoader(ds, { batchSize: batch, processor, workers, augment: { horizontalFlip: true }, seed: 1 });
  let t0 = 0;
  let n = 0;
  for await (const b of loader.batches()) {
    void b;
    if (n === warmup) t0 = performance.now();
    if (n > warmup) busy(stepMs);
    if (++n > warmup + batches) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  await loader.close();
  return (batches * batch) / seconds;
}

export async function run(args: string[]): Promise<unknown> {
  const batch = flag(args, '--batch', 32);
  const batches = flag(args, '--batches', 16);
  const warmup = flag(args, '--warmup', 8);
  const stepMs = flag(args, '--step-ms', 0);
  const rounds = flag(args, '--rounds', 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-bench-loader-'));
  try {
    const sources: [string, Dataset, ImageProcessor][] = [
      ['scenes-64px', new ScenesDataset('train', { length: batch * (warmup + batches + 4) }), new ImageProcessor('clip', { size: { shortestEdge: 64 }, cropSize: { height: 64, width: 64 } })],
      ['wds-jpeg-320x240-to-224', WebDataset.open(await jpegShards(dir, batch * (warmup + batches + 4))), new ImageProcessor('clip')],
    ];
    const results: Record<string, unknown> = {};
    for (const [name, ds, processor] of sources) {
      let main = 0;
      let two = 0;
      for (let r = 0; r < rounds; r++) {
        main = Math.max(main, await throughput(ds, processor, 0, batch, warmup, batches, stepMs));
        two = Math.max(two, await throughput(ds, processor, 2, batch, warmup, batches, stepMs));
      }
      results[name] = { samplesPerSecond: { workers0: +main.toFixed(1), workers2: +two.toFixed(1) }, workers2OverWorkers0: +(two / main).toFixed(2) };
    }
    return { bench: 'loader', batch, warmup, batches, stepMs, rounds, cores: os.availableParallelism(), loadAverage: +os.loadavg()[0]!.toFixed(1), results };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
