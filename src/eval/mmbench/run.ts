// One MMBench run: read the questions, put them in circular form, get predictions (from a file or
// a model, cached), read the answers (heuristics, then the judge), score and report.
import fs from 'node:fs';
import path from 'node:path';
import { type McqRow, type MMBenchData, OPTION_LABELS, readMMBench } from './data.js';
import { type CircularSet, circularGroups, detectOffset, expandCircular } from './circular.js';
import type { Judge } from './extract.js';
import type { McqPredictor } from './models.js';
import { type MMBenchScore, scoreMMBench } from './score.js';
import { type MMBenchSummary, writeReports } from './report.js';

export interface MMBenchRunOptions {
  /** The MMBench TSV (plain or already circular). */
  data: string;
  /** Predictions by row index (a file read with readPredictions), or a model that makes them. */
  predictions?: ReadonlyMap<number, string>;
  predictor?: McqPredictor;
  /** null: exact matching. */
  judge: Judge | null;
  seed?: number;
  /** Where reports go (none when omitted). */
  out?: string;
  /** Questions judged at once. */
  concurrency?: number;
  onProgress?: (stage: 'predict' | 'score', done: number, total: number) => void;
}

export interface MMBenchRun {
  score: MMBenchScore;
  summary: MMBenchSummary;
  warnings: string[];
  files: string[];
}

export async function runMMBench(options: MMBenchRunOptions): Promise<MMBenchRun> {
  if (!options.predictions === !options.predictor) throw new Error('mmbench: give either predictions or a model (predictor), not both or neither');
  const data = readMMBench(options.data, { requireAnswers: true, requireImages: options.predictor !== undefined });
  const set = circularGroups(data.rows);
  const warnings = [...data.warnings, ...set.single.map((s) => `index ${s.index}: kept single in circular form (${s.reason})`)];
  const rows = set.groups.flatMap((g) => g.copies);
  let predictions = options.predictions;
  if (options.predictor) {
    // Copies made here refer to their original's image, which the expanded rows' lookup must find.
    const expandedData: MMBenchData = { ...data, byIndex: new Map(rows.map((r) => [r.index, r])) };
    predictions = await options.predictor.predict(expandedData, rows);
  } else {
    const known = new Set(rows.map((r) => r.index));
    const extra = [...predictions!.keys()].filter((k) => !known.has(k));
    if (extra.length) warnings.push(`${extra.length} predictions are for indices not in the data (e.g. ${extra.slice(0, 5).join(', ')}); ignored`);
  }
  const score = await scoreMMBench(set, predictions!, {
    judge: options.judge, seed: options.seed, concurrency: options.concurrency,
    onProgress: options.onProgress && ((d, t) => options.onProgress!('score', d, t)),
  });
  const summary: MMBenchSummary = {
    circular: { overall: score.circular.overall, l2_category: score.circular.l2_category, category: score.circular.category, split: score.circular.split },
    vanilla: { overall: score.vanilla.overall, l2_category: score.vanilla.l2_category, category: score.vanilla.category, split: score.vanilla.split },
    counts: score.counts,
    judge: options.judge?.name ?? 'exact_matching',
    model: options.predictor?.name ?? 'predictions file',
    data: options.data,
    circular_offset: set.offset,
    expanded: !set.wasCircular,
    warnings: warnings.length,
  };
  const files = options.out ? writeReports(options.out, score, summary) : [];
  return { score, summary, warnings, files };
}

const tsvCell = (v: string | number | null): string => {
  const s = v === null ? '' : String(v);
  return /["\t\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** A TSV of rows in MMBench's layout (with g_index), quoted where pandas needs it. */
export function formatMMBenchTSV(rows: readonly McqRow[]): string {
  const labels = [...OPTION_LABELS].filter((l) => rows.some((r) => r.options.some(([x]) => x === l)));
  const hasPath = rows.some((r) => r.imagePath !== null);
  const header = ['index', 'question', 'hint', ...labels, 'answer', 'category', 'l2-category', 'split', 'image', ...(hasPath ? ['image_path'] : []), 'g_index'];
  const lines = [header.join('\t')];
  for (const r of rows) {
    const opt = new Map(r.options);
    lines.push([r.index, r.question, r.hint, ...labels.map((l) => opt.get(l) ?? null), r.answer, r.category, r.l2Category, r.split, r.image,
      ...(hasPath ? [r.imagePath] : []), r.gIndex ?? r.index].map(tsvCell).join('\t'));
  }
  return `${lines.join('\n')}\n`;
}

/** Writes the circular form of a plain MMBench TSV; returns the counts and the rows kept single. */
export function writeCircularTSV(input: string, output: string): { questions: number; rows: number; offset: number; single: CircularSet['single'] } {
  const data = readMMBench(input);
  if (data.rows.every((r) => r.gIndex !== null) || detectOffset(data.rows) !== null) throw new Error(`${input}: already in circular form (it holds rotated copies)`);
  const exp = expandCircular(data.rows);
  fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
  fs.writeFileSync(output, formatMMBenchTSV(exp.rows));
  return { questions: data.rows.length, rows: exp.rows.length, offset: exp.offset, single: exp.single };
}
