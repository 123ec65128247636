// Training-time image augmentation on 8-bit RGB, with every random choice drawn from a Generator
// the caller seeds per sample, so an augmented batch is a pure function of (seed, epoch, index).
import type { Generator } from '../tensor/random.js';
import { type RgbImage, type Resample, resizeImage } from './image.js';

/** A crop window: top-left corner and size, in pixels, inside the image. */
export interface CropBox {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** Python's round() (halves to even), as torchvision's int(round(...)) uses. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision's RandomResizedCrop.get_params: up to ten tries at a window of a random area
 * fraction in `scale` and log-uniform aspect ratio in `ratio` that fits the image; else the
 * central crop with the aspect ratio clamped into `ratio`.
 */
export function randomResizedCropBox(g: Generator, width: number, height: number, scale: readonly [number, number], ratio: readonly [number, number]): CropBox {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * g.uniform());
    const aspect = Math.exp(logLo + (logHi - logLo) * g.uniform());
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const y = g.int(0, height - h + 1);
      const x = g.int(0, width - w + 1);
      return { x, y, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = roundHalfEven(w / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(h * ratio[1]);
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), width: w, height: h };
}

export function cropImage(img: RgbImage, box: CropBox): RgbImage {
  const { x, y, width, height } = box;
  if (x < 0 || y < 0 || x + width > img.width || y + height > img.height) {
    throw new Error(`cropImage: window ${width}x${height} at (${x}, ${y}) leaves the ${img.width}x${img.height} image`);
  }
  if (x === 0 && y === 0 && width === img.width && height === img.height) return img;
  const out = new Uint8Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    const from = ((y + r) * img.width + x) * 3;
    out.set(img.data.subarray(from, from + width * 3), r * width * 3);
  }
  return { width, height, data: out };
}

/** RandomResizedCrop: a random window resized to width x height. */
export function randomResizedCrop(
  g: Generator, img: RgbImage, width: number, height: number, resample: Resample,
  scale: readonly [number, number], ratio: readonly [number, number] = [3 / 4, 4 / 3],
): RgbImage {
  return resizeImage(cropImage(img, randomResizedCropBox(g, img.width, img.height, scale, ratio)), width, height, resample);
}

export type PadMode = 'zero' | 'reflect';

/**
 * Pads by `pad` pixels on every side and crops a random window of the original size back (the
 * CIFAR / Fashion-MNIST augmentation); the padded image is never built, each output pixel reads
 * its source directly. 'reflect' mirrors without repeating the edge, as torch's reflect padding.
 */
export function padRandomCrop(g: Generator, img: RgbImage, pad: number, mode: PadMode = 'zero'): RgbImage {
  const { width, height } = img;
  if (mode === 'reflect' && (pad >= width || pad >= height)) throw new Error(`padRandomCrop: reflect padding ${pad} needs an image larger than that (${width}x${height})`);
  const dx = g.int(0, 2 * pad + 1) - pad;
  const dy = g.int(0, 2 * pad + 1) - pad;
  const out = new Uint8Array(width * height * 3);
  const reflect = (i: number, n: number): number => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  for (let y = 0; y < height; y++) {
    let sy = y + dy;
    if (sy < 0 || sy >= height) {
      if (mode === 'zero') continue;
      sy = reflect(sy, height);
    }
    for (let x = 0; x < width; x++) {
      let sx = x + dx;
      if (sx < 0 || sx >= width) {
        if (mode === 'zero') continue;
        sx = reflect(sx, width);
      }
      const p = (sy * width + sx) * 3;
      const o = (y * width + x) * 3;
      out[o] = img.data[p]!;
      out[o + 1] = img.data[p + 1]!;
      out[o + 2] = img.data[p + 2]!;
    }
  }
  return { width, height, data: out };
}

export function flipHorizontal(img: RgbImage): RgbImage {
  const { width, height } = img;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      const o = (y * width + (width - 1 - x)) * 3;
      out[o] = img.data[p]!;
      out[o + 1] = img.data[p + 1]!;
      out[o + 2] = img.data[p + 2]!;
    }
  }
  return { width, height, data: out };
}
