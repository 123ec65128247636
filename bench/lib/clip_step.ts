// What the training benchmarks share: the phases a step is timed in, and the tiny-CLIP step's
// model, optimizer and random batch (train and profile time the same step).
import type { CLIPModel } from '../../src/models/clip.js';
import { createModel } from '../../src/models/registry.js';
import { AdamW } from '../../src/optim/adamw.js';
import type { Backend } from '../../src/tensor/backend.js';
import { Generator, randint, randn } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** Seconds of one training step's phases. */
export interface Phases {
  forward: number;
  backward: number;
  optimizer: number;
}

export interface StepTiming {
  step: number;
  phases: Phases;
}

export interface ClipStep {
  model: CLIPModel;
  optimizer: AdamW;
  pixels: Tensor;
  ids: Tensor;
}

/** A registered CLIP in training mode, AdamW over it, and one random batch of images and token ids. */
export async function clipStep(preset: string, batch: number, backend: Backend, where: string): Promise<ClipStep> {
  const model = (await createModel(preset, { backend, init: 'random' })) as CLIPModel;
  if (typeof model.getImageFeatures !== 'function' || !model.config?.visionConfig) throw new Error(`${where}: ${preset} is not a CLIP model`);
  model.train();
  const vc = model.config.visionConfig;
  const tc = model.config.textConfig;
  const g = new Generator(1234);
  return {
    model,
    optimizer: new AdamW(model.parameters(), { lr: 1e-4 }),
    pixels: randn([batch, vc.numChannels, vc.imageSize, vc.imageSize], { generator: g, backend }),
    // Ids below the vocabulary's top, so every row's largest id (the legacy EOS pooling) is real.
    ids: randint(1, tc.vocabSize, [batch, tc.maxPositionEmbeddings], { generator: g, dtype: 'int32', backend }),
  };
}
