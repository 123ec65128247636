// A model's configuration as one table: each field a line with its config.json key, kind,
// default and check (open_clip's one line per field; HF's keys kept as they are, as
// transformers.js keeps them). Reading config.json, writing it, the constructor's defaults and
// every check come from the table, so a default is written once.
//
//   export class ViTConfig extends configClass({
//     name: 'ViTConfig', modelType: 'vit',
//     fields: { hiddenSize: int('hidden_size', 768), patchSize: pair('patch_size', 16), ... },
//     check: (c, label) => { ... cross-field checks ... },
//   }) { get gridSize() { ... } }
//
// Options given to the constructor are written as config.json would hold them and then read like
// config.json, so both ways in are checked alike and name the HF key in their errors.
import { CONFIG_NAME, ConfigReader, type HFConfig, labelFields } from '../io/hf.js';
import { getActivation } from '../nn/layers.js';

/** One line of the table: how a value is read from config.json and written back. */
export interface Field<T, In = T> {
  /** config.json keys the field owns (labels own three). */
  readonly keys: readonly string[];
  /** From config.json; `earlier` holds the fields above it in the table (for defaults that follow them). */
  read(c: ConfigReader, earlier: Readonly<Record<string, unknown>>): T;
  /** The config.json entries for a value (a constructor option, or a value read before). */
  write(v: In): HFConfig;
}

/** A default: a value, or a function of the fields above it. */
export type Default<T> = T | ((earlier: Readonly<Record<string, any>>) => T);

const valueOf = <T>(d: Default<T>, earlier: Readonly<Record<string, unknown>>): T =>
  typeof d === 'function' ? (d as (e: Readonly<Record<string, unknown>>) => T)(earlier) : d;

const scalar = <T>(key: string, fallback: Default<T>, get: (c: ConfigReader, key: string, fallback: T) => T): Field<T> => ({
  keys: [key],
  read: (c, earlier) => get(c, key, valueOf(fallback, earlier)),
  write: (v) => ({ [key]: v }),
});

/** A positive integer (`{ min: 0 }`: zero allowed). */
export const int = (key: string, fallback: Default<number>, opts: { min?: 0 | 1 } = {}): Field<number> =>
  scalar(key, fallback, (c, k, d) => c.int(k, d, opts.min === 0));

/** A finite number. */
export const num = (key: string, fallback: Default<number>): Field<number> => scalar(key, fallback, (c, k, d) => c.number(k, d));

export const str = (key: string, fallback: Default<string>): Field<string> => scalar(key, fallback, (c, k, d) => c.string(k, d));

export const bool = (key: string, fallback: Default<boolean>): Field<boolean> => scalar(key, fallback, (c, k, d) => c.bool(k, d));

/** An activation's HF name (gelu, quick_gelu, gelu_pytorch_tanh, ...); an unknown one is an error. */
export const act = (key: string, fallback: Default<string>): Field<string> =>
  scalar(key, fallback, (c, k, d) => {
    const name = c.string(k, d);
    try {
      getActivation(name);
    } catch (e) {
      throw new Error(`${c.label}: ${k}: ${(e as Error).message}`, { cause: e });
    }
    return name;
  });

/** A token id: a non-negative integer, or null (none; an explicit null in config.json). */
export const tokenId = (key: string, fallback: number | null): Field<number | null> => ({
  keys: [key],
  read: (c) => (!c.has(key) && (c.raw[key] === null || fallback === null) ? null : c.int(key, fallback ?? undefined, true)),
  write: (v) => ({ [key]: v }),
});

/** A field written only when its value is not `value` (keys HF itself leaves out at their default). */
export const omitWhen = <T>(field: Field<T>, value: T): Field<T> => ({
  ...field,
  write: (v) => (v === value ? {} : field.write(v)),
});

/** One of a few strings, or null when absent. */
export const oneOf = <S extends string>(key: string, values: readonly S[]): Field<S | null> => ({
  keys: [key],
  read: (c) => {
    if (!c.has(key)) return null;
    const v = c.string(key);
    if (!(values as readonly string[]).includes(v)) throw new Error(`${c.label}: unknown ${key} '${v}' (known: ${values.join(', ')})`);
    return v as S;
  },
  write: (v) => (v === null ? {} : { [key]: v }),
});

/** A positive integer or an [h, w] pair of them (image_size, patch_size); a square pair is written as one number. */
export const pair = (key: string, fallback: Default<number>): Field<[number, number], number | readonly [number, number]> => ({
  keys: [key],
  read: (c, earlier) => c.pair(key, valueOf(fallback, earlier)),
  write: (v) => ({ [key]: typeof v === 'number' ? v : v[0] === v[1] ? v[0] : [...v] }),
});

/** Class names by index: id2label / label2id / num_labels, as HF resolves them (default LABEL_0, LABEL_1). */
export const labels = (fallbackCount = 2): Field<readonly string[]> => ({
  keys: ['id2label', 'label2id', 'num_labels'],
  read: (c) => c.labels(fallbackCount),
  write: (v) => labelFields(v),
});

/** What a nested config class offers the table (text_config, vision_config). */
export interface SubConfigClass<C> {
  new (opts?: never, extra?: HFConfig): C;
  fromHF(raw: HFConfig, label?: string): C;
  readonly configName: string;
}

/**
 * A nested config (text_config, vision_config): an object in config.json, absent = all defaults.
 * `legacyKey` is read when `key` is absent (configs from before transformers 4 said *_config_dict).
 */
export const sub = <C extends { toHF(): HFConfig }, O>(key: string, Sub: SubConfigClass<C>, legacyKey?: string): Field<C, C | O> => ({
  keys: legacyKey ? [key, legacyKey] : [key],
  read: (c) => {
    const k = !c.has(key) && legacyKey && c.has(legacyKey) ? legacyKey : key;
    const v = c.raw[k] ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${c.label}: ${k} must be an object, got ${JSON.stringify(v)}`);
    return Sub.fromHF(v as HFConfig, `${c.label}: ${k}`);
  },
  write: (v) => ({ [key]: v instanceof Sub ? v.toHF() : new Sub(v as never).toHF() }),
});

export type Fields = Record<string, Field<any, any>>;
type ValueOf<F> = F extends Field<infer T, any> ? T : never;
type InputOf<F> = F extends Field<any, infer In> ? In : never;

/** A config's values, one per field. */
export type ConfigValues<F extends Fields> = { readonly [K in keyof F]: ValueOf<F[K]> };
/** What the constructor takes: any of the fields, each as config.json or the value allows. */
export type ConfigOptions<F extends Fields> = { [K in keyof F]?: InputOf<F[K]> };

/** What every table-made config has besides its fields. */
export interface ConfigBase {
  /** config.json fields the table does not own, written back unchanged. */
  readonly extra: HFConfig;
  /** config.json's fields; a top-level config also writes model_type and `architectures`. */
  toHF(architectures?: readonly string[]): HFConfig;
}

export interface ConfigSpec<F extends Fields> {
  /** The class's name, which labels errors in options given to the constructor. */
  name: string;
  /**
   * config.json's model_type: a top-level config checks it on read and writes it back with the
   * architectures; a nested one (`nested`) writes it, whatever was read (siglip_text_model).
   * Null: a nested config that keeps whatever model_type it read.
   */
  modelType: string | null;
  /** A text_config / vision_config inside another config (default: when modelType is null). */
  nested?: boolean;
  fields: F;
  /** Checks across fields (a width divisible by the heads, ...); `label` names the file or class. */
  check?: (c: ConfigValues<F>, label: string) => void;
}

export interface ConfigClass<F extends Fields> {
  new (opts?: ConfigOptions<F>, extra?: HFConfig): ConfigValues<F> & ConfigBase;
  /** From config.json's fields; `label` names the file in errors. */
  fromHF<T>(this: new (opts?: ConfigOptions<F>, extra?: HFConfig) => T, raw: HFConfig, label?: string): T;
  readonly configName: string;
  readonly modelType: string | null;
  readonly fields: F;
}

/** Keys a top-level config.json may hold that no table owns: HF's saving writes its own. */
const WRITTEN_BY_SAVE = ['architectures', 'dtype', 'torch_dtype'];

function readAll<F extends Fields>(spec: ConfigSpec<F>, raw: HFConfig, label: string): ConfigValues<F> {
  const c = new ConfigReader(raw, label);
  const values: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(spec.fields)) values[name] = field.read(c, values);
  const out = values as ConfigValues<F>;
  spec.check?.(out, label);
  return out;
}

/** The config class a table describes; extend it to add derived getters and methods (not fields). */
export function configClass<F extends Fields>(spec: ConfigSpec<F>): ConfigClass<F> {
  const nested = spec.nested ?? spec.modelType === null;
  const owned = new Set([
    ...Object.values(spec.fields).flatMap((f) => f.keys),
    ...(spec.modelType ? ['model_type'] : []),
    ...(nested ? [] : WRITTEN_BY_SAVE),
  ]);
  class TableConfig {
    static readonly configName = spec.name;
    static readonly modelType = spec.modelType;
    static readonly fields = spec.fields;
    readonly extra: HFConfig;

    constructor(opts: ConfigOptions<F> = {}, extra: HFConfig = {}) {
      const raw: HFConfig = {};
      for (const [name, field] of Object.entries(spec.fields)) {
        const v = (opts as Record<string, unknown>)[name];
        if (v !== undefined) Object.assign(raw, field.write(v));
      }
      Object.assign(this, readAll(spec, raw, spec.name));
      this.extra = extra;
    }

    static fromHF<T>(this: new (opts?: ConfigOptions<F>, extra?: HFConfig) => T, raw: HFConfig, label = CONFIG_NAME): T {
      if (spec.modelType && !nested) {
        const type = new ConfigReader(raw, label).string('model_type', spec.modelType);
        if (type !== spec.modelType) throw new Error(`${label}: model_type is '${type}', not '${spec.modelType}'`);
      }
      const values = readAll(spec, raw, label);
      const extra = Object.fromEntries(Object.entries(raw).filter(([k]) => !owned.has(k)));
      return new this(values as ConfigOptions<F>, extra);
    }

    toHF(architectures?: readonly string[]): HFConfig {
      const out: HFConfig = { ...this.extra };
      if (architectures && !nested) out.architectures = [...architectures];
      if (spec.modelType) out.model_type = spec.modelType;
      for (const [name, field] of Object.entries(spec.fields)) Object.assign(out, field.write((this as Record<string, unknown>)[name]));
      return out;
    }
  }
  return TableConfig as unknown as ConfigClass<F>;
}
