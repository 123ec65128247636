// From MAE to ViT (conversion, linear-probe features) and the reconstruction pictures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ImageProcessor } from '../../src/data/image.js';
import { loadFeatureSource } from '../../src/eval/features.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { ViTForImageClassification } from '../../src/models/vit.js';
import { constant_ } from '../../src/nn/init.js';
import {
  ViTMAEConfig, ViTMAEForPreTraining, type ViTMAEForwardOptions, type ViTMAEPreTrainingOutput,
  maeEncoderConfig, maeEncoderState, vitClassifierFromMAE, vitModelFromMAE,
} from '../../src/models/vit_mae.js';
import { MASKED_GREY, maeReconstruction, writeReconstructionGrid } from '../../src/tasks/mae.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { concat } from '../../src/tensor/ops/indexing.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { floats, tempDirs } from '../helpers.js';

const tmpDir = tempDirs('mae-tasks');

/** A small MAE with a non-square 3 x 2 grid of 8 x 8 patches. */
function smallMAE(over: ConstructorParameters<typeof ViTMAEConfig>[0] = {}, seed = 1): ViTMAEForPreTraining {
  const config = new ViTMAEConfig({
    hiddenSize: 24, numHiddenLayers: 2, numAttentionHeads: 3, intermediateSize: 30, imageSize: [24, 16], patchSize: 8,
    layerNormEps: 1e-6, initializerRange: 0.2, decoderHiddenSize: 20, decoderNumHiddenLayers: 1, decoderNumAttentionHeads: 5,
    decoderIntermediateSize: 12, maskRatio: 0.5, ...over,
  });
  return new ViTMAEForPreTraining(config, { generator: new Generator(seed) });
}

const pixelsFor = (config: ViTMAEConfig, batch: number, seed: number): Tensor =>
  randn([batch, config.numChannels, ...config.imageSize], { generator: new Generator(seed) });

// ---------------------------------------------------------------------------------------------
// Conversion

test('the ViT made from an MAE computes the MAE encoder on every patch, bit for bit', () => {
  const mae = smallMAE();
  const vit = vitModelFromMAE(mae);
  assert.equal(vit.pooler, null);
  const pixels = pixelsFor(mae.config, 2, 7);
  noGrad(() => {
    // The MAE's own modules applied by hand, with no masking: [CLS] + every patch in order.
    const e = mae.vit.embeddings;
    const pos = e.positionEmbeddings;
    const patches = e.patchEmbeddings.forward(pixels).add(pos.slice(1, 1));
    const cls = e.clsToken.add(pos.slice(1, 0, 1)).expand(2, 1, mae.config.hiddenSize);
    const byHand = mae.vit.layernorm.forward(mae.vit.encoder.forward(concat([cls, patches], 1)));
    assert.deepEqual(floats(vit.forward(pixels).lastHiddenState), floats(byHand));

    // MAE's forward with noise that keeps the first patches in order embeds them as the ViT does.
    const L = mae.config.numPatches;
    const K = mae.config.numKept;
    const noise = tensor(Float32Array.from({ length: 2 * L }, (_, i) => i % L), { shape: [2, L] });
    const maeStates = mae.vit.forward(pixels, { noise, outputHiddenStates: true }).hiddenStates!;
    const vitStates = vit.forward(pixels, { outputHiddenStates: true }).hiddenStates!;
    assert.deepEqual(floats(maeStates[0]!), floats(vitStates[0]!.slice(1, 0, 1 + K)));
  });
});

test('the encoder weights are copied, from a model or from either naming of a state dict', () => {
  const mae = smallMAE();
  const expected = mae.vit.stateDict();
  const check = (vit: ReturnType<typeof vitModelFromMAE>, what: string) => {
    const got = vit.stateDict();
    assert.deepEqual(Object.keys(got).sort(), Object.keys(expected).sort(), what);
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(floats(got[k]!), floats(v), `${what}: ${k}`);
  };
  check(vitModelFromMAE(mae), 'pre-training model');
  check(vitModelFromMAE(mae.vit), 'bare encoder');
  check(vitModelFromMAE({ config: mae.config, stateDict: mae.stateDict() }), 'module-named state dict');

  // A checkpoint as HF writes it: layer names of the file, decoder included, fixed tables left out.
  const dir = tmpDir();
  mae.savePretrained(dir);
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const raw = Object.fromEntries(st.names.filter((n) => !n.endsWith('position_embeddings')).map((n) => [n, st.read(n)]));
  st.close();
  assert.ok(Object.keys(raw).some((k) => k.startsWith('vit.encoder.layer.0.attention.attention.')), 'the file uses HF layer names');
  assert.deepEqual(maeEncoderState({ config: mae.config, stateDict: {} })['embeddings.position_embeddings']!.data, floats(mae.vit.embeddings.positionEmbeddings));
  check(vitModelFromMAE({ config: mae.config, stateDict: raw }), 'HF-named checkpoint without position tables');

  // Copies: training the ViT leaves the MAE alone.
  const vit = vitModelFromMAE(mae);
  const before = floats(mae.vit.layernorm.weight!);
  constant_(vit.layernorm.weight!, 3);
  assert.deepEqual(floats(mae.vit.layernorm.weight!), before);
  // A state dict missing a trained weight is an error that names it.
  const partial = { ...mae.stateDict() };
  delete partial['vit.layernorm.bias'];
  assert.throws(() => vitModelFromMAE({ config: mae.config, stateDict: partial }), /layernorm\.bias/);
});

test('maeEncoderConfig carries the encoder hyperparameters and the classes', () => {
  const mae = smallMAE({ hiddenAct: 'gelu_new', qkvBias: false, hiddenDropoutProb: 0.1 });
  const c = maeEncoderConfig(mae.config, ['cat', 'dog', 'eel']);
  assert.deepEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.hiddenAct, c.qkvBias, c.hiddenDropoutProb, c.layerNormEps],
    [24, 2, 3, 30, 'gelu_new', false, 0.1, 1e-6]);
  assert.deepEqual([c.imageSize, c.patchSize], [[24, 16], [8, 8]]);
  const hf = c.toHF(['ViTForImageClassification']);
  assert.equal(hf.model_type, 'vit');
  assert.deepEqual(hf.id2label, { 0: 'cat', 1: 'dog', 2: 'eel' });
  assert.deepEqual(hf.label2id, { cat: 0, dog: 1, eel: 2 });
  assert.ok(!('decoder_hidden_size' in hf) && !('mask_ratio' in hf));
});

test('vitClassifierFromMAE: the MAE encoder, a fresh seeded classifier, logits from the CLS token', () => {
  const mae = smallMAE();
  const labels = ['t-shirt', 'trouser', 'pullover', 'dress'];
  const make = (seed: number, std?: number) => vitClassifierFromMAE(mae, { labels, generator: new Generator(seed), classifierStd: std });
  const model = make(3);
  assert.deepEqual(model.config.labels, labels);
  for (const [k, v] of Object.entries(mae.vit.stateDict())) assert.deepEqual(floats(model.vit.stateDict()[k]!), floats(v), k);
  const w = floats(model.classifier!.weight);
  assert.deepEqual([...model.classifier!.weight.shape], [4, 24]);
  assert.ok(floats(model.classifier!.bias!).every((x) => x === 0));
  // Truncated normal with the config's initializer_range (0.2): spread near it, and seeded.
  const std = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
  assert.ok(std > 0.1 && std < 0.3, `classifier std ${std}`);
  assert.deepEqual(floats(make(3).classifier!.weight), w);
  assert.notDeepEqual(floats(make(4).classifier!.weight), w);
  const tiny = floats(make(3, 2e-5).classifier!.weight);
  const tinyStd = Math.sqrt(tiny.reduce((s, x) => s + x * x, 0) / tiny.length);
  assert.ok(tinyStd > 1e-5 && tinyStd < 3e-5, `classifier std ${tinyStd} with classifierStd 2e-5`);

  const pixels = pixelsFor(mae.config, 2, 9);
  noGrad(() => {
    const cls = vitModelFromMAE(mae).forward(pixels).lastHiddenState.select(1, 0);
    assert.deepEqual(floats(model.forward(pixels).logits), floats(model.classifier!.forward(cls)));
  });
  // It saves and loads back as an ordinary ViT classifier.
  const dir = tmpDir();
  model.savePretrained(dir);
  const loaded = ViTForImageClassification.fromPretrained(dir);
  assert.deepEqual(loaded.config.labels, labels);
  noGrad(() => assert.deepEqual(floats(loaded.forward(pixels).logits), floats(model.forward(pixels).logits)));
  assert.throws(() => vitClassifierFromMAE(mae, { labels: [] }), /at least one class/);
  assert.throws(() => vitClassifierFromMAE(mae, { labels: ['a', 'b', 'a'] }), /repeat \["a"\]/);
});

// ---------------------------------------------------------------------------------------------
// Linear-probe features

test('loadFeatureSource on a ViT-MAE folder probes the unmasked encoder with CLS or mean pooling', async () => {
  const mae = smallMAE({ imageSize: 16 }, 5);
  const dir = tmpDir();
  mae.savePretrained(dir);
  const pixels = pixelsFor(mae.config, 3, 11);
  const expected = noGrad(() => vitModelFromMAE(mae).forward(pixels).lastHiddenState);

  const cls = await loadFeatureSource(dir);
  assert.deepEqual(cls.imageProcessor.outputSize, { height: 16, width: 16 });
  assert.equal(cls.imageProcessor.family, 'vit');
  // Twice the same: nothing is masked at random.
  const a = noGrad(() => cls.extract(pixels));
  assert.deepEqual(floats(a), floats(noGrad(() => cls.extract(pixels))));
  assert.deepEqual(floats(a), floats(expected.select(1, 0)));
  const mean = await loadFeatureSource(dir, { pooling: 'mean' });
  assert.deepEqual(floats(noGrad(() => mean.extract(pixels))), floats(expected.slice(1, 1).mean(1)));

  // The folder's preprocessor_config.json wins over the defaults.
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({
    image_processor_type: 'ViTImageProcessor', size: { height: 16, width: 16 }, image_mean: [0.2, 0.3, 0.4], image_std: [0.1, 0.2, 0.3],
  }));
  assert.deepEqual((await loadFeatureSource(dir)).imageProcessor.config.imageMean, [0.2, 0.3, 0.4]);
  // A registered MAE name works too (random weights).
  const named = await loadFeatureSource('test-vit-mae', { init: 'random', pooling: 'mean' });
  assert.deepEqual(named.imageProcessor.outputSize, { height: 32, width: 32 });
  assert.deepEqual([...noGrad(() => named.extract(randn([2, 3, 32, 32]))).shape], [2, 32]);
});

// ---------------------------------------------------------------------------------------------
// Reconstruction pictures

/**
 * An MAE whose decoder is replaced by an oracle: its logits are exactly the loss's targets (the
 * patches, per-patch normalised with norm_pix_loss), computed here independently of the task.
 */
class OracleMAE extends ViTMAEForPreTraining {
  override forward(pixels: Tensor, opts: ViTMAEForwardOptions = {}): ViTMAEPreTrainingOutput {
    const out = super.forward(pixels, opts);
    let target = this.patchify(pixels);
    if (this.config.normPixLoss) {
      const n = target.shape[2]!;
      const centred = target.sub(target.mean(-1, true));
      target = centred.div(centred.square().sum(-1, true).div(n - 1).add(1e-6).sqrt());
    }
    return { ...out, logits: target };
  }
}

/** Pixel values from random bytes through a processor, and the bytes [B][H*W*3]. */
function processedBytes(processor: ImageProcessor, batch: number, size: [number, number], seed: number): { pixels: Tensor; bytes: Uint8Array[] } {
  const g = new Generator(seed);
  const [H, W] = size;
  const bytes = Array.from({ length: batch }, () => Uint8Array.from(floats(randn([H * W * 3], { generator: g })), (x) => Math.min(255, Math.max(0, Math.round(128 + 60 * x)))));
  const data = new Float32Array(batch * 3 * H * W);
  bytes.forEach((b, i) => data.set(processor.pixelValues({ width: W, height: H, data: b }).data, i * 3 * H * W));
  return { pixels: tensor(data, { shape: [batch, 3, H, W] }), bytes };
}

for (const normPixLoss of [false, true]) {
  test(`an exact prediction reconstructs the original to the byte (norm_pix_loss ${normPixLoss}); masked cells are grey exactly where dropped`, () => {
    const config = smallMAE({ normPixLoss }).config;
    const model = new OracleMAE(config, { generator: new Generator(2) });
    // CLIP's mean and std, so the de-normalisation is not ViT's symmetric default.
    const processor = new ImageProcessor('clip', { size: { height: 24, width: 16 }, doCenterCrop: false });
    const { pixels, bytes } = processedBytes(processor, 2, [24, 16], 4);
    model.train();
    const rows = maeReconstruction(model, pixels, { processor, generator: new Generator(8) });
    assert.equal(model.training, true, 'the training mode is restored');
    assert.equal(rows.length, 2);
    rows.forEach((row, b) => {
      assert.deepEqual(row.original.data, bytes[b]);
      assert.deepEqual(row.reconstruction.data, bytes[b]);
      assert.deepEqual(row.reconstructionVisible.data, bytes[b]);
      assert.equal(row.mask.reduce((s, m) => s + m, 0), config.numPatches - config.numKept);
      for (let y = 0; y < 24; y++) {
        for (let x = 0; x < 16; x++) {
          const dropped = row.mask[Math.floor(y / 8) * 2 + Math.floor(x / 8)] === 1;
          for (let c = 0; c < 3; c++) {
            const i = (y * 16 + x) * 3 + c;
            assert.equal(row.masked.data[i], dropped ? MASKED_GREY : bytes[b]![i], `image ${b} pixel (${y}, ${x}) channel ${c}`);
          }
        }
      }
    });
    // The masks are the model's for that noise.
    const again = model.forward(pixels, { generator: new Generator(8) }).mask;
    assert.deepEqual(Uint8Array.from(floats(again)), Uint8Array.from([...rows[0]!.mask, ...rows[1]!.mask]));
  });
}

test('a real prediction is drawn where unpatchify puts it, in the processor\'s units', () => {
  const model = smallMAE({ numChannels: 3 }, 6);
  const pixels = pixelsFor(model.config, 1, 12);
  const noise = tensor(Float32Array.from([5, 3, 0, 4, 1, 2]), { shape: [1, 6] });
  const [row] = maeReconstruction(model, pixels, { noise });
  const image = floats(noGrad(() => model.unpatchify(model.forward(pixels, { noise }).logits)));
  // ViT's processor: value = (byte / 255 - 0.5) / 0.5.
  const byte = (v: number) => Math.min(255, Math.max(0, Math.round(v * 127.5 + 127.5)));
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < 24 * 16; p++) assert.equal(row!.reconstruction.data[p * 3 + c], byte(image[c * 384 + p]!), `channel ${c} pixel ${p}`);
  }
  // The three patches of least noise (2, 4, 5) are kept.
  assert.deepEqual([...row!.mask], [1, 1, 0, 1, 0, 0]);
});

test('a one-channel MAE is drawn in grey', () => {
  const config = smallMAE({ numChannels: 1, normPixLoss: true }).config;
  const model = new OracleMAE(config, { generator: new Generator(2) });
  const pixels = pixelsFor(config, 1, 3);
  const [row] = maeReconstruction(model, pixels);
  const v = floats(pixels);
  for (let p = 0; p < v.length; p++) {
    const b = Math.min(255, Math.max(0, Math.round(v[p]! * 127.5 + 127.5)));
    for (let c = 0; c < 3; c++) {
      assert.equal(row!.original.data[p * 3 + c], b);
      assert.equal(row!.reconstruction.data[p * 3 + c], b);
    }
  }
  assert.throws(() => maeReconstruction(model, pixelsFor(smallMAE().config, 1, 3)), /pixel values must be \[B, 1, 24, 16\]/);
});

test('writeReconstructionGrid: one PNG, a row per image, four columns with gaps', async () => {
  const model = smallMAE({}, 4);
  const rows = maeReconstruction(model, pixelsFor(model.config, 3, 13), { generator: new Generator(1) });
  const file = path.join(tmpDir(), 'steps', 'recon-000100.png');
  // 24 x 16 pictures: scaled by 3 to reach 64 px; gaps of 2 scaled too.
  const size = await writeReconstructionGrid(file, rows);
  const [cw, ch, g] = [16 * 3, 24 * 3, 2 * 3];
  assert.deepEqual(size, { width: 4 * cw + 5 * g, height: 3 * ch + 4 * g });
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [size.width, size.height, 3]);
  rows.forEach((row, r) => {
    [row.original, row.masked, row.reconstruction, row.reconstructionVisible].forEach((img, c) => {
      for (const [y, x] of [[0, 0], [ch - 1, cw - 1], [37, 20], [5, 47]] as const) {
        const at = ((g + r * (ch + g) + y) * size.width + g + c * (cw + g) + x) * 3;
        const src = (Math.floor(y / 3) * 16 + Math.floor(x / 3)) * 3;
        assert.deepEqual([...data.subarray(at, at + 3)], [...img.data.subarray(src, src + 3)], `row ${r} column ${c} (${y}, ${x})`);
      }
    });
  });
  // The gaps are background.
  assert.deepEqual([...data.subarray(0, 3)], [255, 255, 255]);
  const gapAt = ((g + ch + 1) * size.width + g + 5) * 3;
  assert.deepEqual([...data.subarray(gapAt, gapAt + 3)], [255, 255, 255]);
  assert.ok(!fs.readdirSync(path.dirname(file)).some((f) => f.includes('.tmp-')), 'no temporary file left');

  const unscaled = await writeReconstructionGrid(file, rows.slice(0, 1), { scale: 1, gap: 0 });
  assert.deepEqual(unscaled, { width: 64, height: 24 });
  await assert.rejects(writeReconstructionGrid(file, []), /no rows/);
  await assert.rejects(writeReconstructionGrid(file, rows, { scale: 0 }), /scale must be a positive integer/);
});
