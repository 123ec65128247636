import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval, blipKeyFromHF } from '../../src/models/blip.js';
import { readHFConfig } from '../../src/io/hf.js';
import { type HostTensor, SafetensorsFile, writeSafetensors, loadSafetensors } from '../../src/io/safetensors.js';
import { formatParityReport, runParity } from '../../src/eval/parity.js';
import { StateDictError } from '../../src/nn/module.js';
import { constant_ } from '../../src/nn/init.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findShared, floats, assertConfigKept, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('blip');

const itmFixture = () => findShared('fixtures/hf/blip_itm', 'config.json');
const captionFixture = () => findShared('fixtures/hf/blip_caption', 'config.json');

const numbers = (t: Tensor | HostTensor): number[] => ('toArray' in t ? t.toArray() : Array.from(t.data as ArrayLike<number | bigint>)).map(Number);

const readAll = (file: string): Record<string, HostTensor> => loadSafetensors(file).tensors;
const toTensor = (h: HostTensor): Tensor => tensor(h.data, { shape: h.shape, dtype: h.dtype });
const ids = (rows: number[][]): Tensor => tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [rows.length, rows[0]!.length], dtype: 'int64' });

/** A small BLIP whose sizes differ from the fixtures' and between the towers. */
function smallConfig(): BlipConfig {
  return new BlipConfig({
    imageTextHiddenSize: 10,
    textConfig: {
      vocabSize: 40, hiddenSize: 16, encoderHiddenSize: 24, intermediateSize: 30, numHiddenLayers: 2, numAttentionHeads: 2,
      maxPositionEmbeddings: 16, bosTokenId: 37, eosTokenId: 38, sepTokenId: 38, padTokenId: 0,
    },
    visionConfig: { hiddenSize: 24, intermediateSize: 20, numHiddenLayers: 1, numAttentionHeads: 3, imageSize: 12, patchSize: 4 },
  });
}

function assertSameState(a: { stateDict(): Record<string, Tensor> }, b: { stateDict(): Record<string, Tensor> }): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual(Object.keys(sa).sort(), Object.keys(sb).sort());
  for (const [k, v] of Object.entries(sa)) assert.deepEqual(floats(sb[k]!), floats(v), k);
}

// ---------------------------------------------------------------------------------------------
// Parity with transformers

test('HF parity: BlipForImageTextRetrieval ITM logits, ITC similarity and every gradient (both backends)', (t) => {
  const dir = itmFixture();
  if (!dir) return t.skip(sharedNotFound());
  for (const backend of ['native', 'reference']) {
    const report = runParity(dir, { backend });
    assert.ok(report.ok, formatParityReport(report));
    assert.deepEqual(report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort(), ['itc_similarity', 'itm_logits']);
    const grads = report.checks.filter((c) => c.kind === 'gradient');
    assert.equal(grads.length, 92);
    assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
  }
});

test('HF parity: BlipForConditionalGeneration logits, LM loss, generated ids and every gradient (both backends)', (t) => {
  const dir = captionFixture();
  if (!dir) return t.skip(sharedNotFound());
  for (const backend of ['native', 'reference']) {
    const report = runParity(dir, { backend });
    assert.ok(report.ok, formatParityReport(report));
    assert.deepEqual(report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort(), ['generated_ids', 'logits', 'loss']);
    assert.equal(report.checks.filter((c) => c.kind === 'gradient').length, 91);
  }
});

test('generate: greedy ids equal transformers\' generate(max_new_tokens=6), bos first', (t) => {
  const dir = captionFixture();
  if (!dir) return t.skip(sharedNotFound());
  const model = BlipForConditionalGeneration.fromPretrained(dir);
  const inputs = readAll(path.join(dir, 'inputs.safetensors'));
  const ref = readAll(path.join(dir, 'outputs.safetensors')).generated_ids!;
  const out = model.generate(toTensor(inputs.pixel_values!), { maxNewTokens: 6 });
  assert.deepEqual(out.shape, ref.shape);
  assert.deepEqual(numbers(out), numbers(ref));
  assert.equal(numbers(out)[0], model.config.textConfig.bosTokenId);
  // Fewer new tokens give a prefix of the same greedy path.
  const short = model.generate(toTensor(inputs.pixel_values!), { maxNewTokens: 3 });
  assert.deepEqual(short.shape, [2, 4]);
  assert.deepEqual(numbers(short), numbers(ref).filter((_, i) => i % 7 < 4));
});

test('generate: a row stops at sep_token_id and is padded after it; all rows done ends decoding', () => {
  const model = new BlipForConditionalGeneration(smallConfig(), { generator: new Generator(1) });
  const tc = model.config.textConfig;
  // Make sep the argmax everywhere: a large LM bias on it.
  constant_(model.textDecoder.cls.predictions.bias.select(0, tc.sepTokenId), 100);
  const px = randn([2, 3, 12, 12], { generator: new Generator(2) });
  const out = model.generate(px, { maxNewTokens: 5 });
  assert.deepEqual(out.shape, [2, 2]);
  assert.deepEqual(numbers(out), [tc.bosTokenId, tc.sepTokenId, tc.bosTokenId, tc.sepTokenId]);
});

test('retrieval: ITC ignores the image in the text encoder; ITM depends on it; forward picks the head', () => {
  const model = new BlipForImageTextRetrieval(smallConfig(), { generator: new Generator(3) });
  model.eval();
  const px1 = randn([2, 3, 12, 12], { generator: new Generator(4) });
  const px2 = randn([2, 3, 12, 12], { generator: new Generator(5) });
  const text = ids([[37, 5, 6, 38], [37, 7, 38, 0]]);
  const mask = ids([[1, 1, 1, 1], [1, 1, 1, 0]]);
  const a = model.forward(text, px1, { attentionMask: mask, useItmHead: false });
  const b = model.forward(text, px2, { attentionMask: mask, useItmHead: false });
  assert.deepEqual(floats(a.questionEmbeds), floats(b.questionEmbeds));
  assert.deepEqual(a.itcSimilarity!.shape, [2, 2]);
  assert.equal(a.itmLogits, null);
  const sim = floats(a.itcSimilarity!);
  assert.ok(sim.every((v) => Math.abs(v) <= 1 + 1e-6), 'cosine similarities');
  const m1 = model.forward(text, px1, { attentionMask: mask });
  const m2 = model.forward(text, px2, { attentionMask: mask });
  assert.deepEqual(m1.itmLogits!.shape, [2, 2]);
  assert.notDeepEqual(floats(m1.itmLogits!), floats(m2.itmLogits!));
  // Padding after the text changes nothing once it is masked.
  const padded = model.forward(ids([[37, 5, 6, 38, 0], [37, 7, 38, 0, 0]]), px1, { attentionMask: ids([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]) });
  const d = floats(padded.itmLogits!).map((v, i) => Math.abs(v - floats(m1.itmLogits!)[i]!));
  assert.ok(Math.max(...d) < 1e-5, `padding changed ITM logits by ${Math.max(...d)}`);
});

test('vision: interpolatePosEncoding is the identity at the native size and runs at others', () => {
  const model = new BlipForImageTextRetrieval(smallConfig(), { generator: new Generator(6) });
  const px = randn([1, 3, 12, 12], { generator: new Generator(7) });
  const plain = model.visionModel.forward(px).lastHiddenState;
  const interp = model.visionModel.forward(px, { interpolatePosEncoding: true }).lastHiddenState;
  assert.deepEqual(floats(interp), floats(plain));
  const big = model.visionModel.forward(randn([1, 3, 16, 20], { generator: new Generator(8) }), { interpolatePosEncoding: true });
  assert.deepEqual(big.lastHiddenState.shape, [1, 1 + 4 * 5, 24]);
  assert.throws(() => model.visionModel.forward(randn([1, 3, 16, 16])), /doesn't match the model/);
});

// ---------------------------------------------------------------------------------------------
// Checkpoints

test('save -> load round trip: same keys, bit-identical weights, same outputs; config fields kept', (t) => {
  for (const [Cls, src] of [[BlipForImageTextRetrieval, itmFixture()], [BlipForConditionalGeneration, captionFixture()]] as const) {
    const model = src ? Cls.fromPretrained(src) : new Cls(smallConfig(), { generator: new Generator(9) });
    const dir = tmpDir();
    assert.deepEqual(model.savePretrained(dir), ['config.json', 'model.safetensors']);
    const back = Cls.fromPretrained(dir);
    assertSameState(model, back);
    const vc = model.config.visionConfig;
    const px = randn([2, vc.numChannels, vc.imageSize, vc.imageSize], { generator: new Generator(10) });
    const text = ids([[model.config.textConfig.bosTokenId, 5, 6, 7], [model.config.textConfig.bosTokenId, 8, 9, 0]]);
    if (model instanceof BlipForImageTextRetrieval) {
      assert.deepEqual(floats((back as BlipForImageTextRetrieval).forward(text, px).itmLogits!), floats(model.forward(text, px).itmLogits!));
    } else {
      const m = model as BlipForConditionalGeneration;
      assert.deepEqual(floats((back as BlipForConditionalGeneration).forward(px, text).logits), floats(m.forward(px, text).logits));
    }
    const saved = readHFConfig(dir);
    assert.deepEqual(saved.architectures, [Cls.name]);
    assert.equal(saved.model_type, 'blip');
    if (src) {
      const orig = readHFConfig(src);
      const h = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
      const o = SafetensorsFile.open(path.join(src, 'model.safetensors'));
      assert.deepEqual(h.names.sort(), o.names.sort());
      h.close();
      o.close();
      assertConfigKept(saved, orig, ['projection_dim', 'image_text_hidden_size', 'logit_scale_init_value', 'transformers_version', 'label_smoothing']);
    } else {
      t.diagnostic(`${sharedNotFound()}; round trip of random models only`);
    }
  }
});

test('HF key errors are named; legacy LM decoder keys and position_ids load', () => {
  const model = new BlipForConditionalGeneration(smallConfig(), { generator: new Generator(11) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const file = path.join(dir, 'model.safetensors');
  const all = readAll(file);
  // Older checkpoints: the tied decoder matrix, decoder.bias in place of predictions.bias, position_ids.
  const legacy: Record<string, HostTensor> = { ...all };
  legacy['text_decoder.cls.predictions.decoder.weight'] = all['text_decoder.bert.embeddings.word_embeddings.weight']!;
  legacy['text_decoder.cls.predictions.decoder.bias'] = all['text_decoder.cls.predictions.bias']!;
  delete legacy['text_decoder.cls.predictions.bias'];
  legacy['text_decoder.bert.embeddings.position_ids'] = { dtype: 'int64', shape: [1, 16], data: new BigInt64Array(16) };
  writeSafetensors(file, legacy);
  assertSameState(model, BlipForConditionalGeneration.fromPretrained(dir));

  const broken: Record<string, HostTensor> = { ...all };
  delete broken['vision_model.post_layernorm.weight'];
  broken['vision_model.encoder.layers.0.self_attn.qkv.bias'] = { ...all['vision_model.encoder.layers.0.self_attn.qkv.bias']!, shape: [24, 3] };
  broken['text_decoder.extra.weight'] = all['vision_model.post_layernorm.weight']!;
  writeSafetensors(file, broken);
  assert.throws(() => BlipForConditionalGeneration.fromPretrained(dir), (e: Error) => e instanceof StateDictError &&
    /missing key:\n\s+vision_model\.post_layernorm\.weight/.test(e.message) && /unexpected key:\n\s+text_decoder\.extra\.weight/.test(e.message) &&
    /vision_model\.encoder\.layers\.0\.self_attn\.qkv\.bias: checkpoint \[24,3\] vs model \[72\]/.test(e.message));
  assert.equal(blipKeyFromHF('text_encoder.pooler.dense.weight'), null);
  assert.equal(blipKeyFromHF('text_encoder.encoder.layer.0.output.LayerNorm.gamma'), 'text_encoder.encoder.layer.0.output.LayerNorm.weight');
});

test('config: HF defaults, extra fields kept, errors name the field', () => {
  const c = BlipConfig.fromHF({ model_type: 'blip', text_config: { foo: 1 }, vision_config: {}, bar: 'x' });
  assert.equal(c.textConfig.vocabSize, 30524);
  assert.equal(c.textConfig.numAttentionHeads, 8);
  assert.equal(c.textConfig.sepTokenId, 102);
  assert.equal(c.textConfig.labelSmoothing, 0);
  assert.equal(c.visionConfig.imageSize, 384);
  assert.equal(c.imageTextHiddenSize, 256);
  const out = c.toHF(['BlipForImageTextRetrieval']);
  assert.equal(out.bar, 'x');
  assert.equal((out.text_config as Record<string, unknown>).foo, 1);
  assert.throws(() => BlipConfig.fromHF({ model_type: 'clip' }), /model_type is 'clip'/);
  assert.throws(() => BlipConfig.fromHF({ text_config: { hidden_size: 'big' } }), /text_config: hidden_size must be a positive integer/);
  assert.throws(() => new BlipConfig({ textConfig: { encoderHiddenSize: 10 } }), /encoder_hidden_size 10/);
});

test('captioning loss: next-token cross-entropy on shifted labels, -100 ignored', () => {
  const config = smallConfig();
  const model = new BlipForConditionalGeneration(config, { generator: new Generator(12) });
  model.eval();
  const px = randn([1, 3, 12, 12], { generator: new Generator(13) });
  const text = ids([[37, 5, 6, 38]]);
  const out = model.forward(px, text, { labels: ids([[37, 5, -100, 38]]) });
  const logits = floats(out.logits);
  const V = 40;
  const nll = (t: number, target: number): number => {
    const row = Array.from(logits.subarray(t * V, (t + 1) * V));
    const m = Math.max(...row);
    return Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m - row[target]!;
  };
  const expected = (nll(0, 5) + nll(2, 38)) / 2;
  assert.ok(Math.abs(out.loss!.item() - expected) < 1e-5, `${out.loss!.item()} vs ${expected}`);
});
