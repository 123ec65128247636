// Dev tool: writes what scripts/dev/hf_roundtrip_check.py needs to check, with HF transformers on a
// machine that has it, that folders Glimpse saves load back into HF.
//   node scripts/dev/hf_roundtrip.mjs OUT FIXTURE_DIR...
// OUT/saved/<name>: each fixture's checkpoint loaded by Glimpse and saved again (savePretrained);
// OUT/trained: a tiny CLIP trained a few steps by Glimpse's trainer (with its tokenizer), plus
// OUT/trained_check.safetensors + OUT/trained_check.json: inputs and Glimpse's embeddings for them.
import fs from 'node:fs';
import path from 'node:path';
import { createModel, train, resolveConfig, loadVisionLanguageModel, embedImages, embedTexts, io, randn, Generator } from '../../dist/src/index.js';

const [out, ...fixtures] = process.argv.slice(2);
if (!out || fixtures.length === 0) throw new Error('usage: hf_roundtrip.mjs OUT FIXTURE_DIR...');
fs.mkdirSync(path.join(out, 'saved'), { recursive: true });
for (const dir of fixtures) {
  const name = path.basename(dir);
  const model = await createModel(dir);
  model.savePretrained(path.join(out, 'saved', name));
  console.log(`saved ${name} (${model.constructor.name})`);
}

const run = path.join(out, 'run');
await train(resolveConfig({
  model: { custom: { family: 'clip', image_size: 32, patch_size: 8, width: 64, layers: 2, heads: 2, text_width: 64, text_layers: 2, text_heads: 2, context_length: 24, embed_dim: 32 } },
  task: 'clip', data: { train: 'scenes:train', options: { scenes: { size: 32 } }, workers: 0 }, batch_size: 16, steps: 4, out: run, log_every: 1,
}), { progress: 'none' });
const trained = path.join(out, 'trained');
fs.cpSync(path.join(run, 'model'), trained, { recursive: true });
const vl = await loadVisionLanguageModel(trained);
const texts = ['a red circle to the left of a blue star', 'Two shapes: a small GREEN triangle & a square!'];
const inputIds = vl.tokenizer.encode(texts).inputIds;
const pixels = randn([2, 3, 32, 32], { generator: new Generator(0) });
const imageEmbeds = await embedImages(vl, pixels);
const textEmbeds = await embedTexts(vl, texts);
const f32 = (t) => ({ dtype: 'F32', shape: t.shape, data: new Float32Array(t.data()) });
io.writeSafetensors(path.join(out, 'trained_check.safetensors'), {
  pixel_values: f32(pixels), image_embeds: f32(imageEmbeds), text_embeds: f32(textEmbeds),
});
fs.writeFileSync(path.join(out, 'trained_check.json'), JSON.stringify({ texts, input_ids: inputIds, context_length: vl.contextLength }));
console.log(`trained CLIP saved in ${trained}`);
