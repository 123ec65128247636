import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ViTConfig, ViTForImageClassification, ViTModel, vitKeyFromHF, vitKeyToHF } from '../../src/models/vit.js';
import { bicubicMatrix, interpolateBicubic } from '../../src/models/interpolate.js';
import { HFWeights, parseSize, readHFConfig, saveHFWeights } from '../../src/io/hf.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { evaluateFixture, runParity, formatParityReport, detectFamily } from '../../src/eval/parity.js';
import { StateDictError } from '../../src/nn/module.js';
import { getBackend } from '../../src/tensor/device.js';
import { gradcheck } from '../../src/tensor/gradcheck.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findFixture, floats, maxDiff, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('vit');



/** A small ViT whose sizes differ from the fixture's everywhere, with HF-style random weights. */
function smallConfig(over: Partial<ConstructorParameters<typeof ViTConfig>[0]> = {}): ViTConfig {
  return new ViTConfig({
    hiddenSize: 24, numHiddenLayers: 3, numAttentionHeads: 3, intermediateSize: 50, hiddenAct: 'gelu_new',
    imageSize: 24, patchSize: 6, qkvBias: false, layerNormEps: 1e-6, initializerRange: 0.2,
    labels: ['cat', 'dog', 'owl', 'eel', 'yak'], ...over,
  });
}

function stateOf(m: { stateDict(): Record<string, Tensor> }): Map<string, Float32Array> {
  return new Map(Object.entries(m.stateDict()).map(([k, t]) => [k, floats(t)]));
}

function assertSameState(a: { stateDict(): Record<string, Tensor> }, b: { stateDict(): Record<string, Tensor> }): void {
  const sa = stateOf(a);
  const sb = stateOf(b);
  assert.deepEqual([...sa.keys()].sort(), [...sb.keys()].sort());
  for (const [k, v] of sa) assert.deepEqual(sb.get(k), v, k);
}

/** Writes inputs (pixel_values, labels) and meta.json next to a checkpoint, making it a fixture. */
function writeInputs(dir: string, pixels: Tensor, labels: Tensor): void {
  writeSafetensors(path.join(dir, 'inputs.safetensors'), {
    pixel_values: { shape: pixels.shape, data: pixels.data() },
    labels: { shape: labels.shape, data: labels.data(), dtype: 'I64' },
  });
}

function writeMeta(dir: string, outputs: Record<string, Tensor>, interpolate: boolean): void {
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({
    class: 'ViTForImageClassification',
    outputs: Object.fromEntries(['logits', 'last_hidden_state', 'loss'].map((k) => [k, outputs[k]!.shape])),
    loss_fn: 'cross-entropy',
    interpolate_pos_encoding: interpolate,
  }));
}

function writeTensors(file: string, tensors: Record<string, Tensor>): void {
  const host: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(tensors)) if (!k.startsWith('hidden_states.')) host[k] = { shape: t.shape, data: t.data() };
  writeSafetensors(file, host);
}

// ---------------------------------------------------------------------------------------------
// Parity with the Hugging Face fixture

test('HF parity: ViTForImageClassification outputs and every gradient match transformers', (t) => {
  const dir = findFixture('vit');
  if (!dir) return t.skip(sharedNotFound());
  const report = runParity(dir);
  assert.ok(report.ok, formatParityReport(report));
  const outputs = report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort();
  assert.deepEqual(outputs, ['last_hidden_state', 'logits', 'loss']);
  const grads = report.checks.filter((c) => c.kind === 'gradient');
  assert.equal(grads.length, 40);
  assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
  // Both backends: the reference one checks the native kernels did not hide a model bug.
  const ref = runParity(dir, { backend: 'reference' });
  assert.ok(ref.ok, formatParityReport(ref));
});

test('HF parity: a different family is "not supported yet"; a failing tensor is reported', (t) => {
  assert.throws(() => detectFamily({ architectures: ['LlavaForConditionalGeneration'], model_type: 'llava' }),
    /LlavaForConditionalGeneration \(model_type 'llava'\) is not supported yet; supported: vit/);
  assert.throws(() => detectFamily({ architectures: ['ViTForMaskedImageModeling'], model_type: 'vit' }), /not supported yet/);
  const vit = findFixture('vit');
  if (!vit) return t.skip(sharedNotFound());
  // A copy whose reference logits are off by 1e-3 in one element must fail on logits alone.
  const dir = tmpDir();
  fs.cpSync(vit, dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  const outs = SafetensorsFile.open(path.join(dir, 'outputs.safetensors'));
  const all = outs.readAll();
  outs.close();
  (all.logits!.data as Float32Array)[7]! += 1e-3;
  writeSafetensors(path.join(dir, 'outputs.safetensors'), all);
  const report = runParity(dir);
  assert.equal(report.ok, false);
  assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => c.name), ['logits']);
  assert.ok(Math.abs(report.checks.find((c) => c.name === 'logits')!.maxAbsErr - 1e-3) < 1e-6);
});

// ---------------------------------------------------------------------------------------------
// Saving and loading

test('save -> load round trip: same keys, bit-identical weights, same outputs; config fields kept', (t) => {
  const src = findFixture('vit');
  const model = src ? ViTForImageClassification.fromPretrained(src) : new ViTForImageClassification(smallConfig(), { generator: new Generator(1) });
  const dir = tmpDir();
  assert.deepEqual(model.savePretrained(dir), ['config.json', 'model.safetensors']);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  const back = ViTForImageClassification.fromPretrained(dir);
  assertSameState(model, back);
  const [H, W] = model.config.imageSize;
  const px = randn([2, model.config.numChannels, H, W], { generator: new Generator(2) });
  assert.deepEqual(floats(back.forward(px).logits), floats(model.forward(px).logits));

  const saved = readHFConfig(dir);
  assert.deepEqual(saved.architectures, ['ViTForImageClassification']);
  assert.equal(saved.model_type, 'vit');
  assert.equal(saved.dtype, 'float32');
  assert.match(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), /\n {2}"hidden_dropout_prob": 0\.0,\n/);
  const header = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  assert.deepEqual(header.metadata, { format: 'pt' }); // HF refuses safetensors files without it
  if (src) {
    // The same key names as the checkpoint transformers wrote, and its other fields.
    const orig = SafetensorsFile.open(path.join(src, 'model.safetensors'));
    assert.deepEqual(header.names.sort(), orig.names.sort());
    for (const n of orig.names) assert.deepEqual(header.info(n).shape, orig.info(n).shape);
    orig.close();
    const cfg = readHFConfig(src);
    for (const k of ['encoder_stride', 'id2label', 'label2id', 'hidden_size', 'layer_norm_eps', 'problem_type', 'initializer_range']) {
      assert.deepEqual(saved[k], cfg[k], k);
    }
  } else {
    t.diagnostic(`${sharedNotFound()}; round trip of a random model only`);
  }
  header.close();
});

test('ViTModel loads the encoder of a classification checkpoint, and saves without the vit. prefix', () => {
  const clf = new ViTForImageClassification(smallConfig(), { generator: new Generator(3) });
  const dir = tmpDir();
  clf.savePretrained(dir);
  const base = ViTModel.fromPretrained(dir);
  assert.equal(base.pooler, null);
  const px = randn([2, 3, 24, 24], { generator: new Generator(4) });
  assert.deepEqual(floats(base.forward(px).lastHiddenState), floats(clf.vit.forward(px).lastHiddenState));

  const dir2 = tmpDir();
  const withPooler = new ViTModel(smallConfig(), { generator: new Generator(5) });
  withPooler.savePretrained(dir2);
  const w = HFWeights.open(dir2);
  assert.ok(w.names.includes('pooler.dense.weight') && w.names.includes('encoder.layer.2.attention.attention.query.weight'));
  assert.ok(!w.names.some((n) => n.startsWith('vit.')));
  w.close();
  const back = ViTModel.fromPretrained(dir2);
  assertSameState(withPooler, back);
  assert.deepEqual(readHFConfig(dir2).architectures, ['ViTModel']);
  // A bare-encoder checkpoint has no classifier: an error unless strict is off.
  assert.throws(() => ViTForImageClassification.fromPretrained(dir2), (e: Error) =>
    e instanceof StateDictError && /missing key/.test(e.message) && /classifier\.weight/.test(e.message) && /pooler\.dense\.weight/.test(e.message));
});

test('sharded save and load: shards, index, stale files removed', () => {
  const model = new ViTForImageClassification(smallConfig(), { generator: new Generator(6) });
  const dir = tmpDir();
  model.savePretrained(dir); // a single file first: the sharded save must remove it
  const files = model.savePretrained(dir, { maxShardSize: 8000 });
  const shards = files.filter((f) => f.startsWith('model-'));
  assert.ok(shards.length >= 3, `${shards.length} shards`);
  shards.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', ...shards, 'model.safetensors.index.json'].sort());
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as {
    metadata: { total_size: number }; weight_map: Record<string, string>;
  };
  const keys = Object.keys(model.stateDict()).map(vitKeyToHF).sort();
  assert.deepEqual(Object.keys(index.weight_map).sort(), keys);
  assert.equal(index.metadata.total_size, model.numParameters() * 4);
  for (const f of shards) {
    const size = fs.statSync(path.join(dir, f)).size;
    const st = SafetensorsFile.open(path.join(dir, f));
    const bytes = size - st.dataStart;
    // Only a shard holding a single tensor may exceed the limit.
    assert.ok(bytes <= 8000 || st.names.length === 1, `${f}: ${bytes} bytes, ${st.names.length} tensors`);
    for (const n of st.names) assert.equal(index.weight_map[n], f);
    st.close();
  }
  const back = ViTForImageClassification.fromPretrained(dir);
  assertSameState(model, back);

  // A shard the index names but that is gone is an error naming it.
  const broken = tmpDir();
  fs.cpSync(dir, broken, { recursive: true });
  fs.rmSync(path.join(broken, shards[1]!));
  assert.throws(() => ViTForImageClassification.fromPretrained(broken), new RegExp(`shard file not found: ${shards[1]}`));

  // Saving single-file again removes the shards and the index.
  model.savePretrained(dir);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  assert.equal(parseSize('5GB'), 5e9);
  assert.equal(parseSize('10MiB'), 10 * 2 ** 20);
  assert.throws(() => parseSize('lots'), /not a size/);
});

test('F16 and BF16 checkpoints load as float32 (the values rounded as stored)', () => {
  const model = new ViTForImageClassification(smallConfig(), { generator: new Generator(8) });
  const px = randn([2, 3, 24, 24], { generator: new Generator(9) });
  const logits = floats(model.forward(px).logits);
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const dir = tmpDir();
    model.savePretrained(dir, { dtype });
    const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    assert.ok(st.tensors.every((t) => t.dtype === (dtype === 'float16' ? 'F16' : 'BF16')));
    st.close();
    assert.equal(readHFConfig(dir).dtype, dtype);
    const back = ViTForImageClassification.fromPretrained(dir);
    const a = stateOf(model);
    const ulp = dtype === 'float16' ? 2 ** -11 : 2 ** -8;
    for (const [k, v] of stateOf(back)) {
      const orig = a.get(k)!;
      for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i]! - orig[i]!) <= ulp * Math.abs(orig[i]!) + 1e-7, `${k}[${i}]`);
    }
    // Half-precision weights give nearly the float32 model's logits.
    assert.ok(maxDiff(floats(back.forward(px).logits), logits) < (dtype === 'float16' ? 5e-3 : 5e-2));
  }
});

test('an F16 copy of the HF fixture loads and stays close to the reference', (t) => {
  const src = findFixture('vit');
  if (!src) return t.skip(sharedNotFound());
  const dir = tmpDir();
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const orig = SafetensorsFile.open(path.join(src, 'model.safetensors'));
  saveHFWeights(dir, Object.fromEntries(orig.names.map((n) => [n, orig.read(n)])), { dtype: 'float16' });
  orig.close();
  const model = ViTForImageClassification.fromPretrained(dir);
  const inputs = SafetensorsFile.open(path.join(src, 'inputs.safetensors')).readAll();
  const outputs = SafetensorsFile.open(path.join(src, 'outputs.safetensors')).readAll();
  const px = tensor(inputs.pixel_values!.data, { shape: inputs.pixel_values!.shape });
  const err = maxDiff(floats(model.forward(px).logits), outputs.logits!.data as Float32Array);
  assert.ok(err > 0 && err < 2e-3, `F16 logits differ by ${err}`);
});

test('a checkpoint with missing, unexpected and mis-shaped keys is one error listing them all', () => {
  const model = new ViTForImageClassification(smallConfig(), { generator: new Generator(10) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const all = st.readAll();
  st.close();
  delete all['vit.encoder.layer.1.attention.output.dense.bias'];
  delete all['vit.layernorm.weight'];
  all['vit.encoder.layer.0.intermediate.dense.weight'] = { dtype: 'float32', shape: [49, 24], data: new Float32Array(49 * 24) };
  all['vit.embeddings.mask_token'] = { dtype: 'float32', shape: [1, 1, 24], data: new Float32Array(24) };
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  const before = floats(model.classifier!.weight);
  assert.throws(() => ViTForImageClassification.fromPretrained(dir), (e: Error) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual([...e.missingKeys].sort(), ['vit.encoder.layer.1.attention.output.dense.bias', 'vit.layernorm.weight']);
    assert.deepEqual([...e.unexpectedKeys], ['vit.embeddings.mask_token']);
    assert.equal(e.mismatchedKeys.length, 1);
    assert.match(e.message, /vit\.encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \[49,24\] vs model \[50,24\]/);
    assert.match(e.message, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
  assert.deepEqual(floats(model.classifier!.weight), before);
  // Missing and unexpected keys are tolerated with strict: false; a wrong shape never is.
  delete all['vit.encoder.layer.0.intermediate.dense.weight'];
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  const loose = ViTForImageClassification.fromPretrained(dir, { strict: false });
  assert.deepEqual(floats(loose.classifier!.weight), before);
});

test('config.json errors are clear', () => {
  assert.throws(() => readHFConfig(path.join(tmpDir(), 'nowhere')), /no such checkpoint folder/);
  const dir = tmpDir();
  fs.mkdirSync(dir);
  assert.throws(() => readHFConfig(dir), /config\.json: missing/);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"hidden_size": 32,');
  assert.throws(() => readHFConfig(dir), /config\.json: not valid JSON/);
  fs.writeFileSync(path.join(dir, 'config.json'), '[1, 2]');
  assert.throws(() => readHFConfig(dir), /must hold a JSON object/);
  assert.throws(() => ViTConfig.fromHF({ model_type: 'vit', hidden_size: '32' }), /hidden_size must be a positive integer, got "32"/);
  assert.throws(() => ViTConfig.fromHF({ model_type: 'clip' }), /model_type is 'clip', not 'vit'/);
  assert.throws(() => ViTConfig.fromHF({ hidden_size: 30, num_attention_heads: 4 }), /not a multiple/);
  assert.throws(() => ViTConfig.fromHF({ hidden_act: 'swoosh' }), /unknown activation 'swoosh'/);
  assert.throws(() => ViTConfig.fromHF({ num_labels: 3, id2label: { 0: 'a', 1: 'b' } }), /num_labels is 3 but id2label has 2/);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "vit"}');
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), '');
  assert.throws(() => ViTForImageClassification.fromPretrained(dir), /no model\.safetensors.*pytorch_model\.bin: only safetensors/);
  const c = ViTConfig.fromHF({ image_size: [32, 48], patch_size: 8, num_labels: 3 });
  assert.deepEqual(c.gridSize, [4, 6]);
  assert.deepEqual(c.labels, ['LABEL_0', 'LABEL_1', 'LABEL_2']);
});

test('HF key names map both ways, including transformers 5 module names', () => {
  const model = new ViTForImageClassification(smallConfig({ qkvBias: true }), { generator: new Generator(11) });
  for (const k of Object.keys(model.stateDict())) assert.equal(vitKeyFromHF(vitKeyToHF(k)), k);
  assert.equal(vitKeyToHF('vit.encoder.layers.3.self_attn.out_proj.bias'), 'vit.encoder.layer.3.attention.output.dense.bias');
  assert.equal(vitKeyToHF('encoder.layers.0.mlp.fc2.weight'), 'encoder.layer.0.output.dense.weight');
  assert.equal(vitKeyFromHF('vit.layers.2.attention.o_proj.weight'), 'vit.encoder.layers.2.self_attn.out_proj.weight');
  assert.equal(vitKeyFromHF('vit.layers.0.mlp.fc1.bias'), 'vit.encoder.layers.0.mlp.fc1.bias');
  assert.equal(vitKeyFromHF('vit.embeddings.cls_token'), 'vit.embeddings.cls_token');
});

// ---------------------------------------------------------------------------------------------
// Position-embedding interpolation

test('bicubic resize matches PyTorch F.interpolate(bicubic, align_corners=False)', () => {
  // Reference values from PyTorch 1.13 in float64: x[i, j] = k + sin(k), k = i * w + j.
  const cases: [number, number, number, number, number[]][] = [
    [3, 3, 5, 7, [-0.5211305484, -0.0728916814, 0.7489113895, 1.7069052389, 2.3768850383, 2.6946635217, 2.9202248594,
      0.9199301742, 1.146070019, 1.5361898686, 2.0675480598, 2.5642984114, 2.8938545418, 3.0932373995, 3.1299599319,
      3.1430027023, 3.1166004917, 3.2431975047, 3.5888804599, 3.9458786483, 4.1283073092, 4.8257108976, 5.0644321634,
      5.4677503736, 6.0453607397, 6.624893098, 7.0315747949, 7.2717820455, 5.7372549381, 6.2056535091, 7.0486048303,
      8.0807103517, 8.8833350041, 9.3246948044, 9.6156706664]],
    [4, 4, 2, 3, [1.2508305029, 3.2143861786, 5.0315811052, 10.9194484058, 12.3106379853, 12.9885148037]],
  ];
  const ref = getBackend('reference');
  for (const [h, w, oh, ow, want] of cases) {
    const x = tensor(Float64Array.from({ length: h * w }, (_, k) => k + Math.sin(k)), { shape: [1, 1, h, w], dtype: 'float64', backend: ref });
    const y = interpolateBicubic(x, [oh, ow]);
    assert.deepEqual(y.shape, [1, 1, oh, ow]);
    assert.ok(maxDiff(y.data() as Float64Array, want) < 1e-9, `${h}x${w} -> ${oh}x${ow}`);
  }
  // Each row of the matrix sums to 1 (a constant stays constant); same size is the identity.
  for (const [n, m] of [[4, 9], [9, 4], [14, 24], [1, 3]] as const) {
    const a = bicubicMatrix(n, m);
    for (let i = 0; i < m; i++) assert.ok(Math.abs(a.subarray(i * n, (i + 1) * n).reduce((s, v) => s + v, 0) - 1) < 1e-12);
  }
  const id = bicubicMatrix(5, 5);
  for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) assert.equal(id[i * 5 + j], i === j ? 1 : 0);
  // And it is differentiable.
  gradcheck((g) => interpolateBicubic(g, [5, 3]), [randn([2, 4, 4], { generator: new Generator(12) })]);
});

test('interpolate_pos_encoding: other image sizes, identity at the native size, gradients reach the table', () => {
  const model = new ViTForImageClassification(smallConfig({ qkvBias: true }), { generator: new Generator(13) });
  const emb = model.vit.embeddings;
  // Native size: the table itself, and the same outputs as without interpolation.
  assert.equal(emb.interpolatePosEncoding(24, 24), emb.positionEmbeddings);
  const px = randn([2, 3, 24, 24], { generator: new Generator(14) });
  assert.deepEqual(floats(model.forward(px, { interpolatePosEncoding: true }).logits), floats(model.forward(px).logits));
  assert.throws(() => model.forward(randn([1, 3, 30, 24])), /input image size \(30\*24\) doesn't match the model \(24\*24\).*interpolatePosEncoding/);

  // Other sizes: 36 x 54 -> a 6 x 9 grid; 25 x 25 drops the partial row and column of patches.
  for (const [H, W, gh, gw] of [[36, 54, 6, 9], [12, 30, 2, 5], [25, 25, 4, 4], [30, 30, 5, 5]] as const) {
    const pos = emb.interpolatePosEncoding(H, W);
    assert.deepEqual(pos.shape, [1, 1 + gh * gw, 24]);
    assert.deepEqual(floats(pos.slice(1, 0, 1)), floats(emb.positionEmbeddings.slice(1, 0, 1)));
    const out = model.forward(randn([2, 3, H, W], { generator: new Generator(H) }), { interpolatePosEncoding: true, outputHiddenStates: true });
    assert.deepEqual(out.logits.shape, [2, 5]);
    assert.deepEqual(out.hiddenStates!.at(-1)!.shape, [2, 1 + gh * gw, 24]);
  }
  // A non-square image with as many patches as the native grid is still resized (as HF does).
  const flat = emb.interpolatePosEncoding(12, 48); // 2 x 8 = 16 patches
  assert.notEqual(flat, emb.positionEmbeddings);
  // Entry [r, c] of the resized grid is sum_ij Wr[r, i] Wc[c, j] table[i, j], computed here directly.
  const table = floats(emb.positionEmbeddings);
  const wr = bicubicMatrix(4, 2);
  const wc = bicubicMatrix(4, 8);
  const got = floats(flat);
  let err = 0;
  for (let r = 0; r < 2; r++) {
    for (let c = 0; c < 8; c++) {
      for (let d = 0; d < 24; d++) {
        let s = 0;
        for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) s += wr[r * 4 + i]! * wc[c * 4 + j]! * table[(1 + i * 4 + j) * 24 + d]!;
        err = Math.max(err, Math.abs(s - got[(1 + r * 8 + c) * 24 + d]!));
      }
    }
  }
  assert.ok(err < 1e-5, `direct sum differs by ${err}`);

  const labels = tensor([1, 4], { dtype: 'int64' });
  model.zeroGrad();
  model.forward(randn([2, 3, 36, 42], { generator: new Generator(15) }), { labels, interpolatePosEncoding: true }).loss!.backward();
  const g = floats(emb.positionEmbeddings.grad!);
  assert.ok(g.every(Number.isFinite) && g.some((v) => v !== 0));
});

test('patchFeatures: the patch tokens after the final norm, or any hidden state', () => {
  const model = new ViTForImageClassification(smallConfig(), { generator: new Generator(16) });
  const px = randn([2, 3, 24, 24], { generator: new Generator(17) });
  const out = model.vit.forward(px, { outputHiddenStates: true });
  const feats = model.patchFeatures(px);
  assert.deepEqual(feats.shape, [2, 16, 24]);
  assert.deepEqual(floats(feats), floats(out.lastHiddenState.slice(1, 1)));
  for (const layer of [0, 1, 3, -1, -2]) {
    const want = out.hiddenStates!.at(layer)!.slice(1, 1);
    assert.deepEqual(floats(model.patchFeatures(px, { layer })), floats(want), `layer ${layer}`);
  }
  assert.throws(() => model.patchFeatures(px, { layer: 4 }), /out of range/);
  assert.deepEqual(model.patchFeatures(randn([1, 3, 36, 30]), { interpolatePosEncoding: true, layer: -2 }).shape, [1, 30, 24]);
});

// ---------------------------------------------------------------------------------------------
// Other sizes: a random checkpoint through the parity runner

test('a differently sized random ViT in HF layout runs through the parity runner (native vs reference backend)', () => {
  for (const [H, W, interpolate] of [[24, 24, false], [30, 42, true]] as const) {
    const config = smallConfig({ qkvBias: !interpolate, hiddenAct: interpolate ? 'gelu_new' : 'gelu' });
    const dir = tmpDir();
    new ViTForImageClassification(config, { generator: new Generator(20 + H) }).savePretrained(dir);
    const g = new Generator(30 + W);
    writeInputs(dir, randn([3, 3, H, W], { generator: g }), randint(0, 5, [3], { generator: g }));
    // Reference values from the reference backend (float64 arithmetic); the runner checks the
    // default backend against them.
    const { outputs, gradients } = evaluateFixture(dir, { backend: 'reference' });
    writeMeta(dir, outputs, interpolate);
    writeTensors(path.join(dir, 'outputs.safetensors'), outputs);
    writeTensors(path.join(dir, 'grads.safetensors'), gradients);
    const report = runParity(dir);
    assert.ok(report.ok, formatParityReport(report));
    assert.equal(report.checks.filter((c) => c.kind === 'gradient').length, Object.keys(gradients).length);
    const logits = report.checks.find((c) => c.name === 'logits')!;
    assert.deepEqual(logits.shape, [3, 5]);
    const last = report.checks.find((c) => c.name === 'last_hidden_state')!;
    assert.deepEqual(last.shape, [3, 1 + Math.floor(H / 6) * Math.floor(W / 6), 24]);
  }
});
