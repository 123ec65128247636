import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { caption, captionIds, generateCaptionIds, itmScore, loadBlipModel, type BlipTaskModel } from '../../src/tasks/caption.js';
import { captionCommand } from '../../src/cli/caption.js';
import { ImageProcessor } from '../../src/data/image.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval } from '../../src/models/blip.js';
import { byteTokenizer } from '../../src/models/configs.js';
import { getModelEntry } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { findShared, tempDirs, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('caption');

/** test-blip's config with larger initial weights, so that the next-token distributions are peaked (no near ties). */
function tinyConfig(overrides: Record<string, unknown> = {}, text: Record<string, unknown> = {}): BlipConfig {
  const raw = getModelEntry('test-blip').config;
  return BlipConfig.fromHF({ ...raw, initializer_range: 0.5, ...overrides, text_config: { ...(raw.text_config as object), ...text } });
}

function task(model: BlipForConditionalGeneration | BlipForImageTextRetrieval): BlipTaskModel {
  const size = model.config.visionConfig.imageSize;
  return {
    name: 'tiny', model, tokenizer: byteTokenizer(model.config.textConfig.maxPositionEmbeddings),
    imageProcessor: new ImageProcessor('blip', { size: { height: size, width: size }, cropSize: { height: size, width: size } }),
  };
}

const pixels = (n: number, seed: number, size = 32): Tensor => randn([n, 3, size, size], { generator: new Generator(seed) });

/** Rows padded with `pad` to a common length. */
const padRows = (rows: number[][], pad: number, len = Math.max(...rows.map((r) => r.length))): number[][] =>
  rows.map((r) => [...r, ...new Array<number>(len - r.length).fill(pad)]);

test('greedy, beams=1 and topP->0 reproduce transformers\' generated_ids on the fixture', (t) => {
  const dir = findShared('fixtures/hf/blip_caption', 'config.json');
  if (!dir) return t.skip(sharedNotFound());
  const model = BlipForConditionalGeneration.fromPretrained(dir);
  const read = (file: string) => {
    const f = SafetensorsFile.open(path.join(dir, file));
    try {
      return f.readAll();
    } finally {
      f.close();
    }
  };
  const px = read('inputs.safetensors').pixel_values!;
  const ref = read('outputs.safetensors').generated_ids!;
  const [B, T] = ref.shape as [number, number];
  const refRows = Array.from({ length: B }, (_, b) => Array.from(ref.data as BigInt64Array, Number).slice(b * T, (b + 1) * T));
  const input = tensor(px.data, { shape: px.shape, dtype: px.dtype });
  const pad = model.config.textConfig.padTokenId ?? 0;
  for (const opts of [{}, { beams: 1 }, { topP: 1e-9, seed: 3 }]) {
    const out = generateCaptionIds(model, input, { maxTokens: T - 1, ...opts });
    assert.deepEqual(padRows(out, pad, T), refRows, JSON.stringify(opts));
  }
});

test('beam search with one beam and nucleus sampling with topP -> 0 are greedy decoding', () => {
  const model = new BlipForConditionalGeneration(tinyConfig(), { generator: new Generator(5) });
  const px = pixels(3, 6);
  const greedy = generateCaptionIds(model, px, { maxTokens: 8 });
  assert.equal(greedy.length, 3);
  for (const row of greedy) {
    assert.equal(row[0], model.config.textConfig.bosTokenId);
    assert.ok(row.length <= 9);
  }
  assert.deepEqual(generateCaptionIds(model, px, { maxTokens: 8, beams: 1 }), greedy);
  assert.deepEqual(generateCaptionIds(model, px, { maxTokens: 8, topP: 1e-9, temperature: 0.7, seed: 1 }), greedy);
  // Fewer tokens: a prefix of the same path.
  assert.deepEqual(generateCaptionIds(model, px, { maxTokens: 3 }), greedy.map((r) => r.slice(0, 4)));
});

test('nucleus sampling is reproducible under a seed and differs across seeds', () => {
  const model = new BlipForConditionalGeneration(tinyConfig({ initializer_range: 0.02 }), { generator: new Generator(7) });
  const px = pixels(2, 8);
  const a = generateCaptionIds(model, px, { maxTokens: 6, topP: 0.9, temperature: 1.5, seed: 11 });
  const b = generateCaptionIds(model, px, { maxTokens: 6, topP: 0.9, temperature: 1.5, seed: 11 });
  const c = generateCaptionIds(model, px, { maxTokens: 6, topP: 0.9, temperature: 1.5, seed: 12 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  // A passed generator continues its stream: two draws from one generator differ.
  const g = new Generator(11);
  assert.deepEqual(generateCaptionIds(model, px, { maxTokens: 6, topP: 0.9, temperature: 1.5, generator: g }), a);
  assert.notDeepEqual(generateCaptionIds(model, px, { maxTokens: 6, topP: 0.9, temperature: 1.5, generator: g }), a);
});

/** log p(ids[prompt:] | image) per token, from one teacher-forced forward. */
function sequenceLogProb(model: BlipForConditionalGeneration, px: Tensor, ids: number[], promptLen: number): number {
  return noGrad(() => {
    const t = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' });
    const logits = model.forward(px, t).logits.logSoftmax(-1).toArray();
    const V = model.config.textConfig.vocabSize;
    let s = 0;
    for (let i = promptLen; i < ids.length; i++) s += logits[(i - 1) * V + ids[i]!]!;
    return s;
  });
}

test('beam search finds the best length-normalised sequence (brute force over a 5-token vocabulary)', () => {
  // vocab {0, 1, 2, bos 3, sep 4}: every caption of at most 3 new tokens is scored.
  const config = tinyConfig({ initializer_range: 0.3 }, { vocab_size: 5, bos_token_id: 3, eos_token_id: 4, sep_token_id: 4, pad_token_id: 0 });
  const model = new BlipForConditionalGeneration(config, { generator: new Generator(21) });
  const V = 5;
  const sep = 4;
  const maxTokens = 3;
  const all: number[][] = [];
  const grow = (prefix: number[]) => {
    if (prefix.length > 1 && (prefix[prefix.length - 1] === sep || prefix.length === maxTokens + 1)) {
      all.push(prefix);
      return;
    }
    for (let v = 0; v < V; v++) grow([...prefix, v]);
  };
  grow([3]);
  assert.equal(all.length, 1 + 4 + 16 + 64);
  // The case must be one where search matters: greedy misses the optimum somewhere.
  let greedyMissed = 0;
  for (const seed of [1, 2, 3]) {
    const px = pixels(1, seed);
    for (const lengthPenalty of [1, 0, 2]) {
      const scored = all.map((ids) => ({ ids, score: sequenceLogProb(model, px, ids, 1) / (ids.length - 1) ** lengthPenalty }));
      scored.sort((a, b) => b.score - a.score);
      const [best] = generateCaptionIds(model, px, { maxTokens, beams: 100, lengthPenalty });
      const found = scored.find((s) => s.ids.join() === best!.join());
      assert.ok(found, `beam result ${best} is not a valid caption`);
      if (generateCaptionIds(model, px, { maxTokens })[0]!.join() !== scored[0]!.ids.join()) greedyMissed++;
      assert.ok(found.score >= scored[0]!.score - 1e-5, `seed ${seed} lp ${lengthPenalty}: beam ${best} (${found.score}) vs best ${scored[0]!.ids} (${scored[0]!.score})`);
      // A narrow beam never beats the exhaustive optimum and returns a valid caption.
      const [narrow] = generateCaptionIds(model, px, { maxTokens, beams: 2, lengthPenalty });
      const n = scored.find((s) => s.ids.join() === narrow!.join());
      assert.ok(n && n.score <= scored[0]!.score + 1e-5);
    }
  }
  assert.ok(greedyMissed > 0);
});

test('beam search stops at sep and respects maxTokens; bad options are errors', () => {
  const model = new BlipForConditionalGeneration(tinyConfig(), { generator: new Generator(9) });
  const sep = model.config.textConfig.sepTokenId;
  for (const row of generateCaptionIds(model, pixels(2, 4), { maxTokens: 5, beams: 3 })) {
    assert.ok(row.length >= 2 && row.length <= 6);
    assert.ok(row.slice(0, -1).every((v) => v !== sep));
  }
  assert.deepEqual(generateCaptionIds(model, pixels(1, 4), { maxTokens: 0, beams: 3 }), [[model.config.textConfig.bosTokenId]]);
  assert.throws(() => generateCaptionIds(model, pixels(1, 4), { beams: 0 }), /beams/);
  assert.throws(() => generateCaptionIds(model, pixels(1, 4), { beams: 2, topP: 0.5 }), /cannot be combined/);
  assert.throws(() => generateCaptionIds(model, pixels(1, 4), { topP: 0 }), /topP/);
  assert.throws(() => generateCaptionIds(model, pixels(1, 4), { topP: 0.5, temperature: 0 }), /temperature/);
});

test('caption decodes without special tokens and continues a prompt', async () => {
  const m = task(new BlipForConditionalGeneration(tinyConfig(), { generator: new Generator(13) }));
  const px = pixels(2, 14);
  const ids = await captionIds(m, px, { maxTokens: 6 });
  const texts = await caption(m, px, { maxTokens: 6 });
  assert.deepEqual(texts, ids.map((r) => m.tokenizer!.decode(r).trim()));
  const withPrompt = await captionIds(m, px, { maxTokens: 4, prompt: 'ab' });
  for (const row of withPrompt) assert.deepEqual(row.slice(0, 3), [256, 97, 98]);
  for (const text of await caption(m, px, { maxTokens: 4, prompt: 'ab' })) assert.ok(text.startsWith('ab'), text);
});

test('itmScore: softmax of the ITM logits (index 1) and the ITC cosine, per pair and broadcast', async () => {
  const net = new BlipForImageTextRetrieval(tinyConfig({ architectures: ['BlipForImageTextRetrieval'] }), { generator: new Generator(17) });
  const m = task(net);
  const px = pixels(2, 18);
  const texts = ['a cat', 'two dogs on a lawn'];
  const s = await itmScore(m, px, texts);
  const enc = m.tokenizer!.encode(texts, { padding: 'longest' });
  const L = enc.inputIds[0]!.length;
  const ids = tensor(Int32Array.from(enc.inputIds.flat()), { shape: [2, L], dtype: 'int32' });
  const mask = tensor(Float32Array.from(enc.attentionMask.flat()), { shape: [2, L] });
  const ref = noGrad(() => net.forward(ids, px, { attentionMask: mask }).itmLogits!.softmax(-1).toArray());
  const sim = noGrad(() => net.forward(ids, px, { attentionMask: mask, useItmHead: false }).itcSimilarity!.toArray());
  for (let i = 0; i < 2; i++) {
    assert.ok(Math.abs(s.itm[i]! - ref[2 * i + 1]!) < 1e-6);
    assert.ok(Math.abs(s.itc[i]! - sim[3 * i]!) < 1e-6);
  }
  // One image against both texts: pair (image 0, text i).
  const one = await itmScore(m, px.slice(0, 0, 1), texts);
  assert.ok(Math.abs(one.itc[1]! - sim[1]!) < 1e-6);
  assert.ok(Math.abs(one.itm[0]! - s.itm[0]!) < 1e-5);
  await assert.rejects(itmScore(m, pixels(3, 1), texts), /do not pair/);
  await assert.rejects(itmScore(task(new BlipForConditionalGeneration(tinyConfig())), px, texts), /BlipForImageTextRetrieval/);
});

test('glimpse caption: globbed image files, a model folder, --json', async () => {
  const dir = tmpDir();
  const model = new BlipForConditionalGeneration(tinyConfig(), { generator: new Generator(23) });
  const modelDir = path.join(dir, 'model');
  model.savePretrained(modelDir);
  const imgDir = path.join(dir, 'imgs');
  fs.mkdirSync(imgDir);
  const files: string[] = [];
  for (const [i, name] of ['a.png', 'b.png'].entries()) {
    const data = Buffer.alloc(40 * 36 * 3);
    let s = i + 1;
    for (let k = 0; k < data.length; k++) data[k] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
    const file = path.join(imgDir, name);
    await sharp(data, { raw: { width: 40, height: 36, channels: 3 } }).png().toFile(file);
    files.push(file);
  }
  const out = JSON.parse(await captionCommand([path.join(imgDir, '*.png')], { model: modelDir, json: true, maxTokens: 5, beams: 2 })) as { image: string; caption: string }[];
  assert.deepEqual(out.map((o) => o.image), files);
  const m = await loadBlipModel(modelDir);
  assert.ok(m.tokenizer);
  assert.deepEqual(out.map((o) => o.caption), await caption(m, files, { maxTokens: 5, beams: 2 }));
  const plain = await captionCommand(files, { model: modelDir, maxTokens: 5, beams: 2 });
  assert.deepEqual(plain.split('\n'), files.map((f, i) => `${f}\t${out[i]!.caption}`));
  await assert.rejects(captionCommand([], { model: modelDir }), /no images/);
  await assert.rejects(captionCommand(files, { model: 'test-clip' }), /not BLIP/);
});
