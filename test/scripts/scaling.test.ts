// The cost model of scripts/dist/scaling.ts against hand-computed cases and its limits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bucketSizes, NETWORKS, predictStep, PRESETS, ringAllReduceSeconds, scalingSvg, workerCounts, workloadsFromArgs, type Network, type Workload,
} from '../../scripts/dist/scaling.js';

const MB = 1 << 20;
const net: Network = { name: 'test', alpha: 1e-5, beta: 1e9 };
const workload = (o: Partial<Workload> = {}): Workload => ({
  name: 'w', computeSeconds: 1, backwardShare: 0.5, gradientBytes: 100 * MB, bucketBytes: 25 * MB, firstBucketBytes: MB, source: 'test', ...o,
});

test('a ring all-reduce costs 2(N−1) latencies and 2(N−1)/N of the bytes', () => {
  assert.ok(Math.abs(ringAllReduceSeconds(1e6, 4, net) - (6 * 1e-5 + 1.5 * 1e-3)) < 1e-12);
  assert.equal(ringAllReduceSeconds(1e6, 1, net), 0);
  assert.equal(ringAllReduceSeconds(0, 8, net), 0);
  assert.throws(() => ringAllReduceSeconds(1, 0, net), /positive integer/);
});

test('buckets: a small first one, full ones, the rest last; they add up to the gradient', () => {
  assert.deepEqual(bucketSizes(60 * MB, 25 * MB, MB), [MB, 25 * MB, 25 * MB, 9 * MB]);
  assert.deepEqual(bucketSizes(MB / 2, 25 * MB, MB), [MB / 2]);
  assert.deepEqual(bucketSizes(0, 25 * MB, MB), []);
});

test('one worker, or a free network, scales perfectly', () => {
  for (const w of [workload(), ...Object.values(PRESETS)]) {
    for (const n of NETWORKS) assert.equal(predictStep(w, 1, n).efficiency, 1);
    for (const n of workerCounts(512)) assert.equal(predictStep(w, n, { name: 'free', alpha: 0, beta: Infinity }).efficiency, 1);
  }
});

test('efficiency never rises with more workers', () => {
  for (const w of [workload(), workload({ gradientBytes: 3 * MB, backwardShare: 1 }), ...Object.values(PRESETS)]) {
    for (const n of NETWORKS) {
      const eff = workerCounts(512).map((k) => predictStep(w, k, n).efficiency);
      for (let i = 1; i < eff.length; i++) assert.ok(eff[i]! <= eff[i - 1]!, `${w.name} on ${n.name}: ${eff.join(', ')}`);
      assert.ok(eff.at(-1)! < 1, `${w.name} on ${n.name}: communication costs something at 512 workers`);
    }
  }
});

test('what fits behind backward is hidden, except the last bucket', () => {
  // Two 1 MB buckets, ready at 0.5 s and 1 s of a 1 s backward; each all-reduce takes t < 0.5 s.
  const w = workload({ backwardShare: 1, gradientBytes: 2 * MB, bucketBytes: MB, firstBucketBytes: MB });
  const t = ringAllReduceSeconds(MB, 4, net);
  const p = predictStep(w, 4, net);
  assert.ok(Math.abs(p.stepSeconds - (1 + t)) < 1e-12, `step ${p.stepSeconds}, want ${1 + t}`);
  assert.ok(Math.abs(p.exposedCommSeconds - t) < 1e-12);
  assert.ok(Math.abs(p.commSeconds - 2 * t) < 1e-12);
});

test('communication longer than backward queues up and is exposed', () => {
  // 1 s of forward, 1 s of backward, two buckets of 1e9 bytes on 2 workers at 1 GB/s: 1 s each.
  const slow: Network = { name: 'slow', alpha: 0, beta: 1e9 };
  const w = workload({ computeSeconds: 2, backwardShare: 0.5, gradientBytes: 2e9, bucketBytes: 1e9, firstBucketBytes: 1e9 });
  // The first bucket is ready at 0.5 s into backward and ends at 1.5 s; the second starts then, ends at 2.5 s.
  const p = predictStep(w, 2, slow);
  assert.ok(Math.abs(p.stepSeconds - 3.5) < 1e-12, `step ${p.stepSeconds}`);
  assert.ok(Math.abs(p.efficiency - 2 / 3.5) < 1e-12);
});

test('flags override a preset, and bad figures are refused by name', () => {
  const [w] = workloadsFromArgs(['--preset', 'vit-b16', '--compute-s', '2']);
  assert.equal(w!.computeSeconds, 2);
  assert.equal(w!.gradientBytes, PRESETS['vit-b16']!.gradientBytes);
  assert.throws(() => workloadsFromArgs(['--preset', 'nope']), /unknown --preset 'nope'/);
  assert.throws(() => predictStep(workload({ backwardShare: 0 }), 2, net), /backwardShare/);
});

test('the plot draws one line per curve and a marker per reference point', () => {
  const svg = scalingSvg(
    [{ label: 'a', points: [{ workers: 1, efficiency: 1 }, { workers: 4, efficiency: 0.5 }] }, { label: 'b & c', points: [{ workers: 1, efficiency: 1 }] }],
    [{ label: 'r', workers: 4, efficiency: 0.9 }],
    'title',
  );
  assert.match(svg, /^<svg [^>]*>/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal((svg.match(/<path d="M[^"]*" fill="none"/g) ?? []).length, 2);
  assert.match(svg, /M60\.0 40\.0 L470\.0 215\.0/); // (1, 1) to (4, 0.5) on the 410 × 350 plot area
  assert.match(svg, /b &amp; c/);
  assert.match(svg, />90%</);
});
