// Dev tool: what self-supervised training saves, for scripts/dev/hf_ssl_check.py to load into HF
// transformers on a machine that has it.
//   node scripts/dev/hf_ssl_check.mjs OUT
// OUT/bert: a BERT trained a few MLM steps on licence texts (its WordPiece tokenizer.json beside it);
// OUT/mae: a ViT-MAE trained a few steps on the scenes; OUT/mae_ft: a classifier fine-tuned from it.
// OUT/check.safetensors + OUT/check.json: inputs and Glimpse's outputs for them.
import fs from 'node:fs';
import path from 'node:path';
import {
  createModel, train, resolveConfig, loadTokenizer, io, randn, rand, Generator, tensor, noGrad, vitModelFromMAE,
} from '../../dist/src/index.js';

const [out] = process.argv.slice(2);
if (!out) throw new Error('usage: hf_ssl_check.mjs OUT');
fs.mkdirSync(out, { recursive: true });
const licences = ['GPL-3', 'Apache-2.0', 'LGPL-2.1'].map((n) => fs.readFileSync(`/usr/share/common-licenses/${n}`, 'utf8'));
const corpus = path.join(out, 'corpus.txt');
fs.writeFileSync(corpus, licences.join('\n\n'));
const common = { batch_size: 8, steps: 4, log_every: 1, optim: { warmup_steps: 1 } };

await train(resolveConfig({
  ...common, task: 'mlm', model: { custom: { family: 'bert', width: 64, layers: 2, heads: 2, context_length: 32 } },
  data: { train: corpus }, mlm: { vocab_size: 500 }, out: path.join(out, 'run-bert'),
}), { progress: 'none' });
await train(resolveConfig({
  ...common, task: 'mae',
  model: { custom: { family: 'mae', image_size: 32, patch_size: 8, width: 64, layers: 2, heads: 2, decoder_width: 32, decoder_layers: 1, decoder_heads: 2 } },
  data: { train: 'scenes:train', options: { scenes: { size: 32 } }, workers: 0 }, out: path.join(out, 'run-mae'),
}), { progress: 'none' });
await train(resolveConfig({
  ...common, task: 'ce', model: path.join(out, 'run-mae', 'model'), optim: { warmup_steps: 1, layer_decay: 0.75 },
  data: { train: 'fashion-mnist:train', options: {}, workers: 0 }, out: path.join(out, 'run-ft'),
}), { progress: 'none' });
for (const [run, name] of [['run-bert', 'bert'], ['run-mae', 'mae'], ['run-ft', 'mae_ft']]) {
  fs.cpSync(path.join(out, run, 'model'), path.join(out, name), { recursive: true });
}

const f32 = (t) => ({ dtype: 'F32', shape: t.shape, data: new Float32Array(t.contiguous().data()) });
const i64 = (rows) => ({ dtype: 'I64', shape: [rows.length, rows[0].length], data: BigInt64Array.from(rows.flat().map(BigInt)) });
const check = {};

const bert = (await createModel(path.join(out, 'bert'))).eval();
const tokenizer = loadTokenizer(path.join(out, 'bert'));
const texts = ['This License applies to any program.', 'Élan: the Software is provided "AS IS", without warranty of any kind!'];
const enc = tokenizer.encode(texts, { padding: 'longest' });
const idsT = tensor(Int32Array.from(enc.inputIds.flat()), { shape: [2, enc.inputIds[0].length], dtype: 'int32' });
const maskT = tensor(Int32Array.from(enc.attentionMask.flat()), { shape: idsT.shape, dtype: 'int32' });
check.bert_input_ids = i64(enc.inputIds);
check.bert_attention_mask = i64(enc.attentionMask);
check.bert_logits = f32(noGrad(() => bert.forward(idsT, { attentionMask: maskT }).logits));

const mae = (await createModel(path.join(out, 'mae'))).eval();
const pixels = randn([2, 3, 32, 32], { generator: new Generator(1) });
const noise = rand([2, 16], { generator: new Generator(2) });
const maeOut = noGrad(() => mae.forward(pixels, { noise }));
check.pixel_values = f32(pixels);
check.noise = f32(noise);
check.mae_logits = f32(maeOut.logits);
check.mae_loss = f32(maeOut.loss.reshape([1]));
check.mae_encoder_hidden = f32(noGrad(() => vitModelFromMAE(mae).eval().forward(pixels).lastHiddenState));

const ft = (await createModel(path.join(out, 'mae_ft'))).eval();
const grey = rand([2, 3, 32, 32], { generator: new Generator(3) });
check.ft_pixel_values = f32(grey);
check.ft_logits = f32(noGrad(() => ft.forward(grey).logits));

io.writeSafetensors(path.join(out, 'check.safetensors'), check);
fs.writeFileSync(path.join(out, 'check.json'), JSON.stringify({ texts, input_ids: enc.inputIds }));
console.log(`wrote ${out}: bert, mae, mae_ft, check.safetensors`);
