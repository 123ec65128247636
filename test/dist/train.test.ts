// Data-parallel training on real ranks: 2 ranks x batch B/2 train as 1 process x batch B (the
// same losses step by step, the same weights after 5 AdamW steps) for CLIP's gathered loss,
// SigLIP's ring loss, ViT classification with FLIP patch dropout, gradient accumulation and a
// LiT-locked tower; a run saved at world size 2 resumes at world size 1; a rank whose config
// differs is refused at the start; a SIGKILLed rank ends the job, its last checkpoint resumable.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { latestCheckpoint, loadCheckpoint } from '../../src/train/checkpoint.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';
import { MPIRUN_ROOT_FLAGS, mpirun, mpiSkipReason, WORKER_ENV } from './mpirun.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'train_worker.js');
const skip = mpiSkipReason();
const newDir = tempDirs('dist-train');

function config(out: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: 'test-clip', task: 'clip', steps: 5, batch_size: 8, log_every: 1, seed: 3,
    data: { train: 'scenes:train', options: { scenes: { length: 48, size: 32, supersample: 1 } }, workers: 0 },
    optim: { lr: 2e-3, warmup_steps: 1 },
    checkpoint: { every: 2, keep: 2 },
    out,
    ...extra,
  });
}

function writeConfig(c: TrainConfig, name = path.basename(c.out)): string {
  fs.mkdirSync(c.out, { recursive: true });
  const file = path.join(path.dirname(c.out), `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(c));
  return file;
}

interface RankResult { losses: { step: number; loss: number }[]; step: number; metrics: Record<string, number>; modelDir: string | null }

function ranTwo(c: TrainConfig, options: Record<string, unknown> = {}, env: Record<string, string> = {}): { results: RankResult[]; output: string } {
  const run = mpirun(2, worker, [writeConfig(c), JSON.stringify(options)], { env });
  assert.equal(run.status, 0, run.output);
  const results = [0, 1].map((r) => JSON.parse(fs.readFileSync(path.join(c.out, `rank-${r}.json`), 'utf8')) as RankResult);
  return { results, output: run.output };
}

function assertClose(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${what}: ${actual}, expected ${expected}`);
}

const CASES: [string, Record<string, unknown>][] = [
  ['CLIP, features gathered; evaluation shared', {
    data: { train: 'scenes:train', val: 'scenes:test', options: { scenes: { length: 48, size: 32, supersample: 1 } }, val_options: { scenes: { length: 13 } }, workers: 0 },
  }],
  ['SigLIP, texts around the ring', { model: 'test-siglip', task: 'siglip' }],
  ['ViT classification with FLIP patch dropout', { model: 'test-vit', task: 'ce', patch_dropout: 0.5 }],
  ['CLIP with gradient accumulation and patch dropout', { patch_dropout: 0.5, optim: { lr: 2e-3, warmup_steps: 1, grad_accum: 2 } }],
  ['LiT: CLIP with the image tower locked', { lock_image: true }],
];

for (const [what, extra] of CASES) {
  test(`2 ranks x B/2 train as 1 process x B: ${what}`, { skip }, async () => {
    const single = await train(config(newDir(), extra), { progress: 'none' });
    const c = config(newDir(), extra);
    const { results } = ranTwo(c);
    for (const r of results) {
      assert.equal(r.losses.length, 5);
      r.losses.forEach(({ loss }, i) => assertClose(loss, single.losses[i]!.loss, 1e-5, `${what}: step ${i + 1}'s loss`));
    }
    assert.equal(results[1]!.modelDir, null, 'only rank 0 writes');
    assert.equal(Object.keys(single.metrics).length > 0, 'data' in extra, 'a run with data.val has metrics');
    for (const r of results) {
      assert.deepEqual(Object.keys(r.metrics), Object.keys(single.metrics));
      for (const [k, v] of Object.entries(single.metrics)) assertClose(r.metrics[k]!, v, 1e-4, `${what}: ${k}`);
    }
    const a = loadSafetensors(path.join(single.modelDir!, 'model.safetensors')).tensors;
    const b = loadSafetensors(path.join(results[0]!.modelDir!, 'model.safetensors')).tensors;
    let worst = { diff: 0, at: '' };
    for (const k of Object.keys(a).filter((name) => !/(k_proj|\.key)\.bias$/.test(name))) {
      const x = a[k]!.data as Float32Array;
      const y = b[k]!.data as Float32Array;
      for (let i = 0; i < x.length; i++) if (Math.abs(x[i]! - y[i]!) > worst.diff) worst = { diff: Math.abs(x[i]! - y[i]!), at: `${k}[${i}]` };
    }
    // AdamW divides by the root of the second moment: a gradient that differs in its last bits
    // moves a weight by a small fraction of lr (2e-3) per step. The attention keys' biases are
    // left out: softmax is blind to them, their true gradient is 0, and AdamW scales what rounding
    // leaves there up to steps of lr's size, differently in any two summation orders.
    assert.ok(worst.diff < 1e-5, `${what}: the weights differ by up to ${worst.diff} (${worst.at})`);
  });
}

test('a run saved at world size 2 resumes at world size 1 on the same global batches', { skip }, async () => {
  const out = newDir();
  const c = config(out, { steps: 6 });
  ranTwo(c, { stopAfterStep: 4 });
  const state = loadCheckpoint(latestCheckpoint(out)!).state;
  assert.equal(state.step, 4);
  assert.equal(state.samplesSeen, 32, '4 steps of the global batch of 8');
  const straight = await train(config(newDir(), { steps: 6 }), { progress: 'none' });
  const resumed = await train(config(out, { steps: 6 }), { progress: 'none', resume: true });
  assert.deepEqual(resumed.losses.map((l) => l.step), [5, 6]);
  resumed.losses.forEach(({ loss }, i) => assertClose(loss, straight.losses[4 + i]!.loss, 1e-5, `step ${5 + i}`));
});

test('a rank whose config differs is refused at the start, naming the difference', { skip }, () => {
  const c = config(newDir());
  const other = writeConfig(config(c.out, { optim: { lr: 1e-3, warmup_steps: 1 } }), `${path.basename(c.out)}-rank1`);
  const run = mpirun(2, worker, [writeConfig(c)], { env: { GLIMPSE_TEST_RANK1_CONFIG: other } });
  assert.notEqual(run.status, 0, run.output);
  assert.match(run.output, /rank 1's config differs from rank 0's: config\.optim\.lr: 0\.002 on rank 0, 0\.001 on rank 1/);
  assert.ok(!fs.existsSync(path.join(c.out, 'checkpoints')), 'nothing was trained');
});

test('a SIGKILLed rank ends the job with a message naming it; the last checkpoint resumes', { skip }, async () => {
  const out = newDir();
  const c = config(out, { steps: 100000, checkpoint: { every: 2, keep: 2 } });
  const job = spawn('mpirun', [...MPIRUN_ROOT_FLAGS, '--oversubscribe', '-n', '2', process.execPath, worker, writeConfig(c)], {
    env: { ...process.env, GLIMPSE_NUM_THREADS: '1', [WORKER_ENV]: '1' },
  });
  let output = '';
  job.stdout.on('data', (d) => { output += d; });
  job.stderr.on('data', (d) => { output += d; });
  const exited = new Promise<number | null>((resolve) => job.on('exit', (code) => resolve(code)));
  // Kill rank 1 once two checkpoints exist, so one is complete whatever rank 0 is doing.
  const checkpoints = path.join(out, 'checkpoints');
  while (!(fs.existsSync(checkpoints) && fs.readdirSync(checkpoints).filter((d) => d.startsWith('step-')).length >= 2)) {
    assert.equal(job.exitCode, null, `the job ended before its second checkpoint:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(Number(fs.readFileSync(path.join(out, 'rank-1.pid'), 'utf8')), 'SIGKILL');
  // The job must end by itself: a hung one fails here after 30 s.
  const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref());
  const code = await Promise.race([exited, timeout]);
  if (code === 'hung') job.kill('SIGKILL');
  assert.notEqual(code, 'hung', `the job still runs 30 s after rank 1 was killed:\n${output}`);
  assert.notEqual(code, 0);
  assert.match(output, /rank 1\b/, output);
  const last = latestCheckpoint(out)!;
  const step = loadCheckpoint(last).state.step;
  const resumed = await train(config(out, { steps: step + 1 }), { progress: 'none', resume: true });
  assert.deepEqual(resumed.losses.map((l) => l.step), [step + 1]);
});
