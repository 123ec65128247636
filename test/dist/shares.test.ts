import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shareRows } from '../../src/dist/index.js';

test('shareRows splits as evenly as it goes, the first ranks taking the extra rows', () => {
  assert.deepEqual(shareRows(7, 3), [3, 2, 2]);
  assert.deepEqual(shareRows(5, 2), [3, 2]);
  assert.deepEqual(shareRows(1, 3), [1, 0, 0]);
  assert.deepEqual(shareRows(0, 2), [0, 0]);
  assert.deepEqual(shareRows(6, 3), [2, 2, 2]);
});
