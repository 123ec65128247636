// The training report's charts: ticks, scaling, and a self-contained page.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../src/train/config.js';
import { lineChart, niceTicks, renderReport } from '../../src/train/report.js';

test('niceTicks: round steps spanning the range', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.13, 0.52), [0.2, 0.3, 0.4, 0.5]);
  assert.deepEqual(niceTicks(-3, 3, 3), [-2, 0, 2]);
  assert.deepEqual(niceTicks(5, 5), [5]);
});

test('lineChart: one path per series in the plot area; non-finite points left out; empty data said', () => {
  const svg = lineChart('loss', [{ name: 'a', points: [[0, 1], [1, NaN], [2, 3]] }, { name: 'b', points: [[0, 2], [2, 2]] }], { width: 400, height: 200 });
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(paths.length, 2);
  const coords = paths[0]!.split(/[ML]/).filter(Boolean).map((p) => p.split(',').map(Number));
  assert.equal(coords.length, 2, 'the NaN point is skipped');
  for (const [x, y] of coords) assert.ok(x! >= 64 && x! <= 250 && y! >= 28 && y! <= 160, `${x},${y} inside the plot (left of the legend)`);
  assert.ok(coords[0]![1]! > coords[1]![1]!, 'larger values are drawn higher');
  assert.match(svg, />a<\/text>/);
  assert.match(lineChart('x', [{ name: 'a', points: [] }]), /no data/);
});

test('renderReport: escaped text, charts for loss, lr and evaluations, no external resources', () => {
  const config = resolveConfig({ model: 'test-clip', steps: 2, data: { train: 'scenes:<train>' } });
  const html = renderReport({
    title: 'run <1>', config,
    records: [{ step: 1, epoch: 0, loss: 2, lr: 1e-3, samples_per_s: 10, elapsed_s: 1 }, { step: 2, epoch: 0, loss: 1.5, lr: 5e-4, 'eval/top1': 0.5 }],
    final: { 'eval/top1': 0.5 },
  });
  assert.match(html, /<title>run &#60;1&#62;<\/title>/);
  assert.match(html, /scenes:&#60;train&#62;/);
  assert.equal((html.match(/<svg /g) ?? []).length, 3);
  assert.doesNotMatch(html, /<script|src=|href=/);
});
