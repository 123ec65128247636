// WebDataset tar shards as img2dataset writes them: members `<key>.jpg|jpeg|png|webp` with
// `<key>.txt` (the caption) and/or `<key>.json` (its "caption" field used when there is no .txt),
// and optionally `<key>.cls` (a class index). Shards are indexed once when opened, so any sample
// can be read directly. Also the writer of such shards.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Dataset, DatasetSpec, Sample } from './dataset.js';
import { indexTar, writeTar } from './tar.js';
import { WEBDATASET_IMAGE_EXTENSIONS, type WarningSink, checkSampleIndex, consoleWarning } from './common.js';

/**
 * Expands shell-style braces as webdataset's shard lists use them: numeric ranges
 * `{00000..00009}` (zero-padded to the wider end when either end has a leading zero) and
 * alternatives `{a,b}`; groups may repeat and nest.
 */
export function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) {
    if (pattern.includes('}')) throw new Error(`unbalanced '}' in ${JSON.stringify(pattern)}`);
    return [pattern];
  }
  if (pattern.slice(0, open).includes('}')) throw new Error(`unbalanced '}' in ${JSON.stringify(pattern)}`);
  // The group's closing brace and its top-level commas (nested groups are expanded later).
  let depth = 0;
  let close = -1;
  const commas: number[] = [];
  for (let i = open; i < pattern.length && close < 0; i++) {
    const c = pattern[i];
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) close = i;
    else if (c === ',' && depth === 1) commas.push(i);
  }
  if (close < 0) throw new Error(`unbalanced '{' in ${JSON.stringify(pattern)}`);
  const head = pattern.slice(0, open);
  const body = pattern.slice(open + 1, close);
  const tails = expandBraces(pattern.slice(close + 1));
  let choices: string[];
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
  if (range) {
    const [a, b] = [range[1]!, range[2]!];
    const lo = parseInt(a, 10);
    const hi = parseInt(b, 10);
    if (hi < lo) throw new Error(`empty range {${body}} in ${JSON.stringify(pattern)}`);
    if (hi - lo > 10_000_000) throw new Error(`range {${body}} in ${JSON.stringify(pattern)} is too large`);
    const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
    const width = padded ? Math.max(a.length, b.length) : 0;
    choices = [];
    for (let v = lo; v <= hi; v++) choices.push(String(v).padStart(width, '0'));
  } else if (commas.length) {
    const bounds = [open, ...commas, close];
    choices = bounds.slice(1).flatMap((end, k) => expandBraces(pattern.slice(bounds[k]! + 1, end)));
  } else {
    // Not a brace group (e.g. a literal "{x}"): kept as written.
    choices = expandBraces(body).map((b) => `{${b}}`);
  }
  return choices.flatMap((c) => tails.map((t) => head + c + t));
}

/** The shard files of a spec: sources joined with `::`, each brace-expanded. */
export function expandShardList(spec: string): string[] {
  const parts = spec.split('::').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new Error('webdataset: empty shard list');
  return parts.flatMap(expandBraces);
}

/** webdataset's split of a member name: the key is the path up to the first '.' of the file name. */
function splitMemberName(name: string): [string, string] | null {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot <= slash + 1) return null;
  return [name.slice(0, dot), name.slice(dot + 1).toLowerCase()];
}

interface Part {
  readonly offset: number;
  readonly size: number;
}

interface Entry {
  readonly shard: number;
  readonly key: string;
  readonly image: Part & { readonly ext: string };
  readonly txt?: Part;
  readonly json?: Part;
  readonly cls?: Part;
}

export interface WebDatasetOptions {
  onWarning?: WarningSink;
}

export class WebDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly spec: DatasetSpec;

  private constructor(readonly source: string, readonly shards: readonly string[], private readonly entries: readonly Entry[]) {
    this.name = `webdataset(${shards.length === 1 ? shards[0] : `${shards.length} shards`})`;
    this.length = entries.length;
    this.spec = { source };
  }

  /**
   * Indexes the shards of `source` (a path, a brace pattern, or several joined with `::`). A
   * missing shard, or shards without a single image, is an error naming them; a shard cut short
   * is used up to the damage, with a warning.
   */
  static open(source: string, opts: WebDatasetOptions = {}): WebDataset {
    const warn = opts.onWarning ?? consoleWarning;
    const shards = expandShardList(source);
    const missing = shards.filter((s) => !fs.existsSync(s));
    if (missing.length) {
      const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
      throw new Error(`webdataset: shard not found: ${shown}`);
    }
    const entries: Entry[] = [];
    let withoutImage = 0;
    shards.forEach((shard, s) => {
      const index = indexTar(shard);
      if (index.truncated) warn(`webdataset: ${shard} is damaged (${index.truncated}); using the ${index.members.length} members before it`);
      const byKey = new Map<string, Record<string, Part>>();
      for (const m of index.members) {
        const split = splitMemberName(m.name);
        if (!split) continue;
        const [key, ext] = split;
        let parts = byKey.get(key);
        if (!parts) byKey.set(key, (parts = {}));
        parts[ext] = { offset: m.offset, size: m.size };
      }
      for (const [key, parts] of byKey) {
        const ext = WEBDATASET_IMAGE_EXTENSIONS.find((e) => parts[e] !== undefined);
        if (ext === undefined) {
          withoutImage++;
          continue;
        }
        entries.push({ shard: s, key, image: { ...parts[ext]!, ext }, txt: parts.txt, json: parts.json, cls: parts.cls });
      }
    });
    if (entries.length === 0) throw new Error(`webdataset: no samples with an image (${WEBDATASET_IMAGE_EXTENSIONS.join('/')}) in ${source}`);
    if (withoutImage) warn(`webdataset: ${withoutImage} keys in ${source} have no image and are left out`);
    return new WebDataset(source, shards, entries);
  }

  async get(index: number): Promise<Sample> {
    checkSampleIndex(this, index);
    const e = this.entries[index]!;
    const shard = this.shards[e.shard]!;
    const handle = await fs.promises.open(shard, 'r').catch((err: unknown) => {
      throw new Error(`webdataset: cannot open ${shard} for sample ${e.key}: ${(err as Error).message}`);
    });
    try {
      const read = async (p: Part): Promise<Uint8Array> => {
        const buf = new Uint8Array(p.size);
        const { bytesRead } = await handle.read(buf, 0, p.size, p.offset);
        if (bytesRead !== p.size) throw new Error(`webdataset: sample ${e.key} in ${shard}: short read (the shard changed since it was indexed?)`);
        return buf;
      };
      const bytes = await read(e.image);
      let caption: string | undefined;
      if (e.txt) {
        caption = Buffer.from(await read(e.txt)).toString('utf8').trim();
      } else if (e.json) {
        let meta: unknown;
        try {
          meta = JSON.parse(Buffer.from(await read(e.json)).toString('utf8'));
        } catch (err) {
          throw new Error(`webdataset: sample ${e.key} in ${shard}: invalid ${e.key}.json (${(err as Error).message})`, { cause: err });
        }
        const c = meta && typeof meta === 'object' ? (meta as Record<string, unknown>).caption : undefined;
        if (typeof c === 'string') caption = c.trim();
      }
      let label: number | undefined;
      if (e.cls) {
        const text = Buffer.from(await read(e.cls)).toString('utf8').trim();
        label = Number(text);
        if (!Number.isInteger(label) || label < 0) throw new Error(`webdataset: sample ${e.key} in ${shard}: ${e.key}.cls is not a class index: ${JSON.stringify(text)}`);
      }
      return { key: e.key, image: { kind: 'encoded', bytes, name: `${shard}:${e.key}.${e.image.ext}` }, caption, label };
    } finally {
      await handle.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A sample to write, with optional extra metadata stored as `<key>.json`. */
export type WebDatasetRecord = Sample & { readonly json?: Readonly<Record<string, unknown>> };

export interface WriteWebDatasetOptions {
  /** Samples per shard (default 10000, img2dataset's default). */
  samplesPerShard?: number;
}

/** The file name of shard `n` of a pattern with a printf-style `%d` / `%05d`. */
function shardName(pattern: string, n: number): string {
  return pattern.replace(/%(0?)(\d*)d/, (_, zero: string, width: string) => String(n).padStart(width ? Number(width) : 0, zero ? '0' : ' '));
}

function encodedExtension(name: string): string {
  const ext = path.extname(name).slice(1).toLowerCase();
  return WEBDATASET_IMAGE_EXTENSIONS.includes(ext) ? ext : '';
}

/**
 * Writes samples into WebDataset shards named by `pattern` (e.g. `out/shard-%05d.tar`, numbered
 * from 0): per sample `<key>.<ext>` (encoded images keep their bytes and format; pixels are
 * stored as PNG), `<key>.txt` for a caption, `<key>.cls` for a label, `<key>.json` for metadata.
 * Returns the shard files and the number of samples. Each shard appears complete or not at all.
 */
export async function writeWebDataset(
  samples: Iterable<WebDatasetRecord> | AsyncIterable<WebDatasetRecord>,
  pattern: string,
  opts: WriteWebDatasetOptions = {},
): Promise<{ shards: string[]; samples: number }> {
  const perShard = opts.samplesPerShard ?? 10000;
  if (!Number.isInteger(perShard) || perShard < 1) throw new Error(`writeWebDataset: samplesPerShard must be a positive integer, got ${perShard}`);
  const numbered = /%0?\d*d/.test(pattern);
  const shards: string[] = [];
  let pending: { name: string; data: Uint8Array }[] = [];
  let inShard = 0;
  let total = 0;
  let keys = new Set<string>();
  const flush = async (): Promise<void> => {
    if (inShard === 0) return;
    if (!numbered && shards.length > 0) throw new Error(`writeWebDataset: more than ${perShard} samples need several shards, but ${pattern} has no %d for the shard number`);
    const file = numbered ? shardName(pattern, shards.length) : pattern;
    await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    await writeTar(file, pending);
    shards.push(file);
    pending = [];
    inShard = 0;
    keys = new Set();
  };
  for await (const s of samples as AsyncIterable<WebDatasetRecord>) {
    const key = s.key;
    if (typeof key !== 'string' || key === '' || splitMemberName(`${key}.x`)?.[0] !== key) {
      throw new Error(`writeWebDataset: key ${JSON.stringify(key)} cannot name tar members (it must be non-empty with no '.' in its last path component)`);
    }
    if (keys.has(key)) throw new Error(`writeWebDataset: duplicate key ${key} in one shard`);
    keys.add(key);
    let ext: string;
    let bytes: Uint8Array;
    if (s.image.kind === 'encoded') {
      ext = encodedExtension(s.image.name);
      if (ext === '') {
        // A format WebDataset readers do not list (or a name without extension): store as PNG.
        ext = 'png';
        bytes = await sharp(s.image.bytes).png().toBuffer();
      } else {
        bytes = s.image.bytes;
      }
    } else {
      const { width, height, data } = s.image.image;
      ext = 'png';
      bytes = await sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
    }
    pending.push({ name: `${key}.${ext}`, data: bytes });
    if (s.caption !== undefined) pending.push({ name: `${key}.txt`, data: Buffer.from(s.caption, 'utf8') });
    if (s.label !== undefined) pending.push({ name: `${key}.cls`, data: Buffer.from(String(s.label), 'utf8') });
    if (s.json !== undefined) pending.push({ name: `${key}.json`, data: Buffer.from(JSON.stringify(s.json), 'utf8') });
    inShard++;
    total++;
    if (inShard === perShard) await flush();
  }
  await flush();
  return { shards, samples: total };
}
