import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import {
  ImageProcessor, centerCrop, decodeImage, parsePreprocessorConfig, resizeImage, shortestEdgeSize,
} from '../../src/data/image.js';
import type { RgbImage } from '../../src/data/image.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { randInt, rng, findShared, sharedNotFound } from '../helpers.js';

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-img-'));
process.on('exit', () => fs.rmSync(tmpDir, { recursive: true, force: true }));
const tmpFile = (name: string, bytes: Uint8Array): string => {
  const f = path.join(tmpDir, name);
  fs.writeFileSync(f, bytes);
  return f;
};

/** The HF fixtures folder, or null when shared/ is absent. */
const findFixtures = (): string | null => findShared('fixtures/hf', 'README.md');

// ---------------------------------------------------------------------------------------------
// Parity with transformers on real photos

// The settings meta.json describes, written as transformers saves them.
const FIXTURE_CONFIGS: Record<string, object> = {
  clip: {
    image_processor_type: 'CLIPImageProcessorFast', do_resize: true, size: { shortest_edge: 64 }, resample: 3,
    do_center_crop: true, crop_size: { height: 64, width: 64 }, do_rescale: true, rescale_factor: 0.00392156862745098,
    do_normalize: true, image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  },
  siglip: {
    image_processor_type: 'SiglipImageProcessor', size: { height: 64, width: 64 }, resample: 3,
    image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
  },
  vit: { image_processor_type: 'ViTImageProcessor', size: { height: 64, width: 64 }, resample: 2 },
};

test('matches transformers\' CLIP, SigLIP and ViT processors on three photos', async (t) => {
  const dir = findFixtures();
  if (!dir) return t.skip(sharedNotFound());
  const pre = path.join(dir, 'preprocess');
  const { tensors } = loadSafetensors(path.join(pre, 'pixel_values.safetensors'));
  const photos = ['astronaut', 'chelsea', 'coffee'];
  for (const [family, cfg] of Object.entries(FIXTURE_CONFIGS)) {
    const proc = ImageProcessor.fromConfig(cfg);
    assert.equal(proc.family, family);
    const x = await proc.preprocess(photos.map((p) => path.join(pre, `${p}.png`)));
    assert.deepEqual(x.shape, [3, 3, 64, 64]);
    assert.equal(x.dtype, 'float32');
    const got = x.data() as Float32Array;
    photos.forEach((photo, b) => {
      const ref = tensors[`${photo}.${family}`]!;
      assert.deepEqual(ref.shape, [1, 3, 64, 64]);
      const want = ref.data as Float32Array;
      let sum = 0;
      let max = 0;
      for (let i = 0; i < want.length; i++) {
        const e = Math.abs(got[b * want.length + i]! - want[i]!);
        sum += e;
        max = Math.max(max, e);
      }
      const mae = sum / want.length;
      console.log(`# ${family} ${photo}: mean abs error ${mae.toExponential(2)}, max ${max.toExponential(2)}`);
      assert.ok(mae <= 0.01, `${family} ${photo}: mean abs error ${mae}`);
      // Stricter than asked: the same 8-bit pixels as torchvision, normalised in float32 as it does.
      assert.ok(max <= 1e-6, `${family} ${photo}: max abs error ${max}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Decoding

/** A W x H image of 8 flat colours in 4x4 blocks, so lossless and palette encoders keep it exactly. */
function blocks(width: number, height: number, seed = 1): Uint8Array {
  const r = rng(seed);
  const palette = Array.from({ length: 8 }, () => [randInt(r, 0, 255), randInt(r, 0, 255), randInt(r, 0, 255)]);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = palette[((x >> 2) * 3 + (y >> 2) * 5) % 8]!;
      out.set(c, (y * width + x) * 3);
    }
  }
  return out;
}

const rawInput = (data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) =>
  sharp(data, { raw: { width, height, channels } });

test('decodes PNG, WebP, GIF and JPEG files to RGB', async () => {
  const W = 19, H = 13;
  const src = blocks(W, H);
  const encoders: [string, (s: Sharp) => Sharp, number][] = [
    ['png', (s) => s.png(), 0],
    ['webp', (s) => s.webp({ lossless: true }), 0],
    ['gif', (s) => s.gif({ dither: 0 }), 0],
    ['jpg', (s) => s.jpeg({ quality: 100, chromaSubsampling: '4:4:4' }), 3],
  ];
  for (const [ext, encode, tolerance] of encoders) {
    const file = tmpFile(`blocks.${ext}`, await encode(rawInput(src, W, H, 3)).toBuffer());
    const img = await decodeImage(file);
    assert.equal(img.width, W, ext);
    assert.equal(img.height, H, ext);
    assert.equal(img.data.length, W * H * 3, ext);
    let sum = 0;
    for (let i = 0; i < src.length; i++) sum += Math.abs(img.data[i]! - src[i]!);
    const mean = sum / src.length;
    if (tolerance === 0) assert.deepEqual(img.data, src, `${ext} is lossless`);
    else assert.ok(mean < tolerance, `${ext}: mean abs difference ${mean}`);
  }
});

test('grey, grey+alpha, RGBA, palette and 16-bit images become RGB as PIL\'s convert(\'RGB\') makes them', async () => {
  const W = 11, H = 7, n = W * H;
  const r = rng(7);
  const grey = Uint8Array.from({ length: n }, () => randInt(r, 0, 255));
  const alpha = Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : randInt(r, 0, 255)));
  const rgb = Uint8Array.from({ length: 3 * n }, () => randInt(r, 0, 255));
  const replicated = Uint8Array.from({ length: 3 * n }, (_, j) => grey[Math.floor(j / 3)]!);

  const g = await decodeImage(tmpFile('grey.png', await rawInput(grey, W, H, 1).png().toBuffer()));
  assert.deepEqual(g.data, replicated);

  const ga = Uint8Array.from({ length: 2 * n }, (_, j) => (j % 2 ? alpha : grey)[j >> 1]!);
  const gaPng = await rawInput(ga, W, H, 2).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(gaPng).metadata()).channels, 2);
  assert.deepEqual((await decodeImage(gaPng)).data, replicated, 'alpha dropped, grey replicated');

  // RGB under alpha 0 too: alpha is dropped, never composited or premultiplied.
  const rgba = Uint8Array.from({ length: 4 * n }, (_, j) => (j % 4 === 3 ? alpha[j >> 2]! : rgb[(j >> 2) * 3 + (j % 4)]!));
  const rgbaPng = await rawInput(rgba, W, H, 4).png().toBuffer();
  assert.equal((await sharp(rgbaPng).metadata()).channels, 4);
  assert.deepEqual((await decodeImage(tmpFile('rgba.png', rgbaPng))).data, rgb);

  const src = blocks(W, H, 3);
  const palettePng = await rawInput(src, W, H, 3).png({ palette: true, dither: 0 }).toBuffer();
  assert.equal((await sharp(palettePng).metadata()).isPalette, true);
  assert.deepEqual((await decodeImage(palettePng)).data, src);

  // PIL reads 16-bit RGB PNGs by their high bytes.
  const deep = Uint16Array.from({ length: 3 * n }, () => randInt(r, 0, 65535));
  const deepPng = await sharp(deep, { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
  assert.equal((await sharp(deepPng).metadata()).depth, 'ushort');
  assert.deepEqual((await decodeImage(deepPng)).data, Uint8Array.from(deep, (v) => v >> 8));
});

test('EXIF orientation is applied unless turned off', async () => {
  const W = 8, H = 4;
  const jpg = await rawInput(blocks(W, H), W, H, 3).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const turned = await decodeImage(jpg);
  assert.deepEqual([turned.width, turned.height], [H, W]);
  const asStored = await decodeImage(jpg, { autoOrient: false });
  assert.deepEqual([asStored.width, asStored.height], [W, H]);
});

test('corrupt, truncated, empty and missing files give errors naming the file', async () => {
  // Noise, so that the pixel data fills most of each file and the cuts fall inside it.
  const W = 24, H = 16;
  const r = rng(3);
  const src = Uint8Array.from({ length: W * H * 3 }, () => randInt(r, 0, 255));
  const encoded: [string, Buffer][] = [
    ['png', await rawInput(src, W, H, 3).png().toBuffer()],
    ['jpg', await rawInput(src, W, H, 3).jpeg().toBuffer()],
    ['webp', await rawInput(src, W, H, 3).webp({ lossless: true }).toBuffer()],
    ['gif', await rawInput(src, W, H, 3).gif().toBuffer()],
  ];
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [ext, bytes] of encoded) {
    for (const frac of [0.5, 0.9]) {
      const file = tmpFile(`truncated-${frac}.${ext}`, bytes.subarray(0, Math.floor(bytes.length * frac)));
      await assert.rejects(decodeImage(file), new RegExp(`cannot decode ${escape(file)}: `), `${ext} cut to ${frac}`);
    }
    const garbage = Buffer.from(bytes);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 17) & 255;
    const file = tmpFile(`garbage.${ext}`, garbage);
    await assert.rejects(decodeImage(file), new RegExp(`cannot decode ${escape(file)}: `), `${ext} garbage`);
  }
  // A PNG whose compressed pixel data is damaged (its signature and header intact).
  const png = Buffer.from(encoded[0]![1]);
  for (let i = png.length >> 1; i < png.length - 12; i++) png[i]! ^= 0xa5;
  const damaged = tmpFile('damaged.png', png);
  await assert.rejects(decodeImage(damaged), new RegExp(`cannot decode ${escape(damaged)}: `));

  const empty = tmpFile('empty.png', new Uint8Array(0));
  await assert.rejects(decodeImage(empty), new RegExp(`${escape(empty)} is empty`));
  const missing = path.join(tmpDir, 'no-such-photo.jpg');
  await assert.rejects(decodeImage(missing), new RegExp(`cannot read ${escape(missing)}: .*ENOENT`));
  await assert.rejects(decodeImage(Buffer.from('not an image'), { name: 'upload #3' }), /cannot decode upload #3: /);

  const proc = new ImageProcessor('vit');
  const good = tmpFile('good.png', encoded[0]![1]);
  await assert.rejects(proc.preprocess([good, missing]), new RegExp(escape(missing)));
  await assert.rejects(proc.preprocess([good, Buffer.from('junk')]), /cannot decode <buffer 1>/);
});

// ---------------------------------------------------------------------------------------------
// Resizing and cropping

/** Antialiased separable resampling written from its definition, in float64, never rounded to integers. */
function referenceResize(img: RgbImage, width: number, height: number, resample: 'bilinear' | 'bicubic'): Float64Array {
  const kernel = (x: number): number => {
    const a = -0.5;
    x = Math.abs(x);
    if (resample === 'bilinear') return Math.max(0, 1 - x);
    if (x < 1) return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1;
    if (x < 2) return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a;
    return 0;
  };
  const weights = (n: number, m: number): number[][] => {
    const scale = n / m;
    const stretch = Math.max(scale, 1);
    return Array.from({ length: m }, (_, i) => {
      const center = (i + 0.5) * scale;
      const w = Array.from({ length: n }, (_, x) => kernel((x + 0.5 - center) / stretch));
      const total = w.reduce((a, b) => a + b, 0);
      return w.map((v) => v / total);
    });
  };
  // Horizontal pass, then vertical, each clamped to 0..255 as an 8-bit image between them is.
  const clamp = (v: number) => Math.min(255, Math.max(0, v));
  const pass = (src: Float64Array, w: number, h: number, ow: number, oh: number, horizontal: boolean): Float64Array => {
    const k = horizontal ? (ow === w ? null : weights(w, ow)) : (oh === h ? null : weights(h, oh));
    if (!k) return src;
    const out = new Float64Array(ow * oh * 3);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          const row = k[horizontal ? x : y]!;
          for (let j = 0; j < row.length; j++) s += row[j]! * src[((horizontal ? y * w + j : j * w + x) * 3) + c]!;
          out[(y * ow + x) * 3 + c] = clamp(s);
        }
      }
    }
    return out;
  };
  const mid = pass(Float64Array.from(img.data), img.width, img.height, width, img.height, true);
  return pass(mid, width, img.height, width, height, false);
}

test('resizing agrees with antialiased resampling from its definition, within rounding', () => {
  const r = rng(11);
  for (let trial = 0; trial < 24; trial++) {
    const w = randInt(r, 1, 40), h = randInt(r, 1, 40);
    const img = { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => randInt(r, 0, 255)) };
    // Down, up, one axis only, and to a single pixel.
    const pick = () => [randInt(r, 1, 12), randInt(r, 13, 60), w, h][randInt(r, 0, 3)]!;
    const ow = pick(), oh = trial % 5 === 0 ? h : pick();
    const resample = trial % 2 ? 'bicubic' : 'bilinear';
    const got = resizeImage(img, ow, oh, resample);
    assert.equal(got.data.length, ow * oh * 3);
    const want = referenceResize(img, ow, oh, resample);
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got.data[i]! - want[i]!));
    // The 8-bit intermediate and final rounding: at most half a level each, widened by the negative lobes.
    assert.ok(max <= 1.5, `${resample} ${w}x${h} -> ${ow}x${oh}: max difference ${max}`);
  }
});

test('resizing keeps flat images flat, leaves equal sizes alone and takes nearest pixels exactly', () => {
  const img = { width: 23, height: 17, data: new Uint8Array(23 * 17 * 3).fill(200) };
  for (const resample of ['bilinear', 'bicubic'] as const) {
    for (const [w, h] of [[7, 5], [64, 3], [23, 40]] as const) {
      const out = resizeImage(img, w, h, resample);
      assert.ok(out.data.every((v) => Math.abs(v - 200) <= 1), `${resample} ${w}x${h}`);
    }
  }
  const r = rng(5);
  const noisy = { width: 9, height: 6, data: Uint8Array.from({ length: 9 * 6 * 3 }, () => randInt(r, 0, 255)) };
  assert.equal(resizeImage(noisy, 9, 6, 'bicubic'), noisy);
  const near = resizeImage(noisy, 4, 13, 'nearest');
  for (let y = 0; y < 13; y++) {
    for (let x = 0; x < 4; x++) {
      const sx = Math.floor(((x + 0.5) * 9) / 4), sy = Math.floor(((y + 0.5) * 6) / 13);
      for (let c = 0; c < 3; c++) assert.equal(near.data[(y * 4 + x) * 3 + c], noisy.data[(sy * 9 + sx) * 3 + c]);
    }
  }
  assert.throws(() => resizeImage(noisy, 0, 3, 'bilinear'), /width must be a positive integer/);
});

test('centre crop rounds half offsets to even and pads short sides with zeros', () => {
  // Each pixel holds its own coordinates.
  const coords = (w: number, h: number): RgbImage => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x, y, 1], (y * w + x) * 3);
    return { width: w, height: h, data };
  };
  const origin = (img: RgbImage): [number, number] => [img.data[0]!, img.data[1]!];
  assert.deepEqual(origin(centerCrop(coords(97, 70), 64, 64)), [16, 3]); // 16.5 -> 16, 3
  assert.deepEqual(origin(centerCrop(coords(99, 69), 64, 64)), [18, 2]); // 17.5 -> 18, 2.5 -> 2
  const padded = centerCrop(coords(61, 70), 64, 66);
  // 3 columns short: 1 on the left, 2 on the right; the rows are cropped by 2.
  assert.deepEqual(Array.from(padded.data.subarray(0, 3)), [0, 0, 0]);
  assert.deepEqual(Array.from(padded.data.subarray(3, 6)), [0, 2, 1]);
  assert.deepEqual(Array.from(padded.data.subarray(61 * 3, 62 * 3)), [60, 2, 1]);
  assert.deepEqual(Array.from(padded.data.subarray(62 * 3, 64 * 3)), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(shortestEdgeSize(451, 300, 64), { width: 96, height: 64 });
  assert.deepEqual(shortestEdgeSize(300, 451, 224), { width: 224, height: 336 });
});

// ---------------------------------------------------------------------------------------------
// Configuration

test('preprocessor configs: families, legacy integer sizes, defaults and errors', () => {
  const clip = parsePreprocessorConfig({ feature_extractor_type: 'CLIPFeatureExtractor', size: 336, crop_size: 336 });
  assert.equal(clip.family, 'clip');
  assert.deepEqual(clip.config.size, { shortestEdge: 336 });
  assert.deepEqual(clip.config.cropSize, { height: 336, width: 336 });
  assert.equal(clip.config.resample, 'bicubic');
  const vit = parsePreprocessorConfig({ feature_extractor_type: 'ViTFeatureExtractor', size: 384 });
  assert.deepEqual(vit.config.size, { height: 384, width: 384 });
  assert.equal(vit.config.resample, 'bilinear');
  assert.equal(vit.config.doCenterCrop, false);
  const siglip = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessorFast' });
  assert.deepEqual(siglip.config, new ImageProcessor('siglip').config);
  assert.deepEqual(parsePreprocessorConfig({ image_processor_type: 'BlipImageProcessor' }).config.size, { height: 384, width: 384 });
  assert.deepEqual(parsePreprocessorConfig({ image_mean: 0.25 }, 'vit').config.imageMean, [0.25, 0.25, 0.25]);

  assert.throws(() => parsePreprocessorConfig({ image_processor_type: 'DetrImageProcessor' }), /unknown image processor "DetrImageProcessor"/);
  assert.throws(() => parsePreprocessorConfig({ resample: 1 }, 'clip', 'x.json'), /x\.json: unsupported resample 1 \(LANCZOS\)/);
  assert.throws(() => parsePreprocessorConfig({ size: { longest_edge: 5 } }, 'vit'), /unsupported size/);
  assert.throws(() => parsePreprocessorConfig({ image_std: [0.5, 0.5] }, 'vit'), /image_std must be/);
  assert.throws(() => ImageProcessor.fromConfig({ image_std: [0.5, 0, 0.5] }, 'vit'), /image_std has a zero/);
  assert.throws(() => parsePreprocessorConfig({ do_resize: 'yes' }, 'vit'), /do_resize must be a boolean/);
});

test('fromPretrained reads preprocessor_config.json, or family defaults at the model\'s image size', () => {
  const withPre = fs.mkdtempSync(path.join(tmpDir, 'pre-'));
  fs.writeFileSync(path.join(withPre, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'SiglipImageProcessor', size: { height: 48, width: 40 } }));
  const a = ImageProcessor.fromPretrained(withPre);
  assert.equal(a.family, 'siglip');
  assert.deepEqual(a.outputSize, { height: 48, width: 40 });

  const bare = fs.mkdtempSync(path.join(tmpDir, 'bare-'));
  fs.writeFileSync(path.join(bare, 'config.json'), JSON.stringify({ model_type: 'clip', vision_config: { image_size: 32 } }));
  const b = ImageProcessor.fromPretrained(bare);
  assert.equal(b.family, 'clip');
  assert.deepEqual(b.config.size, { shortestEdge: 32 });
  assert.deepEqual(b.outputSize, { height: 32, width: 32 });
  fs.writeFileSync(path.join(bare, 'config.json'), JSON.stringify({ model_type: 'vit_mae', image_size: 48 }));
  const c = ImageProcessor.fromPretrained(bare);
  assert.equal(c.family, 'vit');
  assert.deepEqual(c.config.size, { height: 48, width: 48 });
  fs.writeFileSync(path.join(bare, 'config.json'), JSON.stringify({ model_type: 'bert' }));
  assert.throws(() => ImageProcessor.fromPretrained(bare), /no preprocessor_config\.json/);
  assert.equal(ImageProcessor.fromPretrained(bare, 'blip').family, 'blip');
});

test('preprocess batches images of one output size and refuses mixed sizes', async () => {
  const a = await rawInput(blocks(30, 20), 30, 20, 3).png().toBuffer();
  const b = await rawInput(blocks(20, 25), 20, 25, 3).png().toBuffer();
  const proc = new ImageProcessor('clip', { size: { shortestEdge: 16 }, cropSize: { height: 12, width: 14 } });
  const x = await proc.preprocess([a, b]);
  assert.deepEqual(x.shape, [2, 3, 12, 14]);
  const one = await proc.preprocess(b);
  assert.deepEqual(one.shape, [1, 3, 12, 14]);
  assert.deepEqual(one.data(), (x.data() as Float32Array).subarray(3 * 12 * 14));
  // Pixel values follow the formula from the 8-bit pixels the transform gives.
  const img = proc.transform(await decodeImage(b));
  const [m, s] = [proc.config.imageMean[1]!, proc.config.imageStd[1]!];
  const v = (one.data() as Float32Array)[12 * 14 + 5]!;
  assert.ok(Math.abs(v - (img.data[5 * 3 + 1]! / 255 - m) / s) < 1e-5);

  const noCrop = new ImageProcessor('clip', { size: { shortestEdge: 16 }, doCenterCrop: false });
  assert.equal(noCrop.outputSize, null);
  await assert.rejects(noCrop.preprocess([a, b]), /<buffer 1> comes out 20x16, but <buffer 0> 16x24/);
  await assert.rejects(proc.preprocess([]), /no images/);

  const raw = new ImageProcessor('vit', { size: { height: 4, width: 4 }, doNormalize: false, doRescale: false });
  const px = (await raw.preprocess(a)).data();
  assert.ok(px.every((p) => Number.isInteger(p) && p >= 0 && p <= 255));
});
