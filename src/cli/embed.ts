// `glimpse embed`: L2-normalised embeddings of images (paths or globs) or of texts.
import fs from 'node:fs';
import path from 'node:path';
import { embedImages, embedTexts, loadVisionLanguageModel, rows } from '../tasks/zeroshot.js';
import { type ModelLoadingOptions, modelLoadOptions } from './args.js';

const GLOB = /[*?[]/;

function segmentRegex(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = segment.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function walk(base: string, segments: string[], out: string[]): void {
  if (segments.length === 0) {
    if (fs.existsSync(base) && fs.statSync(base).isFile()) out.push(base);
    return;
  }
  const [seg, ...rest] = segments as [string, ...string[]];
  if (seg === '**') {
    walk(base, rest, out);
    for (const d of fs.readdirSync(base, { withFileTypes: true })) {
      if (d.isDirectory() && !d.name.startsWith('.')) walk(path.join(base, d.name), segments, out);
    }
    return;
  }
  if (!GLOB.test(seg)) {
    const next = path.join(base, seg);
    if (fs.existsSync(next)) walk(next, rest, out);
    return;
  }
  if (!fs.existsSync(base) || !fs.statSync(base).isDirectory()) return;
  const re = segmentRegex(seg);
  for (const name of fs.readdirSync(base).sort()) {
    if (name.startsWith('.') && !seg.startsWith('.')) continue;
    if (re.test(name)) walk(path.join(base, name), rest, out);
  }
}

/**
 * Image paths from arguments: plain paths (which must exist) and globs (`*`, `?`, `[abc]`, and
 * `**` for any depth), expanded in sorted order; each file once, in argument order.
 */
export function expandPaths(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    if (!GLOB.test(p)) {
      if (!fs.existsSync(p)) throw new Error(`${p}: no such file`);
      if (!fs.statSync(p).isFile()) throw new Error(`${p}: not a file`);
      out.push(p);
      continue;
    }
    const abs = path.isAbsolute(p);
    const parts = p.split(/[\\/]+/).filter((s) => s !== '');
    const found: string[] = [];
    walk(abs ? path.parse(path.resolve(p)).root : '.', parts, found);
    if (found.length === 0) throw new Error(`${p}: no files match`);
    out.push(...found.map((f) => (abs ? f : path.normalize(f))).sort());
  }
  return [...new Set(out)];
}

export interface EmbedCommandOptions extends ModelLoadingOptions {
  /** A registered model name or a model folder (CLIP or SigLIP). */
  model: string;
  /** Embed these texts (the positional arguments are then texts, not images). */
  text?: boolean;
  json?: boolean;
  batchSize?: number;
}

/**
 * What `glimpse embed` prints: with --json, an array of {input, embedding}; otherwise one line
 * per input, its name then the embedding's values separated by spaces.
 */
export async function embedCommand(inputs: readonly string[], options: EmbedCommandOptions): Promise<string> {
  if (inputs.length === 0) throw new Error('embed: no inputs');
  const vl = await loadVisionLanguageModel(options.model, modelLoadOptions(options));
  const names = options.text ? [...inputs] : expandPaths(inputs);
  const emb = options.text
    ? await embedTexts(vl, names, { batchSize: options.batchSize })
    : await embedImages(vl, names, { batchSize: options.batchSize });
  const vectors = rows(emb);
  if (options.json) return JSON.stringify(names.map((input, i) => ({ input, embedding: vectors[i] })));
  return names.map((n, i) => `${n}\t${vectors[i]!.map((v) => v.toPrecision(6)).join(' ')}`).join('\n');
}
