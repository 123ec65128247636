// The training loop, in phases: set up (or restore from a checkpoint) -> schedule -> steps ->
// finish. A step is data -> model -> objective's loss -> backward -> gradient sync -> clip ->
// AdamW; evaluations, metrics and atomic checkpoints happen between steps.
//
// Exactness: a run resumed from a checkpoint computes bit-identical losses to one that never
// stopped. Everything the next step depends on is restored — weights, AdamW's moments and step
// counts, the schedule (a pure function of the step), the loader's position (batches are a pure
// function of seed, epoch and index), and the generators of patch dropout and of dropout. A run
// sized by time_budget_s is the exception: its schedule follows the clock, which no rerun repeats.
//
// Data parallelism (TrainOptions.communicator) is PyTorch DDP's: the ranks start from rank 0's
// weights, each reads its share of every global batch, the gradients are averaged over the ranks
// in buckets while backward runs (src/dist/ddp.ts), and every rank then takes the same AdamW
// step. The contrastive losses see the whole global batch (src/dist/contrastive.ts); evaluation is
// sharded; only rank 0 writes checkpoints, metrics, the model and the report.
import fs from 'node:fs';
import path from 'node:path';
import { type LoaderPosition, nextPosition } from '../data/sampler.js';
import type { Communicator } from '../dist/communicator.js';
import { checkSameOnEveryRank, codeFingerprint } from '../dist/agree.js';
import { DataParallel, type DataParallelStats } from '../dist/ddp.js';
import { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { accumulateGradients, clipGradNorm } from '../optim/grad.js';
import { paramGroupsLayerDecay, paramGroupsNoDecay, vitLayerOf } from '../optim/groups.js';
import { constantSchedule, cosineDecay, LRScheduler, type LrSchedule, warmupCosineSchedule } from '../optim/schedule.js';
import type { ZeroShotConfig } from '../tasks/zeroshot.js';
import { reclaimMemory } from '../tensor/device.js';
import { type BatchShard, Generator, getDefaultGenerator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { CHECKPOINT_DIR, type Checkpoint, checkpointName, latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { ConfigError, configToYAML, type TrainConfig } from './config.js';
import { imageDataset, isStreamSplit, isTextCorpus, makeLoader, openDatasets, type TrainData } from './data.js';
import { type EvalMetrics, type EvalPoint, evaluateModel, readEvalDetails, reconstructionPicture } from './evaluate.js';
import { buildTrainModel, lockImageTower, saveTrainedModel, type TrainModel } from './model_setup.js';
import { batchSize, makeObjective, type Objective, type StepContext, type TrainBatch } from './objectives.js';
import { MetricsLog, type MetricsRecord, Progress, type ProgressMode } from './progress.js';
import { writeReport } from './report.js';

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
  /**
   * Start over in a config.out that holds an earlier run (checkpoints or metrics.jsonl), deleting
   * that run's files first; without it (or resume) such a folder is refused.
   */
  overwrite?: boolean;
  /**
   * The job's communicator, for data-parallel training (src/dist joinWorld): every rank runs
   * train() with the same config and reads its share of each global batch; gradients are averaged
   * over the ranks, losses and metrics are global means, and rank 0 writes. Default: one process.
   */
  communicator?: Communicator | null;
  /**
   * Called after the backward passes of each step (and the gradients' averaging over the ranks)
   * with the trainable parameters, before clipping and the update.
   */
  onGradients?: (params: readonly Tensor[]) => void | Promise<void>;
  /** The data (default: opened from config.data). */
  data?: TrainData;
  /** End after this step as an interrupted run would (no final checkpoint, model or report). */
  stopAfterStep?: number;
  /**
   * End after this many seconds (wall clock, evaluations included) as a finished run (final
   * checkpoint, model, report), stop reason 'time_limit'. The schedule still spans the configured
   * steps, so it is cut short; time_budget_s is the config's way to fit the schedule to a time.
   */
  timeBudgetSeconds?: number;
  /** Progress on stderr: 'auto' (a bar on a terminal, lines otherwise), 'bar', 'lines', 'none'. */
  progress?: ProgressMode | 'auto';
  /** Evaluation (default evaluateModel); tests substitute cheaper ones. */
  evaluate?: (setup: TrainModel, val: NonNullable<TrainData['val']>, config: TrainConfig, at: EvalPoint) => Promise<EvalMetrics>;
  /** Milliseconds on a monotonic clock (default performance.now); time budgets and rates read it. */
  clock?: () => number;
}

/**
 * Why a run ended: 'steps', its planned steps (steps or epochs) are done; 'time_budget', the
 * seconds of config.time_budget_s are spent (its schedule ended with them); 'time_limit',
 * TrainOptions.timeBudgetSeconds cut it short; 'interrupted', it stopped before its end
 * (TrainOptions.stopAfterStep), without a final model.
 */
export type StopReason = 'steps' | 'time_budget' | 'time_limit' | 'interrupted';
const STOP_REASONS: readonly StopReason[] = ['steps', 'time_budget', 'time_limit', 'interrupted'];

export interface TrainResult {
  /** The optimizer steps done when the run ended. */
  step: number;
  /** The run's length in steps (with time_budget_s: the steps that the budget held). */
  totalSteps: number;
  /** Why the run ended, and a sentence that says so (what the run logs, and the report shows). */
  stopped: { reason: StopReason; message: string };
  /** The checkpoint a resumed run continued from, and its step; null for a run from the start. */
  resumedFrom: { checkpoint: string; step: number } | null;
  /** Seconds spent in training steps, evaluations and checkpoints left out (a resumed run's included). */
  trainSeconds: number;
  /**
   * The run's final loss: the mean training loss of the last logged window (the last metrics
   * record's loss, as the report shows it); null before any step was logged.
   */
  finalLoss: number | null;
  /** The loss of every step this call ran, in order. */
  losses: { step: number; loss: number }[];
  /** The last evaluation's metrics ({} when none ran). */
  metrics: EvalMetrics;
  outDir: string;
  /** The gradients' synchronisation over the ranks (null for one process): buckets, bytes, seconds. */
  gradientSync: DataParallelStats | null;
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

/** Where a run stands: what a checkpoint saves and restores. */
interface RunState {
  step: number;
  position: LoaderPosition;
  samplesSeen: number;
  clock: TrainClock;
}

/** The generators a step draws from, by the names checkpoints keep them under. */
interface RunGenerators {
  patch_dropout: Generator;
  task: Generator;
  model: Generator;
  default: Generator;
}

/** How many training captions CatLIP's vocabulary is built from: word frequencies settle long before a large set is read through. */
const CATLIP_VOCAB_SAMPLES = 20_000;

/** The config keys that must not change on resume: the saved state would not fit or mean something else. */
const FIXED_ON_RESUME = ['model', 'task', 'batch_size', 'seed', 'lock_image', 'unlock_last_blocks', 'optim.grad_accum', 'data.train'] as const;

function keyValue(c: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), c);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: restore

/** What a run writes into config.out: an overwriting run deletes these of the earlier run. */
const RUN_OUTPUTS = [CHECKPOINT_DIR, 'metrics.jsonl', 'report.html', 'model', 'config.yaml', 'tokenizer', 'reconstructions', 'predictions'] as const;

/** What marks a folder as holding an earlier run: its checkpoints and metrics.jsonl (those present). */
export function earlierRunFiles(out: string): string[] {
  const found: string[] = [];
  const checkpoints = path.join(out, CHECKPOINT_DIR);
  if (fs.existsSync(checkpoints) && fs.readdirSync(checkpoints).length > 0) found.push(`${CHECKPOINT_DIR}/`);
  if (fs.existsSync(path.join(out, 'metrics.jsonl'))) found.push('metrics.jsonl');
  return found;
}

/**
 * A run that starts from step 0 in config.out: refused when the folder holds an earlier run,
 * unless `overwrite`, which deletes that run's files (on the writing process only). Returns what
 * was deleted.
 */
function clearEarlierRun(out: string, overwrite: boolean, main: boolean): string[] {
  const found = earlierRunFiles(out);
  if (found.length === 0) return [];
  if (!overwrite) {
    throw new Error(`train: ${out} already holds a run (${found.join(', ')}); continue it with --resume (resume: true), ` +
      'start over with --overwrite (overwrite: true; deletes its checkpoints, metrics, report and model), or choose another --out');
  }
  if (!main) return [];
  const deleted = RUN_OUTPUTS.filter((f) => fs.existsSync(path.join(out, f)));
  for (const f of deleted) fs.rmSync(path.join(out, f), { recursive: true, force: true });
  return deleted;
}

/** The newest checkpoint of config.out, checked to fit the config; null when not resuming. */
function checkpointToResume(config: TrainConfig, resume: boolean): Checkpoint | null {
  if (!resume) return null;
  const dir = latestCheckpoint(config.out);
  if (!dir) throw new Error(`resume: no checkpoint in ${path.join(config.out, 'checkpoints')} (start without --resume)`);
  const checkpoint = loadCheckpoint(dir);
  for (const k of FIXED_ON_RESUME) {
    const [a, b] = [JSON.stringify(keyValue(checkpoint.state.config, k)), JSON.stringify(keyValue(config, k))];
    if (a !== b) throw new ConfigError(k, `differs from the checkpoint's (${a} there, ${b} now); a resumed run must keep it`);
  }
  return checkpoint;
}

/** The first CATLIP_VOCAB_SAMPLES training captions (reading a sample may mean decoding its image). */
async function trainingCaptions(data: TrainData): Promise<string[]> {
  const ds = imageDataset(data.trainDataset, 'catlip task: the training data');
  const captions: string[] = [];
  for (let i = 0; i < Math.min(ds.length, CATLIP_VOCAB_SAMPLES); i++) {
    const c = (await ds.get(i)).caption;
    if (c !== undefined) captions.push(c);
  }
  return captions;
}

/**
 * What the saved model records of the run's zero-shot evaluation: its prompt templates and the
 * validation set's class names (CatLIP trains no text tower to prompt).
 */
function zeroShotRecord(config: TrainConfig, val: TrainData['val']): ZeroShotConfig | undefined {
  if (config.task === 'catlip') return undefined;
  const classNames = val && !isTextCorpus(val) && !isStreamSplit(val) && val.classNames?.length ? val.classNames : undefined;
  return { templates: config.eval.templates, ...(classNames ? { classNames } : {}) };
}

/**
 * What a run trains and how: the module holding it (trainingRoot), its parameters that take
 * gradients, and AdamW over them in the config's groups.
 */
export function trainingOptimizer(setup: TrainModel, objective: Objective, config: TrainConfig): { root: Module; params: Tensor[]; optimizer: AdamW } {
  const root = trainingRoot(setup.model, objective);
  const params = root.parameters().filter((p) => p.requiresGrad);
  if (params.length === 0) throw new ConfigError('lock_image', 'nothing is left to train');
  const { lr, betas, eps, weight_decay: weightDecay, layer_decay: layerDecay } = config.optim;
  // Biases, norms, embeddings and the logit scale/bias (all below two dimensions or so named) are not decayed.
  // Fine-tuning's layer-wise lr decay over a ViT classifier's blocks (config checks the task is ce).
  const numLayers = layerDecay < 1 ? setup.imageTower!.numBlocks : 0;
  const groups = layerDecay < 1
    ? paramGroupsLayerDecay(setup.model, { weightDecay, layerDecay, baseLr: lr, numLayers, layerOf: vitLayerOf(numLayers) })
    : paramGroupsNoDecay(root, { weightDecay });
  return { root, params, optimizer: new AdamW(groups.filter((g) => g.params.length > 0), { lr, betas, eps }) };
}

/** The module holding everything trained: the model itself, or the model and the objective's heads. */
function trainingRoot(model: Module, objective: Objective): Module {
  const extra = Object.entries(objective.extraModules ?? {});
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

/** The seconds a checkpoint's run had spent, or none. */
function savedClock(checkpoint: Checkpoint | null): TrainClock {
  const c = checkpoint?.state.extra?.clock as Partial<TrainClock> | undefined;
  return { trainS: c?.trainS ?? 0, warmupEndS: c?.warmupEndS ?? 0 };
}

/** The weights, optimizer state and generators of a checkpoint restored; where the run stands. */
function restoreState(checkpoint: Checkpoint | null, root: Module, optimizer: AdamW, generators: RunGenerators, clock: TrainClock): RunState {
  if (!checkpoint) return { step: 0, position: { epoch: 0, batch: 0 }, samplesSeen: 0, clock };
  root.loadStateDict(checkpoint.model);
  optimizer.loadStateDict(checkpoint.optimizer);
  for (const [name, g] of Object.entries(generators)) {
    const saved = checkpoint.state.rng[name];
    if (saved) g.setState(saved);
  }
  const { step, position, samplesSeen } = checkpoint.state;
  return { step, position, samplesSeen, clock };
}

// ---------------------------------------------------------------------------------------------
// Phase 2: schedule

/** The run's length in steps, or null for a time budget (which has no step count). */
function plannedSteps(config: TrainConfig, batchesPerEpoch: number): number | null {
  if (config.time_budget_s !== null) return null;
  return config.steps ?? Math.max(1, Math.ceil((config.epochs! * batchesPerEpoch) / config.optim.grad_accum));
}

/**
 * The lr multiplier of each step: warm-up then cosine over the planned steps, or constant; for a
 * time budget the cosine advances with the seconds of training steps after the warm-up, so it
 * ends when the budget is spent however the machine's pace drifts meanwhile.
 */
function lrSchedule(config: TrainConfig, totalSteps: number | null, clock: TrainClock): LrSchedule {
  const { warmup_steps: warmupSteps, schedule, min_lr_ratio: minLrRatio } = config.optim;
  if (schedule === 'constant') return constantSchedule({ warmupSteps });
  if (totalSteps !== null) return warmupCosineSchedule({ warmupSteps, totalSteps, minLrRatio });
  const budget = config.time_budget_s!;
  const progress = () => (budget > clock.warmupEndS ? (clock.trainS - clock.warmupEndS) / (budget - clock.warmupEndS) : 1);
  return (step) => (step < warmupSteps ? step / warmupSteps : cosineDecay(progress(), minLrRatio));
}

// ---------------------------------------------------------------------------------------------
// Data parallelism

/**
 * The ranks of a job join one run: checked to run the same config, model and code from the same
 * step (else each says what differs, rather than hanging in a collective), then rank 0's weights
 * broadcast to all and the gradient synchronisation set up over the trainable parameters.
 */
async function joinRun(comm: Communicator, config: TrainConfig, root: Module, step: number): Promise<DataParallel> {
  const named = root.namedParameters();
  await checkSameOnEveryRank(comm, {
    config,
    parameters: Object.fromEntries(named.map(([name, p]) => [name, `[${p.shape}]${p.requiresGrad ? '' : ' frozen'}`])),
    code: codeFingerprint(),
    'resumed step': step,
  });
  return DataParallel.create(comm, named.filter(([, p]) => p.requiresGrad), root.namedBuffers(), {
    bucketCapMB: config.distributed.bucket_cap_mb,
    findUnusedParameters: config.distributed.find_unused_parameters,
    checkParameters: process.env.GLIMPSE_DISTRIBUTED_DEBUG === '1',
  });
}

// ---------------------------------------------------------------------------------------------
// The run

/**
 * Each rank's loader batch: batch_size is the global batch (all ranks, all micro-batches of a
 * step), split evenly over the ranks and then over the grad_accum micro-batches, as in PyTorch DDP
 * with a fixed global batch. Keeping the global batch fixed is what lets the loader's position be
 * global (src/data/sampler.ts), so a run resumes at another world size on the same samples.
 */
export function microBatchSize(config: TrainConfig, worldSize: number): number {
  const accum = config.optim.grad_accum;
  const parts = worldSize * accum;
  if (config.batch_size % parts !== 0) {
    throw new ConfigError('batch_size', `the global batch ${config.batch_size} does not split evenly over ${worldSize} processes x grad_accum ${accum}: `
      + `use a multiple of ${parts} (e.g. ${Math.max(1, Math.round(config.batch_size / parts)) * parts}), or another number of processes`);
  }
  return config.batch_size / parts;
}

/** Runs (or resumes) the training a config describes; see TrainOptions. */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const comm = options.communicator && options.communicator.worldSize > 1 ? options.communicator : null;
  microBatchSize(config, comm?.worldSize ?? 1); // a global batch that does not split is refused before anything is built
  if (config.time_budget_s !== null && comm) {
    throw new ConfigError('time_budget_s', 'is for one process: ranks on their own clocks would follow different schedules');
  }
  const run = await TrainingRun.start(config, options, comm);
  try {
    await run.steps();
  } finally {
    await run.closeData();
  }
  return run.finish();
}

/** One run's state between its phases. */
class TrainingRun {
  readonly #now: () => number;
  readonly #metrics: MetricsLog;
  #lastCheckpoint: string | null;
  #lastMetrics: EvalMetrics = {};
  #lastEvalStep = -1;
  #stopped: StopReason | null = null;
  #finalLoss: number | null = null;
  readonly resumedFrom: TrainResult['resumedFrom'];
  readonly losses: { step: number; loss: number }[] = [];

  private constructor(
    readonly config: TrainConfig,
    readonly options: TrainOptions,
    /** The rows of each global batch this process holds: index = rank, count = world size. */
    readonly shard: BatchShard,
    /** The job's communicator and the gradients' synchronisation; null for one process. */
    readonly comm: Communicator | null,
    readonly ddp: DataParallel | null,
    readonly model: TrainModel,
    readonly objective: Objective,
    readonly data: TrainData,
    readonly root: Module,
    readonly params: Tensor[],
    readonly optimizer: AdamW,
    readonly generators: RunGenerators,
    readonly state: RunState,
    readonly totalSteps: number | null,
    readonly scheduler: LRScheduler,
    readonly fullyLocked: boolean,
    readonly progress: Progress,
    checkpoint: Checkpoint | null,
  ) {
    this.#now = options.clock ?? (() => performance.now());
    this.#lastCheckpoint = checkpoint?.dir ?? null;
    this.resumedFrom = checkpoint ? { checkpoint: checkpoint.dir, step: checkpoint.state.step } : null;
    this.#metrics = new MetricsLog(path.join(config.out, 'metrics.jsonl'));
    fs.mkdirSync(config.out, { recursive: true });
    if (this.main) {
      if (checkpoint) this.#metrics.truncateAfter(state.step);
      else fs.rmSync(this.#metrics.file, { force: true });
      fs.writeFileSync(path.join(config.out, 'config.yaml'), configToYAML(config));
    }
  }

  /** Rank 0: the process that writes. */
  get main(): boolean {
    return this.shard.index === 0;
  }

  /** Phase 1: the checkpoint (first: it must exist and fit before anything is built), data, model, objective, optimizer. */
  static async start(config: TrainConfig, options: TrainOptions, comm: Communicator | null): Promise<TrainingRun> {
    const shard: BatchShard = { index: comm?.rank ?? 0, count: comm?.worldSize ?? 1 };
    const main = shard.index === 0;
    if (options.resume && options.overwrite) {
      throw new Error(`train: --resume and --overwrite exclude each other (resume continues the run in ${config.out}, overwrite deletes it)`);
    }
    const checkpoint = checkpointToResume(config, options.resume ?? false);
    const progress = new Progress(main ? options.progress ?? 'auto' : 'none');
    if (!checkpoint) {
      const deleted = clearEarlierRun(config.out, options.overwrite ?? false, main);
      if (deleted.length) progress.log(`overwrite: deleted the earlier run's ${deleted.join(', ')} in ${config.out}`);
    }
    // The data opens before the model: a classifier is sized by the training set's class names, a
    // BERT by the vocabulary trained from its corpus (kept in the run folder, so a resumed run reads the same).
    const datasets = options.data ?? await openDatasets(config);
    const trainSet = datasets.trainDataset;
    const tokenizerDir = path.join(config.out, 'tokenizer');
    const model = await buildTrainModel(config, {
      classNames: isTextCorpus(trainSet) ? undefined : isStreamSplit(trainSet) ? trainSet.set.classNames : trainSet.classNames,
      streams: isStreamSplit(trainSet) ? trainSet.set : undefined,
      documents: isTextCorpus(trainSet) ? async () => trainSet.documents : undefined,
      tokenizerDir: checkpoint ? tokenizerDir : undefined,
    });
    if (main && !checkpoint && config.task === 'mlm') model.tokenizer!.save(tokenizerDir);
    const data: TrainData = options.data
      ?? { ...datasets, train: makeLoader(trainSet, model, config, { batchSize: microBatchSize(config, shard.count), rank: shard.index, worldSize: shard.count }) };
    const objective = await makeObjective(config.task, model, {
      generator: new Generator(config.seed + 1),
      labelSmoothing: config.label_smoothing,
      saved: checkpoint?.state.extra?.task as Record<string, unknown> | undefined,
      captions: () => trainingCaptions(data),
      pictureAt: (step) => reconstructionPicture(config, step),
    });

    // What is trained: the model (less a locked image tower) and any objective-owned head. A
    // locked tower records no graph (none of its inputs requires a gradient) and runs in eval mode.
    const frozen = config.lock_image ? lockImageTower(model, config.unlock_last_blocks) : [];
    if (frozen.length) progress.log(`LiT: ${frozen.length} image-tower parameters frozen`);
    const { root, params, optimizer } = trainingOptimizer(model, objective, config);
    const generators: RunGenerators = {
      patch_dropout: new Generator(config.seed + 2), task: new Generator(config.seed + 3), model: model.generator, default: getDefaultGenerator(),
    };

    // Phase 2: the schedule. Its base lrs are the config's, also on resume (a resumed run may change optim.lr).
    const totalSteps = plannedSteps(config, data.train.batchesPerEpoch);
    const warmup = config.optim.warmup_steps;
    if (totalSteps !== null && warmup > totalSteps) {
      // HF and open_clip accept a warm-up longer than the run too; here it ends with the run, and
      // the run's config.yaml records the warm-up that ran.
      progress.log(`optim.warmup_steps ${warmup} is longer than the run's ${totalSteps} steps: warming up over all ${totalSteps}`);
      config = { ...config, optim: { ...config.optim, warmup_steps: totalSteps } };
    }
    const clock = savedClock(checkpoint);
    const scheduler = new LRScheduler(optimizer, lrSchedule(config, totalSteps, clock));
    const state = restoreState(checkpoint, root, optimizer, generators, clock);
    if (checkpoint) {
      scheduler.loadStateDict({ step: state.step, baseLrs: scheduler.baseLrs });
      const of = totalSteps !== null ? `of ${totalSteps}` : `(${clock.trainS.toFixed(1)} s of its ${config.time_budget_s} s time budget spent)`;
      progress.log(`resuming from ${checkpoint.dir}: step ${state.step} ${of}`);
    }
    const ddp = comm ? await joinRun(comm, config, root, state.step) : null;
    if (comm) {
      progress.log(`data-parallel over ${comm.worldSize} ranks (${comm.transport}): each step's global batch of ${config.batch_size} is `
        + `${comm.worldSize} x ${microBatchSize(config, comm.worldSize) * config.optim.grad_accum}; gradients all-reduced in ${ddp!.bucketNames.length} buckets`);
    }
    const fullyLocked = config.lock_image && config.unlock_last_blocks === 0;
    return new TrainingRun(config, options, shard, comm, ddp, model, objective, data, root, params, optimizer, generators, state,
      totalSteps, scheduler, fullyLocked, progress, checkpoint);
  }

  /** Whether the run has done its steps, or spent its budget (the warm-up always completes). */
  finished(): boolean {
    const { step, clock } = this.state;
    return this.totalSteps !== null ? step >= this.totalSteps : step >= this.config.optim.warmup_steps && clock.trainS >= this.config.time_budget_s!;
  }

  /** The run's length for display; a time budget's is estimated from the pace so far. */
  displayTotal(): number | null {
    const { step, clock } = this.state;
    if (this.totalSteps !== null) return this.totalSteps;
    return clock.trainS > 0 ? Math.max(step, this.config.optim.warmup_steps, Math.round((step * this.config.time_budget_s!) / clock.trainS)) : null;
  }

  setModes(): void {
    this.root.train();
    if (this.fullyLocked) for (const m of this.model.imageTower!.modules) m.eval();
  }

  /** Phase 3: the step loop, with logging, evaluations and checkpoints between steps. */
  async steps(): Promise<void> {
    const { config, state, progress } = this;
    const perEpoch = this.data.train.batchesPerEpoch;
    this.setModes();
    const ctx: StepContext = {
      patchDropout: config.patch_dropout > 0 ? { ratio: config.patch_dropout, generator: this.generators.patch_dropout, shard: this.shard } : null,
      generator: this.generators.task,
      shard: this.shard,
      communicator: this.comm,
      noSync: this.ddp ? (fn) => this.ddp!.noSync(fn) : undefined,
    };
    const started = this.#now();
    const window = { loss: 0, steps: 0, samples: 0, start: started };
    const batches = this.data.train.batches(state.position);
    const budgetS = config.time_budget_s;
    progress.start(this.displayTotal(), state.step);
    if (budgetS !== null && state.step === 0) progress.log(`time budget ${budgetS} s: the lr schedule follows the seconds of training steps; the run ends when they are spent`);
    try {
      this.#stopped = await this.agreedStopReason(started);
      while (this.#stopped === null) {
        const stepStart = this.#now();
        const micro: TrainBatch[] = [];
        for (let k = 0; k < config.optim.grad_accum; k++) {
          const r = await batches.next();
          if (r.done) throw new Error('train: the data loader ended early (it should repeat epochs without end)');
          micro.push(r.value);
        }
        const loss = await this.step(micro, ctx);
        state.step++;
        state.clock.trainS += (this.#now() - stepStart) / 1000;
        if (state.step === config.optim.warmup_steps) state.clock.warmupEndS = state.clock.trainS;
        this.scheduler.step(); // the next step's lr, from the clock as it now stands
        state.position = nextPosition(micro[micro.length - 1]!.position, perEpoch);
        const n = micro.reduce((s, b) => s + batchSize(b), 0);
        state.samplesSeen += n * this.shard.count; // every rank's batch has this rank's size
        this.losses.push({ step: state.step, loss });
        window.loss += loss;
        window.steps++;
        window.samples += n;
        const stop = await this.agreedStopReason(started);

        let record: MetricsRecord | null = null;
        const epoch = state.position.epoch + state.position.batch / perEpoch;
        // The last step is always logged: its window's mean is the run's final loss.
        if (state.step % config.log_every === 0 || stop !== null) {
          const now = this.#now();
          const lr = this.optimizer.paramGroups[0]!.lr;
          const sps = (window.samples * this.shard.count) / ((now - window.start) / 1000);
          record = { step: state.step, epoch, loss: window.loss / window.steps, lr, samples_per_s: sps, elapsed_s: (now - started) / 1000 };
          this.#finalLoss = record.loss!;
          progress.update(state.step, this.displayTotal(), { loss: record.loss!, lr, samplesPerSec: sps });
          Object.assign(window, { loss: 0, steps: 0, samples: 0, start: now });
        } else {
          progress.update(state.step, this.displayTotal(), null);
        }
        // A run that ends here is evaluated by finish().
        const evalNow = config.eval.every > 0 && state.step % config.eval.every === 0 && (stop === null || stop === 'interrupted');
        if (evalNow) {
          const r = await this.evaluate();
          if (r) record = { ...(record ?? { step: state.step, epoch }), ...r };
          window.start = this.#now();
        }
        if (record && this.main) this.#metrics.append(record);
        // The report follows the run at each evaluation, so a long run can be watched.
        if (evalNow && this.main && this.data.val) this.writeReport();
        if (config.checkpoint.every > 0 && state.step % config.checkpoint.every === 0) this.writeCheckpoint();
        this.#stopped = stop;
      }
    } finally {
      progress.stop();
      await batches.return(undefined);
    }
    progress.log(this.stopMessage());
  }

  /** Why the run ends after the step just done, or null when it goes on. */
  stopReason(started: number): StopReason | null {
    if (this.finished()) return this.totalSteps !== null ? 'steps' : 'time_budget';
    const limit = this.options.timeBudgetSeconds;
    if (limit !== undefined && (this.#now() - started) / 1000 >= limit) return 'time_limit';
    if (this.state.step >= (this.options.stopAfterStep ?? Infinity)) return 'interrupted';
    return null;
  }

  /**
   * stopReason, the same on every rank: rank 0's clock decides a time limit for all (steps are
   * counted alike everywhere; clocks are not).
   */
  async agreedStopReason(started: number): Promise<StopReason | null> {
    const local = this.stopReason(started);
    if (!this.comm || this.options.timeBudgetSeconds === undefined) return local;
    const code = tensor([local === null ? -1 : STOP_REASONS.indexOf(local)]);
    await this.comm.broadcast(code, 0);
    return STOP_REASONS[code.item()] ?? null;
  }

  /** The sentence that says why the run ended. */
  stopMessage(): string {
    const { step, clock } = this.state;
    const total = this.displayTotal();
    switch (this.#stopped) {
      case 'steps':
        return `stopped after ${step} steps: the run's ${this.totalSteps} steps are done`;
      case 'time_budget':
        return `stopped after ${step} steps: the time budget (time_budget_s ${this.config.time_budget_s}) is spent, ${clock.trainS.toFixed(1)} s of training steps`;
      case 'time_limit':
        return `stopped at step ${step} of ${total ?? '?'}: the time limit of ${this.options.timeBudgetSeconds} s (wall clock) was reached; the lr schedule was cut short`;
      case 'interrupted':
        return `stopped at step ${step} of ${total ?? '?'}: interrupted; no final model` +
          (this.#lastCheckpoint ? `; --resume continues from ${this.#lastCheckpoint}` : '');
      default:
        return `stopped at step ${step}`;
    }
  }

  /** One optimizer step over the micro-batches of a batch; returns its loss (the mean over all ranks). */
  async step(micro: readonly TrainBatch[], ctx: StepContext): Promise<number> {
    const objective = this.objective;
    // A loss that couples a batch's samples (contrastive) accumulates itself, keeping the whole batch's negatives.
    const local = objective.accumulate
      ? await objective.accumulate(micro, ctx)
      : accumulateGradients(micro, (b) => objective.loss(b, ctx), batchSize, { noSync: ctx.noSync });
    await this.ddp?.synchronize();
    const loss = this.comm ? (await this.comm.allReduce(tensor([local]), 'avg')).item() : local;
    if (!Number.isFinite(loss)) throw new TrainingDivergedError(this.state.step + 1, loss, this.#lastCheckpoint);
    await this.options.onGradients?.(this.params);
    if (this.config.optim.grad_clip !== null) clipGradNorm(this.params, this.config.optim.grad_clip);
    this.optimizer.step();
    this.optimizer.zeroGrad();
    objective.afterStep?.();
    await reclaimMemory(); // this step's activations and gradients serve the next one
    return loss;
  }

  /** Phase 4: evaluation on the validation set (shared over the ranks), the model put back in training mode. */
  async evaluate(): Promise<EvalMetrics | null> {
    if (!this.data.val) return null;
    const t0 = this.#now();
    const step = this.state.step;
    const r = await (this.options.evaluate ?? evaluateModel)(this.model, this.data.val, this.config, { step, communicator: this.comm });
    this.#lastEvalStep = step;
    this.setModes();
    this.#lastMetrics = r;
    const summary = Object.entries(r).map(([k, v]) => `${k.replace(/^eval\//, '')} ${v.toFixed(4)}`).join('  ');
    this.progress.log(`eval at step ${step}: ${summary || '(no metrics for this task)'} (${((this.#now() - t0) / 1000).toFixed(1)} s)`);
    return r;
  }

  writeCheckpoint(): void {
    if (!this.main) return;
    const { step, position, samplesSeen, clock } = this.state;
    this.#lastCheckpoint = saveCheckpoint(this.config.out, {
      model: this.root,
      optimizer: this.optimizer.stateDict(),
      keep: this.config.checkpoint.keep,
      state: {
        step, position, samplesSeen,
        rng: Object.fromEntries(Object.entries(this.generators).map(([name, g]) => [name, g.getState()])),
        config: this.config,
        extra: { task: this.objective.toJSON?.() ?? {}, clock: { ...clock } },
      } satisfies TrainerState,
    });
  }

  writeReport(): void {
    const c = this.config;
    writeReport(path.join(c.out, 'report.html'), {
      title: `glimpse train: ${c.model.custom ? `custom ${c.model.custom.family}` : c.model.name!} on ${c.data.train}`,
      config: c, records: this.#metrics.read(), final: this.#lastMetrics, stopped: this.#stopped !== null ? this.stopMessage() : undefined,
      pictures: this.#lastEvalStep >= 0 ? this.objective.reportPictures?.(this.#lastEvalStep) ?? [] : [],
      evaluation: this.#lastEvalStep >= 0 ? readEvalDetails(c, this.#lastEvalStep) : null,
    });
  }

  async closeData(): Promise<void> {
    if (!this.options.data) await this.data.train.close();
  }

  /** Phase 5: a finished run's last checkpoint, evaluation, model folder and report (rank 0). */
  async finish(): Promise<TrainResult> {
    const { step, position } = this.state;
    let modelDir: string | null = null;
    let reportFile: string | null = null;
    if (this.#stopped !== 'interrupted') {
      if (this.#lastCheckpoint === null || path.basename(this.#lastCheckpoint) !== checkpointName(step)) this.writeCheckpoint();
      const r = await this.evaluate(); // on every rank: each evaluates its share
      if (this.main) {
        if (r) this.#metrics.append({ step, epoch: position.epoch + position.batch / this.data.train.batchesPerEpoch, ...r });
        modelDir = path.join(this.config.out, 'model');
        saveTrainedModel(this.model, modelDir, { zeroShot: zeroShotRecord(this.config, this.data.val) });
        this.objective.saveBeside?.(modelDir);
        reportFile = path.join(this.config.out, 'report.html');
        this.writeReport();
      }
    }
    // The ranks end together, once rank 0 has written the run's outputs.
    await this.comm?.barrier();
    // A resumed run that had no step left to do has its final loss in the metrics it resumed with.
    const finalLoss = this.#finalLoss ?? (this.main ? [...this.#metrics.read()].reverse().find((r) => r.loss !== undefined)?.loss ?? null : null);
    return {
      step, totalSteps: this.totalSteps ?? step, stopped: { reason: this.#stopped!, message: this.stopMessage() }, resumedFrom: this.resumedFrom,
      trainSeconds: this.state.clock.trainS, finalLoss, losses: this.losses, metrics: this.#lastMetrics,
      outDir: this.config.out, modelDir, reportFile, checkpoint: this.#lastCheckpoint, model: this.model, gradientSync: this.ddp?.stats ?? null,
    };
  }
}
