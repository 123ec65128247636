// `glimpse demo` (`npm start`): trains a small CLIP from scratch on the built-in scenes for a few
// minutes on the CPU, evaluates it by zero-shot classification of colour-shape pairs never seen in
// training and by image <-> text retrieval, and writes the report. No downloads, no configuration.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { resolveConfig, type TrainConfig } from '../train/config.js';
import { MetricsLog, type ProgressMode } from '../train/progress.js';
import { train, type TrainResult } from '../train/trainer.js';

export interface DemoOptions {
  /** Output folder (default runs/demo). */
  out?: string;
  /** Wall-clock budget for training, in minutes (default 4); the step count is sized to it. */
  minutes?: number;
  /** A fixed number of steps instead of a time budget. */
  steps?: number;
  seed?: number;
  progress?: ProgressMode | 'auto';
  /** Held-out scenes evaluated (default 400). */
  evalSamples?: number;
}

const IMAGE_SIZE = 32;

/** The demo's config: a CLIP of two 3-block towers on 32-pixel scenes, evaluated on the held-out pairs. */
export function demoConfig(out: string, steps: number, seed = 0, evalSamples = 400): TrainConfig {
  return resolveConfig({
    model: {
      custom: {
        family: 'clip', image_size: IMAGE_SIZE, patch_size: 8, width: 128, layers: 3, heads: 4,
        text_width: 128, text_layers: 3, text_heads: 4, context_length: 32, embed_dim: 64,
      },
    },
    task: 'clip',
    data: {
      train: 'scenes:train',
      // The test split holds only colour-shape pairs the training split never shows.
      val: 'scenes:test',
      options: { scenes: { size: IMAGE_SIZE } },
      val_options: { scenes: { length: evalSamples } },
      workers: 1,
    },
    batch_size: 64,
    steps,
    optim: { lr: 5e-4, weight_decay: 0.1, betas: [0.9, 0.98], eps: 1e-6, warmup_steps: Math.min(50, Math.floor(steps / 10)), grad_clip: 1 },
    seed,
    checkpoint: { every: Math.max(1, Math.ceil(steps / 4)), keep: 1 },
    eval: { every: Math.max(1, Math.ceil(steps / 4)), templates: ['a {}.', 'a photo of a {}.'], batch_size: 100 },
    log_every: Math.max(1, Math.min(10, Math.floor(steps / 20))),
    out,
  });
}

/** Seconds per step of the demo model here and now. */
async function secondsPerStep(seed: number): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-demo-calibrate-'));
  try {
    // The first steps are slower (threads starting, the loader filling its queue): they are not timed.
    const c = demoConfig(dir, 10, seed);
    await train({ ...c, data: { ...c.data, val: null }, log_every: 1 }, { progress: 'none' });
    const r = new MetricsLog(path.join(dir, 'metrics.jsonl')).read();
    const at = (s: number) => r.find((x) => x.step === s)?.elapsed_s ?? NaN;
    return (at(10) - at(4)) / 6;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface DemoResult {
  result: TrainResult;
  /** What the command prints. */
  summary: string;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const out = o.out ?? path.join('runs', 'demo');
  const seed = o.seed ?? 0;
  const log = (s: string) => process.stderr.write(`${s}\n`);
  let steps = o.steps;
  let budget: number | undefined;
  if (steps === undefined) {
    const minutes = o.minutes ?? 4;
    if (!(minutes > 0)) throw new Error(`demo: --minutes must be positive, got ${minutes}`);
    budget = minutes * 60;
    const perStep = await secondsPerStep(seed);
    // About a tenth of the budget goes to the evaluations.
    steps = Math.max(20, Math.floor((budget * 0.9) / perStep));
    log(`demo: ${perStep.toFixed(2)} s per step of 64 scenes here; training ${steps} steps (about ${minutes} min)`);
  }
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`demo: --steps must be a positive integer, got ${steps}`);
  const config = demoConfig(out, steps, seed, o.evalSamples);
  log(`demo: a CLIP (2 towers x 3 blocks, width 128) learns ${IMAGE_SIZE}-pixel scenes of coloured shapes from their captions`);
  const result = await train(config, { progress: o.progress ?? 'auto', timeBudgetSeconds: budget });
  const m = result.metrics;
  const pct = (k: string) => (m[k] === undefined ? '-' : `${(100 * m[k]!).toFixed(1)}%`);
  const summary = [
    `trained ${result.step} steps (${result.step * config.batch_size} scenes); final loss ${result.losses.at(-1)?.loss.toFixed(3) ?? '-'}`,
    `zero-shot on colour-shape pairs never seen in training (64 classes, chance 1.6%): top-1 ${pct('eval/zeroshot_top1')}, top-5 ${pct('eval/zeroshot_top5')}`,
    `retrieval on the same images: image->text R@1 ${pct('eval/i2t_R@1')}, R@5 ${pct('eval/i2t_R@5')}; text->image R@1 ${pct('eval/t2i_R@1')}, R@5 ${pct('eval/t2i_R@5')}`,
    `report: ${path.resolve(result.reportFile ?? '')}`,
    `model:  ${path.resolve(result.modelDir ?? '')}  (try: glimpse classify --model ${result.modelDir} --labels "red circle,blue star" <image>)`,
  ].join('\n');
  return { result, summary };
}

/** The commander `demo` command (what `npm start` runs). */
export function demoCommand(): Command {
  return new Command('demo')
    .description('train a small CLIP on built-in scenes for a few minutes, evaluate it zero-shot, write a report')
    .option('--out <dir>', 'output folder', path.join('runs', 'demo'))
    .option('--minutes <m>', 'training time budget in minutes (default 4)', parseFloat)
    .option('--steps <n>', 'train this many steps instead of a time budget', (v) => parseInt(v, 10))
    .option('--seed <n>', 'seed (default 0)', (v) => parseInt(v, 10))
    .action(async (opts: { out: string; minutes?: number; steps?: number; seed?: number }) => {
      const { summary } = await runDemo(opts);
      console.log(summary);
    });
}
