// Reports of a scored run: the JSON summary, CSVs in VLMEvalKit's `_acc.csv` layout (one row per
// split: Overall, then the l2-categories and categories under MMBench's abbreviations, sorted by
// name), a per-question CSV, and a table for people.
import fs from 'node:fs';
import path from 'node:path';
import { type MMBenchScore, type QuestionResult, accuracy, codePointCompare } from './score.js';
import { pythonFloatRepr, toCSV } from '../../data/table.js';

/** MMBench's abbreviations of its six l2-categories, as VLMEvalKit's reports write them. */
export const MMBENCH_ABBREVIATIONS: Readonly<Record<string, string>> = {
  coarse_perception: 'CP',
  'finegrained_perception (instance-level)': 'FP-S',
  'finegrained_perception (cross-instance)': 'FP-C',
  logic_reasoning: 'LR',
  relation_reasoning: 'RR',
  attribute_reasoning: 'AR',
};

const abbr = (name: string): string => MMBENCH_ABBREVIATIONS[name] ?? name;

/** The one-object summary (`--json` prints it last). */
export interface MMBenchSummary {
  circular: { overall: number; l2_category: Record<string, number>; category: Record<string, number>; split: Record<string, number> };
  vanilla: { overall: number; l2_category: Record<string, number>; category: Record<string, number>; split: Record<string, number> };
  counts: MMBenchScore['counts'];
  judge: string;
  model: string;
  data: string;
  circular_offset: number | null;
  expanded: boolean;
  warnings: number;
}

/** The accuracy table per split in VLMEvalKit's layout: header, then one row per split. */
export function accTable(results: readonly QuestionResult[], hit: (r: QuestionResult) => number): { header: string[]; rows: (string | number)[][] } {
  const splits = [...new Set(results.map((r) => r.split ?? 'none'))].sort(codePointCompare);
  const l2 = [...new Set(results.map((r) => r.l2Category).filter((x): x is string => x !== null))].sort(codePointCompare);
  const cat = [...new Set(results.map((r) => r.category).filter((x): x is string => x !== null))].sort(codePointCompare);
  const header = ['split', 'Overall', ...l2.map(abbr), ...cat.map(abbr)];
  const rows = splits.map((sp) => {
    const sub = results.filter((r) => (r.split ?? 'none') === sp);
    const acc = accuracy(sub, hit);
    return [sp, acc.overall, ...l2.map((k) => acc.l2_category[k] ?? Number.NaN), ...cat.map((k) => acc.category[k] ?? Number.NaN)];
  });
  return { header, rows };
}

const pct = (x: number): string => (Number.isNaN(x) ? '   n/a' : `${(100 * x).toFixed(2).padStart(6)}`);

/** A readable table: circular and vanilla accuracy overall, per split, l2-category and category. */
export function formatTable(score: MMBenchScore): string {
  const lines: string[] = [];
  const c = score.circular;
  const v = score.vanilla;
  const names = (rec: Record<string, number>) => Object.keys(rec);
  const rows: [string, number, number][] = [['Overall', c.overall, v.overall]];
  const section = (title: string, ks: string[], cr: Record<string, number>, vr: Record<string, number>) => {
    if (!ks.length) return;
    rows.push([`-- ${title}`, Number.NaN, Number.NaN]);
    for (const k of ks) rows.push([`  ${abbr(k) === k ? k : `${k} (${abbr(k)})`}`, cr[k]!, vr[k]!]);
  };
  if (names(c.split).length > 1) section('split', names(c.split), c.split, v.split);
  section('l2-category', names(c.l2_category), c.l2_category, v.l2_category);
  section('category', names(c.category), c.category, v.category);
  const width = Math.max(...rows.map(([n]) => n.length), 8);
  lines.push(`${''.padEnd(width)}  circular  vanilla`);
  for (const [n, a, b] of rows) lines.push(n.startsWith('--') ? n : `${n.padEnd(width)}    ${pct(a)}   ${pct(b)}`);
  const k = score.counts;
  lines.push(`questions ${k.questions}, rows ${k.rows}; answers read by heuristics ${k.heuristic}, judge ${k.judge}, random ${k.random}, unresolved ${k.unresolved}`);
  return lines.join('\n');
}

/** Writes results.json, acc_circular.csv, acc_vanilla.csv, questions.csv and report.txt into `dir`. */
export function writeReports(dir: string, score: MMBenchScore, summary: MMBenchSummary): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [];
  files.push(['results.json', `${JSON.stringify({ ...summary, questions: score.questions }, null, 1)}\n`]);
  for (const [name, hit] of [['acc_circular.csv', (r: QuestionResult) => r.circular], ['acc_vanilla.csv', (r: QuestionResult) => r.vanilla]] as const) {
    const t = accTable(score.questions, hit);
    // Numbers as pandas writes a float column: Python's repr, and nothing for NaN.
    files.push([name, toCSV(t.header, t.rows.map((r) => r.map((v) => (typeof v === 'number' ? (Number.isNaN(v) ? '' : pythonFloatRepr(v)) : v))))]);
  }
  files.push(['questions.csv', toCSV(
    ['index', 'split', 'l2-category', 'category', 'circular_hit', 'vanilla_hit', 'rotations', 'options_read', 'sources', 'log'],
    score.questions.map((q) => [q.index, q.split, q.l2Category, q.category, q.circular, q.vanilla, q.copies.length,
      q.copies.map((c) => c.option ?? '-').join(''), q.copies.map((c) => c.source).join(' '), q.log]),
  )]);
  files.push(['report.txt', `${formatTable(score)}\n`]);
  const written: string[] = [];
  for (const [name, text] of files) {
    const p = path.join(dir, name);
    const tmp = `${p}.tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, p);
    written.push(p);
  }
  return written;
}
