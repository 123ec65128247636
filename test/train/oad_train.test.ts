// The oad task through the trainer: OadTR on the synthetic feature streams trains, writes a run
// folder, resumes bit-identically, and its evaluation's saved predictions give the same mAP
// through `glimpse eval oad --scores`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runOad } from '../../src/cli/eval.js';
import { OadTR } from '../../src/models/oadtr.js';
import { ConfigError, loadConfig, resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { predictionsFile } from '../../src/train/evaluate_oad.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('train-oad');
const STREAMS = { oadSynthetic: { videos: 8, testVideos: 4, length: 96 } };
const CUSTOM = { family: 'oadtr', width: 32, layers: 1, heads: 2, mlp_ratio: 2, decoder_layers: 1, decoder_heads: 2, decoder_mlp_dim: 32, window: 8, queries: 4, dropout: 0.1 };

function oadConfig(out: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: { custom: CUSTOM }, task: 'oad', steps: 30, batch_size: 16, log_every: 1, seed: 3,
    data: { train: 'oad-synthetic:train', val: 'oad-synthetic:test', options: STREAMS },
    optim: { lr: 3e-3, warmup_steps: 2 }, checkpoint: { every: 10 }, eval: { every: 15, batch_size: 32 },
    out, ...extra,
  });
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('oad: a run trains, writes its folder, and its saved predictions give eval/mAP through glimpse eval oad', async () => {
  const out = newDir();
  const r = await train(oadConfig(out), { progress: 'none' });
  assert.equal(r.stopped.reason, 'steps');
  const losses = r.losses.map((l) => l.loss);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(mean(losses.slice(-5)) < mean(losses.slice(0, 5)), `the loss did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);

  for (const f of ['config.yaml', 'metrics.jsonl', 'report.html', 'model/config.json', 'model/model.safetensors']) assert.ok(fs.existsSync(path.join(out, f)), `no ${f}`);
  assert.deepEqual(fs.readdirSync(path.join(out, 'checkpoints')).filter((d) => d.startsWith('step-')).sort(), ['step-00000020', 'step-00000030']);
  const model = OadTR.fromPretrained(path.join(out, 'model'));
  assert.equal(model.window, 8);
  assert.equal(model.queries, 4);
  assert.equal(model.numClasses, 6); // background, 4 actions, ambiguous

  for (const k of ['eval/mAP', 'eval/mcAP', 'eval/anticipation_top1@1', 'eval/anticipation_top1@4']) {
    assert.ok(k in r.metrics, `no ${k} in ${Object.keys(r.metrics).join(', ')}`);
    assert.ok(r.metrics[k]! >= 0 && r.metrics[k]! <= 1, `${k} = ${r.metrics[k]}`);
  }
  const records = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.deepEqual(records.filter((x) => 'eval/mAP' in x).map((x) => x.step), [15, 30]);

  for (const step of [15, 30]) {
    const saved = runOad({ scores: predictionsFile(oadConfig(out), step) });
    assert.equal(saved.classes, 5, 'the ambiguous class is left out of the scored classes');
    const logged = records.find((x) => x.step === step && 'eval/mAP' in x)!;
    assert.equal(saved.mAP, logged['eval/mAP']);
    assert.equal(saved.mcAP, logged['eval/mcAP']);
  }
  // Training moved the model: the two evaluations scored different probabilities.
  const [a, b] = [15, 30].map((s) => runOad({ scores: predictionsFile(oadConfig(out), s) }));
  assert.notDeepEqual(a!.perClassAP, b!.perClassAP);
});

test('oad: a resumed run computes bit-identical losses and metrics', async () => {
  const straight = await train(oadConfig(newDir(), { steps: 20, eval: { every: 0, batch_size: 32 } }), { progress: 'none' });
  const out = newDir();
  const config = oadConfig(out, { steps: 20, eval: { every: 0, batch_size: 32 } });
  const first = await train(config, { progress: 'none', stopAfterStep: 10 });
  assert.equal(first.stopped.reason, 'interrupted');
  const resumed = await train(config, { progress: 'none', resume: true });
  assert.equal(resumed.resumedFrom?.step, 10);
  assert.deepEqual([...first.losses, ...resumed.losses], straight.losses);
  assert.deepEqual(resumed.metrics, straight.metrics);
});

test('oad: a per-frame classifier is the same model on a window of one chunk', async () => {
  const r = await train(oadConfig(newDir(), { model: { custom: { ...CUSTOM, window: 1 } }, steps: 5, eval: { every: 0, batch_size: 32 } }), { progress: 'none' });
  assert.equal(r.model.model.kind === 'online-action-detector' && r.model.model.window, 1);
  assert.ok('eval/mAP' in r.metrics);
});

test('oad: config errors name the key', async () => {
  const base = { model: { custom: CUSTOM }, task: 'oad', steps: 1, data: { train: 'oad-synthetic:train' } };
  assert.throws(() => resolveConfig({ ...base, model: { custom: { ...CUSTOM, family: 'vit' } } }),
    (e: Error) => e instanceof ConfigError && /model\.custom\.family: the oad task trains oadtr, not vit/.test(e.message));
  assert.throws(() => resolveConfig({ ...base, patch_dropout: 0.5 }), (e: Error) => e instanceof ConfigError && /patch_dropout/.test(e.message));
  assert.throws(() => resolveConfig({ ...base, lock_image: true }), (e: Error) => e instanceof ConfigError && /lock_image/.test(e.message));
  await assert.rejects(train(resolveConfig({ ...base, model: { custom: { ...CUSTOM, width: 30, decoder_heads: 4, heads: 2 } }, out: newDir() }), { progress: 'none' }),
    /model\.custom\.decoder_heads: width 30 is not a multiple of decoder_heads 4/);
  await assert.rejects(train(resolveConfig({ ...base, data: { train: 'scenes:train' }, out: newDir() }), { progress: 'none' }),
    /scenes is (an image dataset|a set)|not feature streams/);
  await assert.rejects(train(resolveConfig({ ...base, data: { train: 'oad-synthetic:train', val: 'oad-synthetic:test', options: STREAMS, val_options: { oadSynthetic: { classes: 3 } } }, out: newDir() }), { progress: 'none' }),
    /config: data\.val: oad-synthetic:test has class names/);
  // A window longer than the videos leaves no training window.
  await assert.rejects(train(resolveConfig({ ...base, model: { custom: { ...CUSTOM, window: 200 } }, data: { train: 'oad-synthetic:train', options: STREAMS }, out: newDir() }), { progress: 'none' }),
    /no window of 200 \+ 4 chunks fits/);
});

test('oad: the configs resolve, the official one with the official sizes', () => {
  const official = loadConfig(path.join('configs', 'oad-synthetic.yaml'));
  assert.equal(official.task, 'oad');
  const c = official.model.custom!;
  assert.deepEqual([c.window, c.layers, c.decoder_layers, c.queries, c.width, c.heads, c.decoder_heads], [64, 3, 5, 8, 1024, 8, 4]);
  assert.deepEqual([official.optim.lr, official.optim.weight_decay], [1e-4, 5e-4]);
  assert.equal(loadConfig(path.join('configs', 'oad-synthetic-small.yaml')).task, 'oad');
});
