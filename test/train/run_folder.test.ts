// What a run leaves in its folder and says about itself: the saved model remembers the zero-shot
// prompts it was evaluated with, each family's folder holds what reads its inputs, an earlier run
// is never overwritten unasked, a resumed run says where it resumes from, and every run says why
// it stopped, with one final loss in the result, the CLI summary and the report.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { formatTrainResult, runTrainCommand } from '../../src/cli/train.js';
import { zeroShotCommand } from '../../src/cli/eval.js';
import { SCENE_CLASS_NAMES } from '../../src/data/scenes.js';
import { openDataset } from '../../src/data/registry.js';
import { evaluateZeroShot } from '../../src/eval/classification.js';
import { DEFAULT_TEMPLATES, loadVisionLanguageModel, readZeroShotConfig, zeroShotClassify } from '../../src/tasks/zeroshot.js';
import { randn } from '../../src/tensor/index.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { MetricsLog } from '../../src/train/progress.js';
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

/** What a call writes to stderr (progress lines and logs), and its result. */
async function stderrOf<T>(f: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => { stderr += chunk.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { result: await f(), stderr };
  } finally {
    process.stderr.write = write;
  }
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

test('a folder with an earlier run is refused without --resume or --overwrite; --overwrite deletes that run first', async () => {
  const out = newDir();
  await train(clipConfig(out), { progress: 'none' });
  fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
  const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
  const refused = await train(clipConfig(out, { steps: 1 }), { progress: 'none' }).then(() => null, (e: Error) => e);
  assert.ok(refused, 'the second run was refused');
  assert.ok(refused.message.includes(out), refused.message);
  assert.match(refused.message, /already holds a run \(checkpoints\/, metrics\.jsonl\).*--resume.*--overwrite/);
  assert.equal(fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), metrics, 'the earlier run is untouched');
  await assert.rejects(runTrainCommand({ config: undefined, overrides: [['model', 'test-clip'], ['steps', '1'], ['data.train', 'scenes:train']], out, progress: 'none' }),
    /already holds a run/);
  await assert.rejects(train(clipConfig(out), { progress: 'none', resume: true, overwrite: true }), /--resume and --overwrite exclude each other/);

  const { result: r, stderr } = await stderrOf(() => train(clipConfig(out, { steps: 1, checkpoint: { every: 0 } }), { progress: 'lines', overwrite: true }));
  assert.match(stderr, /overwrite: deleted the earlier run's checkpoints, metrics\.jsonl, report\.html, model, config\.yaml in /);
  assert.deepEqual(fs.readdirSync(path.join(out, 'checkpoints')).filter((f) => f.startsWith('step-')), ['step-00000001']);
  assert.deepEqual(new MetricsLog(path.join(out, 'metrics.jsonl')).read().map((x) => x.step), [1]);
  assert.equal(r.step, 1);
  assert.equal(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'mine', 'files that are not the run\'s stay');
});

test('--resume says which checkpoint it continues from, at which step of how many', async () => {
  const out = newDir();
  const first = await train(clipConfig(out), { progress: 'none', stopAfterStep: 2 });
  assert.equal(first.stopped.reason, 'interrupted');
  assert.match(first.stopped.message, /stopped at step 2 of 4: interrupted; no final model; --resume continues from .*step-00000002/);
  const { result, stderr } = await stderrOf(() => runTrainCommand({ resume: true, out, progress: 'lines' }));
  const checkpoint = path.join(out, 'checkpoints', 'step-00000002');
  assert.ok(stderr.includes(`resuming from ${checkpoint}: step 2 of 4`), stderr);
  assert.deepEqual(result.resumedFrom, { checkpoint, step: 2 });
  assert.equal(result.stopped.reason, 'steps');
});

test('a run says why it stopped: its steps, its time budget, a time limit; one final loss in the result, the CLI and the report', async () => {
  const out = newDir();
  const r = await train(clipConfig(out, { steps: 5, log_every: 3 }), { progress: 'none' });
  assert.deepEqual(r.stopped, { reason: 'steps', message: 'stopped after 5 steps: the run\'s 5 steps are done' });
  // The last window (steps 4 and 5) is logged though 5 is no multiple of log_every; its mean is the final loss.
  const records = new MetricsLog(path.join(out, 'metrics.jsonl')).read();
  assert.deepEqual(records.filter((x) => x.loss !== undefined).map((x) => x.step), [3, 5]);
  assert.equal(r.finalLoss, (r.losses[3]!.loss + r.losses[4]!.loss) / 2);
  assert.notEqual(r.finalLoss, r.losses[4]!.loss);
  const summary = formatTrainResult(r);
  assert.match(summary, new RegExp(`final loss +${r.finalLoss!.toFixed(4)} `));
  assert.match(summary, /stopped after 5 steps/);
  const html = fs.readFileSync(r.reportFile!, 'utf8');
  assert.match(html, new RegExp(`<th>final loss</th><td class="num">${r.finalLoss!.toFixed(4)}</td>`));
  assert.match(html, /<th>stopped<\/th><td class="num">stopped after 5 steps: the run&#39;s 5 steps are done<\/td>/);

  // Every step takes 50 ms on this clock; no real time passes.
  let now = 0;
  const clock = () => now;
  const onGradients = () => { now += 50; };
  const budget = await train(clipConfig(newDir(), { steps: null, time_budget_s: 0.2 }), { progress: 'none', clock, onGradients });
  assert.equal(budget.stopped.reason, 'time_budget');
  assert.match(budget.stopped.message, /^stopped after 4 steps: the time budget \(time_budget_s 0\.2\) is spent, 0\.2 s of training steps$/);
  const limited = await train(clipConfig(newDir(), { steps: 10 }), { progress: 'none', clock, onGradients, timeBudgetSeconds: 0.15 });
  assert.equal(limited.stopped.reason, 'time_limit');
  assert.equal(limited.step, 3);
  assert.match(limited.stopped.message, /^stopped at step 3 of 10: the time limit of 0\.15 s \(wall clock\) was reached; the lr schedule was cut short$/);
  assert.ok(limited.modelDir !== null, 'a time limit ends the run as a finished one');
});
