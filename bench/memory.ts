// Resident memory over a 1,000-step training loop of a small transformer classifier (forward,
// backward, AdamW). After warm-up the RSS must stay flat: a leak of native or JS buffers per
// step would show as a steady climb. Prints the curve's start and end and their ratio.
import { Embedding, Linear, TransformerEncoder, LayerNorm, Module } from '../src/nn/index.js';
import { AdamW } from '../src/optim/index.js';
import { type Tensor, crossEntropy, manualSeed, randint } from '../src/tensor/index.js';

class TinyClassifier extends Module {
  readonly embed: Embedding;
  readonly encoder: TransformerEncoder;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(vocab: number, dim: number, layers: number, heads: number, classes: number) {
    super();
    this.embed = this.module('embed', new Embedding(vocab, dim));
    this.encoder = this.module('encoder', new TransformerEncoder(layers, dim, heads, { mlpDim: dim * 4 }));
    this.norm = this.module('norm', new LayerNorm(dim));
    this.head = this.module('head', new Linear(dim, classes));
  }
  forward(ids: Tensor): Tensor {
    const h = this.norm.forward(this.encoder.forward(this.embed.forward(ids)));
    return this.head.forward(h.mean(1));
  }
}

export async function run(args: string[]): Promise<object> {
  const steps = Number(args[0] ?? 1000);
  manualSeed(0);
  const model = new TinyClassifier(512, 128, 2, 4, 2);
  const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.01 });
  const rss: { step: number; mb: number }[] = [];
  const t0 = performance.now();
  let loss = 0;
  for (let step = 1; step <= steps; step++) {
    const ids = randint(0, 512, [16, 32]);
    // learnable without positions: do most tokens come from the lower half of the vocabulary
    const labels = ids.lt(256).sum(1).gt(16).to('int32');
    const l = crossEntropy(model.forward(ids), labels);
    opt.zeroGrad();
    l.backward();
    opt.step();
    if (step % 50 === 0) {
      loss = l.item();
      rss.push({ step, mb: process.memoryUsage().rss / 2 ** 20 });
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  // Warm-up: the first tenth of the run (allocator pools and the JIT settle there).
  const warm = rss.find((p) => p.step >= steps / 10) ?? rss[0]!;
  const end = rss[rss.length - 1]!;
  return {
    bench: 'memory',
    steps,
    stepsPerSecond: steps / seconds,
    finalLoss: loss,
    rssMbAfterWarmup: Number(warm.mb.toFixed(1)),
    rssMbEnd: Number(end.mb.toFixed(1)),
    rssMbMax: Number(Math.max(...rss.map((p) => p.mb)).toFixed(1)),
    endOverWarmup: Number((end.mb / warm.mb).toFixed(3)),
    target: 'endOverWarmup <= 1.10',
    curve: rss.map((p) => [p.step, Number(p.mb.toFixed(1))]),
  };
}
