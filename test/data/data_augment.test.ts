// Augmentations: RandomResizedCrop's window (torchvision's sampling rules), pad-and-crop as a
// shifted copy of the image, and horizontal flips.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cropImage, flipHorizontal, padRandomCrop, randomResizedCrop, randomResizedCropBox } from '../../src/data/augment.js';
import type { RgbImage } from '../../src/data/image.js';
import { Generator } from '../../src/tensor/random.js';

function image(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = 1 + ((i * 37) % 250); // never 0, so zero padding shows
  return { width, height, data };
}

test('RandomResizedCrop windows fit the image, with area and aspect ratio in range', () => {
  const scale: [number, number] = [0.2, 0.7];
  const ratio: [number, number] = [3 / 4, 4 / 3];
  const xs = new Set<number>();
  for (let s = 0; s < 300; s++) {
    const b = randomResizedCropBox(new Generator(s), 120, 90, scale, ratio);
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= 120 && b.y + b.height <= 90, JSON.stringify(b));
    // Rounding w and h to integers moves area and ratio a little off the drawn values.
    const area = (b.width * b.height) / (120 * 90);
    assert.ok(area > scale[0] * 0.93 && area < scale[1] * 1.07, `area ${area}`);
    const r = b.width / b.height;
    assert.ok(r > ratio[0] * 0.93 && r < ratio[1] * 1.07, `ratio ${r}`);
    xs.add(b.x);
  }
  assert.ok(xs.size > 20, 'positions vary');
  // No window of ratio 2..3 covering the whole image fits: the central crop at the nearest ratio.
  assert.deepEqual(randomResizedCropBox(new Generator(0), 100, 100, [1, 1], [2, 3]), { x: 0, y: 25, width: 100, height: 50 });
  assert.deepEqual(randomResizedCropBox(new Generator(0), 100, 40, [1, 1], [0.5, 1]), { x: 30, y: 0, width: 40, height: 40 });
  const out = randomResizedCrop(new Generator(1), image(50, 40), 16, 12, 'bicubic', [0.5, 1]);
  assert.deepEqual([out.width, out.height, out.data.length], [16, 12, 16 * 12 * 3]);
});

/** The shift (dx, dy) for which out(x, y) = img(x + dx, y + dy) wherever that is inside, else null. */
function shiftOf(img: RgbImage, out: RgbImage, pad: number, reflect: boolean): [number, number] | null {
  const at = (im: RgbImage, x: number, y: number): number[] => [...im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3)];
  const mirror = (i: number, n: number): number => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  for (let dy = -pad; dy <= pad; dy++) {
    for (let dx = -pad; dx <= pad; dx++) {
      let ok = true;
      for (let y = 0; y < img.height && ok; y++) {
        for (let x = 0; x < img.width && ok; x++) {
          let sx = x + dx, sy = y + dy;
          const outside = sx < 0 || sy < 0 || sx >= img.width || sy >= img.height;
          if (outside && reflect) [sx, sy] = [mirror(sx, img.width), mirror(sy, img.height)];
          const want = outside && !reflect ? [0, 0, 0] : at(img, sx, sy);
          ok = at(out, x, y).every((v, c) => v === want[c]);
        }
      }
      if (ok) return [dx, dy];
    }
  }
  return null;
}

test('pad-and-crop is the image shifted by up to the padding, zero- or reflect-filled', () => {
  const img = image(9, 7);
  for (const mode of ['zero', 'reflect'] as const) {
    const shifts = new Set<string>();
    for (let s = 0; s < 120; s++) {
      const out = padRandomCrop(new Generator(s), img, 2, mode);
      const shift = shiftOf(img, out, 2, mode === 'reflect');
      assert.ok(shift, `${mode}, seed ${s}: not a shifted copy`);
      shifts.add(shift.join(','));
    }
    assert.equal(shifts.size, 25, `${mode}: every shift in [-2, 2]^2 occurs`);
  }
  assert.throws(() => padRandomCrop(new Generator(0), img, 7, 'reflect'), /reflect padding 7/);
});

test('horizontal flip mirrors each row; cropping checks its window', () => {
  const img = image(5, 3);
  const f = flipHorizontal(img);
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 5; x++) {
      for (let c = 0; c < 3; c++) assert.equal(f.data[(y * 5 + x) * 3 + c], img.data[(y * 5 + 4 - x) * 3 + c]);
    }
  }
  assert.deepEqual(flipHorizontal(f), img);
  const c = cropImage(img, { x: 1, y: 1, width: 3, height: 2 });
  assert.deepEqual([...c.data.subarray(0, 3)], [...img.data.subarray((5 + 1) * 3, (5 + 1) * 3 + 3)]);
  assert.throws(() => cropImage(img, { x: 3, y: 0, width: 3, height: 1 }), /leaves the 5x3 image/);
});
