// The procedural scenes: what is drawn matches the scene (colours at centres, shape areas,
// anti-aliased edges), captions describe it (every object, correct relations read off the pixels),
// held-out pairs stay out of training, corruption is as asked, and everything is seeded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  SCENE_CLASS_NAMES, SCENE_COLOURS, SCENE_HELD_OUT, SCENE_SHAPES, type Relation, type Scene, type SceneObject,
  ScenesDataset, relationBetween, renderScene,
} from '../../src/data/scenes.js';
import type { RgbImage } from '../../src/data/image.js';

const rgbOf = (colour: string): readonly number[] => SCENE_COLOURS.find((c) => c.name === colour)!.rgb;
const pixel = (img: RgbImage, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

test('each object is drawn in its colour at its centre, on the background grey', () => {
  const ds = new ScenesDataset('train', { length: 300 });
  for (let i = 0; i < 300; i++) {
    const scene = ds.scene(i);
    const img = renderScene(scene);
    for (const o of scene.objects) assert.deepEqual(pixel(img, Math.floor(o.x), Math.floor(o.y)), [...rgbOf(o.colour)], `scene ${i}: ${o.colour} ${o.shape}`);
    // A pixel far from every object shows the background.
    for (const [x, y] of [[0, 0], [63, 0], [0, 63], [63, 63], [32, 0], [0, 32]] as const) {
      if (scene.objects.every((o) => Math.hypot(x + 0.5 - o.x, y + 0.5 - o.y) > o.radius + 2)) {
        assert.deepEqual(pixel(img, x, y), [scene.background, scene.background, scene.background]);
      }
    }
  }
});

/** Fraction of full colour in each pixel, from the channel with the most contrast. */
function coverage(img: RgbImage, background: number, rgb: readonly number[]): Float64Array {
  const c = rgb.reduce((best, v, k) => (Math.abs(v - background) > Math.abs(rgb[best]! - background) ? k : best), 0);
  const out = new Float64Array(img.width * img.height);
  for (let p = 0; p < out.length; p++) out[p] = (img.data[p * 3 + c]! - background) / (rgb[c]! - background);
  return out;
}

test('shapes cover their geometric areas, with blended (anti-aliased) edges', () => {
  // Areas in units of radius squared.
  const areas: Record<string, number> = {
    circle: Math.PI, square: 1.4 ** 2, diamond: 2, triangle: (3 * Math.sqrt(3)) / 4, hexagon: (3 * Math.sqrt(3)) / 2,
    cross: 2 * 0.6 * 1.8 - 0.36, star: 5 * 0.45 * Math.sin(Math.PI / 5),
  };
  for (const shape of SCENE_SHAPES) {
    const radius = 20.3;
    const o: SceneObject = { shape, colour: 'red', size: 'large', x: 32.4, y: 31.7, radius, classIndex: SCENE_CLASS_NAMES.indexOf(`red ${shape}`) };
    const scene: Scene = { size: 64, background: 128, objects: [o], caption: '' };
    const cover = coverage(renderScene(scene), 128, rgbOf('red'));
    const area = cover.reduce((a, b) => a + b, 0);
    if (areas[shape] !== undefined) assert.ok(Math.abs(area / (areas[shape]! * radius * radius) - 1) < 0.01, `${shape}: area ${area}, expected ${areas[shape]! * radius * radius}`);
    else assert.ok(area > 0.5 * radius * radius && area < Math.PI * radius * radius, `${shape}: area ${area}`);
    const partial = cover.filter((v) => v > 0.03 && v < 0.97).length;
    assert.ok(partial > radius, `${shape}: only ${partial} edge pixels are blended`);
    // Nothing outside the circumscribed circle.
    cover.forEach((v, p) => {
      if (Math.hypot((p % 64) + 0.5 - o.x, Math.floor(p / 64) + 0.5 - o.y) > radius + 1) assert.equal(v, 0, `${shape}: pixel ${p} outside`);
    });
  }
  // Supersampling 1 gives hard edges.
  const hard = renderScene({ size: 64, background: 128, objects: [{ shape: 'circle', colour: 'blue', size: 'large', x: 30, y: 30, radius: 12, classIndex: 0 }], caption: '' }, 1);
  assert.ok(coverage(hard, 128, rgbOf('blue')).every((v) => v === 0 || v === 1));
});

const PHRASE = `(?:(small|large) )?(${SCENE_COLOURS.map((c) => c.name).join('|')}) (${SCENE_SHAPES.join('|')})`;
const REL_TEXT: Record<string, Relation> = { 'to the left of': 'left of', 'to the right of': 'right of', above: 'above', below: 'below' };

/** Centroid of the pixels exactly of a colour. */
function centroid(img: RgbImage, rgb: readonly number[]): { x: number; y: number } {
  let sx = 0, sy = 0, n = 0;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const p = pixel(img, x, y);
      if (p[0] === rgb[0] && p[1] === rgb[1] && p[2] === rgb[2]) {
        sx += x + 0.5;
        sy += y + 0.5;
        n++;
      }
    }
  }
  return { x: sx / n, y: sy / n };
}

test('captions name every object correctly, and stated relations hold in the pixels', () => {
  const ds = new ScenesDataset('train', { length: 400, seed: 3 });
  let relationsChecked = 0;
  const counts = new Set<number>();
  for (let i = 0; i < 400; i++) {
    const scene = ds.scene(i);
    counts.add(scene.objects.length);
    const mentions = [...scene.caption.matchAll(new RegExp(PHRASE, 'g'))];
    assert.equal(mentions.length, scene.objects.length, `scene ${i}: "${scene.caption}"`);
    const unmatched = [...scene.objects];
    for (const m of mentions) {
      const k = unmatched.findIndex((o) => o.colour === m[2] && o.shape === m[3] && (m[1] === undefined || o.size === m[1]));
      assert.ok(k >= 0, `scene ${i}: "${m[0]}" in "${scene.caption}" is not in the scene`);
      unmatched.splice(k, 1);
    }
    const rel = new RegExp(`(${PHRASE}) (to the left of|to the right of|above|below) an? (${PHRASE})`).exec(scene.caption);
    if (!rel) continue;
    const [a, b] = [[rel[3], rel[4]], [rel[8], rel[9]]] as [[string, string], [string, string]];
    const objA = scene.objects.filter((o) => o.colour === a[0] && o.shape === a[1]);
    const objB = scene.objects.filter((o) => o.colour === b[0] && o.shape === b[1]);
    // The pixel check finds each object by its colour: only where no other object shares it.
    const alone = (colour: string): boolean => scene.objects.filter((o) => o.colour === colour).length === 1;
    if (objA.length !== 1 || objB.length !== 1 || !alone(a[0]) || !alone(b[0])) continue;
    const img = renderScene(scene);
    const stated = REL_TEXT[rel[5]!]!;
    assert.equal(relationBetween(centroid(img, rgbOf(a[0])), centroid(img, rgbOf(b[0]))), stated, `scene ${i}: "${scene.caption}"`);
    assert.equal(relationBetween(objA[0]!, objB[0]!), stated);
    relationsChecked++;
  }
  assert.deepEqual([...counts].sort(), [1, 2, 3]);
  assert.ok(relationsChecked > 50, `only ${relationsChecked} relations checked`);
});

test('held-out colour-shape pairs never appear in train or val; the test split is made of them', async () => {
  assert.equal(new Set(SCENE_HELD_OUT.map((n) => n.split(' ')[0])).size, SCENE_COLOURS.length, 'each colour held out once');
  assert.equal(new Set(SCENE_HELD_OUT.map((n) => n.split(' ')[1])).size, SCENE_SHAPES.length, 'each shape held out once');
  for (const split of ['train', 'val'] as const) {
    const ds = new ScenesDataset(split, { length: 1000 });
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      for (const o of ds.scene(i).objects) {
        const name = `${o.colour} ${o.shape}`;
        assert.ok(!SCENE_HELD_OUT.includes(name), `${split} ${i} shows ${name}`);
        seen.add(name);
      }
    }
    assert.equal(seen.size, SCENE_CLASS_NAMES.length - SCENE_HELD_OUT.length, `${split}: every other pair appears`);
  }
  const testSet = new ScenesDataset('test', { length: 200 });
  const labels = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const s = await testSet.get(i);
    const scene = testSet.scene(i);
    assert.equal(scene.objects.length, 1);
    assert.equal(SCENE_CLASS_NAMES[s.label!], `${scene.objects[0]!.colour} ${scene.objects[0]!.shape}`);
    assert.ok(SCENE_HELD_OUT.includes(SCENE_CLASS_NAMES[s.label!]!));
    labels.add(s.label!);
  }
  assert.equal(labels.size, SCENE_HELD_OUT.length);
});

test('a sample is a pure function of (seed, split, index)', async () => {
  const a = new ScenesDataset('train', { length: 50, seed: 1 });
  const b = new ScenesDataset('train', { length: 50, seed: 1 });
  const later = await b.get(40); // read out of order first
  assert.deepEqual(await a.get(40), later);
  assert.deepEqual((await a.get(7)).key, 'scenes/train/7');
  const pixels = async (d: ScenesDataset, i: number): Promise<Uint8Array> => ((await d.get(i)).image as { image: RgbImage }).image.data;
  assert.notDeepEqual(await pixels(new ScenesDataset('train', { length: 50, seed: 2 }), 40), await pixels(a, 40));
  assert.notDeepEqual(await pixels(new ScenesDataset('val', { length: 50, seed: 1 }), 40), await pixels(a, 40));
  const big = new ScenesDataset('val', { size: 128, length: 5 });
  const img = ((await big.get(0)).image as { image: RgbImage }).image;
  assert.deepEqual([img.width, img.height, img.data.length], [128, 128, 128 * 128 * 3]);
  assert.throws(() => new ScenesDataset('train', { maxObjects: 4 }), /maxObjects must be an integer in \[1, 3\]/);
  assert.throws(() => new ScenesDataset('train', { corruptCaptions: 1.5 }), /corruptCaptions must be a fraction/);
  assert.throws(() => a.scene(50), /index 50 out of range/);
});

test('corrupted captions: about the asked fraction, each another scene\'s caption, flagged unclean', async () => {
  const n = 2000;
  const ds = new ScenesDataset('train', { length: n, corruptCaptions: 0.25, seed: 4 });
  const own = Array.from({ length: n }, (_, i) => ds.scene(i).caption);
  const captions = new Set(own);
  let corrupted = 0;
  for (let i = 0; i < n; i++) {
    const c = ds.captionOf(i);
    if (c.clean) {
      assert.equal(c.caption, own[i]);
    } else {
      corrupted++;
      assert.ok(captions.has(c.caption), `sample ${i}: "${c.caption}" is no scene's caption`);
    }
  }
  // The samples carry what captionOf says.
  for (let i = 0; i < 40; i++) {
    const s = await ds.get(i);
    assert.deepEqual({ caption: s.caption, clean: s.clean }, ds.captionOf(i));
  }
  assert.ok(Math.abs(corrupted / n - 0.25) < 0.035, `corrupted ${corrupted} of ${n}`);
  const cleanSet = new ScenesDataset('train', { length: 100, seed: 4 });
  for (let i = 0; i < 100; i++) assert.equal((await cleanSet.get(i)).clean, true);
});

test('compositions: each class\'s colour and shape as drawn, the held-out pairs, and the test split\'s seen counterpart', async () => {
  const ds = new ScenesDataset('test', { length: 30, size: 32, seed: 2 });
  const c = ds.compositions;
  assert.deepEqual(c.attributes, ['colour', 'shape']);
  assert.deepEqual([...c.heldOut].map((k) => SCENE_CLASS_NAMES[k]).sort(), [...SCENE_HELD_OUT].sort());
  for (let i = 0; i < 30; i++) {
    const o = ds.scene(i).objects[0]!;
    assert.deepEqual(c.values[o.classIndex], [o.colour, o.shape]);
  }
  // The counterpart: as many single-object scenes, of seen pairs only, drawn at the same size from the val split.
  const seen = c.seenCounterpart!();
  assert.equal(seen.length, 30);
  assert.equal(seen.name, 'scenes(val)');
  for (let i = 0; i < 30; i++) {
    const s = await seen.get(i);
    assert.equal((seen as ScenesDataset).scene(i).objects.length, 1);
    assert.ok(!c.heldOut.has(s.label!), `${SCENE_CLASS_NAMES[s.label!]} is held out`);
    assert.equal(s.image.kind === 'pixels' && s.image.image.width, 32);
  }
  // Splits of seen pairs compare with nothing else.
  assert.equal(new ScenesDataset('val').compositions.seenCounterpart, undefined);
  assert.equal(new ScenesDataset('train').compositions.seenCounterpart, undefined);
});
