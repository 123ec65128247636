// Scoring: CircularEval (a question counts only when every rotation is answered right) and the
// vanilla score (the original rotation alone), with accuracies overall and per split, l2-category
// and category. The decisions follow VLMEvalKit's `mcq_circular_eval` / `mcq_vanilla_eval`
// (vlmeval/dataset/utils/multiple_choice.py); the reports follow its `report_acc`.
import type { McqRow } from './data.js';
import type { CircularSet } from './circular.js';
import { type Extraction, type ExtractionSource, type Judge, extractAnswer, inferAnswer } from './extract.js';

export interface ScoreOptions {
  /** The LLM judge for answers the heuristics cannot read; null: exact matching. */
  judge: Judge | null;
  /** Seed of the random fallback (default 0). */
  seed?: number;
  /** Questions judged at once (default 8). */
  concurrency?: number;
  /** Called after each question is scored. */
  onProgress?: (done: number, total: number) => void;
}

export interface QuestionResult {
  index: number;
  category: string | null;
  l2Category: string | null;
  split: string | null;
  /** CircularEval: 1 when every copy is right. */
  circular: 0 | 1;
  /** The original rotation alone. */
  vanilla: 0 | 1;
  /** Each copy's prediction and how it was read (copies after the first wrong one are not judged). */
  copies: { index: number; answer: string; prediction: string; option: string | null; source: ExtractionSource | 'skipped' }[];
  log: string;
}

export interface Accuracy {
  overall: number;
  l2_category: Record<string, number>;
  category: Record<string, number>;
  split: Record<string, number>;
}

export interface MMBenchScore {
  circular: Accuracy;
  vanilla: Accuracy;
  counts: {
    questions: number;
    /** Rows (questions and their copies) with a prediction. */
    rows: number;
    /** Answers read by the heuristics, the judge, at random, and not at all (exact matching). */
    heuristic: number;
    judge: number;
    random: number;
    unresolved: number;
  };
  questions: QuestionResult[];
}

/** Runs `fn` over items with at most `limit` at once, keeping the order of results. */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`concurrency must be a positive integer, got ${limit}`);
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Mean of 0/1 hits, by key; keys sorted by code point as Python sorts strings. */
function groupMeans(results: readonly QuestionResult[], key: (r: QuestionResult) => string | null, hit: (r: QuestionResult) => number): Record<string, number> {
  const sums = new Map<string, [number, number]>();
  for (const r of results) {
    const k = key(r);
    if (k === null) continue;
    const s = sums.get(k) ?? [0, 0];
    s[0] += hit(r);
    s[1] += 1;
    sums.set(k, s);
  }
  const out: Record<string, number> = {};
  for (const k of [...sums.keys()].sort(codePointCompare)) out[k] = sums.get(k)![0] / sums.get(k)![1];
  return out;
}

export const codePointCompare = (a: string, b: string): number => {
  const ca = [...a].map((c) => c.codePointAt(0)!);
  const cb = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i]! - cb[i]!;
  return ca.length - cb.length;
};

/** Accuracy of one kind of hit. The mean is a plain sum over count, as numpy's mean of 0/1 values. */
export function accuracy(results: readonly QuestionResult[], hit: (r: QuestionResult) => number): Accuracy {
  return {
    overall: results.length ? results.reduce((s, r) => s + hit(r), 0) / results.length : Number.NaN,
    l2_category: groupMeans(results, (r) => r.l2Category, hit),
    category: groupMeans(results, (r) => r.category, hit),
    split: groupMeans(results, (r) => r.split ?? 'none', hit),
  };
}

/**
 * Scores predictions (by row index) of every row of the circular set. Every row needs a
 * prediction and every question an answer; missing ones are an error naming them, since a
 * missing copy would otherwise pass a question on fewer rotations.
 */
export async function scoreMMBench(set: CircularSet, predictions: ReadonlyMap<number, string>, options: ScoreOptions): Promise<MMBenchScore> {
  const missing: number[] = [];
  const noAnswer: number[] = [];
  for (const g of set.groups) {
    for (const c of g.copies) {
      if (!predictions.has(c.index)) missing.push(c.index);
      if (c.answer === null) noAnswer.push(c.index);
    }
  }
  if (noAnswer.length) throw new Error(`mmbench: ${noAnswer.length} rows have no answer (indices ${head(noAnswer)}); scoring needs the answer column (the test split has none)`);
  if (missing.length) throw new Error(missingPredictionsMessage(set, predictions, missing));

  const seed = options.seed ?? 0;
  const counts = { questions: set.groups.length, rows: 0, heuristic: 0, judge: 0, random: 0, unresolved: 0 };
  // One extraction per row: the vanilla pass reuses the circular pass's reading of the original.
  const memo = new Map<number, Promise<Extraction>>();
  const extract = (row: McqRow): Promise<Extraction> => {
    let p = memo.get(row.index);
    if (!p) {
      p = extractAnswer(row, predictions.get(row.index)!, options.judge, seed);
      memo.set(row.index, p);
    }
    return p;
  };

  let done = 0;
  const results = await mapPool(set.groups, options.concurrency ?? 8, async (g): Promise<QuestionResult> => {
    const copies: QuestionResult['copies'] = g.copies.map((c) => ({ index: c.index, answer: c.answer!, prediction: predictions.get(c.index)!, option: null, source: 'skipped' }));
    let circular: 0 | 1 = 1;
    let log = '';
    // Prefetch: the heuristics on every copy in order; a copy read as a wrong option fails the question at once.
    const pre: (string | null)[] = [];
    for (let i = 0; i < g.copies.length; i++) {
      const c = g.copies[i]!;
      const got = inferAnswer(copies[i]!.prediction, c.options);
      pre.push(got);
      if (got !== null) {
        copies[i]!.option = got;
        copies[i]!.source = 'heuristic';
        memo.set(c.index, Promise.resolve({ option: got, source: 'heuristic', log: copies[i]!.prediction }));
      }
      if (got !== null && got !== c.answer) {
        circular = 0;
        log = `rotation ${i} (index ${c.index}): answer ${c.answer}, read ${got} by the heuristics`;
        break;
      }
    }
    if (circular === 1 && pre.length === g.copies.length && pre.some((p) => p === null)) {
      for (let i = 0; i < g.copies.length; i++) {
        if (pre[i] !== null) continue;
        const c = g.copies[i]!;
        const ex = await extract(c);
        copies[i]!.option = ex.option;
        copies[i]!.source = ex.source;
        if (ex.option !== c.answer) {
          circular = 0;
          log = `rotation ${i} (index ${c.index}): answer ${c.answer}, read ${ex.option ?? 'nothing'} (${ex.source}: ${ex.log})`;
          break;
        }
      }
    }
    if (circular === 1) log = 'every rotation right';
    const v = await extract(g.main);
    copies[0]!.option = v.option;
    copies[0]!.source = v.source;
    done++;
    options.onProgress?.(done, set.groups.length);
    return {
      index: g.main.index, category: g.main.category, l2Category: g.main.l2Category, split: g.main.split,
      circular, vanilla: v.option === g.main.answer ? 1 : 0, copies, log,
    };
  });
  for (const r of results) {
    for (const c of r.copies) {
      if (c.source !== 'skipped') counts[c.source]++;
    }
    counts.rows += r.copies.length;
  }
  return {
    circular: accuracy(results, (r) => r.circular),
    vanilla: accuracy(results, (r) => r.vanilla),
    counts,
    questions: results,
  };
}

/**
 * The error for rows without a prediction. Questions whose original row has a prediction but whose
 * rotated copies lack some are named with those copies: such predictions were likely made on the
 * plain file, and the message says how to write the rotated rows to predict.
 */
function missingPredictionsMessage(set: CircularSet, predictions: ReadonlyMap<number, string>, missing: readonly number[]): string {
  const message = `mmbench: no prediction for ${missing.length} rows (indices ${head(missing)})`;
  const lacking = set.groups.filter((g) => predictions.has(g.main.index) && g.copies.some((c) => !predictions.has(c.index)));
  if (lacking.length === 0) return message;
  const named = lacking.slice(0, 5).map((g) => `question ${g.main.index}: ${g.copies.filter((c) => !predictions.has(c.index)).map((c) => c.index).join(', ')}`);
  const how = set.wasCircular
    ? 'predict every row of the data file, its rotated copies included'
    : 'the data file is plain, so its rotations were made here: write them with '
      + '`glimpse eval mmbench --data <plain.tsv> --circularize <circular.tsv>` (writeCircularTSV in the library), '
      + 'predict every row of that file, and score with it as --data (docs/MMBENCH.md)';
  return `${message}. CircularEval asks each question once per rotation of its options, and ${lacking.length} questions `
    + `lack predictions for their rotated copies (${named.join('; ')}${lacking.length > 5 ? '; ...' : ''}): ${how}`;
}

const head = (xs: readonly number[]): string => `${xs.slice(0, 10).join(', ')}${xs.length > 10 ? ', ...' : ''}`;
