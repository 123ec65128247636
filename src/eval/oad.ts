// Online action detection metrics as OadTR's official evaluation computes them
// (util/eval_utils.py, frame_level_map_n_cap_thumos / _tvseries, which agree): for every action
// class (class 0, background, is skipped) the frame-level average precision and the calibrated
// average precision of De Geest et al. (2016), and their means mAP and mcAP.
//
// Per class, frames are ranked by score, highest first. Walking down the ranking, at each positive
// frame (the tp-th positive, at 1-based rank k, fp = k - tp negatives above or at it) the official
// code adds precision tp / k and calibrated precision w*tp / (w*tp + fp), w = #negatives /
// #positives; AP and cAP are those sums over the number of positives. This is the non-interpolated
// AP (sklearn's average_precision_score when no scores tie). Arithmetic is float64, in the same order.
//
// Where the official function is undefined or unusable:
// - Ties: it ranks with numpy's default argsort (quicksort), whose order among equal scores is not
//   specified (it differs between array sizes and numpy builds). Here equal scores keep frame order,
//   as numpy's stable argsort: the official result whenever numpy's order is the stable one.
// - A class without positive frames gives 0/0 = NaN there (and so a NaN mean); one without negative
//   frames a NaN cAP. Here both are an error naming the class, unless emptyClasses is 'nan', which
//   gives the official NaNs.
// - NaN scores: numpy sorts them last; here they are an error naming the class and frame.
// - Labels: it counts a frame as positive when its label is exactly 1 and negative when exactly 0,
//   yet divides by the sum of the labels, so soft labels give meaningless values. Here every label
//   must be 0 or 1.
import fs from 'node:fs';
import { SafetensorsFile } from '../io/safetensors.js';

/** A [classes, frames] matrix: rows, or row-major values with their shape. */
export type FrameMatrix = readonly ArrayLike<number>[] | { readonly shape: readonly number[]; readonly data: ArrayLike<number | bigint> };

export interface FrameLevelAPOptions {
  /**
   * A class with no positive (or no negative) frame: 'error' (default) throws; 'nan' gives the
   * official function's NaN for its AP and/or cAP, which makes the means NaN as well.
   */
  emptyClasses?: 'error' | 'nan';
}

export interface FrameLevelAPResult {
  /** Mean of perClassAP. */
  readonly mAP: number;
  /** Mean of perClassCAP. */
  readonly mcAP: number;
  /** AP of classes 1 .. classes-1, in class order. */
  readonly perClassAP: number[];
  /** Calibrated AP of classes 1 .. classes-1, in class order. */
  readonly perClassCAP: number[];
  /** Classes including background (rows of the input). */
  readonly classes: number;
  readonly frames: number;
  /** Positive frames of each evaluated class, in class order. */
  readonly positives: number[];
}

interface Rows {
  readonly classes: number;
  readonly frames: number;
  at(c: number, f: number): number;
}

function rowsOf(m: FrameMatrix, what: string): Rows {
  if (Array.isArray(m)) {
    const rows = m as readonly ArrayLike<number>[];
    const frames = rows.length > 0 ? rows[0]!.length : 0;
    rows.forEach((r, c) => {
      if (r.length !== frames) throw new Error(`frameLevelAP: ${what} row ${c} has ${r.length} frames, row 0 has ${frames}`);
    });
    return { classes: rows.length, frames, at: (c, f) => Number(rows[c]![f]) };
  }
  const { shape, data } = m as { shape: readonly number[]; data: ArrayLike<number | bigint> };
  if (shape.length !== 2) throw new Error(`frameLevelAP: ${what} must be [classes, frames], got shape [${shape.join(', ')}]`);
  const [classes, frames] = shape as [number, number];
  if (data.length !== classes * frames) throw new Error(`frameLevelAP: ${what} has ${data.length} values for shape [${classes}, ${frames}]`);
  return { classes, frames, at: (c, f) => Number(data[c * frames + f]) };
}

/** The frames of one row ranked by score, highest first; equal scores in frame order. */
function ranking(scores: Float64Array): Int32Array {
  const order = Int32Array.from(scores, (_, i) => i);
  // A comparator without subtraction: Infinity - Infinity would be NaN.
  return order.sort((a, b) => {
    const sa = scores[a]!;
    const sb = scores[b]!;
    return sa > sb ? -1 : sa < sb ? 1 : a - b;
  });
}

/**
 * Frame-level AP and calibrated AP of every action class, and their means, exactly as OadTR's
 * frame_level_map_n_cap (see the notes at the top of this file for ties, classes without
 * positives, NaN scores and labels). `probs` and `labels` are [classes, frames], class 0 background.
 */
export function frameLevelAP(probs: FrameMatrix, labels: FrameMatrix, options: FrameLevelAPOptions = {}): FrameLevelAPResult {
  const emptyClasses = options.emptyClasses ?? 'error';
  if (emptyClasses !== 'error' && emptyClasses !== 'nan') throw new Error(`frameLevelAP: emptyClasses must be 'error' or 'nan', got '${String(emptyClasses)}'`);
  const p = rowsOf(probs, 'probs');
  const l = rowsOf(labels, 'labels');
  if (p.classes !== l.classes || p.frames !== l.frames) {
    throw new Error(`frameLevelAP: probs are [${p.classes}, ${p.frames}] but labels are [${l.classes}, ${l.frames}]; both must be [classes, frames]`);
  }
  if (p.classes < 2) throw new Error(`frameLevelAP: ${p.classes} class(es): need background (class 0) and at least one action class`);
  if (p.frames < 1) throw new Error('frameLevelAP: no frames');

  const perClassAP: number[] = [];
  const perClassCAP: number[] = [];
  const positivesOf: number[] = [];
  const scores = new Float64Array(p.frames);
  const positive = new Uint8Array(p.frames);
  for (let c = 1; c < p.classes; c++) {
    let positives = 0;
    for (let f = 0; f < p.frames; f++) {
      const s = p.at(c, f);
      if (Number.isNaN(s)) throw new Error(`frameLevelAP: probs[${c}, ${f}] (class ${c}, frame ${f}) is NaN`);
      const y = l.at(c, f);
      if (y !== 0 && y !== 1) throw new Error(`frameLevelAP: labels[${c}, ${f}] (class ${c}, frame ${f}) is ${y}; labels must be 0 or 1`);
      scores[f] = s;
      positive[f] = y;
      positives += y;
    }
    const negatives = p.frames - positives;
    if (emptyClasses === 'error' && positives === 0) {
      throw new Error(`frameLevelAP: class ${c} has no positive frame: its AP is undefined (0/0). Drop the class, or ask for the official NaN (emptyClasses 'nan', --empty-classes nan)`);
    }
    if (emptyClasses === 'error' && negatives === 0) {
      throw new Error(`frameLevelAP: class ${c} has no negative frame: its calibrated AP is undefined (0/0). Drop the class, or ask for the official NaN (emptyClasses 'nan', --empty-classes nan)`);
    }
    const w = negatives / positives;
    let tp = 0;
    let precisionSum = 0;
    let calibratedSum = 0;
    const order = ranking(scores);
    for (let k = 0; k < order.length; k++) {
      if (positive[order[k]!] !== 1) continue;
      tp += 1;
      const fp = k + 1 - tp;
      const wtp = w * tp;
      precisionSum += tp / (tp + fp);
      calibratedSum += wtp / (wtp + fp);
    }
    perClassAP.push(precisionSum / positives);
    perClassCAP.push(calibratedSum / positives);
    positivesOf.push(positives);
  }
  const mean = (xs: readonly number[]): number => {
    let sum = 0;
    for (const x of xs) sum += x;
    return sum / xs.length;
  };
  return {
    mAP: mean(perClassAP), mcAP: mean(perClassCAP), perClassAP, perClassCAP, classes: p.classes, frames: p.frames, positives: positivesOf,
  };
}

// ---------------------------------------------------------------------------------------------
// Score files

/** Scores and labels of a detection run, [classes, frames] each, class 0 background. */
export interface OadScores {
  readonly probs: FrameMatrix;
  readonly labels: FrameMatrix;
  /** The layout the file was read as. */
  readonly layout: string;
}

/** One file layout `readOadScores` knows: `recognises` looks cheaply, `read` reads it or throws a clear error. */
export interface OadScoreLayout {
  readonly name: string;
  recognises(file: string): boolean;
  read(file: string): OadScores;
}

const safetensorsMagic = (file: string): boolean => {
  // The 8-byte little-endian header length then '{'.
  const head = Buffer.alloc(9);
  const fd = fs.openSync(file, 'r');
  try {
    return fs.readSync(fd, head, 0, 9, 0) === 9 && head[8] === 0x7b;
  } finally {
    fs.closeSync(fd);
  }
};

/** A safetensors file with `probs` and `labels`, [classes, frames] (OadTR's results dict, as the fixtures store it). */
export const probsLabelsSafetensors: OadScoreLayout = {
  name: 'safetensors probs/labels',
  recognises: (file) => file.endsWith('.safetensors') || safetensorsMagic(file),
  read(file) {
    const f = SafetensorsFile.open(file);
    try {
      const names = f.tensors.map((t) => t.name);
      const missing = ['probs', 'labels'].filter((n) => !names.includes(n));
      if (missing.length > 0) {
        throw new Error(`${file}: no tensor ${missing.map((n) => `'${n}'`).join(' or ')} (it holds ${names.map((n) => `'${n}'`).join(', ') || 'none'}); `
          + 'an OadTR score file has probs and labels, [classes, frames], class 0 = background');
      }
      const tensors = f.readAll();
      const probs = tensors.probs!;
      const labels = tensors.labels!;
      for (const [name, t] of [['probs', probs], ['labels', labels]] as const) {
        if (t.shape.length !== 2) throw new Error(`${file}: '${name}' has shape [${t.shape.join(', ')}]; it must be [classes, frames]`);
      }
      if (probs.shape[0] !== labels.shape[0] || probs.shape[1] !== labels.shape[1]) {
        throw new Error(`${file}: probs are [${probs.shape.join(', ')}] but labels are [${labels.shape.join(', ')}]; both must be [classes, frames]`);
      }
      return { probs, labels, layout: probsLabelsSafetensors.name };
    } finally {
      f.close();
    }
  },
};

/** The layouts readOadScores tries, in order. */
export const OAD_SCORE_LAYOUTS: readonly OadScoreLayout[] = [probsLabelsSafetensors];

/** Reads a file of detection scores and labels in the first layout of `layouts` that recognises it. */
export function readOadScores(file: string, layouts: readonly OadScoreLayout[] = OAD_SCORE_LAYOUTS): OadScores {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  if (!fs.statSync(file).isFile()) throw new Error(`${file}: not a file`);
  const layout = layouts.find((l) => l.recognises(file));
  if (layout === undefined) throw new Error(`${file}: not a score file this version reads (${layouts.map((l) => l.name).join('; ')})`);
  return layout.read(file);
}
