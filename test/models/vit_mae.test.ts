import { test } from 'node:test';
import { indexSelect } from '../../src/tensor/ops/indexing.js';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel, randomMasking, sincosPositionTable, vitMaeKeyFromHF, vitMaeKeyToHF,
} from '../../src/models/vit_mae.js';
import { readHFConfig } from '../../src/io/hf.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../../src/io/safetensors.js';
import { formatParityReport, runParity } from '../../src/eval/parity.js';
import { StateDictError } from '../../src/nn/module.js';
import { Generator, rand, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findFixture, floats, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('vit-mae');


const ints = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number | bigint>, Number);

/** A small MAE whose sizes differ from the fixture's, with a non-square patch grid (3 x 2). */
function smallConfig(over: ConstructorParameters<typeof ViTMAEConfig>[0] = {}): ViTMAEConfig {
  return new ViTMAEConfig({
    hiddenSize: 24, numHiddenLayers: 2, numAttentionHeads: 3, intermediateSize: 30, hiddenAct: 'gelu_new',
    imageSize: [24, 16], patchSize: 8, qkvBias: false, layerNormEps: 1e-6, initializerRange: 0.2,
    decoderHiddenSize: 20, decoderNumHiddenLayers: 2, decoderNumAttentionHeads: 5, decoderIntermediateSize: 12,
    maskRatio: 0.5, normPixLoss: true, ...over,
  });
}

function assertSameState(a: { stateDict(): Record<string, Tensor> }, b: { stateDict(): Record<string, Tensor> }): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual(Object.keys(sa).sort(), Object.keys(sb).sort());
  for (const [k, v] of Object.entries(sa)) assert.deepEqual(floats(sb[k]!), floats(v), k);
}

/** Rewrites a folder's model.safetensors through `edit` (rename with a new key, drop with null). */
function rewriteWeights(dir: string, edit: (key: string) => string | null): void {
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const out: Record<string, TensorToWrite> = {};
  for (const n of st.names) {
    const k = edit(n);
    if (k !== null) out[k] = st.read(n);
  }
  st.close();
  writeSafetensors(file, out, { format: 'pt' });
}

// ---------------------------------------------------------------------------------------------
// Parity with the Hugging Face fixture

test('HF parity: ViTMAEForPreTraining logits, mask, ids_restore, loss and every gradient match transformers', (t) => {
  const dir = findFixture('vit_mae');
  if (!dir) return t.skip(sharedNotFound());
  for (const backend of ['native', 'reference']) {
    const report = runParity(dir, { backend });
    assert.ok(report.ok, formatParityReport(report));
    assert.deepEqual(report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort(), ['ids_restore', 'logits', 'loss', 'mask']);
    const grads = report.checks.filter((c) => c.kind === 'gradient');
    assert.equal(grads.length, 60);
    // The fixed position tables are not parameters, so nothing here lacks a reference gradient.
    assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
    // The mask token's gradient is far larger than the rest, which lifts the runner's noise
    // floor over most tensors; hold those to a bound a thousand times tighter.
    for (const c of grads) {
      const own = c.note?.startsWith('reference is at rounding-noise') ? c.tolerance * 1e-3 : c.tolerance;
      assert.ok(c.maxAbsErr <= Math.max(own, 1e-7), `${c.name}: ${c.maxAbsErr} vs ${own}`);
    }
  }
});

test('the fixture checkpoint loads under every naming of the decoder layers', (t) => {
  const src = findFixture('vit_mae');
  if (!src) return t.skip(sharedNotFound());
  const ref = ViTMAEForPreTraining.fromPretrained(src);
  const old = tmpDir();
  ref.savePretrained(old);
  // Older hub checkpoints (facebook/vit-mae-base) keep decoder.decoder_layers.N with on-disk names.
  rewriteWeights(old, (k) => k.replace('decoder.decoder_encoder.layer.', 'decoder.decoder_layers.'));
  assertSameState(ViTMAEForPreTraining.fromPretrained(old), ref);
  // What transformers 5 names its modules (and its gradients).
  const grads = SafetensorsFile.open(path.join(src, 'grads.safetensors'));
  const params = new Set(ref.namedParameters().map(([k]) => k));
  for (const n of grads.names) assert.ok(params.has(vitMaeKeyFromHF(n)), n);
  assert.equal(grads.names.length, params.size);
  grads.close();
  // The same keys as the file transformers wrote.
  const a = SafetensorsFile.open(path.join(src, 'model.safetensors'));
  const dir = tmpDir();
  ref.savePretrained(dir);
  const b = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  assert.deepEqual([...b.names].sort(), [...a.names].sort());
  a.close();
  b.close();
});

// ---------------------------------------------------------------------------------------------
// Masking, positions, loss

test('random masking keeps the smallest-noise patches, and ids_restore inverts the shuffle', () => {
  const g = new Generator(1);
  const [B, L, D, keep] = [3, 7, 4, 3];
  const x = randn([B, L, D], { generator: g });
  const noise = rand([B, L], { generator: g });
  const { kept, mask, idsRestore } = randomMasking(x, keep, noise);
  const nz = floats(noise);
  const xs = floats(x);
  const ks = floats(kept);
  const ms = floats(mask);
  const rs = ints(idsRestore);
  assert.deepEqual(kept.shape, [B, keep, D]);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, i) => i).sort((i, j) => nz[b * L + i]! - nz[b * L + j]!);
    for (let j = 0; j < keep; j++) {
      assert.deepEqual(ks.subarray((b * keep + j) * D, (b * keep + j + 1) * D), xs.subarray((b * L + order[j]!) * D, (b * L + order[j]! + 1) * D));
    }
    for (let j = 0; j < L; j++) {
      assert.equal(rs[b * L + order[j]!], j);
      assert.equal(ms[b * L + order[j]!], j < keep ? 0 : 1);
    }
  }
});

test('the encoder sees only the kept patches; the decoder predicts every patch', () => {
  const config = smallConfig({ maskRatio: 0.6 });
  const model = new ViTMAEForPreTraining(config, { generator: new Generator(2) });
  const px = randn([2, 3, 24, 16], { generator: new Generator(3) });
  assert.equal(config.numPatches, 6);
  assert.equal(config.numKept, 2); // int(6 * 0.4)
  const enc = model.vit.forward(px, { generator: new Generator(4) });
  assert.deepEqual(enc.lastHiddenState.shape, [2, 3, 24]);
  const out = model.forward(px, { generator: new Generator(4) });
  assert.deepEqual(out.logits.shape, [2, 6, 8 * 8 * 3]);
  assert.deepEqual(floats(out.mask), floats(enc.mask));
  assert.equal(floats(out.mask).reduce((s, v) => s + v, 0), 2 * 4);
  // Default noise comes from the generator: the same seed gives the same masking, another seed another.
  const again = model.forward(px, { generator: new Generator(4) });
  assert.deepEqual(floats(again.loss), floats(out.loss));
  const masks = new Set([5, 6, 7, 8, 9].map((s) => floats(model.forward(px, { generator: new Generator(s) }).mask).join()));
  assert.ok(masks.size > 1);
  // The loss reaches every parameter.
  out.loss.backward();
  for (const [k, p] of model.namedParameters()) assert.ok(p.grad && floats(p.grad).some((v) => v !== 0), k);
});

test('patchify orders each patch (row, column, channel) and unpatchify inverts it', () => {
  const model = new ViTMAEForPreTraining(smallConfig(), { generator: new Generator(5) });
  const px = randn([2, 3, 24, 16], { generator: new Generator(6) });
  const p = model.patchify(px);
  assert.deepEqual(p.shape, [2, 6, 192]);
  const src = floats(px);
  const got = floats(p);
  // Patch (1, 0) of image 1, pixel row 3, column 5, channel 2.
  const [b, gr, gc, r, c, ch] = [1, 1, 0, 3, 5, 2];
  assert.equal(got[(b * 6 + gr * 2 + gc) * 192 + (r * 8 + c) * 3 + ch], src[((b * 3 + ch) * 24 + gr * 8 + r) * 16 + gc * 8 + c]);
  assert.deepEqual(floats(model.unpatchify(p)), src);
});

test('norm-pix loss: mean squared error on masked patches against normalised pixels', () => {
  const model = new ViTMAEForPreTraining(smallConfig(), { generator: new Generator(7) });
  const px = randn([2, 3, 24, 16], { generator: new Generator(8) });
  const out = model.forward(px, { noise: rand([2, 6], { generator: new Generator(9) }) });
  const target = floats(model.patchify(px));
  const pred = floats(out.logits);
  const mask = floats(out.mask);
  let num = 0;
  let den = 0;
  for (let i = 0; i < 12; i++) {
    const t = target.subarray(i * 192, (i + 1) * 192);
    const mean = t.reduce((s, v) => s + v, 0) / 192;
    const variance = t.reduce((s, v) => s + (v - mean) ** 2, 0) / 191;
    let se = 0;
    for (let j = 0; j < 192; j++) se += (pred[i * 192 + j]! - (t[j]! - mean) / Math.sqrt(variance + 1e-6)) ** 2;
    num += (se / 192) * mask[i]!;
    den += mask[i]!;
  }
  assert.ok(Math.abs(out.loss.item() - num / den) < 1e-5 * (num / den), `${out.loss.item()} vs ${num / den}`);
});

test('the 2-D sin-cos table: zeros for [CLS], columns in the first half, rows in the second', () => {
  const table = sincosPositionTable(8, [2, 3]);
  assert.equal(table.length, 7 * 8);
  assert.deepEqual(Array.from(table.subarray(0, 8)), new Array(8).fill(0));
  // dim 8: frequencies 1 and 10000^(-1/2) = 0.01.
  const at = (r: number, c: number) => Array.from(table.subarray((1 + r * 3 + c) * 8, (2 + r * 3 + c) * 8));
  const expect = (r: number, c: number) => [Math.sin(c), Math.sin(c * 0.01), Math.cos(c), Math.cos(c * 0.01),
    Math.sin(r), Math.sin(r * 0.01), Math.cos(r), Math.cos(r * 0.01)].map(Math.fround);
  for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) assert.deepEqual(at(r, c), expect(r, c));
  // A fresh model carries the tables in its (saved, untrained) state.
  const model = new ViTMAEForPreTraining(smallConfig(), { generator: new Generator(1) });
  assert.deepEqual(floats(model.decoder.decoderPosEmbed), sincosPositionTable(20, [3, 2]));
  assert.deepEqual(floats(model.vit.embeddings.positionEmbeddings), sincosPositionTable(24, [3, 2]));
  assert.ok(!model.namedParameters().some(([k]) => k.includes('pos')));
});

// ---------------------------------------------------------------------------------------------
// Save / load

test('save/load round trip: same state, same outputs, HF key names and config', () => {
  const config = smallConfig();
  const model = new ViTMAEForPreTraining(config, { generator: new Generator(11) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const back = ViTMAEForPreTraining.fromPretrained(dir);
  assertSameState(back, model);
  const px = randn([2, 3, 24, 16], { generator: new Generator(12) });
  const noise = rand([2, 6], { generator: new Generator(13) });
  assert.deepEqual(floats(back.forward(px, { noise }).logits), floats(model.forward(px, { noise }).logits));

  const saved = readHFConfig(dir);
  assert.equal(saved.model_type, 'vit_mae');
  assert.deepEqual(saved.architectures, ['ViTMAEForPreTraining']);
  assert.deepEqual(saved.image_size, [24, 16]);
  assert.equal(saved.mask_ratio, 0.5);
  assert.equal(saved.norm_pix_loss, true);
  assert.match(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), /\n {2}"hidden_dropout_prob": 0\.0,\n/);
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  assert.ok(st.names.includes('decoder.decoder_encoder.layer.1.attention.attention.query.weight'));
  assert.ok(st.names.includes('vit.encoder.layer.1.output.dense.bias'));
  assert.ok(st.names.includes('decoder.decoder_pos_embed'));
  assert.ok(st.names.includes('vit.embeddings.position_embeddings'));
  st.close();
  for (const k of st.names) assert.equal(vitMaeKeyToHF(vitMaeKeyFromHF(k)), k);

  // Without the fixed tables in the file, they are computed.
  rewriteWeights(dir, (k) => (k.endsWith('pos_embed') || k.endsWith('position_embeddings') ? null : k));
  assertSameState(ViTMAEForPreTraining.fromPretrained(dir), model);

  // ViTMAEModel takes the encoder of a pre-training checkpoint; saved alone it has no prefix.
  const enc = ViTMAEModel.fromPretrained(dir);
  assertSameState(enc, model.vit);
  const dir2 = tmpDir();
  enc.savePretrained(dir2);
  const st2 = SafetensorsFile.open(path.join(dir2, 'model.safetensors'));
  assert.ok(st2.names.includes('encoder.layer.0.attention.attention.key.weight'));
  assert.ok(st2.names.every((k) => !k.startsWith('vit.') && !k.startsWith('decoder.')));
  st2.close();
  assertSameState(ViTMAEModel.fromPretrained(dir2), model.vit);
});

// ---------------------------------------------------------------------------------------------
// Errors

test('errors: mask ratio, image and patch sizes, widths, noise, missing keys', () => {
  for (const maskRatio of [0, 1, -0.25, 1.5, Number.NaN]) {
    assert.throws(() => smallConfig({ maskRatio }), /mask_ratio must lie strictly between 0 and 1/);
  }
  assert.throws(() => ViTMAEConfig.fromHF({ model_type: 'vit_mae', mask_ratio: 1 }, 'x/config.json'), /x\/config\.json: .*mask_ratio/);
  assert.throws(() => smallConfig({ imageSize: 30 }), /image_size \[30, 30\] is not a whole number of patches of \[8, 8\]/);
  assert.throws(() => smallConfig({ decoderHiddenSize: 18, decoderNumAttentionHeads: 3 }), /decoder_hidden_size 18 must be a multiple of 4/);
  assert.throws(() => smallConfig({ hiddenSize: 25 }), /not a multiple of its number of attention heads/);
  assert.throws(() => ViTMAEConfig.fromHF({ model_type: 'vit' }), /model_type is 'vit', not 'vit_mae'/);

  const model = new ViTMAEForPreTraining(smallConfig(), { generator: new Generator(1) });
  const px = randn([2, 3, 24, 16], { generator: new Generator(2) });
  assert.throws(() => model.forward(px, { noise: rand([2, 5]) }), /noise must be \[2, 6\]/);
  assert.throws(() => model.forward(randn([2, 3, 16, 16])), /input image size \(16\*16\) doesn't match the model \(24\*16\)/);
  assert.throws(() => model.forward(randn([2, 1, 24, 16])), /pixel values must be \[B, 3, H, W\]/);
  assert.throws(() => model.patchify(randn([1, 3, 20, 16])), /not a whole number of 8x8 patches/);

  const dir = tmpDir();
  model.savePretrained(dir);
  rewriteWeights(dir, (k) => (k === 'decoder.mask_token' ? null : k === 'vit.layernorm.bias' ? 'vit.layernorm.b' : k));
  assert.throws(() => ViTMAEForPreTraining.fromPretrained(dir), (e: unknown) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual([...e.missingKeys].sort(), ['decoder.mask_token', 'vit.layernorm.bias']);
    assert.deepEqual(e.unexpectedKeys, ['vit.layernorm.b']);
    return true;
  });
  // Not strict: loads what fits.
  assert.ok(ViTMAEForPreTraining.fromPretrained(dir, { strict: false }));
});

test('a shard of the global batch draws the masks its rows draw in the whole batch', () => {
  const model = new ViTMAEForPreTraining(smallConfig(), { generator: new Generator(3) });
  const px = randn([6, 3, 24, 16], { generator: new Generator(4) });
  const whole = new Generator(9);
  const all = floats(model.forward(px, { generator: whole }).mask);
  for (const index of [0, 1, 2]) {
    const g = new Generator(9);
    const rows = [index, index + 3];
    const mine = indexSelect(px, 0, tensor(Int32Array.from(rows), { dtype: 'int32' }));
    const mask = floats(model.forward(mine, { generator: g, shard: { index, count: 3 } }).mask);
    assert.deepEqual(Array.from(mask), rows.flatMap((r) => Array.from(all.slice(r * 6, r * 6 + 6))), `shard ${index} of 3`);
    assert.deepEqual(g.getState(), whole.getState(), 'every shard leaves the generator where the whole batch does');
  }
});
