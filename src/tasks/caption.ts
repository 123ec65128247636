// BLIP tasks: image captioning (greedy, beam search, nucleus sampling) and image-text matching.
//
// Decoding keeps each decoder layer's keys and values between steps (a key/value cache, as HF's
// past_key_values): the prompt is fed once, then one token per row a step, and the image
// embeddings' cross-attention keys and values are projected once per generation. Rows that
// finish, and beams that are reselected, reorder the cache. useCache: false re-runs the whole
// prefix at each step instead (the same tokens; kept to check the cache against).
import fs from 'node:fs';
import path from 'node:path';
import { type ImageInput, ImageProcessor } from '../data/image.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizers/tokenizer.js';
import type { BlipForConditionalGeneration, BlipForImageTextRetrieval } from '../models/blip.js';
import { byteTokenizer } from '../models/configs.js';
import type { Model } from '../models/family.js';
import { type CreateModelOptions, createModel, modelSource } from '../models/registry.js';
import type { DecoderCache } from '../nn/attention.js';
import { noGrad } from '../tensor/autograd.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { Generator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/** A BLIP model with what it needs to read inputs and write captions. */
export interface BlipTaskModel {
  /** The registered name or the folder it came from. */
  readonly name: string;
  readonly model: BlipForConditionalGeneration | BlipForImageTextRetrieval;
  /** null when none was found: captions are then only available as token ids. */
  readonly tokenizer: TextTokenizer | null;
  readonly imageProcessor: ImageProcessor;
}

export interface LoadBlipOptions extends CreateModelOptions {
  /** A folder with tokenizer.json (or a tokenizer), overriding the model's own. */
  tokenizer?: string | TextTokenizer;
  /** The model `nameOrDir` names, already built (by createModel): it is wrapped instead of built again. */
  model?: Model;
}

const hasFile = (dir: string | undefined, file: string): dir is string => dir !== undefined && fs.existsSync(path.join(dir, file));

/**
 * A BLIP captioner or retrieval model by registered name (with `weights`, or untrained with
 * `init: 'random'`) or HF folder. The tokenizer is `options.tokenizer`, else the folder's
 * tokenizer.json, else the entry's packaged one; a model following the tiny models'
 * byte-tokenizer convention (bos 256, sep 257) gets the byte tokenizer.
 */
export async function loadBlipModel(nameOrDir: string, options: LoadBlipOptions = {}): Promise<BlipTaskModel> {
  const { entry, folder } = modelSource(nameOrDir, options, (modelType) => {
    if (modelType !== 'blip') throw new Error(`${nameOrDir}: a ${modelType} model is not BLIP, which captioning and ITM need`);
  });
  const { tokenizer: tok, ...createOptions } = options;
  const created = options.model ?? ((await createModel(nameOrDir, createOptions)) as Model);
  if (created.kind !== 'captioner' && created.kind !== 'image-text-matcher') {
    throw new Error(`${nameOrDir}: ${created.constructor.name} is not a BLIP captioning or retrieval model`);
  }
  const model = created as BlipForConditionalGeneration | BlipForImageTextRetrieval;
  const tc = model.config.textConfig;
  let tokenizer: TextTokenizer | null = null;
  if (typeof tok === 'string') tokenizer = loadTokenizer(tok);
  else if (tok) tokenizer = tok;
  else if (hasFile(folder, 'tokenizer.json') || hasFile(folder, 'tokenizer.json.gz')) tokenizer = loadTokenizer(folder);
  else if (entry?.tokenizer) tokenizer = entry.tokenizer();
  else if (tc.bosTokenId === 256 && tc.sepTokenId === 257) tokenizer = byteTokenizer(tc.maxPositionEmbeddings);
  const size = model.config.visionConfig.imageSize;
  const imageProcessor = hasFile(folder, 'preprocessor_config.json')
    ? ImageProcessor.fromPretrained(folder, 'blip')
    : new ImageProcessor('blip', { size: { height: size, width: size }, cropSize: { height: size, width: size } });
  return { name: entry?.name ?? nameOrDir, model, tokenizer, imageProcessor };
}

type ModelArg = BlipTaskModel | string;
const resolve = (m: ModelArg): Promise<BlipTaskModel> => (typeof m === 'string' ? loadBlipModel(m) : Promise.resolve(m));

export interface GenerationOptions {
  /** New tokens at most, the end token included; default 20. */
  maxTokens?: number;
  /** Beam search with this many beams (> 1); default 1 (greedy, or sampling with topP). */
  beams?: number;
  /** Beam scores are sum(log p) / generated_length ** lengthPenalty, as HF's; default 1. */
  lengthPenalty?: number;
  /** Nucleus sampling: draw from the smallest set of tokens whose probability reaches topP. */
  topP?: number;
  /** Divides the logits before sampling; default 1. */
  temperature?: number;
  /** Seed of the sampling generator (default 0); `generator` takes precedence. */
  seed?: number;
  generator?: Generator;
  /** Keep the decoder's keys and values between steps and feed only the new tokens; default true. */
  useCache?: boolean;
}

export interface CaptionOptions extends GenerationOptions {
  /** Text the captions continue (e.g. 'a picture of'); it is part of the returned caption, as HF's decode gives it. */
  prompt?: string;
  /** Images run through the model at once (default 8). */
  batchSize?: number;
}

function checkGenerationOptions(opts: GenerationOptions): void {
  const maxTokens = opts.maxTokens ?? 20;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new Error(`caption: maxTokens must be a non-negative integer, got ${opts.maxTokens}`);
  const beams = opts.beams ?? 1;
  if (!Number.isInteger(beams) || beams < 1) throw new Error(`caption: beams must be a positive integer, got ${opts.beams}`);
  if (opts.topP !== undefined) {
    if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`caption: topP must be in (0, 1], got ${opts.topP}`);
    if (beams > 1) throw new Error('caption: beam search and nucleus sampling (topP) cannot be combined');
  }
  if (opts.temperature !== undefined && !(opts.temperature > 0)) throw new Error(`caption: temperature must be positive, got ${opts.temperature}`);
}

/**
 * The decoder's next-token logits for a set of rows that grow by one token a step, row r reading
 * the image embeddings image[r]. With a cache, a step feeds only the tokens not yet fed; without,
 * the whole prefix.
 */
class StepDecoder {
  readonly #model: BlipForConditionalGeneration;
  /** [rows, patches, D]: each row's image embeddings (not read again once the cross-attention keys are cached). */
  #image: Tensor;
  readonly #cache: DecoderCache | null;
  /** Rows in the current step. */
  #count: number;

  constructor(model: BlipForConditionalGeneration, image: Tensor, useCache: boolean) {
    this.#model = model;
    this.#image = image;
    this.#cache = useCache ? model.textDecoder.newCache() : null;
    this.#count = image.shape[0]!;
  }

  #index(rows: readonly number[], like: Tensor): Tensor {
    return tensor(Int32Array.from(rows), { shape: [rows.length], dtype: 'int32', backend: like.backend });
  }

  /** The last position's logits [rows, V] (float64 copies); the rows, all of one length, extend the previous step's. */
  logits(rows: readonly number[][]): Float64Array[] {
    if (rows.length !== this.#count) throw new Error(`caption: ${rows.length} rows given to a decoder holding ${this.#count}`);
    const L = rows[0]!.length;
    const fed = this.#cache?.length ?? 0;
    const ids = tensor(Int32Array.from(rows.flatMap((r) => r.slice(fed))), { shape: [rows.length, L - fed], dtype: 'int32', backend: this.#image.backend });
    const decoder = this.#model.textDecoder;
    const hidden = decoder.bert.forward(ids, { encoderHiddenStates: this.#image, causal: true, cache: this.#cache }).lastHiddenState;
    const logits = decoder.cls.predictions.forward(hidden.select(1, L - fed - 1)).toArray();
    const V = this.#model.config.textConfig.vocabSize;
    return rows.map((_, r) => Float64Array.from(logits.slice(r * V, (r + 1) * V)));
  }

  /** The next step's rows are these of this step's (beams reselected, finished rows dropped). */
  keep(rows: readonly number[]): void {
    if (rows.length === this.#count && rows.every((v, i) => v === i)) return;
    if (this.#cache && this.#cache.length > 0) {
      this.#cache.reorder(this.#index(rows, this.#image));
    } else {
      this.#image = indexSelect(this.#image, 0, this.#index(rows, this.#image));
    }
    this.#count = rows.length;
  }
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let v = 1; v < x.length; v++) if (x[v]! > x[best]!) best = v;
  return best;
}

/** The n largest entries' indices in ascending index order (ties: the lower index ranks first). */
function topTokens(x: Float64Array, n: number): number[] {
  // best[] is ordered by (value desc, index asc); a new index only enters past an equal value.
  const best: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (best.length === n && !(x[i]! > x[best[n - 1]!]!)) continue;
    let at = best.length;
    while (at > 0 && x[i]! > x[best[at - 1]!]!) at--;
    best.splice(at, 0, i);
    if (best.length > n) best.pop();
  }
  return best.sort((a, b) => a - b);
}

function logSoftmax(x: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of x) if (v > m) m = v;
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return x.map((v) => v - lse);
}

/**
 * A token drawn as HF's TopPLogitsWarper + multinomial: softmax(logits / temperature); the tokens
 * outside the nucleus (those whose ascending cumulative probability is <= 1 - topP) are dropped,
 * the most likely one always kept; one uniform draw picks among the rest, in descending order.
 */
function sampleTopP(logits: Float64Array, topP: number, temperature: number, g: Generator): number {
  const p = logSoftmax(logits.map((v) => v / temperature)).map(Math.exp);
  const order = Array.from(p.keys()).sort((a, b) => p[a]! - p[b]! || b - a);
  let cum = 0;
  let first = order.length - 1;
  for (let i = 0; i < order.length - 1; i++) {
    cum += p[order[i]!]!;
    if (cum > 1 - topP) {
      first = i;
      break;
    }
  }
  const kept = order.slice(first).reverse();
  let total = 0;
  for (const t of kept) total += p[t]!;
  let u = g.uniform() * total;
  for (const t of kept) {
    u -= p[t]!;
    if (u < 0) return t;
  }
  return kept[kept.length - 1]!;
}

/** Greedy (no topP) or nucleus-sampled continuations of every row, each stopping at sep. */
function decodeRows(model: BlipForConditionalGeneration, image: Tensor, prompt: readonly number[], opts: GenerationOptions): number[][] {
  const sep = model.config.textConfig.sepTokenId;
  const B = image.shape[0]!;
  const rows = Array.from({ length: B }, () => [...prompt]);
  const done = new Array<boolean>(B).fill(false);
  const g = opts.topP !== undefined ? (opts.generator ?? new Generator(opts.seed ?? 0)) : null;
  const temperature = opts.temperature ?? 1;
  const maxTokens = opts.maxTokens ?? 20;
  const decoder = new StepDecoder(model, image, opts.useCache ?? true);
  // The rows still decoding, in the decoder's row order; finished ones leave the forward.
  let live = rows.map((_, b) => b);
  for (let step = 0; step < maxTokens && live.length > 0; step++) {
    const logits = decoder.logits(live.map((b) => rows[b]!));
    live.forEach((b, i) => {
      const next = g ? sampleTopP(logits[i]!, opts.topP!, temperature, g) : argmax(logits[i]!);
      rows[b]!.push(next);
      if (next === sep) done[b] = true;
    });
    const still = live.flatMap((b, i) => (done[b] ? [] : [i]));
    if (still.length < live.length && still.length > 0) decoder.keep(still);
    live = still.map((i) => live[i]!);
  }
  return rows;
}

interface Hypothesis {
  ids: number[];
  /** The sum of the tokens' log-probabilities. */
  logProb: number;
}

/**
 * Beam search for one image, as HF's generate with num_beams and early_stopping=True: each step
 * ranks the 2 * beams best continuations of the live beams; one ending with sep, among the first
 * `beams` of them, is finished with score logProb / generated_length ** lengthPenalty; the first
 * `beams` others live on. Search stops when `beams` hypotheses have finished, or at maxTokens
 * (the live beams then count as finished). With one beam this is greedy decoding.
 */
function beamSearch(model: BlipForConditionalGeneration, image: Tensor, prompt: readonly number[], opts: GenerationOptions): number[] {
  const K = opts.beams ?? 1;
  const lp = opts.lengthPenalty ?? 1;
  const sep = model.config.textConfig.sepTokenId;
  const maxTokens = opts.maxTokens ?? 20;
  const score = (h: Hypothesis) => h.logProb / (h.ids.length - prompt.length) ** lp;
  let live: Hypothesis[] = [{ ids: [...prompt], logProb: 0 }];
  const finished: { ids: number[]; score: number }[] = [];
  const decoder = new StepDecoder(model, image, opts.useCache ?? true);
  for (let step = 0; step < maxTokens && finished.length < K; step++) {
    const logits = decoder.logits(live.map((h) => h.ids));
    // Only each beam's 2K best tokens can be among the 2K best overall: those are the candidates.
    const cands: { beam: number; token: number; logProb: number }[] = [];
    logits.forEach((l, beam) => {
      const lp = logSoftmax(l);
      for (const token of topTokens(lp, 2 * K)) cands.push({ beam, token, logProb: live[beam]!.logProb + lp[token]! });
    });
    // Stable sort: ties keep (beam, token) order, as a flattened top-k would.
    cands.sort((a, b) => b.logProb - a.logProb);
    const next: Hypothesis[] = [];
    // The beam each surviving hypothesis extends: the cache rows to keep, in order.
    const parents: number[] = [];
    for (let rank = 0; rank < Math.min(2 * K, cands.length) && next.length < K; rank++) {
      const c = cands[rank]!;
      const h = { ids: [...live[c.beam]!.ids, c.token], logProb: c.logProb };
      if (c.token !== sep) {
        next.push(h);
        parents.push(c.beam);
      } else if (rank < K && finished.length < K) {
        finished.push({ ids: h.ids, score: score(h) });
      }
    }
    live = next;
    if (live.length === 0) break;
    decoder.keep(parents);
  }
  if (finished.length < K) for (const h of live) finished.push({ ids: h.ids, score: score(h) });
  let best = finished[0]!;
  for (const f of finished) if (f.score > best.score) best = f;
  return best.ids;
}

/**
 * Caption token ids of preprocessed pixels [B, 3, H, W]: per image, the prompt ids (bos first) then
 * the generated ones, up to and including sep when it was reached (no padding).
 */
export function generateCaptionIds(model: BlipForConditionalGeneration, pixels: Tensor, opts: GenerationOptions & { promptIds?: readonly number[] } = {}): number[][] {
  checkGenerationOptions(opts);
  return noGrad(() => decodeCaptionIds(model, model.visionModel.forward(pixels).lastHiddenState, opts));
}

/** generateCaptionIds from image embeddings [B, 1 + patches, D] (the vision model's last hidden state). */
export function decodeCaptionIds(model: BlipForConditionalGeneration, imageEmbeds: Tensor, opts: GenerationOptions & { promptIds?: readonly number[] } = {}): number[][] {
  checkGenerationOptions(opts);
  const tc = model.config.textConfig;
  const D = model.config.visionConfig.hiddenSize;
  if (imageEmbeds.ndim !== 3 || imageEmbeds.shape[2] !== D) throw new Error(`caption: image embeddings must be [B, T, ${D}], got [${imageEmbeds.shape}]`);
  const prompt = [tc.bosTokenId, ...(opts.promptIds ?? [])];
  return noGrad(() => {
    if ((opts.beams ?? 1) === 1) return decodeRows(model, imageEmbeds, prompt, opts);
    return Array.from({ length: imageEmbeds.shape[0]! }, (_, b) => beamSearch(model, imageEmbeds.slice(0, b, b + 1), prompt, opts));
  });
}

function batches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`batchSize must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function pixelBatches(m: BlipTaskModel, images: readonly ImageInput[] | Tensor, batchSize: number): Promise<Tensor[]> {
  const backend = m.model.parameters()[0]?.backend;
  if (!Array.isArray(images)) {
    const pixels = images as Tensor;
    if (pixels.ndim !== 4) throw new Error(`pixel values must be [N, 3, H, W], got [${pixels.shape}]`);
    return [backend && pixels.backend !== backend ? pixels.to(backend) : pixels];
  }
  const list = images as readonly ImageInput[];
  if (list.length === 0) throw new Error('no images');
  const out: Tensor[] = [];
  for (const b of batches(list, batchSize)) out.push(await m.imageProcessor.preprocess(b, { backend }));
  return out;
}

/** The prompt's token ids as HF's BLIP uses them: without the tokenizer's first token (replaced by bos) and last ([SEP]). */
function promptIds(m: BlipTaskModel, prompt: string | undefined): number[] {
  if (prompt === undefined || prompt === '') return [];
  if (!m.tokenizer) throw new Error(`${m.name}: a prompt needs a tokenizer`);
  const ids = m.tokenizer.encode([prompt], { padding: 'none', truncation: false }).inputIds[0]!;
  return ids.slice(1, -1);
}

/** Caption token ids of images (files, bytes, or pixel values [N, 3, H, W]); see generateCaptionIds. */
export async function captionIds(model: ModelArg, images: readonly ImageInput[] | Tensor, options: CaptionOptions = {}): Promise<number[][]> {
  const m = await resolve(model);
  if (m.model.kind !== 'captioner') throw new Error(`${m.name}: captioning needs a BlipForConditionalGeneration model`);
  checkGenerationOptions(options);
  const generator = options.topP !== undefined ? (options.generator ?? new Generator(options.seed ?? 0)) : undefined;
  const prompt = promptIds(m, options.prompt);
  const out: number[][] = [];
  for (const pixels of await pixelBatches(m, images, options.batchSize ?? 8)) {
    out.push(...generateCaptionIds(m.model, pixels, { ...options, generator, promptIds: prompt }));
  }
  return out;
}

/** Captions of images, decoded without special tokens (the prompt included, as HF decodes them). */
export async function caption(model: ModelArg, images: readonly ImageInput[] | Tensor, options: CaptionOptions = {}): Promise<string[]> {
  const m = await resolve(model);
  if (!m.tokenizer) throw new Error(`${m.name}: no tokenizer to decode captions (pass a folder with tokenizer.json, or use captionIds)`);
  const ids = await captionIds(m, images, options);
  return ids.map((row) => m.tokenizer!.decode(row, { skipSpecialTokens: true }).trim());
}

export interface ItmScores {
  /** Per pair, the ITM head's probability that the text matches the image (softmax of its 2 logits, index 1). */
  itm: number[];
  /** Per pair, the cosine similarity of the ITC features. */
  itc: number[];
}

/**
 * Image-text matching scores of pairs (image i, text i); one image is paired with every text and
 * one text with every image. Texts are tokenized with padding to the longest.
 */
export async function itmScore(model: ModelArg, images: readonly ImageInput[] | Tensor, texts: readonly string[]): Promise<ItmScores> {
  const m = await resolve(model);
  const net = m.model;
  if (net.kind !== 'image-text-matcher') throw new Error(`${m.name}: ITM needs a BlipForImageTextRetrieval model (e.g. BLIP-base-retrieval)`);
  if (!m.tokenizer) throw new Error(`${m.name}: no tokenizer for the texts (pass a folder with tokenizer.json)`);
  if (texts.length === 0) throw new Error('itmScore: no texts');
  const [pixels] = await pixelBatches(m, images, Array.isArray(images) ? Math.max(1, images.length) : 1);
  const nImages = pixels!.shape[0]!;
  const n = Math.max(nImages, texts.length);
  if ((nImages !== n && nImages !== 1) || (texts.length !== n && texts.length !== 1)) {
    throw new Error(`itmScore: ${nImages} images and ${texts.length} texts do not pair (equal counts, or one of either)`);
  }
  return noGrad(() => {
    const backend = pixels!.backend;
    const enc = m.tokenizer!.encode(texts, { padding: 'longest' });
    const L = enc.inputIds[0]!.length;
    const ids = tensor(Int32Array.from(enc.inputIds.flat()), { shape: [texts.length, L], dtype: 'int32', backend });
    const mask = tensor(Float32Array.from(enc.attentionMask.flat()), { shape: [texts.length, L], backend });
    const image = net.visionModel.forward(pixels!).lastHiddenState;
    const pick = (t: Tensor, count: number) => (count === n ? t : indexSelect(t, 0, tensor(new Int32Array(n), { shape: [n], dtype: 'int32', backend })));
    const logits = net.itm(pick(ids, texts.length), pick(image, nImages), pick(mask, texts.length)).logits.softmax(-1).toArray();
    const sim = net.itc(ids, image, mask).similarity.toArray();
    const itm = Array.from({ length: n }, (_, i) => logits[2 * i + 1]!);
    const itc = Array.from({ length: n }, (_, i) => sim[(nImages === 1 ? 0 : i) * texts.length + (texts.length === 1 ? 0 : i)]!);
    return { itm, itc };
  });
}
