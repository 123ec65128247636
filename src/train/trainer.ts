// The training loop: data -> model -> loss -> optimizer, with AdamW under warm-up + cosine,
// gradient accumulation and clipping, LiT locking and FLIP patch dropout, periodic evaluation,
// metrics, atomic checkpoints, and exact resumption.
//
// Exactness: a run resumed from a checkpoint computes bit-identical losses to one that never
// stopped. Everything the next step depends on is restored — weights, AdamW's moments and step
// counts, the schedule (a pure function of the step), the loader's position (batches are a pure
// function of seed, epoch and index), and the generators of patch dropout and of dropout. A run
// sized by time_budget_s is the exception: its schedule follows the clock, which no rerun repeats.
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '../io/safetensors.js';
import { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { accumulateGradients, clipGradNorm } from '../optim/grad.js';
import { paramGroupsLayerDecay, paramGroupsNoDecay, vitLayerOf } from '../optim/groups.js';
import { constantSchedule, cosineDecay, LRScheduler, type LrSchedule, warmupCosineSchedule } from '../optim/schedule.js';
import { reclaimMemory } from '../tensor/device.js';
import { Generator, getDefaultGenerator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkpointName, latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { ConfigError, configToYAML, type TrainConfig } from './config.js';
import { type LoaderPosition, nextPosition } from '../data/sampler.js';
import { isTextCorpus, makeLoader, openDatasets, type TrainData } from './data.js';
import { type EvalMetrics, evaluateModel, reconstructionPicture } from './evaluate.js';
import { buildTrainModel, lockImageTower, saveTrainedModel, type TrainModel } from './model_setup.js';
import { MetricsLog, type MetricsRecord, Progress, type ProgressMode } from './progress.js';
import { writeReport } from './report.js';
import { batchSize, makeTask, type StepContext, type TrainBatch, type TrainTask } from './tasks.js';

/** The loss stopped being a finite number; the run ends, its last checkpoint untouched. */
export class TrainingDivergedError extends Error {
  constructor(readonly step: number, readonly loss: number, readonly lastCheckpoint: string | null) {
    super(`training diverged: the loss is ${loss} at step ${step}; ` +
      (lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written before it'));
  }
}

export interface TrainOptions {
  /** Continue from the newest checkpoint in config.out (an error when there is none). */
  resume?: boolean;
  /** This process's rank and the number of processes (data-parallel); default 0 of 1. */
  rank?: number;
  worldSize?: number;
  /**
   * Called after the backward pass of each step with the trainable parameters, before clipping
   * and the update: data-parallel training averages the gradients across processes here.
   */
  onGradients?: (params: readonly Tensor[]) => void | Promise<void>;
  /** The data (default: opened from config.data). */
  data?: TrainData;
  /** End after this step as an interrupted run would (no final checkpoint, model or report). */
  stopAfterStep?: number;
  /**
   * End after this many seconds (wall clock, evaluations included) as a finished run (final
   * checkpoint, model, report). The schedule still spans the configured steps; time_budget_s is
   * the config's way to fit the schedule itself to a time.
   */
  timeBudgetSeconds?: number;
  /** Progress on stderr: 'auto' (a bar on a terminal, lines otherwise), 'bar', 'lines', 'none'. */
  progress?: ProgressMode | 'auto';
  /** Evaluation (default evaluateModel); tests substitute cheaper ones. */
  evaluate?: (tm: TrainModel, val: NonNullable<TrainData['val']>, config: TrainConfig, at: { step: number }) => Promise<EvalMetrics>;
}

export interface TrainResult {
  /** The optimizer steps done when the run ended. */
  step: number;
  /** The run's length in steps (with time_budget_s: the steps that the budget held). */
  totalSteps: number;
  /** Seconds spent in training steps, evaluations and checkpoints left out (a resumed run's included). */
  trainSeconds: number;
  /** The loss of every step this call ran, in order. */
  losses: { step: number; loss: number }[];
  /** The last evaluation's metrics ({} when none ran). */
  metrics: EvalMetrics;
  outDir: string;
  /** The HF folder of the trained model (null for an interrupted run). */
  modelDir: string | null;
  reportFile: string | null;
  /** Where the final (or last) checkpoint is. */
  checkpoint: string | null;
  model: TrainModel;
}

/**
 * Seconds spent in training steps (evaluations and checkpoints left out) and when the lr warm-up
 * ended, kept in checkpoints: a run sized by time_budget_s schedules by them.
 */
interface TrainClock {
  trainS: number;
  warmupEndS: number;
}

function savedClock(extra: Record<string, unknown> | undefined): TrainClock {
  const c = extra?.clock as Partial<TrainClock> | undefined;
  return { trainS: c?.trainS ?? 0, warmupEndS: c?.warmupEndS ?? 0 };
}

const RNG_PATCH_DROPOUT = 'patch_dropout';
const RNG_TASK = 'task';
const RNG_MODEL = 'model';
const CATLIP_VOCAB_SAMPLES = 20_000;
const RNG_DEFAULT = 'default';

/** The config keys that must not change on resume: the saved state would not fit or mean something else. */
const FIXED_ON_RESUME = ['model', 'task', 'batch_size', 'seed', 'lock_image', 'unlock_last_blocks', 'optim.grad_accum', 'data.train'] as const;

function keyValue(c: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), c);
}

/** Runs (or resumes) the training a config describes; see TrainOptions. */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const rank = options.rank ?? 0;
  const worldSize = options.worldSize ?? 1;
  if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
    throw new Error(`train: rank ${rank} of worldSize ${worldSize} is not a valid process`);
  }
  const main = rank === 0;
  const out = config.out;
  const accum = config.optim.grad_accum;
  const progress = new Progress(main ? options.progress ?? 'auto' : 'none');

  // Resume first: the checkpoint must exist and fit before anything is built or written.
  let checkpoint = null;
  if (options.resume) {
    const dir = latestCheckpoint(out);
    if (!dir) throw new Error(`resume: no checkpoint in ${path.join(out, 'checkpoints')} (start without --resume)`);
    checkpoint = loadCheckpoint(dir);
    for (const k of FIXED_ON_RESUME) {
      const [a, b] = [JSON.stringify(keyValue(checkpoint.state.config, k)), JSON.stringify(keyValue(config, k))];
      if (a !== b) throw new ConfigError(k, `differs from the checkpoint's (${a} there, ${b} now); a resumed run must keep it`);
    }
  }

  // The data opens first: a classifier is sized by the training set's class names, a BERT by the
  // vocabulary trained from its corpus (kept in the run folder, so a resumed run reads the same).
  const datasets = options.data ?? await openDatasets(config);
  const trainSet = datasets.trainDataset;
  const tokenizerDir = path.join(out, 'tokenizer');
  const model = await buildTrainModel(config, {
    classNames: isTextCorpus(trainSet) ? undefined : trainSet.classNames,
    documents: isTextCorpus(trainSet) ? async () => trainSet.documents : undefined,
    tokenizerDir: checkpoint ? tokenizerDir : undefined,
  });
  if (main && !checkpoint && config.task === 'mlm') model.tokenizer!.save(tokenizerDir);
  const data: TrainData = options.data
    ?? { ...datasets, train: makeLoader(trainSet, model, config, { batchSize: config.batch_size / accum, rank, worldSize }) };
  const generator = new Generator(config.seed + 1);
  const task = await makeTask(config.task, model, {
    generator,
    labelSmoothing: config.label_smoothing,
    saved: checkpoint?.state.extra?.task as Record<string, unknown> | undefined,
    captions: async () => {
      // The vocabulary of the first CATLIP_VOCAB_SAMPLES captions: word frequencies settle long
      // before a large set is read through (and reading a sample may mean decoding its image).
      const ds = data.trainDataset;
      if (isTextCorpus(ds)) throw new Error('catlip task: the training data is a text corpus, not captioned images');
      const captions: string[] = [];
      for (let i = 0; i < Math.min(ds.length, CATLIP_VOCAB_SAMPLES); i++) {
        const c = (await ds.get(i)).caption;
        if (c !== undefined) captions.push(c);
      }
      return captions;
    },
  });

  // What is trained: the model (less a locked image tower) and any task-owned head. A locked
  // tower records no graph (none of its inputs requires a gradient) and runs in eval mode.
  const frozen = config.lock_image ? lockImageTower(model, config.unlock_last_blocks) : [];
  const fullyLocked = config.lock_image && config.unlock_last_blocks === 0;
  const { root, params, optimizer } = trainingOptimizer(model, task, config);
  const o = config.optim;
  if (frozen.length) progress.log(`LiT: ${frozen.length} image-tower parameters frozen`);

  const perEpoch = data.train.batchesPerEpoch;
  const budgetS = config.time_budget_s;
  // A time budget has no step count: after the warm-up (in steps) its schedule advances with the
  // seconds of training steps, so the cosine ends when the budget is spent however the machine's
  // speed drifts meanwhile (a step count fixed from the first steps' timing missed by up to 10%).
  const totalSteps = budgetS !== null ? null : config.steps ?? Math.max(1, Math.ceil((config.epochs! * perEpoch) / accum));
  const w = o.warmup_steps;
  if (totalSteps !== null && w > totalSteps) throw new ConfigError('optim.warmup_steps', `optim.warmup_steps ${w} exceeds the run's ${totalSteps} steps`);
  if (budgetS !== null && worldSize > 1) {
    throw new ConfigError('time_budget_s', 'is for one process: ranks on their own clocks would follow different schedules');
  }
  const clock = savedClock(checkpoint?.state.extra);
  const schedule: LrSchedule = o.schedule === 'constant' ? constantSchedule({ warmupSteps: w })
    : totalSteps !== null ? warmupCosineSchedule({ warmupSteps: w, totalSteps, minLrRatio: o.min_lr_ratio })
    // The cosine of a time budget: how far the clock is from the warm-up's end to the budget.
    : (s) => (s < w ? s / w : cosineDecay(budgetS! > clock.warmupEndS ? (clock.trainS - clock.warmupEndS) / (budgetS! - clock.warmupEndS) : 1, o.min_lr_ratio));
  const scheduler = new LRScheduler(optimizer, schedule);
  /** Whether the run has done its steps, or spent its budget (the warm-up always completes). */
  const finished = () => (totalSteps !== null ? step >= totalSteps : step >= w && clock.trainS >= budgetS!);
  /** The run's length for display; a time budget's is estimated from the pace so far. */
  const displayTotal = () => totalSteps ?? (clock.trainS > 0 ? Math.max(step, w, Math.round((step * budgetS!) / clock.trainS)) : null);

  const pdGenerator = new Generator(config.seed + 2);
  const taskGenerator = new Generator(config.seed + 3);
  let step = 0;
  let position: LoaderPosition = { epoch: 0, batch: 0 };
  let samplesSeen = 0;
  if (checkpoint) {
    root.loadStateDict(checkpoint.model);
    optimizer.loadStateDict(checkpoint.optimizer);
    step = checkpoint.state.step;
    scheduler.loadStateDict({ step, baseLrs: scheduler.baseLrs });
    position = checkpoint.state.position;
    samplesSeen = checkpoint.state.samplesSeen;
    const rng = checkpoint.state.rng;
    if (rng[RNG_PATCH_DROPOUT]) pdGenerator.setState(rng[RNG_PATCH_DROPOUT]);
    if (rng[RNG_TASK]) taskGenerator.setState(rng[RNG_TASK]);
    if (rng[RNG_MODEL]) model.generator.setState(rng[RNG_MODEL]);
    if (rng[RNG_DEFAULT]) getDefaultGenerator().setState(rng[RNG_DEFAULT]);
  }

  fs.mkdirSync(out, { recursive: true });
  const metrics = new MetricsLog(path.join(out, 'metrics.jsonl'));
  if (main) {
    if (checkpoint) metrics.truncateAfter(step);
    else fs.rmSync(metrics.file, { force: true });
    fs.writeFileSync(path.join(out, 'config.yaml'), configToYAML(config));
  }

  const setModes = () => {
    root.train();
    if (fullyLocked) for (const m of model.imageTower!.modules) m.eval();
  };
  setModes();
  const ctx: StepContext = {
    patchDropout: config.patch_dropout > 0 ? { ratio: config.patch_dropout, generator: pdGenerator } : null,
    generator: taskGenerator,
  };

  let lastCheckpoint: string | null = checkpoint?.dir ?? null;
  const writeCheckpoint = () => {
    if (!main) return;
    lastCheckpoint = saveCheckpoint(out, {
      model: root,
      optimizer: optimizer.stateDict(),
      keep: config.checkpoint.keep,
      state: {
        step, position, samplesSeen,
        rng: { [RNG_PATCH_DROPOUT]: pdGenerator.getState(), [RNG_TASK]: taskGenerator.getState(), [RNG_MODEL]: model.generator.getState(), [RNG_DEFAULT]: getDefaultGenerator().getState() },
        config,
        extra: { task: task.toJSON?.() ?? {}, clock: { ...clock } },
      } satisfies TrainerState,
    });
  };
  let lastMetrics: EvalMetrics = {};
  let lastEvalStep = -1;
  const writeRunReport = () => writeReport(path.join(out, 'report.html'), {
    title: `glimpse train: ${describeModel(config)} on ${config.data.train}`, config, records: metrics.read(), final: lastMetrics,
    pictures: config.task === 'mae' && lastEvalStep >= 0
      ? [{ title: `reconstructions at step ${lastEvalStep}: original | masked | reconstruction | with the visible patches`, file: reconstructionPicture(config, lastEvalStep) }]
      : [],
  });
  const runEval = async (): Promise<EvalMetrics | null> => {
    if (!main || !data.val) return null;
    const t0 = performance.now();
    const r = await (options.evaluate ?? evaluateModel)(model, data.val, config, { step });
    lastEvalStep = step;
    setModes();
    lastMetrics = r;
    const summary = Object.entries(r).map(([k, v]) => `${k.replace(/^eval\//, '')} ${v.toFixed(4)}`).join('  ');
    progress.log(`eval at step ${step}: ${summary || '(no metrics for this task)'} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    return r;
  };

  const losses: { step: number; loss: number }[] = [];
  const started = performance.now();
  let windowLoss = 0;
  let windowSteps = 0;
  let windowSamples = 0;
  let windowStart = performance.now();
  const stopAfter = options.stopAfterStep ?? Infinity;
  const batches = data.train.batches(position);
  let interrupted = false;
  progress.start(displayTotal(), step);
  if (budgetS !== null && !checkpoint) progress.log(`time budget ${budgetS} s: the lr schedule follows the seconds of training steps; the run ends when they are spent`);
  try {
    while (step < stopAfter && !finished()) {
      const stepStart = performance.now();
      const micro: TrainBatch[] = [];
      for (let k = 0; k < accum; k++) {
        const r = await batches.next();
        if (r.done) throw new Error('train: the data loader ended early (it should repeat epochs without end)');
        micro.push(r.value);
      }
      // A loss that couples a batch's samples (contrastive) accumulates itself, keeping the whole batch's negatives.
      const lossValue = task.accumulate ? task.accumulate(micro, ctx) : accumulateGradients(micro, (b) => task.loss(b, ctx), batchSize);
      if (!Number.isFinite(lossValue)) throw new TrainingDivergedError(step + 1, lossValue, lastCheckpoint);
      await options.onGradients?.(params);
      if (o.grad_clip !== null) clipGradNorm(params, o.grad_clip);
      optimizer.step();
      optimizer.zeroGrad();
      task.afterStep?.();
      await reclaimMemory(); // this step's activations and gradients serve the next one
      step++;
      clock.trainS += (performance.now() - stepStart) / 1000;
      if (step === w) clock.warmupEndS = clock.trainS;
      scheduler.step(); // the next step's lr, from the clock as it now stands
      position = nextPosition(micro[micro.length - 1]!.position, perEpoch);
      const n = micro.reduce((s, b) => s + batchSize(b), 0);
      samplesSeen += n;
      losses.push({ step, loss: lossValue });
      windowLoss += lossValue;
      windowSteps++;
      windowSamples += n;

      const logNow = step % config.log_every === 0 || finished();
      let record: MetricsRecord | null = null;
      if (logNow) {
        const now = performance.now();
        const lr = optimizer.paramGroups[0]!.lr;
        const sps = (windowSamples * worldSize) / ((now - windowStart) / 1000);
        record = {
          step, epoch: position.epoch + position.batch / perEpoch, loss: windowLoss / windowSteps, lr,
          samples_per_s: sps, elapsed_s: (now - started) / 1000,
        };
        progress.update(step, displayTotal(), { loss: record.loss!, lr, samplesPerSec: sps });
        windowLoss = windowSteps = windowSamples = 0;
        windowStart = now;
      } else {
        progress.update(step, displayTotal(), null);
      }
      const evalNow = config.eval.every > 0 && step % config.eval.every === 0 && !finished();
      if (evalNow) {
        const r = await runEval();
        if (r) record = { ...(record ?? { step, epoch: position.epoch + position.batch / perEpoch }), ...r };
        windowStart = performance.now();
      }
      if (record && main) metrics.append(record);
      // The report follows the run at each evaluation, so a long run can be watched.
      if (evalNow && main && data.val) writeRunReport();
      if (config.checkpoint.every > 0 && step % config.checkpoint.every === 0) writeCheckpoint();
      if (options.timeBudgetSeconds !== undefined && (performance.now() - started) / 1000 >= options.timeBudgetSeconds) break;
    }
    if (budgetS !== null && finished()) progress.log(`time budget ${budgetS} s: ${step} steps in ${clock.trainS.toFixed(1)} s of training steps`);
    interrupted = !finished() && options.timeBudgetSeconds === undefined;
  } finally {
    progress.stop();
    await batches.return(undefined);
    if (!options.data) await data.train.close();
  }

  let modelDir: string | null = null;
  let reportFile: string | null = null;
  if (!interrupted && main) {
    if (lastCheckpoint === null || path.basename(lastCheckpoint) !== checkpointName(step)) writeCheckpoint();
    const r = await runEval();
    if (r) metrics.append({ step, epoch: position.epoch + position.batch / perEpoch, ...r });
    modelDir = path.join(out, 'model');
    saveTrainedModel(model, modelDir);
    if (task.name === 'catlip') saveTaskModules(task, modelDir);
    reportFile = path.join(out, 'report.html');
    writeRunReport();
  }
  return { step, totalSteps: totalSteps ?? step, trainSeconds: clock.trainS, losses, metrics: lastMetrics, outDir: out, modelDir, reportFile, checkpoint: lastCheckpoint, model };
}

/**
 * What a run trains and how: the module holding it (trainingRoot), its parameters that take
 * gradients, and AdamW over them in the config's groups.
 */
export function trainingOptimizer(tm: TrainModel, task: TrainTask, config: TrainConfig): { root: Module; params: Tensor[]; optimizer: AdamW } {
  const root = trainingRoot(tm.model, task);
  const params = root.parameters().filter((p) => p.requiresGrad);
  if (params.length === 0) throw new ConfigError('lock_image', 'nothing is left to train');
  const o = config.optim;
  // Biases, norms, embeddings and the logit scale/bias (all below two dimensions or so named) are not decayed.
  const groups = (o.layer_decay < 1 ? layerDecayGroups(tm, o) : paramGroupsNoDecay(root, { weightDecay: o.weight_decay }))
    .filter((g) => g.params.length > 0);
  return { root, params, optimizer: new AdamW(groups, { lr: o.lr, betas: o.betas, eps: o.eps }) };
}

/** Fine-tuning's layer-wise lr decay over a ViT classifier's blocks (config checks the task is ce). */
function layerDecayGroups(tm: TrainModel, o: TrainConfig['optim']) {
  const blocks = tm.imageTower!.numBlocks;
  return paramGroupsLayerDecay(tm.model, { weightDecay: o.weight_decay, layerDecay: o.layer_decay, baseLr: o.lr, numLayers: blocks, layerOf: vitLayerOf(blocks) });
}

/** The model as the report's title names it. */
function describeModel(c: TrainConfig): string {
  return c.model.custom ? `custom ${c.model.custom.family}` : c.model.name!;
}

/** The module holding everything trained: the model itself, or the model and the task's heads. */
function trainingRoot(model: Module, task: TrainTask): Module {
  const extra = Object.entries(task.extraModules ?? {});
  if (extra.length === 0) return model;
  const root = new TrainingRoot();
  root.add('model', model);
  for (const [k, m] of extra) root.add(k, m);
  return root;
}

class TrainingRoot extends Module {
  add(name: string, m: Module): void {
    this.module(name, m);
  }
}

/** CatLIP's head and vocabulary beside the saved model (the vision tower is the product). */
function saveTaskModules(task: TrainTask, dir: string): void {
  for (const [name, m] of Object.entries(task.extraModules ?? {})) {
    const tensors = Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: t.contiguous().data() }]));
    writeSafetensors(path.join(dir, `${name}.safetensors`), tensors);
  }
  fs.writeFileSync(path.join(dir, 'catlip.json'), `${JSON.stringify(task.toJSON?.() ?? {})}\n`);
}
