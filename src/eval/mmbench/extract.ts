// Which option an answer picks. The heuristics reproduce VLMEvalKit's `can_infer`
// (vlmeval/utils/matching_util.py) character for character, including Python's notion of
// whitespace and code-point lengths, because a different verdict on one answer changes the score.
import type { McqRow } from './data.js';

/** Characters Python's `str.split()` and `re` `\s` treat as whitespace (str.isspace). */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPLIT = new RegExp(`[${PY_SPACE}]+`, 'u');
/** "answer is B", "correct answer is **C**": only A–D, any case (VLMEvalKit's verbose-answer pattern). */
const VERBOSE_ANSWER = new RegExp(`(?:correct[${PY_SPACE}]+)?answer[${PY_SPACE}]+is[${PY_SPACE}]+\\**([ABCD])\\**`, 'iu');

/** Answers VLMEvalKit reads as refusals (option Z). */
export const REFUSALS: readonly string[] = [
  "Sorry, I can't help with images of people yet.",
  "I can't process this file.",
  "I'm sorry, but without the image provided",
  'Cannot determine the answer',
];

/** The marker VLMEvalKit's API wrappers return when a call fails; it is never read as an option. */
export const API_FAILURE = 'Failed to obtain answer via API';

/** Python's `s.split()`. */
export const pySplit = (s: string): string[] => s.split(PY_SPLIT).filter((w) => w !== '');

/** Length in code points, as Python's `len(str)`. */
export const pyLen = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/**
 * An option label stated in the answer: refusal phrases give 'Z'; after blanking `.()[],:;!*#{}`,
 * exactly one label among the words, its first occurrence among the last four words; no label but
 * a bare 'Z'; else "answer is X". null when none applies. (VLMEvalKit's extra check for 'A' used
 * as an article runs only with its VERBOSE environment variable set; it is not reproduced.)
 */
export function inferOption(answer: string, labels: readonly string[]): string | null {
  if (answer.includes(API_FAILURE)) return null;
  for (const r of REFUSALS) if (answer.includes(r)) return 'Z';
  const words = pySplit(answer.replace(/[.()[\],:;!*#{}]/g, ' '));
  const count = labels.filter((l) => words.includes(l)).length;
  if (count === 1) {
    for (const l of labels) {
      if (words.includes(l) && words.indexOf(l) > words.length - 5) return l;
    }
  } else if (count === 0 && words.includes('Z')) {
    return 'Z';
  }
  const m = VERBOSE_ANSWER.exec(answer);
  if (m && labels.includes(m[1]!.toUpperCase())) return m[1]!.toUpperCase();
  return null;
}

/**
 * The option whose text the answer contains, when exactly one does (case-insensitive), and the
 * answer is at most twice as long as all option texts together; else null.
 */
export function inferText(answer: string, options: readonly (readonly [string, string])[]): string | null {
  const a = answer.toLowerCase();
  if (pyLen(a) > 2 * options.reduce((s, [, t]) => s + pyLen(t), 0)) return null;
  const hits = options.filter(([, t]) => a.includes(t.toLowerCase()));
  return hits.length === 1 ? hits[0]![0] : null;
}

/** VLMEvalKit's `can_infer`: the label, then the text; null when the answer cannot be read. */
export function inferAnswer(answer: string, options: readonly (readonly [string, string])[]): string | null {
  return inferOption(answer, options.map(([l]) => l)) ?? inferText(answer, options);
}

/** Whether a text holds CJK ideographs (VLMEvalKit then uses the Chinese judge prompt). */
export const hasChinese = (s: string): boolean => /[\u4e00-\u9fff]/.test(s);

/** VLMEvalKit's `build_option_str`: the options as the judge prompt lists them. */
export function optionListing(options: readonly (readonly [string, string])[]): string {
  return `There are several options: \n${options.map(([l, t]) => `${l}. ${t}\n`).join('')}`;
}

// The MMBench answer-extraction prompts, word for word as VLMEvalKit sends them (a judge's output
// depends on every character). `{question}`, `{options}` and `{prediction}` are filled in.
const JUDGE_PROMPT_EN =
  'You are an AI assistant who will help me to match an answer with several options of a single-choice question. '
  + 'You are provided with a question, several options, and an answer, and you need to find which option is most similar to the answer. '
  + 'If the meaning of all options are significantly different from the answer, output Z. '
  + 'Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n'
  + 'Example 1: \n'
  + 'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\nAnswer: a cute teddy bear\nYour output: A\n'
  + 'Example 2: \n'
  + 'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\nAnswer: Spider\nYour output: Z\n'
  + 'Example 3: \n'
  + 'Question: {question}?\nOptions: {options}\nAnswer: {prediction}\nYour output: ';

const JUDGE_PROMPT_CN =
  '你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。'
  + '你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。'
  + '如果所有选项的意义都与答案显著不同，则输出 Z。'
  + '你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。'
  + '例 1:'
  + '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n'
  + '例 2: \n'
  + '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n'
  + '例 3: \n'
  + '问题: {question}?\n选项: {options}\n答案: {prediction}\n输出: ';

/** The judge's prompt for one answer (the Chinese one when the question has CJK ideographs). */
export function judgePrompt(row: McqRow, prediction: string): string {
  const fill: Record<string, string> = { question: row.question, options: optionListing(row.options), prediction };
  // One pass over the template, so braces inside the filled-in texts stay as they are.
  return (hasChinese(row.question) ? JUDGE_PROMPT_CN : JUDGE_PROMPT_EN).replace(/\{(question|options|prediction)\}/g, (_, k: string) => fill[k]!);
}

/** How an answer was read. */
export type ExtractionSource = 'heuristic' | 'judge' | 'random' | 'unresolved';

export interface Extraction {
  /** The chosen label ('Z': none of the options), or null when unresolved (exact matching). */
  option: string | null;
  source: ExtractionSource;
  /** What decided it: the answer, the judge's reply, or why it fell back. */
  log: string;
}

/** A judge: a chat model asked the extraction prompt. null means the call failed (after its own retries). */
export interface Judge {
  readonly name: string;
  ask(prompt: string, attempt: number): Promise<string | null>;
}

/** A seeded choice per question, independent of the order in which questions are judged. */
export function seededPick<T>(items: readonly T[], seed: number, index: number): T {
  // splitmix32 over (seed, index): a well-mixed 32-bit value from the pair.
  let h = (Math.imul(seed | 0, 0x9e3779b9) ^ Math.imul(index % 4294967296 | 0, 0x85ebca6b) ^ Math.floor(index / 4294967296)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  h = (h ^ (h >>> 15)) >>> 0;
  return items[h % items.length]!;
}

/**
 * VLMEvalKit's `extract_answer_from_item`: the heuristics; then, with a judge, up to 3 judge
 * replies read with the same heuristics (a failed call uses up a try); then a random choice among
 * the options and Z. VLMEvalKit draws it from Python's unseeded global generator; here it is
 * seeded per question index, so reruns agree. Without a judge (exact matching) it is unresolved.
 */
export async function extractAnswer(row: McqRow, prediction: string, judge: Judge | null, seed = 0, tries = 3): Promise<Extraction> {
  const direct = inferAnswer(prediction, row.options);
  if (direct !== null) return { option: direct, source: 'heuristic', log: prediction };
  if (!judge) return { option: null, source: 'unresolved', log: 'not matched by the heuristics; no judge (exact matching)' };
  const prompt = judgePrompt(row, prediction);
  const replies: string[] = [];
  for (let attempt = 0; attempt < tries; attempt++) {
    const reply = await judge.ask(prompt, attempt);
    if (reply === null || reply.includes(API_FAILURE)) {
      replies.push('(judge call failed)');
      continue;
    }
    const got = inferAnswer(reply, row.options);
    if (got !== null) return { option: got, source: 'judge', log: reply };
    replies.push(reply);
  }
  const labels = row.options.map(([l]) => l);
  // VLMEvalKit adds Z unless it is an option (where its list would be empty; we keep the options).
  const pool = labels.includes('Z') ? labels : [...labels, 'Z'];
  const option = pool.length ? seededPick(pool, seed, row.index) : 'Z';
  return { option, source: 'random', log: `judge gave no option in ${tries} tries (${replies.map((r) => JSON.stringify(r)).join(', ')}); random choice` };
}
