// A small MMBench-format TSV with real images (PNG and JPEG made with sharp), built at run time,
// and helpers that answer its questions in chosen ways.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { McqRow } from '../../src/eval/mmbench/data.js';

export interface FixtureQuestion {
  index: number;
  question: string;
  hint: string | null;
  options: string[];
  /** The correct option's text. */
  correct: string;
  category: string;
  l2: string;
  /** 'png' / 'jpeg' with a colour, or the index of the row whose image it shares. */
  image: { format: 'png' | 'jpeg'; rgb: [number, number, number] } | { ref: number };
}

export const QUESTIONS: FixtureQuestion[] = [
  { index: 1, question: 'What colour fills the image?', hint: null, options: ['red', 'green', 'blue', 'yellow'], correct: 'red',
    category: 'image_colour', l2: 'coarse_perception', image: { format: 'png', rgb: [220, 20, 20] } },
  { index: 2, question: 'Is the image bright or dark?', hint: 'Look at all of it', options: ['dark', 'bright'], correct: 'bright',
    category: 'image_brightness', l2: 'coarse_perception', image: { format: 'jpeg', rgb: [240, 240, 230] } },
  { index: 3, question: 'Which animal is drawn?', hint: 'A "tricky"\tone', options: ['cat', 'dog', 'bird'], correct: 'bird',
    category: 'animal', l2: 'finegrained_perception (instance-level)', image: { ref: 1 } },
  // Options that are labels themselves: VLMEvalKit does not rotate this question.
  { index: 4, question: 'Which letter is shown?', hint: null, options: ['A', 'B', 'neither'], correct: 'neither',
    category: 'letters', l2: 'logic_reasoning', image: { format: 'png', rgb: [10, 10, 200] } },
  { index: 5, question: 'What colour is it?', hint: null, options: ['purple', 'orange', 'white', 'black'], correct: 'white',
    category: 'image_colour', l2: 'coarse_perception', image: { format: 'jpeg', rgb: [250, 250, 250] } },
  { index: 6, question: 'Which object is it?', hint: null, options: ['tree', 'house', 'car', 'boat'], correct: 'house',
    category: 'object', l2: 'finegrained_perception (instance-level)', image: { format: 'png', rgb: [120, 80, 40] } },
  { index: 7, question: 'How many sides does a square have?', hint: null, options: ['three', 'four'], correct: 'four',
    category: 'shape', l2: 'logic_reasoning', image: { format: 'png', rgb: [0, 128, 0] } },
];

export async function imageBase64(format: 'png' | 'jpeg', rgb: [number, number, number]): Promise<string> {
  const img = sharp({ create: { width: 20, height: 16, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  return (await (format === 'png' ? img.png() : img.jpeg()).toBuffer()).toString('base64');
}

const cell = (s: string | null): string => (s === null ? '' : /["\t\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** Writes the questions as an MMBench TSV (split dev) and returns its path. */
export async function writeFixtureTSV(dir: string, questions: readonly FixtureQuestion[] = QUESTIONS, name = 'mmbench.tsv'): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const lines = ['index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\tl2-category\tsplit\timage'];
  for (const q of questions) {
    const opts = ['A', 'B', 'C', 'D'].map((_, i) => q.options[i] ?? null);
    const answer = 'ABCD'[q.options.indexOf(q.correct)]!;
    const image = 'ref' in q.image ? String(q.image.ref) : await imageBase64(q.image.format, q.image.rgb);
    lines.push([String(q.index), q.question, q.hint, ...opts, answer, q.category, q.l2, 'dev', image].map(cell).join('\t'));
  }
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** The question a row (or a rotated copy) asks, found by its text. */
export function questionOf(question: string): FixtureQuestion {
  const q = QUESTIONS.find((x) => x.question === question);
  if (!q) throw new Error(`no fixture question ${JSON.stringify(question)}`);
  return q;
}

/** The label of the correct option in a row's (possibly rotated) options. */
export function correctLabel(row: Pick<McqRow, 'question' | 'options'>): string {
  const q = questionOf(row.question);
  return row.options.find(([, t]) => t === q.correct)![0];
}

/** A label of a wrong option. */
export function wrongLabel(row: Pick<McqRow, 'question' | 'options'>): string {
  const q = questionOf(row.question);
  return row.options.find(([, t]) => t !== q.correct)![0];
}
