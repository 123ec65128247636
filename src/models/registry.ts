// The model zoo's public names: model families by config.json's model_type, models and losses
// registered under stable names with aliases (open_clip's ViT-B-32, Hugging Face's
// openai/clip-vit-base-patch32, ...), and createModel, which builds a registered model (from
// weights, or untrained on request) or loads a folder. Adding a family is one line here: its
// ModelFamily.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry, type RegistryEntry } from '../data/registry.js';
import type { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { type HFConfig, readHFConfig, writeHFConfig } from '../io/hf.js';
import { LOSSES } from '../nn/losses.js';
import type { ModuleOptions } from '../nn/module.js';
import type { Backend } from '../tensor/backend.js';
import { getBackend } from '../tensor/device.js';
import { binaryCrossEntropyWithLogits } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { BERT } from './bert.js';
import { BLIP } from './blip.js';
import { CLIP } from './clip.js';
import { BUILTIN_MODELS } from './configs.js';
import { architectureOf, type Model, type ModelClass, type ModelFamily } from './family.js';
import { OADTR } from './oadtr.js';
import { loadOpenClip, OPEN_CLIP_CONFIG_NAME, OPEN_CLIP_WEIGHTS_NAME } from './openclip.js';
import { SIGLIP } from './siglip.js';
import { VIT } from './vit.js';
import { VIT_MAE } from './vit_mae.js';

// ---------------------------------------------------------------------------------------------
// Model families: each family file's ModelFamily, by config.json's model_type

const families = new Map<string, ModelFamily>();

/** Makes a model_type loadable: createModel on a folder of it, and registered names of it. */
export function registerModelFamily(family: ModelFamily): void {
  families.set(family.modelType, family);
}

/** The family of a model_type; an unknown one is an error listing the known ones. */
export function modelFamily(modelType: string): ModelFamily {
  const f = families.get(modelType);
  if (!f) throw new Error(`no model family for model_type '${modelType}' (known: ${[...families.keys()].sort().join(', ')})`);
  return f;
}

for (const family of [VIT, CLIP, SIGLIP, BERT, VIT_MAE, BLIP, OADTR]) registerModelFamily(family);

/** The family and model class a config.json names (by model_type and architectures). */
function classFor(config: HFConfig, label: string): { family: ModelFamily; Model: ModelClass } {
  const modelType = config.model_type;
  if (typeof modelType !== 'string') throw new Error(`${label}: no model_type`);
  const family = modelFamily(modelType);
  return { family, Model: family.architectures[architectureOf(family, config)]! };
}

/** A model with fresh weights from config.json's fields (its family by model_type, its class by architectures). */
export function modelFromConfig(config: HFConfig, opts: ModuleOptions = {}, label = 'config'): Model {
  const { family, Model } = classFor(config, label);
  return new Model(family.config.fromHF(config, label) as never, opts);
}

// ---------------------------------------------------------------------------------------------
// Models

export interface CreateModelOptions {
  /**
   * A folder with the weights for a registered name: a Hugging Face folder (config.json +
   * safetensors), whose config.json must be of the entry's model_type, or safetensors alone,
   * loaded into the entry's config. A name needs this or `init`.
   */
  weights?: string;
  /**
   * 'random': a registered name built untrained, its weights drawn by the family's init (for
   * training from scratch and tests). Without it, a name without `weights` is refused: its
   * output would look like a pretrained model's and mean nothing.
   */
  init?: 'random';
  backend?: Backend | string;
  generator?: ModuleOptions['generator'];
  /** Missing or unexpected weights are an error (default true). */
  strict?: boolean;
  /**
   * config.json fields over a registered name's, for a model built without weights (e.g.
   * architectures and id2label: the name's encoder under a classifier sized to a dataset).
   */
  config?: HFConfig;
}

/** What createModel gets from a model entry beyond its config. */
export interface ModelEntry extends RegistryEntry {
  readonly kind: 'model';
  /** config.json's model_type (clip, siglip, bert, vit, vit_mae, blip, oadtr). */
  readonly family: string;
  /** config.json's fields, HF's layout (architectures picks the class). */
  readonly config: HFConfig;
  /** The tokenizer for its texts, when one is packaged (the folder's tokenizer.json otherwise). */
  readonly tokenizer?: () => TextTokenizer;
  /** Where the pretrained weights come from (a Hugging Face repo id), for documentation. */
  readonly pretrained?: string;
}

export const models = new Registry<ModelEntry>('model');

/** Registers a model name, e.g. a user's own config: `registerModel({ name, aliases, family, config })`. */
export function registerModel(
  entry: Omit<ModelEntry, 'kind' | 'aliases' | 'family'> & { aliases?: readonly string[]; family?: string },
  opts: { replace?: boolean } = {},
): ModelEntry {
  const family = entry.family ?? entry.config.model_type;
  if (typeof family !== 'string') throw new Error(`registerModel: '${entry.name}' needs a family or a config with model_type`);
  if (entry.config.model_type !== undefined && entry.config.model_type !== family) {
    throw new Error(`registerModel: '${entry.name}' has family '${family}' but config.model_type '${String(entry.config.model_type)}'`);
  }
  modelFamily(family);
  return models.register({ ...entry, kind: 'model', aliases: entry.aliases ?? [], family, config: { ...entry.config, model_type: family } }, opts);
}

/** Registered model names (canonical, without aliases), sorted. */
export function listModels(): string[] {
  return models.list();
}

/** The entry of a model name or alias (an unknown name is an error listing close matches). */
export function getModelEntry(name: string): ModelEntry {
  return models.get(name);
}

for (const m of BUILTIN_MODELS) registerModel(m);

const isDir = (p: string): boolean => fs.existsSync(p) && fs.statSync(p).isDirectory();

function moduleOptions(opts: CreateModelOptions): ModuleOptions & { strict?: boolean } {
  const backend = typeof opts.backend === 'string' ? getBackend(opts.backend) : opts.backend;
  return { backend, generator: opts.generator, strict: opts.strict };
}

/** Loads a model folder: open_clip's layout, or HF's (its class chosen by model_type and architectures). */
async function loadFolder(dir: string, opts: CreateModelOptions): Promise<Model> {
  if (isOpenClipFolder(dir)) return loadOpenClip(dir, moduleOptions(opts));
  const { Model } = classFor(readHFConfig(dir), path.join(dir, 'config.json'));
  return Model.fromPretrained(dir, moduleOptions(opts));
}

const isOpenClipFolder = (dir: string): boolean => !fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, OPEN_CLIP_CONFIG_NAME));

/** A spec that names a folder rather than a registered name: it has a path separator or starts with . or ~. */
export const looksLikePath = (spec: string): boolean => /[/\\]/.test(spec) || /^[.~]/.test(spec);

/** What a model spec resolves to, before anything is built. */
export interface ModelSource {
  /** The registered entry, for a name or alias. */
  readonly entry?: ModelEntry;
  /**
   * The folder the weights come from (and with them tokenizer.json and preprocessor_config.json):
   * the model folder, or a name's weights folder; undefined for a name built with init: 'random'.
   */
  readonly folder?: string;
  /** config.json's model_type ('clip' for an open_clip folder). */
  readonly modelType: string;
}

/** The error for a registered name given neither weights nor init: 'random'. */
function weightsRequired(e: ModelEntry): Error {
  const label = `model '${e.name}'`;
  const untrained = "For an untrained model with random weights, pass init: 'random' (--random-init on the command line).";
  const openClip = e.family === 'clip' ? `; an open_clip folder (${OPEN_CLIP_CONFIG_NAME} + ${OPEN_CLIP_WEIGHTS_NAME}) loads as the model too` : '';
  if (e.pretrained === undefined) {
    return new Error(`${label} has no weights: a registered name is an architecture, and it names no pretrained checkpoint. `
      + `Pass a folder with its weights (config.json + model.safetensors) as weights (--weights <folder>), or the folder itself as the model. ${untrained}`);
  }
  return new Error(`${label} has no weights: a registered name is an architecture, and Glimpse downloads nothing. `
    + `Its pretrained weights are the Hugging Face repo ${e.pretrained}: download it into a folder (config.json + model.safetensors; `
    + `e.g. hf download ${e.pretrained} --include '*.json' '*.safetensors' --local-dir <folder>) `
    + `and pass that folder as weights (--weights <folder>) or as the model itself (--model <folder>)${openClip}. ${untrained}`);
}

/**
 * Resolves a model spec without building anything: a registered name (or alias) with `weights`
 * or `init: 'random'`, or a model folder (HF's layout or open_clip's). The errors are
 * createModel's: an unknown name (with close matches), a missing folder, a name without weights.
 * `accept` sees the model type as soon as it is known (a task's check of the family), so a model
 * of the wrong kind is reported before missing weights.
 */
export function modelSource(nameOrDir: string, opts: Pick<CreateModelOptions, 'weights' | 'init'> = {},
  accept?: (modelType: string) => void): ModelSource {
  if (opts.init !== undefined && opts.init !== 'random') throw new Error(`${nameOrDir}: init must be 'random', got ${JSON.stringify(opts.init)}`);
  const entry = models.find(nameOrDir);
  if (!entry) {
    if (!fs.existsSync(nameOrDir)) {
      if (looksLikePath(nameOrDir)) {
        throw new Error(`${nameOrDir}: the model folder does not exist (${path.resolve(nameOrDir)}); a model is a registered name (listModels()) or a folder with config.json`);
      }
      models.get(nameOrDir);
    }
    if (!isDir(nameOrDir)) throw new Error(`${nameOrDir}: not a folder (a model is a registered name or a folder with config.json)`);
    if (opts.init !== undefined) throw new Error(`${nameOrDir}: init: 'random' (--random-init) builds a registered name; a model folder is loaded with its own weights`);
    if (opts.weights !== undefined) throw new Error(`${nameOrDir}: weights (--weights) go with a registered name; a model folder is loaded with its own weights`);
    const modelType = isOpenClipFolder(nameOrDir) ? 'clip' : readHFConfig(nameOrDir).model_type;
    if (typeof modelType !== 'string') throw new Error(`${path.join(nameOrDir, 'config.json')}: no model_type`);
    accept?.(modelType);
    return { folder: nameOrDir, modelType };
  }
  accept?.(entry.family);
  const label = `model '${entry.name}'`;
  if (opts.weights === undefined) {
    if (opts.init === undefined) throw weightsRequired(entry);
    return { entry, modelType: entry.family };
  }
  if (opts.init !== undefined) throw new Error(`${label}: weights (--weights) and init: 'random' (--random-init) exclude each other; give one`);
  if (!isDir(opts.weights)) throw new Error(`${label}: weights folder ${opts.weights} does not exist`);
  if (fs.existsSync(path.join(opts.weights, 'config.json'))) {
    const type = readHFConfig(opts.weights).model_type;
    if (type !== entry.family) throw new Error(`${label}: ${opts.weights}/config.json is model_type '${String(type)}', not '${entry.family}'`);
  }
  return { entry, folder: opts.weights, modelType: entry.family };
}

/**
 * A model by registered name (or alias), or from a folder (HF's layout, picked by model_type; or
 * open_clip's). A name builds the entry's architecture with `weights`, or untrained with
 * `init: 'random'`; without either it is refused, since nothing is downloaded. An unknown name
 * is an error listing close matches; a path that does not exist, an error saying so.
 */
export async function createModel(nameOrDir: string, opts: CreateModelOptions = {}): Promise<Model> {
  const { entry, folder } = modelSource(nameOrDir, opts);
  if (opts.config && (!entry || folder !== undefined)) throw new Error(`${nameOrDir}: config fields apply to a registered name built with init: 'random'`);
  if (!entry) return loadFolder(folder!, opts);
  const label = `model '${entry.name}'`;
  if (folder === undefined) return modelFromConfig({ ...entry.config, ...opts.config }, moduleOptions(opts), label);
  if (fs.existsSync(path.join(folder, 'config.json'))) return loadFolder(folder, opts);
  // Safetensors without config.json: the family's own loader (with its key map) reads a
  // temporary folder holding the entry's config.json and links to the weight files.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-weights-'));
  try {
    const files = fs.readdirSync(folder).filter((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
    if (files.length === 0) throw new Error(`${label}: no .safetensors files in ${folder}`);
    for (const f of files) fs.symlinkSync(path.resolve(folder, f), path.join(tmp, f));
    writeHFConfig(tmp, entry.config);
    return await loadFolder(tmp, opts);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Losses

export interface LossEntry extends RegistryEntry {
  readonly kind: 'loss';
  /** The loss of logits (and targets, for the losses that take them). */
  readonly fn: (logits: Tensor, target?: Tensor) => Tensor;
}

export const losses = new Registry<LossEntry>('loss');

export function registerLoss(entry: Omit<LossEntry, 'kind' | 'aliases'> & { aliases?: readonly string[] }, opts: { replace?: boolean } = {}): LossEntry {
  if (typeof entry.fn !== 'function') throw new Error(`registerLoss: '${entry.name}' needs a function`);
  return losses.register({ ...entry, kind: 'loss', aliases: entry.aliases ?? [] }, opts);
}

export function getLoss(name: string): LossEntry['fn'] {
  return losses.get(name).fn;
}

export function listLosses(): string[] {
  return losses.list();
}

const needTarget = (name: string, target: Tensor | undefined): Tensor => {
  if (!target) throw new Error(`loss '${name}': needs a target`);
  return target;
};

for (const { name, aliases, description, fn } of LOSSES) registerLoss({ name, aliases, description, fn });
registerLoss({ name: 'bce', aliases: ['bce-with-logits', 'binary-cross-entropy'], description: 'binary cross-entropy of logits against targets of the same shape', fn: (l, t) => binaryCrossEntropyWithLogits(l, needTarget('bce', t)) });
