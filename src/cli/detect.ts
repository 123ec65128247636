// `glimpse detect`: online action detection over one video's chunk features, printed as JSON lines
// in the order (and, without --batch, at the moment) each chunk's detection is made.
import fs from 'node:fs';
import path from 'node:path';
import { type FeatureStream, type FeatureStreamSet } from '../data/oad_streams.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { OnlineActionDetector } from '../models/family.js';
import { createModel } from '../models/registry.js';
import { type OnlineDetection, OnlineDetector } from '../tasks/oad.js';
import { FeatureStreamFolder, openStreams } from '../tasks/oad_streams.js';
import { type ModelLoadingOptions, modelLoadOptions } from './args.js';

export interface DetectCommandOptions extends ModelLoadingOptions {
  /** A model folder (or a registered name with weights) of an online action detector (OadTR). */
  model: string;
  /** A video's feature file (safetensors with camera, motion and optionally labels), a stream-set folder or a registered stream source. */
  features: string;
  /** The video in a stream set. */
  video?: string;
  /** Run the video in batches of windows (same output) rather than chunk by chunk. */
  batch?: boolean;
  /** Windows per forward with --batch (default 16). */
  batchSize?: number;
  /** Classes shown per chunk and per anticipated step (default 3). */
  topK?: number;
}

/** One line of `glimpse detect`'s output. */
export interface DetectLine {
  chunk: number;
  top: { label: string; p: number }[];
  anticipation: { label: string; p: number }[][];
}

/** The top-k classes of a probability row, best first (the lower index first among ties). */
function topLabels(p: Float32Array, labels: readonly string[], k: number): { label: string; p: number }[] {
  return Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b).slice(0, k).map((c) => ({ label: labels[c]!, p: p[c]! }));
}

/** A detection as `glimpse detect` prints it. */
export function detectLine(d: OnlineDetection, labels: readonly string[], topK: number): DetectLine {
  return { chunk: d.chunk, top: topLabels(d.probs, labels, topK), anticipation: d.anticipation.map((a) => topLabels(a, labels, topK)) };
}

/** config.json's id2label as a list in class order, or null where the folder has none. */
function modelClassNames(dir: string | undefined, classes: number): string[] | null {
  const file = dir === undefined ? undefined : path.join(dir, 'config.json');
  if (file === undefined || !fs.existsSync(file)) return null;
  const id2label = (JSON.parse(fs.readFileSync(file, 'utf8')) as { id2label?: Record<string, string> }).id2label;
  if (!id2label || typeof id2label !== 'object') return null;
  const names = Array.from({ length: classes }, (_, c) => id2label[String(c)]);
  if (names.some((n) => typeof n !== 'string')) throw new Error(`detect: ${file}: id2label must name every class 0..${classes - 1}`);
  return names as string[];
}

/** A single video's safetensors file: camera [T, Dc] and motion [T, Dm] (labels, if any, are not read). */
function readVideoFile(file: string, model: OnlineActionDetector): FeatureStream {
  const f = SafetensorsFile.open(file);
  try {
    const read = (key: 'camera' | 'motion', dim: number): { rows: number; data: Float32Array } => {
      if (dim === 0) return { rows: -1, data: new Float32Array(0) };
      if (!f.has(key)) throw new Error(`detect: ${file} has no tensor '${key}' (has ${f.names.slice(0, 6).join(', ') || 'none'}${f.names.length > 6 ? ', ...' : ''}); a video file holds camera [T, ${model.cameraDim}] and motion [T, ${model.motionDim}]`);
      const t = f.read(key);
      if (t.shape.length !== 2 || t.shape[1] !== dim) {
        throw new Error(`detect: ${file}: '${key}' has shape [${t.shape.join(', ')}], but the model reads ${key} features [T, ${dim}]`);
      }
      if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`detect: ${file}: '${key}' is ${f.info(key).dtype}, expected a float type (F32)`);
      return { rows: t.shape[0]!, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array) };
    };
    const camera = read('camera', model.cameraDim);
    const motion = read('motion', model.motionDim);
    if (camera.rows >= 0 && motion.rows >= 0 && camera.rows !== motion.rows) {
      throw new Error(`detect: ${file}: camera and motion have ${camera.rows} and ${motion.rows} chunks; they must agree`);
    }
    const length = Math.max(camera.rows, motion.rows);
    if (length < 1) throw new Error(`detect: ${file} holds no chunk`);
    return { name: path.basename(file, '.safetensors'), length, camera: camera.data, motion: motion.data, labels: new Float32Array(0) };
  } finally {
    f.close();
  }
}

/** The named video of a stream set, from whichever split lists it. */
async function streamSetVideo(set: FeatureStreamSet, video: string | undefined, spec: string): Promise<FeatureStream> {
  const all = Object.values(set.splits).flat();
  if (video === undefined) {
    const shown = all.slice(0, 8).join(', ') + (all.length > 8 ? `, ... (${all.length} videos)` : '');
    throw new Error(`detect: ${spec} is a set of videos; name one with --video (${shown || 'none listed'})`);
  }
  const split = Object.keys(set.splits).find((s) => set.splits[s]!.includes(video));
  if (split === undefined) throw new Error(`detect: ${spec} has no video '${video}' (videos: ${all.slice(0, 8).join(', ')}${all.length > 8 ? ', ...' : ''})`);
  if (set instanceof FeatureStreamFolder) return set.video(video);
  return (await set.videos(split)).find((v) => v.name === video)!;
}

/**
 * Runs `glimpse detect`: writes one JSON line per chunk (DetectLine) through `write`, chunk by
 * chunk as a live stream would give them (or from batches of windows with --batch: the same
 * lines); returns the number of chunks.
 */
export async function detectCommand(options: DetectCommandOptions, write: (line: string) => void): Promise<number> {
  const topK = options.topK ?? 3;
  if (!Number.isInteger(topK) || topK < 1) throw new Error(`detect: --top-k must be a positive integer, got ${options.topK}`);
  if (options.batchSize !== undefined && !options.batch) throw new Error('detect: --batch-size goes with --batch');
  const { tokenizer: _tokenizer, ...createOptions } = modelLoadOptions(options);
  const model = await createModel(options.model, createOptions);
  if (model.kind !== 'online-action-detector') {
    throw new Error(`detect: ${options.model} is a ${model.constructor.name} (kind '${model.kind}'); detection needs an online action detector such as OadTR`);
  }
  const C = model.numClasses;
  let stream: FeatureStream;
  let setClassNames: readonly string[] | null = null;
  const isFile = fs.existsSync(options.features) && fs.statSync(options.features).isFile();
  if (isFile) {
    if (options.video !== undefined) throw new Error(`detect: ${options.features} is one video's file; --video names a video of a stream set (a folder or a registered source)`);
    stream = readVideoFile(options.features, model);
  } else {
    const { set } = openStreams(options.features);
    if (set.cameraDim !== model.cameraDim || set.motionDim !== model.motionDim) {
      throw new Error(`detect: ${options.features} has camera/motion features of widths ${set.cameraDim}/${set.motionDim}, but the model reads ${model.cameraDim}/${model.motionDim}`);
    }
    if (set.classNames.length !== C) throw new Error(`detect: ${options.features} has ${set.classNames.length} classes, but the model predicts ${C}`);
    setClassNames = set.classNames;
    stream = await streamSetVideo(set, options.video, options.features);
  }
  const folder = fs.existsSync(options.model) ? options.model : options.weights;
  const labels = modelClassNames(folder, C) ?? setClassNames ?? Array.from({ length: C }, (_, c) => `class ${c}`);
  const detector = new OnlineDetector(model);
  const emit = (d: OnlineDetection): void => write(JSON.stringify(detectLine(d, labels, topK)));
  if (options.batch) {
    for (const d of detector.detectStream(stream, { batchSize: options.batchSize })) emit(d);
  } else {
    const { cameraDim: Dc, motionDim: Dm } = model;
    for (let t = 0; t < stream.length; t++) {
      emit(detector.push(stream.camera.subarray(t * Dc, (t + 1) * Dc), stream.motion.subarray(t * Dm, (t + 1) * Dm)));
    }
  }
  return stream.length;
}
