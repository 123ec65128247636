// Where predictions come from: an OpenAI-compatible vision chat endpoint, Glimpse's own models
// as multiple-choice scorers (CLIP/SigLIP similarity, BLIP image-text matching), or a file of
// predictions made elsewhere.
import fs from 'node:fs';
import sharp from 'sharp';
import { type McqRow, type MMBenchData, parseIndex, readTable, resolveImageRow, rowImage, type RowImage } from './data.js';
import { type AnswerCache, type ChatClient, ChatError, sha256 } from './client.js';
import { mapPool } from './score.js';
import { isNA, pandasColumnText } from '../../data/table.js';
import { type VisionLanguageModel, embedImages, embedTexts, fillTemplate, rows as tensorRows } from '../../tasks/zeroshot.js';
import { type BlipTaskModel, itmScore } from '../../tasks/caption.js';

/** Produces one prediction (free text or an option label) per row. */
export interface McqPredictor {
  readonly name: string;
  predict(data: MMBenchData, rows: readonly McqRow[]): Promise<Map<number, string>>;
}

/** VLMEvalKit's MMBench prompt: the hint, the question, the options and the instruction. */
export function mmbenchPrompt(row: McqRow): string {
  let prompt = row.hint !== null ? `Hint: ${row.hint}\n` : '';
  prompt += `Question: ${row.question}\n`;
  if (row.options.length) {
    prompt += `Options:\n${row.options.map(([l, t]) => `${l}. ${t}\n`).join('')}`;
    prompt += 'Please select the correct answer from the options above. \n';
  }
  return prompt;
}

/**
 * Each row's image, decoded from base64 once per distinct image (copies share their original's)
 * and checked by reading its header; an error names the index.
 */
async function loadImages(data: MMBenchData, rows: readonly McqRow[]): Promise<Map<number, RowImage>> {
  const out = new Map<number, RowImage>();
  const shared = new Map<string, RowImage>();
  const checks: Promise<void>[] = [];
  for (const row of rows) {
    const holder = resolveImageRow(data.byIndex, row);
    if (typeof holder === 'string') throw new Error(holder);
    const key = holder.image !== null ? `row ${holder.index}` : `path ${row.imagePath}`;
    let img = shared.get(key);
    if (!img) {
      img = rowImage(data, row);
      shared.set(key, img);
      checks.push(sharp(img.bytes).metadata().then(
        (m) => {
          if (!m.width || !m.height) throw new Error('no size');
        },
        (e: Error) => {
          throw new Error(`index ${row.index}: the image cannot be decoded (${e.message})`);
        },
      ));
    }
    out.set(row.index, img);
  }
  await Promise.all(checks);
  return out;
}

export interface EndpointPredictorOptions {
  /** Answers on disk; rows found there are not asked again. */
  cache?: AnswerCache;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * A vision chat model behind an OpenAI-compatible endpoint: per row, the image as a data URL and
 * the MMBench prompt in one user message. Each answer is cached as it arrives; when some rows
 * fail for good the others are kept and the error lists the failed indices (a rerun asks only those).
 */
export function endpointPredictor(client: ChatClient, options: EndpointPredictorOptions = {}): McqPredictor {
  return {
    name: client.model,
    async predict(data, rows) {
      const images = await loadImages(data, rows);
      const out = new Map<number, string>();
      const todo: { row: McqRow; key: string; image: RowImage; prompt: string }[] = [];
      const digests = new Map<number, string>();
      for (const row of rows) {
        const img = images.get(row.index)!;
        let digest = digests.get(img.holder);
        if (!digest) digests.set(img.holder, (digest = sha256(img.bytes)));
        const prompt = mmbenchPrompt(row);
        const key = sha256('mmbench', client.model, String(row.index), prompt, digest);
        const hit = options.cache?.get(key);
        if (hit !== undefined) out.set(row.index, hit);
        else todo.push({ row, key, prompt, image: img });
      }
      let done = rows.length - todo.length;
      // Each request's failure, or null; in the data's order, whichever order the requests end in.
      const outcomes = await mapPool(todo, options.concurrency ?? 4, async (t) => {
        let failure: string | null = null;
        try {
          // The data URL is built per request: a whole benchmark's worth would not fit in memory.
          const url = `data:${t.image.mime};base64,${t.image.bytes.toString('base64')}`;
          const answer = await client.complete([{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: t.prompt }] }]);
          options.cache?.put(t.key, answer, { index: t.row.index });
          out.set(t.row.index, answer);
        } catch (e) {
          if (e instanceof ChatError && e.unreachable) throw e;
          failure = `index ${t.row.index}: ${(e as Error).message}`;
        }
        options.onProgress?.(++done, rows.length);
        return failure;
      });
      const failures = outcomes.filter((f): f is string => f !== null);
      if (failures.length) {
        throw new Error(`${client.url}: ${failures.length} of ${rows.length} rows got no answer (the ${out.size} answered are kept; rerun to ask the rest):\n  ${failures.slice(0, 10).join('\n  ')}`);
      }
      return out;
    },
  };
}

export interface ScorerOptions {
  /** The text scored against the image for an option, with {} for the option text (default '{}'). */
  template?: string;
  batchSize?: number;
}

/** The label of the highest score (the first on ties). */
function argmaxLabel(row: McqRow, score: (text: string) => number): string {
  let best = '';
  let bestScore = -Infinity;
  for (const [label, text] of row.options) {
    const s = score(text);
    if (s > bestScore) {
      best = label;
      bestScore = s;
    }
  }
  if (best === '') throw new Error(`index ${row.index}: no options to score`);
  return best;
}

/**
 * A CLIP or SigLIP model answering by similarity: the option whose text embedding is closest to
 * the image's (cosine; the logit scale and bias do not change the order). Each distinct image and
 * text is embedded once, so the rotations of a question cost nothing extra.
 */
export function dualEncoderPredictor(vl: VisionLanguageModel, options: ScorerOptions = {}): McqPredictor {
  const template = options.template ?? '{}';
  return {
    name: vl.name,
    async predict(data, rows) {
      const images = await loadImages(data, rows);
      const holders = [...new Set([...images.values()].map((i) => i.holder))];
      const bytesOf = new Map([...images.values()].map((i) => [i.holder, i.bytes]));
      const imageEmb = tensorRows(await embedImages(vl, holders.map((h) => bytesOf.get(h)!), { batchSize: options.batchSize }));
      const imageRow = new Map(holders.map((h, i) => [h, imageEmb[i]!]));
      const texts = [...new Set(rows.flatMap((r) => r.options.map(([, t]) => fillTemplate(template, t))))];
      const textEmb = tensorRows(await embedTexts(vl, texts, { batchSize: options.batchSize }));
      const textRow = new Map(texts.map((t, i) => [t, textEmb[i]!]));
      const out = new Map<number, string>();
      for (const row of rows) {
        const img = imageRow.get(images.get(row.index)!.holder)!;
        out.set(row.index, argmaxLabel(row, (t) => dot(img, textRow.get(fillTemplate(template, t))!)));
      }
      return out;
    },
  };
}

const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

/**
 * A BLIP retrieval model answering by image-text matching: the option with the highest ITM
 * probability. Each (image, text) pair is scored once.
 */
export function blipItmPredictor(blip: BlipTaskModel, options: ScorerOptions = {}): McqPredictor {
  const template = options.template ?? '{}';
  return {
    name: blip.name,
    async predict(data, rows) {
      const images = await loadImages(data, rows);
      const scores = new Map<string, number>();
      const out = new Map<number, string>();
      for (const row of rows) {
        const img = images.get(row.index)!;
        const texts = row.options.map(([, t]) => fillTemplate(template, t)).filter((t) => !scores.has(`${img.holder}\0${t}`));
        if (texts.length) {
          const { itm } = await itmScore(blip, [img.bytes], texts);
          texts.forEach((t, i) => scores.set(`${img.holder}\0${t}`, itm[i]!));
        }
        out.set(row.index, argmaxLabel(row, (t) => scores.get(`${img.holder}\0${fillTemplate(template, t)}`)!));
      }
      return out;
    },
  };
}

/**
 * Predictions made elsewhere: a TSV or CSV (as VLMEvalKit writes them, with `index` and
 * `prediction` columns among others) or JSONL (objects with `index` and `prediction`). As
 * VLMEvalKit reads them, a missing prediction is the text 'nan' and numbers print as pandas
 * parsed them. Duplicate or non-integer indices are errors.
 */
export function readPredictions(file: string): Map<number, string> {
  const out = new Map<number, string>();
  const add = (index: number | null, prediction: string, where: string) => {
    if (index === null) throw new Error(`${file}: ${where}: index is not an integer`);
    if (out.has(index)) throw new Error(`${file}: ${where}: index ${index} appears twice`);
    out.set(index, prediction);
  };
  if (/\.jsonl?$/i.test(file)) {
    const text = fs.readFileSync(file, 'utf8');
    const records: unknown[] = [];
    if (file.toLowerCase().endsWith('.json')) {
      const all = JSON.parse(text) as unknown;
      if (!Array.isArray(all)) throw new Error(`${file}: expected a JSON array of {index, prediction}`);
      records.push(...all);
    } else {
      text.split('\n').forEach((line, i) => {
        if (!line.trim()) return;
        try {
          records.push(JSON.parse(line));
        } catch {
          throw new Error(`${file}: line ${i + 1} is not JSON`);
        }
      });
    }
    records.forEach((r, i) => {
      const rec = r as { index?: unknown; prediction?: unknown };
      const where = `record ${i + 1}`;
      if (rec === null || typeof rec !== 'object' || !('index' in rec) || !('prediction' in rec)) throw new Error(`${file}: ${where} lacks index or prediction`);
      const index = typeof rec.index === 'number' ? (Number.isSafeInteger(rec.index) ? rec.index : null) : parseIndex(String(rec.index));
      const p = rec.prediction;
      add(index, p === null || p === undefined ? 'nan' : typeof p === 'string' ? p : String(p), where);
    });
    return out;
  }
  if (/\.xlsx$/i.test(file)) throw new Error(`${file}: xlsx is not read; save the sheet as TSV or CSV`);
  const table = readTable(file);
  const names = table.header.map((h) => h.toLowerCase());
  const ii = names.indexOf('index');
  const pi = names.indexOf('prediction');
  if (ii < 0 || pi < 0) throw new Error(`${file}: needs columns index and prediction (has ${table.header.join(', ')})`);
  const preds = pandasColumnText(table.rows.map((r) => r[pi]!));
  table.rows.forEach((r, k) => add(isNA(r[ii]!) ? null : parseIndex(r[ii]!), preds[k] ?? 'nan', `line ${table.lines[k]}`));
  return out;
}
