// Training configuration: a YAML or JSON file, overridden by `key.path=value` pairs from the
// command line, checked against one schema before any work starts. Keys are written as in the file
// (snake_case, as open_clip's and HF's training arguments): the same name appears in the file, in
// overrides, in errors and in the config saved with each checkpoint.
import fs from 'node:fs';
import YAML from 'yaml';
import { editDistance, isNear } from '../data/registry.js';

// ---------------------------------------------------------------------------------------------
// The schema

type Field =
  | { kind: 'number'; default: number | null; min?: number; max?: number; integer?: boolean; minExclusive?: boolean; maxExclusive?: boolean; nullable?: boolean; doc: string }
  | { kind: 'string'; default: string | null; nullable?: boolean; doc: string }
  | { kind: 'enum'; values: readonly string[]; default: string; doc: string }
  | { kind: 'boolean'; default: boolean; doc: string }
  | { kind: 'range'; default: [number, number] | null; min: number; max?: number; doc: string }
  | { kind: 'strings'; default: string[]; doc: string }
  | { kind: 'object'; fields: Schema; nullable?: boolean; doc: string }
  /** Any JSON object, passed on unchecked (its consumer checks it). */
  | { kind: 'free'; doc: string }
  /** A registry name / folder (string) or an object of the given fields. */
  | { kind: 'model'; fields: Schema; doc: string };

type Schema = Readonly<Record<string, Field>>;

const int = (d: number | null, min: number, doc: string, nullable = false): Field => ({ kind: 'number', default: d, min, integer: true, nullable, doc });

const CUSTOM_MODEL: Schema = {
  family: { kind: 'enum', values: ['clip', 'siglip', 'vit', 'mae', 'bert', 'oadtr'], default: 'clip', doc: 'architecture family (mae: ViT-MAE, bert: BERT with its MLM head, oadtr: OadTR for the oad task)' },
  image_size: int(64, 1, 'input image side in pixels'),
  patch_size: int(8, 1, 'patch side in pixels'),
  width: int(128, 1, 'image tower width (bert: the encoder width)'),
  layers: int(2, 1, 'image tower blocks (bert: encoder blocks)'),
  heads: int(4, 1, 'image tower attention heads (bert: the encoder\'s)'),
  mlp_ratio: { kind: 'number', default: 4, min: 0, minExclusive: true, doc: 'MLP width / model width (every tower)' },
  embed_dim: int(64, 1, 'shared embedding width (CLIP; SigLIP uses the image width)'),
  text_width: int(128, 1, 'text tower width'),
  text_layers: int(2, 1, 'text tower blocks'),
  text_heads: int(4, 1, 'text tower attention heads'),
  context_length: int(32, 2, 'text tokens per caption (bert: tokens per packed sequence)'),
  vocab_size: int(258, 258, 'text vocabulary (the byte tokenizer needs 258; bert takes mlm.vocab_size)'),
  decoder_width: int(128, 4, 'mae: decoder width'),
  decoder_layers: int(2, 0, 'mae: decoder blocks; oadtr: decoder blocks, 0 for the ablation without the decoder (no anticipation)'),
  decoder_heads: int(4, 1, 'mae: decoder attention heads'),
  window: int(64, 1, 'oadtr: chunks the model reads per prediction (official enc_layers; 1 makes a per-frame classifier)'),
  queries: int(8, 1, 'oadtr: future chunks the decoder anticipates (official query_num)'),
  decoder_mlp_dim: int(1024, 1, 'oadtr: the decoder feed-forward\'s hidden width (official decoder_embedding_dim_out)'),
  dropout: { kind: 'number', default: 0.1, min: 0, max: 1, maxExclusive: true, doc: 'oadtr: dropout and attention dropout rate' },
};

export const SCHEMA: Schema = {
  model: {
    kind: 'model',
    doc: 'a registered model name (tiny-clip, test-clip, ViT-B-32, ...) or folder; or {name, weights} or {custom: sizes}',
    fields: {
      name: { kind: 'string', default: null, nullable: true, doc: 'registered name or model folder' },
      weights: { kind: 'string', default: null, nullable: true, doc: 'weights folder for a registered name' },
      custom: { kind: 'object', nullable: true, fields: CUSTOM_MODEL, doc: 'sizes of a new model with the byte tokenizer' },
    },
  },
  task: {
    kind: 'enum', values: ['clip', 'siglip', 'catlip', 'ce', 'mae', 'mlm', 'oad'], default: 'clip',
    doc: 'loss: clip (InfoNCE), siglip (sigmoid), catlip (caption words, BCE), ce (class labels), mae (masked patches), mlm (masked tokens), oad (online action detection: current and anticipated chunks)',
  },
  data: {
    kind: 'object',
    doc: 'datasets and their preparation',
    fields: {
      train: { kind: 'string', default: null, doc: 'training data spec: scenes:train, fashion-mnist:train, shards-{0..9}.tar, a csv/tsv, a folder (oad: feature streams, oad-synthetic:train or a stream-set folder)' },
      val: { kind: 'string', default: null, nullable: true, doc: 'evaluation data spec (labelled for zero-shot/accuracy)' },
      options: { kind: 'free', doc: "options for opening both datasets (e.g. scenes: {length: 5000}, captions: {templates: [...]})" },
      val_options: { kind: 'free', doc: 'options for the validation set only, over data.options' },
      augment: {
        kind: 'object',
        doc: 'random augmentation of training images',
        fields: {
          random_resized_crop: { kind: 'range', default: null, min: 0, max: 1, doc: 'area scale range [lo, hi] of a random resized crop; null: off' },
          crop_ratio: { kind: 'range', default: [3 / 4, 4 / 3], min: 0, doc: 'aspect ratio range of the random resized crop' },
          pad_crop: int(0, 0, 'pad by n pixels and crop back at random (0: off)'),
          horizontal_flip: { kind: 'boolean', default: false, doc: 'flip half the images' },
        },
      },
      workers: int(2, 0, 'decoding threads (0: main thread)'),
      prefetch: int(2, 1, 'batches prepared ahead'),
    },
  },
  batch_size: int(32, 1, 'the global batch: samples per optimizer step over all processes; each process reads batch_size / processes / optim.grad_accum at a time, which must divide'),
  epochs: { kind: 'number', default: null, min: 0, minExclusive: true, nullable: true, doc: 'training length in passes over the data (or set steps or time_budget_s)' },
  steps: int(null, 1, 'training length in optimizer steps (or set epochs or time_budget_s)', true),
  time_budget_s: {
    kind: 'number', default: null, min: 0, minExclusive: true, nullable: true,
    doc: 'training length in seconds of training steps (evaluations and checkpoints not counted): after the lr warm-up (in steps) the schedule advances with these seconds and the run ends when they are spent, so the step count depends on the machine',
  },
  optim: {
    kind: 'object',
    doc: 'AdamW and its schedule',
    fields: {
      lr: { kind: 'number', default: 5e-4, min: 0, doc: 'peak learning rate' },
      weight_decay: { kind: 'number', default: 0.1, min: 0, doc: 'decoupled weight decay (not on biases, norms, embeddings, logit scale)' },
      betas: { kind: 'range', default: [0.9, 0.98], min: 0, max: 1, doc: 'Adam betas [b1, b2]' },
      eps: { kind: 'number', default: 1e-6, min: 0, doc: 'Adam epsilon' },
      warmup_steps: int(0, 0, 'linear warm-up steps'),
      layer_decay: { kind: 'number', default: 1, min: 0, max: 1, minExclusive: true, doc: 'ce task on a ViT: lr of block i scaled by layer_decay^(blocks - i) (BEiT/MAE fine-tuning; 1: off)' },
      schedule: { kind: 'enum', values: ['cosine', 'constant'], default: 'cosine', doc: 'after warm-up: cosine decay to min_lr_ratio, or constant' },
      min_lr_ratio: { kind: 'number', default: 0, min: 0, max: 1, doc: 'final lr / peak lr of the cosine schedule' },
      grad_accum: int(1, 1, 'micro-batches per optimizer step (the share of batch_size of each process is split among them)'),
      grad_clip: { kind: 'number', default: null, min: 0, minExclusive: true, nullable: true, doc: 'clip the global gradient norm to this (null: off)' },
    },
  },
  seed: int(0, 0, 'seed of the initial weights, data order, augmentation and patch dropout'),
  lock_image: { kind: 'boolean', default: false, doc: 'LiT: freeze the image tower (run it in eval mode, without gradients)' },
  unlock_last_blocks: int(0, 0, 'with lock_image: train the last N image blocks (and what follows them) anyway'),
  patch_dropout: { kind: 'number', default: 0, min: 0, max: 1, maxExclusive: true, doc: 'FLIP: fraction of image patches dropped in training' },
  label_smoothing: { kind: 'number', default: 0, min: 0, max: 1, maxExclusive: true, doc: 'ce task: weight of the uniform distribution mixed into the targets' },
  mae: {
    kind: 'object',
    doc: 'the mae task',
    fields: {
      mask_ratio: { kind: 'number', default: 0.75, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'fraction of patches hidden from the encoder' },
      norm_pix_loss: { kind: 'boolean', default: true, doc: 'reconstruct each patch normalised by its own mean and variance' },
      pictures: int(8, 0, 'images in the reconstruction picture written at each evaluation (0: none)'),
    },
  },
  mlm: {
    kind: 'object',
    doc: 'the mlm task',
    fields: {
      mask_prob: { kind: 'number', default: 0.15, min: 0, max: 1, minExclusive: true, maxExclusive: true, doc: 'fraction of tokens selected (80% [MASK], 10% random, 10% kept)' },
      vocab_size: int(8192, 16, 'WordPiece vocabulary trained from data.train when the model has no tokenizer'),
      lowercase: { kind: 'boolean', default: true, doc: 'the trained vocabulary is uncased' },
    },
  },
  checkpoint: {
    kind: 'object',
    doc: 'checkpoints (always one at the end)',
    fields: {
      every: int(0, 0, 'steps between checkpoints (0: only at the end)'),
      keep: int(2, 1, 'checkpoints kept (the newest)'),
    },
  },
  eval: {
    kind: 'object',
    doc: 'evaluation on data.val',
    fields: {
      every: int(0, 0, 'steps between evaluations (0: only at the end, when data.val is set)'),
      templates: { kind: 'strings', default: ['a photo of a {}.'], doc: 'zero-shot prompt templates ({} is the class name)' },
      max_samples: int(null, 1, 'evaluate on at most this many validation samples', true),
      batch_size: int(64, 1, 'evaluation batch size'),
    },
  },
  distributed: {
    kind: 'object',
    doc: 'data-parallel training on several processes (glimpse launch; see docs/DISTRIBUTED.md)',
    fields: {
      bucket_cap_mb: { kind: 'number', default: 25, min: 0, minExclusive: true, doc: 'gradients are all-reduced in buckets of about this many MB, each as soon as its gradients are final in backward' },
      find_unused_parameters: { kind: 'boolean', default: false, doc: 'allow trainable parameters that get no gradient in a step (otherwise an error names them)' },
    },
  },
  log_every: int(10, 1, 'steps between log lines and metrics records'),
  out: { kind: 'string', default: 'runs/train', doc: 'output folder (checkpoints, metrics.jsonl, report.html, model/)' },
};

// ---------------------------------------------------------------------------------------------
// The checked config

export interface CustomModelConfig {
  family: 'clip' | 'siglip' | 'vit' | 'mae' | 'bert' | 'oadtr';
  image_size: number; patch_size: number; width: number; layers: number; heads: number; mlp_ratio: number;
  embed_dim: number; text_width: number; text_layers: number; text_heads: number; context_length: number; vocab_size: number;
  decoder_width: number; decoder_layers: number; decoder_heads: number;
  window: number; queries: number; decoder_mlp_dim: number; dropout: number;
}

export interface ModelConfig {
  name: string | null;
  weights: string | null;
  custom: CustomModelConfig | null;
}

export type TaskName = 'clip' | 'siglip' | 'catlip' | 'ce' | 'mae' | 'mlm' | 'oad';

export interface TrainConfig {
  model: ModelConfig;
  task: TaskName;
  data: {
    train: string;
    val: string | null;
    options: Record<string, unknown>;
    val_options: Record<string, unknown>;
    augment: { random_resized_crop: [number, number] | null; crop_ratio: [number, number]; pad_crop: number; horizontal_flip: boolean };
    workers: number;
    prefetch: number;
  };
  batch_size: number;
  epochs: number | null;
  steps: number | null;
  time_budget_s: number | null;
  optim: {
    lr: number; weight_decay: number; betas: [number, number]; eps: number; warmup_steps: number; layer_decay: number;
    schedule: 'cosine' | 'constant'; min_lr_ratio: number; grad_accum: number; grad_clip: number | null;
  };
  seed: number;
  lock_image: boolean;
  unlock_last_blocks: number;
  patch_dropout: number;
  label_smoothing: number;
  mae: { mask_ratio: number; norm_pix_loss: boolean; pictures: number };
  mlm: { mask_prob: number; vocab_size: number; lowercase: boolean };
  checkpoint: { every: number; keep: number };
  eval: { every: number; templates: string[]; max_samples: number | null; batch_size: number };
  distributed: { bucket_cap_mb: number; find_unused_parameters: boolean };
  log_every: number;
  out: string;
}

/** The custom-model families each task trains. */
const TASK_FAMILIES: Record<TaskName, readonly CustomModelConfig['family'][]> = {
  clip: ['clip'], siglip: ['siglip'], catlip: ['clip', 'siglip'], ce: ['vit'], mae: ['mae'], mlm: ['bert'], oad: ['oadtr'],
};

/** A config problem: names the key, says what was expected and what was found. */
export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(key ? `config: ${key}: ${message}` : `config: ${message}`);
  }
}

/** The known key closest to `name` (within a third of its length, at least 2 edits), if any. */
function didYouMean(name: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && isNear(name, bestD) ? `; did you mean '${best}'?` : '';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? `the list ${JSON.stringify(v)}` : `${typeof v} ${JSON.stringify(v)}`);

function checkNumber(f: Extract<Field, { kind: 'number' }>, v: unknown, key: string): number | null {
  if (v === null && f.nullable) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(key, `expected ${f.integer ? 'an integer' : 'a number'}${f.nullable ? ' or null' : ''}, got ${describe(v)}`);
  if (f.integer && !Number.isInteger(v)) throw new ConfigError(key, `expected an integer, got ${v}`);
  if (f.min !== undefined && (f.minExclusive ? !(v > f.min) : !(v >= f.min))) throw new ConfigError(key, `must be ${f.minExclusive ? '>' : '>='} ${f.min}, got ${v}`);
  if (f.max !== undefined && (f.maxExclusive ? !(v < f.max) : !(v <= f.max))) throw new ConfigError(key, `must be ${f.maxExclusive ? '<' : '<='} ${f.max}, got ${v}`);
  return v;
}

function checkField(f: Field, v: unknown, key: string): unknown {
  switch (f.kind) {
    case 'number':
      return checkNumber(f, v === undefined ? f.default : v, key);
    case 'string': {
      const s = v === undefined ? f.default : v;
      if (s === null && f.nullable) return null;
      if (s === null) throw new ConfigError(key, 'is required');
      if (typeof s !== 'string' || s.trim() === '') throw new ConfigError(key, `expected a non-empty string, got ${describe(s)}`);
      return s;
    }
    case 'enum': {
      const s = v === undefined ? f.default : v;
      if (typeof s !== 'string' || !f.values.includes(s)) {
        throw new ConfigError(key, `expected one of ${f.values.join(', ')}, got ${describe(s)}${typeof s === 'string' ? didYouMean(s, f.values) : ''}`);
      }
      return s;
    }
    case 'boolean': {
      const b = v === undefined ? f.default : v;
      if (typeof b !== 'boolean') throw new ConfigError(key, `expected true or false, got ${describe(b)}`);
      return b;
    }
    case 'range': {
      const r = v === undefined ? f.default : v;
      if (r === null) return null;
      if (!Array.isArray(r) || r.length !== 2 || r.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
        throw new ConfigError(key, `expected two numbers [lo, hi], got ${describe(r)}`);
      }
      const [lo, hi] = r as [number, number];
      if (lo < f.min || (f.max !== undefined && hi > f.max)) throw new ConfigError(key, `values must lie in [${f.min}, ${f.max ?? 'inf'}], got [${lo}, ${hi}]`);
      if (lo > hi) throw new ConfigError(key, `expected lo <= hi, got [${lo}, ${hi}]`);
      return [lo, hi];
    }
    case 'strings': {
      const l = v === undefined ? f.default : v;
      if (!Array.isArray(l) || l.some((x) => typeof x !== 'string')) throw new ConfigError(key, `expected a list of strings, got ${describe(l)}`);
      if (l.length === 0) throw new ConfigError(key, 'the list is empty');
      return [...l];
    }
    case 'free': {
      const o = v === undefined || v === null ? {} : v;
      if (!isObject(o)) throw new ConfigError(key, `expected an object, got ${describe(o)}`);
      return structuredClone(o);
    }
    case 'object':
      if ((v === null || v === undefined) && f.nullable) return null;
      return checkObject(f.fields, v ?? {}, key);
    case 'model':
      if (typeof v === 'string') return checkObject(f.fields, { name: v }, key);
      if (v === undefined) throw new ConfigError(key, 'is required: a registered model name, a folder, or {custom: {...}}');
      return checkObject(f.fields, v, key);
  }
}

function checkObject(schema: Schema, raw: unknown, prefix: string): Record<string, unknown> {
  if (!isObject(raw)) throw new ConfigError(prefix, `expected a mapping of keys, got ${describe(raw)}`);
  const known = Object.keys(schema);
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(schema, k)) {
      const key = prefix ? `${prefix}.${k}` : k;
      throw new ConfigError(key, `unknown key${didYouMean(k, known)} (known here: ${known.join(', ')})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) out[k] = checkField(f, raw[k], prefix ? `${prefix}.${k}` : k);
  return out;
}

/**
 * Checks a raw config (parsed YAML/JSON, overrides applied) and fills in defaults. Every problem
 * is a ConfigError naming its dotted key; an unknown key suggests the nearest known one.
 */
export function resolveConfig(raw: unknown): TrainConfig {
  const c = checkObject(SCHEMA, raw, '') as unknown as TrainConfig;
  const m = c.model;
  if ((m.name === null) === (m.custom === null)) throw new ConfigError('model', 'give either a name (registered or a folder) or custom sizes, not both or neither');
  if (m.weights !== null && m.name === null) throw new ConfigError('model.weights', 'needs model.name (weights load into a registered model)');
  if (c.data.train === null) throw new ConfigError('data.train', 'is required (e.g. scenes:train)');
  if ([c.steps, c.epochs, c.time_budget_s].filter((x) => x !== null).length !== 1) {
    throw new ConfigError('steps', 'set exactly one of steps, epochs and time_budget_s');
  }
  if (c.batch_size % c.optim.grad_accum !== 0) {
    throw new ConfigError('optim.grad_accum', `batch_size ${c.batch_size} must be a multiple of grad_accum ${c.optim.grad_accum}`);
  }
  if (c.label_smoothing > 0 && c.task !== 'ce') throw new ConfigError('label_smoothing', `only means something with task ce, not ${c.task}`);
  if (c.unlock_last_blocks > 0 && !c.lock_image) throw new ConfigError('unlock_last_blocks', 'only means something with lock_image: true');
  if (m.custom !== null) {
    const fam = m.custom.family;
    const wanted = TASK_FAMILIES[c.task];
    if (!wanted.includes(fam)) throw new ConfigError('model.custom.family', `the ${c.task} task trains ${wanted.join(' or ')}, not ${fam}`);
  }
  if (c.optim.layer_decay < 1 && c.task !== 'ce') throw new ConfigError('optim.layer_decay', `only means something with task ce (fine-tuning a ViT), not ${c.task}`);
  if (c.lock_image && (c.task === 'mae' || c.task === 'mlm' || c.task === 'oad')) throw new ConfigError('lock_image', `the ${c.task} task trains the whole ${c.task === 'oad' ? 'model' : 'encoder'}`);
  if (c.task === 'oad' && c.patch_dropout > 0) throw new ConfigError('patch_dropout', 'the oad task reads feature streams, which have no image patches to drop');
  for (const t of c.eval.templates) if (!/\{c?\}/.test(t)) throw new ConfigError('eval.templates', `the template ${JSON.stringify(t)} has no {} for the class name`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Files and overrides

/** A YAML (.yaml, .yml) or JSON (.json) file's contents; a parse error names the file and line. */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!fs.existsSync(file)) throw new ConfigError('', `${file} does not exist`);
  const text = fs.readFileSync(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError('', `${file}: ${(e as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isObject(parsed)) throw new ConfigError('', `${file}: expected a mapping of keys at the top level`);
  return parsed;
}

/**
 * Sets `key` (dotted: `optim.lr`) in a raw config to `value`, read as a YAML scalar or flow
 * collection (`1e-3` is a number, `true` a boolean, `[0.9, 0.98]` a list, `null` null), so an
 * override is written as it would be in the file. Intermediate mappings are created.
 */
export function applyOverride(raw: Record<string, unknown>, key: string, value: string): void {
  const parts = key.split('.');
  if (parts.some((p) => p === '')) throw new ConfigError(key, 'is not a valid dotted key');
  let node: Record<string, unknown> = raw;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    // A model given by name becomes {name} when one of its fields is overridden.
    if (p === 'model' && i === 0 && typeof node[p] === 'string') node[p] = { name: node[p] };
    if (node[p] === undefined || node[p] === null) node[p] = {};
    if (!isObject(node[p])) throw new ConfigError(parts.slice(0, i + 1).join('.'), `is ${describe(node[p])}, so ${key} cannot be set`);
    node = node[p] as Record<string, unknown>;
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(value);
  } catch {
    parsed = value;
  }
  node[parts[parts.length - 1]!] = parsed === undefined ? null : parsed;
}

/** Splits `key=value` (the form of --set); the value may itself contain '='. */
export function parseAssignment(s: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new ConfigError('', `an override must be key=value, got ${JSON.stringify(s)}`);
  return [s.slice(0, i).trim(), s.slice(i + 1)];
}

/**
 * Reads overrides from command-line words: `--set key=value` (repeatable), and dotted flags
 * `--optim.lr 1e-3` or `--optim.lr=1e-3`. Returns [key, value] pairs in order; any other word
 * is an error naming it.
 */
export function parseOverrideArgs(args: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--set') {
      const next = args[++i];
      if (next === undefined) throw new ConfigError('', '--set needs key=value');
      out.push(parseAssignment(next));
    } else if (a.startsWith('--set=')) {
      out.push(parseAssignment(a.slice(6)));
    } else if (a.startsWith('--') && a.length > 2) {
      const body = a.slice(2);
      const eq = body.indexOf('=');
      if (eq > 0) {
        out.push([body.slice(0, eq), body.slice(eq + 1)]);
      } else {
        const next = args[i + 1];
        if (next === undefined || (next.startsWith('--') && !/^--?\d/.test(next))) throw new ConfigError(body, `the flag --${body} needs a value`);
        out.push([body, next]);
        i++;
      }
    } else {
      throw new ConfigError('', `unexpected argument ${JSON.stringify(a)} (overrides are --key value, --key=value or --set key=value)`);
    }
  }
  return out;
}

export interface LoadConfigOptions {
  /** [dotted key, value] pairs applied in order after the file. */
  overrides?: readonly (readonly [string, string])[];
}

/** The keys that say how long a run is; exactly one is set. */
const LENGTH_KEYS = ['steps', 'epochs', 'time_budget_s'] as const;

/**
 * A config file (or {} without one) with overrides applied, checked and completed. An override of
 * one length key (steps, epochs, time_budget_s) clears the others, so `--steps 100` shortens an
 * epochs config.
 */
export function loadConfig(file: string | null, opts: LoadConfigOptions = {}): TrainConfig {
  const raw = file === null ? {} : readConfigFile(file);
  for (const [k, v] of opts.overrides ?? []) {
    if ((LENGTH_KEYS as readonly string[]).includes(k)) for (const other of LENGTH_KEYS) if (other !== k) delete raw[other];
    applyOverride(raw, k, v);
  }
  return resolveConfig(raw);
}

/** The config as YAML, for the run folder and checkpoints (reading it back gives the same config). */
export function configToYAML(c: TrainConfig): string {
  return YAML.stringify(c);
}

/** One line per key with its default and meaning, for `glimpse train --help-config`. */
export function describeConfig(schema: Schema = SCHEMA, prefix = ''): string[] {
  const lines: string[] = [];
  for (const [k, f] of Object.entries(schema)) {
    const key = prefix + k;
    if (f.kind === 'object' || f.kind === 'model') {
      lines.push(`${key}: ${f.doc}`);
      lines.push(...describeConfig(f.fields, `${key}.`));
    } else {
      const d = 'default' in f ? ` (default ${JSON.stringify(f.default)})` : '';
      const values = f.kind === 'enum' ? ` [${f.values.join('|')}]` : '';
      lines.push(`${key}${values}: ${f.doc}${d}`);
    }
  }
  return lines;
}
