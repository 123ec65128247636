import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { OadTR, OadTRConfig, inferOadTRConfig } from '../../src/models/oadtr.js';
import { createModel } from '../../src/models/registry.js';
import { runParity } from '../../src/eval/parity.js';
import { softLabelCrossEntropy } from '../../src/nn/losses.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { getBackend } from '../../src/tensor/device.js';
import { gradcheck } from '../../src/tensor/gradcheck.js';
import { Generator, rand, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { assertClose, findShared, floats, sharedNotFound, tempDirs } from '../helpers.js';

const tmpDir = tempDirs('oadtr');

/** Sizes unlike the shared fixture's: camera only, hidden widths apart from the model width, one head in the decoder. */
function smallConfig(over: ConstructorParameters<typeof OadTRConfig>[0] = {}): OadTRConfig {
  return new OadTRConfig({
    numClasses: 5, window: 6, cameraDim: 7, motionDim: 3, embeddingDim: 12, numHeads: 3, numLayers: 3, hiddenDim: 10,
    decoderLayers: 2, decoderEmbeddingDimOut: 9, decoderNumHeads: 2, queryNum: 4, dropoutRate: 0.1, ...over,
  });
}

/** Soft targets [..., C]: one-hot rows of the given classes. */
function oneHot(classes: number[], C: number, shape: number[]): Tensor {
  const data = new Float32Array(classes.length * C);
  classes.forEach((c, i) => { data[i * C + c] = 1; });
  return tensor(data, { shape: [...shape, C] });
}

function inputs(config: OadTRConfig, B: number, seed: number): { camera: Tensor; motion: Tensor } {
  const g = new Generator(seed);
  return { camera: randn([B, config.window, config.cameraDim], { generator: g }), motion: randn([B, config.window, config.motionDim], { generator: g }) };
}

test('OadTR parity with the official code on the shared fixture: scores, loss and its parts, every gradient', (t) => {
  const dir = findShared('fixtures/oadtr', 'meta.json');
  if (!dir) return t.skip(sharedNotFound());
  const report = runParity(dir, { backend: 'reference' });
  assert.equal(report.family, 'oadtr');
  const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.maxAbsErr} > ${c.tolerance} ${c.note ?? ''}`);
  assert.deepEqual(failed, []);
  const outputs = report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort();
  assert.deepEqual(outputs, ['dec_score', 'enc_score', 'loss', 'loss_decoder', 'loss_encoder']);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { param_names: string[] };
  // Every official name is ours; the buffers are in the state dict, not among the gradients.
  const model = OadTR.fromOfficialWeights(dir, { cameraDim: 16, motionDim: 8, numHeads: 4, decoderNumHeads: 4 });
  assert.deepEqual(Object.keys(model.stateDict()).sort(), [...meta.param_names].sort());
  const grads = report.checks.filter((c) => c.kind === 'gradient');
  assert.equal(grads.length, meta.param_names.length - 2);
  // The official forward never reads the decoder's position encoding: no gradient reaches it.
  assert.equal(grads.find((c) => c.name === 'decoder_position_encoding.pe.weight')?.note, 'no reference gradient');
});

test('OadTR: official weights of other sizes load with their sizes inferred, and a saved folder loads back the same model', async () => {
  const config = smallConfig();
  const model = new OadTR(config, { generator: new Generator(1) });
  model.eval();
  const { camera, motion } = inputs(config, 2, 2);
  const want = model.forward(camera, motion);

  const official = tmpDir();
  model.savePretrained(official);
  fs.rmSync(path.join(official, 'config.json'));
  const fromOfficial = OadTR.fromOfficialWeights(official, { cameraDim: 7, numHeads: 3, decoderNumHeads: 2, dropoutRate: 0.1 });
  assert.deepEqual(fromOfficial.config.toHF(), config.toHF());
  const got = fromOfficial.forward(camera, motion);
  assert.deepEqual(floats(got.encoderScores), floats(want.encoderScores));
  assert.deepEqual(floats(got.decoderScores), floats(want.decoderScores));

  const saved = tmpDir();
  model.savePretrained(saved);
  const json = JSON.parse(fs.readFileSync(path.join(saved, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(json.model_type, 'oadtr');
  assert.equal(json.enc_layers, 6);
  const loaded = await createModel(saved);
  assert.equal(loaded.kind, 'online-action-detector');
  if (loaded.kind !== 'online-action-detector') return;
  assert.equal(loaded.window, 6);
  const again = loaded.forward(camera, motion);
  assert.deepEqual(floats(again.encoderScores), floats(want.encoderScores));
  assert.deepEqual(floats(again.decoderScores), floats(want.decoderScores));
  assert.deepEqual(Object.keys(loaded.stateDict()).sort(), Object.keys(model.stateDict()).sort());
  assert.deepEqual(floats(loaded.stateDict()['decoder.layers.1.conv1.weight']!), floats(model.stateDict()['decoder.layers.1.conv1.weight']!));
});

test('OadTR: size inference refuses weights that contradict the given sizes or split', () => {
  const model = new OadTR(smallConfig(), { generator: new Generator(3) });
  const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, v]) => [k, v.shape]));
  assert.throws(() => inferOadTRConfig(shapes, { window: 8, numHeads: 3, decoderNumHeads: 2 }), /window is given as 8 but the weights have 6/);
  assert.throws(() => inferOadTRConfig(shapes, { cameraDim: 7, motionDim: 4, numHeads: 3, decoderNumHeads: 2 }),
    /camera_dim 7 \+ motion_dim 4 must equal the linear encoding's input width 10/);
  assert.throws(() => inferOadTRConfig({}, {}), /no linear_encoding.weight \(not an official OadTR state dict\?\)/);
});

test('OadTR: the decoder anticipates causally and the task token reads the whole window', () => {
  const config = smallConfig();
  const model = new OadTR(config, { generator: new Generator(4) });
  model.eval();
  const { camera, motion } = inputs(config, 1, 5);
  const before = model.forward(camera, motion).decoderScores;
  // Query 3 (the farthest future) may not change what queries 0..2 see.
  const q = model.decoderClsToken!;
  const d = q.data().slice() as Float32Array;
  for (let i = 3 * config.embeddingDim; i < 4 * config.embeddingDim; i++) d[i] = d[i]! + 1;
  noGrad(() => q.copy_(tensor(d, { shape: q.shape })));
  const after = model.forward(camera, motion).decoderScores;
  const C = config.numClasses;
  assertClose(floats(after).slice(0, 3 * C), floats(before).slice(0, 3 * C), 1e-6, 1e-6, 'queries 0..2');
  assert.notDeepEqual(floats(after).slice(3 * C), floats(before).slice(3 * C));
  // The oldest chunk of the window changes the current prediction.
  const older = camera.data().slice() as Float32Array;
  for (let i = 0; i < config.cameraDim; i++) older[i] = older[i]! + 1;
  const base = model.forward(camera, motion).encoderScores.toArray();
  assert.notDeepEqual(model.forward(tensor(older, { shape: camera.shape }), motion).encoderScores.toArray(), base);
});

test('OadTR: errors name the bad input', () => {
  const config = smallConfig();
  const model = new OadTR(config, { generator: new Generator(6) });
  const { camera, motion } = inputs(config, 2, 7);
  assert.throws(() => model.forward(camera.slice(1, 0, 5), motion), /camera features must be \[B, 6, 7\] \(batch, window, camera_dim\), got \[2,5,7\]/);
  assert.throws(() => model.forward(camera, null), /motion features \[B, 6, 3\] are required/);
  assert.throws(() => model.forward(camera, motion.slice(0, 0, 1)), /different batch sizes \(2 and 1\)/);
  const cameraOnly = new OadTR(smallConfig({ motionDim: 0 }), { generator: new Generator(6) });
  assert.throws(() => cameraOnly.forward(camera, motion), /no motion stream \(motion_dim 0\)/);
  assert.equal(cameraOnly.forward(camera, null).encoderScores.shape.join(), '2,5');
  const out = model.forward(camera, motion);
  assert.throws(() => model.loss(out, oneHot([0, 1], 5, [2]), oneHot([0, 1, 2], 5, [3])), /anticipation target must be \[2, 4, 5\]/);
  assert.throws(() => model.loss(out, oneHot([0], 5, [1]), oneHot([0, 0, 0, 0, 0, 0, 0, 0], 5, [2, 4])), /current-chunk target must be \[2, 5\]/);
  assert.throws(() => new OadTRConfig({ embeddingDim: 12, decoderEmbeddingDim: 16, numHeads: 3 }), /decoder_embedding_dim 16 must equal embedding_dim 12/);
  assert.throws(() => new OadTRConfig({ numClasses: 5, ambiguousClass: 5 }), /ambiguous_class 5 is not a class/);
  assert.throws(() => OadTRConfig.fromHF({ model_type: 'oadtr', positional_encoding_type: 'rotary' }), /unknown positional_encoding_type 'rotary' \(known: learned, fixed\)/);
});

test('soft-label cross-entropy: the ambiguous column is left out and its samples dropped, as SetCriterion', () => {
  const logits = tensor(Float32Array.from([1, 2, 0.5, -1, 0, 3, 1, 1, 2, -2, 0.5, 0.25]), { shape: [3, 4] });
  // Sample 1 is ambiguous (class 3): dropped. Sample 2 is soft.
  const target = tensor(Float32Array.from([0, 1, 0, 0, 0, 0, 0, 1, 0.5, 0, 0.5, 0]), { shape: [3, 4] });
  const l = floats(logits);
  const logSoftmax3 = (r: number, c: number): number => {
    const row = [l[r * 4]!, l[r * 4 + 1]!, l[r * 4 + 2]!];
    return row[c]! - Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
  };
  const want = (-logSoftmax3(0, 1) + -(0.5 * logSoftmax3(2, 0) + 0.5 * logSoftmax3(2, 2))) / 2;
  assertClose([softLabelCrossEntropy(logits, target, { ignoreClass: 3 }).item()], [want], 1e-6, 0, 'ignoring class 3');
  // No sample with mass outside the ambiguous class: 0, as the official code.
  const allAmbiguous = tensor(Float32Array.from([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]), { shape: [3, 4] });
  assert.equal(softLabelCrossEntropy(logits, allAmbiguous, { ignoreClass: 3 }).item(), 0);
  assert.throws(() => softLabelCrossEntropy(logits, target.slice(0, 0, 2)), /targets must match logits \[3, 4\], got \[2,4\]/);
  assert.throws(() => softLabelCrossEntropy(logits, target, { ignoreClass: 4 }), /ignoreClass 4 is not one of the 4 classes/);
});

test('OadTR: the loss gradient of the features matches finite differences (float64)', () => {
  const config = smallConfig({ numLayers: 1, decoderLayers: 1, queryNum: 2, window: 3, dropoutRate: 0, attnDropoutRate: 0, decoderAttnDropoutRate: 0 });
  const backend = getBackend('reference');
  const model = new OadTR(config, { generator: new Generator(8), dtype: 'float64', backend });
  const g = new Generator(9);
  const camera = randn([2, 3, 7], { generator: g, dtype: 'float64', backend });
  const motion = rand([2, 3, 3], { generator: g, dtype: 'float64', backend });
  const enc = tensor(Float64Array.from([0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 1]), { shape: [2, 5], dtype: 'float64', backend });
  const dec = tensor(Float64Array.from({ length: 20 }, (_, i) => (i % 5 === (i >> 3) % 4 ? 1 : 0)), { shape: [2, 2, 5], dtype: 'float64', backend });
  gradcheck((c, m) => model.loss(model.forward(c, m), enc, dec).loss, [camera, motion], { samples: 16 });
});

test('parity recognises an official OadTR folder of other sizes by its meta.json and reads the sizes from it and the weights', () => {
  const config = smallConfig({ dropoutRate: 0, attnDropoutRate: 0, decoderAttnDropoutRate: 0 });
  const model = new OadTR(config, { generator: new Generator(10) });
  model.eval();
  const dir = tmpDir();
  model.savePretrained(dir);
  fs.rmSync(path.join(dir, 'config.json'));
  const meta = { source: 'OadTR official implementation', config: { window: 6, camera_dim: 7, motion_dim: 3, heads: 3, decoder_heads: 2, classes: 5 } };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta));
  const { camera, motion } = inputs(config, 3, 11);
  const encTarget = oneHot([0, 4, 2], 5, [3]);
  const decTarget = oneHot([1, 1, 2, 3, 0, 0, 4, 4, 2, 2, 1, 0], 5, [3, 4]);
  const out = model.forward(camera, motion);
  const l = model.loss(out, encTarget, decTarget);
  const host = (t: Tensor) => ({ shape: [...t.shape], data: floats(t) });
  writeSafetensors(path.join(dir, 'inputs.safetensors'), {
    camera_inputs: host(camera), motion_inputs: host(motion), enc_target: host(encTarget), dec_target: host(decTarget),
  });
  writeSafetensors(path.join(dir, 'outputs.safetensors'), {
    enc_score: host(out.encoderScores), dec_score: host(out.decoderScores), loss: host(l.loss.reshape(1)),
    loss_encoder: host(l.encoder.reshape(1)), loss_decoder: host(l.decoder.reshape(1)),
  });
  const report = runParity(dir);
  assert.equal(report.family, 'oadtr');
  assert.ok(report.ok, JSON.stringify(report.checks.filter((c) => !c.ok)));
  assert.equal(report.checks.length, 5);

  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ ...meta, config: { ...meta.config, heads: undefined } }));
  assert.throws(() => runParity(dir), /meta.json: config needs heads and decoder_heads/);
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ ...meta, config: { ...meta.config, window: 8 } }));
  assert.throws(() => runParity(dir), /window is given as 8 but the weights have 6/);
  fs.rmSync(path.join(dir, 'model.safetensors'));
  assert.throws(() => runParity(dir), /lacks model.safetensors/);
});

test('OadTR without a decoder (decoder_layers 0): the head reads the task token alone, nothing is anticipated', async () => {
  const config = smallConfig({ decoderLayers: 0 });
  const model = new OadTR(config, { generator: new Generator(5) });
  model.eval();
  assert.equal(model.queries, 0);
  assert.ok(!Object.keys(model.stateDict()).some((k) => /^(decoder|classifier)/.test(k)), 'no decoder weights');
  assert.deepEqual(model.mlpHead.weight.shape, [config.numClasses, config.embeddingDim]);
  const { camera, motion } = inputs(config, 3, 6);
  const out = model.forward(camera, motion);
  assert.deepEqual(out.decoderScores.shape, [3, 0, config.numClasses]);
  const target = tensor(Float32Array.from({ length: 3 * config.numClasses }, (_, i) => (i % config.numClasses === 1 ? 1 : 0)), { shape: [3, config.numClasses] });
  const l = model.loss(out, target, tensor(new Float32Array(0), { shape: [3, 0, config.numClasses] }));
  assert.equal(l.decoder.item(), 0);
  assert.equal(l.loss.item(), softLabelCrossEntropy(out.encoderScores, target, { ignoreClass: config.ambiguousClass }).item() * config.classificationHLossCoef);

  const saved = tmpDir();
  model.savePretrained(saved);
  fs.rmSync(path.join(saved, 'config.json'));
  const back = OadTR.fromOfficialWeights(saved, { cameraDim: config.cameraDim, numHeads: config.numHeads, decoderNumHeads: config.decoderNumHeads, dropoutRate: config.dropoutRate });
  assert.equal(back.config.decoderLayers, 0);
  assert.deepEqual(floats(back.forward(camera, motion).encoderScores), floats(out.encoderScores));
});
