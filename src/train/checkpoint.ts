// Training checkpoints: everything a run needs to continue as if it had never stopped.
//
//   <out>/checkpoints/step-00000120/model.safetensors      the module's state dict (its own key names)
//                                  /optimizer.safetensors  moment buffers; step counts and groups in its metadata
//                                  /state.json             step, data position, RNG states, config, ...
//   <out>/checkpoints/latest                               the name of the newest complete checkpoint
//
// A checkpoint is written into a hidden folder, each file flushed to disk, the folder renamed into
// place, and only then `latest` rewritten (itself atomically). A run killed at any moment leaves
// `latest` naming a complete checkpoint, so resuming loses at most the steps since it.
import fs from 'node:fs';
import path from 'node:path';
import { loadSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { OptimizerStateDict, SavedTensor } from '../optim/optimizer.js';
import { Tensor } from '../tensor/tensor.js';

export const CHECKPOINT_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
const MODEL_FILE = 'model.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'state.json';
const FORMAT = 'glimpse-train-checkpoint-1';

/** The loop's own state, as JSON. */
export interface TrainerState {
  format?: string;
  /** Optimizer steps done. */
  step: number;
  /**
   * The next batch the loader gives (epoch, batch index within it). The index is global: the k-th
   * batches of all ranks together are the same samples at every world size (src/data/sampler.ts).
   */
  position: { epoch: number; batch: number };
  /** Samples trained on so far, all ranks together. */
  samplesSeen: number;
  /** Generator states by name (see Generator.getState). */
  rng: Record<string, number[]>;
  /** The resolved config the run was started with. */
  config: unknown;
  /** Anything else the trainer keeps (e.g. the CatLIP vocabulary), as JSON. */
  extra?: Record<string, unknown>;
}

export interface Checkpoint {
  dir: string;
  state: TrainerState;
  model: Record<string, SavedTensor>;
  optimizer: OptimizerStateDict;
}

/** The folder name of the checkpoint of a step. */
export const checkpointName = (step: number): string => `step-${String(step).padStart(8, '0')}`;
const STEP_DIR = /^step-(\d{8,})$/;

function fsyncPath(p: string): void {
  // Directories cannot be opened for fsync on every platform; persisting the rename is best effort there.
  try {
    const fd = fs.openSync(p, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* best effort */ }
}

/** Writes a small text file atomically: temp file, flush, rename. */
function writeFileAtomic(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}

const hostTensor = (t: Tensor): TensorToWrite => ({ shape: t.shape, data: t.contiguous().data(), dtype: t.dtype });

export interface SaveCheckpointArgs {
  model: Module;
  optimizer: OptimizerStateDict;
  state: TrainerState;
  /** Checkpoints kept, the newest; older ones are removed after `latest` moves. */
  keep: number;
}

/** Writes a checkpoint of `state.step` under outDir/checkpoints and points `latest` at it; returns its folder. */
export function saveCheckpoint(outDir: string, args: SaveCheckpointArgs): string {
  const root = path.join(outDir, CHECKPOINT_DIR);
  fs.mkdirSync(root, { recursive: true });
  const name = checkpointName(args.state.step);
  const partial = path.join(root, `.partial-${name}-${process.pid}`);
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial);

  const weights: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(args.model.stateDict())) weights[k] = hostTensor(t);
  writeSafetensors(path.join(partial, MODEL_FILE), weights, { format: FORMAT });

  const buffers: Record<string, TensorToWrite> = {};
  const steps: Record<string, number> = {};
  for (const [i, st] of Object.entries(args.optimizer.state)) {
    steps[i] = st.step;
    for (const [b, t] of Object.entries(st.buffers)) buffers[`${i}.${b}`] = t instanceof Tensor ? hostTensor(t) : t;
  }
  writeSafetensors(path.join(partial, OPTIMIZER_FILE), buffers, {
    format: FORMAT,
    steps: JSON.stringify(steps),
    param_groups: JSON.stringify(args.optimizer.paramGroups),
  });
  writeFileAtomic(path.join(partial, STATE_FILE), `${JSON.stringify({ ...args.state, format: FORMAT }, null, 1)}\n`);
  fsyncPath(partial);

  const final = path.join(root, name);
  // A folder of this step can only be left over from a run that died before moving `latest`
  // onto it, so nothing refers to it.
  if (fs.existsSync(final)) fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(partial, final);
  fsyncPath(root);
  writeFileAtomic(path.join(root, LATEST_FILE), `${name}\n`);
  pruneCheckpoints(root, name, args.keep);
  return final;
}

/** Removes all but the newest `keep` checkpoints (never the one `latest` names) and stale partial folders. */
function pruneCheckpoints(root: string, latest: string, keep: number): void {
  const entries = fs.readdirSync(root);
  for (const e of entries) if (e.startsWith('.partial-')) fs.rmSync(path.join(root, e), { recursive: true, force: true });
  const steps = entries.filter((e) => STEP_DIR.test(e)).sort();
  const keepSet = new Set([...steps.slice(-keep), latest]);
  for (const s of steps) if (!keepSet.has(s)) fs.rmSync(path.join(root, s), { recursive: true, force: true });
}

/** The folder of the newest complete checkpoint under outDir, or null when there is none. */
export function latestCheckpoint(outDir: string): string | null {
  const root = path.join(outDir, CHECKPOINT_DIR);
  const pointer = path.join(root, LATEST_FILE);
  if (!fs.existsSync(pointer)) return null;
  const name = fs.readFileSync(pointer, 'utf8').trim();
  if (!STEP_DIR.test(name)) throw new Error(`${pointer}: expected a checkpoint name like step-00000100, got ${JSON.stringify(name)}`);
  const dir = path.join(root, name);
  if (!fs.existsSync(path.join(dir, STATE_FILE))) throw new Error(`${pointer} names ${name}, but ${dir} is missing or incomplete`);
  return dir;
}

/** Reads a checkpoint folder written by saveCheckpoint. */
export function loadCheckpoint(dir: string): Checkpoint {
  for (const f of [STATE_FILE, MODEL_FILE, OPTIMIZER_FILE]) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`checkpoint ${dir}: ${f} is missing`);
  }
  const state = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8')) as TrainerState;
  if (state.format !== FORMAT) throw new Error(`checkpoint ${dir}: unknown format ${JSON.stringify(state.format)} (expected ${FORMAT})`);
  const model = loadSafetensors(path.join(dir, MODEL_FILE)).tensors;
  const opt = loadSafetensors(path.join(dir, OPTIMIZER_FILE));
  const steps = JSON.parse(opt.metadata.steps ?? '{}') as Record<string, number>;
  const paramGroups = JSON.parse(opt.metadata.param_groups ?? '[]') as OptimizerStateDict['paramGroups'];
  const optState: OptimizerStateDict['state'] = {};
  for (const [i, step] of Object.entries(steps)) optState[i] = { step, buffers: {} };
  for (const [key, t] of Object.entries(opt.tensors)) {
    const dot = key.indexOf('.');
    const i = key.slice(0, dot);
    if (!optState[i]) throw new Error(`checkpoint ${dir}: optimizer buffer ${key} belongs to no parameter state`);
    optState[i].buffers[key.slice(dot + 1)] = t;
  }
  return { dir, state, model, optimizer: { state: optState, paramGroups } };
}
