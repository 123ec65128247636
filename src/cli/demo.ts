// `glimpse demo` (`npm start`): trains a small CLIP from scratch on the built-in scenes for a few
// minutes on the CPU, evaluates it by zero-shot classification of colour-shape pairs never seen in
// training and by image <-> text retrieval, and writes the report. No downloads, no configuration.
import path from 'node:path';
import { Command } from 'commander';
import { resolveConfig, type TrainConfig } from '../train/config.js';
import { mergeOptions } from '../train/data.js';
import type { ProgressMode } from '../train/progress.js';
import { earlierRunFiles, train, type TrainOptions, type TrainResult } from '../train/trainer.js';

export interface DemoOptions {
  /** Output folder (default runs/demo). */
  out?: string;
  /**
   * Time for the run in minutes (default 4): nine tenths are the training steps' time budget
   * (the config's time_budget_s, which the lr schedule follows), the rest is left to evaluations.
   */
  minutes?: number;
  /** A fixed number of steps instead of a time budget. */
  steps?: number;
  seed?: number;
  progress?: ProgressMode | 'auto';
  /** Held-out scenes evaluated (default 400). */
  evalSamples?: number;
  /** Replace an earlier run in the output folder (its checkpoints, metrics, report and model). */
  overwrite?: boolean;
  /** The trainer's clock in milliseconds (TrainOptions.clock); tests run a time budget on a simulated one. */
  clock?: () => number;
}

const IMAGE_SIZE = 32;
/** Steps between evaluations and checkpoints of a run sized by time: about four in the default 4 minutes on a laptop's CPU. */
const BUDGET_EVAL_EVERY = 250;
/** Steps of lr warm-up (at most a tenth of a run given in steps). */
const WARMUP_STEPS = 50;

/** How long the demo trains: a number of steps, or seconds of training steps (time_budget_s). */
export type DemoLength = { steps: number } | { seconds: number };

/** The demo's config: a CLIP of two 3-block towers on 32-pixel scenes, evaluated on the held-out pairs. */
export function demoConfig(out: string, length: DemoLength, seed = 0, evalSamples = 400): TrainConfig {
  const steps = 'steps' in length ? length.steps : null;
  const every = steps !== null ? Math.max(1, Math.ceil(steps / 4)) : BUDGET_EVAL_EVERY;
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
    time_budget_s: 'seconds' in length ? length.seconds : null,
    optim: {
      lr: 5e-4, weight_decay: 0.1, betas: [0.9, 0.98], eps: 1e-6, grad_clip: 1,
      warmup_steps: steps !== null ? Math.min(WARMUP_STEPS, Math.floor(steps / 10)) : WARMUP_STEPS,
    },
    seed,
    checkpoint: { every, keep: 1 },
    eval: { every, templates: ['a {}.', 'a photo of a {}.'], batch_size: 100 },
    log_every: steps !== null ? Math.max(1, Math.min(10, Math.floor(steps / 20))) : 10,
    out,
  });
}

/** The `glimpse eval zeroshot` command that gives the run's final zero-shot figure from the saved model. */
export function zeroShotCommandOf(config: TrainConfig, modelDir: string): string {
  const options = JSON.stringify(mergeOptions(config.data.options, config.data.val_options));
  return `glimpse eval zeroshot --model ${modelDir} --data ${config.data.val} --data-options '${options}' --batch-size ${config.eval.batch_size}`;
}

export interface DemoResult {
  result: TrainResult;
  config: TrainConfig;
  /** What the command prints. */
  summary: string;
}

/** The demo's run: its config and the trainer's options (nothing outside the config sizes the run). */
export function demoPlan(o: DemoOptions = {}): { config: TrainConfig; options: TrainOptions } {
  const out = o.out ?? path.join('runs', 'demo');
  let length: DemoLength;
  if (o.steps !== undefined) {
    if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`demo: --steps must be a positive integer, got ${o.steps}`);
    length = { steps: o.steps };
  } else {
    const minutes = o.minutes ?? 4;
    if (!(minutes > 0)) throw new Error(`demo: --minutes must be positive, got ${minutes}`);
    length = { seconds: Math.max(1, Math.round(minutes * 60 * 0.9)) };
  }
  return {
    config: demoConfig(out, length, o.seed ?? 0, o.evalSamples),
    options: { progress: o.progress ?? 'auto', overwrite: o.overwrite, clock: o.clock },
  };
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const { config, options } = demoPlan(o);
  const out = config.out;
  const earlier = earlierRunFiles(out);
  if (earlier.length > 0 && !o.overwrite) {
    throw new Error(`demo: ${out} holds an earlier run (${earlier.join(', ')}); run again with --overwrite (npm start -- --overwrite) to replace it, or --out <dir> to keep it`);
  }
  log(`demo: a CLIP (2 towers x 3 blocks, width 128) learns ${IMAGE_SIZE}-pixel scenes of coloured shapes from their captions`);
  if (config.time_budget_s !== null) {
    log(`demo: ${config.time_budget_s} s of training steps (time_budget_s; the lr schedule follows the clock), evaluated every ${config.eval.every} steps`);
  }
  const result = await train(config, options);
  const m = result.metrics;
  const pct = (k: string) => (m[k] === undefined ? '-' : `${(100 * m[k]!).toFixed(1)}%`);
  const summary = [
    result.stopped.message,
    `trained ${result.step} steps (${result.step * config.batch_size} scenes, ${result.trainSeconds.toFixed(0)} s of training steps); ` +
      `final loss ${result.finalLoss?.toFixed(4) ?? '-'} (mean of the last logged steps)`,
    `zero-shot on colour-shape pairs never seen in training (64 classes, chance 1.6%): top-1 ${pct('eval/zeroshot_top1')}, top-5 ${pct('eval/zeroshot_top5')}`,
    `  on those pairs the colour is right ${pct('eval/colour_acc_held_out')} of the time, the shape ${pct('eval/shape_acc_held_out')} (chance 12.5%); on seen pairs ${pct('eval/colour_acc_seen')} and ${pct('eval/shape_acc_seen')}`,
    `retrieval on the same images: image->text R@1 ${pct('eval/i2t_R@1')}, R@5 ${pct('eval/i2t_R@5')}; text->image R@1 ${pct('eval/t2i_R@1')}, R@5 ${pct('eval/t2i_R@5')}`,
    `report: ${path.resolve(result.reportFile ?? '')}`,
    `model:  ${path.resolve(result.modelDir ?? '')}  (try: glimpse classify --model ${result.modelDir} --labels "red circle,blue star" <image>)`,
    `the zero-shot figure again, from the saved model: ${zeroShotCommandOf(config, result.modelDir ?? path.join(out, 'model'))}`,
  ].join('\n');
  return { result, config, summary };
}

/** The commander `demo` command (what `npm start` runs). */
export function demoCommand(): Command {
  return new Command('demo')
    .description('train a small CLIP on built-in scenes for a few minutes, evaluate it zero-shot, write a report')
    .option('--out <dir>', 'output folder', path.join('runs', 'demo'))
    .option('--minutes <m>', 'time for the run in minutes (default 4; nine tenths are the training steps\' time budget)', parseFloat)
    .option('--steps <n>', 'train this many steps instead of a time budget', (v) => parseInt(v, 10))
    .option('--seed <n>', 'seed (default 0)', (v) => parseInt(v, 10))
    .option('--overwrite', 'replace an earlier run in the output folder')
    .action(async (opts: { out: string; minutes?: number; steps?: number; seed?: number; overwrite?: boolean }) => {
      const { summary } = await runDemo(opts);
      console.log(summary);
    });
}
