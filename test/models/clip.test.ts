import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CLIPConfig, CLIPModel, CLIPTextConfig, eosPositions, l2Normalize } from '../../src/models/clip.js';
import { clipLoss } from '../../src/nn/losses.js';
import { clipConfigFromOpenClip, loadOpenClip, openClipLayout, saveOpenClip, toOpenClipTensors } from '../../src/models/openclip.js';
import { readHFConfig } from '../../src/io/hf.js';
import { type HostTensor, SafetensorsFile, writeSafetensors, loadSafetensors } from '../../src/io/safetensors.js';
import { runParity, formatParityReport } from '../../src/eval/parity.js';
import { StateDictError } from '../../src/nn/module.js';
import { getBackend } from '../../src/tensor/device.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findShared, floats, maxAbs, maxDiff, assertConfigKept, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('clip');

const hfFixture = () => findShared('fixtures/hf/clip', 'config.json');
const openClipFixture = () => findShared('fixtures/open_clip', 'open_clip_config.json');

const readAll = (file: string): Record<string, HostTensor> => loadSafetensors(file).tensors;
const toTensor = (h: HostTensor): Tensor => tensor(h.data, { shape: h.shape, dtype: h.dtype });

/** A small CLIP whose sizes differ from the fixture's and between the towers. */
function smallConfig(text: Partial<ConstructorParameters<typeof CLIPTextConfig>[0]> = {}): CLIPConfig {
  return new CLIPConfig({
    projectionDim: 10,
    textConfig: {
      vocabSize: 40, hiddenSize: 16, intermediateSize: 30, numHiddenLayers: 2, numAttentionHeads: 2,
      maxPositionEmbeddings: 12, hiddenAct: 'gelu', eosTokenId: 39, ...text,
    },
    visionConfig: { hiddenSize: 24, intermediateSize: 20, numHiddenLayers: 1, numAttentionHeads: 3, imageSize: 12, patchSize: 4, hiddenAct: 'gelu' },
  });
}

function assertSameState(a: CLIPModel, b: CLIPModel): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual(Object.keys(sa).sort(), Object.keys(sb).sort());
  for (const [k, v] of Object.entries(sa)) assert.deepEqual(floats(sb[k]!), floats(v), k);
}

/** A writable copy of a fixture folder. */
function copyFixture(src: string): string {
  const dir = tmpDir();
  fs.cpSync(src, dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  return dir;
}

const ids = (rows: number[][]): Tensor => tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [rows.length, rows[0]!.length], dtype: 'int64' });

// ---------------------------------------------------------------------------------------------
// Parity with transformers and open_clip

test('HF parity: CLIPModel outputs, loss and every gradient match transformers (both backends)', (t) => {
  const dir = hfFixture();
  if (!dir) return t.skip(sharedNotFound());
  for (const backend of ['native', 'reference']) {
    const report = runParity(dir, { backend });
    assert.ok(report.ok, formatParityReport(report));
    const outputs = report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort();
    assert.deepEqual(outputs, ['image_embeds', 'logits_per_image', 'loss', 'text_embeds', 'text_last_hidden_state',
      'text_pooler_output', 'vision_last_hidden_state', 'vision_pooler_output']);
    const grads = report.checks.filter((c) => c.kind === 'gradient');
    assert.equal(grads.length, 78);
    assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
  }
});

test('HF parity: a wrong reference fails on that tensor alone', (t) => {
  const src = hfFixture();
  if (!src) return t.skip(sharedNotFound());
  const dir = copyFixture(src);
  const all = readAll(path.join(dir, 'outputs.safetensors'));
  (all.text_pooler_output!.data as Float32Array)[5]! += 1e-3;
  writeSafetensors(path.join(dir, 'outputs.safetensors'), all);
  const report = runParity(dir);
  assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => c.name), ['text_pooler_output']);
});

test('open_clip parity: encode_image / encode_text, ClipLoss, SigLipLoss and every gradient', (t) => {
  const dir = openClipFixture();
  if (!dir) return t.skip(sharedNotFound());
  const model = loadOpenClip(dir);
  const inputs = readAll(path.join(dir, 'inputs.safetensors'));
  const ref = readAll(path.join(dir, 'outputs.safetensors'));
  const textIds = toTensor(inputs.input_ids!);
  const pixels = toTensor(inputs.pixel_values!);
  assert.ok(maxDiff(floats(model.getImageFeatures(pixels)), ref.image_features!.data as Float32Array) < 1e-4);
  assert.ok(maxDiff(floats(model.getTextFeatures(textIds)), ref.text_features!.data as Float32Array) < 1e-4);

  const out = model.forward(textIds, pixels, null, { returnLoss: true });
  assert.ok(Math.abs(out.loss!.item() - Number(ref.clip_loss!.data[0]!)) < 1e-4);
  // open_clip's SigLipLoss with logit_scale 10, logit_bias -10, from the same normalised features.
  const N = pixels.shape[0]!;
  const logits = out.imageEmbeds.matmul(out.textEmbeds.transpose(0, 1)).mul(10).add(-10);
  const signs = tensor(Float32Array.from({ length: N * N }, (_, i) => (i % (N + 1) === 0 ? 1 : -1)), { shape: [N, N] });
  const siglip = logits.mul(signs).neg().softplus().sum().div(N);
  assert.ok(Math.abs(siglip.item() - Number(ref.siglip_loss_t10_bm10!.data[0]!)) < 1e-4);

  out.loss!.backward();
  const params = new Map(model.namedParameters());
  const grads = toOpenClipTensors(model.config, (k) => params.get(k)?.grad ?? null);
  const refGrads = readAll(path.join(dir, 'grads.safetensors'));
  assert.deepEqual(Object.keys(grads).sort(), Object.keys(refGrads).sort());
  for (const [k, r] of Object.entries(refGrads)) {
    const err = maxDiff(floats(grads[k]!), r.data as Float32Array);
    assert.ok(err <= 1e-3 * maxAbs(r.data as Float32Array), `${k}: ${err}`);
  }
});

test('open_clip -> HF layout -> CLIPModel gives the same features; open_clip round trip is exact', (t) => {
  const dir = openClipFixture();
  if (!dir) return t.skip(sharedNotFound());
  const model = loadOpenClip(dir);
  // argmax pooling is written as HF's legacy eos_token_id 2.
  assert.equal(model.config.textConfig.eosTokenId, 2);
  const inputs = readAll(path.join(dir, 'inputs.safetensors'));
  const textIds = toTensor(inputs.input_ids!);
  const pixels = toTensor(inputs.pixel_values!);

  const hfDir = tmpDir();
  model.savePretrained(hfDir);
  const hf = CLIPModel.fromPretrained(hfDir);
  assertSameState(model, hf);
  assert.deepEqual(floats(hf.getTextFeatures(textIds)), floats(model.getTextFeatures(textIds)));
  assert.equal((readHFConfig(hfDir).text_config as Record<string, unknown>).eos_token_id, 2);

  const ocDir = tmpDir();
  saveOpenClip(model, ocDir);
  const back = loadOpenClip(ocDir);
  assertSameState(model, back);
  assert.deepEqual(floats(back.getImageFeatures(pixels)), floats(model.getImageFeatures(pixels)));
  // The same tensors, bit for bit, under the same names as open_clip wrote.
  const orig = readAll(path.join(dir, 'open_clip_model.safetensors'));
  const mine = readAll(path.join(ocDir, 'open_clip_model.safetensors'));
  assert.deepEqual(Object.keys(mine).sort(), Object.keys(orig).sort());
  for (const [k, v] of Object.entries(orig)) assert.deepEqual(mine[k]!.data, v.data, k);
  const cfg = clipConfigFromOpenClip(JSON.parse(fs.readFileSync(path.join(ocDir, 'open_clip_config.json'), 'utf8')) as Record<string, unknown>);
  assert.deepEqual(cfg.toHF(), model.config.toHF());
});

test('open_clip: CustomTextCLIP prefix, key errors and unsupported configs', (t) => {
  const model = new CLIPModel(smallConfig(), { generator: new Generator(11) });
  const layout = openClipLayout(model.config, true);
  assert.ok(layout.some((e) => e.key === 'text.transformer.resblocks.1.attn.in_proj_weight'));
  const dir = tmpDir();
  saveOpenClip(model, dir);
  // Rename the text keys to CustomTextCLIP's and load again.
  const file = path.join(dir, 'open_clip_model.safetensors');
  const all = readAll(file);
  const renamed = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.startsWith('visual.') || k === 'logit_scale' ? k : `text.${k}`, v]));
  writeSafetensors(file, renamed);
  assertSameState(model, loadOpenClip(dir));

  delete renamed['text.ln_final.bias'];
  renamed['visual.proj'] = { ...renamed['visual.proj']!, shape: [10, 24] };
  renamed['visual.extra'] = renamed['logit_scale']!;
  writeSafetensors(file, renamed);
  assert.throws(() => loadOpenClip(dir), (e: Error) => e instanceof StateDictError &&
    /missing key:\n\s+text\.ln_final\.bias/.test(e.message) && /unexpected key:\n\s+visual\.extra/.test(e.message) &&
    /visual\.proj: checkpoint \[10,24\] vs model \[24,10\]/.test(e.message));

  const cfg = { model_cfg: { embed_dim: 8, vision_cfg: { layers: [3, 4, 6, 3], width: 64 }, text_cfg: {} } };
  assert.throws(() => clipConfigFromOpenClip(cfg), /ModifiedResNet/);
  assert.throws(() => clipConfigFromOpenClip({ embed_dim: 8, text_cfg: { hf_model_name: 'bert' } }), /hf_model_name/);
  assert.throws(() => clipConfigFromOpenClip({ embed_dim: 8, init_logit_bias: -10 }), /logit bias/);
  assert.throws(() => clipConfigFromOpenClip({ embed_dim: 8, text_cfg: { pool_type: 'last' } }), /pool_type 'last'/);
  assert.throws(() => clipConfigFromOpenClip({ embed_dim: 8, text_cfg: { pool_type: 'eos' } }), /eos_id must be a positive integer/);
  assert.throws(() => clipConfigFromOpenClip({ embed_dim: 8, text_cfg: { pool_type: 'eos', eos_id: 2 } }), /eos_id 2 is not supported/);
  const eos = clipConfigFromOpenClip({ embed_dim: 8, text_cfg: { pool_type: 'eos', eos_id: 7 } });
  assert.equal(eos.textConfig.eosTokenId, 7);
  if (!openClipFixture()) t.diagnostic(`${sharedNotFound()}; open_clip checks on a random model only`);
});

// ---------------------------------------------------------------------------------------------
// Saving and loading the HF layout

test('save -> load round trip: same keys, bit-identical weights, same outputs; config fields kept', (t) => {
  const src = hfFixture();
  const model = src ? CLIPModel.fromPretrained(src) : new CLIPModel(smallConfig(), { generator: new Generator(1) });
  const dir = tmpDir();
  assert.deepEqual(model.savePretrained(dir), ['config.json', 'model.safetensors']);
  const back = CLIPModel.fromPretrained(dir);
  assertSameState(model, back);
  const tc = model.config.textConfig;
  const vc = model.config.visionConfig;
  const px = randn([2, vc.numChannels, vc.imageSize, vc.imageSize], { generator: new Generator(2) });
  const textIds = ids([[3, 5, tc.eosTokenId, 0], [4, 4, 6, tc.eosTokenId]]);
  assert.deepEqual(floats(back.forward(textIds, px).logitsPerImage), floats(model.forward(textIds, px).logitsPerImage));

  const saved = readHFConfig(dir);
  assert.deepEqual(saved.architectures, ['CLIPModel']);
  assert.equal(saved.model_type, 'clip');
  assert.match(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), /\n {2}"initializer_factor": 1\.0,\n/);
  if (src) {
    const orig = readHFConfig(src);
    const h = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    const o = SafetensorsFile.open(path.join(src, 'model.safetensors'));
    assert.deepEqual(h.metadata, { format: 'pt' });
    assert.deepEqual(h.names.sort(), o.names.sort());
    h.close();
    o.close();
    assertConfigKept(saved, orig, ['projection_dim', 'logit_scale_init_value', 'transformers_version']);
  } else {
    t.diagnostic(`${sharedNotFound()}; round trip of a random model only`);
  }
});

test('HF key errors: missing, unexpected and mis-shaped keys are named; stale position_ids are skipped', () => {
  const model = new CLIPModel(smallConfig(), { generator: new Generator(3) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const file = path.join(dir, 'model.safetensors');
  const all = readAll(file);
  // Old checkpoints stored the position_ids buffers: they load, and are not reported.
  const withIds = { ...all, 'text_model.embeddings.position_ids': { dtype: 'int64' as const, shape: [1, 12], data: new BigInt64Array(12) } };
  writeSafetensors(file, withIds);
  assertSameState(model, CLIPModel.fromPretrained(dir));

  const broken = { ...all };
  delete broken['text_projection.weight'];
  broken['vision_model.post_layernorm.bias'] = { ...broken['vision_model.post_layernorm.bias']!, shape: [2, 12] };
  broken['vision_model.head.weight'] = broken['logit_scale']!;
  writeSafetensors(file, broken);
  assert.throws(() => CLIPModel.fromPretrained(dir), (e: Error) => e instanceof StateDictError &&
    /missing key:\n\s+text_projection\.weight/.test(e.message) && /unexpected key:\n\s+vision_model\.head\.weight/.test(e.message) &&
    /vision_model\.post_layernorm\.bias: checkpoint \[2,12\] vs model \[24\]/.test(e.message));
  // Without strict, only the shape mismatch is an error.
  assert.throws(() => CLIPModel.fromPretrained(dir, { strict: false }), /shape mismatch/);
  broken['vision_model.post_layernorm.bias'] = all['vision_model.post_layernorm.bias']!;
  writeSafetensors(file, broken);
  const partial = CLIPModel.fromPretrained(dir, { strict: false });
  assert.deepEqual(floats(partial.visionModel.postLayernorm.bias!), floats(model.visionModel.postLayernorm.bias!));
});

test('config: HF defaults, extra fields kept, errors name the field', () => {
  const c = CLIPConfig.fromHF({ model_type: 'clip', text_config: { eos_token_id: 2, foo: 'bar' }, vision_config: {} });
  assert.equal(c.textConfig.hiddenSize, 512);
  assert.equal(c.textConfig.maxPositionEmbeddings, 77);
  assert.equal(c.visionConfig.patchSize, 32);
  assert.equal(c.visionConfig.hiddenAct, 'quick_gelu');
  assert.equal(c.projectionDim, 512);
  assert.equal(c.logitScaleInitValue, 2.6592);
  assert.ok(c.textConfig.legacyPooling);
  assert.equal((c.toHF().text_config as Record<string, unknown>).foo, 'bar');
  assert.throws(() => CLIPConfig.fromHF({ model_type: 'siglip' }), /model_type is 'siglip', not 'clip'/);
  assert.throws(() => CLIPConfig.fromHF({ text_config: { hidden_size: 30, num_attention_heads: 4 } }), /not a multiple of num_attention_heads/);
  assert.throws(() => CLIPConfig.fromHF({ vision_config: { patch_size: 'x' } }), /vision_config: patch_size must be a positive integer/);
  assert.throws(() => CLIPConfig.fromHF({ vision_config: { hidden_act: 'nope' } }), /unknown activation 'nope'/);
});

// ---------------------------------------------------------------------------------------------
// Behaviour

test('EOS pooling: first eos_token_id, or the largest id for legacy configs (eos_token_id 2)', () => {
  const rows = ids([[5, 9, 3, 9, 0], [7, 1, 1, 1, 1], [2, 8, 8, 0, 0]]);
  assert.deepEqual(eosPositions(rows, new CLIPTextConfig({ eosTokenId: 9 })), [1, 0, 0]);
  assert.deepEqual(eosPositions(rows, new CLIPTextConfig({ eosTokenId: 2 })), [1, 0, 1]);
  assert.deepEqual(eosPositions(rows, new CLIPTextConfig({ eosTokenId: 8 })), [0, 0, 1]);
});

test('text tower: right padding after EOS changes nothing, with or without the attention mask', () => {
  const model = new CLIPModel(smallConfig(), { generator: new Generator(4) });
  const a = ids([[1, 4, 7, 39, 0, 0], [2, 3, 5, 8, 9, 39]]);
  const b = ids([[1, 4, 7, 39, 21, 13], [2, 3, 5, 8, 9, 39]]);
  const mask = ids([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]);
  const ref = floats(model.getTextFeatures(a, mask));
  assert.ok(maxDiff(floats(model.getTextFeatures(a)), ref) < 1e-6);
  assert.ok(maxDiff(floats(model.getTextFeatures(b, mask)), ref) < 1e-6);
  // A token before the EOS does change it: the mask and pooling are not vacuous.
  assert.ok(maxDiff(floats(model.getTextFeatures(ids([[1, 4, 8, 39, 0, 0], [2, 3, 5, 8, 9, 39]]), mask)), ref) > 1e-4);
  assert.throws(() => model.getTextFeatures(ids([Array.from({ length: 13 }, () => 1)])), /exceeds max_position_embeddings 12/);
});

test('vision tower: interpolatePosEncoding is the identity at the native size and works at others', () => {
  const model = new CLIPModel(smallConfig(), { generator: new Generator(5) });
  const gen = new Generator(6);
  const px = randn([2, 3, 12, 12], { generator: gen });
  assert.deepEqual(floats(model.getImageFeatures(px, { interpolatePosEncoding: true })), floats(model.getImageFeatures(px)));
  const big = randn([1, 3, 20, 16], { generator: gen });
  assert.throws(() => model.getImageFeatures(big), /doesn't match the model \(12\*12\)/);
  const out = model.visionModel.forward(big, { interpolatePosEncoding: true });
  assert.deepEqual(out.lastHiddenState.shape, [1, 1 + 5 * 4, 24]);
  // A 3x3 grid resized to 3x3 is the identity, so a 12x12 crop of the table must equal the table.
  const emb = model.visionModel.embeddings;
  assert.deepEqual(floats(emb.interpolatePosEncoding(12, 13)), floats(emb.positionEmbedding.weight));
  // Gradients reach the position table through the resize.
  out.poolerOutput.sum().backward();
  assert.ok(maxAbs(floats(emb.positionEmbedding.weight.grad!)) > 0);
});

test('contrastive loss: symmetric cross-entropy; logits are scaled cosine similarities', () => {
  const logits = tensor([[2, 0.5, -1], [0, 1, 0.25], [0.3, -0.2, 3]]);
  const lse = (xs: number[]) => Math.log(xs.reduce((s, x) => s + Math.exp(x), 0));
  const m = logits.tolist() as number[][];
  const rows = m.map((r, i) => lse(r) - r[i]!);
  const cols = m.map((_, j) => lse(m.map((r) => r[j]!)) - m[j]![j]!);
  const want = (rows.reduce((a, b) => a + b) / 3 + cols.reduce((a, b) => a + b) / 3) / 2;
  assert.ok(Math.abs(clipLoss(logits).item() - want) < 1e-6);
  assert.throws(() => clipLoss(tensor([[1, 2, 3], [4, 5, 6]])), /as many texts as images/);

  const model = new CLIPModel(smallConfig(), { generator: new Generator(7) });
  const px = randn([3, 3, 12, 12], { generator: new Generator(8) });
  const t = ids([[1, 39, 0], [5, 6, 39], [39, 0, 0]]);
  const out = model.forward(t, px, null, { returnLoss: true });
  const cos = floats(l2Normalize(model.getTextFeatures(t)).matmul(l2Normalize(model.getImageFeatures(px)).transpose(0, 1)));
  const scale = Math.exp(model.config.logitScaleInitValue);
  assert.ok(maxDiff(floats(out.logitsPerText), cos.map((v) => v * scale)) < 1e-4);
  assert.deepEqual(floats(out.logitsPerImage.contiguous()), floats(out.logitsPerText.transpose(0, 1).contiguous()));
  assert.ok(Math.abs(out.loss!.item() - clipLoss(out.logitsPerText).item()) < 1e-6);
  assert.throws(() => model.forward(t.slice(0, 0, 2), px, null, { returnLoss: true }), /as many texts as images/);
});

test('initialisation follows HF: unit layer norms, zero biases, logit scale, projection scale', () => {
  const model = new CLIPModel(smallConfig(), { generator: new Generator(9) });
  assert.equal(model.logitScale.item(), Math.fround(2.6592));
  assert.ok(floats(model.textModel.finalLayerNorm.weight!).every((v) => v === 1));
  assert.ok(floats(model.visionModel.encoder.layers.get(0).mlp.fc1.bias!).every((v) => v === 0));
  const w = floats(model.visualProjection.weight);
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - 24 ** -0.5) < 0.25 * 24 ** -0.5, `visual projection std ${std}`);
  // The same generator seed gives the same model; the reference backend gives the same numbers.
  assertSameState(model, new CLIPModel(smallConfig(), { generator: new Generator(9) }));
  const ref = new CLIPModel(smallConfig(), { generator: new Generator(9), backend: getBackend('reference') });
  const px = randn([1, 3, 12, 12], { generator: new Generator(10) });
  const pxRef = tensor(floats(px), { shape: px.shape, backend: getBackend('reference') });
  assert.ok(maxDiff(floats(ref.getImageFeatures(pxRef)), floats(model.getImageFeatures(px))) < 1e-5);
});
