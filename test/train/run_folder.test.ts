// What a run leaves in its folder: the saved model remembers the zero-shot prompts it was
// evaluated with, and each family's folder holds what reads its inputs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { zeroShotCommand } from '../../src/cli/eval.js';
import { SCENE_CLASS_NAMES } from '../../src/data/scenes.js';
import { openDataset } from '../../src/data/registry.js';
import { evaluateZeroShot } from '../../src/eval/classification.js';
import { DEFAULT_TEMPLATES, loadVisionLanguageModel, readZeroShotConfig, zeroShotClassify } from '../../src/tasks/zeroshot.js';
import { randn } from '../../src/tensor/index.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('run-folder');
const SCENES = { scenes: { length: 48, size: 32, supersample: 1 } };

/** A tiny CLIP on a few small scenes: each step takes milliseconds. */
function clipConfig(out: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: 'test-clip', task: 'clip', steps: 4, batch_size: 8, log_every: 1, seed: 3,
    data: { train: 'scenes:train', options: SCENES, workers: 0 },
    optim: { lr: 2e-3, warmup_steps: 1 },
    checkpoint: { every: 2, keep: 2 },
    out,
    ...extra,
  });
}

/** What a commander command prints with console.log. */
async function printed(cmd: Command, args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(s);
  try {
    await new Command().exitOverride().addCommand(cmd).parseAsync(args, { from: 'user' });
  } finally {
    console.log = log;
  }
  return lines;
}

test('the saved model remembers its zero-shot prompts: eval zeroshot on the folder gives the run\'s own figure', async () => {
  const out = newDir();
  const templates = ['a {}.', 'a photo of a {}.'];
  const valOptions = { scenes: { length: 40 } };
  const r = await train(clipConfig(out, {
    steps: 3,
    data: { train: 'scenes:train', val: 'scenes:test', options: SCENES, val_options: valOptions, workers: 0 },
    eval: { every: 2, templates, batch_size: 16 },
  }), { progress: 'none' });
  const runTop1 = r.metrics['eval/zeroshot_top1'];
  assert.equal(typeof runTop1, 'number');
  assert.deepEqual(readZeroShotConfig(r.modelDir!), { templates, classNames: SCENE_CLASS_NAMES });
  assert.deepEqual((await loadVisionLanguageModel(r.modelDir!)).zeroShot?.templates, templates);

  // The same data as the run's evaluation; the templates come from the folder.
  const args = ['zeroshot', '--model', r.modelDir!, '--data', 'scenes:test', '--data-options', JSON.stringify({ scenes: { ...SCENES.scenes, ...valOptions.scenes } }),
    '--batch-size', '16', '--json'];
  const again = JSON.parse((await printed(zeroShotCommand(), args)).at(-1)!);
  assert.equal(again.templates, 2);
  assert.equal(again.top1, runTop1);
  assert.equal(again.top5, r.metrics['eval/zeroshot_top5']);
  // Templates given on the command line win.
  const given = JSON.parse((await printed(zeroShotCommand(), [...args, '--template', 'a photo of a {}.'])).at(-1)!);
  assert.equal(given.templates, 1);

  // classify's prompts default to the folder's too; a dataset without class names takes the folder's.
  const vl = await loadVisionLanguageModel(r.modelDir!);
  const pixels = randn([2, 3, 32, 32]);
  const logits = async (t?: readonly string[]) => (await zeroShotClassify(vl, pixels, ['red circle', 'blue star'], { templates: t })).logits.toArray();
  assert.deepEqual(await logits(), await logits(templates));
  assert.notDeepEqual(await logits(), await logits(DEFAULT_TEMPLATES));
  const test = await openDataset('scenes:test', { scenes: { ...SCENES.scenes, length: 8 } });
  const unnamed = await evaluateZeroShot(vl, { name: 'unnamed', length: test.length, get: (i) => test.get(i) });
  assert.deepEqual(unnamed.perClass.map((c) => c.name), SCENE_CLASS_NAMES);
});

test('zeroshot_config.json: a malformed file is named with what is wrong', async () => {
  const dir = newDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'zeroshot_config.json'), JSON.stringify({ templates: ['a photo'] }));
  assert.throws(() => readZeroShotConfig(dir), /a photo.*has no \{\}/);
  fs.writeFileSync(path.join(dir, 'zeroshot_config.json'), JSON.stringify({ templates: [] }));
  assert.throws(() => readZeroShotConfig(dir), /zeroshot_config\.json: "templates" must be a non-empty list/);
  fs.writeFileSync(path.join(dir, 'zeroshot_config.json'), '{templates');
  assert.throws(() => readZeroShotConfig(dir), /zeroshot_config\.json: not valid JSON/);
});

test('every family\'s trained folder holds what reads its inputs: the processor for images, the tokenizer for text', async () => {
  const runs: [string, Record<string, unknown>, boolean, boolean][] = [
    ['siglip', { model: 'test-siglip', task: 'siglip' }, true, true],
    ['vit classifier', { model: 'test-vit', task: 'ce' }, true, false],
    ['mae', { model: 'test-vit-mae', task: 'mae' }, true, false],
  ];
  for (const [name, extra, images, text] of runs) {
    const r = await train(clipConfig(newDir(), { ...extra, steps: 1, checkpoint: { every: 0 } }), { progress: 'none' });
    const has = (f: string) => fs.existsSync(path.join(r.modelDir!, f));
    assert.ok(has('config.json') && has('model.safetensors'), name);
    assert.equal(has('preprocessor_config.json'), images, `${name}: preprocessor_config.json`);
    assert.equal(has('tokenizer.json') && has('tokenizer_config.json'), text, `${name}: tokenizer files`);
    assert.equal(has('zeroshot_config.json'), name === 'siglip', `${name}: zeroshot_config.json`);
  }
});
