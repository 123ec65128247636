// The model zoo's public names: model families by config.json's model_type, models and losses
// registered under stable names with aliases (open_clip's ViT-B-32, Hugging Face's
// openai/clip-vit-base-patch32, ...), and createModel, which builds a registered model (random or
// from weights) or loads a folder. Adding a family is one line here: its ModelFamily.
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
import { loadOpenClip, OPEN_CLIP_CONFIG_NAME } from './openclip.js';
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

for (const family of [VIT, CLIP, SIGLIP, BERT, VIT_MAE, BLIP]) registerModelFamily(family);

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
   * A folder with the weights: a Hugging Face folder (config.json + safetensors), whose
   * config.json must be of the entry's model_type, or safetensors alone, loaded into the entry's
   * config. Without it the model has random initial weights (the family's init).
   */
  weights?: string;
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
  /** config.json's model_type (clip, siglip, bert, vit, vit_mae, blip). */
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
  if (!fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, OPEN_CLIP_CONFIG_NAME))) {
    return loadOpenClip(dir, moduleOptions(opts));
  }
  const { Model } = classFor(readHFConfig(dir), path.join(dir, 'config.json'));
  return Model.fromPretrained(dir, moduleOptions(opts));
}

/**
 * A model by registered name (or alias), or from a folder (HF's layout, picked by model_type; or
 * open_clip's). A name builds the entry's architecture with random weights, or with `weights`.
 * An unknown name is an error listing close matches.
 */
export async function createModel(nameOrDir: string, opts: CreateModelOptions = {}): Promise<Model> {
  const entry = models.find(nameOrDir);
  if (opts.config && (!entry || opts.weights !== undefined)) throw new Error(`${nameOrDir}: config fields apply to a registered name built without weights`);
  if (!entry) {
    if (isDir(nameOrDir)) return loadFolder(nameOrDir, opts);
    if (fs.existsSync(nameOrDir)) throw new Error(`${nameOrDir}: not a folder (a model is a registered name or a folder with config.json)`);
    if (/^[./~]/.test(nameOrDir)) throw new Error(`${nameOrDir}: no such model folder`);
    models.get(nameOrDir);
  }
  const e = entry!;
  const label = `model '${e.name}'`;
  if (opts.weights !== undefined) {
    if (!isDir(opts.weights)) throw new Error(`${label}: weights folder ${opts.weights} does not exist`);
    if (fs.existsSync(path.join(opts.weights, 'config.json'))) {
      const type = readHFConfig(opts.weights).model_type;
      if (type !== e.family) throw new Error(`${label}: ${opts.weights}/config.json is model_type '${String(type)}', not '${e.family}'`);
      return loadFolder(opts.weights, opts);
    }
  }
  if (opts.weights === undefined) return modelFromConfig({ ...e.config, ...opts.config }, moduleOptions(opts), label);
  // Safetensors without config.json: the family's own loader (with its key map) reads a
  // temporary folder holding the entry's config.json and links to the weight files.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-weights-'));
  try {
    const files = fs.readdirSync(opts.weights).filter((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
    if (files.length === 0) throw new Error(`${label}: no .safetensors files in ${opts.weights}`);
    for (const f of files) fs.symlinkSync(path.resolve(opts.weights, f), path.join(tmp, f));
    writeHFConfig(tmp, e.config);
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
