// oad-synthetic: built-in feature streams for online action detection, drawn from a seed.
//
// A video alternates background gaps and actions of K classes with varied durations. Each class
// has a temporal pattern in feature space: over the action its camera features move from a start
// prototype to an end prototype under an envelope that rises at the onset, holds, and falls at the
// offset. The last `cueSteps` background chunks before an onset show a rising class-specific cue
// (labelled background), so the start of an action and its class are predictable from what
// precedes it: what the decoder's anticipation can learn. The chunks where an action starts and
// ends are labelled with the ambiguous class (as THUMOS'14 marks uncertain boundaries), class 0 is
// background and the ambiguous class is the last. Motion features are a fixed random projection
// of the clean camera signal's temporal difference (what optical flow sees: change). Gaussian
// noise of std `noise` is added to both. Prototypes and cues depend on the seed only, so the
// train and test splits share them; each video is drawn from (seed, split, index).
import { Generator as Rng } from '../tensor/random.js';
import { mixSeed, SEED_STREAMS } from './common.js';
import { type FeatureStream, type FeatureStreamSet, splitVideos } from './oad_streams.js';
import { checkInt } from './sampler.js';

export interface OadSyntheticOptions {
  /** Training videos (default 32). */
  videos?: number;
  /** Test videos (default 8). */
  testVideos?: number;
  /** Chunks per video (default 256). */
  length?: number;
  /** Action classes, besides background and ambiguous (default 4). */
  classes?: number;
  cameraDim?: number; // default 32
  motionDim?: number; // default 16
  /** Std of the Gaussian noise on every feature (default 0.5; the signal's entries have std about 1). */
  noise?: number;
  seed?: number; // default 0
  /** Background chunks before each onset that show the coming class's cue (default 4). */
  cueSteps?: number;
  /** Chunks at each end of an action labelled ambiguous (default 1; 0: no ambiguous class). */
  ambiguousSteps?: number;
  /** Action durations in chunks, inclusive (default [8, 32]). */
  duration?: readonly [number, number];
  /** Background gap lengths in chunks, inclusive (default [cueSteps + 4, 40]). */
  gap?: readonly [number, number];
}

/** One action of a synthetic video: chunks [start, end) of class `label` (1..K). */
export interface SyntheticAction { readonly label: number; readonly start: number; readonly end: number }

export interface SyntheticStream extends FeatureStream {
  readonly actions: readonly SyntheticAction[];
}

const SPLIT_IDS: Readonly<Record<string, number>> = { train: 1, test: 2 };

function gaussian(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

/** Onset-hold-offset envelope over an action's phase in [0, 1]. */
const envelope = (phase: number): number => Math.min(1, 0.3 + phase / 0.2, 0.3 + (1 - phase) / 0.2);

export class OadSyntheticStreams implements FeatureStreamSet {
  readonly name: string;
  readonly classNames: readonly string[];
  readonly ambiguousClass: number | null;
  readonly cameraDim: number;
  readonly motionDim: number;
  readonly labelRows = 'distribution' as const;
  readonly splits: Readonly<Record<string, readonly string[]>>;
  readonly length: number;
  readonly actionClasses: number;
  readonly noise: number;
  readonly seed: number;
  readonly cueSteps: number;
  readonly ambiguousSteps: number;
  readonly duration: readonly [number, number];
  readonly gap: readonly [number, number];
  /** Per class (K rows of cameraDim): the start and end prototypes and the cue. */
  readonly startPrototypes: Float32Array;
  readonly endPrototypes: Float32Array;
  readonly cues: Float32Array;
  /** [motionDim, cameraDim]: camera difference to motion. */
  readonly motionProjection: Float32Array;
  private readonly cache = new Map<string, SyntheticStream[]>();

  constructor(options: OadSyntheticOptions = {}) {
    const w = 'oad-synthetic';
    const videos = checkInt(options.videos ?? 32, `${w}: videos`, 1);
    const testVideos = checkInt(options.testVideos ?? 8, `${w}: testVideos`, 1);
    this.length = checkInt(options.length ?? 256, `${w}: length`, 1);
    this.actionClasses = checkInt(options.classes ?? 4, `${w}: classes`, 1);
    this.cameraDim = checkInt(options.cameraDim ?? 32, `${w}: cameraDim`, 1);
    this.motionDim = checkInt(options.motionDim ?? 16, `${w}: motionDim`, 1);
    this.noise = options.noise ?? 0.5;
    if (typeof this.noise !== 'number' || !(this.noise >= 0) || !Number.isFinite(this.noise)) throw new Error(`${w}: noise must be a finite number >= 0, got ${String(options.noise)}`);
    this.seed = checkInt(options.seed ?? 0, `${w}: seed`, 0);
    this.cueSteps = checkInt(options.cueSteps ?? 4, `${w}: cueSteps`, 0);
    this.ambiguousSteps = checkInt(options.ambiguousSteps ?? 1, `${w}: ambiguousSteps`, 0);
    this.duration = checkRange(options.duration ?? [8, 32], `${w}: duration`, 2 * this.ambiguousSteps + 1);
    this.gap = checkRange(options.gap ?? [this.cueSteps + 4, Math.max(40, this.cueSteps + 4)], `${w}: gap`, Math.max(1, this.cueSteps));
    const K = this.actionClasses;
    this.classNames = ['background', ...Array.from({ length: K }, (_, k) => `action_${k + 1}`), ...(this.ambiguousSteps > 0 ? ['ambiguous'] : [])];
    this.ambiguousClass = this.ambiguousSteps > 0 ? K + 1 : null;
    this.splits = {
      train: Array.from({ length: videos }, (_, i) => `train_${String(i).padStart(4, '0')}`),
      test: Array.from({ length: testVideos }, (_, i) => `test_${String(i).padStart(4, '0')}`),
    };
    this.name = `oad-synthetic(seed ${this.seed})`;
    const rng = new Rng(mixSeed(SEED_STREAMS.oadStream, this.seed, 0));
    this.startPrototypes = gaussian(rng, K * this.cameraDim);
    this.endPrototypes = gaussian(rng, K * this.cameraDim);
    this.cues = gaussian(rng, K * this.cameraDim);
    this.motionProjection = gaussian(rng, this.motionDim * this.cameraDim, 1 / Math.sqrt(this.cameraDim));
  }

  async videos(split: string): Promise<SyntheticStream[]> {
    return this.videosSync(split);
  }

  /** The split's videos, drawn on first use and kept. */
  videosSync(split: string): SyntheticStream[] {
    const names = splitVideos(this, split, 'oad-synthetic');
    let out = this.cache.get(split);
    if (!out) {
      out = names.map((name, i) => this.draw(name, new Rng(mixSeed(SEED_STREAMS.oadStream, this.seed, SPLIT_IDS[split]!, i))));
      this.cache.set(split, out);
    }
    return out;
  }

  private draw(name: string, rng: Rng): SyntheticStream {
    const T = this.length;
    const D = this.cameraDim;
    const C = this.classNames.length;
    const actions: SyntheticAction[] = [];
    for (let t = rng.int(this.gap[0], this.gap[1] + 1); t < T;) {
      const d = rng.int(this.duration[0], this.duration[1] + 1);
      actions.push({ label: rng.int(0, this.actionClasses) + 1, start: t, end: t + d });
      t += d + rng.int(this.gap[0], this.gap[1] + 1);
    }
    // The clean signal: a per-video background offset, cues, action patterns.
    const clean = new Float32Array(T * D);
    const background = gaussian(rng, D, 0.3);
    for (let t = 0; t < T; t++) clean.set(background, t * D);
    const labels = new Float32Array(T * C);
    for (let t = 0; t < T; t++) labels[t * C] = 1;
    const setLabel = (t: number, c: number): void => {
      if (t >= T) return;
      labels.fill(0, t * C, (t + 1) * C);
      labels[t * C + c] = 1;
    };
    for (const a of actions) {
      const k = a.label - 1;
      for (let j = 0; j < this.cueSteps; j++) {
        const t = a.start - this.cueSteps + j;
        const r = (j + 1) / this.cueSteps;
        for (let i = 0; i < D; i++) clean[t * D + i]! += r * this.cues[k * D + i]!;
      }
      const len = a.end - a.start;
      for (let t = a.start; t < Math.min(a.end, T); t++) {
        const phase = (t - a.start) / (len - 1);
        const e = envelope(phase);
        for (let i = 0; i < D; i++) clean[t * D + i]! += e * ((1 - phase) * this.startPrototypes[k * D + i]! + phase * this.endPrototypes[k * D + i]!);
        const fromEdge = Math.min(t - a.start, a.end - 1 - t);
        setLabel(t, fromEdge < this.ambiguousSteps ? this.ambiguousClass! : a.label);
      }
    }
    const Dm = this.motionDim;
    const motion = new Float32Array(T * Dm);
    for (let t = 1; t < T; t++) {
      for (let m = 0; m < Dm; m++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += this.motionProjection[m * D + i]! * (clean[t * D + i]! - clean[(t - 1) * D + i]!);
        motion[t * Dm + m] = s;
      }
    }
    const camera = clean;
    for (let i = 0; i < camera.length; i++) camera[i]! += this.noise * rng.normal();
    for (let i = 0; i < motion.length; i++) motion[i]! += this.noise * rng.normal();
    return { name, length: T, camera, motion, labels, actions };
  }
}

function checkRange(r: readonly [number, number], what: string, lo: number): readonly [number, number] {
  if (!Array.isArray(r) || r.length !== 2) throw new Error(`${what} must be [min, max], got ${JSON.stringify(r)}`);
  checkInt(r[0], `${what}[0]`, lo);
  checkInt(r[1], `${what}[1]`, r[0]);
  return [r[0], r[1]];
}
