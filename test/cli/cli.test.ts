// The glimpse command line, run as a user runs it: a separate process; every command that takes
// --model loads it the same way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { ScenesDataset } from '../../src/data/scenes.js';
import type { HFConfig } from '../../src/io/hf.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import { tempDirs } from '../helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('glimpse info --json reports the backend and its threads', () => {
  const r = run('info', '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { backend: string; threads: number; native: boolean };
  assert.ok(['native', 'reference'].includes(info.backend));
  assert.ok(info.threads >= 1);
  assert.equal(info.backend === 'native', info.native);
});


test('glimpse --version and -V print the version in package.json', () => {
  const pkg = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = run(flag);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version, flag);
  }
});

// A scene rendered to a PNG, and a CLIP folder whose text model embeds fewer tokens than CLIP's
// packaged tokenizer has, saved without tokenizer.json.
const tmp = tempDirs('cli');
const workDir = tmp();
fs.mkdirSync(workDir, { recursive: true });
const photo = path.join(workDir, 'scene.png');
const scene = (await new ScenesDataset('val', { size: 32, length: 1, supersample: 1 }).get(0)).image;
if (scene.kind !== 'pixels') throw new Error('scenes render pixels');
await sharp(Buffer.from(scene.image.data), { raw: { width: scene.image.width, height: scene.image.height, channels: 3 } }).png().toFile(photo);

test('glimpse classify refuses a registered name without weights, and says how to get them', () => {
  const r = run('classify', photo, '--model', 'openai/clip-vit-base-patch32', '--labels', 'cat', 'dog');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^glimpse: model 'ViT-B-32' has no weights: /);
  assert.match(r.stderr, /Hugging Face repo openai\/clip-vit-base-patch32: download it into a folder \(config\.json \+ model\.safetensors/);
  assert.match(r.stderr, /--weights <folder>\) or as the model itself \(--model <folder>\)/);
  assert.match(r.stderr, /--random-init on the command line/);
  // Every command that takes --model loads it the same way.
  for (const args of [['embed', photo, '--model', 'test-clip'], ['caption', photo, '--model', 'test-blip'],
    ['eval', 'zeroshot', '--model', 'test-siglip', '--data', 'scenes:val', '--limit', '2'],
    ['eval', 'linear-probe', '--model', 'test-vit', '--data', 'scenes:val', '--limit', '2'],
    ['filter', '--model', 'test-clip', '--data', 'scenes:val', '--keep', '0.5', '--out', path.join(workDir, 'f')]]) {
    const e = run(...args);
    assert.equal(e.status, 1, args.join(' '));
    assert.match(e.stderr, /has no weights: .*--random-init/, args.join(' '));
  }
});

test('glimpse classify --random-init builds a registered name untrained; --weights and --random-init exclude each other', () => {
  const r = run('classify', photo, '--model', 'test-clip', '--random-init', '--labels', 'cat', 'dog', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { image: string; predictions: { label: string }[] }[];
  assert.deepEqual(out.map((o) => o.image), [photo]);
  assert.deepEqual(out[0]!.predictions.map((p) => p.label).sort(), ['cat', 'dog']);
  const both = run('classify', photo, '--model', 'test-clip', '--random-init', '--weights', workDir, '--labels', 'cat');
  assert.equal(both.status, 1);
  assert.match(both.stderr, /--weights\) and init: 'random' \(--random-init\) exclude each other/);
});

test('glimpse classify: a --model path that does not exist is a missing folder, not an unknown name', () => {
  const r = run('classify', photo, '--model', 'runs/x/model', '--labels', 'cat');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^glimpse: runs\/x\/model: the model folder does not exist/);
  assert.doesNotMatch(r.stderr, /unknown model/);
});

test('glimpse classify: a folder without tokenizer.json whose vocabulary CLIP\'s tokenizer exceeds names the folder and --tokenizer', async () => {
  const entry = getModelEntry('test-clip');
  const dir = path.join(workDir, 'clip-vocab-99');
  modelFromConfig({ ...entry.config, text_config: { ...(entry.config.text_config as HFConfig), vocab_size: 99 } }).savePretrained(dir);
  const r = run('classify', photo, '--model', dir, '--labels', 'cat', 'dog');
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`^glimpse: ${dir}: no tokenizer\\.json, and the tokenizer packaged for CLIP has 49408 tokens, but the text model embeds 99`));
  assert.match(r.stderr, /add the tokenizer\.json the model was trained with to the folder, or pass its folder as the tokenizer option \(--tokenizer <folder>\)/);
  assert.doesNotMatch(r.stderr, /indexSelect/);
});
