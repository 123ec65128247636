// Online action detection over a live stream of chunk features (OadTR and any other
// 'online-action-detector'): push one chunk at a time and get the current chunk's class
// probabilities and the anticipated actions of the next chunks, or run a whole video in batches
// of windows with the same results.
//
// Each chunk costs one forward of one window of the model's T chunks, whatever the video's length:
// the last T chunks sit in a ring buffer, and before T chunks have arrived the window is
// zero-padded at the start, as cutWindow (the 'every-chunk' cover) pads it. Nothing is cached
// across windows: the per-chunk linear encoding could be, but the native GEMM sums a single row in
// another order than a window's rows, so the cached encoding would not equal the model's forward.
import { cutWindow, type FeatureStream } from '../data/oad_streams.js';
import type { OnlineActionDetector } from '../models/family.js';
import { noGrad } from '../tensor/autograd.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/** What the detector says at one chunk. */
export interface OnlineDetection {
  /** The chunk's index since the stream's start (or the last reset). */
  readonly chunk: number;
  /** [C]: the current chunk's class probabilities (softmax of the encoder scores). */
  readonly probs: Float32Array;
  /** Q rows [C]: the anticipated class probabilities of chunks chunk+1 .. chunk+Q (softmax of each decoder query's scores). */
  readonly anticipation: Float32Array[];
}

export interface DetectVideoOptions {
  /** Windows per forward (default 16). */
  batchSize?: number;
}

/** Row-wise softmax in float64, rounded to float32: the same numbers whichever path produced the scores. */
function softmaxRows(scores: Float32Array, rows: number, cols: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r = 0; r < rows; r++) {
    const row = scores.subarray(r * cols, (r + 1) * cols);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    const p = new Float32Array(cols);
    let sum = 0;
    const e = new Float64Array(cols);
    for (let c = 0; c < cols; c++) sum += (e[c] = Math.exp(row[c]! - max));
    for (let c = 0; c < cols; c++) p[c] = e[c]! / sum;
    out.push(p);
  }
  return out;
}

/** The feature values of a Float32Array or a float32 tensor, as a Float32Array. */
function featureValues(x: Float32Array | Tensor | null | undefined, what: string, where: string): Float32Array | null {
  if (x === null || x === undefined) return null;
  if (x instanceof Float32Array) return x;
  if (typeof (x as Tensor).data === 'function' && (x as Tensor).dtype !== undefined) {
    if (x.dtype !== 'float32') throw new Error(`${where}: ${what} features must be float32, got ${x.dtype}`);
    return x.data() as Float32Array;
  }
  throw new Error(`${where}: ${what} features must be a Float32Array or a Tensor`);
}

/**
 * Streaming inference with an online action detector. The model is put in eval mode (no dropout).
 * `push` takes one chunk's camera [Dc] and motion [Dm] features (null or empty where the model's
 * width is 0); `detectVideo` takes a whole video's [T, Dc] and [T, Dm] and gives, per chunk,
 * what `push` would have given had the chunks arrived one by one after a reset.
 */
export class OnlineDetector {
  readonly window: number;
  readonly numClasses: number;
  readonly queries: number;
  readonly cameraDim: number;
  readonly motionDim: number;
  /** The last `window` chunks' features, chunk i at slot i % window. */
  readonly #camera: Float32Array;
  readonly #motion: Float32Array;
  #seen = 0;

  constructor(readonly model: OnlineActionDetector) {
    if (model?.kind !== 'online-action-detector') {
      throw new Error(`OnlineDetector: needs an online action detector (such as OadTR), got ${model?.constructor?.name ?? String(model)}${model?.kind ? ` (kind '${model.kind}')` : ''}`);
    }
    ({ window: this.window, numClasses: this.numClasses, queries: this.queries, cameraDim: this.cameraDim, motionDim: this.motionDim } = model);
    this.#camera = new Float32Array(this.window * this.cameraDim);
    this.#motion = new Float32Array(this.window * this.motionDim);
    model.eval();
  }

  /** Chunks pushed since the start or the last reset. */
  get chunks(): number {
    return this.#seen;
  }

  /** Forgets the stream: the next push is chunk 0 of a new video. */
  reset(): void {
    this.#seen = 0;
    this.#camera.fill(0);
    this.#motion.fill(0);
  }

  /** One chunk arrives: its detection, from the window of the last `window` chunks ending at it. */
  push(camera: Float32Array | Tensor | null, motion: Float32Array | Tensor | null): OnlineDetection {
    const where = `OnlineDetector.push (chunk ${this.#seen})`;
    const cam = this.#chunk(camera, 'camera', this.cameraDim, where);
    const mot = this.#chunk(motion, 'motion', this.motionDim, where);
    const T = this.window;
    const slot = this.#seen % T;
    this.#camera.set(cam, slot * this.cameraDim);
    this.#motion.set(mot, slot * this.motionDim);
    // Oldest first: slots after this one (chunks seen - T + 1 ..), then those up to it. Before T
    // chunks have arrived the slots after it still hold zeros, which is cutWindow's padding.
    const order = (buf: Float32Array, dim: number): Float32Array => {
      const w = new Float32Array(T * dim);
      w.set(buf.subarray((slot + 1) * dim), 0);
      w.set(buf.subarray(0, (slot + 1) * dim), (T - slot - 1) * dim);
      return w;
    };
    const [detection] = this.#run(order(this.#camera, this.cameraDim), order(this.#motion, this.motionDim), 1, this.#seen);
    this.#seen++;
    return detection!;
  }

  /**
   * A whole video's detections, one per chunk, the windows run `batchSize` at a time; the stream
   * state (push's) is left as it was. Each window holds what push would hold at that chunk, so a
   * batch of one gives push's results bitwise, and so does any batch size on a backend whose
   * kernels compute each row alike whatever the batch (the reference backend); the native GEMM
   * picks its blocking by the number of rows, so larger batches there round differently (~1e-6).
   */
  detectVideo(camera: Float32Array | Tensor | null, motion: Float32Array | Tensor | null, options: DetectVideoOptions = {}): OnlineDetection[] {
    const where = 'OnlineDetector.detectVideo';
    const batchSize = options.batchSize ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${where}: batchSize must be a positive integer, got ${batchSize}`);
    const stream = this.#video(camera, motion, where);
    const T = this.window;
    const dims = { cameraDim: this.cameraDim, motionDim: this.motionDim, classes: 0 };
    const out: OnlineDetection[] = [];
    for (let first = 0; first < stream.length; first += batchSize) {
      const B = Math.min(batchSize, stream.length - first);
      const cam = new Float32Array(B * T * this.cameraDim);
      const mot = new Float32Array(B * T * this.motionDim);
      for (let b = 0; b < B; b++) {
        const w = cutWindow(stream, first + b, T, 0, dims);
        cam.set(w.camera, b * T * this.cameraDim);
        mot.set(w.motion, b * T * this.motionDim);
      }
      out.push(...this.#run(cam, mot, B, first));
    }
    return out;
  }

  /** detectVideo over a feature stream (its labels are not read). */
  detectStream(stream: Pick<FeatureStream, 'camera' | 'motion' | 'length'>, options: DetectVideoOptions = {}): OnlineDetection[] {
    return this.detectVideo(stream.camera, stream.motion, options);
  }

  /** Model forward on B windows [B, T, D] starting at chunk `first`. */
  #run(camera: Float32Array, motion: Float32Array, B: number, first: number): OnlineDetection[] {
    const { window: T, numClasses: C, queries: Q } = this;
    const backend = this.model.parameters()[0]?.backend;
    const input = (data: Float32Array, dim: number): Tensor | null => (dim === 0 ? null : tensor(data, { shape: [B, T, dim], backend }));
    const { enc, dec } = noGrad(() => {
      const out = this.model.forward(input(camera, this.cameraDim), input(motion, this.motionDim));
      return { enc: out.encoderScores.data() as Float32Array, dec: out.decoderScores.data() as Float32Array };
    });
    if (enc.length !== B * C || dec.length !== B * Q * C) {
      throw new Error(`OnlineDetector: the model returned ${enc.length} encoder and ${dec.length} decoder scores for ${B} windows, expected [${B}, ${C}] and [${B}, ${Q}, ${C}]`);
    }
    const probs = softmaxRows(enc, B, C);
    const anticipated = softmaxRows(dec, B * Q, C);
    return probs.map((p, b) => ({ chunk: first + b, probs: p, anticipation: anticipated.slice(b * Q, (b + 1) * Q) }));
  }

  #chunk(x: Float32Array | Tensor | null, what: 'camera' | 'motion', dim: number, where: string): Float32Array {
    const v = featureValues(x, what, where);
    if (dim === 0) {
      if (v && v.length > 0) throw new Error(`${where}: the model has no ${what} stream (${what} width 0), but ${v.length} ${what} features were given`);
      return new Float32Array(0);
    }
    if (!v) throw new Error(`${where}: ${what} features [${dim}] are required`);
    if (x instanceof Object && !(x instanceof Float32Array) && (x as Tensor).ndim !== 1) {
      throw new Error(`${where}: ${what} features must be one chunk's [${dim}], got a tensor [${(x as Tensor).shape}]`);
    }
    if (v.length !== dim) throw new Error(`${where}: ${what} features must have the model's ${what} width ${dim}, got ${v.length}`);
    return v;
  }

  /** A video's features checked against the model: a stream of `length` chunks. */
  #video(camera: Float32Array | Tensor | null, motion: Float32Array | Tensor | null, where: string): FeatureStream {
    let length: number | null = null;
    const read = (x: Float32Array | Tensor | null, what: 'camera' | 'motion', dim: number): Float32Array => {
      const v = featureValues(x, what, where);
      if (dim === 0) {
        if (v && v.length > 0) throw new Error(`${where}: the model has no ${what} stream (${what} width 0), but ${what} features were given`);
        return new Float32Array(0);
      }
      if (!v) throw new Error(`${where}: ${what} features [T, ${dim}] are required`);
      if (!(x instanceof Float32Array) && ((x as Tensor).ndim !== 2 || (x as Tensor).shape[1] !== dim)) {
        throw new Error(`${where}: ${what} features must be [T, ${dim}] (chunks, the model's ${what} width), got a tensor [${(x as Tensor).shape}]`);
      }
      if (v.length === 0 || v.length % dim !== 0) throw new Error(`${where}: ${v.length} ${what} values are not a whole number (>= 1) of chunks of the model's ${what} width ${dim}`);
      const n = v.length / dim;
      if (length !== null && n !== length) throw new Error(`${where}: camera and motion features have ${length} and ${n} chunks; they must agree`);
      length = n;
      return v;
    };
    const cam = read(camera, 'camera', this.cameraDim);
    const mot = read(motion, 'motion', this.motionDim);
    return { name: 'video', length: length!, camera: cam, motion: mot, labels: new Float32Array(0) };
  }
}
