// Parity fixtures as a new user meets them: where the tests look for the shared ones, and
// `glimpse parity` on a folder that is not a fixture.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runParity } from '../../src/eval/parity.js';
import { findShared, sharedNotFound, sharedRoots, tempDirs } from '../helpers.js';

const variants = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/hf-variants');
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
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

test('parity on a folder that is not a fixture says what it lacks and what a fixture folder holds', () => {
  // A folder of other reference data (as shared/fixtures/hf/preprocess: pictures and pixel values).
  const dir = newDir();
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'meta.json'), '{"vit": "ViTImageProcessor 64x64"}');
  const layout = /a parity fixture folder holds a checkpoint as HF save_pretrained writes it \(config\.json, model\.safetensors\), the forward's inputs \(inputs\.safetensors\), HF's outputs on them \(outputs\.safetensors\)/;
  assert.throws(() => runParity(dir), (e: Error) => {
    assert.match(e.message, new RegExp(`^parity: ${dir} is not a parity fixture folder \\(it lacks config\\.json, inputs\\.safetensors, outputs\\.safetensors\\)`));
    assert.match(e.message, layout);
    return true;
  });
  // The folder above the fixtures: the error names those that are.
  assert.throws(() => runParity(variants), /Its sub-folders bert_mlm_untied, blip_caption_smoothed_interpolated, .*vit_nonsquare are fixtures$/);
  assert.throws(() => runParity(path.join(dir, 'absent')), /absent does not exist; a parity fixture folder holds/);

  const r = spawnSync(process.execPath, [cli, 'parity', dir], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^glimpse: parity: .* is not a parity fixture folder \(it lacks config\.json/);
  assert.match(r.stderr, layout);
});
