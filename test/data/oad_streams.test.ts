// Feature streams for online action detection: the folder format (round trip, named errors), the
// official windows (whole windows from an offset, targets of the current and next chunks, ambiguous
// current chunks dropped), the padded every-chunk cover, and the synthetic source (deterministic,
// actions recognisable and announced by a cue).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { OAD_BENCHMARKS } from '../../src/data/oad_benchmarks.js';
import { cutWindow, type FeatureStream, labelArgmax, OadWindowSampler } from '../../src/data/oad_streams.js';
import { OadSyntheticStreams } from '../../src/data/oad_synthetic.js';
import { openDataset } from '../../src/data/registry.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { openFeatureStreams, openStreams, writeFeatureStreams } from '../../src/tasks/oad_streams.js';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'oad-streams-'));
const small = (o: Record<string, unknown> = {}) => new OadSyntheticStreams({ videos: 3, testVideos: 2, length: 60, classes: 3, cameraDim: 6, motionDim: 4, ...o });

test('a stream set written to a folder reads back equal, split by split', async () => {
  const set = small();
  const dir = tmp();
  await writeFeatureStreams(dir, set);
  const back = openFeatureStreams(dir);
  assert.deepEqual(back.classNames, set.classNames);
  assert.equal(back.ambiguousClass, set.ambiguousClass);
  assert.equal(back.cameraDim, 6);
  assert.equal(back.motionDim, 4);
  assert.deepEqual(back.splits, set.splits);
  for (const split of ['train', 'test']) {
    const a = await set.videos(split);
    const b = await back.videos(split);
    assert.deepEqual(b.map((v) => v.name), a.map((v) => v.name));
    b.forEach((v, i) => {
      assert.equal(v.length, a[i]!.length);
      assert.deepEqual(v.camera, a[i]!.camera);
      assert.deepEqual(v.motion, a[i]!.motion);
      assert.deepEqual(v.labels, a[i]!.labels);
    });
  }
  // The spec opener: a folder with a split, and the registered name with one.
  assert.equal(openStreams(dir, { split: 'test' }).split, 'test');
  const named = openStreams('oad-synthetic:test', { oadSynthetic: { videos: 2, length: 50 } });
  assert.equal(named.split, 'test');
  assert.ok(named.set instanceof OadSyntheticStreams);
  await assert.rejects(openDataset('oad-synthetic:train'), /feature streams .*not an image dataset/);
  assert.throws(() => openStreams('oad-synthetic:val'), /no split 'val' \(splits: train, test\)/);
});

test('a damaged stream folder is an error that names the problem', async () => {
  const dir = tmp();
  assert.throws(() => openFeatureStreams(path.join(dir, 'missing')), /folder does not exist/);
  assert.throws(() => openFeatureStreams(dir), /no index\.json/);
  await writeFeatureStreams(dir, small({ videos: 2, testVideos: 1 }));
  const set = openFeatureStreams(dir);
  const file = (name: string) => path.join(dir, `${name}.safetensors`);
  fs.rmSync(file('test_0000'));
  await assert.rejects(set.videos('test'), /video 'test_0000' has no file/);

  const T = 5;
  const labels = new Float32Array(T * set.classNames.length);
  for (let t = 0; t < T; t++) labels[t * set.classNames.length] = 1;
  writeSafetensors(file('train_0000'), { camera: { shape: [T, 7], data: new Float32Array(T * 7) }, motion: { shape: [T, 4], data: new Float32Array(T * 4) }, labels: { shape: [T, set.classNames.length], data: labels } });
  assert.throws(() => set.video('train_0000'), /'camera' has shape \[5, 7\], expected \[T, 6\]/);
  writeSafetensors(file('train_0000'), { camera: { shape: [T, 6], data: new Float32Array(T * 6) }, motion: { shape: [T - 1, 4], data: new Float32Array((T - 1) * 4) }, labels: { shape: [T, set.classNames.length], data: labels } });
  assert.throws(() => set.video('train_0000'), /have 5, 4 and 5 chunks; they must agree/);
  labels[2 * set.classNames.length + 1] = 1; // chunk 2: background and action_1 both 1
  writeSafetensors(file('train_0000'), { camera: { shape: [T, 6], data: new Float32Array(T * 6) }, motion: { shape: [T, 4], data: new Float32Array(T * 4) }, labels: { shape: [T, set.classNames.length], data: labels } });
  assert.throws(() => set.video('train_0000'), /video 'train_0000': labels at chunk 2 sum to 2, not 1/);
  writeSafetensors(file('train_0000'), { camera: { shape: [T, 6], data: new Float32Array(T * 6) }, motion: { shape: [T, 4], data: new Float32Array(T * 4) } });
  assert.throws(() => set.video('train_0000'), /has no tensor 'labels'/);

  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ ...index, ambiguous_class: 99 }));
  assert.throws(() => openFeatureStreams(dir), /ambiguous class must be an integer in \[1, 4\], got 99/);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ ...index, splits: { train: ['a', 'a'] } }));
  assert.throws(() => openFeatureStreams(dir), /split 'train' lists video 'a' twice/);
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ ...index, format: 'other' }));
  assert.throws(() => openFeatureStreams(dir), /format "other", expected "glimpse-oad-streams"/);
});

/** A stream whose features encode (chunk, dim) and whose labels are a chosen class per chunk. */
function indexedStream(classesPerChunk: number[], C: number, Dc = 2, Dm = 3): FeatureStream {
  const T = classesPerChunk.length;
  const labels = new Float32Array(T * C);
  classesPerChunk.forEach((c, t) => { labels[t * C + c] = 1; });
  return {
    name: 'v', length: T, labels,
    camera: Float32Array.from({ length: T * Dc }, (_, i) => 1 + Math.floor(i / Dc) + (i % Dc) / 10),
    motion: Float32Array.from({ length: T * Dm }, (_, i) => -1 - Math.floor(i / Dm) - (i % Dm) / 10),
  };
}

const info = (C: number, ambiguousClass: number | null) => ({
  classNames: Array.from({ length: C }, (_, c) => `c${c}`), ambiguousClass, cameraDim: 2, motionDim: 3, labelRows: 'distribution' as const,
});

test('official windows: whole windows from the offset, encoder target = current chunk, decoder targets = the next chunks', () => {
  const C = 4;
  const classes = [0, 0, 1, 1, 2, 3, 3, 0, 1, 2, 2, 0, 0, 1, 0, 2, 0, 1, 1, 0];
  const stream = indexedStream(classes, C);
  const W = 4;
  const Q = 3;
  // Test cover: offset 0; windows [s, s + W) while s + W < T - Q, none ending on an ambiguous chunk (class 3).
  const sampler = new OadWindowSampler([stream], info(C, 3), { encSteps: W, decSteps: Q, batchSize: 1, shuffle: false });
  const expectedEnds = [];
  for (let s = 0; s + W < classes.length - Q; s++) if (classes[s + W - 1] !== 3) expectedEnds.push(s + W - 1);
  assert.deepEqual(Array.from({ length: sampler.length }, (_, i) => sampler.window(i).end), expectedEnds);
  for (let i = 0; i < sampler.length; i++) {
    const w = sampler.window(i);
    const s = w.end - W + 1;
    assert.deepEqual(w.camera, stream.camera.slice(s * 2, (w.end + 1) * 2));
    assert.deepEqual(w.motion, stream.motion.slice(s * 3, (w.end + 1) * 3));
    assert.equal(labelArgmax(w.encTarget, 0, C), classes[w.end]);
    assert.deepEqual(Array.from({ length: Q }, (_, q) => labelArgmax(w.decTarget, q, C)), classes.slice(w.end + 1, w.end + 1 + Q));
  }
  // Training cover: a seeded offset in [0, W) per video; windows then follow one chunk apart.
  const offsets = new Set<number>();
  for (let seed = 0; seed < 12; seed++) {
    const t = new OadWindowSampler([stream], info(C, null), { encSteps: W, decSteps: Q, batchSize: 1, seed });
    const ends = Array.from({ length: t.length }, (_, i) => t.window(i).end);
    const offset = ends[0]! - (W - 1);
    assert.ok(offset >= 0 && offset < W);
    assert.deepEqual(ends, Array.from({ length: classes.length - Q - 1 - (offset + W - 1) }, (_, i) => offset + W - 1 + i));
    offsets.add(offset);
  }
  assert.ok(offsets.size > 1, 'the offset depends on the seed');
});

test('every-chunk windows pad before the start with zeros and past the end with zero targets', () => {
  const C = 3;
  const classes = [0, 1, 1, 2, 0, 0, 1];
  const stream = indexedStream(classes, C);
  const W = 4;
  const Q = 2;
  const sampler = new OadWindowSampler([stream], info(C, null), { encSteps: W, decSteps: Q, batchSize: 2, shuffle: false, cover: 'every-chunk' });
  assert.equal(sampler.length, classes.length);
  for (let end = 0; end < classes.length; end++) {
    const w = sampler.window(end);
    // Direct computation: chunk end - W + 1 + j, or zeros before chunk 0.
    const camera = Array.from({ length: W * 2 }, (_, i) => { const t = end - W + 1 + Math.floor(i / 2); return t < 0 ? 0 : stream.camera[t * 2 + (i % 2)]!; });
    assert.deepEqual([...w.camera], camera.map(Math.fround));
    const dec = Array.from({ length: Q * C }, (_, i) => { const t = end + 1 + Math.floor(i / C); return t >= classes.length ? 0 : stream.labels[t * C + (i % C)]!; });
    assert.deepEqual([...w.decTarget], dec);
  }
  assert.throws(() => cutWindow(stream, 7, W, Q, { cameraDim: 2, motionDim: 3, classes: C }), /chunk 7 is outside video 'v' of 7 chunks/);
  // Batches stack windows in the sampler's order, and resume from a position.
  const b = sampler.batch({ epoch: 0, batch: 1 });
  assert.deepEqual(b.keys, ['v/2', 'v/3']);
  assert.deepEqual(b.camera.subarray(W * 2), sampler.window(3).camera);
  const it = sampler.batches({ epoch: 0, batch: 3 });
  assert.deepEqual(it.next().value!.keys, ['v/6']);
  assert.deepEqual(it.next().value!.keys, ['v/0', 'v/1']);
});

test('the shuffled order is a function of (seed, epoch) and covers every window once', () => {
  const set = small();
  const streams = set.videosSync('train');
  const make = (seed: number) => new OadWindowSampler(streams, set, { encSteps: 8, decSteps: 4, batchSize: 5, seed });
  const a = make(3);
  const keys = (s: OadWindowSampler, epoch: number) => Array.from({ length: s.batchesPerEpoch }, (_, batch) => s.batch({ epoch, batch }).keys).flat();
  assert.deepEqual(keys(a, 1), keys(make(3), 1));
  assert.notDeepEqual(keys(a, 0), keys(a, 1));
  const all = Array.from({ length: a.length }, (_, i) => `${a.window(i).video}/${a.window(i).end}`);
  assert.equal(new Set(all).size, all.length);
  assert.equal(new Set(keys(a, 0)).size, keys(a, 0).length);
  assert.ok(keys(a, 0).every((k) => all.includes(k)));
  assert.equal(keys(a, 0).length, Math.floor(a.length / 5) * 5);
  assert.throws(() => new OadWindowSampler(streams, set, { encSteps: 60, decSteps: 4, batchSize: 1 }), /no window of 60 \+ 4 chunks fits in the 3 videos \(longest 60 chunks\)/);
});

test('oad-synthetic is deterministic under a seed, and the seed matters', () => {
  const a = small({ seed: 5 }).videosSync('test');
  const b = small({ seed: 5 }).videosSync('test');
  const c = small({ seed: 6 }).videosSync('test');
  assert.deepEqual(a.map((v) => [v.camera, v.motion, v.labels]), b.map((v) => [v.camera, v.motion, v.labels]));
  assert.notDeepEqual(a[0]!.camera, c[0]!.camera);
  const set = small();
  assert.deepEqual(set.classNames, ['background', 'action_1', 'action_2', 'action_3', 'ambiguous']);
  assert.equal(set.ambiguousClass, 4);
  // Ambiguous chunks are the ends of actions; every action chunk between them has the action's class.
  for (const v of set.videosSync('train')) {
    assert.ok(v.actions.length > 0);
    for (const act of v.actions) {
      assert.equal(labelArgmax(v.labels, act.start, 5), 4);
      if (act.end - 1 < v.length) assert.equal(labelArgmax(v.labels, act.end - 1, 5), 4);
      for (let t = act.start + 1; t < Math.min(act.end - 1, v.length); t++) assert.equal(labelArgmax(v.labels, t, 5), act.label);
    }
  }
  assert.equal(small({ ambiguousSteps: 0 }).ambiguousClass, null);
  assert.throws(() => small({ noise: -1 }), /noise must be a finite number >= 0/);
});

/** Per-class mean feature of the chunks `pick` selects (by the class it assigns, -1 to skip). */
function classMeans(streams: FeatureStream[], D: number, K: number, pick: (v: FeatureStream, t: number) => number): Float64Array[] {
  const sums = Array.from({ length: K }, () => new Float64Array(D));
  const counts = new Array<number>(K).fill(0);
  for (const v of streams) {
    for (let t = 0; t < v.length; t++) {
      const k = pick(v, t);
      if (k < 0) continue;
      counts[k]!++;
      for (let i = 0; i < D; i++) sums[k]![i]! += v.camera[t * D + i]!;
    }
  }
  return sums.map((s, k) => s.map((x) => x / Math.max(1, counts[k]!)));
}

function nearest(means: Float64Array[], x: Float32Array): number {
  let best = 0;
  let bestD = Infinity;
  means.forEach((m, k) => {
    let d = 0;
    for (let i = 0; i < m.length; i++) d += (m[i]! - x[i]!) ** 2;
    if (d < bestD) { bestD = d; best = k; }
  });
  return best;
}

test('synthetic actions are learnable: class means recognise action chunks, and a cue before onsets announces the class', () => {
  const K = 5;
  const D = 16;
  const set = new OadSyntheticStreams({ videos: 12, testVideos: 6, length: 200, classes: K, cameraDim: D, motionDim: 8, noise: 0.5, seed: 1 });
  const C = K + 2;
  const actionClass = (v: FeatureStream, t: number) => { const c = labelArgmax(v.labels, t, C); return c >= 1 && c <= K ? c - 1 : -1; };
  const means = classMeans(set.videosSync('train'), D, K, actionClass);
  let right = 0;
  let total = 0;
  for (const v of set.videosSync('test')) {
    for (let t = 0; t < v.length; t++) {
      const k = actionClass(v, t);
      if (k < 0) continue;
      total++;
      if (nearest(means, v.camera.subarray(t * D, (t + 1) * D)) === k) right++;
    }
  }
  assert.ok(total > 200);
  assert.ok(right / total > 3 / K, `action chunks: nearest class mean right on ${right}/${total}, chance ${1 / K}`);

  // The chunk before an onset is background, yet its features tell which action comes: onsets are
  // found from the labels alone (background, then ambiguous, then the action).
  const upcoming = (v: FeatureStream, t: number): number => {
    if (t + 2 >= v.length || labelArgmax(v.labels, t, C) !== 0 || labelArgmax(v.labels, t + 1, C) !== K + 1) return -1;
    const c = labelArgmax(v.labels, t + 2, C);
    return c >= 1 && c <= K ? c - 1 : -1;
  };
  const cueMeans = classMeans(set.videosSync('train'), D, K, upcoming);
  right = 0;
  total = 0;
  for (const v of set.videosSync('test')) {
    for (let t = 0; t < v.length; t++) {
      const k = upcoming(v, t);
      if (k < 0) continue;
      total++;
      if (nearest(cueMeans, v.camera.subarray(t * D, (t + 1) * D)) === k) right++;
    }
  }
  assert.ok(total >= 20);
  assert.ok(right / total > 3 / K, `pre-onset chunks: the coming class is right on ${right}/${total}, chance ${1 / K}`);
});

test('the official THUMOS\'14 and TVSeries lists: classes, ambiguous class, split sizes', () => {
  const { thumos14, tvseries } = OAD_BENCHMARKS;
  assert.equal(thumos14.classNames.length, 22);
  assert.equal(thumos14.classNames[thumos14.ambiguousClass!], 'Ambiguous');
  assert.equal(thumos14.train.length, 200);
  assert.equal(thumos14.test.length, 213);
  assert.ok(thumos14.train.every((n) => /^video_validation_\d{7}$/.test(n)));
  assert.ok(thumos14.test.every((n) => /^video_test_\d{7}$/.test(n)));
  assert.equal(tvseries.classNames.length, 31);
  assert.equal(tvseries.train.length, 20);
  assert.equal(tvseries.test.length, 7);
});
