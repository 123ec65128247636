// The DataLoader: determinism with and without workers, resumption, sharding, skipping of corrupt
// and missing samples, and equality with the image processor when nothing is augmented.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { type Batch, DataLoader, type LoaderOptions } from '../../src/data/loader.js';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { ImageProcessor } from '../../src/data/image.js';
import { CsvDataset } from '../../src/data/csv.js';
import { WebDataset, writeWebDataset } from '../../src/data/webdataset.js';
import { ScenesDataset } from '../../src/data/scenes.js';
import { floats, rng, tempDirs } from '../helpers.js';

const newDir = tempDirs('data-loader');

/** A random RGB image of the given size whose pixels are smooth enough to survive JPEG. */
function randomImage(r: () => number, width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  const [a, b, c] = [r() * 255, r() * 255, r() * 255];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      data[p] = (a + 3 * x) % 256;
      data[p + 1] = (b + 2 * y) % 256;
      data[p + 2] = (c + x * y) % 256;
    }
  }
  return data;
}

const FORMATS = ['jpg', 'png', 'webp'] as const;

async function encode(data: Uint8Array, width: number, height: number, format: (typeof FORMATS)[number]): Promise<Buffer> {
  const s = sharp(data, { raw: { width, height, channels: 3 } });
  return format === 'jpg' ? s.jpeg().toBuffer() : format === 'png' ? s.png().toBuffer() : s.webp({ lossless: true }).toBuffer();
}

/** Encoded samples of varied sizes and formats, with captions and labels. */
async function encodedSamples(n: number, seed: number): Promise<Sample[]> {
  const r = rng(seed);
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const w = 20 + Math.floor(r() * 30);
    const h = 20 + Math.floor(r() * 30);
    const format = FORMATS[i % 3]!;
    const bytes = await encode(randomImage(r, w, h), w, h, format);
    out.push({ key: `s${String(i).padStart(4, '0')}`, image: { kind: 'encoded', bytes, name: `s${i}.${format}` }, caption: `caption ${i}`, label: i % 5 });
  }
  return out;
}

let shards: Promise<string> | undefined;
/** 30 samples in three shards (built once per file). */
function shardPattern(): Promise<string> {
  shards ??= (async () => {
    const dir = newDir();
    await writeWebDataset(await encodedSamples(30, 7), path.join(dir, 'shard-%03d.tar'), { samplesPerShard: 10 });
    return path.join(dir, 'shard-{000..002}.tar');
  })();
  return shards;
}

const PROCESSOR = { size: 24, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };

async function take(loader: DataLoader, count: number, from?: { epoch: number; batch: number }): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.batches(from)) {
    out.push(b);
    if (out.length === count) break;
  }
  return out;
}

function assertSameBatches(a: Batch[], b: Batch[], what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => {
    const y = b[i]!;
    assert.deepEqual(x.position, y.position, `${what}: position of batch ${i}`);
    assert.deepEqual(x.keys, y.keys, `${what}: keys of batch ${i}`);
    assert.deepEqual(x.captions, y.captions, `${what}: captions of batch ${i}`);
    assert.deepEqual(x.labels, y.labels, `${what}: labels of batch ${i}`);
    assert.deepEqual(x.pixelValues.shape, y.pixelValues.shape);
    // Bit-identical: compare the float32 bit patterns.
    assert.deepEqual(new Uint32Array(floats(x.pixelValues).buffer), new Uint32Array(floats(y.pixelValues).buffer), `${what}: pixels of batch ${i}`);
  });
}

test('batches are bit-identical with 0 and 2 workers, and a resumed run continues the same sequence', async () => {
  const ds = WebDataset.open(await shardPattern());
  const opts: LoaderOptions = {
    batchSize: 8, processor: PROCESSOR, seed: 3,
    augment: { randomResizedCrop: { scale: [0.5, 1] }, horizontalFlip: true, padCrop: 2 },
  };
  const main = new DataLoader(ds, { ...opts, workers: 0 });
  assert.equal(main.batchesPerEpoch, 3); // 30 samples, 8 per batch, the remainder dropped
  const reference = await take(main, 7);
  assert.deepEqual(reference.map((b) => b.position), [0, 1, 2, 0, 1, 2, 0].map((batch, i) => ({ epoch: Math.floor(i / 3), batch })));
  // Each epoch is a new order; within an epoch no sample repeats.
  const epoch0 = reference.slice(0, 3).flatMap((b) => b.keys);
  const epoch1 = reference.slice(3, 6).flatMap((b) => b.keys);
  assert.equal(new Set(epoch0).size, 24);
  assert.notDeepEqual(epoch0, epoch1);
  await main.close();

  const threaded = new DataLoader(ds, { ...opts, workers: 2, prefetch: 3 });
  assertSameBatches(await take(threaded, 7), reference, 'two workers');
  assertSameBatches(await take(threaded, 3, { epoch: 1, batch: 1 }), reference.slice(4, 7), 'resumed at epoch 1 batch 1');
  await threaded.close();
});

test('without augmentation the pixels are exactly the image processor\'s', async () => {
  const ds = WebDataset.open(await shardPattern());
  const processor = new ImageProcessor('clip', { size: { shortestEdge: 28 }, cropSize: { height: 24, width: 24 } });
  const loader = new DataLoader(ds, { batchSize: 10, processor, shuffle: false, workers: 0 });
  const [batch] = await take(loader, 1);
  const samples = await Promise.all(Array.from({ length: 10 }, (_, i) => ds.get(i)));
  assert.deepEqual(batch!.keys, samples.map((s) => s.key));
  const expected = await processor.preprocess(samples.map((s) => (s.image as { bytes: Uint8Array }).bytes));
  assert.deepEqual(floats(batch!.pixelValues), floats(expected));
  assert.deepEqual(batch!.captions, samples.map((s) => s.caption));
  assert.deepEqual(batch!.labels, samples.map((s) => s.label));
});

test('augmentation is a function of (seed, epoch, index): fixed by the seed, new each epoch', async () => {
  const ds = WebDataset.open(await shardPattern());
  const opts: LoaderOptions = { batchSize: 6, processor: PROCESSOR, shuffle: false, workers: 0, augment: { randomResizedCrop: { scale: [0.3, 0.6] } } };
  const [a0, , , , , b0] = await take(new DataLoader(ds, { ...opts, seed: 1 }), 6);
  const [c0] = await take(new DataLoader(ds, { ...opts, seed: 1 }), 1);
  const [d0] = await take(new DataLoader(ds, { ...opts, seed: 2 }), 1);
  assert.deepEqual(b0!.position, { epoch: 1, batch: 0 });
  assert.deepEqual(a0!.keys, b0!.keys); // unshuffled: the same samples ...
  assert.notDeepEqual(floats(a0!.pixelValues), floats(b0!.pixelValues)); // ... cropped anew
  assert.deepEqual(floats(a0!.pixelValues), floats(c0!.pixelValues));
  assert.notDeepEqual(floats(a0!.pixelValues), floats(d0!.pixelValues));
});

test('ranks see disjoint parts of each epoch that together cover it', async () => {
  const ds = memoryDataset(50);
  const perRank: string[][] = [];
  for (let rank = 0; rank < 3; rank++) {
    const loader = new DataLoader(ds, { batchSize: 4, processor: PROCESSOR, worldSize: 3, rank, seed: 9, workers: 0 });
    assert.equal(loader.batchesPerEpoch, 4); // 16 samples per rank
    perRank.push((await take(loader, 4)).flatMap((b) => b.keys));
  }
  const all = perRank.flat();
  assert.equal(new Set(all).size, all.length, 'no sample on two ranks');
  assert.equal(all.length, 48); // 16 per rank: the 2 samples that do not divide among 3 ranks are dropped

  // Unshuffled, rank r takes every third sample from r; dropLast false keeps the last short batch.
  const ordered = new DataLoader(ds, { batchSize: 4, processor: PROCESSOR, worldSize: 3, rank: 1, shuffle: false, workers: 0 });
  assert.equal(ordered.batchesPerEpoch, 5); // 17 samples (1, 4, ..., 49)
  const batches = await take(ordered, 5);
  assert.deepEqual(batches.flatMap((b) => b.keys), Array.from({ length: 17 }, (_, k) => `m${1 + 3 * k}`));
  assert.deepEqual(batches[4]!.pixelValues.shape, [1, 3, 24, 24]);
});

test('a global batch of 8 read by 1, 2 or 4 ranks: the k-th batches of the ranks together are the same samples', async () => {
  const ds = memoryDataset(50);
  const G = 8;
  const union = async (worldSize: number): Promise<string[][]> => {
    const perRank = await Promise.all(Array.from({ length: worldSize }, async (_, rank) => {
      const loader = new DataLoader(ds, { batchSize: G / worldSize, processor: PROCESSOR, worldSize, rank, seed: 9, workers: 0 });
      assert.equal(loader.batchesPerEpoch, 6, `world size ${worldSize}`); // 48 of the 50 samples in full global batches
      return (await take(loader, 12)).map((b) => b.keys); // two epochs
    }));
    return perRank[0]!.map((_, k) => perRank.flatMap((batches) => batches[k]!).sort());
  };
  const single = await union(1);
  assert.equal(new Set(single.slice(0, 6).flat()).size, 48); // an epoch's batches are disjoint
  assert.deepEqual(await union(2), single);
  assert.deepEqual(await union(4), single);
});

/** Pixels in memory; no spec, so workers must ask the main thread for samples. */
function memoryDataset(n: number, broken: ReadonlySet<number> = new Set()): Dataset {
  return {
    name: 'memory',
    length: n,
    async get(i: number): Promise<Sample> {
      if (broken.has(i)) throw new Error(`memory: sample m${i} is unavailable`);
      const data = new Uint8Array(30 * 26 * 3);
      for (let p = 0; p < data.length; p++) data[p] = (p * (i + 3)) % 251;
      return { key: `m${i}`, image: { kind: 'pixels', image: { width: 30, height: 26, data } }, caption: `m ${i}`, label: i % 3 };
    },
  };
}

test('a dataset without a spec is read on the main thread and prepared identically in workers', async () => {
  const ds = memoryDataset(20, new Set([5]));
  const opts: LoaderOptions = { batchSize: 5, processor: PROCESSOR, seed: 4, augment: { padCrop: 3, padMode: 'reflect', horizontalFlip: true } };
  const warnings: string[] = [];
  const main = new DataLoader(ds, { ...opts, workers: 0, onWarning: (m) => warnings.push(m) });
  const threaded = new DataLoader(ds, { ...opts, workers: 2, onWarning: (m) => warnings.push(m) });
  const a = await take(main, 8); // two epochs of 4 batches
  const b = await take(threaded, 8);
  assertSameBatches(b, a, 'workers reading through the main thread');
  await threaded.close();
  assert.equal(main.skipped, 2); // sample 5, in both epochs
  assert.equal(threaded.skipped, 2);
  assert.equal(warnings.length, 2); // once per loader
  assert.match(warnings[0]!, /memory#5.*m5 is unavailable/);
});

test('scenes through worker threads: the same batches, with labels and clean flags', async () => {
  const ds = new ScenesDataset('train', { length: 24, corruptCaptions: 0.5, seed: 2 });
  const opts: LoaderOptions = { batchSize: 8, processor: { size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }, seed: 6, augment: { horizontalFlip: true } };
  const a = await take(new DataLoader(ds, { ...opts, workers: 0 }), 3);
  const threaded = new DataLoader(ds, { ...opts, workers: 1 });
  const b = await take(threaded, 3);
  await threaded.close();
  assertSameBatches(b, a, 'scenes in a worker');
  for (const batch of a) {
    for (let k = 0; k < 8; k++) {
      const index = Number(batch.keys[k]!.split('/')[2]);
      assert.equal(batch.labels[k], ds.scene(index).objects[0]!.classIndex);
      assert.deepEqual({ caption: batch.captions[k], clean: batch.clean[k] }, ds.captionOf(index));
    }
  }
  assert.ok(a.some((x) => x.clean.includes(false)) && a.some((x) => x.clean.includes(true)));
});

test('a corrupt image and a missing file are skipped with one warning each; batches stay full', async () => {
  const dir = newDir();
  fs.mkdirSync(dir, { recursive: true });
  const samples = await encodedSamples(12, 11);
  const lines = ['filepath\ttitle'];
  samples.forEach((s, i) => {
    const name = `img${i}.${s.image.kind === 'encoded' ? path.extname(s.image.name).slice(1) : ''}`;
    if (i === 3) {
      fs.writeFileSync(path.join(dir, name), Buffer.from('this is not an image at all'));
    } else if (i !== 7) {
      fs.writeFileSync(path.join(dir, name), (s.image as { bytes: Uint8Array }).bytes);
    }
    lines.push(`${name}\t${s.caption}`);
  });
  fs.writeFileSync(path.join(dir, 'pairs.tsv'), `${lines.join('\n')}\n`);
  const ds = CsvDataset.open(path.join(dir, 'pairs.tsv'));
  const warnings: string[] = [];
  for (const workers of [0, 1]) {
    warnings.length = 0;
    const loader = new DataLoader(ds, { batchSize: 4, processor: PROCESSOR, shuffle: false, workers, onWarning: (m) => warnings.push(m) });
    const batches = await take(loader, 6); // two epochs
    await loader.close();
    for (const b of batches) assert.deepEqual(b.pixelValues.shape, [4, 3, 24, 24]);
    const keys = batches.slice(0, 3).flatMap((b) => b.keys.map((k) => path.basename(k)));
    // Each bad sample is replaced by the next one.
    assert.deepEqual(keys, ['img0.jpg', 'img1.png', 'img2.webp', 'img4.png', 'img4.png', 'img5.webp', 'img6.jpg', 'img8.webp', 'img8.webp', 'img9.jpg', 'img10.png', 'img11.webp']);
    assert.equal(loader.skipped, 4, `workers: ${workers}`);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /img3\.jpg.*cannot decode/);
    assert.match(warnings[1]!, /img7\.png.*ENOENT/);
  }
});

test('a dataset where nothing can be read fails with a clear error instead of looping', async () => {
  const ds = memoryDataset(6, new Set([0, 1, 2, 3, 4, 5]));
  const loader = new DataLoader(ds, { batchSize: 2, processor: PROCESSOR, workers: 0, onWarning: () => {} });
  await assert.rejects(take(loader, 1), /6 samples in a row .* could not be used/);
});

test('a worker that cannot reopen the dataset fails the batches with its reason', async () => {
  const dir = newDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.png'), await encode(randomImage(rng(1), 8, 8), 8, 8, 'png'));
  fs.writeFileSync(path.join(dir, 'list.tsv'), 'filepath\ttitle\na.png\tx\n');
  const ds = CsvDataset.open(path.join(dir, 'list.tsv'));
  fs.rmSync(path.join(dir, 'list.tsv')); // gone before the worker opens it
  const loader = new DataLoader(ds, { batchSize: 1, processor: PROCESSOR, workers: 1 });
  await assert.rejects(take(loader, 1), /^Error: openDataset: .*list\.tsv does not exist$/);
  await loader.close();
});

test('bad loader options are errors that name the option', async () => {
  const ds = memoryDataset(10);
  assert.throws(() => new DataLoader(ds, { batchSize: 0, processor: PROCESSOR }), /batchSize/);
  assert.throws(() => new DataLoader(ds, { batchSize: 2, processor: PROCESSOR, rank: 2, worldSize: 2 }), /rank/);
  assert.throws(() => new DataLoader(ds, { batchSize: 20, processor: PROCESSOR }), /not one full batch of 20/);
  assert.throws(() => new DataLoader(ds, { batchSize: 2, processor: { size: 8, mean: [0.5], std: [1, 1, 1] } }), /processor\.mean/);
  assert.throws(() => new DataLoader(ds, { batchSize: 2, processor: new ImageProcessor('clip', { doCenterCrop: false }) }), /different sizes/);
  assert.throws(() => new DataLoader(ds, { batchSize: 2, processor: PROCESSOR, augment: { randomResizedCrop: { scale: [0.5, 2] } } }), /randomResizedCrop\.scale/);
  const loader = new DataLoader(ds, { batchSize: 2, processor: PROCESSOR, workers: 0 });
  await assert.rejects(take(loader, 1, { epoch: 0, batch: 5 }), /from\.batch/);
});

test('a loader left open with its workers started does not keep the process from exiting', () => {
  const loader = fileURLToPath(new URL('../../src/data/loader.js', import.meta.url));
  const scenes = fileURLToPath(new URL('../../src/data/scenes.js', import.meta.url));
  const script = `
    const { DataLoader } = await import(${JSON.stringify(loader)});
    const { ScenesDataset } = await import(${JSON.stringify(scenes)});
    const l = new DataLoader(new ScenesDataset('train', { length: 8 }), { batchSize: 4, processor: { size: 16, mean: [0, 0, 0], std: [1, 1, 1] }, workers: 2 });
    for await (const b of l.batches()) { console.log('batch', b.keys.length); break; }`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'batch 4');
});
