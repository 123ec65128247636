// MMBench-format TSV files: one multiple-choice question per row, read and validated. Column names
// are matched as VLMEvalKit's evaluation does (lower-cased, except the single capital letters
// that name options), and cell values as pandas parses them (see table.ts).
import fs from 'node:fs';
import path from 'node:path';
import { isNA, pandasColumnText, parseDelimited } from '../../data/table.js';

export const OPTION_LABELS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** One question (or one circular copy of a question). */
export interface McqRow {
  index: number;
  question: string;
  /** null when the hint cell is missing. */
  hint: string | null;
  /** The options present, in label order: [label, text]. */
  options: [string, string][];
  /** The correct label; null when the cell is missing (e.g. MMBench's test split). */
  answer: string | null;
  category: string | null;
  l2Category: string | null;
  split: string | null;
  /** The image cell as written: base64, or a short reference to another row's index. */
  image: string | null;
  imagePath: string | null;
  /** The `g_index` cell (the original question of a circular copy), when the file has one. */
  gIndex: number | null;
  /** The line of the file where the row starts. */
  line: number;
}

export interface MMBenchData {
  /** Where it was read from (image paths are relative to its folder). */
  file: string;
  rows: McqRow[];
  /** The row of each index. */
  byIndex: Map<number, McqRow>;
  /** Problems that do not stop scoring, each naming its row's index. */
  warnings: string[];
}

export interface ReadOptions {
  /** Fail unless every row has an answer (scoring needs them). */
  requireAnswers?: boolean;
  /** Fail unless every row has an image or image path (models need them). */
  requireImages?: boolean;
}

/** A reference to another row's image, as the official files write to save space (VLMEvalKit: at most 64 characters). */
export const isImageReference = (cell: string): boolean => cell.length <= 64;

/** Reads delimited text from a file, choosing the delimiter by extension (.csv: comma, else tab). */
export function readTable(file: string): ReturnType<typeof parseDelimited> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`, { cause: e });
  }
  return parseDelimited(text, file.toLowerCase().endsWith('.csv') ? ',' : '\t', file);
}

/** VLMEvalKit's column naming: everything lower-case except the option letters. */
export const normaliseColumn = (name: string): string => (name.length === 1 && OPTION_LABELS.includes(name) ? name : name.toLowerCase());

/** Parses an index cell: an integer, as VLMEvalKit's `int(x)` needs (a float cell like '3.0' is read as 3, as pandas would). */
export function parseIndex(cell: string): number | null {
  const t = cell.trim();
  if (/^[+-]?\d+$/.test(t) || /^[+-]?\d+\.0*$/.test(t)) {
    const v = Number.parseInt(t, 10);
    return Number.isSafeInteger(v) ? v : null;
  }
  return null;
}

/**
 * Reads an MMBench TSV. Errors (all listed at once): missing `index`/`question` columns,
 * non-integer or duplicate indices, image references to rows that do not exist, and (when asked)
 * rows without answers or images. Warnings, by index: answers that are not one of the row's
 * options, option columns with gaps, image cells that are not base64.
 */
export function readMMBench(file: string, options: ReadOptions = {}): MMBenchData {
  const table = readTable(file);
  const names = table.header.map(normaliseColumn);
  const col = new Map<string, number>();
  names.forEach((n, i) => {
    if (col.has(n)) throw new Error(`${file}: the column '${n}' appears twice`);
    col.set(n, i);
  });
  const missingCols = ['index', 'question'].filter((c) => !col.has(c));
  if (options.requireAnswers && !col.has('answer')) missingCols.push('answer');
  if (options.requireImages && !col.has('image') && !col.has('image_path')) missingCols.push('image (or image_path)');
  if (missingCols.length) throw new Error(`${file}: missing column${missingCols.length > 1 ? 's' : ''} ${missingCols.join(', ')} (columns: ${table.header.join(', ')})`);

  // Cells as pandas would print them; index and image are read as written.
  const column = (name: string): (string | null)[] | null => {
    const i = col.get(name);
    return i === undefined ? null : pandasColumnText(table.rows.map((r) => r[i]!));
  };
  const raw = (name: string): (string | null)[] | null => {
    const i = col.get(name);
    return i === undefined ? null : table.rows.map((r) => (isNA(r[i]!) ? null : r[i]!));
  };
  const labels = [...OPTION_LABELS].filter((l) => col.has(l));
  const optionCols = labels.map((l) => column(l)!);
  const question = column('question')!;
  const hint = column('hint');
  const answer = raw('answer');
  const category = raw('category');
  const l2 = raw('l2-category');
  const split = raw('split');
  const image = raw('image');
  const imagePath = raw('image_path');
  const gIndexCol = raw('g_index');
  const indexCol = table.rows.map((r) => r[col.get('index')!]!);

  const errors: string[] = [];
  const warnings: string[] = [];
  const rows: McqRow[] = [];
  const byIndex = new Map<number, McqRow>();
  for (let r = 0; r < table.rows.length; r++) {
    const line = table.lines[r]!;
    const index = parseIndex(indexCol[r]!);
    if (index === null) {
      errors.push(`line ${line}: index ${JSON.stringify(indexCol[r])} is not an integer`);
      continue;
    }
    const prev = byIndex.get(index);
    if (prev) {
      errors.push(`index ${index}: duplicate (lines ${prev.line} and ${line})`);
      continue;
    }
    const opts: [string, string][] = [];
    labels.forEach((l, k) => {
      const v = optionCols[k]![r];
      if (v !== null && v !== undefined) opts.push([l, v]);
    });
    const g = gIndexCol?.[r] ?? null;
    const row: McqRow = {
      index,
      question: question[r] ?? 'nan',
      hint: hint?.[r] ?? null,
      options: opts,
      answer: answer?.[r] ?? null,
      category: category?.[r] ?? null,
      l2Category: l2?.[r] ?? null,
      split: split?.[r] ?? null,
      image: image?.[r] ?? null,
      imagePath: imagePath?.[r] ?? null,
      gIndex: g === null ? null : parseIndex(g),
      line,
    };
    if (g !== null && row.gIndex === null) errors.push(`index ${index}: g_index ${JSON.stringify(g)} is not an integer`);
    rows.push(row);
    byIndex.set(index, row);
  }

  for (const row of rows) {
    const present = row.options.map(([l]) => l);
    if (row.answer === null) {
      if (options.requireAnswers) errors.push(`index ${row.index}: no answer`);
    } else if (!present.includes(row.answer)) {
      warnings.push(`index ${row.index}: answer ${JSON.stringify(row.answer)} is not one of its options (${present.join(', ') || 'none'}); it can never be scored right`);
    }
    const last = present.length ? OPTION_LABELS.indexOf(present[present.length - 1]!) : -1;
    if (present.length !== last + 1) warnings.push(`index ${row.index}: options ${present.join(', ')} have gaps; the question is not rotated in circular form`);
    if (row.image !== null) {
      if (isImageReference(row.image)) {
        const target = resolveImageRow(byIndex, row);
        if (typeof target === 'string') errors.push(target);
      } else if (!/^[A-Za-z0-9+/=\s_-]+$/.test(row.image)) {
        errors.push(`index ${row.index}: the image cell is neither base64 nor a row index`);
      }
    } else if (options.requireImages && row.imagePath === null) {
      errors.push(`index ${row.index}: no image (image and image_path are both empty)`);
    }
  }
  if (errors.length) {
    const shown = errors.slice(0, 20).join('\n  ');
    throw new Error(`${file}: ${errors.length} malformed row${errors.length > 1 ? 's' : ''}:\n  ${shown}${errors.length > 20 ? `\n  ... and ${errors.length - 20} more` : ''}`);
  }
  return { file, rows, byIndex, warnings };
}

/**
 * The row whose image cell holds the data for `row` (following references, which VLMEvalKit
 * follows one level deep), or a message naming the index when a reference leads nowhere.
 */
export function resolveImageRow(byIndex: ReadonlyMap<number, McqRow>, row: McqRow): McqRow | string {
  let cur = row;
  const seen = new Set<number>();
  while (cur.image !== null && isImageReference(cur.image)) {
    if (seen.has(cur.index)) return `index ${row.index}: image references form a cycle`;
    seen.add(cur.index);
    const ref = parseIndex(cur.image);
    const target = ref === null ? undefined : byIndex.get(ref);
    if (!target) return `index ${row.index}: image ${JSON.stringify(cur.image)} refers to no row`;
    cur = target;
  }
  return cur;
}

/** Kinds of image the endpoints and decoders take, by their first bytes. */
export function sniffImageType(bytes: Uint8Array): string | null {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) return 'image/gif';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'image/webp';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'image/bmp';
  return null;
}

export interface RowImage {
  /** The index of the row that holds the data (copies share their original's). */
  holder: number;
  bytes: Buffer;
  mime: string;
}

/** The encoded image of a row: its (referenced) base64 cell, else its image_path (relative to the TSV's folder). */
export function rowImage(data: MMBenchData, row: McqRow): RowImage {
  const holder = resolveImageRow(data.byIndex, row);
  if (typeof holder === 'string') throw new Error(holder);
  let bytes: Buffer;
  if (holder.image !== null) {
    bytes = Buffer.from(holder.image.replace(/\s+/g, ''), holder.image.includes('-') || holder.image.includes('_') ? 'base64url' : 'base64');
  } else if (row.imagePath !== null) {
    const p = path.resolve(path.dirname(data.file), row.imagePath);
    try {
      bytes = fs.readFileSync(p);
    } catch (e) {
      throw new Error(`index ${row.index}: cannot read image_path ${p} (${(e as Error).message})`, { cause: e });
    }
  } else {
    throw new Error(`index ${row.index}: no image`);
  }
  const mime = sniffImageType(bytes);
  if (!mime) throw new Error(`index ${row.index}: the image is not a PNG, JPEG, GIF, WebP or BMP file (undecodable)`);
  return { holder: holder.image !== null ? holder.index : row.index, bytes, mime };
}
