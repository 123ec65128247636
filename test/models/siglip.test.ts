import { siglipLoss } from '../../src/nn/losses.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  PackedMultiheadAttention, SiglipConfig, SiglipModel, SiglipTextConfig, SiglipVisionConfig,
} from '../../src/models/siglip.js';
import { readHFConfig } from '../../src/io/hf.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { evaluateFixture, formatParityReport, runParity } from '../../src/eval/parity.js';
import { MultiHeadAttention } from '../../src/nn/attention.js';
import { StateDictError } from '../../src/nn/module.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findFixture, floats, maxDiff, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('siglip');



/** A small SigLIP whose sizes differ from the fixture's everywhere, with HF-style random weights. */
function smallConfig(over: { text?: object; vision?: object } = {}): SiglipConfig {
  return new SiglipConfig({
    textConfig: new SiglipTextConfig({ vocabSize: 41, hiddenSize: 20, intermediateSize: 27, numHiddenLayers: 2, numAttentionHeads: 5,
      maxPositionEmbeddings: 9, projectionSize: 18, hiddenAct: 'gelu', ...over.text }),
    visionConfig: new SiglipVisionConfig({ hiddenSize: 18, intermediateSize: 23, numHiddenLayers: 3, numAttentionHeads: 3, imageSize: 20,
      patchSize: 5, ...over.vision }),
  });
}

/** Random weights everywhere, including logit_scale / logit_bias (HF's init zeroes them). */
function randomModel(config: SiglipConfig, seed: number): SiglipModel {
  const model = new SiglipModel(config, { generator: new Generator(seed) });
  const g = new Generator(seed + 1000);
  model.loadStateDict({ logit_scale: randn([1], { generator: g }).mul(0.5), logit_bias: randn([1], { generator: g }) }, { strict: false });
  return model;
}

function assertSameState(a: SiglipModel, b: SiglipModel): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual(Object.keys(sa).sort(), Object.keys(sb).sort());
  for (const [k, v] of Object.entries(sa)) assert.deepEqual(floats(sb[k] as Tensor), floats(v as Tensor), k);
}

// ---------------------------------------------------------------------------------------------
// Parity with the Hugging Face fixture

test('HF parity: SiglipModel outputs, loss and every gradient match transformers (native and reference backends)', (t) => {
  const dir = findFixture('siglip');
  if (!dir) return t.skip(sharedNotFound());
  const report = runParity(dir);
  assert.ok(report.ok, formatParityReport(report));
  const outputs = report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort();
  assert.deepEqual(outputs, ['image_embeds', 'logits_per_image', 'loss', 'text_embeds', 'text_last_hidden_state',
    'vision_last_hidden_state', 'vision_pooler_output']);
  const grads = report.checks.filter((c) => c.kind === 'gradient');
  assert.equal(grads.length, 88);
  assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
  for (const k of ['vision_model.head.attention.in_proj_weight', 'vision_model.head.probe', 'logit_scale', 'logit_bias', 'text_model.head.weight']) {
    assert.ok(grads.some((c) => c.name === k && c.ok), k);
  }
  const ref = runParity(dir, { backend: 'reference' });
  assert.ok(ref.ok, formatParityReport(ref));
});

test('a fixture whose reference is off by 1e-3 fails on that output alone', (t) => {
  const src = findFixture('siglip');
  if (!src) return t.skip(sharedNotFound());
  const dir = tmpDir();
  fs.cpSync(src, dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  const outs = SafetensorsFile.open(path.join(dir, 'outputs.safetensors'));
  const all = outs.readAll();
  outs.close();
  (all.vision_pooler_output!.data as Float32Array)[5]! += 1e-3;
  writeSafetensors(path.join(dir, 'outputs.safetensors'), all);
  const report = runParity(dir);
  assert.deepEqual(report.checks.filter((c) => !c.ok).map((c) => c.name), ['vision_pooler_output']);
});

// ---------------------------------------------------------------------------------------------
// The pieces

test('the sigmoid loss is HF\'s: mean over texts of sum over images of -log sigmoid(+-logit)', () => {
  const g = new Generator(1);
  for (const n of [1, 2, 5]) {
    const logits = randn([n, n], { generator: g }).mul(4);
    const x = floats(logits);
    let total = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const z = i === j ? 1 : -1;
        total += -Math.log(1 / (1 + Math.exp(-z * x[i * n + j]!)));
      }
    }
    assert.ok(Math.abs(siglipLoss(logits).item() - total / n) < 1e-5 * Math.max(1, total / n), `n=${n}`);
  }
  // Large logits stay finite (softplus, not log of a sigmoid that underflows).
  assert.ok(Number.isFinite(siglipLoss(tensor([[-200, 300], [150, 100]])).item()));
  assert.throws(() => siglipLoss(randn([2, 3])), /as many texts as images/);
});

test('the MAP head\'s packed attention equals cross-attention with the in_proj split into q, k, v', () => {
  const D = 12;
  const packed = new PackedMultiheadAttention(D, 4, { generator: new Generator(2) });
  const g = new Generator(3);
  packed.loadStateDict({ in_proj_weight: randn([3 * D, D], { generator: g }), in_proj_bias: randn([3 * D], { generator: g }) }, { strict: false });
  const mha = new MultiHeadAttention(D, 4, { generator: new Generator(4) });
  const w = packed.inProjWeight;
  const b = packed.inProjBias;
  mha.loadStateDict({
    'q_proj.weight': w.slice(0, 0, D), 'k_proj.weight': w.slice(0, D, 2 * D), 'v_proj.weight': w.slice(0, 2 * D),
    'q_proj.bias': b.slice(0, 0, D), 'k_proj.bias': b.slice(0, D, 2 * D), 'v_proj.bias': b.slice(0, 2 * D),
    'out_proj.weight': packed.outProj.weight, 'out_proj.bias': packed.outProj.bias!,
  });
  const q = randn([3, 2, D], { generator: g });
  const ctx = randn([3, 7, D], { generator: g });
  assert.ok(maxDiff(floats(packed.forward(q, ctx)), floats(mha.forward(q, { context: ctx }))) < 1e-5);
});

test('features, interpolation and the text attention mask', () => {
  const model = randomModel(smallConfig(), 5);
  const g = new Generator(6);
  const ids = randint(0, 41, [2, 9], { generator: g });
  const px = randn([2, 3, 20, 20], { generator: g });
  const out = model.forward(ids, px, { returnLoss: true });
  assert.deepEqual(out.logitsPerImage.shape, [2, 2]);
  assert.deepEqual(out.textEmbeds.shape, [2, 18]);
  assert.deepEqual(out.visionOutput.lastHiddenState.shape, [2, 16, 18]);
  assert.deepEqual(floats(model.getTextFeatures(ids)), floats(out.textOutput.poolerOutput!));
  assert.deepEqual(floats(model.getImageFeatures(px)), floats(out.visionOutput.poolerOutput!));
  // The embeddings are unit vectors; logits_per_image is logits_per_text transposed.
  for (const e of [out.textEmbeds, out.imageEmbeds]) for (const n of floats(e.square().sum(-1))) assert.ok(Math.abs(n - 1) < 1e-5);
  assert.deepEqual(floats(out.logitsPerImage.contiguous()), floats(out.logitsPerText.transpose(0, 1).contiguous()));
  assert.ok(Math.abs(out.loss!.item() - siglipLoss(out.logitsPerText).item()) < 1e-7);

  // Interpolation: the identity at the native size; other sizes resize the grid.
  const emb = model.visionModel.embeddings;
  assert.equal(emb.interpolatePosEncoding(20, 20), emb.positionEmbedding.weight);
  assert.deepEqual(floats(model.getImageFeatures(px, { interpolatePosEncoding: true })), floats(out.visionOutput.poolerOutput!));
  assert.throws(() => model.getImageFeatures(randn([1, 3, 25, 20])), /input image size \(25\*20\) doesn't match the model \(20\*20\)/);
  assert.deepEqual(model.visionModel.forward(randn([1, 3, 27, 36]), { interpolatePosEncoding: true }).lastHiddenState.shape, [1, 35, 18]);

  // A mask changes the result; a mask of all ones does not.
  const ones = tensor(new Int32Array(18).fill(1), { shape: [2, 9] });
  assert.deepEqual(floats(model.getTextFeatures(ids, { attentionMask: ones })), floats(model.getTextFeatures(ids)));
  const half = tensor(Int32Array.from({ length: 18 }, (_, i) => (i % 9 < 5 || i % 9 === 8 ? 1 : 0)), { shape: [2, 9] });
  assert.ok(maxDiff(floats(model.getTextFeatures(ids, { attentionMask: half })), floats(model.getTextFeatures(ids))) > 1e-4);
  assert.throws(() => model.getTextFeatures(randint(0, 41, [1, 10])), /sequence length 10 exceeds max_position_embeddings 9/);
});

// ---------------------------------------------------------------------------------------------
// Saving and loading

test('save -> load round trip: same keys as the HF checkpoint, bit-identical weights, same outputs, config kept', (t) => {
  const src = findFixture('siglip');
  const model = src ? SiglipModel.fromPretrained(src) : randomModel(smallConfig(), 7);
  const dir = tmpDir();
  assert.deepEqual(model.savePretrained(dir), ['config.json', 'model.safetensors']);
  const back = SiglipModel.fromPretrained(dir);
  assertSameState(model, back);
  const g = new Generator(8);
  const { imageSize: S, numChannels: C } = model.config.visionConfig;
  const ids = randint(0, model.config.textConfig.vocabSize, [2, model.config.textConfig.maxPositionEmbeddings], { generator: g });
  const px = randn([2, C, S, S], { generator: g });
  assert.deepEqual(floats(back.forward(ids, px).logitsPerText), floats(model.forward(ids, px).logitsPerText));

  const saved = readHFConfig(dir);
  assert.deepEqual(saved.architectures, ['SiglipModel']);
  assert.equal(saved.model_type, 'siglip');
  assert.match(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), /\n {2}"initializer_factor": 1\.0,\n/);
  if (src) {
    const orig = SafetensorsFile.open(path.join(src, 'model.safetensors'));
    const header = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    assert.deepEqual(header.names.sort(), orig.names.sort());
    for (const n of orig.names) assert.deepEqual(header.info(n).shape, orig.info(n).shape);
    orig.close();
    header.close();
    const cfg = readHFConfig(src);
    for (const part of ['text_config', 'vision_config'] as const) {
      const a = saved[part] as Record<string, unknown>;
      const b = cfg[part] as Record<string, unknown>;
      for (const k of Object.keys(b)) if (k !== 'dtype') assert.deepEqual(a[k], b[k], `${part}.${k}`);
    }
  } else {
    t.diagnostic(`${sharedNotFound()}; round trip of a random model only`);
  }
});

test('a checkpoint with missing, unexpected and mis-shaped keys is one error listing them all', () => {
  const model = randomModel(smallConfig(), 9);
  const dir = tmpDir();
  model.savePretrained(dir);
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const all = st.readAll();
  st.close();
  delete all['vision_model.head.attention.in_proj_bias'];
  delete all.logit_bias;
  all['vision_model.head.attention.in_proj_weight'] = { dtype: 'float32', shape: [18, 18], data: new Float32Array(18 * 18) };
  all['text_model.embeddings.position_ids'] = { dtype: 'float32', shape: [1, 9], data: new Float32Array(9) };
  writeSafetensors(path.join(dir, 'model.safetensors'), all as Record<string, TensorToWrite>);
  const before = floats(model.visionModel.head!.probe);
  assert.throws(() => SiglipModel.fromPretrained(dir), (e: Error) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual([...e.missingKeys].sort(), ['logit_bias', 'vision_model.head.attention.in_proj_bias']);
    assert.deepEqual([...e.unexpectedKeys], ['text_model.embeddings.position_ids']);
    assert.equal(e.mismatchedKeys.length, 1);
    assert.match(e.message, /vision_model\.head\.attention\.in_proj_weight: checkpoint \[18,18\] vs model \[54,18\]/);
    return true;
  });
  // Missing and unexpected keys pass with strict: false; a wrong shape never does.
  assert.throws(() => SiglipModel.fromPretrained(dir, { strict: false }), /in_proj_weight: checkpoint \[18,18\]/);
  delete all['vision_model.head.attention.in_proj_weight'];
  writeSafetensors(path.join(dir, 'model.safetensors'), all as Record<string, TensorToWrite>);
  const loose = SiglipModel.fromPretrained(dir, { strict: false });
  assert.deepEqual(floats(loose.visionModel.head!.probe), before);
});

test('config.json errors are clear; nested configs read with HF defaults', () => {
  assert.throws(() => SiglipConfig.fromHF({ model_type: 'clip' }), /model_type is 'clip', not 'siglip'/);
  assert.throws(() => SiglipConfig.fromHF({ text_config: [1] }), /text_config must be an object/);
  assert.throws(() => SiglipConfig.fromHF({ vision_config: { hidden_size: 30, num_attention_heads: 4 } }), /not a multiple/);
  assert.throws(() => SiglipConfig.fromHF({ text_config: { hidden_act: 'swoosh' } }), /unknown activation 'swoosh'/);
  assert.throws(() => SiglipConfig.fromHF({ text_config: { vocab_size: '9' } }), /text_config: vocab_size must be a positive integer/);
  assert.throws(() => SiglipConfig.fromHF({ vision_config: { image_size: 8, patch_size: 16 } }), /smaller than patch_size/);
  const c = SiglipConfig.fromHF({ text_config: { hidden_size: 64, num_attention_heads: 4 }, vision_config: { image_size: 32 } });
  assert.equal(c.textConfig.projectionSize, 64);
  assert.equal(c.textConfig.maxPositionEmbeddings, 64);
  assert.equal(c.visionConfig.numPatches, 4);
  assert.equal(c.visionConfig.hiddenAct, 'gelu_pytorch_tanh');
  assert.throws(() => new SiglipModel(smallConfig({ text: { projectionSize: 7 } })), /projection_size 7 differs/);
});

// ---------------------------------------------------------------------------------------------
// Other sizes through the parity runner

test('a differently sized random SigLIP in HF layout runs through the parity runner (native vs reference backend)', () => {
  for (const [S, masked] of [[20, false], [30, true]] as const) {
    const dir = tmpDir();
    randomModel(smallConfig(), 10 + S).savePretrained(dir);
    const g = new Generator(20 + S);
    const ids = randint(0, 41, [3, 9], { generator: g }).data() as Int32Array;
    const inputs: Record<string, TensorToWrite> = {
      input_ids: { shape: [3, 9], data: BigInt64Array.from(ids, (x) => BigInt(x)), dtype: 'I64' },
      pixel_values: { shape: [3, 3, S, S], data: floats(randn([3, 3, S, S], { generator: g })) },
    };
    if (masked) {
      // Padding before the last token, which SigLIP pools whatever the mask.
      inputs.attention_mask = { shape: [3, 9], data: BigInt64Array.from({ length: 27 }, (_, i) => (i % 9 < 6 || i % 9 === 8 ? 1n : 0n)), dtype: 'I64' };
    }
    writeSafetensors(path.join(dir, 'inputs.safetensors'), inputs);
    const { outputs, gradients } = evaluateFixture(dir, { backend: 'reference' });
    const names = ['text_embeds', 'image_embeds', 'logits_per_image', 'text_last_hidden_state', 'vision_last_hidden_state', 'vision_pooler_output', 'loss'];
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({
      class: 'SiglipModel', outputs: Object.fromEntries(names.map((k) => [k, outputs[k]!.shape])), loss_fn: 'SigLIP pairwise sigmoid loss',
      interpolate_pos_encoding: S !== 20,
    }));
    const host = (ts: Record<string, Tensor>, keep: (k: string) => boolean) =>
      Object.fromEntries(Object.entries(ts).filter(([k]) => keep(k)).map(([k, v]) => [k, { shape: v.shape, data: floats(v.contiguous()) }]));
    writeSafetensors(path.join(dir, 'outputs.safetensors'), host(outputs, (k) => names.includes(k)));
    writeSafetensors(path.join(dir, 'grads.safetensors'), host(gradients, () => true));
    const report = runParity(dir);
    assert.ok(report.ok, formatParityReport(report));
    assert.equal(report.checks.filter((c) => c.kind === 'gradient').length, Object.keys(gradients).length);
    assert.deepEqual(report.checks.find((c) => c.name === 'vision_last_hidden_state')!.shape, [3, (S / 5) ** 2, 18]);
  }
});
