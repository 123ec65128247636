// The model zoo's public names: models, losses and datasets registered under stable names with
// aliases (open_clip's ViT-B-32, Hugging Face's openai/clip-vit-base-patch32, ...), and
// createModel, which builds a registered model (random or from weights) or loads a folder.
//
// A model entry holds config.json's fields (HF's layout, whatever the name's origin) and the
// architecture class; the class comes from its family's module, imported when first needed, so
// a family whose module is missing only fails when one of its models is created.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type HFConfig, readHFConfig, writeHFConfig } from '../io/hf.js';
import type { Module, ModuleOptions } from '../nn/module.js';
import type { Backend } from '../tensor/backend.js';
import { getBackend } from '../tensor/device.js';
import { binaryCrossEntropyWithLogits } from '../tensor/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { LOSSES } from '../nn/losses.js';
import { loadOpenClip, OPEN_CLIP_CONFIG_NAME } from './openclip.js';
import type { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { BUILTIN_MODELS } from './configs.js';
import { datasetEntries } from '../data/sources.js';
import { openTextCorpus, type OpenTextCorpusOptions } from '../data/text.js';

export type RegistryKind = 'model' | 'loss' | 'dataset';

/** What every registered thing has: a canonical name, aliases, and its kind. */
export interface RegistryEntry {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly kind: RegistryKind;
  readonly description?: string;
}

/** Names compare without case: ViT-B-32, vit-b-32 and VIT-B-32 are one model. */
const key = (name: string): string => name.toLowerCase();

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** A name -> entry table with aliases, for one kind. */
export class Registry<E extends RegistryEntry> {
  private readonly entries = new Map<string, E>();
  private readonly byName = new Map<string, E>();

  constructor(readonly kind: RegistryKind) {}

  /** Adds an entry; a name or alias already taken (by another entry) is an error unless `replace`. */
  register(entry: E, opts: { replace?: boolean } = {}): E {
    if (entry.kind !== this.kind) throw new Error(`registry: '${entry.name}' is a ${entry.kind}, not a ${this.kind}`);
    const names = [entry.name, ...entry.aliases];
    if (names.some((n) => typeof n !== 'string' || n.trim() === '' || n !== n.trim())) {
      throw new Error(`registry: ${this.kind} names must be non-empty strings without surrounding spaces, got ${JSON.stringify(names)}`);
    }
    const old = this.entries.get(key(entry.name));
    for (const n of names) {
      const taken = this.byName.get(key(n));
      if (taken && taken !== old) throw new Error(`registry: the ${this.kind} name '${n}' is taken by '${taken.name}'`);
    }
    if (old) {
      if (!opts.replace) throw new Error(`registry: a ${this.kind} named '${old.name}' is already registered (pass replace: true to replace it)`);
      for (const n of [old.name, ...old.aliases]) this.byName.delete(key(n));
    }
    this.entries.set(key(entry.name), entry);
    for (const n of names) this.byName.set(key(n), entry);
    return entry;
  }

  /** The entry a name or alias means, or undefined. */
  find(name: string): E | undefined {
    return this.byName.get(key(name));
  }

  /** The entry a name or alias means; an unknown name is an error listing the closest names. */
  get(name: string): E {
    const e = this.find(name);
    if (e) return e;
    const close = this.closeMatches(name);
    const hint = close.length ? `; did you mean ${close.map((n) => `'${n}'`).join(', ')}?` : '';
    throw new Error(`unknown ${this.kind} '${name}'${hint} (known: ${this.list().join(', ') || 'none'})`);
  }

  /** Canonical names, sorted. */
  list(): string[] {
    return [...this.entries.values()].map((e) => e.name).sort((a, b) => a.localeCompare(b, 'en'));
  }

  all(): E[] {
    return this.list().map((n) => this.entries.get(key(n))!);
  }

  /** Up to five names or aliases near `name` (by edit distance, or containing it), nearest first. */
  closeMatches(name: string): string[] {
    const q = key(name);
    const scored: [number, string][] = [];
    for (const [k, e] of this.byName) {
      const shown = [e.name, ...e.aliases].find((n) => key(n) === k)!;
      const d = editDistance(q, k);
      if (d <= Math.max(2, Math.floor(q.length / 3)) || (q.length >= 3 && k.includes(q))) scored.push([d, shown]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1], 'en'));
    return [...new Set(scored.map(([, n]) => n))].slice(0, 5);
  }
}

// ---------------------------------------------------------------------------------------------
// Model families: where each model_type's classes live

/** A model class as every family writes it (the template of vit.ts). */
export interface ModelClass {
  new (config: never, opts?: ModuleOptions): Module;
  fromPretrained(dir: string, opts?: ModuleOptions & { strict?: boolean }): Module;
}

/** The config class that goes with it. */
export interface ConfigClass {
  fromHF(raw: HFConfig, label?: string): unknown;
}

/** One model_type: its module and class names; the module is imported on first use. */
export interface ModelFamily {
  /** config.json's model_type. */
  readonly modelType: string;
  /** Human name for errors (CLIP, BLIP, ...). */
  readonly title: string;
  readonly configClass: string;
  /** The class used when config.json names no architecture this family has. */
  readonly defaultArchitecture: string;
  /** The module's exports (a dynamic import). */
  load(): Promise<Record<string, unknown>>;
}

const families = new Map<string, ModelFamily>();

/** Makes a model_type loadable: createModel on a folder of it, and registered names of it. */
export function registerModelFamily(family: ModelFamily): void {
  families.set(family.modelType, family);
}

export function modelFamily(modelType: string): ModelFamily {
  const f = families.get(modelType);
  if (!f) throw new Error(`no model family for model_type '${modelType}' (known: ${[...families.keys()].sort().join(', ')})`);
  return f;
}

// A module written by another part of the zoo may not exist yet: its specifier is a variable so
// that the compiler does not require it, and a missing module is reported by family.
const lazyModule = (spec: string, title: string) => async (): Promise<Record<string, unknown>> => {
  try {
    return (await import(spec)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND') throw new Error(`${title} models are not available in this build (${spec} is missing)`, { cause: e });
    throw e;
  }
};

registerModelFamily({ modelType: 'clip', title: 'CLIP', configClass: 'CLIPConfig', defaultArchitecture: 'CLIPModel', load: () => import('./clip.js') });
registerModelFamily({ modelType: 'siglip', title: 'SigLIP', configClass: 'SiglipConfig', defaultArchitecture: 'SiglipModel', load: () => import('./siglip.js') });
registerModelFamily({ modelType: 'bert', title: 'BERT', configClass: 'BertConfig', defaultArchitecture: 'BertModel', load: () => import('./bert.js') });
registerModelFamily({ modelType: 'vit', title: 'ViT', configClass: 'ViTConfig', defaultArchitecture: 'ViTModel', load: () => import('./vit.js') });
registerModelFamily({ modelType: 'vit_mae', title: 'ViT-MAE', configClass: 'ViTMAEConfig', defaultArchitecture: 'ViTMAEForPreTraining', load: lazyModule('./vit_mae.js', 'ViT-MAE') });
registerModelFamily({ modelType: 'blip', title: 'BLIP', configClass: 'BlipConfig', defaultArchitecture: 'BlipForConditionalGeneration', load: lazyModule('./blip.js', 'BLIP') });

/** The family's model class for a config: its first architecture the module exports, else the default. */
async function classesFor(config: HFConfig, label: string): Promise<{ family: ModelFamily; Model: ModelClass; Config: ConfigClass }> {
  const modelType = config.model_type;
  if (typeof modelType !== 'string') throw new Error(`${label}: no model_type`);
  const family = modelFamily(modelType);
  const mod = await family.load();
  const archs = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  const arch = archs.find((a) => typeof mod[a] === 'function') ?? family.defaultArchitecture;
  const Model = mod[arch] as ModelClass | undefined;
  const Config = mod[family.configClass] as ConfigClass | undefined;
  if (typeof Model !== 'function' || typeof Model.fromPretrained !== 'function') {
    throw new Error(`${label}: the ${family.title} module has no model class ${arch}${archs.length ? ` (config.json names ${archs.join(', ')})` : ''}`);
  }
  if (!Config || typeof Config.fromHF !== 'function') throw new Error(`${label}: the ${family.title} module has no ${family.configClass}.fromHF`);
  return { family, Model, Config };
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
async function loadFolder(dir: string, opts: CreateModelOptions): Promise<Module> {
  if (!fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, OPEN_CLIP_CONFIG_NAME))) {
    return loadOpenClip(dir, moduleOptions(opts));
  }
  const config = readHFConfig(dir);
  const { Model } = await classesFor(config, path.join(dir, 'config.json'));
  return Model.fromPretrained(dir, moduleOptions(opts));
}

/**
 * A model by registered name (or alias), or from a folder (HF's layout, picked by model_type; or
 * open_clip's). A name builds the entry's architecture with random weights, or with `weights`.
 * An unknown name is an error listing close matches.
 */
export async function createModel(nameOrDir: string, opts: CreateModelOptions = {}): Promise<Module> {
  const entry = models.find(nameOrDir);
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
  const { Model, Config } = await classesFor(e.config, label);
  if (opts.weights === undefined) return new Model(Config.fromHF(e.config, label) as never, moduleOptions(opts));
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
// Losses and datasets

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

export interface DatasetEntry extends RegistryEntry {
  readonly kind: 'dataset';
  /** Opens the dataset (its options are the dataset's own). */
  readonly open: (options?: Record<string, unknown>) => unknown;
}

/** Datasets by name: the built-in sources of src/data (scenes, fashion-mnist, webdataset, csv, image-folder) and the text corpus. */
export const datasets = new Registry<DatasetEntry>('dataset');

export function registerDataset(entry: Omit<DatasetEntry, 'kind' | 'aliases'> & { aliases?: readonly string[] }, opts: { replace?: boolean } = {}): DatasetEntry {
  if (typeof entry.open !== 'function') throw new Error(`registerDataset: '${entry.name}' needs an open function`);
  return datasets.register({ ...entry, kind: 'dataset', aliases: entry.aliases ?? [] }, opts);
}

for (const source of datasetEntries) registerDataset(source);
registerDataset({
  name: 'debian-descriptions', aliases: ['debian-text'],
  description: "English text for MLM: Debian's package descriptions (scripts/install-corpus.sh installs them); splits train | val | all",
  open: (o: OpenTextCorpusOptions & { argument?: string } = {}) => openTextCorpus(o.argument ? `debian-descriptions:${o.argument}` : 'debian-descriptions', o),
});

export function listDatasets(): string[] {
  return datasets.list();
}
