import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createModel, getLoss, getModelEntry, listLosses, listModels, models, registerLoss, registerModel } from '../../src/models/registry.js';
import { datasets, listDatasets, registerDataset } from '../../src/data/registry.js';
import { byteTokenizer } from '../../src/models/configs.js';
import { CLIPConfig, CLIPModel } from '../../src/models/clip.js';
import { SiglipModel } from '../../src/models/siglip.js';
import { clipLoss, siglipLoss } from '../../src/nn/losses.js';
import { BertForMaskedLM } from '../../src/models/bert.js';
import { ViTModel } from '../../src/models/vit.js';
import type { Module } from '../../src/nn/module.js';
import { crossEntropy } from '../../src/tensor/ops/nn.js';
import { Generator, randn } from '../../src/tensor/random.js';
import { tensor } from '../../src/tensor/tensor.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-registry-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const tmpDir = (): string => path.join(tmpRoot, `d${n++}`);

function sameWeights(a: Module, b: Module): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual(Object.keys(sa).sort(), Object.keys(sb).sort());
  for (const k of Object.keys(sa)) assert.deepEqual(Array.from(sa[k]!.toArray()), Array.from(sb[k]!.toArray()), k);
}

test('the zoo registers the issue\'s public names', () => {
  const names = listModels();
  for (const name of ['ViT-B-32', 'ViT-B-16', 'ViT-L-14', 'ViT-B-16-SigLIP', 'BLIP-base', 'BLIP-base-retrieval', 'ViT-MAE-base', 'BERT-base',
    'tiny-clip', 'test-clip', 'test-siglip', 'test-bert', 'test-vit']) {
    assert.ok(names.includes(name), name);
  }
  assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b, 'en')));
  assert.ok(!names.includes('openai/clip-vit-base-patch32'), 'aliases are not listed');
});

test('aliases and case resolve to one entry', () => {
  const e = getModelEntry('ViT-B-32');
  for (const alias of ['vit-b-32', 'VIT-B-32', 'openai/clip-vit-base-patch32', 'ViT-B-32-quickgelu', 'ViT-B/32']) assert.equal(getModelEntry(alias), e, alias);
  assert.equal(getModelEntry('google/siglip-base-patch16-224').name, 'ViT-B-16-SigLIP');
  assert.equal(getModelEntry('bert-base-uncased').name, 'BERT-base');
  assert.equal(getModelEntry('Salesforce/blip-itm-base-coco').name, 'BLIP-base-retrieval');
  assert.equal(getModelEntry('facebook/vit-mae-base').family, 'vit_mae');
});

test('CLIP configs are open_clip\'s sizes as HF config fields', () => {
  const b32 = CLIPConfig.fromHF(getModelEntry('ViT-B-32').config);
  const v = b32.visionConfig;
  const t = b32.textConfig;
  assert.deepEqual([v.hiddenSize, v.numHiddenLayers, v.numAttentionHeads, v.intermediateSize, v.patchSize, v.imageSize], [768, 12, 12, 3072, 32, 224]);
  assert.deepEqual([t.hiddenSize, t.numHiddenLayers, t.numAttentionHeads, t.intermediateSize, t.maxPositionEmbeddings, t.vocabSize], [512, 12, 8, 2048, 77, 49408]);
  assert.equal(b32.projectionDim, 512);
  assert.equal(v.hiddenAct, 'quick_gelu');
  assert.equal(t.hiddenAct, 'quick_gelu');
  assert.equal(CLIPConfig.fromHF(getModelEntry('ViT-B-16').config).visionConfig.patchSize, 16);
  const l14 = CLIPConfig.fromHF(getModelEntry('ViT-L-14').config);
  assert.deepEqual([l14.visionConfig.hiddenSize, l14.visionConfig.numHiddenLayers, l14.visionConfig.numAttentionHeads, l14.visionConfig.patchSize], [1024, 24, 16, 14]);
  assert.deepEqual([l14.textConfig.hiddenSize, l14.textConfig.numAttentionHeads, l14.projectionDim], [768, 12, 768]);
  const tiny = CLIPConfig.fromHF(getModelEntry('tiny-clip').config);
  assert.deepEqual([tiny.visionConfig.imageSize, tiny.visionConfig.patchSize, tiny.visionConfig.hiddenSize, tiny.visionConfig.numHiddenLayers,
    tiny.visionConfig.numAttentionHeads, tiny.visionConfig.intermediateSize, tiny.projectionDim], [64, 8, 256, 4, 4, 1024, 128]);
  assert.deepEqual([tiny.textConfig.maxPositionEmbeddings, tiny.textConfig.vocabSize, tiny.textConfig.hiddenSize, tiny.textConfig.numHiddenLayers], [32, 1000, 256, 4]);
});

test('tiny-clip has the anchors\' 6.7 M parameters', async () => {
  const m = await createModel('tiny-clip', { init: 'random', generator: new Generator(1) });
  assert.ok(m instanceof CLIPModel);
  const count = m.parameters().reduce((s, p) => s + p.size, 0);
  assert.ok(Math.abs(count - 6.7e6) < 0.05e6, `${count}`);
});

test('an unknown name is an error listing close matches', async () => {
  await assert.rejects(createModel('ViT-B-33'), /unknown model 'ViT-B-33'; did you mean 'ViT-B-32'.*'ViT-B-16'/);
  await assert.rejects(createModel('tiny-clp'), /did you mean 'tiny-clip'/);
  await assert.rejects(createModel('zzzzzzzzzz'), (e: Error) => !/did you mean/.test(e.message) && /known: .*ViT-B-32/.test(e.message));
  const file = path.join(tmpRoot, 'plain.txt');
  fs.writeFileSync(file, 'x');
  await assert.rejects(createModel(file), /not a folder/);
});

test('a spec that looks like a path and does not exist is a missing folder, not an unknown name', async () => {
  for (const spec of ['./no/such/folder', 'runs/x/model', '~/models/clip', '.hidden-model', path.join(tmpRoot, 'absent')]) {
    await assert.rejects(createModel(spec), (e: Error) => e.message.startsWith(`${spec}: the model folder does not exist`) && !/unknown model/.test(e.message), spec);
  }
  // Registered names with a slash are aliases: the registry comes first.
  await assert.rejects(createModel('openai/clip-vit-base-patch32'), /model 'ViT-B-32' has no weights/);
});

test('a registered name without weights is refused with how to get them; init: \'random\' builds it untrained', async () => {
  await assert.rejects(createModel('ViT-B-32'), (e: Error) => {
    for (const part of [/^model 'ViT-B-32' has no weights/, /Glimpse downloads nothing/, /Hugging Face repo openai\/clip-vit-base-patch32/,
      /config\.json \+ model\.safetensors/, /hf download openai\/clip-vit-base-patch32/, /as weights \(--weights <folder>\)/,
      /as the model itself \(--model <folder>\)/, /open_clip folder/, /init: 'random' \(--random-init on the command line\)/]) {
      assert.match(e.message, part);
    }
    return true;
  });
  await assert.rejects(createModel('BLIP-base', { generator: new Generator(1) }), /Hugging Face repo Salesforce\/blip-image-captioning-base/);
  // A name that names no checkpoint says so, and still says how to build or load it.
  await assert.rejects(createModel('test-clip'), /model 'test-clip' has no weights: .*names no pretrained checkpoint.*--weights <folder>.*init: 'random' \(--random-init/);
  const m = await createModel('test-clip', { init: 'random', generator: new Generator(2) });
  assert.equal(m.kind, 'dual-encoder');
  // init and weights exclude each other; a folder is loaded with its own weights, so neither applies to it.
  const dir = tmpDir();
  m.savePretrained(dir);
  await assert.rejects(createModel('test-clip', { init: 'random', weights: dir }), /weights \(--weights\) and init: 'random' \(--random-init\) exclude each other/);
  await assert.rejects(createModel(dir, { init: 'random' }), /init: 'random' \(--random-init\) builds a registered name; a model folder is loaded with its own weights/);
  await assert.rejects(createModel(dir, { weights: dir }), /weights \(--weights\) go with a registered name/);
  await assert.rejects(createModel('test-clip', { init: 'zeros' as 'random' }), /init must be 'random'/);
});

test('createModel builds each family\'s class with random weights, seeded by the generator', async () => {
  const a = await createModel('test-clip', { init: 'random', generator: new Generator(7) });
  const b = await createModel('test-clip', { init: 'random', generator: new Generator(7) });
  const c = await createModel('test-clip', { init: 'random', generator: new Generator(8) });
  assert.ok(a instanceof CLIPModel);
  sameWeights(a, b);
  assert.notDeepEqual(Array.from(a.stateDict()['visual_projection.weight']!.toArray()), Array.from(c.stateDict()['visual_projection.weight']!.toArray()));
  assert.ok((await createModel('test-siglip', { init: 'random' })) instanceof SiglipModel);
  assert.ok((await createModel('test-bert', { init: 'random' })) instanceof BertForMaskedLM);
  assert.ok((await createModel('test-vit', { init: 'random' })) instanceof ViTModel);
  const native = await createModel('test-vit', { init: 'random', backend: 'reference' });
  assert.equal(native.parameters()[0]!.backend.name, 'reference');
});

test('lazily imported families (BLIP, ViT-MAE) build from their names', async () => {
  const blip = await createModel('test-blip', { init: 'random' });
  assert.equal(blip.constructor.name, 'BlipForConditionalGeneration');
  const mae = await createModel('test-vit-mae', { init: 'random' });
  assert.equal(mae.constructor.name, 'ViTMAEForPreTraining');
});

test('createModel loads a saved folder by model_type, and a name with weights', async () => {
  const a = (await createModel('test-clip', { init: 'random', generator: new Generator(3) })) as CLIPModel;
  const dir = tmpDir();
  a.savePretrained(dir);
  const fromDir = await createModel(dir);
  assert.ok(fromDir instanceof CLIPModel);
  sameWeights(a, fromDir);
  sameWeights(a, await createModel('test-clip', { weights: dir }));
  // Weights alone: the entry's config.
  const bare = tmpDir();
  fs.mkdirSync(bare);
  fs.copyFileSync(path.join(dir, 'model.safetensors'), path.join(bare, 'model.safetensors'));
  sameWeights(a, await createModel('test-clip', { weights: bare }));
  // A folder of another family, or of other sizes, is refused.
  const s = (await createModel('test-siglip', { init: 'random' })) as SiglipModel;
  const sdir = tmpDir();
  s.savePretrained(sdir);
  assert.ok((await createModel(sdir)) instanceof SiglipModel);
  await assert.rejects(createModel('test-clip', { weights: sdir }), /model_type 'siglip', not 'clip'/);
  const sbare = tmpDir();
  fs.mkdirSync(sbare);
  fs.copyFileSync(path.join(sdir, 'model.safetensors'), path.join(sbare, 'model.safetensors'));
  await assert.rejects(createModel('test-clip', { weights: sbare }));
  await assert.rejects(createModel('test-clip', { weights: path.join(tmpRoot, 'missing') }), /does not exist/);
  // The ViT key map applies to weights-only folders too.
  const v = (await createModel('test-vit', { init: 'random' })) as ViTModel;
  const vdir = tmpDir();
  v.savePretrained(vdir);
  fs.rmSync(path.join(vdir, 'config.json'));
  sameWeights(v, await createModel('test-vit', { weights: vdir }));
});

test('registerModel adds a user\'s model, refusing taken names', async () => {
  const config = { ...getModelEntry('test-clip').config };
  registerModel({ name: 'my-clip', aliases: ['mine/clip'], config });
  assert.ok(listModels().includes('my-clip'));
  assert.equal(getModelEntry('MINE/CLIP').family, 'clip');
  assert.ok((await createModel('mine/clip', { init: 'random' })) instanceof CLIPModel);
  assert.throws(() => registerModel({ name: 'my-clip', config }), /already registered/);
  assert.throws(() => registerModel({ name: 'other', aliases: ['vit-b-32'], config }), /taken by 'ViT-B-32'/);
  assert.throws(() => registerModel({ name: 'bad', config: { model_type: 'nope' } }), /no model family for model_type 'nope'/);
  assert.throws(() => registerModel({ name: 'bad2', family: 'bert', config }), /family 'bert' but config.model_type 'clip'/);
  registerModel({ name: 'my-clip', aliases: ['mine/clip2'], config }, { replace: true });
  assert.equal(models.find('mine/clip'), undefined);
  assert.equal(getModelEntry('mine/clip2').name, 'my-clip');
});

test('losses and datasets by name', () => {
  assert.deepEqual(listLosses(), ['bce', 'catlip', 'ce', 'clip', 'siglip']);
  const logits = randn([4, 4], { generator: new Generator(5) });
  assert.deepEqual(getLoss('infonce')(logits).toArray(), clipLoss(logits).toArray());
  assert.deepEqual(getLoss('SigLIP')(logits).toArray(), siglipLoss(logits).toArray());
  const target = tensor(new Int32Array([0, 3, 1, 2]), { shape: [4] });
  assert.deepEqual(getLoss('cross-entropy')(logits, target).toArray(), crossEntropy(logits, target).toArray());
  assert.throws(() => getLoss('ce')(logits), /needs a target/);
  assert.throws(() => getLoss('catlip')(logits), /needs a target/);
  assert.throws(() => getLoss('catlop'), /unknown loss 'catlop'; did you mean 'catlip'/);
  assert.throws(() => registerLoss({ name: 'clip', fn: (l) => l }), /already registered/);
  assert.deepEqual(listDatasets(), ['csv', 'debian-descriptions', 'fashion-mnist', 'image-folder', 'oad-synthetic', 'scenes', 'webdataset']);
  registerDataset({ name: 'toy', aliases: ['toy-set'], open: () => [1, 2, 3] });
  assert.deepEqual(datasets.get('TOY-SET').open(), [1, 2, 3]);
  assert.throws(() => datasets.get('toys'), /unknown dataset 'toys'; did you mean 'toy'/);
});

test('the byte tokenizer of the tiny models wraps texts in start/end tokens, end = largest id', () => {
  const t = byteTokenizer(8);
  const { inputIds } = t.encode(['Ab', 'a much longer text']);
  assert.deepEqual(inputIds[0], [256, 97, 98, 257, 0, 0, 0, 0]);
  assert.equal(inputIds[1]!.length, 8);
  assert.equal(inputIds[1]![7], 257);
  assert.equal(t.decode(inputIds[0]!), 'ab');
});

test('the built-in datasets open through the registry by any alias', async () => {
  const entry = datasets.get('shapes');
  assert.equal(entry.name, 'scenes');
  const ds = (await entry.open({ argument: 'val' })) as { name: string; length: number };
  assert.match(ds.name, /scenes/);
  assert.ok(ds.length > 0);
});

test('the text corpus opens through the registry with its split', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-corpus-'));
  try {
    const stanzas = Array.from({ length: 200 }, (_, i) => `Package: pkg${i}\nDescription-md5: ${String(i).padStart(32, '0')}\nDescription-en: tool number ${i}\n This package provides tool number ${i} for testing.\n`);
    fs.writeFileSync(path.join(root, 'Translation-en'), stanzas.join('\n'));
    const entry = datasets.get('debian-text');
    assert.equal(entry.name, 'debian-descriptions');
    const train = (await entry.open({ argument: 'train', root, valFraction: 0.1 })) as { documents: string[] };
    const val = (await entry.open({ argument: 'val', root, valFraction: 0.1 })) as { documents: string[] };
    assert.ok(train.documents.length > 150 && val.documents.length > 5, `${train.documents.length} / ${val.documents.length}`);
    assert.ok(!val.documents.some((d) => train.documents.includes(d)), 'the splits are disjoint');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
