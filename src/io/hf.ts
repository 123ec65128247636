// Hugging Face checkpoint folders, as save_pretrained writes them and from_pretrained reads them:
//
//   config.json                      the model's configuration
//   model.safetensors                the weights, or, above the shard size limit:
//   model-00001-of-0000N.safetensors + model.safetensors.index.json ({metadata, weight_map})
//
// Weights are read lazily, one tensor at a time; F16 and BF16 become float32. Names stay HF's:
// each model family maps them onto its modules (loadHFStateDict), and a checkpoint that does
// not fit the model is an error listing every missing, unexpected and mis-shaped key.
import fs from 'node:fs';
import path from 'node:path';
import type { DType } from '../tensor/dtype.js';
import { isFloat } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { type LoadStateDictResult, type Module, type StateDict, StateDictError } from '../nn/module.js';
import { type HostTensor, SafetensorsFile, type SafetensorsDType, type TensorToWrite, writeSafetensors } from './safetensors.js';

export const CONFIG_NAME = 'config.json';
export const WEIGHTS_NAME = 'model.safetensors';
export const WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';

/** config.json as parsed: HF's field names, untouched. */
export type HFConfig = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// config.json

/** Reads and parses dir/config.json; a missing folder or file, bad JSON or a non-object is an error. */
export function readHFConfig(dir: string): HFConfig {
  const file = path.join(dir, CONFIG_NAME);
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such checkpoint folder`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a folder (a Hugging Face checkpoint is a folder with ${CONFIG_NAME} and the weights)`);
  if (!fs.existsSync(file)) throw new Error(`${file}: missing (a Hugging Face checkpoint folder needs ${CONFIG_NAME})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${file}: must hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`);
  }
  return parsed as HFConfig;
}

/**
 * Typed access to config fields with HF's defaults, for model configs to build themselves from.
 * A field of the wrong type is an error naming the file and the field.
 */
export class ConfigReader {
  constructor(readonly raw: HFConfig, readonly label = CONFIG_NAME) {}

  has(key: string): boolean {
    return Object.hasOwn(this.raw, key) && this.raw[key] !== null;
  }

  #fail(key: string, want: string): never {
    throw new Error(`${this.label}: ${key} must be ${want}, got ${JSON.stringify(this.raw[key])}`);
  }

  number(key: string, fallback?: number): number {
    if (!this.has(key)) return fallback ?? this.#fail(key, 'a number');
    const v = this.raw[key];
    return typeof v === 'number' && Number.isFinite(v) ? v : this.#fail(key, 'a number');
  }

  /** A positive integer (or >= 0 with allowZero). */
  int(key: string, fallback?: number, allowZero = false): number {
    const want = allowZero ? 'a non-negative integer' : 'a positive integer';
    if (!this.has(key)) return fallback ?? this.#fail(key, want);
    const v = this.raw[key];
    return typeof v === 'number' && Number.isInteger(v) && (v > 0 || (allowZero && v === 0)) ? v : this.#fail(key, want);
  }

  /** A positive integer or an [h, w] pair of them (HF's image_size and patch_size). */
  pair(key: string, fallback?: number): [number, number] {
    const v = this.has(key) ? this.raw[key] : fallback;
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0;
    if (ok(v)) return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every(ok)) return [v[0]!, v[1]!];
    return this.#fail(key, 'a positive integer or a pair of them');
  }

  string(key: string, fallback?: string): string {
    if (!this.has(key)) return fallback ?? this.#fail(key, 'a string');
    const v = this.raw[key];
    return typeof v === 'string' ? v : this.#fail(key, 'a string');
  }

  bool(key: string, fallback?: boolean): boolean {
    if (!this.has(key)) return fallback ?? this.#fail(key, 'true or false');
    const v = this.raw[key];
    return typeof v === 'boolean' ? v : this.#fail(key, 'true or false');
  }

  /**
   * id2label as HF resolves it: the map when given (its keys are the class indices), else
   * LABEL_0 ... for num_labels (default `fallbackCount`). Both given and disagreeing is an error.
   */
  labels(fallbackCount = 2): string[] {
    const numLabels = this.has('num_labels') ? this.int('num_labels', undefined, true) : null;
    if (!this.has('id2label')) return Array.from({ length: numLabels ?? fallbackCount }, (_, i) => `LABEL_${i}`);
    const map = this.raw.id2label;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) this.#fail('id2label', 'an object of index: label');
    const entries = Object.entries(map as Record<string, unknown>);
    const out: string[] = new Array(entries.length);
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string' || out[i] !== undefined) {
        this.#fail('id2label', `an object mapping the indices 0..${entries.length - 1} to label strings`);
      }
      out[i] = v;
    }
    if (numLabels !== null && numLabels !== out.length) {
      throw new Error(`${this.label}: num_labels is ${numLabels} but id2label has ${out.length} entries`);
    }
    return out;
  }
}

/** The config fields HF writes for a label list: id2label and label2id. */
export function labelFields(labels: readonly string[]): HFConfig {
  return {
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading weights

export interface WeightInfo {
  readonly name: string;
  /** As stored; F16 / BF16 / F32 all read as float32. */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** The file (in the folder) that holds it. */
  readonly file: string;
}

/** The weights of a checkpoint folder, single-file or sharded, read one tensor at a time. */
export class HFWeights {
  readonly #files = new Map<string, SafetensorsFile>();
  readonly #where = new Map<string, string>();

  private constructor(readonly dir: string, readonly sharded: boolean) {}

  /**
   * Opens dir/model.safetensors, or, when absent, the shards that model.safetensors.index.json
   * lists (the order HF's from_pretrained tries them). Headers are validated now; every shard the
   * index names must exist and hold exactly the tensors the index assigns to it.
   */
  static open(dir: string): HFWeights {
    const single = path.join(dir, WEIGHTS_NAME);
    const index = path.join(dir, WEIGHTS_INDEX_NAME);
    if (fs.existsSync(single)) {
      const w = new HFWeights(dir, false);
      w.#add(WEIGHTS_NAME, null);
      return w;
    }
    if (!fs.existsSync(index)) {
      const present = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
      const other = present.filter((f) => /\.(bin|pt|pth|ckpt|h5|msgpack)$/.test(f));
      throw new Error(`${dir}: no ${WEIGHTS_NAME} or ${WEIGHTS_INDEX_NAME}` +
        (other.length ? ` (found ${other.join(', ')}: only safetensors weights are supported; convert them with save_pretrained(safe_serialization=True))` : ''));
    }
    const weightMap = readIndex(index);
    const byFile = new Map<string, string[]>();
    for (const [name, file] of Object.entries(weightMap)) {
      if (!byFile.has(file)) byFile.set(file, []);
      byFile.get(file)!.push(name);
    }
    const missing = [...byFile.keys()].filter((f) => !fs.existsSync(path.join(dir, f)));
    if (missing.length) throw new Error(`${index}: shard file${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}`);
    const w = new HFWeights(dir, true);
    try {
      for (const [file, names] of byFile) w.#add(file, names);
    } catch (e) {
      w.close();
      throw e;
    }
    return w;
  }

  #add(file: string, expected: string[] | null): void {
    const f = SafetensorsFile.open(path.join(this.dir, file));
    this.#files.set(file, f);
    if (expected) {
      const inFile = new Set(f.names);
      const absent = expected.filter((n) => !inFile.has(n));
      const want = new Set(expected);
      const extra = f.names.filter((n) => !want.has(n));
      if (absent.length || extra.length) {
        throw new Error(`${path.join(this.dir, WEIGHTS_INDEX_NAME)} does not match shard ${file}:` +
          (absent.length ? ` the index assigns it ${absent.join(', ')}, which it lacks;` : '') +
          (extra.length ? ` it holds ${extra.join(', ')}, which the index assigns elsewhere or not at all;` : ''));
      }
    }
    for (const name of f.names) {
      const prev = this.#where.get(name);
      if (prev !== undefined) throw new Error(`${this.dir}: tensor ${JSON.stringify(name)} is in both ${prev} and ${file}`);
      this.#where.set(name, file);
    }
  }

  /** Every tensor name, in file order. */
  get names(): string[] {
    return [...this.#where.keys()];
  }

  /** The weight files read, relative to the folder. */
  get files(): string[] {
    return [...this.#files.keys()];
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  info(name: string): WeightInfo {
    const file = this.#where.get(name);
    if (file === undefined) throw new Error(`${this.dir}: no weight named ${JSON.stringify(name)}`);
    const t = this.#files.get(file)!.info(name);
    return { name, dtype: t.dtype, shape: t.shape, file };
  }

  /** Reads and decodes one tensor (F16/BF16 to float32). */
  read(name: string): HostTensor {
    return this.#files.get(this.info(name).file)!.read(name);
  }

  close(): void {
    for (const f of this.#files.values()) f.close();
    this.#files.clear();
  }
}

function readIndex(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${file}: must be an object with a "weight_map" object`);
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    // Shards live in the folder itself: a path that leaves it is refused.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '.' || shard === '..') {
      throw new Error(`${file}: weight_map[${JSON.stringify(name)}] must be a file name in the folder, got ${JSON.stringify(shard)}`);
    }
  }
  return map as Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Loading into modules

export interface LoadHFOptions {
  /**
   * The module key for a checkpoint key, or null to drop it on purpose (a head the model does
   * not have, say). Default: the same key.
   */
  toModuleKey?: (checkpointKey: string) => string | null;
  /** The checkpoint key for a module key, to name missing keys as the checkpoint would. */
  toCheckpointKey?: (moduleKey: string) => string;
  /** Missing and unexpected keys are an error (default true); mis-shaped keys always are. */
  strict?: boolean;
  /**
   * Checkpoint names the file may leave out, the module then keeping its own values (fixed
   * tables a model computes, say): never reported missing.
   */
  optionalKeys?: RegExp;
  /** Names the source in errors; default the folder. */
  label?: string;
}

/**
 * Loads checkpoint weights into a module through a key mapping. Nothing is copied unless the
 * whole checkpoint fits; otherwise a StateDictError lists every missing, unexpected and
 * mis-shaped key, by checkpoint name. Tensors are read one at a time while being copied.
 */
export function loadHFStateDict(module: Module, weights: HFWeights, opts: LoadHFOptions = {}): LoadStateDictResult {
  const toModule = opts.toModuleKey ?? ((k: string) => k);
  const toCheckpoint = opts.toCheckpointKey ?? ((k: string) => k);
  const label = opts.label ?? weights.dir;
  const own = module.stateDict();
  const dict: StateDict = {};
  const source = new Map<string, string>();
  const unexpected: string[] = [];
  const mismatched: string[] = [];
  for (const key of weights.names) {
    const target = toModule(key);
    if (target === null) continue;
    const prev = source.get(target);
    if (prev !== undefined) throw new Error(`${label}: ${JSON.stringify(prev)} and ${JSON.stringify(key)} both load into ${JSON.stringify(target)}`);
    source.set(target, key);
    const info = weights.info(key);
    const mine = own[target];
    if (!mine) {
      unexpected.push(key);
      continue;
    }
    if (info.shape.length !== mine.ndim || info.shape.some((d, i) => d !== mine.shape[i])) {
      mismatched.push(`${key}: checkpoint [${info.shape}] vs model [${mine.shape}]`);
    }
    // Read when copied: loadStateDict checks every shape first, then copies one tensor at a time.
    dict[target] = { shape: info.shape, dtype: readDType(info.dtype), get data() { return weights.read(key).data; } };
  }
  const missing = Object.keys(own).filter((k) => !source.has(k)).map(toCheckpoint).filter((k) => !opts.optionalKeys?.test(k));
  const strict = opts.strict ?? true;
  if (mismatched.length || (strict && (missing.length || unexpected.length))) {
    const err = new StateDictError(missing, unexpected, mismatched);
    err.message = `${label}: ${err.message.replace(/^loadStateDict: the state dict/, 'the checkpoint')}`;
    throw err;
  }
  module.loadStateDict(dict, { strict: false });
  return { missingKeys: missing, unexpectedKeys: unexpected };
}

/** How a model family's checkpoints read: its config class and its key names. */
export interface CheckpointFormat<C> extends Pick<LoadHFOptions, 'toCheckpointKey' | 'optionalKeys'> {
  parseConfig: (json: HFConfig, where: string) => C;
}

/** A model built for loading, and how checkpoint keys map onto it. */
export interface PretrainedLoad<M extends Module> {
  model: M;
  /** The module key of a checkpoint key, or null to drop it (see LoadHFOptions.toModuleKey). */
  toModuleKey?: (checkpointKey: string) => string | null;
}

/**
 * A model from an HF folder: parses config.json, lets `make` build the model (it may look at the
 * weight names, e.g. for tied heads or a missing prefix), loads the weights through its key map
 * and returns the model in eval mode. When every weight must come from the file (strict), the
 * model's own initial weights would be wasted work, so initWeights defaults to !strict.
 */
export function loadPretrained<C, O extends { initWeights?: boolean; strict?: boolean }, M extends Module>(
  dir: string,
  opts: O,
  format: CheckpointFormat<C>,
  make: (config: C, weights: HFWeights, opts: O) => PretrainedLoad<M>,
): M {
  const { parseConfig, ...keys } = format;
  const config = parseConfig(readHFConfig(dir), path.join(dir, CONFIG_NAME));
  const weights = HFWeights.open(dir);
  try {
    const strict = opts.strict ?? true;
    const { model, toModuleKey } = make(config, weights, { ...opts, initWeights: opts.initWeights ?? !strict });
    loadHFStateDict(model, weights, { ...keys, toModuleKey, strict });
    model.eval();
    return model;
  } finally {
    weights.close();
  }
}

/** Writes a model as HF's save_pretrained does: config.json + weights under their checkpoint names. */
export function savePretrained(dir: string, model: Module, config: HFConfig, toCheckpointKey: (moduleKey: string) => string = (k) => k,
  opts: SaveHFOptions = {}): string[] {
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) tensors[toCheckpointKey(k)] = t;
  return saveHFFolder(dir, config, tensors, opts);
}

function readDType(d: SafetensorsDType): DType {
  switch (d) {
    case 'F32': case 'F16': case 'BF16': return 'float32';
    case 'F64': return 'float64';
    case 'I64': return 'int64';
    case 'U8': return 'uint8';
    case 'BOOL': return 'bool';
    default: return 'int32';
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export type SaveDType = 'float32' | 'float16' | 'bfloat16';

export interface SaveHFOptions {
  /**
   * Largest shard, in bytes or as HF writes it ('5GB' = 5e9 bytes, '500MiB' = 500 * 2^20).
   * Above it the weights are split into model-0000i-of-0000N.safetensors files with an index.
   * Default '5GB', HF's.
   */
  maxShardSize?: number | string;
  /** Stored type of float tensors; default float32. Other tensors keep their type. */
  dtype?: SaveDType;
}

const STORED: Record<SaveDType, SafetensorsDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** '5GB' -> 5e9, '10MiB' -> 10 * 2^20, numbers as they are (HF's convert_file_size_to_int). */
export function parseSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!(size > 0)) throw new RangeError(`shard size must be positive, got ${size}`);
    return size;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B\s*$/i.exec(size);
  if (!m) throw new Error(`shard size ${JSON.stringify(size)} is not a size like '5GB' or '500MiB'`);
  const power = ' KMGT'.indexOf(m[2]!.toUpperCase() || ' ');
  const n = Number(m[1]) * (m[3] ? 1024 : 1000) ** power;
  if (!(n > 0)) throw new RangeError(`shard size must be positive, got ${JSON.stringify(size)}`);
  return Math.floor(n);
}

/** What saveHFWeights accepts per tensor: an engine tensor or host data. */
export type WeightToSave = Tensor | TensorToWrite;

const SHARD_PATTERN = /^model-\d{5}-of-\d{5}\.safetensors$/;

/**
 * Writes the weights into dir as save_pretrained does: one model.safetensors, or shards and
 * model.safetensors.index.json when they exceed maxShardSize (tensors fill shards in order; a
 * tensor larger than the limit gets a shard of its own). Each file is written atomically, the
 * index after its shards; weight files of an earlier save that this one does not use are then
 * removed, so HF never picks up a stale model.safetensors next to a new index.
 * Returns the files written.
 */
export function saveHFWeights(dir: string, tensors: Record<string, WeightToSave>, opts: SaveHFOptions = {}): string[] {
  const limit = parseSize(opts.maxShardSize ?? '5GB');
  const stored = STORED[opts.dtype ?? 'float32'];
  if (!stored) throw new Error(`saveHFWeights: dtype must be float32, float16 or bfloat16, got ${JSON.stringify(opts.dtype)}`);
  fs.mkdirSync(dir, { recursive: true });

  const entries = Object.entries(tensors).map(([name, t]) => {
    const float = t instanceof Tensor ? isFloat(t.dtype) : t.data instanceof Float32Array || t.data instanceof Float64Array;
    const elements = t.shape.reduce((a, b) => a * b, 1);
    const dtype = float ? stored : undefined;
    const bytes = elements * (float ? (stored === 'F32' ? 4 : 2) : storedBytes(t));
    return { name, t, dtype, bytes };
  });
  const shards: (typeof entries)[] = [];
  let current: typeof entries = [];
  let size = 0;
  for (const e of entries) {
    if (e.bytes > limit) {
      shards.push([e]);
      continue;
    }
    if (current.length && size + e.bytes > limit) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(e);
    size += e.bytes;
  }
  if (current.length || !shards.length) shards.push(current);

  const pad = (i: number) => String(i).padStart(5, '0');
  const names = shards.length === 1 ? [WEIGHTS_NAME] : shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  shards.forEach((shard, i) => {
    // Host copies are made per shard, so a sharded save holds one shard's worth at a time.
    const host: Record<string, TensorToWrite> = {};
    for (const { name, t, dtype } of shard) host[name] = toHost(t, dtype);
    writeSafetensors(path.join(dir, names[i]!), host, { format: 'pt' });
  });
  const written = [...names];
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => { for (const { name } of shard) weightMap[name] = names[i]!; });
    const total = entries.reduce((a, e) => a + e.bytes, 0);
    writeJsonAtomic(path.join(dir, WEIGHTS_INDEX_NAME), { metadata: { total_size: total }, weight_map: weightMap });
    written.push(WEIGHTS_INDEX_NAME);
  }
  const keep = new Set(written);
  for (const f of fs.readdirSync(dir)) {
    if (keep.has(f)) continue;
    if (f === WEIGHTS_NAME || f === WEIGHTS_INDEX_NAME || SHARD_PATTERN.test(f)) fs.rmSync(path.join(dir, f), { force: true });
  }
  return written;
}

function storedBytes(t: WeightToSave): number {
  const d = t instanceof Tensor ? t.dtype : t.data instanceof BigInt64Array ? 'int64' : t.data instanceof Int32Array ? 'int32' : 'uint8';
  return d === 'int64' || d === 'float64' ? 8 : d === 'int32' || d === 'float32' ? 4 : 1;
}

function toHost(t: WeightToSave, dtype: SafetensorsDType | undefined): TensorToWrite {
  let data = t instanceof Tensor ? t.data() : t.data;
  // F16/BF16/F32 are written from float32 data.
  if (dtype && data instanceof Float64Array) data = Float32Array.from(data);
  const natural = t instanceof Tensor ? t.dtype : t.dtype;
  return { shape: t.shape, data, dtype: dtype ?? natural };
}

/**
 * Fields that HF configs hold as floats, at any depth (text_config.attention_dropout too): written
 * as 0.0, not 0, when integral, as Python writes them, for readers that check types.
 */
const HF_FLOAT_FIELDS = [
  'hidden_dropout_prob', 'attention_probs_dropout_prob', 'attention_dropout', 'dropout', 'initializer_range',
  'initializer_factor', 'layer_norm_eps', 'label_smoothing', 'logit_scale_init_value', 'mask_ratio',
];

/**
 * Writes dir/config.json (sorted keys, 2-space indent, as HF does), atomically. HF's float fields
 * and any named in floatKeys are written as floats even when integral.
 */
export function writeHFConfig(dir: string, config: HFConfig, floatKeys: Iterable<string> = []): void {
  fs.mkdirSync(dir, { recursive: true });
  writeJsonAtomic(path.join(dir, CONFIG_NAME), config, new Set([...HF_FLOAT_FIELDS, ...floatKeys]));
}

/** A checkpoint folder: the weights (see saveHFWeights), then config.json (see writeHFConfig). */
export function saveHFFolder(dir: string, config: HFConfig, tensors: Record<string, WeightToSave>,
  opts: SaveHFOptions & { floatKeys?: Iterable<string> } = {}): string[] {
  const written = saveHFWeights(dir, tensors, opts);
  const dtype = opts.dtype ?? 'float32';
  const cfg: HFConfig = { ...config, dtype };
  if (Object.hasOwn(config, 'torch_dtype')) cfg.torch_dtype = dtype;
  writeHFConfig(dir, cfg, opts.floatKeys);
  return [CONFIG_NAME, ...written];
}

/**
 * JSON with 2-space indent and sorted keys, as HF writes it (json.dumps(indent=2, sort_keys=True));
 * done by hand because JSON.stringify follows JS key order, which puts integer-like keys first.
 */
function stringify(v: unknown, floatKeys: ReadonlySet<string>, indent = '', key = ''): string {
  if (typeof v === 'number' && Number.isInteger(v) && floatKeys.has(key)) return `${v}.0`;
  if (typeof v !== 'object' || v === null) return JSON.stringify(v) ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return `[\n${v.map((x) => inner + stringify(x, floatKeys, inner)).join(',\n')}\n${indent}]`;
  }
  const keys = Object.keys(v).sort();
  if (!keys.length) return '{}';
  return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${stringify((v as Record<string, unknown>)[k], floatKeys, inner, k)}`).join(',\n')}\n${indent}}`;
}

/** Writes JSON through a temporary file, fsync and rename, so readers never see half a file. */
function writeJsonAtomic(file: string, value: unknown, floatKeys: ReadonlySet<string> = new Set()): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = fs.openSync(tmp, 'wx');
  try {
    fs.writeSync(fd, `${stringify(value, floatKeys)}\n`);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
