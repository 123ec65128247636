// The built-in `scenes` dataset: procedurally drawn images of one to three coloured shapes on a grey
// background, with captions generated from the scene (colours, shapes, sizes and the spatial
// relation between two of them, in varied phrasings). Sample i of a split is a pure function of
// (seed, split, i), so the dataset needs no files and any sample can be drawn in any order.
//
// Compositional zero-shot: a fixed set of colour-shape pairs (each colour once, each shape once, so
// every colour and every shape is still seen in training with the other seven partners) never
// appears in train or val; the test split shows exactly those pairs, one object per image, labelled
// by their "colour shape" class name.
import type { RgbImage } from './image.js';
import type { ClassCompositions, Dataset, DatasetSpec, Sample } from './dataset.js';
import { Generator } from '../tensor/random.js';
import { SEED_STREAMS, checkSampleIndex, mixSeed } from './common.js';

export const SCENE_COLOURS: readonly { readonly name: string; readonly rgb: readonly [number, number, number] }[] = [
  { name: 'red', rgb: [220, 38, 38] },
  { name: 'green', rgb: [34, 170, 60] },
  { name: 'blue', rgb: [40, 90, 230] },
  { name: 'yellow', rgb: [245, 215, 40] },
  { name: 'orange', rgb: [245, 135, 25] },
  { name: 'purple', rgb: [140, 55, 200] },
  { name: 'white', rgb: [248, 248, 248] },
  { name: 'black', rgb: [20, 20, 20] },
];

export const SCENE_SHAPES: readonly string[] = ['circle', 'square', 'triangle', 'star', 'hexagon', 'cross', 'heart', 'diamond'];

/** Colour-shape pairs held out of train and val; the test split is made of them. */
export const SCENE_HELD_OUT: readonly string[] = [
  'red star', 'green heart', 'blue triangle', 'yellow circle', 'orange hexagon', 'purple square', 'white cross', 'black diamond',
];

/** Every "colour shape" pair, colour-major: the class names of every split (labels index into it). */
export const SCENE_CLASS_NAMES: readonly string[] = SCENE_COLOURS.flatMap((c) => SCENE_SHAPES.map((s) => `${c.name} ${s}`));

const HELD_OUT_CLASSES: ReadonlySet<number> = new Set(SCENE_HELD_OUT.map((n) => SCENE_CLASS_NAMES.indexOf(n)));
const SEEN_CLASSES: readonly number[] = SCENE_CLASS_NAMES.map((_, k) => k).filter((k) => !HELD_OUT_CLASSES.has(k));
/** Each class's colour and shape (class k is colour k / shapes, shape k % shapes). */
const CLASS_ATTRIBUTES: readonly (readonly string[])[] = SCENE_CLASS_NAMES.map((_, k) => [
  SCENE_COLOURS[Math.floor(k / SCENE_SHAPES.length)]!.name, SCENE_SHAPES[k % SCENE_SHAPES.length]!,
]);

export type SceneSplit = 'train' | 'val' | 'test';
const SPLIT_IDS: Readonly<Record<SceneSplit, number>> = { train: 1, val: 2, test: 3 };
const DEFAULT_LENGTHS: Readonly<Record<SceneSplit, number>> = { train: 50000, val: 5000, test: 5000 };

export type ShapeSize = 'small' | 'large';
export type Relation = 'left of' | 'right of' | 'above' | 'below';

export interface SceneObject {
  readonly shape: string;
  readonly colour: string;
  readonly size: ShapeSize;
  /** Centre in pixels (x to the right, y down) and the radius of the shape's circumscribed circle. */
  readonly x: number;
  readonly y: number;
  readonly radius: number;
  /** Index into SCENE_CLASS_NAMES. */
  readonly classIndex: number;
}

export interface Scene {
  readonly size: number;
  /** Grey level of the background. */
  readonly background: number;
  readonly objects: readonly SceneObject[];
  /** Where objects[0] is relative to objects[1] (set when there are two or more). */
  readonly relation?: Relation;
  /** The caption generated from this scene (always describes it). */
  readonly caption: string;
}

export interface SceneOptions {
  /** Image side in pixels (default 64). */
  size?: number;
  /** Samples in the split (defaults: train 50000, val 5000, test 5000). */
  length?: number;
  seed?: number;
  /** Objects per train/val image: 1 to this (default 3, at most 3). Test images hold one. */
  maxObjects?: number;
  /**
   * Fraction of captions replaced by another scene's caption (default 0); such samples have
   * `clean: false`. Which ones is fixed by (seed, split, index).
   */
  corruptCaptions?: number;
  /** Samples per pixel along each axis for anti-aliasing (default 4, i.e. 16 per pixel). */
  supersample?: number;
}

// ---------------------------------------------------------------------------------------------
// Scene layout and captions

/** Where a is relative to b, by the axis along which they are further apart. */
export function relationBetween(a: { x: number; y: number }, b: { x: number; y: number }): Relation {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  if (Math.abs(dx) >= Math.abs(dy)) return dx < 0 ? 'left of' : 'right of';
  return dy < 0 ? 'above' : 'below';
}

const RELATION_TEXT: Readonly<Record<Relation, string>> = { 'left of': 'to the left of', 'right of': 'to the right of', above: 'above', below: 'below' };
const INVERSE: Readonly<Record<Relation, Relation>> = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' };

function article(phrase: string): string {
  return /^[aeiou]/.test(phrase) ? `an ${phrase}` : `a ${phrase}`;
}

function pick<T>(g: Generator, list: readonly T[]): T {
  return list[g.int(0, list.length)]!;
}

/** The caption of a scene, phrased with random choices from g (sizes are mentioned half the time). */
function captionOf(g: Generator, objects: readonly SceneObject[], relation: Relation | undefined): string {
  const phrases = objects.map((o) => article(`${g.uniform() < 0.5 ? `${o.size} ` : ''}${o.colour} ${o.shape}`));
  if (objects.length === 1) {
    const p = phrases[0]!;
    return pick(g, [p, `${p} on a grey background`, `a picture of ${p}`, `an image of ${p}`, `a single ${p.replace(/^an? /, '')}`, `there is ${p} in the image`]);
  }
  const [a, b] = [phrases[0]!, phrases[1]!];
  const rel = RELATION_TEXT[relation!];
  const inv = RELATION_TEXT[INVERSE[relation!]];
  if (objects.length === 2) {
    return pick(g, [`${a} ${rel} ${b}`, `${b} ${inv} ${a}`, `two shapes: ${a} ${rel} ${b}`, `${a} and ${b}`, `there is ${a} ${rel} ${b}`, `two shapes: ${b} and ${a}`]);
  }
  const c = phrases[2]!;
  return pick(g, [`three shapes: ${a}, ${b} and ${c}`, `${a} ${rel} ${b}, and ${c}`, `${c}, and ${b} ${inv} ${a}`, `${b}, ${c} and ${a}`]);
}

/** Draws the scene's layout; pure in (seed, split, index, options). */
function layoutScene(seed: number, split: SceneSplit, index: number, size: number, maxObjects: number): Scene {
  const g = new Generator(mixSeed(SEED_STREAMS.scene, seed, SPLIT_IDS[split], index));
  const background = g.int(96, 161);
  const count = split === 'test' ? 1 : g.int(1, maxObjects + 1);
  const objects: SceneObject[] = [];
  let relation: Relation | undefined;
  for (let attempt = 0; ; attempt++) {
    objects.length = 0;
    // Fewer objects after many failed placements, so every layout ends (never hit at 64 px).
    const n = attempt < 200 ? count : 1;
    for (let k = 0; k < n; k++) {
      const classIndex = split === 'test' ? pick(g, [...HELD_OUT_CLASSES]) : pick(g, SEEN_CLASSES);
      const sz: ShapeSize = g.uniform() < 0.5 ? 'small' : 'large';
      const radius = size * (sz === 'small' ? 0.085 + 0.025 * g.uniform() : 0.16 + 0.05 * g.uniform());
      const margin = radius + 1;
      const x = margin + (size - 2 * margin) * g.uniform();
      const y = margin + (size - 2 * margin) * g.uniform();
      objects.push({
        shape: SCENE_SHAPES[classIndex % SCENE_SHAPES.length]!, colour: SCENE_COLOURS[Math.floor(classIndex / SCENE_SHAPES.length)]!.name,
        size: sz, x, y, radius, classIndex,
      });
    }
    const apart = objects.every((o, i) => objects.slice(0, i).every((p) => Math.hypot(o.x - p.x, o.y - p.y) > o.radius + p.radius + 2));
    // The described pair must be clearly apart along one axis, or "left of" vs "above" is a guess.
    let clear = true;
    if (n >= 2) {
      const dx = Math.abs(objects[0]!.x - objects[1]!.x);
      const dy = Math.abs(objects[0]!.y - objects[1]!.y);
      clear = Math.max(dx, dy) >= 2 * Math.min(dx, dy);
      relation = relationBetween(objects[0]!, objects[1]!);
    } else {
      relation = undefined;
    }
    if (apart && clear) break;
  }
  return { size, background, objects: [...objects], relation, caption: captionOf(g, objects, relation) };
}

// ---------------------------------------------------------------------------------------------
// Rendering

// Star: five points, outer radius 1, inner 0.45, a point straight up.
const STAR: readonly number[] = Array.from({ length: 10 }, (_, k) => {
  const r = k % 2 === 0 ? 1 : 0.45;
  const a = -Math.PI / 2 + (k * Math.PI) / 5;
  return [r * Math.cos(a), r * Math.sin(a)];
}).flat();

function insidePolygon(poly: readonly number[], u: number, v: number): boolean {
  let inside = false;
  const n = poly.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i]!, yi = poly[2 * i + 1]!, xj = poly[2 * j]!, yj = poly[2 * j + 1]!;
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether (u, v), in units of the shape's radius from its centre (v down), is inside the shape. */
const INSIDE: Readonly<Record<string, (u: number, v: number) => boolean>> = {
  circle: (u, v) => u * u + v * v <= 1,
  square: (u, v) => Math.abs(u) <= 0.7 && Math.abs(v) <= 0.7,
  diamond: (u, v) => Math.abs(u) + Math.abs(v) <= 1,
  // Equilateral, apex up, inscribed in the unit circle (centroid at the centre).
  triangle: (u, v) => v <= 0.5 && v >= -1 + Math.sqrt(3) * Math.abs(u),
  // Flat top and bottom.
  hexagon: (u, v) => Math.abs(v) <= 0.866 && 0.866 * Math.abs(u) + 0.5 * Math.abs(v) <= 0.866,
  cross: (u, v) => (Math.abs(u) <= 0.3 && Math.abs(v) <= 0.9) || (Math.abs(v) <= 0.3 && Math.abs(u) <= 0.9),
  star: (u, v) => u * u + v * v <= 1 && insidePolygon(STAR, u, v),
  // (x² + y² - 1)³ <= x² y³ with y up; every point of it is within 1.25 of (0, 0.25), so this
  // scale and shift fit it into the unit circle.
  heart: (u, v) => {
    const x = u * 1.27;
    const y = -v * 1.27 + 0.25;
    const q = x * x + y * y - 1;
    return q * q * q <= x * x * y * y * y;
  },
};

/**
 * Draws a scene: each pixel of a shape's bounding box is covered by ss x ss sub-samples, and the
 * shape's colour is blended in by the covered fraction (anti-aliased edges).
 */
export function renderScene(scene: Scene, supersample = 4): RgbImage {
  const { size } = scene;
  const data = new Uint8Array(size * size * 3).fill(scene.background);
  const ss = supersample;
  const step = 1 / ss;
  const total = ss * ss;
  for (const o of scene.objects) {
    const inside = INSIDE[o.shape]!;
    const [cr, cg, cb] = SCENE_COLOURS.find((c) => c.name === o.colour)!.rgb;
    const inv = 1 / o.radius;
    const x0 = Math.max(0, Math.floor(o.x - o.radius - 1));
    const x1 = Math.min(size - 1, Math.ceil(o.x + o.radius + 1));
    const y0 = Math.max(0, Math.floor(o.y - o.radius - 1));
    const y1 = Math.min(size - 1, Math.ceil(o.y + o.radius + 1));
    for (let py = y0; py <= y1; py++) {
      for (let px = x0; px <= x1; px++) {
        let hits = 0;
        for (let sy = 0; sy < ss; sy++) {
          const v = (py + (sy + 0.5) * step - o.y) * inv;
          for (let sx = 0; sx < ss; sx++) {
            if (inside((px + (sx + 0.5) * step - o.x) * inv, v)) hits++;
          }
        }
        if (hits === 0) continue;
        const a = hits / total;
        const p = (py * size + px) * 3;
        data[p] = Math.round(data[p]! + (cr - data[p]!) * a);
        data[p + 1] = Math.round(data[p + 1]! + (cg - data[p + 1]!) * a);
        data[p + 2] = Math.round(data[p + 2]! + (cb - data[p + 2]!) * a);
      }
    }
  }
  return { width: size, height: size, data };
}

// ---------------------------------------------------------------------------------------------
// The dataset

export class ScenesDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly classNames = SCENE_CLASS_NAMES;
  /** Class names of the held-out pairs (what the test split's labels are). */
  readonly heldOutClassNames = SCENE_HELD_OUT;
  /**
   * Colour and shape of each class, the held-out pairs, and for the test split (held-out pairs
   * only) single-object scenes of the seen pairs from the val split to compare with.
   */
  readonly compositions: ClassCompositions;
  readonly spec: DatasetSpec;
  private readonly size: number;
  private readonly seed: number;
  private readonly maxObjects: number;
  private readonly corrupt: number;
  private readonly supersample: number;

  constructor(readonly split: SceneSplit = 'train', opts: SceneOptions = {}) {
    if (!(split in SPLIT_IDS)) throw new Error(`scenes: unknown split '${split}' (train, val, test)`);
    const int = (v: number | undefined, dflt: number, what: string, lo: number, hi = Infinity): number => {
      const x = v ?? dflt;
      if (!Number.isInteger(x) || x < lo || x > hi) throw new Error(`scenes: ${what} must be an integer in [${lo}, ${hi}], got ${x}`);
      return x;
    };
    this.size = int(opts.size, 64, 'size', 16, 4096);
    this.length = int(opts.length, DEFAULT_LENGTHS[split], 'length', 1);
    this.seed = int(opts.seed, 0, 'seed', 0, 2 ** 53);
    this.maxObjects = int(opts.maxObjects, 3, 'maxObjects', 1, 3);
    this.supersample = int(opts.supersample, 4, 'supersample', 1, 16);
    this.corrupt = opts.corruptCaptions ?? 0;
    if (!(this.corrupt >= 0 && this.corrupt <= 1)) throw new Error(`scenes: corruptCaptions must be a fraction in [0, 1], got ${opts.corruptCaptions}`);
    this.name = `scenes(${split})`;
    this.spec = { source: `scenes:${split}`, options: { scenes: { ...opts } } };
    const seenCounterpart = () => new ScenesDataset('val', { ...opts, length: this.length, maxObjects: 1, corruptCaptions: 0 });
    this.compositions = {
      attributes: ['colour', 'shape'], values: CLASS_ATTRIBUTES, heldOut: HELD_OUT_CLASSES,
      ...(split === 'test' ? { seenCounterpart } : {}),
    };
  }

  /** The layout of sample `index` (its objects, relation and true caption), without drawing it. */
  scene(index: number): Scene {
    checkSampleIndex(this, index);
    return layoutScene(this.seed, this.split, index, this.size, this.maxObjects);
  }

  /** The caption sample `index` carries and whether it is its own (not a corrupted one). */
  captionOf(index: number): { caption: string; clean: boolean } {
    const own = this.scene(index).caption;
    if (this.corrupt === 0 || this.length < 2) return { caption: own, clean: true };
    const g = new Generator(mixSeed(SEED_STREAMS.corruption, this.seed, SPLIT_IDS[this.split], index));
    if (g.uniform() >= this.corrupt) return { caption: own, clean: true };
    let other = g.int(0, this.length - 1);
    if (other >= index) other++; // any scene but this one
    return { caption: this.scene(other).caption, clean: false };
  }

  async get(index: number): Promise<Sample> {
    const scene = this.scene(index);
    const { caption, clean } = this.captionOf(index);
    return {
      key: `scenes/${this.split}/${index}`,
      image: { kind: 'pixels', image: renderScene(scene, this.supersample) },
      caption, label: scene.objects[0]!.classIndex, clean,
    };
  }
}
