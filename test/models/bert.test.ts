import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BertConfig, BertForMaskedLM, BertModel, bertKeyFromHF } from '../../src/models/bert.js';
import { readHFConfig } from '../../src/io/hf.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { evaluateFixture, formatParityReport, runParity } from '../../src/eval/parity.js';
import { BERT } from '../../src/eval/families/bert.js';
import { StateDictError } from '../../src/nn/module.js';
import { defaultBackend } from '../../src/tensor/device.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { tempDirs, findFixture, floats, maxDiff, sharedNotFound } from '../helpers.js';

const tmpDir = tempDirs('bert');



/** A small BERT whose sizes differ from the fixture's everywhere, with large random weights. */
function smallConfig(over: Partial<ConstructorParameters<typeof BertConfig>[0]> = {}): BertConfig {
  return new BertConfig({
    vocabSize: 53, hiddenSize: 24, numHiddenLayers: 3, numAttentionHeads: 3, intermediateSize: 41, maxPositionEmbeddings: 20,
    typeVocabSize: 3, padTokenId: 1, layerNormEps: 1e-6, initializerRange: 0.3, hiddenDropoutProb: 0.1, ...over,
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

function weightNames(dir: string): string[] {
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const names = [...st.names].sort();
  st.close();
  return names;
}

function readWeights(dir: string): Record<string, TensorToWrite> {
  const st = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const all = st.readAll();
  st.close();
  return all;
}

/** ids [B, T] in the vocabulary (the pad id at position 1 and at padding), a padding mask with trailing zeros, token types, MLM labels with -100. */
function batch(config: BertConfig, B: number, T: number, seed: number) {
  const g = new Generator(seed);
  const ids = randint(2, config.vocabSize, [B, T], { generator: g });
  const types = randint(0, config.typeVocabSize, [B, T], { generator: g });
  const mask = new Float32Array(B * T);
  const labels = new Float32Array(B * T).fill(-100);
  const idv = ids.data() as Int32Array;
  for (let b = 0; b < B; b++) {
    const len = T - (b % 3);
    for (let t = 0; t < T; t++) {
      if (t < len) mask[b * T + t] = 1;
      // Pad ids also at a visible position: only padding_idx keeps their embedding row's gradient at zero.
      if (t >= len || t === 1) idv[b * T + t] = config.padTokenId ?? 0;
      if (t < len && (t + b) % 3 === 0) labels[b * T + t] = (t * 7 + b) % config.vocabSize;
    }
  }
  const int64 = (a: Float32Array | Int32Array) => tensor(BigInt64Array.from(a, (v) => BigInt(v)), { dtype: 'int64', shape: [B, T] });
  return { ids: int64(idv), types: int64(types.data() as Int32Array), mask: int64(mask), labels: int64(labels) };
}

// ---------------------------------------------------------------------------------------------
// Parity with the Hugging Face fixture

test('HF parity: BertForMaskedLM logits, loss and every gradient match transformers', (t) => {
  const dir = findFixture('bert_mlm');
  if (!dir) return t.skip(sharedNotFound());
  const report = runParity(dir);
  assert.ok(report.ok, formatParityReport(report));
  assert.equal(report.family, 'bert');
  assert.deepEqual(report.checks.filter((c) => c.kind === 'output').map((c) => c.name).sort(), ['logits', 'loss']);
  const grads = report.checks.filter((c) => c.kind === 'gradient');
  // 5 embedding tensors, 16 per layer, 5 in the head: the tied decoder adds none of its own.
  assert.equal(grads.length, 5 + 2 * 16 + 5);
  assert.ok(grads.every((c) => !c.note?.startsWith('no reference')), 'every parameter has a reference gradient');
  assert.equal(grads.filter((c) => c.name === 'bert.embeddings.word_embeddings.weight').length, 1);
  assert.ok(Math.abs(report.loss! - 4.642727851867676) < 1e-5);
  const ref = runParity(dir, { backend: 'reference' });
  assert.ok(ref.ok, formatParityReport(ref));
});

test('HF parity: the fixture checkpoint loads as a bare BertModel (head dropped, no pooler)', (t) => {
  const dir = findFixture('bert_mlm');
  if (!dir) return t.skip(sharedNotFound());
  const mlm = BertForMaskedLM.fromPretrained(dir);
  const bare = BertModel.fromPretrained(dir);
  assert.equal(bare.pooler, null);
  const inputs = SafetensorsFile.open(path.join(dir, 'inputs.safetensors')).readAll();
  const t64 = (k: string) => tensor(inputs[k]!.data, { dtype: 'int64', shape: inputs[k]!.shape });
  const opts = { attentionMask: t64('attention_mask'), tokenTypeIds: t64('token_type_ids'), outputHiddenStates: true };
  const a = mlm.forward(t64('input_ids'), opts).hiddenStates!.at(-1)!;
  assert.deepEqual(floats(bare.forward(t64('input_ids'), opts).lastHiddenState), floats(a));
  // The family maps a headed gradient name onto the bare model's keys.
  const fm = BERT.load(dir, 'BertModel', defaultBackend());
  assert.equal(fm.moduleKey('bert.encoder.layer.1.output.dense.weight'), 'encoder.layer.1.output.dense.weight');
});

// ---------------------------------------------------------------------------------------------
// A differently sized random checkpoint through the runner

test('a differently sized random BERT in HF layout runs through the parity runner (native vs reference backend)', () => {
  for (const [act, tie] of [['gelu', true], ['gelu_new', false]] as const) {
    const config = smallConfig({ hiddenAct: act, tieWordEmbeddings: tie });
    const dir = tmpDir();
    new BertForMaskedLM(config, { generator: new Generator(act.length) }).savePretrained(dir);
    const { ids, types, mask, labels } = batch(config, 4, 9, 5);
    writeSafetensors(path.join(dir, 'inputs.safetensors'), Object.fromEntries(
      Object.entries({ input_ids: ids, token_type_ids: types, attention_mask: mask, labels }).map(([k, v]) => [k, { shape: v.shape, data: v.data(), dtype: 'I64' as const }])));
    const { outputs, gradients } = evaluateFixture(dir, { backend: 'reference' });
    fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({
      class: 'BertForMaskedLM', outputs: { logits: outputs.logits!.shape, loss: [1] }, loss_fn: 'masked-LM cross-entropy',
    }));
    const host = (r: Record<string, Tensor>) => Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith('hidden_states.'))
      .map(([k, v]) => [k, { shape: v.shape, data: v.data() }]));
    writeSafetensors(path.join(dir, 'outputs.safetensors'), host(outputs));
    writeSafetensors(path.join(dir, 'grads.safetensors'), host(gradients));
    assert.equal('cls.predictions.decoder.weight' in gradients, !tie);
    const report = runParity(dir);
    assert.ok(report.ok, formatParityReport(report));
    assert.deepEqual(report.checks.find((c) => c.name === 'logits')!.shape, [4, 9, 53]);
    // Padding ids get no gradient through the embedding lookup; tied, the decoder still reaches that row.
    const padRow = floats(gradients['bert.embeddings.word_embeddings.weight']!).subarray(24, 48);
    assert.equal(padRow.some((v) => v !== 0), tie);
  }
});

// ---------------------------------------------------------------------------------------------
// Behaviour

test('padding: masked keys do not change the unmasked positions; the MLM loss ignores -100', () => {
  const config = smallConfig();
  const model = new BertForMaskedLM(config, { generator: new Generator(1) }).eval();
  const { ids, types, mask, labels } = batch(config, 3, 8, 2);
  const out = model.forward(ids, { attentionMask: mask, tokenTypeIds: types, labels });
  // Other ids at the padded positions: nothing changes where the mask is 1.
  const ids2 = ids.data().slice() as BigInt64Array;
  const m = mask.data() as BigInt64Array;
  for (let i = 0; i < ids2.length; i++) if (m[i] === 0n) ids2[i] = 7n;
  const out2 = model.forward(tensor(ids2, { dtype: 'int64', shape: ids.shape }), { attentionMask: mask, tokenTypeIds: types });
  const a = floats(out.logits);
  const b = floats(out2.logits);
  const V = config.vocabSize;
  let err = 0;
  for (let r = 0; r < m.length; r++) if (m[r] === 1n) for (let v = 0; v < V; v++) err = Math.max(err, Math.abs(a[r * V + v]! - b[r * V + v]!));
  assert.ok(err < 1e-5, `unmasked logits moved by ${err}`);
  // The loss by hand: mean over labelled rows of logsumexp - logit[label].
  const lab = labels.data() as BigInt64Array;
  let sum = 0;
  let n = 0;
  for (let r = 0; r < lab.length; r++) {
    if (lab[r] === -100n) continue;
    const row = a.subarray(r * V, (r + 1) * V);
    const mx = Math.max(...row);
    sum += mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0)) - row[Number(lab[r])]!;
    n++;
  }
  assert.ok(n > 0 && Math.abs(out.loss!.item() - sum / n) < 1e-5);
  // Without token types, all are type 0.
  const zeros = tensor(new BigInt64Array(ids.size), { dtype: 'int64', shape: ids.shape });
  assert.deepEqual(floats(model.forward(ids, { attentionMask: mask }).logits), floats(model.forward(ids, { attentionMask: mask, tokenTypeIds: zeros }).logits));
  assert.throws(() => model.forward(randint(0, V, [1, 21])), /21 positions exceed max_position_embeddings 20/);
  // Dropout acts in training mode only.
  model.train();
  assert.notDeepEqual(floats(model.forward(ids).logits), floats(model.forward(ids).logits));
});

test('decoder (is_decoder) is causal; cross-attention reads encoder states under their mask', () => {
  const config = smallConfig({ isDecoder: true, addCrossAttention: true, encoderHiddenSize: 10 });
  const model = new BertModel(config, { generator: new Generator(3) }).eval();
  assert.deepEqual(model.encoder.layer.get(0).crossattention!.self.key.weight.shape, [24, 10]);
  assert.deepEqual(model.encoder.layer.get(0).crossattention!.self.query.weight.shape, [24, 24]);
  const ids = randint(2, 53, [2, 6], { generator: new Generator(4) });
  const enc = randn([2, 5, 10], { generator: new Generator(5) });
  const encMask = tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], { dtype: 'int64' });
  const run = (i: Tensor, e: Tensor) => floats(model.forward(i, { encoderHiddenStates: e, encoderAttentionMask: encMask }).lastHiddenState);
  const base = run(ids, enc);
  // Changing the last token leaves the earlier positions alone.
  const ids2 = ids.data().slice() as Int32Array;
  ids2[5] = (ids2[5]! + 1) % 53;
  ids2[11] = (ids2[11]! + 1) % 53;
  const moved = run(tensor(ids2, { dtype: 'int32', shape: [2, 6] }), enc);
  assert.ok(maxDiff(moved.subarray(0, 5 * 24), base.subarray(0, 5 * 24)) < 1e-6);
  assert.ok(maxDiff(moved.subarray(5 * 24, 6 * 24), base.subarray(5 * 24, 6 * 24)) > 1e-4);
  // Masked encoder states do not matter; unmasked ones do.
  const e2 = enc.data().slice() as Float32Array;
  for (let i = 3 * 10; i < 5 * 10; i++) e2[i] = 9;
  assert.ok(maxDiff(run(ids, tensor(e2, { shape: [2, 5, 10] })), base) < 1e-6);
  e2[0] = 9;
  assert.ok(maxDiff(run(ids, tensor(e2, { shape: [2, 5, 10] })), base) > 1e-4);
  // causal: false per call (BLIP's bidirectional text encoder on a decoder config): the last token reaches the first.
  const bidir = (i: Tensor) => floats(model.forward(i, { encoderHiddenStates: enc, encoderAttentionMask: encMask, causal: false }).lastHiddenState);
  assert.ok(maxDiff(bidir(tensor(ids2, { dtype: 'int32', shape: [2, 6] })).subarray(0, 24), bidir(ids).subarray(0, 24)) > 1e-4);
  assert.throws(() => model.forward(ids), /needs encoderHiddenStates/);
  // Saved and loaded with the crossattention keys, and encoder_hidden_size in config.json.
  const dir = tmpDir();
  model.savePretrained(dir);
  assert.ok(weightNames(dir).includes('encoder.layer.2.crossattention.output.LayerNorm.weight'));
  assert.equal(readHFConfig(dir).encoder_hidden_size, 10);
  const back = BertModel.fromPretrained(dir);
  assertSameState(model, back);
  assert.deepEqual(floats(back.forward(ids, { encoderHiddenStates: enc, encoderAttentionMask: encMask }).lastHiddenState), base);
});

// ---------------------------------------------------------------------------------------------
// Saving and loading

test('save -> load round trip: HF key names, no tied decoder weight, bit-identical weights and outputs', () => {
  const config = new BertConfig({ ...smallConfig(), hiddenAct: 'gelu' }, { custom_field: 'kept', pad_token_id: 1 });
  const model = new BertForMaskedLM(config, { generator: new Generator(6) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const names = weightNames(dir);
  assert.ok(!names.includes('cls.predictions.decoder.weight') && !names.includes('cls.predictions.decoder.bias'));
  assert.ok(names.includes('cls.predictions.bias') && names.includes('bert.encoder.layer.2.attention.self.value.bias'));
  assert.ok(!names.some((n) => n.includes('pooler')));
  assert.equal(names.length, 5 + 3 * 16 + 5);
  const raw = readHFConfig(dir);
  assert.deepEqual(raw.architectures, ['BertForMaskedLM']);
  assert.equal(raw.model_type, 'bert');
  assert.equal(raw.custom_field, 'kept');
  assert.equal(raw.tie_word_embeddings, true);
  assert.equal(raw.pad_token_id, 1);
  const back = BertForMaskedLM.fromPretrained(dir);
  assertSameState(model, back);
  assert.equal(back.training, false);
  assert.equal(back.cls.predictions.decoderWeight, back.bert.embeddings.wordEmbeddings.weight);
  const { ids, mask } = batch(config, 2, 7, 7);
  model.eval();
  assert.deepEqual(floats(back.forward(ids, { attentionMask: mask }).logits), floats(model.forward(ids, { attentionMask: mask }).logits));
  // Saved again, the folder is the same.
  const dir2 = tmpDir();
  back.savePretrained(dir2);
  assert.deepEqual(readHFConfig(dir2), raw);
  assert.deepEqual(readWeights(dir2), readWeights(dir));

  // A BertModel with its pooler round-trips too; tanh(dense(CLS)).
  const bare = new BertModel(config, { generator: new Generator(8) });
  const d3 = tmpDir();
  bare.savePretrained(d3);
  assert.ok(weightNames(d3).includes('pooler.dense.weight'));
  const bareBack = BertModel.fromPretrained(d3);
  assertSameState(bare, bareBack);
  const out = bareBack.forward(ids);
  const cls = out.lastHiddenState.select(1, 0);
  const want = cls.matmul(bareBack.pooler!.dense.weight.transpose(0, 1)).add(bareBack.pooler!.dense.bias!).tanh();
  assert.ok(maxDiff(floats(out.poolerOutput!), floats(want)) < 1e-6);
});

test('older checkpoints: decoder copies, position_ids, gamma/beta, pooler and NSP head load as HF loads them', () => {
  const config = smallConfig();
  const model = new BertForMaskedLM(config, { generator: new Generator(9) }).eval();
  const dir = tmpDir();
  model.savePretrained(dir);
  const all = readWeights(dir);
  all['cls.predictions.decoder.weight'] = all['bert.embeddings.word_embeddings.weight']!;
  all['cls.predictions.decoder.bias'] = all['cls.predictions.bias']!;
  all['bert.embeddings.position_ids'] = { shape: [1, 20], dtype: 'I64', data: BigInt64Array.from({ length: 20 }, (_, i) => BigInt(i)) };
  all['bert.embeddings.LayerNorm.gamma'] = all['bert.embeddings.LayerNorm.weight']!;
  all['bert.embeddings.LayerNorm.beta'] = all['bert.embeddings.LayerNorm.bias']!;
  delete all['bert.embeddings.LayerNorm.weight'];
  delete all['bert.embeddings.LayerNorm.bias'];
  all['bert.pooler.dense.weight'] = { shape: [24, 24], data: new Float32Array(576) };
  all['bert.pooler.dense.bias'] = { shape: [24], data: new Float32Array(24) };
  all['cls.seq_relationship.weight'] = { shape: [2, 24], data: new Float32Array(48) };
  all['cls.seq_relationship.bias'] = { shape: [2], data: new Float32Array(2) };
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  assertSameState(model, BertForMaskedLM.fromPretrained(dir));
  // Only decoder.bias (no predictions.bias): it is the same parameter.
  all['cls.predictions.decoder.bias'] = all['cls.predictions.bias']!;
  delete all['cls.predictions.bias'];
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  assertSameState(model, BertForMaskedLM.fromPretrained(dir));
  // The pooler is kept by BertModel, which loads it from the headed checkpoint.
  const bare = BertModel.fromPretrained(dir);
  assert.notEqual(bare.pooler, null);
  assert.deepEqual(floats(bare.embeddings.LayerNorm.weight!), floats(model.bert.embeddings.LayerNorm.weight!));
  assert.equal(bertKeyFromHF('bert.encoder.layer.0.output.LayerNorm.gamma'), 'bert.encoder.layer.0.output.LayerNorm.weight');
  assert.equal(bertKeyFromHF('cls.predictions.transform.dense.bias'), 'cls.predictions.transform.dense.bias');
});

test('a checkpoint with missing, unexpected and mis-shaped keys is one error listing them all', () => {
  const model = new BertForMaskedLM(smallConfig(), { generator: new Generator(10) });
  const dir = tmpDir();
  model.savePretrained(dir);
  const all = readWeights(dir);
  delete all['bert.encoder.layer.1.attention.self.key.bias'];
  delete all['cls.predictions.bias'];
  all['bert.encoder.layer.0.intermediate.dense.weight'] = { shape: [40, 24], data: new Float32Array(40 * 24) };
  all['bert.encoder.layer.0.attention.self.rotary'] = { shape: [3], data: new Float32Array(3) };
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  assert.throws(() => BertForMaskedLM.fromPretrained(dir), (e: Error) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual([...e.missingKeys].sort(), ['bert.encoder.layer.1.attention.self.key.bias', 'cls.predictions.bias']);
    assert.deepEqual([...e.unexpectedKeys], ['bert.encoder.layer.0.attention.self.rotary']);
    assert.equal(e.mismatchedKeys.length, 1);
    assert.match(e.message, /bert\.encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \[40,24\] vs model \[41,24\]/);
    return true;
  });
  // Missing and unexpected keys are tolerated with strict: false; a wrong shape never is.
  assert.throws(() => BertForMaskedLM.fromPretrained(dir, { strict: false }), StateDictError);
  delete all['bert.encoder.layer.0.intermediate.dense.weight'];
  writeSafetensors(path.join(dir, 'model.safetensors'), all);
  const loose = BertForMaskedLM.fromPretrained(dir, { strict: false });
  assert.deepEqual(floats(loose.bert.encoder.layer.get(2).output.dense.weight), floats(model.bert.encoder.layer.get(2).output.dense.weight));
  // An untied model needs its decoder weight.
  const untied = new BertForMaskedLM(smallConfig({ tieWordEmbeddings: false }), { generator: new Generator(11) });
  const d2 = tmpDir();
  untied.savePretrained(d2);
  assert.ok(weightNames(d2).includes('cls.predictions.decoder.weight'));
  assertSameState(untied, BertForMaskedLM.fromPretrained(d2));
  const u = readWeights(d2);
  delete u['cls.predictions.decoder.weight'];
  writeSafetensors(path.join(d2, 'model.safetensors'), u);
  assert.throws(() => BertForMaskedLM.fromPretrained(d2), /cls\.predictions\.decoder\.weight/);
});

test('config.json: HF fields and defaults, and clear errors', () => {
  const c = BertConfig.fromHF({ model_type: 'bert', hidden_size: 32, num_attention_heads: 4 });
  assert.equal(c.vocabSize, 30522);
  assert.equal(c.padTokenId, 0);
  assert.equal(c.hiddenAct, 'gelu');
  assert.equal(c.layerNormEps, 1e-12);
  assert.equal(BertConfig.fromHF({ pad_token_id: null }).padTokenId, null);
  assert.throws(() => BertConfig.fromHF({ model_type: 'roberta' }), /model_type is 'roberta', not 'bert'/);
  assert.throws(() => BertConfig.fromHF({ position_embedding_type: 'relative_key' }), /position_embedding_type 'relative_key' is not supported/);
  assert.throws(() => BertConfig.fromHF({ hidden_size: 30, num_attention_heads: 4 }), /not a multiple/);
  assert.throws(() => BertConfig.fromHF({ hidden_act: 'swoosh' }), /unknown activation 'swoosh'/);
  assert.throws(() => BertConfig.fromHF({ vocab_size: 10, pad_token_id: 10 }), /pad_token_id 10 is out of range/);
  assert.throws(() => BertConfig.fromHF({ vocab_size: '10' }), /vocab_size must be a positive integer/);
  const dir = tmpDir();
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "bert"}');
  assert.throws(() => BertForMaskedLM.fromPretrained(dir), /no model\.safetensors/);
});

test('untied decoder: its own bias as transformers 5 has it, or the shared one of a file with one LM bias', () => {
  const model = new BertForMaskedLM(smallConfig({ tieWordEmbeddings: false }), { generator: new Generator(12) });
  model.eval();
  const head = model.cls.predictions;
  assert.ok(head.decoder?.bias, 'an untied decoder has its own bias');
  const ids = tensor(Int32Array.from([2, 5, 7, 9]), { shape: [1, 4], dtype: 'int32' });
  const before = floats(model.forward(ids).logits).slice();
  // The logits move with decoder.bias and ignore predictions.bias, as in transformers 5.
  head.bias.backend.fill(head.bias.view(), 3);
  assert.deepEqual(floats(model.forward(ids).logits), before);
  const db = head.decoder!.bias!.select(0, 4);
  db.backend.fill(db.view(), 2);
  const after = floats(model.forward(ids).logits);
  assert.ok(Math.abs(after[4]! - before[4]! - 2) < 1e-5 && after[3] === before[3]);
  // Round trip: both biases saved under HF's names and loaded back into their own places.
  const dir = tmpDir();
  model.savePretrained(dir);
  assert.ok(weightNames(dir).includes('cls.predictions.decoder.bias'));
  assertSameState(model, BertForMaskedLM.fromPretrained(dir));
  // A file with one LM bias (transformers 4 saved the tied pair once): the decoder shares it.
  const saved = readWeights(dir);
  for (const kept of ['cls.predictions.bias', 'cls.predictions.decoder.bias']) {
    const w = { ...saved };
    w[kept] = saved['cls.predictions.decoder.bias']!;
    delete w[kept === 'cls.predictions.bias' ? 'cls.predictions.decoder.bias' : 'cls.predictions.bias'];
    writeSafetensors(path.join(dir, 'model.safetensors'), w);
    const legacy = BertForMaskedLM.fromPretrained(dir);
    assert.equal(legacy.cls.predictions.decoder!.bias, null, kept);
    assert.deepEqual(floats(legacy.forward(ids).logits), after, kept);
  }
});

test('maskedLMLoss: the head on scored positions only gives forward\'s loss and gradients', (t) => {
  const dir = findFixture('bert_mlm');
  if (!dir) return t.skip(sharedNotFound());
  const model = BertForMaskedLM.fromPretrained(dir).eval();
  const inputs = SafetensorsFile.open(path.join(dir, 'inputs.safetensors')).readAll();
  const t64 = (k: string) => tensor(inputs[k]!.data, { dtype: 'int64', shape: inputs[k]!.shape });
  const opts = { attentionMask: t64('attention_mask'), tokenTypeIds: t64('token_type_ids') };
  const labels = t64('labels');
  assert.ok(labels.toArray().some((l) => l === -100), 'the fixture leaves some positions unscored');
  const run = (loss: () => Tensor) => {
    for (const p of model.parameters()) p.grad = null;
    const l = loss();
    l.backward();
    return { loss: l.item(), grads: model.namedParameters().map(([k, p]) => [k, p.grad ? Array.from(p.grad.toArray()) : null] as const) };
  };
  const full = run(() => model.forward(t64('input_ids'), { ...opts, labels }).loss!);
  const scored = run(() => model.maskedLMLoss(t64('input_ids'), labels, opts));
  assert.ok(Math.abs(full.loss - scored.loss) < 1e-6, `${full.loss} vs ${scored.loss}`);
  for (let i = 0; i < full.grads.length; i++) {
    const [k, a] = full.grads[i]!;
    const b = scored.grads[i]![1];
    assert.equal(a === null, b === null, k);
    if (a && b) {
      const scale = Math.max(1e-12, ...a.map(Math.abs));
      assert.ok(a.every((x, j) => Math.abs(x - b[j]!) <= 1e-5 * scale), k);
    }
  }
});
