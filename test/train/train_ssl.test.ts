// Self-supervised training through the trainer: MAE (masked patches) on images, BERT MLM (masked
// tokens) on a text corpus, exact resumption of both, and fine-tuning / probing from an MAE.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { loadTokenizer } from '../../src/data/tokenizers/tokenizer.js';
import { loadFeatureSource } from '../../src/eval/features.js';
import { BertForMaskedLM } from '../../src/models/bert.js';
import { createModel } from '../../src/models/registry.js';
import { ViTForImageClassification } from '../../src/models/vit.js';
import { ViTMAEForPreTraining } from '../../src/models/vit_mae.js';
import { ConfigError, resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { buildTrainModel } from '../../src/train/model_setup.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('train-ssl');
const SCENES = { train: 'scenes:train', val: 'scenes:test', options: { scenes: { length: 48, size: 32, supersample: 1 } }, workers: 0 };

function maeConfig(out: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: { custom: { family: 'mae', image_size: 32, patch_size: 8, width: 32, layers: 2, heads: 2, decoder_width: 16, decoder_layers: 1, decoder_heads: 2 } },
    task: 'mae', steps: 6, batch_size: 8, log_every: 1, seed: 5,
    data: SCENES, optim: { lr: 2e-3, warmup_steps: 1 }, checkpoint: { every: 3 },
    eval: { every: 3, max_samples: 16, batch_size: 8 }, mae: { pictures: 3 },
    out, ...extra,
  });
}

/** Real English: the licence texts every Debian system has, as one document per paragraph. */
function corpusFile(dir: string): string {
  const licences = '/usr/share/common-licenses';
  const names = ['GPL-3', 'Apache-2.0', 'LGPL-2.1'].filter((n) => fs.existsSync(path.join(licences, n)));
  assert.ok(names.length > 0, `no licence texts in ${licences}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'licences.txt');
  fs.writeFileSync(file, names.map((n) => fs.readFileSync(path.join(licences, n), 'utf8')).join('\n\n'));
  return file;
}

function mlmConfig(out: string, corpus: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: { custom: { family: 'bert', width: 32, layers: 2, heads: 2, context_length: 32 } },
    task: 'mlm', steps: 6, batch_size: 8, log_every: 1, seed: 2,
    data: { train: `${corpus}:train`, val: `${corpus}:val`, options: { valFraction: 0.1 } },
    mlm: { vocab_size: 400 }, optim: { lr: 2e-3, warmup_steps: 1 }, checkpoint: { every: 3 },
    eval: { every: 3, max_samples: 16, batch_size: 8 },
    out, ...extra,
  });
}

test('mae: a resumed run gives bit-identical losses; evaluation writes the loss and a reconstruction picture', async () => {
  const straight = await train(maeConfig(newDir()), { progress: 'none' });
  assert.equal(straight.losses.length, 6);
  assert.ok(straight.losses.every((l) => Number.isFinite(l.loss) && l.loss > 0));
  const out = newDir();
  const first = await train(maeConfig(out), { progress: 'none', stopAfterStep: 3 });
  const resumed = await train(maeConfig(out), { progress: 'none', resume: true });
  // The masking noise comes from the task's generator, restored from the checkpoint.
  assert.deepEqual([...first.losses, ...resumed.losses], straight.losses);
  // Evaluation masks the same patches every time, so both runs' final weights score the same.
  assert.ok(Number.isFinite(resumed.metrics['eval/mae_loss']));
  assert.equal(resumed.metrics['eval/mae_loss'], straight.metrics['eval/mae_loss']);

  const picture = path.join(out, 'reconstructions', 'step_0000006.png');
  const meta = await sharp(picture).metadata();
  // Three rows (pictures: 3) of four 32 px pictures, upscaled to at least 64 px, with gaps.
  assert.ok(meta.width! > meta.height!, `${meta.width}x${meta.height}`);
  assert.ok(meta.height! >= 3 * 64 && meta.width! >= 4 * 64);
  // The report shows the last picture, embedded, and draws the loss on a chart of its own.
  const report = fs.readFileSync(resumed.reportFile!, 'utf8');
  assert.match(report, /<img alt="reconstructions at step 6[^"]*" src="data:image\/png;base64,/);
  assert.match(report, /evaluation: mae_loss/);
  const model = await createModel(resumed.modelDir!);
  assert.ok(model instanceof ViTMAEForPreTraining);
  assert.equal(model.config.maskRatio, 0.75);
  assert.equal(model.config.normPixLoss, true, 'mae.norm_pix_loss is the training objective and is saved with the model');
});

test('mae -> classifier: fine-tuning starts from the MAE encoder; a probe reads its features', async () => {
  const pre = await train(maeConfig(newDir(), { steps: 2, eval: { every: 0 }, data: { ...SCENES, val: null } }), { progress: 'none' });
  const config = resolveConfig({
    model: pre.modelDir!, task: 'ce', steps: 2, batch_size: 8, seed: 1,
    data: { train: 'scenes:train', workers: 0 },
    optim: { layer_decay: 0.75 }, out: newDir(),
  });
  const classes = ['a', 'b', 'c'];
  const setup = await buildTrainModel(config, { classNames: classes });
  assert.ok(setup.model instanceof ViTForImageClassification);
  assert.equal(setup.model.config.numLabels, 3);
  const mae = (await createModel(pre.modelDir!)).stateDict();
  const encoder = Object.entries(setup.model.stateDict()).filter(([k]) => k.startsWith('vit.'));
  assert.equal(encoder.length, Object.keys(mae).filter((k) => k.startsWith('vit.')).length);
  for (const [k, t] of encoder) assert.deepEqual(t.toArray(), mae[k]!.toArray(), k);
  const source = await loadFeatureSource(pre.modelDir!, { pooling: 'mean' });
  assert.equal(source.imageProcessor.family, 'vit');
});

test('mlm: a WordPiece vocabulary from the corpus, packed masked sequences, exact resumption, HF folder out', async () => {
  const dir = newDir();
  const corpus = corpusFile(dir);
  const straight = await train(mlmConfig(newDir(), corpus), { progress: 'none' });
  const out = newDir();
  const first = await train(mlmConfig(out, corpus), { progress: 'none', stopAfterStep: 3 });
  const resumed = await train(mlmConfig(out, corpus), { progress: 'none', resume: true });
  assert.deepEqual([...first.losses, ...resumed.losses], straight.losses);
  // ln(400) is the loss of a uniform guess over the vocabulary; training starts near it.
  assert.ok(Math.abs(straight.losses[0]!.loss - Math.log(400)) < 1.5, String(straight.losses[0]!.loss));
  const m = resumed.metrics;
  assert.ok(m['eval/mlm_accuracy']! >= 0 && m['eval/mlm_accuracy']! <= 1);
  assert.ok(Math.abs(m['eval/perplexity']! - Math.exp(m['eval/mlm_loss']!)) < 1e-9 * m['eval/perplexity']!);

  const model = await createModel(resumed.modelDir!);
  assert.ok(model instanceof BertForMaskedLM);
  const tokenizer = loadTokenizer(resumed.modelDir!);
  assert.equal(tokenizer.vocabSize, 400);
  assert.equal(model.config.vocabSize, 400);
  assert.deepEqual(tokenizer.encode('the licence').inputIds[0]!.slice(0, 1), [tokenizer.tokenToId('[CLS]')]);
  // The run's vocabulary is kept beside the checkpoints: the resumed half used the same one.
  assert.equal(fs.readFileSync(path.join(out, 'tokenizer', 'tokenizer.json'), 'utf8'), fs.readFileSync(path.join(resumed.modelDir!, 'tokenizer.json'), 'utf8'));
});

test('self-supervised bad input: errors before any work, naming the problem', async () => {
  const out = newDir();
  assert.throws(() => maeConfig(out, { mae: { mask_ratio: 1 } }), (e: unknown) => e instanceof ConfigError && /mae\.mask_ratio: must be < 1/.test(e.message));
  assert.throws(() => maeConfig(out, { mae: { mask_ratio: 0 } }), /mae\.mask_ratio: must be > 0/);
  assert.throws(() => maeConfig(out, { optim: { layer_decay: 0.5 } }), /optim\.layer_decay: only means something with task ce/);
  const badSize = maeConfig(out);
  badSize.model.custom!.image_size = 30;
  await assert.rejects(train(badSize, { progress: 'none' }), /model\.custom\.image_size: 30 is not a multiple of the patch size 8/);
  const emptyDir = newDir();
  fs.mkdirSync(emptyDir, { recursive: true });
  const empty = path.join(emptyDir, 'empty.txt');
  fs.writeFileSync(empty, '\n\n  \n');
  await assert.rejects(train(mlmConfig(out, empty), { progress: 'none' }), /holds no documents/);
  assert.equal(fs.existsSync(path.join(out, 'checkpoints')), false, 'nothing was written');
});
