// Progress lines: the step, its total and an ETA once the run's length is known, and neither a
// made-up total nor an ETA while it is not (a time budget before its first step).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, formatDuration } from '../../src/train/progress.js';

const values = { loss: 0.5, lr: 1e-3, samplesPerSec: 100 };

test('lines mode: step/total with an ETA, "?" for both while the length is unknown', () => {
  const lines: string[] = [];
  const progress = new Progress('lines', (l) => lines.push(l));
  progress.start(null, 0);
  progress.update(25, null, values);
  progress.update(26, null, null); // not a log step: no line
  progress.update(50, 200, values);
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^step 25\/\? {2}loss 0\.5000 {2}lr 1\.000e-3 {2}100\.0 samples\/s {2}ETA \?$/);
  assert.match(lines[1]!, /^step 50\/200 {2}.* ETA \d+s$/);
});

test('formatDuration: seconds, minutes, hours; "?" for what is not a duration', () => {
  assert.deepEqual([formatDuration(59.4), formatDuration(61), formatDuration(3725), formatDuration(NaN), formatDuration(-1)], ['59s', '1m01s', '1h02m', '?', '?']);
});
