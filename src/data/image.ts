// Image decoding and the preprocessing of Hugging Face's image processors (CLIP, SigLIP, ViT,
// BLIP), reproduced to the pixel. transformers 5 runs its "fast" processors: torchvision on uint8
// tensors, whose CPU resize is a fixed-point port of Pillow-SIMD's separable antialiased
// convolution (int16 weights, uint8 between the horizontal and the vertical pass). sharp's own
// kernels cannot match it (its best, lanczos2, is still 0.012 off in mean absolute error on CLIP),
// so sharp only decodes and the resampling below redoes torchvision's arithmetic exactly.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Backend } from '../tensor/backend.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/** Decoded pixels: `height` rows of `width` RGB triples, 8 bits each. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** A file path, or the bytes of an encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF, ...). */
export type ImageInput = string | Uint8Array;

export interface DecodeOptions {
  /** Name used in errors for in-memory input (paths name themselves). */
  name?: string;
  /**
   * Apply the EXIF orientation, as transformers' `load_image` does (default true). A bare
   * `PIL.Image.open` does not: pass false to match that.
   */
  autoOrient?: boolean;
}

// libvips reports one line per failed attempt; the first two say what went wrong.
function describe(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 2).join('; ');
}

/**
 * Decodes an image to 8-bit RGB as PIL's `convert('RGB')` does: grey is replicated into three
 * channels, alpha is dropped (not composited), palettes are expanded, and an embedded ICC profile
 * is ignored; 16-bit RGB keeps its high bytes (16-bit grey too, where PIL would clip instead).
 * Animated images give their first frame. Unreadable, corrupt or truncated input throws an error
 * that names the file.
 */
export async function decodeImage(input: ImageInput, opts: DecodeOptions = {}): Promise<RgbImage> {
  const label = typeof input === 'string' ? input : opts.name ?? '<buffer>';
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await fs.promises.readFile(input);
    } catch (e) {
      throw new Error(`image: cannot read ${input}: ${describe(e)}`, { cause: e });
    }
  } else {
    bytes = input;
  }
  if (bytes.length === 0) throw new Error(`image: ${label} is empty`);
  // failOn 'error' rejects truncated and corrupt data; sharp's default, 'warning', would also
  // reject files with recoverable defects that PIL reads.
  const out = await sharp(bytes, { failOn: 'error', ignoreIcc: true, autoOrient: opts.autoOrient ?? true })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true })
    .catch((e: unknown) => {
      throw new Error(`image: cannot decode ${label}: ${describe(e)}`, { cause: e });
    });
  const { width, height, channels } = out.info;
  if (channels !== 3 || out.data.length !== width * height * 3) {
    throw new Error(`image: ${label} decoded to ${channels} channels (${out.data.length} bytes for ${width}x${height}), expected RGB`);
  }
  return { width, height, data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length) };
}

// ---------------------------------------------------------------------------------------------
// Resampling

export type Resample = 'nearest' | 'bilinear' | 'bicubic';

/** PIL's resample codes, as preprocessor_config.json stores them, for the filters supported here. */
const PIL_RESAMPLE: Readonly<Record<number, Resample>> = { 0: 'nearest', 2: 'bilinear', 3: 'bicubic' };
const PIL_RESAMPLE_NAMES = ['NEAREST', 'LANCZOS', 'BILINEAR', 'BICUBIC', 'BOX', 'HAMMING'];

// Both filters written as torch's antialiasing filters are (bicubic with a = -0.5, Pillow's
// choice), in the same operation order, so that the weights round identically.
function bilinearFilter(x: number): number {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

function bicubicFilter(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** One axis of a separable resize: output i reads inputs start[i] .. start[i]+count[i]-1. */
interface Taps {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** count[i] fixed-point weights for output i at i*ksize, scaled by 2^shift. */
  readonly weights: Int32Array;
  readonly ksize: number;
  readonly shift: number;
}

/**
 * The weights of torch's antialiased resize along one axis: the filter's support widens by the
 * downscale factor, weights are normalised to sum to one, then quantised to int16 with the most
 * fractional bits that keep the largest weight below 2^15 (the precision torch picks).
 */
function computeTaps(inSize: number, outSize: number, resample: 'bilinear' | 'bicubic'): Taps {
  const filter = resample === 'bicubic' ? bicubicFilter : bilinearFilter;
  const interpSize = resample === 'bicubic' ? 4 : 2;
  const scale = inSize / outSize;
  const support = scale >= 1 ? interpSize * 0.5 * scale : interpSize * 0.5;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const w = new Float64Array(outSize * ksize);
  let wMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - lo, 0), ksize);
    start[i] = lo;
    count[i] = n;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const v = filter((j + lo - center + 0.5) * invScale);
      w[i * ksize + j] = v;
      total += v;
    }
    if (total !== 0) {
      for (let j = 0; j < n; j++) {
        w[i * ksize + j]! /= total;
        wMax = Math.max(wMax, w[i * ksize + j]!);
      }
    }
  }
  let shift = 0;
  while (shift < 22 && Math.trunc(0.5 + wMax * 2 ** (shift + 1)) < 1 << 15) shift++;
  const weights = new Int32Array(outSize * ksize);
  const one = 2 ** shift;
  for (let k = 0; k < w.length; k++) {
    const v = w[k]!;
    weights[k] = Math.trunc(v < 0 ? -0.5 + v * one : 0.5 + v * one);
  }
  return { start, count, weights, ksize, shift };
}

function clampByte(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resamples `rows` rows of src (from row `row0`) horizontally to outW columns. */
function resampleHorizontal(src: RgbImage, row0: number, rows: number, outW: number, t: Taps): Uint8Array {
  const out = new Uint8Array(rows * outW * 3);
  const { start, count, weights, ksize } = t;
  const half = 2 ** (t.shift - 1);
  const inv = 2 ** -t.shift;
  const s = src.data;
  for (let y = 0; y < rows; y++) {
    const rowBase = (row0 + y) * src.width * 3;
    for (let x = 0; x < outW; x++) {
      let r = half, g = half, b = half;
      const wBase = x * ksize;
      let p = rowBase + start[x]! * 3;
      for (let j = 0, n = count[x]!; j < n; j++, p += 3) {
        const k = weights[wBase + j]!;
        r += s[p]! * k;
        g += s[p + 1]! * k;
        b += s[p + 2]! * k;
      }
      const o = (y * outW + x) * 3;
      out[o] = clampByte(Math.floor(r * inv));
      out[o + 1] = clampByte(Math.floor(g * inv));
      out[o + 2] = clampByte(Math.floor(b * inv));
    }
  }
  return out;
}

/** Resamples an image of `width` columns vertically to outH rows; t's starts count from row0. */
function resampleVertical(s: Uint8Array, width: number, row0: number, outH: number, t: Taps): Uint8Array {
  const out = new Uint8Array(outH * width * 3);
  const { start, count, weights, ksize } = t;
  const half = 2 ** (t.shift - 1);
  const inv = 2 ** -t.shift;
  const stride = width * 3;
  const acc = new Float64Array(stride);
  for (let y = 0; y < outH; y++) {
    acc.fill(half);
    const wBase = y * ksize;
    for (let j = 0, n = count[y]!; j < n; j++) {
      const k = weights[wBase + j]!;
      const base = (start[y]! - row0 + j) * stride;
      for (let c = 0; c < stride; c++) acc[c]! += s[base + c]! * k;
    }
    const o = y * stride;
    for (let c = 0; c < stride; c++) out[o + c] = clampByte(Math.floor(acc[c]! * inv));
  }
  return out;
}

// torchvision's NEAREST_EXACT (what transformers maps PIL's NEAREST to): the source index is
// floor((i + 0.5) * scale), computed in float32 as torch does.
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const scale = Math.fround(inSize / outSize);
  const idx = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(Math.fround((i + 0.5) * scale)), inSize - 1);
  return idx;
}

/**
 * Resizes to width x height exactly as torchvision's `resize(uint8 tensor, antialias=True)` does
 * on the CPU; an axis whose size does not change is not resampled.
 */
export function resizeImage(img: RgbImage, width: number, height: number, resample: Resample): RgbImage {
  for (const [what, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`resizeImage: ${what} must be a positive integer, got ${v}`);
  }
  if (img.width < 1 || img.height < 1) throw new Error(`resizeImage: empty image (${img.width}x${img.height})`);
  if (width === img.width && height === img.height) return img;
  if (resample === 'nearest') {
    const xi = nearestIndices(img.width, width);
    const yi = nearestIndices(img.height, height);
    const out = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = (yi[y]! * img.width + xi[x]!) * 3;
        const o = (y * width + x) * 3;
        out[o] = img.data[p]!;
        out[o + 1] = img.data[p + 1]!;
        out[o + 2] = img.data[p + 2]!;
      }
    }
    return { width, height, data: out };
  }
  const vt = height !== img.height ? computeTaps(img.height, height, resample) : null;
  let cur: RgbImage = img;
  let row0 = 0;
  if (width !== img.width) {
    // Only the rows the vertical pass reads; the result is the same as resampling them all.
    let rows = img.height;
    if (vt) {
      row0 = vt.start[0]!;
      rows = vt.start[height - 1]! + vt.count[height - 1]! - row0;
    }
    cur = { width, height: rows, data: resampleHorizontal(img, row0, rows, width, computeTaps(img.width, width, resample)) };
  }
  if (vt) cur = { width, height, data: resampleVertical(cur.data, width, row0, height, vt) };
  return cur;
}

/** Python's round() of d / 2 for an integer d (halves go to the even neighbour). */
function halfEven(d: number): number {
  const q = Math.floor(d / 2);
  return d % 2 === 0 ? q : q + (q & 1);
}

/**
 * torchvision's center_crop: an axis longer than the crop loses round((n - c) / 2) (Python's
 * round) from its start; a shorter one is padded with zeros, the extra pixel going after.
 */
export function centerCrop(img: RgbImage, width: number, height: number): RgbImage {
  const offset = (n: number, c: number): number => (c > n ? -((c - n) >> 1) : halfEven(n - c));
  const x0 = offset(img.width, width);
  const y0 = offset(img.height, height);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = y + y0;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + x0;
      if (sx < 0 || sx >= img.width) continue;
      const p = (sy * img.width + sx) * 3;
      const o = (y * width + x) * 3;
      out[o] = img.data[p]!;
      out[o + 1] = img.data[p + 1]!;
      out[o + 2] = img.data[p + 2]!;
    }
  }
  return { width, height, data: out };
}

/**
 * transformers' `get_resize_output_image_size(..., default_to_square=False)`: the short side
 * becomes `shortestEdge`, the long side int(shortestEdge * long / short).
 */
export function shortestEdgeSize(width: number, height: number, shortestEdge: number): { width: number; height: number } {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((shortestEdge * long) / short);
  return width <= height ? { width: shortestEdge, height: newLong } : { width: newLong, height: shortestEdge };
}

// ---------------------------------------------------------------------------------------------
// Processor configuration

export type ImageFamily = 'clip' | 'siglip' | 'vit' | 'blip';

export type ResizeTarget = { readonly shortestEdge: number } | { readonly height: number; readonly width: number };
type Triple = readonly [number, number, number];

export interface ImageProcessorConfig {
  readonly doResize: boolean;
  readonly size: ResizeTarget;
  readonly resample: Resample;
  readonly doCenterCrop: boolean;
  readonly cropSize: { readonly height: number; readonly width: number };
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: Triple;
  readonly imageStd: Triple;
}

const OPENAI_CLIP_MEAN: Triple = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: Triple = [0.26862954, 0.26130258, 0.27577711];
const HALF: Triple = [0.5, 0.5, 0.5];

/** transformers' defaults for each processor class, used for every field a config leaves out. */
export const FAMILY_DEFAULTS: Readonly<Record<ImageFamily, ImageProcessorConfig>> = {
  clip: {
    doResize: true, size: { shortestEdge: 224 }, resample: 'bicubic', doCenterCrop: true, cropSize: { height: 224, width: 224 },
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, imageMean: OPENAI_CLIP_MEAN, imageStd: OPENAI_CLIP_STD,
  },
  siglip: {
    doResize: true, size: { height: 224, width: 224 }, resample: 'bicubic', doCenterCrop: false, cropSize: { height: 224, width: 224 },
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, imageMean: HALF, imageStd: HALF,
  },
  vit: {
    doResize: true, size: { height: 224, width: 224 }, resample: 'bilinear', doCenterCrop: false, cropSize: { height: 224, width: 224 },
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, imageMean: HALF, imageStd: HALF,
  },
  blip: {
    doResize: true, size: { height: 384, width: 384 }, resample: 'bicubic', doCenterCrop: false, cropSize: { height: 384, width: 384 },
    doRescale: true, rescaleFactor: 1 / 255, doNormalize: true, imageMean: OPENAI_CLIP_MEAN, imageStd: OPENAI_CLIP_STD,
  },
};

const PROCESSOR_FAMILY: Readonly<Record<string, ImageFamily>> = { CLIP: 'clip', Siglip: 'siglip', ViT: 'vit', Blip: 'blip' };
const MODEL_TYPE_FAMILY: Readonly<Record<string, ImageFamily>> = {
  clip: 'clip', clip_vision_model: 'clip', siglip: 'siglip', siglip_vision_model: 'siglip',
  vit: 'vit', vit_mae: 'vit', blip: 'blip', blip_vision_model: 'blip',
};

/** The family of a model_type from config.json (vit_mae uses ViT's processor), or undefined. */
export function familyOfModelType(modelType: string): ImageFamily | undefined {
  return Object.prototype.hasOwnProperty.call(MODEL_TYPE_FAMILY, modelType) ? MODEL_TYPE_FAMILY[modelType] : undefined;
}

/** The family named by `image_processor_type` / `feature_extractor_type`, e.g. CLIPImageProcessorFast. */
function familyOfProcessorType(type: string): ImageFamily | undefined {
  const m = /^(.*?)(ImageProcessor|FeatureExtractor)(Fast)?$/.exec(type);
  return m && Object.prototype.hasOwnProperty.call(PROCESSOR_FAMILY, m[1]!) ? PROCESSOR_FAMILY[m[1]!] : undefined;
}

type Json = Record<string, unknown>;

function positiveInt(v: unknown, what: string, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${where}: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function parseSize(v: unknown, squareByDefault: boolean, what: string, where: string): ResizeTarget {
  if (typeof v === 'number') {
    const n = positiveInt(v, what, where);
    return squareByDefault ? { height: n, width: n } : { shortestEdge: n };
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const d = v as Json;
    const keys = Object.keys(d).filter((k) => d[k] !== null && d[k] !== undefined).sort().join(',');
    if (keys === 'height,width') return { height: positiveInt(d.height, `${what}.height`, where), width: positiveInt(d.width, `${what}.width`, where) };
    if (keys === 'shortest_edge') return { shortestEdge: positiveInt(d.shortest_edge, `${what}.shortest_edge`, where) };
  }
  throw new Error(`${where}: unsupported ${what} ${JSON.stringify(v)} (expected {"height", "width"}, {"shortest_edge"} or an integer)`);
}

function parseTriple(v: unknown, what: string, where: string): Triple {
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  if (ok(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every(ok)) return [v[0]!, v[1]!, v[2]!];
  throw new Error(`${where}: ${what} must be a number or three numbers, got ${JSON.stringify(v)}`);
}

function parseBool(v: unknown, fallback: boolean, what: string, where: string): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new Error(`${where}: ${what} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Reads a preprocessor_config.json object. The family comes from `family` if given, otherwise
 * from `image_processor_type` (or the older `feature_extractor_type`); fields left out take
 * that family's defaults. `where` names the source in errors.
 */
export function parsePreprocessorConfig(json: unknown, family?: ImageFamily, where = 'preprocessor_config.json'): { family: ImageFamily; config: ImageProcessorConfig } {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${where}: expected a JSON object`);
  const j = json as Json;
  const type = [j.image_processor_type, j.feature_extractor_type].find((t): t is string => typeof t === 'string');
  const fam = family ?? (type !== undefined ? familyOfProcessorType(type) : undefined);
  if (!fam) {
    throw new Error(`${where}: unknown image processor ${JSON.stringify(type ?? null)}; known: ${Object.keys(PROCESSOR_FAMILY).map((k) => `${k}ImageProcessor`).join(', ')} (or name the family)`);
  }
  const d = FAMILY_DEFAULTS[fam];
  let resample = d.resample;
  if (j.resample !== undefined && j.resample !== null) {
    const r = j.resample;
    if (typeof r !== 'number' || !Object.prototype.hasOwnProperty.call(PIL_RESAMPLE, r)) {
      const name = typeof r === 'number' ? PIL_RESAMPLE_NAMES[r] : undefined;
      throw new Error(`${where}: unsupported resample ${JSON.stringify(r)}${name ? ` (${name})` : ''}; supported: 0 (NEAREST), 2 (BILINEAR), 3 (BICUBIC)`);
    }
    resample = PIL_RESAMPLE[r]!;
  }
  let rescaleFactor = d.rescaleFactor;
  if (j.rescale_factor !== undefined && j.rescale_factor !== null) {
    if (typeof j.rescale_factor !== 'number' || !(j.rescale_factor > 0)) throw new Error(`${where}: rescale_factor must be a positive number, got ${JSON.stringify(j.rescale_factor)}`);
    rescaleFactor = j.rescale_factor;
  }
  const cropSize = j.crop_size === undefined || j.crop_size === null ? d.cropSize : parseSize(j.crop_size, true, 'crop_size', where);
  if (!('height' in cropSize)) throw new Error(`${where}: crop_size needs a height and a width, got ${JSON.stringify(j.crop_size)}`);
  return {
    family: fam,
    config: {
      doResize: parseBool(j.do_resize, d.doResize, 'do_resize', where),
      // Only CLIP's processor reads a bare integer size as the shortest edge.
      size: j.size === undefined || j.size === null ? d.size : parseSize(j.size, fam !== 'clip', 'size', where),
      resample,
      doCenterCrop: parseBool(j.do_center_crop, d.doCenterCrop, 'do_center_crop', where),
      cropSize,
      doRescale: parseBool(j.do_rescale, d.doRescale, 'do_rescale', where),
      rescaleFactor,
      doNormalize: parseBool(j.do_normalize, d.doNormalize, 'do_normalize', where),
      imageMean: j.image_mean === undefined || j.image_mean === null ? d.imageMean : parseTriple(j.image_mean, 'image_mean', where),
      imageStd: j.image_std === undefined || j.image_std === null ? d.imageStd : parseTriple(j.image_std, 'image_std', where),
    },
  };
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${describe(e)}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON: ${describe(e)}`, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------
// The processor

export interface PreprocessOptions extends Omit<DecodeOptions, 'name'> {
  backend?: Backend;
  /** Images decoded at once (default 4, sharp's worker count): each holds a full-size bitmap. */
  concurrency?: number;
}

/** Pixel values of one image: channels first, float32. */
export interface PixelValues {
  readonly height: number;
  readonly width: number;
  /** [3, height, width] */
  readonly data: Float32Array;
}

/**
 * An image processor of transformers (CLIP, SigLIP, ViT, BLIP): resize (to a fixed size, or the
 * shortest edge to a length), optional centre crop, then rescale and normalise, giving the
 * model's `pixel_values`, equal to transformers' fast processors to the last bit.
 */
export class ImageProcessor {
  readonly config: ImageProcessorConfig;

  constructor(readonly family: ImageFamily, config: Partial<ImageProcessorConfig> = {}) {
    this.config = { ...FAMILY_DEFAULTS[family], ...config };
    const c = this.config;
    const sizes: [unknown, string][] = 'height' in c.size
      ? [[c.size.height, 'size.height'], [c.size.width, 'size.width']]
      : [[c.size.shortestEdge, 'size.shortestEdge']];
    sizes.push([c.cropSize.height, 'cropSize.height'], [c.cropSize.width, 'cropSize.width']);
    for (const [v, what] of sizes) positiveInt(v, what, 'ImageProcessor');
    if (!(['nearest', 'bilinear', 'bicubic'] as const).includes(c.resample)) throw new Error(`ImageProcessor: unknown resample ${JSON.stringify(c.resample)}`);
    if (c.doNormalize && c.imageStd.some((v) => v === 0)) throw new Error(`ImageProcessor: image_std has a zero ([${c.imageStd.join(', ')}])`);
  }

  /** A processor from a preprocessor_config.json object (see parsePreprocessorConfig). */
  static fromConfig(json: unknown, family?: ImageFamily, where?: string): ImageProcessor {
    const p = parsePreprocessorConfig(json, family, where);
    return new ImageProcessor(p.family, p.config);
  }

  /**
   * The processor of a Hugging Face model folder: its preprocessor_config.json when there is
   * one; otherwise the family's defaults (the family given, or config.json's model_type), at
   * the model's image_size from config.json when it states one.
   */
  static fromPretrained(dir: string, family?: ImageFamily): ImageProcessor {
    const pre = path.join(dir, 'preprocessor_config.json');
    const cfgFile = path.join(dir, 'config.json');
    const model = fs.existsSync(cfgFile) ? (readJson(cfgFile) as Json) : null;
    const fam = family ?? (model && typeof model.model_type === 'string' ? familyOfModelType(model.model_type) : undefined);
    if (fs.existsSync(pre)) return ImageProcessor.fromConfig(readJson(pre), fam, pre);
    if (!fam) throw new Error(`${dir}: no preprocessor_config.json, and no model_type in config.json that names an image family`);
    const vision = model && model.vision_config && typeof model.vision_config === 'object' ? (model.vision_config as Json) : model;
    const size = vision?.image_size;
    if (size === undefined) return new ImageProcessor(fam);
    return ImageProcessor.atSize(fam, positiveInt(size, 'image_size', cfgFile));
  }

  /** The family's defaults for a model that takes `n` x `n` images (CLIP: shortest edge n, crop n x n). */
  static atSize(family: ImageFamily, n: number): ImageProcessor {
    const d = FAMILY_DEFAULTS[family];
    return new ImageProcessor(family, {
      size: 'height' in d.size ? { height: n, width: n } : { shortestEdge: n },
      cropSize: { height: n, width: n },
    });
  }

  /** The size of every output, or null when it depends on the input (shortest-edge resize, no crop). */
  get outputSize(): { height: number; width: number } | null {
    const c = this.config;
    if (c.doCenterCrop) return { height: c.cropSize.height, width: c.cropSize.width };
    if (c.doResize && 'height' in c.size) return { height: c.size.height, width: c.size.width };
    return null;
  }

  /** Resize and crop on 8-bit RGB, as the processor does before converting to floats. */
  transform(img: RgbImage): RgbImage {
    const c = this.config;
    let out = img;
    if (c.doResize) {
      const s = 'height' in c.size ? c.size : shortestEdgeSize(img.width, img.height, c.size.shortestEdge);
      out = resizeImage(out, s.width, s.height, c.resample);
    }
    if (c.doCenterCrop) out = centerCrop(out, c.cropSize.width, c.cropSize.height);
    return out;
  }

  /** Pixel values of one decoded image. */
  pixelValues(img: RgbImage): PixelValues {
    const t = this.transform(img);
    const data = new Float32Array(3 * t.width * t.height);
    this.normalise(t, data, 0);
    return { height: t.height, width: t.width, data };
  }

  /** Writes the [3, H, W] float values of a transformed image into `out` at `offset`. */
  private normalise(t: RgbImage, out: Float32Array, offset: number): void {
    const c = this.config;
    const plane = t.width * t.height;
    const px = t.data;
    const f = Math.fround;
    // transformers' fast processors fold rescaling into the normalisation, in float32:
    // (x - mean/factor) / (std/factor), with mean/factor and std/factor rounded to float32.
    const inv = c.doRescale ? f(1 / c.rescaleFactor) : 1;
    const r = f(c.rescaleFactor);
    for (let ch = 0; ch < 3; ch++) {
      const base = offset + ch * plane;
      if (c.doNormalize) {
        const m = f(f(c.imageMean[ch]!) * inv);
        const s = f(f(c.imageStd[ch]!) * inv);
        for (let i = 0; i < plane; i++) out[base + i] = f(px[i * 3 + ch]! - m) / s;
      } else if (c.doRescale) {
        for (let i = 0; i < plane; i++) out[base + i] = px[i * 3 + ch]! * r;
      } else {
        for (let i = 0; i < plane; i++) out[base + i] = px[i * 3 + ch]!;
      }
    }
  }

  /**
   * Decodes and preprocesses images (paths or encoded bytes) into `pixel_values`, a float32
   * tensor [B, 3, H, W]. All images of a batch must come out the same size.
   */
  async preprocess(inputs: ImageInput | readonly ImageInput[], opts: PreprocessOptions = {}): Promise<Tensor> {
    const list = Array.isArray(inputs) ? (inputs as readonly ImageInput[]) : [inputs as ImageInput];
    if (list.length === 0) throw new Error('ImageProcessor.preprocess: no images');
    const name = (x: ImageInput, i: number): string => (typeof x === 'string' ? x : `<buffer ${i}>`);
    const ready: RgbImage[] = new Array(list.length);
    let next = 0;
    // Each worker drops its full-size decode once transformed, so a batch of large photos never
    // holds more than `concurrency` of them.
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const i = next++;
        ready[i] = this.transform(await decodeImage(list[i]!, { name: name(list[i]!, i), autoOrient: opts.autoOrient }));
      }
    };
    const concurrency = Math.max(1, Math.min(opts.concurrency ?? 4, list.length));
    await Promise.all(Array.from({ length: concurrency }, worker));
    const { height, width } = ready[0]!;
    for (let i = 1; i < ready.length; i++) {
      if (ready[i]!.height !== height || ready[i]!.width !== width) {
        throw new Error(`ImageProcessor.preprocess: ${name(list[i]!, i)} comes out ${ready[i]!.height}x${ready[i]!.width}, but ${name(list[0]!, 0)} ${height}x${width}; a batch needs one size (resize to a fixed size or centre crop)`);
      }
    }
    const per = 3 * height * width;
    const data = new Float32Array(list.length * per);
    ready.forEach((t, i) => this.normalise(t, data, i * per));
    return tensor(data, { shape: [list.length, 3, height, width], backend: opts.backend });
  }
}
