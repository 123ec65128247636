// Caption decoding with and without the key/value cache, same run, same model and image embeddings.
//   npm run bench -- generate [--tokens N] [--batch B] [--beams K] [--layers L] [--rounds R]
// The model is BLIP-base's text decoder (12 layers, width 768, vocab 30524) with random weights,
// reading random image embeddings of BLIP-base's shape (577 x 768): the vision tower runs once per
// caption either way and is left out. Without a cache every step re-runs the whole prefix and
// re-projects the image embeddings in every cross-attention layer; with it a step feeds one token
// per row. Both paths must give the same ids (checked); a figure is the best of R rounds.
import { BlipConfig, BlipForConditionalGeneration } from '../src/models/blip.js';
import { getModelEntry } from '../src/models/registry.js';
import { decodeCaptionIds } from '../src/tasks/caption.js';
import { Generator, randn } from '../src/tensor/random.js';
import { flag } from './lib/timing.js';

export async function run(args: string[]): Promise<unknown> {
  const tokens = flag(args, '--tokens', 20);
  const batch = flag(args, '--batch', 1);
  const beams = flag(args, '--beams', 1);
  const rounds = flag(args, '--rounds', 3);
  const raw = getModelEntry('BLIP-base').config;
  const text = raw.text_config as Record<string, unknown>;
  const layers = flag(args, '--layers', text.num_hidden_layers as number);
  // One vision layer: the tower is not timed, so there is no need to build all twelve.
  const config = BlipConfig.fromHF({ ...raw, text_config: { ...text, num_hidden_layers: layers },
    vision_config: { ...(raw.vision_config as object), num_hidden_layers: 1 } });
  const model = new BlipForConditionalGeneration(config, { generator: new Generator(0) });
  model.eval();
  const vc = config.visionConfig;
  const patches = (vc.imageSize / vc.patchSize) ** 2;
  const image = randn([batch, 1 + patches, vc.hiddenSize], { generator: new Generator(1) });
  const opts = { maxTokens: tokens, beams };
  const timed = (useCache: boolean): { seconds: number; ids: number[][] } => {
    const t0 = process.hrtime.bigint();
    const ids = decodeCaptionIds(model, image, { ...opts, useCache });
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, ids };
  };
  timed(true); // warm-up
  let cached = Infinity;
  let uncached = Infinity;
  let generated = 0;
  for (let r = 0; r < rounds; r++) {
    const a = timed(true);
    const b = timed(false);
    if (JSON.stringify(a.ids) !== JSON.stringify(b.ids)) throw new Error('bench generate: cached and uncached decoding gave different ids');
    generated = a.ids.reduce((s, row) => s + row.length - 1, 0);
    cached = Math.min(cached, a.seconds);
    uncached = Math.min(uncached, b.seconds);
  }
  return {
    bench: 'generate',
    model: `BLIP-base text decoder (${layers} layers, random weights), image embeddings [${batch}, ${1 + patches}, ${vc.hiddenSize}]`,
    batch, beams, newTokens: tokens, generatedTokens: generated, rounds,
    cached: { seconds: +cached.toFixed(3), tokensPerSecond: +(generated / cached).toFixed(2) },
    uncached: { seconds: +uncached.toFixed(3), tokensPerSecond: +(generated / uncached).toFixed(2) },
    speedup: +(uncached / cached).toFixed(2),
  };
}
