// CircularEval's data: each question asked once per rotation of its options. The expansion
// reproduces VLMEvalKit's `CIRCULAR` (vlmeval/tools.py): an index offset of 1e6, multiplied by 10
// until it exceeds the largest index; copy i of a k-option question gets index `orig + i·offset`,
// its option at label m is the original's option at label (m + i) mod k (deque.rotate(1) per copy),
// and its answer moves to label (j − i) mod k. "Abnormal" rows stay single.
import { type McqRow, OPTION_LABELS, isImageReference } from './data.js';

/** VLMEvalKit's offset: 1e6, times 10 while the largest index reaches it. */
export function circularOffset(maxIndex: number): number {
  let offset = 1e6;
  while (maxIndex >= offset) offset *= 10;
  return offset;
}

/**
 * Why a row is not rotated, or null when it is. As VLMEvalKit's `abnormal_entry` and its checks
 * around it: an option whose text, with every character but ASCII letters and spaces blanked, has
 * two or more distinct words that are option labels of the row; an option whose whole text occurs
 * in 'ABC…Z' (a bare label such as 'A', or 'DEF'); fewer than two options; an answer that is not
 * one of the options. Gaps in the option labels (an assertion in VLMEvalKit) also keep it single.
 */
export function abnormalReason(row: McqRow): string | null {
  const present = new Set(row.options.map(([l]) => l));
  for (const [label, text] of row.options) {
    const words = text.replace(/[^A-Za-z ]/g, ' ').split(/ +/).filter((w) => w !== '');
    const hits = new Set(words.filter((w) => present.has(w)));
    if (hits.size > 1) return `option ${label} names the labels ${[...hits].join(', ')}`;
  }
  for (const [label, text] of row.options) if (OPTION_LABELS.includes(text)) return `option ${label} is a label itself (${JSON.stringify(text)})`;
  const k = row.options.length;
  if (k === 0) return 'no options';
  if (k < 2) return 'a single option';
  if (row.options.some(([l], i) => l !== OPTION_LABELS[i])) return 'gaps in the option labels';
  if (row.answer === null || !present.has(row.answer)) return 'the answer is not one of the options';
  return null;
}

/** Copy `i` of a row that can be rotated (see the file comment). */
export function rotateRow(row: McqRow, i: number, offset: number): McqRow {
  const k = row.options.length;
  const labels = OPTION_LABELS.slice(0, k);
  const j = labels.indexOf(row.answer!);
  const options: [string, string][] = row.options.map((_, m) => [labels[m]!, row.options[(m + i) % k]![1]]);
  // A copy's image names its original's index, as VLMEvalKit writes it; when that row itself only
  // refers to another, the copy names the row with the data, so a reader that follows one level finds it.
  const image = row.image !== null && isImageReference(row.image) ? row.image : String(row.index);
  return {
    ...row,
    index: row.index + offset * i,
    options,
    answer: labels[(((j - i) % k) + k) % k]!,
    image: row.image === null ? null : image,
    gIndex: row.index,
  };
}

export interface CircularExpansion {
  offset: number;
  /** Every row: originals (gIndex = index) and their copies, sorted by index. */
  rows: McqRow[];
  /** Rows kept single, with the reason, by index. */
  single: { index: number; reason: string }[];
}

/** Expands plain rows into circular form. */
export function expandCircular(rows: readonly McqRow[]): CircularExpansion {
  const offset = circularOffset(Math.max(...rows.map((r) => r.index)));
  const out: McqRow[] = [];
  const single: { index: number; reason: string }[] = [];
  for (const row of rows) {
    const reason = abnormalReason(row);
    out.push({ ...row, gIndex: row.index });
    if (reason !== null) {
      single.push({ index: row.index, reason });
      continue;
    }
    for (let i = 1; i < row.options.length; i++) out.push(rotateRow(row, i, offset));
  }
  out.sort((a, b) => a.index - b.index);
  return { offset, rows: out, single };
}

/** A question with all its copies, the original first. */
export interface CircularGroup {
  main: McqRow;
  copies: McqRow[];
}

export interface CircularSet {
  /** The offset between copies (null when the groups came from a g_index column). */
  offset: number | null;
  groups: CircularGroup[];
  /** Whether the rows already held the copies (else they were expanded here). */
  wasCircular: boolean;
  single: { index: number; reason: string }[];
}

/**
 * The offset at which `rows` already hold circular copies: the smallest 1e6·10^k at or above
 * which some index has its `index mod offset` among the rows (copies whose original is missing
 * are then reported, not re-expanded); null when no index reaches such an offset (a plain file).
 */
export function detectOffset(rows: readonly McqRow[]): number | null {
  const indices = new Set(rows.map((r) => r.index));
  const max = Math.max(...indices);
  for (let offset = 1e6; offset <= max; offset *= 10) {
    if (rows.some((r) => r.index >= offset && indices.has(r.index % offset))) return offset;
  }
  return null;
}

/**
 * Groups rows for CircularEval: by their `g_index` column when every row has one; else by
 * `index mod offset` when the file already holds copies (see detectOffset); else the rows are
 * expanded here. Copies are ordered by index, as VLMEvalKit sorts the predictions.
 */
export function circularGroups(rows: readonly McqRow[]): CircularSet {
  let keyed: McqRow[];
  let offset: number | null;
  let wasCircular = true;
  let single: { index: number; reason: string }[] = [];
  if (rows.length === 0) throw new Error('circular: no rows');
  if (rows.every((r) => r.gIndex !== null)) {
    keyed = [...rows];
    offset = null;
  } else {
    offset = detectOffset(rows);
    if (offset === null) {
      const exp = expandCircular(rows);
      keyed = exp.rows;
      offset = exp.offset;
      single = exp.single;
      wasCircular = false;
    } else {
      const o = offset;
      keyed = rows.map((r) => ({ ...r, gIndex: r.index % o }));
    }
  }
  const byMain = new Map<number, McqRow[]>();
  for (const r of keyed) {
    const g = r.gIndex!;
    let list = byMain.get(g);
    if (!list) byMain.set(g, (list = []));
    list.push(r);
  }
  const groups: CircularGroup[] = [];
  const orphans: number[] = [];
  for (const [g, list] of byMain) {
    list.sort((a, b) => a.index - b.index);
    const main = list.find((r) => r.index === g);
    if (!main) {
      orphans.push(...list.map((r) => r.index));
      continue;
    }
    groups.push({ main, copies: list });
  }
  if (orphans.length) {
    throw new Error(`circular: ${orphans.length} copies have no original question (indices ${orphans.slice(0, 10).join(', ')}${orphans.length > 10 ? ', ...' : ''})`);
  }
  groups.sort((a, b) => a.main.index - b.main.index);
  return { offset, groups, wasCircular, single };
}
