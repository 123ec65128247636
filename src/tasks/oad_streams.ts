// Feature streams for online action detection on disk: a folder of one safetensors file per video
// and an index.json (the format is described in src/data/oad_streams.ts and docs/GUIDE.md), read
// lazily per split, and written from any stream set (the built-in oad-synthetic, so the eval command
// and outside tools can read it).
import fs from 'node:fs';
import path from 'node:path';
import {
  checkFeatureStream, checkFeatureStreamInfo, FEATURE_STREAMS_FORMAT, type FeatureStream, type FeatureStreamInfo,
  type FeatureStreamSet, type LabelRows, splitVideos,
} from '../data/oad_streams.js';
import { type FeatureStreamSplit, openRegisteredStreams, type OpenStreamsOptions } from '../data/registry.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';

export const FEATURE_STREAMS_INDEX = 'index.json';

/** index.json as stored. */
interface IndexJson {
  format: string;
  version: number;
  class_names: string[];
  ambiguous_class: number | null;
  camera_dim: number;
  motion_dim: number;
  labels?: LabelRows;
  splits: Record<string, string[]>;
}

/** A stream-set folder opened: its index checked, each video read (and checked) when its split is asked for. */
export class FeatureStreamFolder implements FeatureStreamSet {
  readonly name: string;
  readonly classNames: readonly string[];
  readonly ambiguousClass: number | null;
  readonly cameraDim: number;
  readonly motionDim: number;
  readonly labelRows: LabelRows;
  readonly splits: Readonly<Record<string, readonly string[]>>;

  constructor(readonly dir: string, info: FeatureStreamInfo) {
    this.name = dir;
    ({ classNames: this.classNames, ambiguousClass: this.ambiguousClass, cameraDim: this.cameraDim, motionDim: this.motionDim, labelRows: this.labelRows, splits: this.splits } = info);
  }

  async videos(split: string): Promise<FeatureStream[]> {
    return splitVideos(this, split, `openFeatureStreams(${this.dir})`).map((v) => this.video(v));
  }

  /** One video by name (its file `<name>.safetensors`). */
  video(name: string): FeatureStream {
    const where = `openFeatureStreams(${this.dir})`;
    const file = path.join(this.dir, `${name}.safetensors`);
    if (!fs.existsSync(file)) throw new Error(`${where}: video '${name}' has no file ${file}`);
    const f = SafetensorsFile.open(file);
    try {
      const read = (key: string, dim: number): { rows: number; data: Float32Array } => {
        if (!f.has(key)) throw new Error(`${where}: ${file} has no tensor '${key}' (has ${f.names.join(', ') || 'none'})`);
        const t = f.read(key);
        if (t.shape.length !== 2 || t.shape[1] !== dim) throw new Error(`${where}: ${file}: '${key}' has shape [${t.shape.join(', ')}], expected [T, ${dim}]`);
        if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`${where}: ${file}: '${key}' is ${f.info(key).dtype}, expected a float type (F32)`);
        return { rows: t.shape[0]!, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array) };
      };
      const camera = read('camera', this.cameraDim);
      const motion = read('motion', this.motionDim);
      const labels = read('labels', this.classNames.length);
      if (camera.rows !== motion.rows || camera.rows !== labels.rows) {
        throw new Error(`${where}: ${file}: camera, motion and labels have ${camera.rows}, ${motion.rows} and ${labels.rows} chunks; they must agree`);
      }
      const stream = { name, length: camera.rows, camera: camera.data, motion: motion.data, labels: labels.data };
      checkFeatureStream(stream, this, where);
      return stream;
    } finally {
      f.close();
    }
  }
}

/** Opens a stream-set folder: reads and checks index.json (videos are read per split). */
export function openFeatureStreams(dir: string): FeatureStreamFolder {
  const where = `openFeatureStreams(${dir})`;
  const indexFile = path.join(dir, FEATURE_STREAMS_INDEX);
  if (!fs.existsSync(dir)) throw new Error(`${where}: the folder does not exist`);
  if (!fs.existsSync(indexFile)) throw new Error(`${where}: no ${FEATURE_STREAMS_INDEX} in the folder`);
  let raw: IndexJson;
  try {
    raw = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as IndexJson;
  } catch (e) {
    throw new Error(`${where}: ${indexFile} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (raw?.format !== FEATURE_STREAMS_FORMAT) throw new Error(`${where}: ${indexFile} has format ${JSON.stringify(raw?.format)}, expected "${FEATURE_STREAMS_FORMAT}"`);
  if (raw.version !== 1) throw new Error(`${where}: ${indexFile} has version ${JSON.stringify(raw.version)}; this reads version 1`);
  const info: FeatureStreamInfo = {
    classNames: raw.class_names, ambiguousClass: raw.ambiguous_class ?? null, cameraDim: raw.camera_dim, motionDim: raw.motion_dim,
    labelRows: raw.labels ?? 'distribution', splits: raw.splits,
  };
  checkFeatureStreamInfo(info, `${where}: ${indexFile}`);
  return new FeatureStreamFolder(dir, info);
}

/**
 * Writes a stream set into a folder (created if missing): index.json and one safetensors file per
 * video of the chosen splits (default all). Every video is checked first.
 */
export async function writeFeatureStreams(dir: string, set: FeatureStreamSet, options: { splits?: readonly string[] } = {}): Promise<void> {
  const where = `writeFeatureStreams(${dir})`;
  const splitNames = options.splits ?? Object.keys(set.splits);
  checkFeatureStreamInfo(set, where);
  fs.mkdirSync(dir, { recursive: true });
  const splits: Record<string, string[]> = {};
  for (const split of splitNames) {
    const videos = await set.videos(split);
    splits[split] = videos.map((v) => v.name);
    for (const v of videos) {
      checkFeatureStream(v, set, where);
      writeSafetensors(path.join(dir, `${v.name}.safetensors`), {
        camera: { shape: [v.length, set.cameraDim], data: v.camera },
        motion: { shape: [v.length, set.motionDim], data: v.motion },
        labels: { shape: [v.length, set.classNames.length], data: v.labels },
      });
    }
  }
  const index: IndexJson = {
    format: FEATURE_STREAMS_FORMAT, version: 1, class_names: [...set.classNames], ambiguous_class: set.ambiguousClass,
    camera_dim: set.cameraDim, motion_dim: set.motionDim, labels: set.labelRows, splits,
  };
  fs.writeFileSync(path.join(dir, FEATURE_STREAMS_INDEX), `${JSON.stringify(index, null, 2)}\n`);
}

/**
 * The feature streams a spec names: a registered source `name[:split]` (`oad-synthetic:test`) or a
 * stream-set folder (its split from options.split, default train).
 */
export function openStreams(spec: string, options: Omit<OpenStreamsOptions, 'argument'> = {}): FeatureStreamSplit {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('openStreams: empty spec');
  const named = openRegisteredStreams(spec, options);
  if (named) {
    splitVideos(named.set, named.split, `openStreams(${spec})`);
    return named;
  }
  const set = openFeatureStreams(spec);
  const split = options.split ?? 'train';
  splitVideos(set, split, `openStreams(${spec})`);
  return { set, split };
}
