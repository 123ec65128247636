import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { mapping } from '../../src/cli/args.js';
import { runFilter } from '../../src/cli/filter.js';
import { filterDataset, topFraction } from '../../src/eval/filter.js';
import { ScenesDataset } from '../../src/data/scenes.js';
import { WebDataset } from '../../src/data/webdataset.js';
import type { Dataset } from '../../src/data/dataset.js';
import { embedTexts, loadVisionLanguageModel } from '../../src/tasks/zeroshot.js';
import { embedSamples, imageEmbeddingSource } from '../../src/eval/features.js';
import { ImageProcessor } from '../../src/data/image.js';
import { assertClose, tempDirs } from '../helpers.js';

const tmp = tempDirs('filter');

test('topFraction: the best round(f * n) by score, ties by index, at least one', () => {
  assert.deepEqual([...topFraction([0.1, 0.5, 0.3, 0.5, 0.2], 0.4)], [0, 1, 0, 1, 0]);
  assert.deepEqual([...topFraction([0.1, 0.5, 0.3, 0.5, 0.2], 0.3)], [0, 1, 0, 1, 0]); // round(1.5) = 2
  assert.deepEqual([...topFraction([0.5, 0.5, 0.5], 0.34)], [1, 0, 0]);
  assert.deepEqual([...topFraction([0.2, 0.1], 0.01)], [1, 0]);
  assert.deepEqual([...topFraction([0.2, 0.1], 1)], [1, 1]);
  assert.throws(() => topFraction([1], 0), /keepFraction must be in \(0, 1\]/);
  assert.throws(() => topFraction([1], 1.5), /keepFraction/);
});

test('filterDataset: cosine scores, the kept shards read back, scores.jsonl, clean precision and recall', async () => {
  const vl = await loadVisionLanguageModel('test-clip', { init: 'random' });
  const scenes = new ScenesDataset('train', { size: 32, length: 10, corruptCaptions: 0.5, seed: 3, supersample: 1 });
  const out = tmp();
  const report = await filterDataset(vl, scenes, { keepFraction: 0.6, out, batchSize: 4, samplesPerShard: 4 });
  assert.equal(report.samples, 10);
  assert.equal(report.kept, 6);

  // Scores by an independent path: whole-dataset embeddings, then row-wise dots.
  const samples = await Promise.all(Array.from({ length: 10 }, (_, i) => scenes.get(i)));
  const img = await embedSamples(samples, imageEmbeddingSource(vl));
  const txt = await embedTexts(vl, samples.map((s) => s.caption!));
  assertClose(report.scores, img.mul(txt).sum(-1).toArray(), 1e-5, 1e-6, 'cosine scores');
  const order = [...report.scores.keys()].sort((a, b) => report.scores[b]! - report.scores[a]! || a - b);
  assert.deepEqual([...report.keep.keys()].filter((i) => report.keep[i]), order.slice(0, 6).sort((a, b) => a - b));
  assert.equal(report.threshold, report.scores[order[5]!]);

  // The shards: kept samples in dataset order, keys the source index, captions and labels kept.
  assert.deepEqual(report.shards.map((s) => path.basename(s)), ['shard-000000.tar', 'shard-000001.tar']);
  const back = WebDataset.open(path.join(out, 'shard-{000000..000001}.tar'));
  assert.equal(back.length, 6);
  const keptIdx = [...report.keep.keys()].filter((i) => report.keep[i]);
  for (let r = 0; r < 6; r++) {
    const s = await back.get(r);
    const i = keptIdx[r]!;
    assert.equal(s.key, String(i).padStart(6, '0'));
    assert.equal(s.caption, samples[i]!.caption);
    assert.equal(s.label, samples[i]!.label);
  }
  // Images survive the PNG round trip exactly.
  const processor = new ImageProcessor('clip', { size: { shortestEdge: 32 }, cropSize: { height: 32, width: 32 } });
  const first = await back.get(0);
  assert.deepEqual(
    (await embedSamples([first], { imageProcessor: processor, extract: (p) => p.reshape([1, -1]) })).toArray(),
    (await embedSamples([samples[keptIdx[0]!]!], { imageProcessor: processor, extract: (p) => p.reshape([1, -1]) })).toArray());

  const lines = fs.readFileSync(report.scoresFile!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { key: string; index: number; score: number; kept: boolean });
  assert.equal(lines.length, 10);
  lines.forEach((l, i) => {
    assert.deepEqual(l, { key: `scenes/train/${i}`, index: i, score: report.scores[i], kept: report.keep[i] === 1 });
  });

  const cleanIdx = samples.flatMap((s, i) => (s.clean ? [i] : []));
  assert.ok(cleanIdx.length > 0 && cleanIdx.length < 10, 'the corrupted fraction leaves both kinds');
  const cleanKept = cleanIdx.filter((i) => report.keep[i]).length;
  assert.deepEqual(report.clean, { precision: cleanKept / 6, recall: cleanKept / cleanIdx.length, cleanBefore: cleanIdx.length / 10 });
});

test('filterDataset: a threshold, no output folder, and the errors', async () => {
  const vl = await loadVisionLanguageModel('test-clip', { init: 'random' });
  const scenes = new ScenesDataset('val', { size: 32, length: 5, supersample: 1 });
  const all = await filterDataset(vl, scenes, { keepFraction: 1 });
  const mid = [...all.scores].sort((a, b) => a - b)[2]!;
  const r = await filterDataset(vl, scenes, { threshold: mid });
  assert.equal(r.kept, 3);
  assert.equal(r.threshold, mid);
  assert.deepEqual(r.shards, []);
  assert.equal(r.scoresFile, null);
  assert.deepEqual(r.clean, { precision: 1, recall: 3 / 5, cleanBefore: 1 });
  await assert.rejects(filterDataset(vl, scenes, {}), /exactly one of keepFraction and threshold/);
  await assert.rejects(filterDataset(vl, scenes, { keepFraction: 0.5, threshold: 0 }), /exactly one/);
  const noCaption: Dataset = { name: 'bare', length: 1, get: async () => ({ key: 'k', image: { kind: 'pixels', image: { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) } } }) };
  await assert.rejects(filterDataset(vl, noCaption, { keepFraction: 0.5 }), /sample k of bare has no caption/);
});

test('glimpse filter: --data-options opens the dataset as a config would (corrupted scene captions)', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-filter-cli-'));
  try {
    const r = await runFilter({ model: 'test-clip', randomInit: true, data: 'scenes', dataOptions: { scenes: { length: 40, size: 32, corruptCaptions: 0.3 } }, keep: 0.5, out });
    assert.equal(r.samples, 40);
    assert.equal(r.kept, 20);
    assert.ok(r.clean, 'corrupted captions carry clean flags, so precision and recall are reported');
    assert.throws(() => mapping('--data-options')('[1]'), /--data-options must be a mapping/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
