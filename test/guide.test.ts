// docs/GUIDE.md's examples run as they stand: every `js` block, in order, as a program importing
// 'glimpse' the way an installed package is imported, in one folder holding an image photo.png.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { ScenesDataset } from '../src/data/scenes.js';
import { tempDirs } from './helpers.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const guide = fs.readFileSync(path.join(repo, 'docs', 'GUIDE.md'), 'utf8');
const examples = [...guide.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);

test('every example of docs/GUIDE.md runs', async () => {
  assert.ok(examples.length >= 8, `${examples.length} examples found`);
  const dir = tempDirs('guide')();
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  fs.symlinkSync(repo, path.join(dir, 'node_modules', 'glimpse'), 'dir');
  const scene = (await new ScenesDataset('test', { size: 32, length: 1, supersample: 1 }).get(0)).image;
  if (scene.kind !== 'pixels') throw new Error('scenes render pixels');
  const { width, height, data } = scene.image;
  await sharp(Buffer.from(data), { raw: { width, height, channels: 3 } }).png().toFile(path.join(dir, 'photo.png'));
  examples.forEach((code, i) => {
    const file = path.join(dir, `example-${i + 1}.mjs`);
    fs.writeFileSync(file, code);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, [file], { cwd: dir, env, encoding: 'utf8' });
    const heading = guide.slice(0, guide.indexOf(code)).match(/^## (.*)$/gm)?.at(-1) ?? '';
    assert.equal(r.status, 0, `example ${i + 1} (${heading}) failed:\n${code}\n${r.stderr}`);
    assert.notEqual(r.stdout.trim(), '', `example ${i + 1} (${heading}) printed nothing`);
  });
});
