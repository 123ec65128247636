// Parity fixtures as a new user meets them: where the tests look for the shared ones.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { findShared, sharedNotFound, sharedRoots, tempDirs } from '../helpers.js';

const newDir = tempDirs('parity-fixtures');

test('the shared fixtures: GLIMPSE_SHARED is searched first, and the skip message names every folder searched and the variable', () => {
  const saved = process.env.GLIMPSE_SHARED;
  const dir = newDir();
  fs.mkdirSync(path.join(dir, 'fixtures/hf/vit'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'fixtures/hf/vit/config.json'), '{}');
  try {
    process.env.GLIMPSE_SHARED = dir;
    assert.equal(sharedRoots()[0], dir);
    assert.equal(findShared('fixtures/hf/vit', 'config.json'), path.join(dir, 'fixtures/hf/vit'));
    const message = sharedNotFound();
    for (const root of sharedRoots()) assert.ok(message.includes(root), `${root} in: ${message}`);
    assert.ok(message.includes(path.resolve('../shared')), message);
    assert.match(message, /set GLIMPSE_SHARED to the shared\/ folder/);
  } finally {
    if (saved === undefined) delete process.env.GLIMPSE_SHARED;
    else process.env.GLIMPSE_SHARED = saved;
  }
});
