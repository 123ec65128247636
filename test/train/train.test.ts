// The trainer: exact resumption (in process and after SIGKILL), divergence handling, LiT locking,
// gradient accumulation, and the outputs (HF folder, metrics, report).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Dataset, Sample } from '../../src/data/dataset.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { embedTexts, loadVisionLanguageModel } from '../../src/tasks/zeroshot.js';
import { runTrainCommand } from '../../src/cli/train.js';
import { latestCheckpoint, loadCheckpoint } from '../../src/train/checkpoint.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { MetricsLog } from '../../src/train/progress.js';
import { makeLoader, openDatasets, type BatchSource } from '../../src/train/data.js';
import { visionLanguageModel } from '../../src/train/evaluate.js';
import { buildTrainModel } from '../../src/train/model_setup.js';
import { microBatchSize, train, TrainingDivergedError } from '../../src/train/trainer.js';
import YAML from 'yaml';
import { rng, tempDirs } from '../helpers.js';

/** A tiny CLIP on a few small scenes: each step takes milliseconds. */
function clipConfig(out: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: 'test-clip', task: 'clip', steps: 8, batch_size: 8, log_every: 1, seed: 3,
    data: { train: 'scenes:train', options: { scenes: { length: 48, size: 32, supersample: 1 } }, workers: 0 },
    optim: { lr: 2e-3, warmup_steps: 2 },
    checkpoint: { every: 4, keep: 2 },
    out,
    ...extra,
  });
}

// The child half of the SIGKILL test: this file, run with TRAIN_CHILD_CONFIG set, trains and is killed.
const childConfig = process.env.TRAIN_CHILD_CONFIG;
if (childConfig) {
  await runTrainCommand({ config: childConfig, progress: 'none' });
  process.exit(0);
}

const newDir = tempDirs('train');

test('a resumed run computes bit-identical losses and weights to an uninterrupted one', async () => {
  const extra = { patch_dropout: 0.5, optim: { lr: 2e-3, warmup_steps: 2, grad_accum: 2, grad_clip: 1 } };
  const straight = await train(clipConfig(newDir(), extra), { progress: 'none' });
  assert.equal(straight.losses.length, 8);

  const out = newDir();
  const first = await train(clipConfig(out, extra), { progress: 'none', stopAfterStep: 4 });
  assert.equal(first.step, 4);
  assert.equal(first.modelDir, null, 'an interrupted run writes no final model');
  assert.match(latestCheckpoint(out)!, /step-00000004$/);
  // The second half decodes with a worker thread: the data must not depend on it.
  const resumed = await train(clipConfig(out, { ...extra, data: { ...clipConfig(out).data, workers: 1 } }), { progress: 'none', resume: true });
  assert.deepEqual([...first.losses, ...resumed.losses], straight.losses);
  const a = loadSafetensors(path.join(straight.modelDir!, 'model.safetensors')).tensors;
  const b = loadSafetensors(path.join(resumed.modelDir!, 'model.safetensors')).tensors;
  for (const k of Object.keys(a)) assert.deepEqual(b[k]!.data, a[k]!.data, k);
  // The metrics of the two halves join into one record per step.
  const steps = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('resuming checks the checkpoint fits the config', async () => {
  const out = newDir();
  await assert.rejects(train(clipConfig(out), { resume: true, progress: 'none' }), /no checkpoint/);
  await train(clipConfig(out, { steps: 4 }), { progress: 'none' });
  await assert.rejects(train(clipConfig(out, { steps: 8, batch_size: 16 }), { resume: true, progress: 'none' }), /batch_size: differs from the checkpoint/);
});

/** The training loader with the pixels of batch `bad` (epoch 0) replaced by NaN. */
function poisoned(source: BatchSource, bad: number): BatchSource {
  return {
    batchesPerEpoch: source.batchesPerEpoch,
    close: () => source.close(),
    async *batches(from) {
      for await (const b of source.batches(from)) {
        if (b.position.epoch === 0 && b.position.batch === bad && 'pixelValues' in b) {
          yield { ...b, pixelValues: b.pixelValues.mul(Number.NaN) };
        } else {
          yield b;
        }
      }
    },
  };
}

test('a NaN loss stops the run with its step number and keeps the last good checkpoint', async () => {
  const out = newDir();
  const config = clipConfig(out, { checkpoint: { every: 2, keep: 1 } });
  const datasets = await openDatasets(config);
  const setup = await buildTrainModel(config);
  const loader = makeLoader(datasets.trainDataset, setup, config, { batchSize: 8, rank: 0, worldSize: 1 });
  const err = await train(config, { progress: 'none', data: { ...datasets, train: poisoned(loader, 4) } }).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof TrainingDivergedError, String(err));
  assert.equal(err.step, 5);
  assert.match(err.message, /NaN at step 5/);
  assert.match(err.message, /step-00000004/);
  const ckpt = loadCheckpoint(latestCheckpoint(out)!);
  assert.equal(ckpt.state.step, 4);
  for (const [k, t] of Object.entries(ckpt.model)) assert.ok((t.data as Float32Array).every(Number.isFinite), k);
  await loader.close();
});

async function waitFor(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a run killed with SIGKILL loses at most the steps since its last checkpoint', async () => {
  const out = newDir();
  fs.mkdirSync(out, { recursive: true });
  const cfgFile = path.join(out, 'run.yaml');
  fs.writeFileSync(cfgFile, [
    'model: test-clip', 'steps: 400', 'batch_size: 8', 'log_every: 1', 'seed: 5',
    'data: {train: "scenes:train", options: {scenes: {length: 48, size: 32, supersample: 1}}, workers: 0}',
    'checkpoint: {every: 5, keep: 2}', `out: ${JSON.stringify(out)}`, '',
  ].join('\n'));
  const env: NodeJS.ProcessEnv = { ...process.env, TRAIN_CHILD_CONFIG: cfgFile };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const metricsFile = path.join(out, 'metrics.jsonl');
  const loggedSteps = () => (fs.existsSync(metricsFile) ? fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l) as { step: number; loss: number }) : []);
  try {
    await waitFor(() => loggedSteps().length >= 12 || child.exitCode !== null, 'the child to train 12 steps');
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL', `the child ended by itself: ${stderr.slice(-2000)}`);
  const logged = loggedSteps();
  const last = logged[logged.length - 1]!.step;
  const saved = loadCheckpoint(latestCheckpoint(out)!).state.step;
  assert.ok(saved <= last && last - saved <= 5, `checkpoint at ${saved}, last step ${last}`);

  // Resumed, the next steps repeat what the killed run logged for them exactly.
  const config = resolveConfig({ ...JSON.parse(JSON.stringify(loadCheckpoint(latestCheckpoint(out)!).state.config)) });
  const redo = Math.min(3, last - saved);
  const resumed = await train(config, { resume: true, progress: 'none', stopAfterStep: saved + Math.max(1, redo) });
  const before = new Map(logged.map((r) => [r.step, r.loss]));
  for (const { step, loss } of resumed.losses) if (before.has(step)) assert.equal(loss, before.get(step), `step ${step}`);
  assert.equal(resumed.losses[0]!.step, saved + 1);
});

function paramsOf(m: { namedParameters(): [string, { data(): unknown }][] }): Map<string, Float32Array> {
  return new Map(m.namedParameters().map(([n, p]) => [n, p.data() as Float32Array]));
}

test('LiT: lock_image freezes the image tower; unlock_last_blocks trains its last blocks and head', async () => {
  const config = clipConfig(newDir(), { steps: 2, lock_image: true });
  const init = paramsOf((await buildTrainModel(config)).model);
  const locked = paramsOf((await train(config, { progress: 'none' })).model.model);
  const unchanged = (now: Map<string, Float32Array>, n: string) => Buffer.compare(Buffer.from(now.get(n)!.buffer), Buffer.from(init.get(n)!.buffer)) === 0;
  for (const n of locked.keys()) {
    if (n.startsWith('vision_model.') || n.startsWith('visual_projection.')) assert.ok(unchanged(locked, n), `${n} changed`);
  }
  for (const n of ['text_model.encoder.layers.0.mlp.fc1.weight', 'text_projection.weight', 'logit_scale']) assert.ok(!unchanged(locked, n), `${n} did not change`);
  const partial = paramsOf((await train(clipConfig(newDir(), { steps: 2, lock_image: true, unlock_last_blocks: 1 }), { progress: 'none' })).model.model);
  const same = (n: string) => unchanged(partial, n);
  assert.ok(same('vision_model.encoder.layers.0.mlp.fc1.weight'));
  assert.ok(same('vision_model.embeddings.patch_embedding.weight'));
  assert.ok(!same('vision_model.encoder.layers.1.mlp.fc1.weight'));
  assert.ok(!same('vision_model.post_layernorm.weight'));
  assert.ok(!same('visual_projection.weight'));
});

/** Labelled random images: a dataset for the classifier task. */
function labelled(n: number, classes: number, seed: number): Dataset {
  const r = rng(seed);
  const samples: Sample[] = Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(32 * 32 * 3);
    for (let j = 0; j < data.length; j++) data[j] = Math.floor(r() * 256);
    return { key: `img${i}`, image: { kind: 'pixels', image: { width: 32, height: 32, data } }, label: i % classes };
  });
  return { name: 'random', length: n, classNames: Array.from({ length: classes }, (_, c) => `class ${c}`), get: async (i) => samples[i]! };
}

test('ce: gradient accumulation gives the loss of the whole batch; accuracy is evaluated', async () => {
  const ds = labelled(32, 3, 7);
  const run = async (accum: number) => {
    const config = resolveConfig({
      model: 'test-vit', task: 'ce', steps: 2, batch_size: 8, log_every: 1, seed: 1, out: newDir(),
      data: { train: 'unused', workers: 0 }, optim: { lr: 1e-3, grad_accum: accum },
    });
    const setup = await buildTrainModel(config, { classNames: ds.classNames });
    const loader = makeLoader(ds, setup, config, { batchSize: 8 / accum, rank: 0, worldSize: 1 });
    try {
      return await train(config, { progress: 'none', data: { trainDataset: ds, train: loader, val: ds } });
    } finally {
      await loader.close();
    }
  };
  const whole = await run(1);
  const split = await run(2);
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(whole.losses[i]!.loss - split.losses[i]!.loss) < 1e-5, `step ${i + 1}: ${whole.losses[i]!.loss} vs ${split.losses[i]!.loss}`);
  assert.ok(whole.metrics['eval/top1']! >= 0 && whole.metrics['eval/top1']! <= 1);
});

test('the trained model is saved in HF layout, loads for the tasks, and the run writes metrics and a report', async () => {
  const out = newDir();
  const r = await train(clipConfig(out, { steps: 3, data: { ...clipConfig(out).data, val: 'scenes:test' }, eval: { max_samples: 16 } }), { progress: 'none' });
  for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json', 'tokenizer.json']) assert.ok(fs.existsSync(path.join(r.modelDir!, f)), f);
  const loaded = await loadVisionLanguageModel(r.modelDir!);
  const texts = ['a red circle', 'two shapes: a small blue star above a green square'];
  const mine = (await embedTexts(visionLanguageModel(r.model, 'trained'), texts)).data();
  assert.deepEqual((await embedTexts(loaded, texts)).data(), mine);
  assert.ok(r.metrics['eval/zeroshot_top1'] !== undefined && r.metrics['eval/t2i_R@1'] !== undefined, JSON.stringify(r.metrics));

  const records = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(records.filter((x) => x.loss !== undefined).map((x) => x.step), [1, 2, 3]);
  for (const x of records.filter((x) => x.loss !== undefined)) for (const k of ['epoch', 'lr', 'samples_per_s']) assert.equal(typeof x[k], 'number', k);
  assert.equal(records.at(-1).step, 3);
  assert.equal(typeof records.at(-1)['eval/zeroshot_top1'], 'number');

  const html = fs.readFileSync(r.reportFile!, 'utf8');
  assert.equal((html.match(/<svg /g) ?? []).length, 5, 'loss, lr, accuracy, retrieval and per-attribute charts');
  assert.doesNotMatch(html, /<script|<link|src="(?!data:image\/png;base64,)|href=/, 'self-contained: pictures are embedded');
  assert.match(html, /training loss/);
});

test('catlip: the image tower learns caption words; the head and vocabulary are saved beside the model', async () => {
  const r = await train(clipConfig(newDir(), { task: 'catlip', steps: 3 }), { progress: 'none' });
  assert.equal(r.losses.length, 3);
  assert.ok(r.losses.every(({ loss }) => Number.isFinite(loss) && loss > 0));
  const head = loadSafetensors(path.join(r.modelDir!, 'catlip_head.safetensors')).tensors;
  const vocab = JSON.parse(fs.readFileSync(path.join(r.modelDir!, 'catlip.json'), 'utf8')).vocab;
  assert.deepEqual(head['proj.weight']!.shape, [vocab.words.length, 16]);
  assert.ok(vocab.words.includes('circle') || vocab.words.includes('square'), vocab.words.join(' '));
});

test('glimpse train: a config file, dotted and --set overrides, --json', async () => {
  const { Command } = await import('commander');
  const { trainCommand, trainCommandConfig } = await import('../../src/cli/train.js');
  const out = newDir();
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, 'c.yaml');
  fs.writeFileSync(file, 'model: test-clip\nsteps: 9\nbatch_size: 4\ndata: {train: "scenes:train", options: {scenes: {length: 16, size: 32, supersample: 1}}, workers: 0}\n');
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    const program = new Command().exitOverride().addCommand(trainCommand());
    await program.parseAsync(['train', '--config', file, '--steps', '2', '--set', 'optim.lr=1e-3', '--out', out, '--progress', 'none', '--json'], { from: 'user' });
  } finally {
    console.log = log;
  }
  const r = JSON.parse(printed.at(-1)!);
  assert.equal(r.step, 2);
  assert.equal(r.model, path.join(out, 'model'));
  const saved = YAML.parse(fs.readFileSync(path.join(out, 'config.yaml'), 'utf8'));
  assert.equal(saved.optim.lr, 1e-3);
  assert.equal(saved.steps, 2);
  // --resume with only the run folder reads its config.yaml; a longer run continues from step 2.
  const more = await runTrainCommand({ resume: true, out, overrides: [['steps', '3']], progress: 'none' });
  assert.deepEqual(more.losses.map((l) => l.step), [3]);
  assert.throws(() => trainCommandConfig({ resume: true }), /--resume without --config needs --out/);
  assert.throws(() => trainCommandConfig({}), /give --config <file> or the keys as flags/);
});

test('siglip: starts at t = 10, b = -10; FLIP patch dropout changes what the step sees', async () => {
  const config = clipConfig(newDir(), { model: 'test-siglip', task: 'siglip', steps: 2 });
  const setup = await buildTrainModel(config);
  const m = setup.model as unknown as { logitScale: { item(): number }; logitBias: { item(): number } };
  assert.ok(Math.abs(m.logitScale.item() - Math.log(10)) < 1e-6);
  assert.equal(m.logitBias.item(), -10);
  const plain = await train(config, { progress: 'none' });
  const flip = await train(clipConfig(newDir(), { model: 'test-siglip', task: 'siglip', steps: 2, patch_dropout: 0.5 }), { progress: 'none' });
  assert.ok(plain.losses.every(({ loss }) => Number.isFinite(loss)) && flip.losses.every(({ loss }) => Number.isFinite(loss)));
  assert.notEqual(flip.losses[0]!.loss, plain.losses[0]!.loss);
});

test('onGradients sees every trainable gradient each step', async () => {
  const calls: number[] = [];
  const config = clipConfig(newDir(), { steps: 3, lock_image: true });
  const r = await train(config, {
    progress: 'none',
    onGradients: (params) => {
      assert.ok(params.every((p) => p.requiresGrad));
      calls.push(params.filter((p) => p.grad !== null).length);
    },
  });
  const trainable = r.model.model.parameters().filter((p) => p.requiresGrad).length;
  assert.equal(calls.length, 3);
  assert.ok(calls.every((n) => n > 0 && n <= trainable), `${calls} of ${trainable}`);
});

test('batch_size is the global batch: split over ranks and micro-batches, the ranks together reading one process\'s batches', async () => {
  const config = clipConfig(newDir(), { optim: { lr: 2e-3, warmup_steps: 2, grad_accum: 2 } });
  assert.throws(() => microBatchSize(config, 3),
    /config: batch_size: the global batch 8 does not split evenly over 3 processes x grad_accum 2: use a multiple of 6/);
  assert.equal(microBatchSize(config, 2), 2);
  // Each step's samples (2 micro-batches) as a rank's loader gives them.
  const steps = async (rank: number, worldSize: number) => {
    const datasets = await openDatasets(config);
    const setup = await buildTrainModel(config);
    const loader = makeLoader(datasets.trainDataset, setup, config, { batchSize: microBatchSize(config, worldSize), rank, worldSize });
    const keys: string[][] = [];
    try {
      for await (const b of loader.batches({ epoch: 0, batch: 0 })) {
        if (keys.length === 16) break;
        keys.push([...b.keys]);
      }
    } finally {
      await loader.close();
    }
    return Array.from({ length: 8 }, (_, s) => [...keys[2 * s]!, ...keys[2 * s + 1]!]);
  };
  const single = await steps(0, 1);
  const ranks = await Promise.all([0, 1].map((rank) => steps(rank, 2)));
  const two = ranks[0]!.map((_, s) => ranks.flatMap((r) => r[s]!).sort());
  assert.deepEqual(two, single.map((k) => [...k].sort()), 'two ranks read the single process\'s global batches');
});

test('time_budget_s: the schedule follows the seconds of training steps, and the run ends when they are spent though its steps slow down', async () => {
  const budget = (out: string, seconds: number, warmup = 2) => clipConfig(out, {
    steps: null, time_budget_s: seconds, log_every: 1, checkpoint: { every: 22, keep: 1 }, optim: { lr: 2e-3, warmup_steps: warmup },
  });
  // The run's clock: every step takes 35 ms, and 60 ms after the first 25, so a step count fixed
  // from the first steps' pace would overrun the budget. No real time passes.
  let now = 0;
  let calls = 0;
  const clock = () => now;
  const step = () => { now += ++calls > 25 ? 60 : 35; };
  const out = newDir();
  const slowed = await train(budget(out, 1.5), { progress: 'none', clock, onGradients: step });
  assert.ok(slowed.trainSeconds >= 1.5 && slowed.trainSeconds < 1.5 + 0.06, `${slowed.trainSeconds} s of steps for a 1.5 s budget`);
  assert.equal(slowed.step, 25 + Math.ceil((1.5 - 25 * 0.035) / 0.06), 'the steps the budget holds at the slowed pace');
  assert.equal(slowed.step, slowed.totalSteps);
  assert.ok(slowed.modelDir !== null, 'a budgeted run ends as a finished run');
  const lrs = new MetricsLog(path.join(out, 'metrics.jsonl')).read().filter((r) => r.lr !== undefined).map((r) => r.lr!);
  assert.equal(lrs.at(-1), 0, 'the cosine has ended with the budget');
  const decay = lrs.slice(1); // after the warm-up's first step
  assert.ok(decay.every((lr, i) => i === 0 || lr <= decay[i - 1]!), 'the lr only falls after the warm-up');
  const mid = lrs[Math.floor(lrs.length / 2)]!;
  assert.ok(mid > 0 && mid < 2e-3, `the lr halfway: ${mid}`);

  const longWarmup = await train(budget(newDir(), 0.01, 30), { progress: 'none', clock, onGradients: step });
  assert.equal(longWarmup.step, 30, 'a budget shorter than the warm-up ends with it');

  const resumedOut = newDir();
  await train(budget(resumedOut, 3600), { progress: 'none', stopAfterStep: 22, clock, onGradients: step });
  const saved = loadCheckpoint(latestCheckpoint(resumedOut)!).state.extra?.clock as { trainS: number; warmupEndS: number };
  assert.ok(saved.trainS > 0 && saved.warmupEndS > 0 && saved.warmupEndS < saved.trainS, JSON.stringify(saved));
  const resumed = await train(budget(resumedOut, 3600), { progress: 'none', resume: true, stopAfterStep: 23, clock, onGradients: step });
  assert.ok(Math.abs(resumed.trainSeconds - (saved.trainS + 0.06)) < 1e-9, 'the resumed run goes on with the saved clock');
});

test('a warm-up longer than the run is clamped to the run, with a note, and config.yaml records it', async () => {
  const out = newDir();
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    await train(clipConfig(out, { steps: 3, checkpoint: { every: 0 }, optim: { lr: 2e-3, warmup_steps: 10 } }), { progress: 'lines' });
  } finally {
    process.stderr.write = write;
  }
  assert.ok(lines.some((l) => l.includes("optim.warmup_steps 10 is longer than the run's 3 steps: warming up over all 3")), lines.join(''));
  const lrs = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).lr as number);
  // Each record holds the lr after its step: 1/3 and 2/3 of the peak in the warm-up, then the cosine's end.
  assert.deepEqual(lrs.map((lr) => +(lr / 2e-3).toFixed(6)), [0.333333, 0.666667, 0]);
  assert.equal(YAML.parse(fs.readFileSync(path.join(out, 'config.yaml'), 'utf8')).optim.warmup_steps, 3);
});
