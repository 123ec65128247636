// What an MAE sees and what it paints back: per image the original, the masked input, the
// reconstruction, and the reconstruction with the visible patches pasted back, as 8-bit RGB
// pictures, and a PNG grid of them to watch pre-training progress.
//
// The decoder predicts pixel values in the processor's normalised units; with norm_pix_loss it
// predicts each patch normalised by its own mean and variance, so the prediction is taken back
// through the original patch's statistics first (as the MAE authors' visualisation does), then
// through the processor's normalisation to bytes.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ImageProcessor, type RgbImage } from '../data/image.js';
import type { MaskedImageModel } from '../models/family.js';
import { noGrad } from '../tensor/autograd.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** The byte dropped patches are painted with in the masked picture (mid grey). */
export const MASKED_GREY = 128;

/** One image's pictures, each at the model's image size. */
export interface MAEReconstruction {
  readonly original: RgbImage;
  /** The original with dropped patches grey (what the encoder saw). */
  readonly masked: RgbImage;
  /** The decoder's prediction for every patch. */
  readonly reconstruction: RgbImage;
  /** The prediction on dropped patches, the original on visible ones. */
  readonly reconstructionVisible: RgbImage;
  /** Per patch (row-major over the grid): 1 where it was dropped, 0 where kept. */
  readonly mask: Uint8Array;
}

export interface MAEReconstructionOptions {
  /** [B, patches]: which patches are kept (the smallest); fix it to show the same masks at every step. */
  noise?: Tensor | null;
  /** Draws the noise when none is given; default the global generator. */
  generator?: Generator;
  /** The processor that made the pixel values (its mean, std and rescaling are undone); default ViT's. */
  processor?: ImageProcessor;
}

/** Normalised value -> byte for one channel, the inverse of ImageProcessor's normalisation. */
function byteMapper(processor: ImageProcessor, channel: number): (v: number) => number {
  const c = processor.config;
  const f = Math.fround;
  // The same float32 constants the processor folds its rescale and normalisation into.
  const inv = c.doRescale ? f(1 / c.rescaleFactor) : 1;
  const scale = c.doNormalize ? f(f(c.imageStd[channel]!) * inv) : c.doRescale ? 1 / f(c.rescaleFactor) : 1;
  const shift = c.doNormalize ? f(f(c.imageMean[channel]!) * inv) : 0;
  return (v) => Math.min(255, Math.max(0, Math.round(v * scale + shift)));
}

/**
 * Runs the MAE on pixel values [B, C, H, W] (as its processor made them) in eval mode without
 * gradients, and gives each image's pictures. C may be 3, or 1 (shown as grey).
 */
export function maeReconstruction(model: MaskedImageModel, pixelValues: Tensor, opts: MAEReconstructionOptions = {}): MAEReconstruction[] {
  const { numChannels: C, imageSize: [H, W], patchSize: [ph, pw], normPixLoss } = model.patches;
  if (C !== 1 && C !== 3) throw new Error(`maeReconstruction: pictures need 1 or 3 channels, the model has ${C}`);
  if (pixelValues.ndim !== 4 || pixelValues.shape[1] !== C || pixelValues.shape[2] !== H || pixelValues.shape[3] !== W) {
    throw new Error(`maeReconstruction: pixel values must be [B, ${C}, ${H}, ${W}] for this model, got [${pixelValues.shape}]`);
  }
  const backend = model.parameters()[0]?.backend;
  const pixels = backend && pixelValues.backend !== backend ? pixelValues.to(backend) : pixelValues;
  const wasTraining = model.training;
  model.eval();
  let out: { logits: Tensor; mask: Tensor };
  try {
    out = noGrad(() => model.reconstruct(pixels, { noise: opts.noise, generator: opts.generator }));
  } finally {
    if (wasTraining) model.train();
  }
  const B = pixelValues.shape[0]!;
  const [gh, gw] = [Math.floor(H / ph), Math.floor(W / pw)];
  const L = gh * gw;
  const perPatch = ph * pw * C;
  const values = Float64Array.from(pixelValues.data() as ArrayLike<number>);
  const pred = Float64Array.from(out.logits.data() as ArrayLike<number>);
  const maskValues = out.mask.data() as ArrayLike<number>;
  const processor = opts.processor ?? new ImageProcessor('vit');
  const toByte = Array.from({ length: C }, (_, ch) => byteMapper(processor, ch));
  const plane = H * W;

  // Element k of a patch (ordered row, column, channel, as patchify orders it): its channel and
  // its pixel's offset from the patch's top-left pixel.
  const channelOf = new Int32Array(perPatch);
  const pixelOf = new Int32Array(perPatch);
  for (let k = 0; k < perPatch; k++) {
    channelOf[k] = k % C;
    pixelOf[k] = Math.floor(k / (C * pw)) * W + (Math.floor(k / C) % pw);
  }

  const rows: MAEReconstruction[] = [];
  const patch = new Float64Array(perPatch);
  for (let b = 0; b < B; b++) {
    const image = (): RgbImage => ({ width: W, height: H, data: new Uint8Array(plane * 3) });
    const [original, masked, reconstruction, reconstructionVisible] = [image(), image(), image(), image()];
    const mask = new Uint8Array(L);
    for (let l = 0; l < L; l++) {
      const dropped = maskValues[b * L + l]! > 0.5;
      mask[l] = dropped ? 1 : 0;
      const corner = Math.floor(l / gw) * ph * W + (l % gw) * pw;
      for (let k = 0; k < perPatch; k++) patch[k] = values[(b * C + channelOf[k]!) * plane + corner + pixelOf[k]!]!;
      let mean = 0;
      let std = 1;
      if (normPixLoss) {
        // The loss's target statistics: mean and unbiased variance + 1e-6.
        for (const v of patch) mean += v;
        mean /= perPatch;
        let ss = 0;
        for (const v of patch) ss += (v - mean) ** 2;
        std = Math.sqrt(ss / (perPatch - 1) + 1e-6);
      }
      for (let k = 0; k < perPatch; k++) {
        const ch = channelOf[k]!;
        const orig = toByte[ch]!(patch[k]!);
        const rec = toByte[ch]!(pred[(b * L + l) * perPatch + k]! * std + mean);
        const pixel = (corner + pixelOf[k]!) * 3;
        // A single channel fills all three of RGB.
        for (let rgb = C === 1 ? 0 : ch; rgb <= (C === 1 ? 2 : ch); rgb++) {
          original.data[pixel + rgb] = orig;
          masked.data[pixel + rgb] = dropped ? MASKED_GREY : orig;
          reconstruction.data[pixel + rgb] = rec;
          reconstructionVisible.data[pixel + rgb] = dropped ? rec : orig;
        }
      }
    }
    rows.push({ original, masked, reconstruction, reconstructionVisible, mask });
  }
  return rows;
}

export interface ReconstructionGridOptions {
  /** Background pixels between and around the pictures; default 2 (before scaling). */
  gap?: number;
  /** Whole-number upscaling of every picture (nearest neighbour); default the least that shows one at 64 px or more. */
  scale?: number;
  /** Background grey level, 0-255; default 255 (white). */
  background?: number;
}

/**
 * Writes one PNG: a row per image, columns original | masked | reconstruction |
 * reconstruction + visible. The file is written whole, then renamed into place, so a reader
 * never sees half a picture. Returns the PNG's size.
 */
export async function writeReconstructionGrid(file: string, rows: readonly MAEReconstruction[], opts: ReconstructionGridOptions = {}): Promise<{ width: number; height: number }> {
  if (rows.length === 0) throw new Error('writeReconstructionGrid: no rows to draw');
  const { width: w, height: h } = rows[0]!.original;
  const scale = opts.scale ?? Math.max(1, Math.ceil(64 / Math.max(w, h)));
  const gap = opts.gap ?? 2;
  const background = opts.background ?? 255;
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`writeReconstructionGrid: scale must be a positive integer, got ${scale}`);
  if (!Number.isInteger(gap) || gap < 0) throw new Error(`writeReconstructionGrid: gap must be a non-negative integer, got ${gap}`);
  if (!Number.isInteger(background) || background < 0 || background > 255) throw new Error(`writeReconstructionGrid: background must be an integer in 0-255, got ${background}`);
  const cw = w * scale;
  const ch = h * scale;
  const g = gap * scale;
  const columns = 4;
  const width = columns * cw + (columns + 1) * g;
  const height = rows.length * ch + (rows.length + 1) * g;
  const canvas = new Uint8Array(width * height * 3).fill(background);
  rows.forEach((row, r) => {
    [row.original, row.masked, row.reconstruction, row.reconstructionVisible].forEach((img, c) => {
      if (img.width !== w || img.height !== h) throw new Error(`writeReconstructionGrid: row ${r} column ${c} is ${img.width}x${img.height}, the first picture ${w}x${h}; all must match`);
      const x0 = g + c * (cw + g);
      const y0 = g + r * (ch + g);
      for (let y = 0; y < ch; y++) {
        const src = Math.floor(y / scale) * w;
        const dst = ((y0 + y) * width + x0) * 3;
        for (let x = 0; x < cw; x++) {
          const s = (src + Math.floor(x / scale)) * 3;
          canvas[dst + x * 3] = img.data[s]!;
          canvas[dst + x * 3 + 1] = img.data[s + 1]!;
          canvas[dst + x * 3 + 2] = img.data[s + 2]!;
        }
      }
    });
  });
  const png = await sharp(canvas, { raw: { width, height, channels: 3 } }).png().toBuffer();
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, png);
  fs.renameSync(tmp, file);
  return { width, height };
}
