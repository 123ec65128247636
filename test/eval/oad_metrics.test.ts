import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { evalCommands } from '../../src/cli/eval.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { frameLevelAP, readOadScores } from '../../src/eval/oad.js';
import { assertClose, findShared, rng, runCommand, sharedNotFound, tempDirs } from '../helpers.js';

const tmp = tempDirs('oad-metrics');
const oad = () => evalCommands().find((c) => c.name() === 'oad')!;
const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;

/** One action class after a background row that the metrics never read. */
const oneClass = (scores: number[], labels: number[]) => frameLevelAP([scores.map(() => 0), scores], [labels.map(() => 0), labels]);

/**
 * AP and cAP by their definition over thresholds: for each positive frame, precision (and
 * calibrated precision) of "score >= its score" over all frames; the mean over the positives.
 * Equal to the ranked walk when no scores tie.
 */
function referenceAP(scores: readonly number[], labels: readonly number[]): { ap: number; cap: number } {
  const positives = labels.filter((y) => y === 1).length;
  const w = (labels.length - positives) / positives;
  let ap = 0;
  let cap = 0;
  scores.forEach((threshold, i) => {
    if (labels[i] !== 1) return;
    let tp = 0;
    let fp = 0;
    scores.forEach((s, j) => {
      if (s >= threshold) labels[j] === 1 ? tp++ : fp++;
    });
    ap += tp / (tp + fp);
    cap += (w * tp) / (w * tp + fp);
  });
  return { ap: ap / positives, cap: cap / positives };
}

test('oad metrics: the fixture matches the official frame_level_map_n_cap', async (t) => {
  const dir = findShared('fixtures/oadtr', 'metrics_inputs.safetensors');
  if (dir === null) return t.skip(sharedNotFound());
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'metrics_expected.json'), 'utf8')) as
    { mAP: number; mcAP: number; per_class_AP: number[]; per_class_cAP: number[] };
  const { probs, labels } = readOadScores(path.join(dir, 'metrics_inputs.safetensors'));
  const r = frameLevelAP(probs, labels);
  assert.equal(r.perClassAP.length, expected.per_class_AP.length);
  assertClose(r.perClassAP, expected.per_class_AP, 0, 1e-12, 'per-class AP');
  assertClose(r.perClassCAP, expected.per_class_cAP, 0, 1e-12, 'per-class cAP');
  assertClose([r.mAP, r.mcAP], [expected.mAP, expected.mcAP], 0, 1e-12, 'mAP, mcAP');

  const cli = lastJson(await runCommand(oad(), ['--scores', path.join(dir, 'metrics_inputs.safetensors'), '--json']));
  assertClose(cli.per_class_AP as number[], expected.per_class_AP, 0, 1e-12, 'CLI per_class_AP');
  assertClose(cli.per_class_cAP as number[], expected.per_class_cAP, 0, 1e-12, 'CLI per_class_cAP');
  assertClose([cli.mAP as number, cli.mcAP as number], [expected.mAP, expected.mcAP], 0, 1e-12, 'CLI mAP, mcAP');
});

test('oad metrics: perfect and reversed rankings, by hand', () => {
  const perfect = oneClass([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]);
  assert.deepEqual([perfect.perClassAP, perfect.perClassCAP, perfect.mAP, perfect.mcAP], [[1], [1], 1, 1]);
  // Positives at ranks 4 and 5 of 5: precisions 1/4, 2/5; w = 3/2, calibrated 1.5/(1.5+3), 3/(3+3).
  const reversed = oneClass([0.1, 0.2, 0.7, 0.8, 0.9], [1, 1, 0, 0, 0]);
  assertClose(reversed.perClassAP, [(1 / 4 + 2 / 5) / 2], 0, 1e-15, 'reversed AP');
  assertClose(reversed.perClassCAP, [(1 / 3 + 1 / 2) / 2], 0, 1e-15, 'reversed cAP');
  // w weights positives: with few positives cAP exceeds AP (it is AP at a balanced 1:1 ratio).
  const rare = oneClass([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0, 1, 0, 0, 0, 0]);
  assertClose([rare.perClassAP[0]!, rare.perClassCAP[0]!], [1 / 2, 5 / (5 + 1)], 0, 1e-15, 'one positive at rank 2');
});

test('oad metrics: the mean is over action classes only, in class order; the background row is never read', () => {
  const probs = [[NaN, 7, -1], [0.9, 0.1, 0.5], [0.1, 0.9, 0.5]];
  const labels = [[0.5, 3, 0], [1, 0, 0], [1, 0, 0]];
  const r = frameLevelAP(probs, labels);
  assertClose(r.perClassAP, [1, (1 / 3)], 0, 1e-15, 'per class');
  assertClose([r.mAP], [(1 + 1 / 3) / 2], 0, 1e-15, 'mAP');
  assert.deepEqual([r.classes, r.frames, r.positives], [3, 3, [1, 1]]);
});

test('oad metrics: tied scores rank in frame order (numpy stable argsort)', () => {
  // Positives at ranks 2 and 4: (1/2 + 2/4) / 2; at ranks 1 and 3: (1 + 2/3) / 2. w = 1 makes cAP = AP.
  const later = oneClass([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]);
  const earlier = oneClass([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]);
  assertClose([...later.perClassAP, ...later.perClassCAP], [0.5, 0.5], 0, 1e-15, 'positives after their ties');
  assertClose([...earlier.perClassAP, ...earlier.perClassCAP], [5 / 6, 5 / 6], 0, 1e-15, 'positives before their ties');
  // Frames tied below a higher-scored negative rank after it.
  const partial = oneClass([0.2, 0.9, 0.2], [1, 0, 1]);
  assertClose(partial.perClassAP, [(1 / 2 + 2 / 3) / 2], 0, 1e-15, 'tie below a negative');
});

test('oad metrics: infinite scores rank at the ends; -0 ties with 0', () => {
  const r = oneClass([-Infinity, Infinity, 0, -0], [0, 1, 0, 1]);
  // Order: frame 1 (+inf, positive), frame 2 (0), frame 3 (-0, positive), frame 0 (-inf).
  assertClose(r.perClassAP, [(1 + 2 / 3) / 2], 0, 1e-15, 'AP');
});

test('oad metrics: matrices as rows or as shape + data (any numeric typed array) agree', () => {
  const r = rng(3);
  const classes = 4;
  const frames = 50;
  const probs = new Float32Array(classes * frames).map(() => r());
  const labels = new BigInt64Array(classes * frames).map((_, i) => BigInt(i % frames < 2 || r() < 0.3 ? 1 : 0));
  const rows = (data: ArrayLike<number | bigint>) => Array.from({ length: classes }, (_, c) => Array.from({ length: frames }, (_, f) => Number(data[c * frames + f])));
  assert.deepEqual(frameLevelAP({ shape: [classes, frames], data: probs }, { shape: [classes, frames], data: labels }), frameLevelAP(rows(probs), rows(labels)));
});

test('oad metrics: agree with the O(n^2) threshold definition on random scores', () => {
  const r = rng(11);
  for (const [classes, frames, rate] of [[2, 7, 0.5], [5, 40, 0.1], [8, 300, 0.05], [3, 1000, 0.6]] as const) {
    const probs = Array.from({ length: classes }, () => Array.from({ length: frames }, () => r()));
    const labels = Array.from({ length: classes }, () => {
      const row = Array.from({ length: frames }, () => (r() < rate ? 1 : 0));
      row[Math.floor(r() * frames)] = 1;
      row[(row.indexOf(1) + 1) % frames] = 0;
      return row;
    });
    const got = frameLevelAP(probs, labels);
    const want = probs.slice(1).map((p, c) => referenceAP(p, labels[c + 1]!));
    assertClose(got.perClassAP, want.map((x) => x.ap), 0, 1e-12, `AP, ${classes}x${frames}`);
    assertClose(got.perClassCAP, want.map((x) => x.cap), 0, 1e-12, `cAP, ${classes}x${frames}`);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assertClose([got.mAP, got.mcAP], [mean(want.map((x) => x.ap)), mean(want.map((x) => x.cap))], 0, 1e-12, 'means');
  }
});

test('oad metrics: classes without positives or negatives are an error, or the official NaN on request', () => {
  const probs = [[0, 0, 0], [0.3, 0.2, 0.1], [0.3, 0.2, 0.1], [0.3, 0.2, 0.1]];
  const noPositive = [[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]];
  assert.throws(() => frameLevelAP(probs, noPositive), /class 2 has no positive frame: its AP is undefined/);
  const allPositive = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]];
  assert.throws(() => frameLevelAP(probs, allPositive), /class 3 has no negative frame: its calibrated AP is undefined/);

  const r = frameLevelAP(probs, noPositive, { emptyClasses: 'nan' });
  assert.equal(r.perClassAP[0], 1);
  assert.ok(Number.isNaN(r.perClassAP[1]) && Number.isNaN(r.perClassCAP[1]), 'no positive: NaN AP and cAP');
  // All positive: every precision is 1, but the calibrated one is 0/0.
  assert.equal(r.perClassAP[2], 1);
  assert.ok(Number.isNaN(r.perClassCAP[2]), 'no negative: NaN cAP');
  assert.ok(Number.isNaN(r.mAP) && Number.isNaN(r.mcAP), 'a NaN class makes the means NaN');
  assert.throws(() => frameLevelAP(probs, noPositive, { emptyClasses: 'skip' as 'nan' }), /emptyClasses must be 'error' or 'nan', got 'skip'/);
});

test('oad metrics: NaN scores, soft labels and mismatched shapes are errors naming the place', () => {
  assert.throws(() => frameLevelAP([[0, 0, 0], [0.1, NaN, 0.3]], [[0, 0, 0], [1, 0, 0]]), /probs\[1, 1\] \(class 1, frame 1\) is NaN/);
  assert.throws(() => frameLevelAP([[0, 0, 0], [0.1, 0.2, 0.3]], [[0, 0, 0], [1, 0.5, 0]]), /labels\[1, 1\] \(class 1, frame 1\) is 0.5; labels must be 0 or 1/);
  assert.throws(() => frameLevelAP([[0, 0, 0], [0.1, 0.2, 0.3]], [[0, 0], [1, 0]]), /probs are \[2, 3\] but labels are \[2, 2\]/);
  assert.throws(() => frameLevelAP([[0, 0], [0.1, 0.2, 0.3]], [[0, 0], [1, 0]]), /probs row 1 has 3 frames, row 0 has 2/);
  assert.throws(() => frameLevelAP({ shape: [2, 3], data: [1, 2] }, [[0, 0, 0], [1, 0, 0]]), /probs has 2 values for shape \[2, 3\]/);
  assert.throws(() => frameLevelAP({ shape: [6], data: [0, 0, 0, 1, 2, 3] }, [[0, 0, 0], [1, 0, 0]]), /probs must be \[classes, frames\], got shape \[6\]/);
  assert.throws(() => frameLevelAP([[0.1, 0.2]], [[1, 0]]), /need background \(class 0\) and at least one action class/);
  assert.throws(() => frameLevelAP([[], []], [[], []]), /no frames/);
});

function writeScores(file: string, probs: number[][], labels: number[][], names = { probs: 'probs', labels: 'labels' }): string {
  const matrix = (m: number[][]) => ({ shape: [m.length, m[0]!.length], data: Float32Array.from(m.flat()) });
  writeSafetensors(file, { [names.probs]: matrix(probs), [names.labels]: matrix(labels) });
  return file;
}

test('eval oad: --json prints the function\'s result as one object on the last line; text names the metrics', async () => {
  const dir = tmp();
  fs.mkdirSync(dir, { recursive: true });
  const r = rng(5);
  const probs = Array.from({ length: 4 }, () => Array.from({ length: 30 }, () => r()));
  const labels = probs.map((row, c) => row.map((_, f) => (f % (c + 2) === 0 ? 1 : 0)));
  const file = writeScores(path.join(dir, 'scores.safetensors'), probs, labels);
  const expected = frameLevelAP(probs.map((row) => Float32Array.from(row)), labels);

  const out = await runCommand(oad(), ['--scores', file, '--json']);
  const j = lastJson(out);
  assert.deepEqual(
    [j.mAP, j.mcAP, j.per_class_AP, j.per_class_cAP, j.classes, j.frames],
    [expected.mAP, expected.mcAP, expected.perClassAP, expected.perClassCAP, 4, 30],
  );
  const text = await runCommand(oad(), ['--scores', file]);
  assert.match(text, /^online action detection on .*: 30 frames, 3 action classes \(class 0 background skipped\)\n {2}mAP +\d+\.\d\d% +mcAP +\d+\.\d\d%\n/);
  assert.equal(text.split('\n').filter((l) => /^ {2}class +\d+ {2}AP/.test(l)).length, 3);

  // --empty-classes nan: the undefined class is null in JSON, and so are the means.
  const empty = writeScores(path.join(dir, 'empty.safetensors'), [[0, 0], [0.9, 0.1], [0.5, 0.4]], [[0, 0], [1, 0], [0, 0]]);
  await assert.rejects(runCommand(oad(), ['--scores', empty, '--json']), /empty\.safetensors: frameLevelAP: class 2 has no positive frame/);
  const nan = lastJson(await runCommand(oad(), ['--scores', empty, '--json', '--empty-classes', 'nan']));
  assert.deepEqual([nan.per_class_AP, nan.mAP], [[1, null], null]);
  await assert.rejects(runCommand(oad(), ['--scores', empty, '--empty-classes', 'skip']), /--empty-classes must be error or nan, got 'skip'/);
});

test('eval oad: a file without probs/labels, mismatched shapes, soft labels or not safetensors is a clear error', async () => {
  const dir = tmp();
  fs.mkdirSync(dir, { recursive: true });
  const renamed = writeScores(path.join(dir, 'renamed.safetensors'), [[0, 0], [1, 0]], [[0, 0], [1, 0]], { probs: 'scores', labels: 'labels' });
  await assert.rejects(runCommand(oad(), ['--scores', renamed]), /no tensor 'probs' \(it holds 'labels', 'scores'\)/);
  const mismatch = path.join(dir, 'mismatch.safetensors');
  writeSafetensors(mismatch, { probs: { shape: [2, 3], data: new Float32Array(6) }, labels: { shape: [3, 2], data: new Float32Array(6) } });
  await assert.rejects(runCommand(oad(), ['--scores', mismatch]), /probs are \[2, 3\] but labels are \[3, 2\]/);
  const flat = path.join(dir, 'flat.safetensors');
  writeSafetensors(flat, { probs: { shape: [6], data: new Float32Array(6) }, labels: { shape: [6], data: new Float32Array(6) } });
  await assert.rejects(runCommand(oad(), ['--scores', flat]), /'probs' has shape \[6\]; it must be \[classes, frames\]/);
  const soft = writeScores(path.join(dir, 'soft.safetensors'), [[0, 0], [0.3, 0.2]], [[0, 0], [1, 0.25]]);
  await assert.rejects(runCommand(oad(), ['--scores', soft]), /labels\[1, 1\] \(class 1, frame 1\) is 0.25; labels must be 0 or 1/);
  const text = path.join(dir, 'scores.txt');
  fs.writeFileSync(text, 'not scores\n');
  await assert.rejects(runCommand(oad(), ['--scores', text]), /scores\.txt: not a score file this version reads/);
  await assert.rejects(runCommand(oad(), ['--scores', path.join(dir, 'absent.safetensors')]), /absent\.safetensors: no such file/);
});
