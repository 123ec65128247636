// Feature streams for online action detection (OadTR), and the training windows cut from them as
// the official data layer (TRNTHUMOSDataLayer) cuts them.
//
// A stream is one video as per-chunk features: `camera` [T, Dc] (RGB features), `motion` [T, Dm]
// (optical-flow features) and `labels` [T, C] (a one-hot or soft class distribution per chunk,
// class 0 = background). On disk a stream set is a folder (src/tasks/oad_streams.ts reads and
// writes it):
//   index.json           { "format": "glimpse-oad-streams", "version": 1, "class_names": [...],
//                          "ambiguous_class": 21 | null, "camera_dim": Dc, "motion_dim": Dm,
//                          "labels": "distribution" | "multi-hot",
//                          "splits": { "train": [video, ...], "test": [video, ...] } }
//   <video>.safetensors  F32 tensors camera [T, Dc], motion [T, Dm], labels [T, C]
// "distribution" labels (the default, THUMOS'14 style) are rows >= 0 summing to 1; "multi-hot"
// ones are rows in [0, 1] (several actions at once).
//
// Windows (OadWindowSampler): a sample is the `encSteps` chunks ending at a chunk `end` (the
// "current" chunk), its encoder target is labels[end] and its decoder targets are the labels of the
// `decSteps` chunks after it. The official layer, used for training and testing alike:
// - takes windows whole, never padded: per video an offset s (random in [0, encSteps) for
//   training, 0 for testing), windows [start, start + encSteps) for start = s, s+1, ... while
//   start + encSteps < T - decSteps (so the decoder targets stay inside the video, and its last
//   chunk is never a window's decoder target);
// - drops the windows whose current chunk's label argmax is the ambiguous class.
// `cover: 'every-chunk'` instead ends a window at every chunk of the video (what streaming
// inference sees): chunks before the video's start are zero features, and decoder targets past
// its end are zero rows (no loss under a soft-label cross-entropy; to be masked in metrics).
import { Generator as Rng } from '../tensor/random.js';
import { mixSeed, SEED_STREAMS } from './common.js';
import { checkInt, EpochSampler, type LoaderPosition, nextPosition } from './sampler.js';

export const FEATURE_STREAMS_FORMAT = 'glimpse-oad-streams';

/** One video as per-chunk features and labels, row-major. */
export interface FeatureStream {
  readonly name: string;
  /** Chunks (T). */
  readonly length: number;
  /** [T, cameraDim] */
  readonly camera: Float32Array;
  /** [T, motionDim] */
  readonly motion: Float32Array;
  /** [T, classes] */
  readonly labels: Float32Array;
}

export type LabelRows = 'distribution' | 'multi-hot';

/** What a set of streams declares about all of its videos (index.json). */
export interface FeatureStreamInfo {
  /** Class 0 is background. */
  readonly classNames: readonly string[];
  /** The class whose chunks are neither trained on nor scored (THUMOS'14: 21), or null. */
  readonly ambiguousClass: number | null;
  readonly cameraDim: number;
  readonly motionDim: number;
  readonly labelRows: LabelRows;
  /** Video names by split ('train', 'test', ...), in order. */
  readonly splits: Readonly<Record<string, readonly string[]>>;
}

/** A set of feature streams: its declaration and its videos by split. */
export interface FeatureStreamSet extends FeatureStreamInfo {
  /** For logs: `oad-synthetic`, the folder, ... */
  readonly name: string;
  /** The split's videos, in the split's order; an unknown split is an error listing the known ones. */
  videos(split: string): Promise<FeatureStream[]>;
}

/** The split's video names; an unknown split is an error listing the known ones. */
export function splitVideos(info: Pick<FeatureStreamInfo, 'splits'>, split: string, where: string): readonly string[] {
  const names = Object.hasOwn(info.splits, split) ? info.splits[split] : undefined;
  if (!names) throw new Error(`${where}: no split '${split}' (splits: ${Object.keys(info.splits).join(', ') || 'none'})`);
  return names;
}

const isFiniteArray = (a: Float32Array): number => a.findIndex((v) => !Number.isFinite(v));

/**
 * Checks a stream against its set's declaration: array sizes, finite values, and label rows
 * (distributions summing to 1 within 1e-3, or multi-hot rows in [0, 1]). Errors name the video,
 * the array and the chunk.
 */
export function checkFeatureStream(s: FeatureStream, info: Omit<FeatureStreamInfo, 'splits'>, where: string): void {
  const w = `${where}: video '${s.name}'`;
  checkInt(s.length, `${w}: length`, 1);
  const C = info.classNames.length;
  for (const [key, arr, dim] of [['camera', s.camera, info.cameraDim], ['motion', s.motion, info.motionDim], ['labels', s.labels, C]] as const) {
    if (!(arr instanceof Float32Array)) throw new Error(`${w}: ${key} must be a Float32Array`);
    if (arr.length !== s.length * dim) throw new Error(`${w}: ${key} has ${arr.length} values, expected ${s.length} chunks x ${dim} = ${s.length * dim}`);
    const bad = isFiniteArray(arr);
    if (bad >= 0) throw new Error(`${w}: ${key} is not finite at chunk ${Math.floor(bad / dim)} (value ${arr[bad]})`);
  }
  for (let t = 0; t < s.length; t++) {
    const row = s.labels.subarray(t * C, (t + 1) * C);
    let sum = 0;
    for (const v of row) {
      if (v < 0 || (info.labelRows === 'multi-hot' && v > 1)) throw new Error(`${w}: labels at chunk ${t} hold ${v}, outside ${info.labelRows === 'multi-hot' ? '[0, 1]' : '[0, inf)'}`);
      sum += v;
    }
    if (info.labelRows === 'distribution' && Math.abs(sum - 1) > 1e-3) {
      throw new Error(`${w}: labels at chunk ${t} sum to ${sum}, not 1 (index.json "labels": "multi-hot" allows rows that do not)`);
    }
  }
}

/** Checks a declaration: class names, the ambiguous class, dims, splits of unique names. */
export function checkFeatureStreamInfo(info: FeatureStreamInfo, where: string): void {
  if (!Array.isArray(info.classNames) || info.classNames.length < 2 || info.classNames.some((n) => typeof n !== 'string')) {
    throw new Error(`${where}: class names must be a list of at least 2 strings (background first), got ${JSON.stringify(info.classNames)}`);
  }
  if (info.ambiguousClass !== null) checkInt(info.ambiguousClass, `${where}: ambiguous class`, 1, info.classNames.length - 1);
  checkInt(info.cameraDim, `${where}: camera dim`, 1);
  checkInt(info.motionDim, `${where}: motion dim`, 1);
  if (info.labelRows !== 'distribution' && info.labelRows !== 'multi-hot') throw new Error(`${where}: labels must be "distribution" or "multi-hot", got ${JSON.stringify(info.labelRows)}`);
  if (typeof info.splits !== 'object' || info.splits === null || Array.isArray(info.splits)) throw new Error(`${where}: splits must map split names to video lists`);
  for (const [split, names] of Object.entries(info.splits)) {
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === '' || /[/\\]/.test(n) || n === '.' || n === '..')) {
      throw new Error(`${where}: split '${split}' must list video names (no path separators)`);
    }
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new Error(`${where}: split '${split}' lists video '${n}' twice`);
      seen.add(n);
    }
  }
}

/** The class of a label row: its argmax (first of ties, as numpy's). */
export function labelArgmax(labels: Float32Array, row: number, classes: number): number {
  let best = 0;
  for (let c = 1; c < classes; c++) if (labels[row * classes + c]! > labels[row * classes + best]!) best = c;
  return best;
}

// ---------------------------------------------------------------------------------------------
// Windows

export interface OadWindowOptions {
  /** Chunks per window (the official enc_layers / "window", 64). */
  encSteps: number;
  /** Future chunks the decoder anticipates (the official query_num, 8). */
  decSteps: number;
  /** 'official' (default): whole windows as the official layer cuts them; 'every-chunk': one per chunk, padded. */
  cover?: 'official' | 'every-chunk';
  /**
   * Official cover: each video's first window starts at a random offset in [0, encSteps) drawn
   * from (seed, video index), as the official layer does for training; false (the official test
   * layer) starts at 0. Default: true when shuffle.
   */
  randomOffset?: boolean;
  /** Drop windows whose current chunk is ambiguous (default true, as the official layer). */
  skipAmbiguous?: boolean;
  batchSize: number;
  seed?: number;
  /** Default true; the order over (video, end chunk) pairs is reshuffled per epoch from (seed, epoch). */
  shuffle?: boolean;
  dropLast?: boolean;
  rank?: number;
  worldSize?: number;
}

/** One window: `end` is the current chunk (the window's last). */
export interface OadWindow {
  readonly video: string;
  readonly end: number;
  /** [W, Dc] */
  readonly camera: Float32Array;
  /** [W, Dm] */
  readonly motion: Float32Array;
  /** [C]: labels[end] */
  readonly encTarget: Float32Array;
  /** [Q, C]: labels[end + 1 .. end + Q] (zero rows past the video's end) */
  readonly decTarget: Float32Array;
}

/** Windows stacked: camera [B, W, Dc], motion [B, W, Dm], encTarget [B, C], decTarget [B, Q, C]. */
export interface OadBatch {
  readonly size: number;
  readonly keys: readonly string[];
  readonly camera: Float32Array;
  readonly motion: Float32Array;
  readonly encTarget: Float32Array;
  readonly decTarget: Float32Array;
}

/**
 * The window of `stream` ending at chunk `end`, with zero features before chunk 0 and zero
 * decoder-target rows past the last chunk.
 */
export function cutWindow(stream: FeatureStream, end: number, encSteps: number, decSteps: number, dims: { cameraDim: number; motionDim: number; classes: number }): OadWindow {
  const { cameraDim: Dc, motionDim: Dm, classes: C } = dims;
  if (!Number.isInteger(end) || end < 0 || end >= stream.length) throw new RangeError(`cutWindow: chunk ${end} is outside video '${stream.name}' of ${stream.length} chunks`);
  const camera = new Float32Array(encSteps * Dc);
  const motion = new Float32Array(encSteps * Dm);
  const start = end + 1 - encSteps;
  const first = Math.max(0, start);
  camera.set(stream.camera.subarray(first * Dc, (end + 1) * Dc), (first - start) * Dc);
  motion.set(stream.motion.subarray(first * Dm, (end + 1) * Dm), (first - start) * Dm);
  const encTarget = stream.labels.slice(end * C, (end + 1) * C);
  const decTarget = new Float32Array(decSteps * C);
  const last = Math.min(stream.length, end + 1 + decSteps);
  decTarget.set(stream.labels.subarray((end + 1) * C, last * C));
  return { video: stream.name, end, camera, motion, encTarget, decTarget };
}

/**
 * The training windows of a set of streams, batched, in a seeded order that reshuffles per epoch
 * and resumes from a batch position (EpochSampler's semantics over the (video, end chunk) pairs).
 */
export class OadWindowSampler {
  readonly encSteps: number;
  readonly decSteps: number;
  readonly cover: 'official' | 'every-chunk';
  readonly classes: number;
  /** (video index, end chunk) of each window, interleaved. */
  readonly items: Int32Array;
  readonly sampler: EpochSampler;

  constructor(readonly streams: readonly FeatureStream[], readonly info: Omit<FeatureStreamInfo, 'splits'>, options: OadWindowOptions) {
    const where = 'OadWindowSampler';
    this.encSteps = checkInt(options.encSteps, `${where}: encSteps`, 1);
    this.decSteps = checkInt(options.decSteps, `${where}: decSteps`, 0);
    this.cover = options.cover ?? 'official';
    if (this.cover !== 'official' && this.cover !== 'every-chunk') throw new Error(`${where}: cover must be 'official' or 'every-chunk', got ${JSON.stringify(this.cover)}`);
    this.classes = info.classNames.length;
    const shuffle = options.shuffle ?? true;
    const seed = options.seed ?? 0;
    const randomOffset = options.randomOffset ?? shuffle;
    const skip = (options.skipAmbiguous ?? true) ? info.ambiguousClass : null;
    const pairs: number[] = [];
    streams.forEach((s, v) => {
      const checkLength = s.labels.length === s.length * this.classes && s.camera.length === s.length * info.cameraDim && s.motion.length === s.length * info.motionDim;
      if (!checkLength) throw new Error(`${where}: video '${s.name}' does not match the set's dims (run checkFeatureStream on it)`);
      let ends: Iterable<number>;
      if (this.cover === 'official') {
        const offset = randomOffset ? new Rng(mixSeed(SEED_STREAMS.oadOffset, seed, v)).int(0, this.encSteps) : 0;
        ends = range(offset + this.encSteps - 1, s.length - this.decSteps - 1);
      } else {
        ends = range(0, s.length);
      }
      for (const end of ends) {
        if (skip !== null && labelArgmax(s.labels, end, this.classes) === skip) continue;
        pairs.push(v, end);
      }
    });
    if (pairs.length === 0) {
      throw new Error(`${where}: no window of ${this.encSteps} + ${this.decSteps} chunks fits in the ${streams.length} videos (longest ${Math.max(0, ...streams.map((s) => s.length))} chunks)`);
    }
    this.items = Int32Array.from(pairs);
    this.sampler = new EpochSampler(pairs.length / 2, { batchSize: options.batchSize, seed, shuffle, dropLast: options.dropLast, rank: options.rank, worldSize: options.worldSize }, where);
  }

  get length(): number {
    return this.items.length / 2;
  }

  get batchesPerEpoch(): number {
    return this.sampler.batchesPerEpoch;
  }

  /** Window `i` of the item list (not of an epoch's order). */
  window(i: number): OadWindow {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`OadWindowSampler: window ${i} out of range [0, ${this.length})`);
    const s = this.streams[this.items[2 * i]!]!;
    return cutWindow(s, this.items[2 * i + 1]!, this.encSteps, this.decSteps, { cameraDim: this.info.cameraDim, motionDim: this.info.motionDim, classes: this.classes });
  }

  /** The batch at a position. */
  batch(position: LoaderPosition): OadBatch {
    const idx = this.sampler.indices(position);
    const windows = Array.from(idx, (i) => this.window(i));
    return stackWindows(windows, this.encSteps, this.decSteps, { cameraDim: this.info.cameraDim, motionDim: this.info.motionDim, classes: this.classes });
  }

  /** Batches from `from` on, epoch after epoch, without end. */
  *batches(from: LoaderPosition = { epoch: 0, batch: 0 }): Generator<OadBatch> {
    if (this.batchesPerEpoch === 0) throw new Error(`OadWindowSampler: ${this.length} windows make no batch of ${this.sampler.batchSize} on this rank`);
    for (let p = from; ; p = nextPosition(p, this.batchesPerEpoch)) yield this.batch(p);
  }
}

export function stackWindows(windows: readonly OadWindow[], encSteps: number, decSteps: number, dims: { cameraDim: number; motionDim: number; classes: number }): OadBatch {
  const B = windows.length;
  const { cameraDim: Dc, motionDim: Dm, classes: C } = dims;
  const out = {
    size: B, keys: windows.map((w) => `${w.video}/${w.end}`),
    camera: new Float32Array(B * encSteps * Dc), motion: new Float32Array(B * encSteps * Dm),
    encTarget: new Float32Array(B * C), decTarget: new Float32Array(B * decSteps * C),
  };
  windows.forEach((w, b) => {
    out.camera.set(w.camera, b * encSteps * Dc);
    out.motion.set(w.motion, b * encSteps * Dm);
    out.encTarget.set(w.encTarget, b * C);
    out.decTarget.set(w.decTarget, b * decSteps * C);
  });
  return out;
}

function* range(lo: number, hi: number): Generator<number> {
  for (let i = lo; i < hi; i++) yield i;
}
